//! Who is calling: users by a JWT (`sub` is the user id, HS256 with the
//! configured secret), the operator by the admin bearer token.

use crate::error::{ApiError, ApiResult};
use axum::http::{HeaderMap, header};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use seckill_core::UserId;
use serde::Deserialize;
use subtle::ConstantTimeEq;

/// Longest accepted user id.
const MAX_USER_ID_LEN: usize = 200;

pub struct Auth {
    user_key: DecodingKey,
    validation: Validation,
    admin_token: Vec<u8>,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
}

impl Auth {
    pub fn new(jwt_secret: &[u8], admin_token: &str) -> Self {
        // The algorithm is pinned: a token claiming any other is refused.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            user_key: DecodingKey::from_secret(jwt_secret),
            validation,
            admin_token: admin_token.as_bytes().to_vec(),
        }
    }

    /// The user behind a valid `Authorization: Bearer <JWT>`.
    pub fn user(&self, headers: &HeaderMap) -> ApiResult<UserId> {
        let token = bearer(headers).ok_or(ApiError::unauthorized("a bearer token is required"))?;
        let claims = jsonwebtoken::decode::<Claims>(token, &self.user_key, &self.validation)
            .map_err(|_| ApiError::unauthorized("the token is invalid or expired"))?
            .claims;
        if claims.sub.is_empty() || claims.sub.len() > MAX_USER_ID_LEN {
            return Err(ApiError::unauthorized(
                "the token's subject is not a valid user id",
            ));
        }
        Ok(UserId::from(claims.sub))
    }

    /// Succeeds only for `Authorization: Bearer <admin token>`, compared in
    /// constant time.
    pub fn admin(&self, headers: &HeaderMap) -> ApiResult<()> {
        match bearer(headers) {
            Some(token) if bool::from(token.as_bytes().ct_eq(&self.admin_token)) => Ok(()),
            _ => Err(ApiError::unauthorized("the admin token is required")),
        }
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use jsonwebtoken::{EncodingKey, Header, encode};

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    fn token(secret: &[u8], claims: serde_json::Value, algorithm: Algorithm) -> String {
        encode(
            &Header::new(algorithm),
            &claims,
            &EncodingKey::from_secret(secret),
        )
        .unwrap()
    }

    fn far_future() -> u64 {
        4_000_000_000
    }

    #[test]
    fn accepts_a_valid_user_token() {
        let auth = Auth::new(b"secret", "admin");
        let jwt = token(
            b"secret",
            serde_json::json!({"sub": "alice", "exp": far_future()}),
            Algorithm::HS256,
        );
        let user = auth.user(&headers(&format!("Bearer {jwt}"))).unwrap();
        assert_eq!(user.as_str(), "alice");
    }

    #[test]
    fn refuses_forged_expired_unsigned_and_switched_tokens() {
        let auth = Auth::new(b"secret", "admin");
        let forged = token(
            b"other",
            serde_json::json!({"sub": "alice", "exp": far_future()}),
            Algorithm::HS256,
        );
        let expired = token(
            b"secret",
            serde_json::json!({"sub": "alice", "exp": 1_000}),
            Algorithm::HS256,
        );
        let no_exp = token(
            b"secret",
            serde_json::json!({"sub": "alice"}),
            Algorithm::HS256,
        );
        let switched = token(
            b"secret",
            serde_json::json!({"sub": "alice", "exp": far_future()}),
            Algorithm::HS512,
        );
        let empty_sub = token(
            b"secret",
            serde_json::json!({"sub": "", "exp": far_future()}),
            Algorithm::HS256,
        );
        for jwt in [
            forged,
            expired,
            no_exp,
            switched,
            empty_sub,
            "garbage".into(),
        ] {
            assert!(
                auth.user(&headers(&format!("Bearer {jwt}"))).is_err(),
                "{jwt}"
            );
        }
        assert!(auth.user(&HeaderMap::new()).is_err());
    }

    #[test]
    fn admin_needs_the_exact_token() {
        let auth = Auth::new(b"secret", "admin-token");
        assert!(auth.admin(&headers("Bearer admin-token")).is_ok());
        assert!(auth.admin(&headers("bearer admin-token")).is_ok());
        assert!(auth.admin(&headers("Bearer admin-toke")).is_err());
        assert!(auth.admin(&headers("Basic admin-token")).is_err());
        assert!(auth.admin(&HeaderMap::new()).is_err());
    }
}
