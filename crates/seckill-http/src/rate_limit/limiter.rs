//! One scope's limiter: an algorithm over the keyed states, on a clock
//! (governor's, so that tests can drive all three algorithms with its
//! `FakeRelativeClock`).

use super::fixed_window::FixedWindow;
use super::keyed::KeyedStates;
use super::leaky_bucket::LeakyBucket;
use super::{Algorithm, Rate};
use governor::clock::{Clock, DefaultClock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::{Quota, RateLimiter};
use std::time::Duration;

/// How long a request refused because the key table is full should wait:
/// the next sweep frees the idle keys' room.
pub const FULL_TABLE_RETRY: Duration = super::EVICT_EVERY;

pub struct Limiter<C: Clock = DefaultClock> {
    states: KeyedStates,
    policy: Policy<C>,
    clock: C,
    start: C::Instant,
}

enum Policy<C: Clock> {
    /// GCRA, as governor implements it, on our states.
    TokenBucket(RateLimiter<u64, KeyedStates, C, NoOpMiddleware<C::Instant>>),
    LeakyBucket(LeakyBucket),
    FixedWindow(FixedWindow),
}

/// Refused; a request would be admitted again after this long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryAfter(pub Duration);

impl Limiter {
    pub fn new(algorithm: Algorithm, rate: Rate, max_keys: usize) -> Self {
        Self::with_clock(algorithm, rate, max_keys, DefaultClock::default())
    }
}

impl<C: Clock + Clone> Limiter<C> {
    pub fn with_clock(algorithm: Algorithm, rate: Rate, max_keys: usize, clock: C) -> Self {
        let states = KeyedStates::new(max_keys);
        let Rate { per_second, burst } = rate;
        let policy = match algorithm {
            Algorithm::TokenBucket => Policy::TokenBucket(RateLimiter::new(
                Quota::per_second(per_second).allow_burst(burst),
                states.clone(),
                clock.clone(),
            )),
            Algorithm::LeakyBucket => Policy::LeakyBucket(LeakyBucket::new(per_second, burst)),
            Algorithm::FixedWindow => Policy::FixedWindow(FixedWindow::new(per_second, burst)),
        };
        Self {
            states,
            policy,
            start: clock.now(),
            clock,
        }
    }

    /// One request for `key`: admitted after waiting this long (zero but
    /// for the leaky bucket), or refused. A new key is refused while the
    /// table is full.
    pub fn check(&self, key: u64) -> Result<Duration, RetryAfter> {
        if !self.states.has_room_for(key) {
            return Err(RetryAfter(FULL_TABLE_RETRY));
        }
        match &self.policy {
            Policy::TokenBucket(limiter) => limiter
                .check_key(&key)
                .map(|()| Duration::ZERO)
                .map_err(|not_until| RetryAfter(not_until.wait_time_from(self.clock.now()))),
            Policy::LeakyBucket(bucket) => {
                let now = self.now();
                self.states
                    .update(key, |next_free| bucket.decide(next_free, now))
                    .map_err(RetryAfter)
            }
            Policy::FixedWindow(windows) => {
                let now = self.now();
                self.states
                    .update(key, |state| Ok(((), windows.decide(state, now)?)))
                    .map(|()| Duration::ZERO)
                    .map_err(RetryAfter)
            }
        }
    }

    /// Forgets every key whose state is as good as none.
    pub fn evict_idle(&self) {
        match &self.policy {
            Policy::TokenBucket(limiter) => limiter.retain_recent(),
            Policy::LeakyBucket(bucket) => {
                let now = self.now();
                self.states.retain(|state| !bucket.is_idle(state, now));
            }
            Policy::FixedWindow(windows) => {
                let now = self.now();
                self.states.retain(|state| !windows.is_idle(state, now));
            }
        }
    }

    /// Keys held now.
    pub fn len(&self) -> usize {
        self.states.len()
    }

    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    /// Nanoseconds since the limiter started.
    fn now(&self) -> u64 {
        self.clock.now().duration_since(self.start).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;
    use std::num::NonZeroU32;

    fn limiter(
        algorithm: Algorithm,
        per_second: u32,
        burst: u32,
    ) -> (Limiter<FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        let rate = Rate {
            per_second: NonZeroU32::new(per_second).unwrap(),
            burst: NonZeroU32::new(burst).unwrap(),
        };
        (
            Limiter::with_clock(algorithm, rate, 1_000, clock.clone()),
            clock,
        )
    }

    fn admitted_now(limiter: &Limiter<FakeRelativeClock>, key: u64, tries: usize) -> usize {
        (0..tries)
            .filter(|_| limiter.check(key) == Ok(Duration::ZERO))
            .count()
    }

    #[test]
    fn token_bucket_lets_the_burst_through_then_one_per_interval() {
        let (limiter, clock) = limiter(Algorithm::TokenBucket, 10, 20);
        assert_eq!(admitted_now(&limiter, 1, 100), 20, "the burst");
        let refused = limiter.check(1).unwrap_err();
        assert_eq!(refused, RetryAfter(Duration::from_millis(100)));
        assert_eq!(admitted_now(&limiter, 2, 1), 1, "other keys are unaffected");
        for _ in 0..10 {
            clock.advance(Duration::from_millis(100));
            assert_eq!(admitted_now(&limiter, 1, 5), 1, "steady: one per 100 ms");
        }
    }

    #[test]
    fn leaky_bucket_spaces_requests_and_refuses_past_the_wait_bound() {
        let (limiter, clock) = limiter(Algorithm::LeakyBucket, 10, 3);
        let waits: Vec<_> = (0..3).map(|_| limiter.check(1).unwrap()).collect();
        assert_eq!(waits, [0, 100, 200].map(Duration::from_millis));
        assert_eq!(
            limiter.check(1),
            Err(RetryAfter(Duration::from_millis(100)))
        );
        clock.advance(Duration::from_millis(100));
        assert_eq!(limiter.check(1), Ok(Duration::from_millis(200)));
    }

    #[test]
    fn fixed_window_counts_restart_at_the_boundary() {
        let (limiter, clock) = limiter(Algorithm::FixedWindow, 10, 10); // 10 per second
        clock.advance(Duration::from_millis(700));
        assert_eq!(admitted_now(&limiter, 1, 50), 10);
        assert_eq!(
            limiter.check(1),
            Err(RetryAfter(Duration::from_millis(300)))
        );
        clock.advance(Duration::from_millis(300));
        assert_eq!(admitted_now(&limiter, 1, 50), 10, "a new window");
    }

    #[test]
    fn idle_keys_are_evicted_and_busy_ones_kept() {
        for algorithm in [
            Algorithm::TokenBucket,
            Algorithm::LeakyBucket,
            Algorithm::FixedWindow,
        ] {
            let (limiter, clock) = limiter(algorithm, 10, 2);
            for key in 0..100 {
                limiter.check(key).unwrap();
            }
            limiter.evict_idle();
            assert_eq!(limiter.len(), 100, "{algorithm:?}: all just used");
            clock.advance(Duration::from_secs(1));
            limiter.check(7).unwrap();
            limiter.evict_idle();
            assert_eq!(limiter.len(), 1, "{algorithm:?}: only the key used since");
        }
    }

    #[test]
    fn a_full_table_refuses_new_keys_until_the_sweep() {
        let clock = FakeRelativeClock::default();
        let rate = Rate {
            per_second: NonZeroU32::new(10).unwrap(),
            burst: NonZeroU32::new(1).unwrap(),
        };
        let limiter = Limiter::with_clock(Algorithm::TokenBucket, rate, 2, clock.clone());
        limiter.check(1).unwrap();
        limiter.check(2).unwrap();
        assert_eq!(limiter.check(3), Err(RetryAfter(FULL_TABLE_RETRY)));
        clock.advance(Duration::from_secs(1));
        limiter.check(1).unwrap();
        limiter.evict_idle();
        assert_eq!(limiter.check(3), Ok(Duration::ZERO));
    }
}
