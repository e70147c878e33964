//! The engine's pulse for the live dashboard: requests counted by outcome
//! and their latency in an HdrHistogram, read and reset once a second by
//! the dashboard's sampler. Prometheus has the same requests by route; this
//! is the small, windowed view a person watches during a sale.
//!
//! Kept per thread ([`PerThread`]): each worker thread records into its
//! own slot under a lock nobody else takes between samples.

use crate::per_thread::PerThread;
use crate::route::Route;
use axum::http::StatusCode;
use hdrhistogram::Histogram;
use seckill_core::ErrorCode;
use serde::Serialize;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// What became of a request, as the dashboard tells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A purchase answered 202.
    Reserved,
    SoldOut,
    /// Any other 4xx: limit reached, not started, bad input, rate limited…
    Refused,
    /// 503: shed, timed out, degraded, store unavailable.
    Unavailable,
    /// Any other 5xx.
    Error,
    /// Any other answer: reads, payments, operations.
    Ok,
}

impl Outcome {
    const ALL: [Self; 6] = [
        Self::Reserved,
        Self::SoldOut,
        Self::Refused,
        Self::Unavailable,
        Self::Error,
        Self::Ok,
    ];

    pub fn of(route: Route, status: StatusCode, code: Option<ErrorCode>) -> Self {
        match code {
            Some(ErrorCode::SoldOut) => Self::SoldOut,
            _ if route == Route::Purchase && status == StatusCode::ACCEPTED => Self::Reserved,
            _ if status == StatusCode::SERVICE_UNAVAILABLE => Self::Unavailable,
            _ if status.is_server_error() => Self::Error,
            _ if status.is_client_error() => Self::Refused,
            _ => Self::Ok,
        }
    }
}

/// Latencies above this are recorded as this (an hour, in microseconds).
const MAX_LATENCY_US: u64 = 3_600_000_000;

pub struct Pulse {
    recorded: PerThread<Mutex<Recorded>>,
}

/// One thread's requests.
struct Recorded {
    counts: [u64; Outcome::ALL.len()],
    latency_us: Histogram<u64>,
}

/// Requests per outcome since the engine started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Counts {
    pub reserved: u64,
    pub sold_out: u64,
    pub refused: u64,
    pub unavailable: u64,
    pub error: u64,
    pub ok: u64,
}

impl Counts {
    pub fn total(&self) -> u64 {
        self.reserved + self.sold_out + self.refused + self.unavailable + self.error + self.ok
    }

    /// The rates, rounded, from `earlier` to these counts `seconds` later.
    pub fn per_second_since(&self, earlier: &Self, seconds: f64) -> Self {
        let rate = |now: u64, then: u64| {
            let seconds = seconds.max(f64::EPSILON);
            (now.saturating_sub(then) as f64 / seconds).round() as u64
        };
        Self {
            reserved: rate(self.reserved, earlier.reserved),
            sold_out: rate(self.sold_out, earlier.sold_out),
            refused: rate(self.refused, earlier.refused),
            unavailable: rate(self.unavailable, earlier.unavailable),
            error: rate(self.error, earlier.error),
            ok: rate(self.ok, earlier.ok),
        }
    }
}

/// Latency of the requests answered in one window, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Pulse {
    pub fn new() -> Self {
        Self {
            recorded: PerThread::new(|| {
                Mutex::new(Recorded {
                    counts: [0; Outcome::ALL.len()],
                    latency_us: new_histogram(),
                })
            }),
        }
    }

    pub fn record(&self, outcome: Outcome, elapsed: Duration) {
        let micros = (elapsed.as_micros() as u64).clamp(1, MAX_LATENCY_US);
        let mut recorded = lock(self.recorded.mine());
        recorded.counts[outcome as usize] += 1;
        recorded.latency_us.saturating_record(micros);
    }

    pub fn counts(&self) -> Counts {
        let mut total = [0; Outcome::ALL.len()];
        for recorded in self.recorded.all() {
            let recorded = lock(recorded);
            total
                .iter_mut()
                .zip(recorded.counts)
                .for_each(|(t, c)| *t += c);
        }
        let count = |outcome: Outcome| total[outcome as usize];
        Counts {
            reserved: count(Outcome::Reserved),
            sold_out: count(Outcome::SoldOut),
            refused: count(Outcome::Refused),
            unavailable: count(Outcome::Unavailable),
            error: count(Outcome::Error),
            ok: count(Outcome::Ok),
        }
    }

    /// The latency since the last call, and a fresh window.
    pub fn take_latency(&self) -> Latency {
        let mut window = new_histogram();
        for recorded in self.recorded.all() {
            let mut recorded = lock(recorded);
            // Same bounds, so adding never fails.
            let _ = window.add(&recorded.latency_us);
            recorded.latency_us.reset();
        }
        if window.is_empty() {
            return Latency::default();
        }
        let ms = |micros: u64| micros as f64 / 1000.0;
        Latency {
            p50: ms(window.value_at_quantile(0.5)),
            p99: ms(window.value_at_quantile(0.99)),
            max: ms(window.max()),
        }
    }
}

fn lock(recorded: &Mutex<Recorded>) -> MutexGuard<'_, Recorded> {
    recorded
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Default for Pulse {
    fn default() -> Self {
        Self::new()
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 2).expect("valid histogram bounds")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::status_of;

    #[test]
    fn outcomes_follow_route_status_and_code() {
        let of = Outcome::of;
        assert_eq!(
            of(Route::Purchase, StatusCode::ACCEPTED, None),
            Outcome::Reserved
        );
        let sold_out = Some(ErrorCode::SoldOut);
        assert_eq!(
            of(Route::Purchase, status_of(ErrorCode::SoldOut), sold_out),
            Outcome::SoldOut
        );
        let limit = Some(ErrorCode::LimitReached);
        assert_eq!(
            of(Route::Purchase, StatusCode::CONFLICT, limit),
            Outcome::Refused
        );
        assert_eq!(
            of(Route::Purchase, StatusCode::SERVICE_UNAVAILABLE, None),
            Outcome::Unavailable
        );
        assert_eq!(
            of(Route::GetSale, StatusCode::INTERNAL_SERVER_ERROR, None),
            Outcome::Error
        );
        assert_eq!(of(Route::Stock, StatusCode::OK, None), Outcome::Ok);
    }

    #[test]
    fn a_window_holds_what_was_recorded_since_the_last_one() {
        let pulse = Pulse::new();
        for millis in 1..=100 {
            pulse.record(Outcome::Ok, Duration::from_millis(millis));
        }
        pulse.record(Outcome::SoldOut, Duration::from_millis(1));
        let latency = pulse.take_latency();
        assert!((49.0..=52.0).contains(&latency.p50), "{latency:?}");
        assert!((99.0..=101.0).contains(&latency.p99), "{latency:?}");
        assert_eq!(pulse.take_latency(), Latency::default());
        assert_eq!(pulse.counts().ok, 100);
        assert_eq!(pulse.counts().total(), 101);
    }
}
