//! Automatic degradation: every second, look at what the last second's
//! requests of each kind of traffic got. When one kind answers too many
//! 5xx, or its p99 latency is over the threshold, for `window` seconds in a
//! row, step down one level; once every kind has been healthy for
//! `recover` seconds in a row (longer than `window`: hysteresis), step back
//! up one level. Automatic degradation never goes below `purchases_only`:
//! closing the engine is the operator's call.
//!
//! "p99 over the threshold" is counted, not estimated: it is the same as
//! more than 1 % of the requests taking longer than the threshold, so each
//! request costs up to three relaxed atomic adds, into its own thread's
//! tallies ([`PerThread`]), and no histogram.

use super::{By, Level, Traffic};
use crate::App;
use crate::per_thread::PerThread;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

/// When the engine counts as unhealthy, and how long before it steps.
#[derive(Clone, Copy, Debug)]
pub struct AutoRules {
    /// Share of 5xx answers (0..=1) above which a kind of traffic is unhealthy.
    pub error_rate: f64,
    /// p99 latency above which a kind of traffic is unhealthy.
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

/// This second's answers of one kind of traffic, on one thread.
#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    errors: AtomicU64,
    slow: AtomicU64,
}

/// The running tallies, and the streaks that decide the steps.
pub struct Health {
    rules: AutoRules,
    tallies: PerThread<[Tally; WATCHED.len()]>,
}

/// One kind of traffic over one second.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Second {
    requests: u64,
    errors: u64,
    slow: u64,
}

impl Health {
    pub fn new(rules: AutoRules) -> Self {
        Self {
            rules,
            tallies: Default::default(),
        }
    }

    /// Counts one answered request. Refusals by the degrade level itself
    /// are not to be recorded: they are the cure, not the symptom.
    pub fn record(&self, traffic: Traffic, server_error: bool, elapsed: Duration) {
        let Some(index) = WATCHED.iter().position(|kind| *kind == traffic) else {
            return;
        };
        let tally = &self.tallies.mine()[index];
        tally.requests.fetch_add(1, Ordering::Relaxed);
        if server_error {
            tally.errors.fetch_add(1, Ordering::Relaxed);
        }
        if elapsed > self.rules.p99 {
            tally.slow.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Takes the tallies of the second that just ended.
    fn take_second(&self) -> [Second; WATCHED.len()] {
        let mut seconds = [Second::default(); WATCHED.len()];
        for tallies in self.tallies.all() {
            for (second, tally) in seconds.iter_mut().zip(tallies) {
                second.requests += tally.requests.swap(0, Ordering::Relaxed);
                second.errors += tally.errors.swap(0, Ordering::Relaxed);
                second.slow += tally.slow.swap(0, Ordering::Relaxed);
            }
        }
        seconds
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
    app.degrade.health.as_ref()?;
    Some(tokio::spawn(async move {
        let degrade = &app.degrade;
        let Some(health) = &degrade.health else {
            return;
        };
        let mut streaks = Streaks::default();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let unhealthy = health
                .take_second()
                .into_iter()
                .any(|second| health.rules.is_unhealthy(second));
            let level = degrade.automatic_level();
            let next = streaks.next(&health.rules, unhealthy, level);
            if next != level {
                degrade.set(By::Automatic, next);
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn recording_sorts_by_traffic_and_ignores_the_operator() {
        let health = Health::new(rules());
        health.record(Traffic::Purchase, true, Duration::from_millis(1));
        health.record(Traffic::Purchase, false, Duration::from_millis(500));
        health.record(Traffic::MemoryRead, false, Duration::ZERO);
        health.record(Traffic::Operator, true, Duration::from_secs(9));
        let seconds = health.take_second();
        assert_eq!(
            seconds[0],
            Second {
                requests: 2,
                errors: 1,
                slow: 1
            }
        );
        assert_eq!(seconds[3].requests, 1);
        assert_eq!(seconds.iter().map(|s| s.requests).sum::<u64>(), 3);
        assert_eq!(health.take_second(), [Second::default(); 4], "taken");
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
