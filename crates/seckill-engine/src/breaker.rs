//! A circuit breaker: after `failures` failed calls in a row to a
//! dependency, stop calling it for `open_for` and fail at once instead
//! (503, I7) — callers get an answer in microseconds rather than after the
//! dependency's own timeout, and the dependency gets room to recover. Then
//! one probe call is let through (half-open): if it succeeds the breaker
//! closes, if it fails it opens again.
//!
//! The closed state costs one atomic load per call and one atomic store
//! after a failure streak ends; no lock anywhere.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// When a breaker opens and for how long.
#[derive(Clone, Copy, Debug)]
pub struct BreakerRules {
    /// Failed calls in a row that open the breaker.
    pub failures: u32,
    /// How long an open breaker refuses before letting a probe through.
    pub open_for: Duration,
}

pub const DEFAULT_BREAKER_FAILURES: u32 = 5;
pub const DEFAULT_BREAKER_OPEN_MS: u64 = 5_000;

impl Default for BreakerRules {
    fn default() -> Self {
        Self {
            failures: DEFAULT_BREAKER_FAILURES,
            open_for: Duration::from_millis(DEFAULT_BREAKER_OPEN_MS),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    Closed = 0,
    /// One probe is in flight; everything else is refused.
    HalfOpen = 1,
    Open = 2,
}

impl State {
    fn from_u8(value: u8) -> Self {
        match value {
            0 => Self::Closed,
            1 => Self::HalfOpen,
            _ => Self::Open,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::HalfOpen => "half_open",
            Self::Open => "open",
        }
    }
}

/// The breaker of one dependency, shown as the gauge
/// `seckill_breaker_state{dependency}` (0 closed, 1 half-open, 2 open).
pub struct Breaker {
    dependency: &'static str,
    rules: BreakerRules,
    state: AtomicU8,
    failures_in_a_row: AtomicU32,
    /// When it last opened, in ms since `epoch`.
    opened_at_ms: AtomicU64,
    epoch: Instant,
    gauge: metrics::Gauge,
    opened: metrics::Counter,
}

/// The breaker is open: the call was not made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused;

/// Leave to make one call; report how it went with [`Call::succeeded`] or
/// [`Call::failed`]. A probe dropped without a report counts as failed, so
/// the breaker cannot stay half-open forever.
#[must_use]
pub struct Call {
    breaker: Arc<Breaker>,
    probe: bool,
}

impl Breaker {
    pub fn new(dependency: &'static str, rules: BreakerRules) -> Self {
        let gauge = metrics::gauge!("seckill_breaker_state", "dependency" => dependency);
        gauge.set(0.0);
        Self {
            dependency,
            rules,
            state: AtomicU8::new(State::Closed as u8),
            failures_in_a_row: AtomicU32::new(0),
            opened_at_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            gauge,
            opened: metrics::counter!("seckill_breaker_opened_total", "dependency" => dependency),
        }
    }

    pub fn state(&self) -> State {
        State::from_u8(self.state.load(Ordering::Acquire))
    }

    /// Leave to call the dependency now, or [`Refused`] while open (and
    /// while another call is the probe).
    pub fn call(self: &Arc<Self>) -> Result<Call, Refused> {
        self.call_at(self.now_ms())
    }

    fn call_at(self: &Arc<Self>, now_ms: u64) -> Result<Call, Refused> {
        match self.state() {
            State::Closed => Ok(Call {
                breaker: Arc::clone(self),
                probe: false,
            }),
            State::HalfOpen => Err(Refused),
            State::Open => {
                let reopen_at = self
                    .opened_at_ms
                    .load(Ordering::Acquire)
                    .saturating_add(self.rules.open_for.as_millis() as u64);
                let probe = now_ms >= reopen_at && self.switch(State::Open, State::HalfOpen);
                if probe {
                    Ok(Call {
                        breaker: Arc::clone(self),
                        probe: true,
                    })
                } else {
                    Err(Refused)
                }
            }
        }
    }

    fn succeeded(&self, probe: bool) {
        if probe {
            self.failures_in_a_row.store(0, Ordering::Release);
            if self.switch(State::HalfOpen, State::Closed) {
                tracing::info!(
                    dependency = self.dependency,
                    "breaker closed: probe succeeded"
                );
            }
        } else if self.failures_in_a_row.load(Ordering::Relaxed) != 0 {
            self.failures_in_a_row.store(0, Ordering::Release);
        }
    }

    fn failed(&self, probe: bool, now_ms: u64) {
        let open = if probe {
            true
        } else {
            let in_a_row = self.failures_in_a_row.fetch_add(1, Ordering::AcqRel) + 1;
            in_a_row >= self.rules.failures
        };
        if !open {
            return;
        }
        self.opened_at_ms.store(now_ms, Ordering::Release);
        let from = if probe {
            State::HalfOpen
        } else {
            State::Closed
        };
        if self.switch(from, State::Open) {
            self.opened.increment(1);
            tracing::warn!(
                dependency = self.dependency,
                open_for_ms = self.rules.open_for.as_millis() as u64,
                "breaker opened: calls fail at once until a probe succeeds"
            );
        }
    }

    fn switch(&self, from: State, to: State) -> bool {
        let switched = self
            .state
            .compare_exchange(from as u8, to as u8, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if switched {
            self.gauge.set(f64::from(to as u8));
        }
        switched
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }
}

impl Call {
    pub fn succeeded(mut self) {
        self.breaker.succeeded(self.probe);
        self.probe = false;
    }

    pub fn failed(mut self) {
        self.breaker.failed(self.probe, self.breaker.now_ms());
        self.probe = false;
    }

    /// Reports `result`: any error counts as a failure of the dependency.
    pub fn report<T, E>(self, result: &Result<T, E>) {
        match result {
            Ok(_) => self.succeeded(),
            Err(_) => self.failed(),
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        if self.probe {
            self.breaker.failed(true, self.breaker.now_ms());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Arc<Breaker> {
        Arc::new(Breaker::new(
            "test",
            BreakerRules {
                failures: 3,
                open_for: Duration::from_millis(1_000),
            },
        ))
    }

    /// A call at `now_ms` that fails at `failed_ms`.
    fn fail_at(breaker: &Arc<Breaker>, now_ms: u64, failed_ms: u64) {
        let mut call = breaker.call_at(now_ms).expect("a call");
        breaker.failed(call.probe, failed_ms);
        call.probe = false;
    }

    fn fail(breaker: &Arc<Breaker>, now_ms: u64) {
        fail_at(breaker, now_ms, now_ms);
    }

    #[test]
    fn opens_after_failures_in_a_row_only() {
        let breaker = breaker();
        fail(&breaker, 0);
        fail(&breaker, 0);
        breaker.call_at(0).unwrap().succeeded();
        fail(&breaker, 0);
        fail(&breaker, 0);
        assert_eq!(breaker.state(), State::Closed, "the streak was broken");
        fail(&breaker, 10);
        assert_eq!(breaker.state(), State::Open);
        assert_eq!(breaker.call_at(500).err(), Some(Refused));
    }

    #[test]
    fn one_probe_after_the_open_period_closes_or_reopens() {
        let breaker = breaker();
        for _ in 0..3 {
            fail(&breaker, 0);
        }
        assert!(breaker.call_at(999).is_err());
        let mut probe = breaker.call_at(1_000).expect("the probe");
        assert_eq!(breaker.state(), State::HalfOpen);
        assert!(breaker.call_at(1_001).is_err(), "one probe at a time");
        breaker.failed(probe.probe, 1_100);
        probe.probe = false;
        assert_eq!(breaker.state(), State::Open);
        assert!(breaker.call_at(2_000).is_err(), "open again from 1,100");
        breaker.call_at(2_100).expect("the next probe").succeeded();
        assert_eq!(breaker.state(), State::Closed);
        fail(&breaker, 2_200);
        assert_eq!(breaker.state(), State::Closed, "the count starts over");
    }

    #[test]
    fn a_dropped_probe_counts_as_failed() {
        let breaker = breaker();
        for _ in 0..3 {
            fail(&breaker, 0);
        }
        drop(breaker.call_at(1_000).expect("the probe"));
        assert_eq!(breaker.state(), State::Open);
    }
}
