//! Wall-clock times as the API speaks them: Unix seconds in tokens,
//! RFC 3339 in UTC in bodies.

use std::time::{SystemTime, UNIX_EPOCH};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Seconds since the Unix epoch.
pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// `unix_secs` as RFC 3339 in UTC, e.g. `2026-12-01T08:00:00Z`.
pub fn rfc3339(unix_secs: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix_secs)
        .unwrap_or_else(|e| panic!("{unix_secs} s since the epoch: {e}"))
        .format(&Rfc3339)
        .expect("a time of years 0 to 9999 in UTC formats as RFC 3339")
}

/// Parses an RFC 3339 time in UTC (`Z` or `+00:00`, optional fraction)
/// into milliseconds since the epoch. Panics on anything else: the API
/// answers in UTC.
pub fn parse_rfc3339_millis(s: &str) -> i64 {
    let at = OffsetDateTime::parse(s, &Rfc3339)
        .unwrap_or_else(|e| panic!("not an RFC 3339 time: {s:?}: {e}"));
    assert!(at.offset().is_utc(), "not in UTC: {s:?}");
    (at.unix_timestamp_nanos() / 1_000_000) as i64
}
