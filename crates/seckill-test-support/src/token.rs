//! User tokens as the engine's HS256 verifier accepts them.

use serde_json::json;

/// An HS256 JWT `{"sub": sub, "exp": exp}` signed with `secret`.
pub fn mint_jwt(secret: &[u8], sub: &str, exp: i64) -> String {
    let claims = json!({ "sub": sub, "exp": exp });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret).expect("a non-empty HMAC key"),
    )
    .expect("sign a JWT")
}
