//! One million distinct client addresses through one scope's limiter: the
//! table holds them within its cap, refuses a new key past it, and forgets
//! them all once they are idle. Prints the key counts and the resident
//! memory at each step:
//!
//! ```sh
//! cargo test --release -p seckill-http --test rate_limit_memory -- --nocapture
//! ```
//!
//! The only test in this file, so that nothing else moves the process's RSS.

use governor::clock::FakeRelativeClock;
use seckill_http::rate_limit::{Algorithm, FULL_TABLE_RETRY, Limiter, MAX_KEYS, Rate, RetryAfter};
use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

const MIB: f64 = 1024.0 * 1024.0;

/// Resident set size from `/proc/self/statm` (Linux), in bytes.
fn rss() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn mib(before: Option<u64>, after: Option<u64>) -> String {
    match (before, after) {
        (Some(before), Some(after)) => format!("{:+.1} MiB", (after as f64 - before as f64) / MIB),
        _ => "unknown".into(),
    }
}

#[test]
fn a_million_distinct_addresses_stay_within_the_cap_and_are_forgotten_once_idle() {
    let clock = FakeRelativeClock::default();
    let rate = Rate {
        per_second: NonZeroU32::new(10).unwrap(),
        burst: NonZeroU32::new(100).unwrap(),
    };
    let limiter = Limiter::with_clock(Algorithm::TokenBucket, rate, MAX_KEYS, clock.clone());
    let fingerprints = RandomState::new();
    let key = |i: u32| fingerprints.hash_one(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)));
    let start_rss = rss();

    let started = Instant::now();
    for i in 0..1_000_000 {
        assert_eq!(limiter.check(key(i)), Ok(Duration::ZERO), "address {i}");
    }
    let filled_in = started.elapsed();
    let full_rss = rss();
    assert_eq!(limiter.len(), MAX_KEYS);
    assert_eq!(
        limiter.check(key(1_000_000)),
        Err(RetryAfter(FULL_TABLE_RETRY)),
        "a new address past the cap waits for the sweep"
    );
    assert_eq!(
        limiter.check(key(7)),
        Ok(Duration::ZERO),
        "known ones are served"
    );

    // burst / rate = 10 s after its last request a bucket is full again.
    clock.advance(Duration::from_secs(11));
    let started = Instant::now();
    limiter.evict_idle();
    let swept_in = started.elapsed();
    let swept_rss = rss();
    let left = limiter.len();
    assert_eq!(left, 0);
    assert_eq!(
        limiter.check(key(1_000_000)),
        Ok(Duration::ZERO),
        "room again"
    );

    eprintln!(
        "1,000,000 distinct addresses: filled in {filled_in:?}, {} keys, RSS {}; \
         idle keys swept in {swept_in:?}: {left} keys left, RSS {} from the start",
        MAX_KEYS,
        mib(start_rss, full_rss),
        mib(start_rss, swept_rss),
    );
    if let (Some(start), Some(full)) = (start_rss, full_rss) {
        assert!(
            full.saturating_sub(start) < 128 << 20,
            "a full table must stay well under 128 MiB: {}",
            mib(start_rss, full_rss)
        );
    }
}
