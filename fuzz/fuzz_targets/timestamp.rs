//! Client-sent times: parsing never panics, and whatever parses formats
//! back to RFC 3339 that parses to the same instant.

#![no_main]

use libfuzzer_sys::fuzz_target;
use seckill_core::Timestamp;

fuzz_target!(|text: &str| {
    if let Ok(time) = Timestamp::parse_rfc3339(text) {
        let formatted = time.to_rfc3339();
        assert_eq!(Timestamp::parse_rfc3339(&formatted), Ok(time), "{text:?} → {formatted}");
    }
});
