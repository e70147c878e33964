//! Who is calling: users by a JWT (`sub` is the user id), the operator by
//! the admin bearer token. The JWT algorithm is pinned by the configured
//! key — HS256 for a shared secret, RS256 or ES256 for a public key — so a
//! token that names another algorithm (`none`, or HS256 signed with the
//! public key as its secret) is refused. A token not yet valid (`nbf`) is
//! refused, and so is one whose header names extensions it must be
//! understood by (`crit`): this engine understands none.

use crate::error::{ApiError, ApiResult};
use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use seckill_core::{ErrorCode, UserId};
use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer};
use subtle::ConstantTimeEq;

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

/// The configured JWT key cannot check tokens.
#[derive(Debug, thiserror::Error)]
pub enum BadJwtKey {
    /// HMAC with an empty key would accept tokens anyone can sign.
    #[error("the JWT secret is empty")]
    EmptySecret,
    #[error("the JWT public key is not an RSA or EC (P-256) public key in PEM form")]
    NotAPublicKey,
}

pub struct Auth {
    user_key: DecodingKey,
    validation: Validation,
    admin_token: Vec<u8>,
    dashboard_token: Option<Vec<u8>>,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
}

/// The one member of a token's header that jsonwebtoken does not read.
#[derive(Deserialize)]
struct CriticalExtensions {
    /// Whether the header has `crit`, whatever its value (RFC 7515 §4.1.11:
    /// a recipient refuses a token whose critical extensions it does not
    /// understand, and an empty list is not allowed either).
    #[serde(default, deserialize_with = "present")]
    crit: bool,
}

fn present<'de, D: Deserializer<'de>>(value: D) -> Result<bool, D::Error> {
    IgnoredAny::deserialize(value).map(|_| true)
}

/// Whether the header (the token's first segment) has no `crit` member;
/// only called once the token verified, so the segment is the signed one.
fn has_no_critical_extensions(token: &str) -> bool {
    let Some((header, _)) = token.split_once('.') else {
        return false;
    };
    URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|json| serde_json::from_slice::<CriticalExtensions>(&json).ok())
        .is_some_and(|header| !header.crit)
}

impl Auth {
    pub fn new(rules: &JwtRules, admin_token: &str) -> Result<Self, BadJwtKey> {
        let (user_key, algorithm) = match &rules.key {
            JwtKey::Secret(secret) => (
                DecodingKey::from_secret(secret).map_err(|_| BadJwtKey::EmptySecret)?,
                Algorithm::HS256,
            ),
            JwtKey::PublicKeyPem(pem) => {
                if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
                    (key, Algorithm::RS256)
                } else if let Ok(key) = DecodingKey::from_ec_pem(pem) {
                    (key, Algorithm::ES256)
                } else {
                    return Err(BadJwtKey::NotAPublicKey);
                }
            }
        };
        let mut validation = Validation::new(algorithm);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
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
            dashboard_token: None,
        })
    }

    /// The dashboard asks for `token`, when set; else it is open to all.
    pub fn with_dashboard_token(mut self, token: Option<&str>) -> Self {
        self.dashboard_token = token.map(|token| token.as_bytes().to_vec());
        self
    }

    /// The user behind a valid `Authorization: Bearer <JWT>`.
    pub fn user(&self, headers: &HeaderMap) -> ApiResult<UserId> {
        let token = bearer(headers).ok_or(ApiError::unauthorized("a bearer token is required"))?;
        let claims = jsonwebtoken::decode::<Claims>(token, &self.user_key, &self.validation)
            .ok()
            .filter(|_| has_no_critical_extensions(token))
            .ok_or(ApiError::unauthorized(
                "the token is invalid, expired or not yet valid",
            ))?
            .claims;
        // Refused before anything is reserved: an id the order store
        // would refuse must never be acknowledged (I2).
        UserId::parse(claims.sub).map_err(|error| {
            ApiError::new(
                ErrorCode::Unauthorized,
                format!("the token's subject is not a valid user id: {error}"),
            )
        })
    }

    /// Succeeds only for `Authorization: Bearer <admin token>`, compared in
    /// constant time.
    pub fn admin(&self, headers: &HeaderMap) -> ApiResult<()> {
        match bearer(headers) {
            Some(token) if same(token, &self.admin_token) => Ok(()),
            _ => Err(ApiError::unauthorized("the admin token is required")),
        }
    }

    /// Succeeds when no dashboard token is configured, or for the request
    /// that carries it: as a bearer token, or as `?token=` (an
    /// `EventSource` cannot set headers); compared in constant time.
    pub fn dashboard(&self, headers: &HeaderMap, query_token: Option<&str>) -> ApiResult<()> {
        let Some(expected) = &self.dashboard_token else {
            return Ok(());
        };
        match bearer(headers).or(query_token) {
            Some(token) if same(token, expected) => Ok(()),
            _ => Err(ApiError::unauthorized("the dashboard token is required")),
        }
    }
}

/// Whether `given` is the `expected` secret, compared in constant time.
fn same(given: &str, expected: &[u8]) -> bool {
    given.as_bytes().ct_eq(expected).into()
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
            &EncodingKey::from_secret(secret).unwrap(),
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

    /// An HS256 token with this header, which jsonwebtoken cannot write.
    fn with_header(secret: &[u8], header: &str, claims: &serde_json::Value) -> String {
        let segment = |json: &str| URL_SAFE_NO_PAD.encode(json);
        let message = format!("{}.{}", segment(header), segment(&claims.to_string()));
        let key = EncodingKey::from_secret(secret).unwrap();
        let signature =
            jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::HS256).unwrap();
        format!("{message}.{signature}")
    }

    #[test]
    fn refuses_a_token_not_yet_valid_or_with_critical_extensions() {
        let auth = hs256(b"secret", "admin");
        let now = jsonwebtoken::get_current_timestamp();
        let claims =
            |nbf: u64| serde_json::json!({"sub": "alice", "exp": far_future(), "nbf": nbf});
        let user = |jwt: String| auth.user(&headers(&format!("Bearer {jwt}")));
        assert!(user(token(b"secret", claims(now - 60), Algorithm::HS256)).is_ok());
        assert!(user(token(b"secret", claims(now + 2), Algorithm::HS256)).is_ok());
        assert!(user(token(b"secret", claims(now + 3600), Algorithm::HS256)).is_err());

        let plain = r#"{"alg":"HS256","typ":"JWT"}"#;
        assert!(user(with_header(b"secret", plain, &claims(now))).is_ok());
        for header in [
            r#"{"alg":"HS256","crit":["exp"]}"#,
            r#"{"alg":"HS256","crit":[]}"#,
            r#"{"alg":"HS256","crit":null}"#,
            r#"{"alg":"HS256","\u0063rit":["exp"]}"#,
        ] {
            assert!(
                user(with_header(b"secret", header, &claims(now))).is_err(),
                "{header}"
            );
        }
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
        assert!(matches!(
            Auth::new(&rules, "admin"),
            Err(BadJwtKey::NotAPublicKey)
        ));
    }

    #[test]
    fn an_empty_secret_is_refused_at_start() {
        let rules = JwtRules {
            key: JwtKey::Secret(Vec::new()),
            issuer: None,
            audience: None,
        };
        assert!(matches!(
            Auth::new(&rules, "admin"),
            Err(BadJwtKey::EmptySecret)
        ));
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

    #[test]
    fn the_dashboard_is_open_unless_a_token_is_set_then_needs_it_in_a_header_or_the_query() {
        let open = hs256(b"secret", "admin-token");
        assert!(open.dashboard(&HeaderMap::new(), None).is_ok());
        let guarded = hs256(b"secret", "admin-token").with_dashboard_token(Some("dash"));
        assert!(guarded.dashboard(&headers("Bearer dash"), None).is_ok());
        assert!(guarded.dashboard(&HeaderMap::new(), Some("dash")).is_ok());
        assert!(guarded.dashboard(&HeaderMap::new(), None).is_err());
        assert!(guarded.dashboard(&HeaderMap::new(), Some("das")).is_err());
        assert!(guarded.dashboard(&HeaderMap::new(), Some("")).is_err());
        assert!(
            guarded
                .dashboard(&headers("Bearer admin-token"), None)
                .is_err()
        );
        assert!(
            guarded
                .dashboard(&headers("Bearer nope"), Some("dash"))
                .is_err()
        );
    }
}
