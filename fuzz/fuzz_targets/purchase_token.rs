//! `X-Purchase-Token` is whatever the client sends: checking it never
//! panics, and only the token issued for this user, sale and expiry passes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use seckill_core::{SaleId, Timestamp, UserId};
use seckill_http::purchase_token::{PURCHASE_TOKEN_TTL_SECS, PurchaseTokens};
use std::sync::LazyLock;

static TOKENS: LazyLock<PurchaseTokens> = LazyLock::new(|| PurchaseTokens::new(b"fuzz secret"));

fuzz_target!(|token: &[u8]| {
    let (sale, user) = (SaleId::from("sale"), UserId::from("user"));
    let now = Timestamp::from_millis(1_800_000_000_000);
    if TOKENS.check(&sale, &user, Some(token), now).is_err() {
        return;
    }
    let text = std::str::from_utf8(token).expect("an accepted token is text");
    let (expires, _) = text.split_once('.').expect("an accepted token has a dot");
    let expires: i64 = expires.parse().expect("an accepted token starts with its expiry");
    let ttl_ms = PURCHASE_TOKEN_TTL_SECS as i64 * 1000;
    let issued_at = Timestamp::from_millis(expires - ttl_ms);
    let (issued, _) = TOKENS.issue(&sale, &user, issued_at);
    assert_eq!(issued.as_bytes(), token, "accepted a token that was never issued");
});
