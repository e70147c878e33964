//! The leaky bucket as a queue: requests leave at a steady rate, one every
//! `interval`. A request that finds the bucket busy waits for its slot, up
//! to `max_wait`; one whose slot lies further out is refused. Unlike the
//! token bucket it never lets a burst through at once: it spreads it.
//!
//! State: the next free slot, in nanoseconds since the limiter started
//! (0: none yet).

use std::num::NonZeroU32;
use std::time::Duration;

const NANOS_PER_SECOND: u64 = 1_000_000_000;

#[derive(Clone, Copy, Debug)]
pub struct LeakyBucket {
    interval: u64,
    max_wait: u64,
}

impl LeakyBucket {
    /// `per_second` leave per second; `burst` requests arriving at once are
    /// all admitted (the first at once, the others at their slots).
    pub fn new(per_second: NonZeroU32, burst: NonZeroU32) -> Self {
        let interval = (NANOS_PER_SECOND / u64::from(per_second.get())).max(1);
        Self {
            interval,
            max_wait: interval.saturating_mul(u64::from(burst.get() - 1)),
        }
    }

    /// At `now`, given the next free slot: how long to wait for this
    /// request's slot and the new next free slot, or, refused, how long
    /// until a request would be admitted again.
    pub fn decide(&self, next_free: u64, now: u64) -> Result<(Duration, u64), Duration> {
        let slot = next_free.max(now);
        let wait = slot - now;
        if wait > self.max_wait {
            return Err(Duration::from_nanos(wait - self.max_wait));
        }
        Ok((Duration::from_nanos(wait), slot + self.interval))
    }

    /// A bucket whose next free slot has passed is as good as a new one.
    pub fn is_idle(&self, next_free: u64, now: u64) -> bool {
        next_free <= now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn bucket(per_second: u32, burst: u32) -> LeakyBucket {
        LeakyBucket::new(
            NonZeroU32::new(per_second).unwrap(),
            NonZeroU32::new(burst).unwrap(),
        )
    }

    #[test]
    fn requests_arriving_together_are_spaced_at_the_rate_and_the_overflow_refused() {
        let bucket = bucket(10, 3); // one per 100 ms, at most 200 ms of waiting
        let mut state = 0;
        let mut waits = Vec::new();
        for _ in 0..3 {
            let (wait, next) = bucket.decide(state, 1_000 * MS).expect("admitted");
            waits.push(wait);
            state = next;
        }
        assert_eq!(
            waits,
            [0, 100, 200].map(Duration::from_millis),
            "spaced at the leak rate"
        );
        assert_eq!(
            bucket.decide(state, 1_000 * MS),
            Err(Duration::from_millis(100)),
            "the fourth would wait 300 ms: refused, admissible again in 100 ms"
        );
        assert!(bucket.decide(state, 1_100 * MS).is_ok());
    }

    #[test]
    fn a_drained_bucket_admits_at_once_and_is_idle() {
        let bucket = bucket(10, 1);
        let (wait, state) = bucket.decide(0, 5 * MS).unwrap();
        assert_eq!((wait, state), (Duration::ZERO, 105 * MS));
        assert!(!bucket.is_idle(state, 50 * MS));
        assert!(bucket.decide(state, 50 * MS).is_err(), "burst 1: no queue");
        assert!(bucket.is_idle(state, 105 * MS));
        assert_eq!(bucket.decide(state, 500 * MS).unwrap().0, Duration::ZERO);
    }
}
