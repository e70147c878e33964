//! Who is calling: users by a JWT (`sub` is the user id), the operator by
//! the admin bearer token. The JWT algorithm is pinned by the configured
//! key — HS256 for a shared secret, RS256 or ES256 for a public key — so a
//! token that names another algorithm (`none`, or HS256 signed with the
//! public key as its secret) is refused.

use crate::error::{ApiError, ApiResult};
use axum::http::{HeaderMap, header};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use seckill_core::UserId;
use serde::Deserialize;
use subtle::ConstantTimeEq;

/// Longest accepted user id.
const MAX_USER_ID_LEN: usize = 200;

/// Seconds of clock skew tolerated on `exp` (and `nbf`).
const LEEWAY_SECS: u64 = 5;

/// How user tokens are checked.
#[derive(Clone)]
pub struct JwtRules {
    pub key: JwtKey,
    /// When set, tokens must carry this `iss`.
    pub issuer: Option<String>,
    /// When set, tokens must carry this `aud`.
    pub audience: Option<String>,
}

/// What user tokens are signed with.
#[derive(Clone)]
pub enum JwtKey {
    /// HS256 with a shared secret (the default).
    Secret(Vec<u8>),
    /// RS256 or ES256 (told by the key's type), verified with a PEM public key.
    PublicKeyPem(Vec<u8>),
}

/// The JWT public key is neither an RSA nor an EC (P-256) PEM public key.
#[derive(Debug, thiserror::Error)]
#[error("the JWT public key is not an RSA or EC (P-256) public key in PEM form")]
pub struct BadPublicKey;

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
    pub fn new(rules: &JwtRules, admin_token: &str) -> Result<Self, BadPublicKey> {
        let (user_key, algorithm) = match &rules.key {
            JwtKey::Secret(secret) => (DecodingKey::from_secret(secret), Algorithm::HS256),
            JwtKey::PublicKeyPem(pem) => {
                if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
                    (key, Algorithm::RS256)
                } else if let Ok(key) = DecodingKey::from_ec_pem(pem) {
                    (key, Algorithm::ES256)
                } else {
                    return Err(BadPublicKey);
                }
            }
        };
        let mut validation = Validation::new(algorithm);
        validation.leeway = LEEWAY_SECS;
        let mut required = vec!["exp", "sub"];
        if let Some(issuer) = &rules.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        if let Some(audience) = &rules.audience {
            validation.set_audience(&[audience]);
            required.push("aud");
        } else {
            // A token meant for another service is not ours to judge by.
            validation.validate_aud = false;
        }
        validation.set_required_spec_claims(&required);
        Ok(Self {
            user_key,
            validation,
            admin_token: admin_token.as_bytes().to_vec(),
        })
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

    fn hs256(secret: &[u8], admin_token: &str) -> Auth {
        let rules = JwtRules {
            key: JwtKey::Secret(secret.to_vec()),
            issuer: None,
            audience: None,
        };
        Auth::new(&rules, admin_token).unwrap()
    }

    fn far_future() -> u64 {
        4_000_000_000
    }

    #[test]
    fn accepts_a_valid_user_token() {
        let auth = hs256(b"secret", "admin");
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
        let auth = hs256(b"secret", "admin");
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
    fn a_public_key_that_is_not_one_is_refused_at_start() {
        let rules = JwtRules {
            key: JwtKey::PublicKeyPem(
                b"-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n".to_vec(),
            ),
            issuer: None,
            audience: None,
        };
        assert!(Auth::new(&rules, "admin").is_err());
    }

    #[test]
    fn admin_needs_the_exact_token() {
        let auth = hs256(b"secret", "admin-token");
        assert!(auth.admin(&headers("Bearer admin-token")).is_ok());
        assert!(auth.admin(&headers("bearer admin-token")).is_ok());
        assert!(auth.admin(&headers("Bearer admin-toke")).is_err());
        assert!(auth.admin(&headers("Basic admin-token")).is_err());
        assert!(auth.admin(&HeaderMap::new()).is_err());
    }
}
