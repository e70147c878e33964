//! Automatic degradation: every second, look at what the last second's
//! requests of each kind of traffic got. When one kind answers too many
//! 5xx, or its p99 latency is over the threshold, for `window` seconds in a
//! row, step down one level; once every kind has been healthy for
//! `recover` seconds in a row (longer than `window`: hysteresis), step back
//! up one level. Automatic degradation never goes below `purchases_only`:
//! closing the engine is the operator's call.
//!
//! A second's requests are the difference of two snapshots of the engine's
//! tally of answered requests ([`Requests`](crate::requests::Requests)).
//! "p99 over the threshold" is counted, not estimated: it is the same as
//! more than 1 % of the requests taking longer than the threshold, and the
//! threshold is a bound of the tally's latency buckets.

use super::{By, Level, Traffic};
use crate::App;
use crate::latency;
use crate::requests::Snapshot;
use crate::route::Route;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

/// When the engine counts as unhealthy, and how long before it steps.
#[derive(Clone, Copy, Debug)]
pub struct AutoRules {
    /// Share of 5xx answers (0..=1) above which a kind of traffic is unhealthy.
    pub error_rate: f64,
    /// p99 latency above which a kind of traffic is unhealthy; rounded up
    /// to two significant digits of microseconds (the latency buckets).
    pub p99: Duration,
    /// Seconds unhealthy in a row before stepping down.
    pub window_secs: u32,
    /// Seconds healthy in a row before stepping back up.
    pub recover_secs: u32,
    /// A second with fewer requests of a kind says nothing about it.
    pub min_requests: u64,
}

impl Default for AutoRules {
    fn default() -> Self {
        Self {
            error_rate: 0.2,
            p99: Duration::from_secs(2),
            window_secs: 5,
            recover_secs: 30,
            min_requests: 50,
        }
    }
}

/// The lowest level automatic degradation steps down to.
const FLOOR: Level = Level::PurchasesOnly;

/// The kinds of traffic whose health is watched (the operator's is not).
const WATCHED: [Traffic; 4] = [
    Traffic::Purchase,
    Traffic::OrderWrite,
    Traffic::StoreRead,
    Traffic::MemoryRead,
];

/// One kind of traffic over one second.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Second {
    requests: u64,
    errors: u64,
    slow: u64,
}

impl Second {
    /// The requests of `traffic` in `requests` (a second's), those at
    /// bucket `first_slow` and after being slow. Refusals by the degrade
    /// level are left out: they are the cure, not the symptom. (Their
    /// latency stays in the buckets, but they are answered at once.)
    fn of(requests: &Snapshot, traffic: Traffic, first_slow: usize) -> Self {
        let mut second = Self::default();
        for route in Route::ALL
            .into_iter()
            .filter(|route| Traffic::of(*route) == traffic)
        {
            for (status, _, count) in requests.given(route) {
                second.requests += count;
                if status.is_server_error() {
                    second.errors += count;
                }
            }
            second.slow += requests.latency(route)[first_slow..].iter().sum::<u64>();
        }
        second
    }
}

impl AutoRules {
    /// Whether one kind of traffic was unhealthy over a second.
    fn is_unhealthy(&self, second: Second) -> bool {
        if second.requests == 0 || second.requests < self.min_requests {
            return false;
        }
        let requests = second.requests as f64;
        second.errors as f64 / requests > self.error_rate || second.slow as f64 / requests > 0.01
    }
}

/// Consecutive unhealthy or healthy seconds, and the step they call for.
#[derive(Default)]
struct Streaks {
    unhealthy: u32,
    healthy: u32,
}

impl Streaks {
    /// The automatic level after one more second.
    fn next(&mut self, rules: &AutoRules, unhealthy: bool, level: Level) -> Level {
        if unhealthy {
            self.healthy = 0;
            self.unhealthy += 1;
            if self.unhealthy >= rules.window_secs && level < FLOOR {
                self.unhealthy = 0;
                return level.lower().unwrap_or(level);
            }
        } else {
            self.unhealthy = 0;
            self.healthy += 1;
            if self.healthy >= rules.recover_secs && level > Level::Normal {
                self.healthy = 0;
                return level.higher().unwrap_or(level);
            }
        }
        level
    }
}

/// Judges the engine's health once a second; `None` when automatic
/// degradation is off.
pub fn spawn(app: App) -> Option<JoinHandle<()>> {
    let rules = app.degrade.auto?;
    Some(tokio::spawn(async move {
        let first_slow = latency::first_over(rules.p99);
        let mut streaks = Streaks::default();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        tick.tick().await;
        let mut last = app.requests.snapshot();
        loop {
            tick.tick().await;
            let now = app.requests.snapshot();
            let second = now.since(&last);
            last = now;
            let unhealthy = WATCHED
                .into_iter()
                .any(|traffic| rules.is_unhealthy(Second::of(&second, traffic, first_slow)));
            let level = app.degrade.automatic_level();
            let next = streaks.next(&rules, unhealthy, level);
            if next != level {
                app.degrade.set(By::Automatic, next);
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::requests::{Answer, Requests};
    use axum::http::StatusCode;

    fn rules() -> AutoRules {
        AutoRules {
            error_rate: 0.1,
            p99: Duration::from_millis(100),
            window_secs: 3,
            recover_secs: 5,
            min_requests: 10,
        }
    }

    #[test]
    fn errors_or_slowness_over_the_thresholds_are_unhealthy() {
        let rules = rules();
        let second = |requests, errors, slow| Second {
            requests,
            errors,
            slow,
        };
        assert!(!rules.is_unhealthy(second(100, 10, 1)), "at the thresholds");
        assert!(rules.is_unhealthy(second(100, 11, 0)), "errors");
        assert!(rules.is_unhealthy(second(100, 0, 2)), "p99");
        assert!(!rules.is_unhealthy(second(9, 9, 9)), "too few to judge");
        assert!(!rules.is_unhealthy(second(0, 0, 0)), "idle is healthy");
    }

    #[test]
    fn a_second_sorts_by_traffic_and_leaves_out_the_operator_and_the_cure() {
        let requests = Requests::new();
        let ms = Duration::from_millis;
        let record = |route, status, elapsed| {
            requests.record(route, Answer::Given(status, None), elapsed);
        };
        record(Route::Purchase, StatusCode::ACCEPTED, ms(1));
        let earlier = requests.snapshot();
        let first_slow = latency::first_over(rules().p99);
        record(Route::Purchase, StatusCode::INTERNAL_SERVER_ERROR, ms(1));
        record(Route::PurchaseToken, StatusCode::OK, ms(100));
        record(
            Route::Purchase,
            StatusCode::ACCEPTED,
            Duration::from_nanos(100_000_001),
        );
        record(Route::Stock, StatusCode::OK, Duration::ZERO);
        record(Route::Stock, StatusCode::IM_A_TEAPOT, ms(1));
        record(Route::Metrics, StatusCode::INTERNAL_SERVER_ERROR, ms(900));
        requests.record(Route::ListOrders, Answer::Degraded, ms(1));
        let second = requests.snapshot().since(&earlier);
        let of = |traffic| Second::of(&second, traffic, first_slow);
        assert_eq!(
            of(Traffic::Purchase),
            Second {
                requests: 3,
                errors: 1,
                slow: 1
            },
            "100 ms is not over the 100 ms bound; a nanosecond more is"
        );
        assert_eq!(of(Traffic::MemoryRead).requests, 2);
        assert_eq!(of(Traffic::StoreRead).requests, 0, "degraded");
        assert_eq!(of(Traffic::OrderWrite), Second::default());
        let judged: u64 = WATCHED.into_iter().map(|t| of(t).requests).sum();
        assert_eq!(judged, 5, "the operator's are not watched");
    }

    #[test]
    fn steps_down_after_the_window_and_up_after_recovery_one_level_at_a_time() {
        let rules = rules();
        let mut streaks = Streaks::default();
        let mut level = Level::Normal;
        let mut run = |unhealthy: bool, seconds: u32, level: &mut Level| {
            for _ in 0..seconds {
                *level = streaks.next(&rules, unhealthy, *level);
            }
        };
        run(true, 2, &mut level);
        assert_eq!(level, Level::Normal, "not yet a full window");
        run(true, 1, &mut level);
        assert_eq!(level, Level::ReadsCached);
        run(true, 3, &mut level);
        assert_eq!(level, Level::PurchasesOnly);
        run(true, 30, &mut level);
        assert_eq!(level, Level::PurchasesOnly, "never closes by itself");
        run(false, 4, &mut level);
        assert_eq!(level, Level::PurchasesOnly, "hysteresis");
        run(true, 1, &mut level);
        run(false, 4, &mut level);
        assert_eq!(level, Level::PurchasesOnly, "a relapse restarts recovery");
        run(false, 1, &mut level);
        assert_eq!(level, Level::ReadsCached);
        run(false, 5, &mut level);
        assert_eq!(level, Level::Normal);
        run(false, 50, &mut level);
        assert_eq!(level, Level::Normal);
    }
}
