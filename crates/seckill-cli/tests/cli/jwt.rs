//! User JWTs under hardened rules: the algorithm is pinned by the key
//! (HS256 secret, or an RS256/ES256 public key), `exp` is required, `nbf`
//! is honoured, a header with critical extensions (`crit`) is refused, and
//! `iss`/`aud` are checked when configured. Every refusal is 401.

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use seckill_test_support::*;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/jwt/{name}"))
}

fn pem(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).expect("read a fixture key")
}

fn sign(algorithm: Algorithm, key: &EncodingKey, claims: Value) -> String {
    jsonwebtoken::encode(&Header::new(algorithm), &claims, key).expect("sign a JWT")
}

fn rs256(private: &str, claims: Value) -> String {
    let key = EncodingKey::from_rsa_pem(&pem(private)).expect("an RSA private key");
    sign(Algorithm::RS256, &key, claims)
}

/// A token with `{"alg": "none"}` and no signature.
fn unsigned(claims: &Value) -> String {
    let encode = |value: &Value| base64url(value.to_string().as_bytes());
    format!(
        "{}.{}.",
        encode(&json!({"alg": "none", "typ": "JWT"})),
        encode(claims)
    )
}

/// A token with this header, which `jsonwebtoken` cannot write (`crit`).
fn with_header(algorithm: Algorithm, key: &EncodingKey, header: &Value, claims: &Value) -> String {
    let message = format!(
        "{}.{}",
        base64url(header.to_string().as_bytes()),
        base64url(claims.to_string().as_bytes())
    );
    let signature =
        jsonwebtoken::crypto::sign(message.as_bytes(), key, algorithm).expect("sign a JWT");
    format!("{message}.{signature}")
}

fn base64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn claims(sub: &str) -> Value {
    json!({"sub": sub, "exp": now_unix() + 600, "iss": "tickets-idp", "aud": "seckill"})
}

/// 202 for an accepted token, 401 `unauthorized` for a refused one.
async fn buys_with(api: &Api, sale: &str, token: &str) -> bool {
    let answer = api
        .post(
            &format!("/api/v1/sales/{sale}/purchase"),
            &Auth::Bearer(token.to_string()),
            Body::Empty,
        )
        .await;
    match answer.status {
        StatusCode::ACCEPTED => true,
        _ => {
            answer.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
            false
        }
    }
}

#[tokio::test]
async fn rs256_with_issuer_and_audience_refuses_every_forgery() {
    let public_key = fixture("rsa_public.pem");
    let seckill = Seckill::start_with(&[
        "--jwt-public-key",
        public_key.to_str().expect("a UTF-8 path"),
        "--jwt-issuer",
        "tickets-idp",
        "--jwt-audience",
        "seckill",
    ])
    .await;
    let sale = seckill.open_sale(100, 1).await;

    assert!(buys_with(&seckill, &sale, &rs256("rsa_private.pem", claims("alice"))).await);

    let mut expired = claims("bob");
    expired["exp"] = json!(now_unix() - 600);
    let mut wrong_audience = claims("bob");
    wrong_audience["aud"] = json!("another-service");
    let mut no_audience = claims("bob");
    no_audience
        .as_object_mut()
        .expect("an object")
        .remove("aud");
    let mut wrong_issuer = claims("bob");
    wrong_issuer["iss"] = json!("someone-else");
    let mut no_exp = claims("bob");
    no_exp.as_object_mut().expect("an object").remove("exp");
    // HS/RS confusion: HS256 "signed" with the public key as the secret.
    let confused = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(&pem("rsa_public.pem")).expect("a non-empty HMAC key"),
        claims("bob"),
    );
    // The engine's own HS256 secret no longer makes a user token.
    let engine_secret = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(seckill.jwt_secret().as_bytes()).expect("a non-empty HMAC key"),
        claims("bob"),
    );
    for (what, token) in [
        ("alg none", unsigned(&claims("bob"))),
        ("HS256 keyed with the RSA public key", confused),
        ("HS256 with the engine secret", engine_secret),
        (
            "another RSA key",
            rs256("other_rsa_private.pem", claims("bob")),
        ),
        ("expired", rs256("rsa_private.pem", expired)),
        ("no exp", rs256("rsa_private.pem", no_exp)),
        ("wrong audience", rs256("rsa_private.pem", wrong_audience)),
        ("no audience", rs256("rsa_private.pem", no_audience)),
        ("wrong issuer", rs256("rsa_private.pem", wrong_issuer)),
    ] {
        assert!(
            !buys_with(&seckill, &sale, &token).await,
            "{what} was accepted"
        );
    }
    assert_eq!(
        seckill.report(&sale).await.remaining,
        99,
        "only alice bought"
    );
}

#[tokio::test]
async fn es256_keys_are_told_from_the_pem() {
    let public_key = fixture("ec_public.pem");
    let seckill =
        Seckill::start_with(&["--jwt-public-key", public_key.to_str().expect("UTF-8")]).await;
    let sale = seckill.open_sale(10, 1).await;
    let key = EncodingKey::from_ec_pem(&pem("ec_private.pem")).expect("an EC private key");
    let claims = json!({"sub": "carol", "exp": now_unix() + 600});
    assert!(
        buys_with(
            &seckill,
            &sale,
            &sign(Algorithm::ES256, &key, claims.clone())
        )
        .await
    );
    let rsa_signed = rs256("rsa_private.pem", claims);
    assert!(!buys_with(&seckill, &sale, &rsa_signed).await);
}

#[tokio::test]
async fn hs256_refuses_alg_none_and_a_wrong_signature() {
    let seckill = Seckill::start().await;
    let sale = seckill.open_sale(10, 1).await;
    let claims = json!({"sub": "dave", "exp": now_unix() + 600});
    assert!(!buys_with(&seckill, &sale, &unsigned(&claims)).await);
    let forged = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(b"not the secret").expect("a non-empty HMAC key"),
        claims,
    );
    assert!(!buys_with(&seckill, &sale, &forged).await);
    assert!(buys_with(&seckill, &sale, &seckill.user_token("dave")).await);
}

/// Not before an hour from now: refused until then, with either kind of
/// key; a `nbf` in the past is no obstacle.
#[tokio::test]
async fn a_token_not_yet_valid_is_refused() {
    let seckill = Seckill::start().await;
    let sale = seckill.open_sale(10, 1).await;
    let secret =
        EncodingKey::from_secret(seckill.jwt_secret().as_bytes()).expect("a non-empty HMAC key");
    let from = |nbf: i64| json!({"sub": "erin", "exp": now_unix() + 7200, "nbf": nbf});
    let early = sign(Algorithm::HS256, &secret, from(now_unix() + 3600));
    assert!(
        !buys_with(&seckill, &sale, &early).await,
        "HS256, nbf ahead"
    );
    let due = sign(Algorithm::HS256, &secret, from(now_unix() - 60));
    assert!(buys_with(&seckill, &sale, &due).await, "HS256, nbf past");

    let public_key = fixture("rsa_public.pem");
    let rsa = Seckill::start_with(&["--jwt-public-key", public_key.to_str().expect("UTF-8")]).await;
    let sale = rsa.open_sale(10, 1).await;
    let early = rs256("rsa_private.pem", from(now_unix() + 3600));
    assert!(!buys_with(&rsa, &sale, &early).await, "RS256, nbf ahead");
    let due = rs256("rsa_private.pem", from(now_unix() - 60));
    assert!(buys_with(&rsa, &sale, &due).await, "RS256, nbf past");
}

/// RFC 7515: a token whose header lists extensions the recipient must
/// understand (`crit`) is refused by one that understands none.
#[tokio::test]
async fn a_token_with_critical_extensions_is_refused() {
    let seckill = Seckill::start().await;
    let sale = seckill.open_sale(10, 1).await;
    let secret =
        EncodingKey::from_secret(seckill.jwt_secret().as_bytes()).expect("a non-empty HMAC key");
    let claims = json!({"sub": "frank", "exp": now_unix() + 600});
    let critical = json!({"alg": "HS256", "typ": "JWT", "crit": ["exp"]});
    let token = with_header(Algorithm::HS256, &secret, &critical, &claims);
    assert!(!buys_with(&seckill, &sale, &token).await, "HS256 with crit");
    // The same token without `crit` is good: only the header differs.
    let plain = json!({"alg": "HS256", "typ": "JWT"});
    let token = with_header(Algorithm::HS256, &secret, &plain, &claims);
    assert!(
        buys_with(&seckill, &sale, &token).await,
        "HS256 without crit"
    );

    let public_key = fixture("rsa_public.pem");
    let rsa = Seckill::start_with(&["--jwt-public-key", public_key.to_str().expect("UTF-8")]).await;
    let sale = rsa.open_sale(10, 1).await;
    let key = EncodingKey::from_rsa_pem(&pem("rsa_private.pem")).expect("an RSA private key");
    let critical = json!({"alg": "RS256", "crit": ["exp"]});
    let token = with_header(Algorithm::RS256, &key, &critical, &claims);
    assert!(!buys_with(&rsa, &sale, &token).await, "RS256 with crit");
    assert_eq!(rsa.report(&sale).await.remaining, 10, "nothing was sold");
}
