//! The `Authorization` header, as any client may send it: the bearer
//! parsing and JWT verification never panic, and only the exact admin
//! token (after the scheme) is the admin.

#![no_main]

use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use seckill_http::auth::{Auth, JwtKey, JwtRules};
use std::sync::LazyLock;

const ADMIN_TOKEN: &str = "fuzz-admin-token";

static AUTH: LazyLock<Auth> = LazyLock::new(|| {
    let rules = JwtRules {
        key: JwtKey::Secret(b"fuzz secret".to_vec()),
        issuer: None,
        audience: None,
    };
    Auth::new(&rules, ADMIN_TOKEN).expect("a usable key")
});

fuzz_target!(|value: &[u8]| {
    let Ok(value) = HeaderValue::from_bytes(value) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, value.clone());
    let _ = AUTH.user(&headers);
    if AUTH.admin(&headers).is_ok() {
        let text = value.to_str().expect("the admin's header is text");
        let (scheme, token) = text.split_once(' ').expect("a scheme and a token");
        assert!(scheme.eq_ignore_ascii_case("bearer"), "{text:?}");
        assert_eq!(token.trim(), ADMIN_TOKEN, "{text:?}");
    }
});
