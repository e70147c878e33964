//! The latency buckets every answered request is counted in: whole
//! microseconds to two significant digits (1 µs steps up to 100 µs, 10 µs
//! steps up to 1 ms, … 1 s steps up to 100 s), then one bucket for anything
//! slower. Decimal, so that every Prometheus bound (50 µs, 2.5 ms, 10 s…)
//! and a configured bound such as 2 s or 150 ms is a bucket bound: what
//! falls at or under it is a sum of whole buckets, not an estimate. Like
//! Prometheus' `le`, a bucket holds what is above the bound before it and at
//! or under its own.

use std::time::Duration;

/// Decades above the first (1 µs steps to 100 µs): up to 100 s.
const DECADES: usize = 6;
/// 100 buckets of 1 µs, 90 per decade after them, and the slowest.
pub const BUCKETS: usize = 100 + 90 * DECADES + 1;
/// Anything slower than the last bound.
const SLOWEST: usize = BUCKETS - 1;

/// The bucket of a latency.
pub fn bucket(elapsed: Duration) -> usize {
    bucket_of_nanos(nanos(elapsed))
}

/// A latency in nanoseconds (past 584 years, 584 years).
pub fn nanos(elapsed: Duration) -> u64 {
    let nanos = elapsed.as_secs().saturating_mul(1_000_000_000);
    nanos.saturating_add(u64::from(elapsed.subsec_nanos()))
}

/// The bucket of a latency of `nanos` nanoseconds.
pub fn bucket_of_nanos(nanos: u64) -> usize {
    // Whole microseconds rounded up: at or under a bound of whole
    // microseconds exactly when the latency is.
    bucket_of_micros(nanos.div_ceil(1000))
}

fn bucket_of_micros(micros: u64) -> usize {
    // Bucket `90 k + m` holds (m·10^k, (m+1)·10^k], m two digits for k > 0:
    // `micros - 1` is placed by its first two digits and its decade.
    let mut digits = micros.saturating_sub(1);
    let mut decade = 0;
    while digits >= 100 {
        digits /= 10;
        decade += 1;
    }
    (90 * decade + digits as usize).min(SLOWEST)
}

/// The latency at or under which bucket `bucket` holds its requests (for
/// the slowest, which has no bound, the last bound).
pub fn bound(bucket: usize) -> Duration {
    Duration::from_micros(bound_micros(bucket))
}

fn bound_micros(bucket: usize) -> u64 {
    let bucket = bucket.min(SLOWEST - 1);
    if bucket < 100 {
        return bucket as u64 + 1;
    }
    let decade = (bucket - 10) / 90;
    let digits = (bucket - 90 * decade) as u64;
    (digits + 1) * 10_u64.pow(decade as u32)
}

/// The first bucket whose requests all took longer than `limit`, once
/// `limit` is rounded up to a bucket bound (a no-op for whole microseconds
/// of two significant digits).
pub fn first_over(limit: Duration) -> usize {
    bucket(limit) + 1
}

/// The bound at or under which a share `quantile` (0..=1) of `counts`
/// lies; `None` when they are all zero.
pub fn quantile(counts: &[u64; BUCKETS], quantile: f64) -> Option<Duration> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = ((quantile * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0;
    let at = counts.iter().position(|count| {
        seen += count;
        seen >= rank
    })?;
    Some(bound(at))
}

/// The bound of the slowest bucket holding a request; `None` when empty.
pub fn max(counts: &[u64; BUCKETS]) -> Option<Duration> {
    counts.iter().rposition(|count| *count > 0).map(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_follow_each_other_without_gaps() {
        assert_eq!(bucket(Duration::ZERO), 0);
        assert_eq!(bucket(Duration::from_nanos(1)), 0);
        for at in 0..SLOWEST {
            let bound = bound_micros(at);
            assert_eq!(bucket_of_micros(bound), at, "bound {bound} µs");
            assert_eq!(bucket_of_micros(bound + 1), at + 1, "past {bound} µs");
            if at > 0 {
                assert!(bound_micros(at - 1) < bound);
            }
        }
        assert_eq!(bound(SLOWEST - 1), Duration::from_secs(100));
        assert_eq!(bucket(Duration::from_secs(100)), SLOWEST - 1);
        assert_eq!(bucket(Duration::from_secs(101)), SLOWEST);
        assert_eq!(bucket(Duration::MAX), SLOWEST);
    }

    #[test]
    fn two_significant_digits_from_ten_microseconds() {
        for at in 10..SLOWEST {
            let (low, high) = (bound_micros(at - 1), bound_micros(at));
            let width = (high - low) as f64 / high as f64;
            assert!(width <= 0.1, "({low}, {high}] µs");
        }
    }

    #[test]
    fn a_bucket_holds_what_is_above_the_bound_before_and_at_or_under_its_own() {
        let at = bucket(Duration::from_micros(250));
        assert_eq!(bound(at), Duration::from_micros(250));
        assert_eq!(bucket(Duration::from_nanos(240_001)), at);
        assert_eq!(bucket(Duration::from_nanos(240_000)), at - 1);
        assert_eq!(bucket(Duration::from_nanos(250_001)), at + 1);
    }

    #[test]
    fn a_limit_of_two_digits_is_kept_exactly_others_are_rounded_up() {
        let two_seconds = first_over(Duration::from_secs(2));
        assert_eq!(bucket(Duration::from_secs(2)), two_seconds - 1);
        assert_eq!(bucket(Duration::from_nanos(2_000_000_001)), two_seconds);
        let odd = first_over(Duration::from_millis(1234));
        assert_eq!(bound(odd - 1), Duration::from_millis(1300));
    }

    #[test]
    fn quantiles_and_max_are_bucket_bounds() {
        let mut counts = [0; BUCKETS];
        assert_eq!(quantile(&counts, 0.5), None);
        assert_eq!(max(&counts), None);
        for millis in 1..=100 {
            counts[bucket(Duration::from_millis(millis))] += 1;
        }
        let ms = Duration::from_millis;
        assert_eq!(quantile(&counts, 0.5), Some(ms(50)));
        assert_eq!(quantile(&counts, 0.99), Some(ms(99)));
        assert_eq!(quantile(&counts, 0.0), Some(ms(1)));
        assert_eq!(max(&counts), Some(ms(100)));
        counts[bucket(Duration::from_micros(100_500))] += 1;
        assert_eq!(max(&counts), Some(ms(110)), "rounded up to its bound");
    }
}
