//! A `POST /api/v1/sales` body through the same JSON reader the server
//! uses, then validation: never a panic, errors name what is wrong, and a
//! valid sale keeps its bounds and times that format back to RFC 3339.

#![no_main]

use libfuzzer_sys::fuzz_target;
use seckill_core::sale::{MAX_NAME_CHARS, MAX_STOCK};
use seckill_core::{ErrorCode, NewSale, SaleId, Timestamp};
use seckill_http::routes::extract::parse_json;

fuzz_target!(|body: &[u8]| {
    let new_sale = match parse_json::<NewSale>(body) {
        Ok(new_sale) => new_sale,
        Err(error) => {
            assert_eq!(error.code, ErrorCode::BadRequest);
            assert!(!error.message.is_empty());
            return;
        }
    };
    let now = Timestamp::from_millis(1_800_000_000_000);
    let Ok(sale) = new_sale.validate(SaleId::from("s"), now) else {
        return;
    };
    assert!((1..=MAX_STOCK).contains(&sale.stock));
    assert!((1..=MAX_STOCK).contains(&sale.per_user_limit));
    assert!(!sale.name.is_empty() && sale.name.chars().count() <= MAX_NAME_CHARS);
    for time in [Some(sale.starts_at), sale.ends_at].into_iter().flatten() {
        let text = time.to_rfc3339();
        assert_eq!(Timestamp::parse_rfc3339(&text), Ok(time), "{text}");
    }
});
