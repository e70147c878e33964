//! The engine's pulse for the live dashboard: requests by outcome and
//! their latency over one interval, the difference of two snapshots of the
//! engine's tally of answered requests ([`Snapshot::since`]). Prometheus
//! has the same requests by route; this is the small view a person watches
//! during a sale.

use crate::latency;
use crate::requests::Snapshot;
use crate::route::Route;
use axum::http::StatusCode;
use seckill_core::ErrorCode;
use serde::Serialize;
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

/// Requests per outcome in a snapshot: since the engine started, or
/// between two moments.
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
    pub fn of(requests: &Snapshot) -> Self {
        let mut total = [0; Outcome::ALL.len()];
        for route in Route::ALL {
            for (status, code, count) in requests.given(route) {
                total[Outcome::of(route, status, code) as usize] += count;
            }
            total[Outcome::Unavailable as usize] += requests.degraded(route);
        }
        let count = |outcome: Outcome| total[outcome as usize];
        Self {
            reserved: count(Outcome::Reserved),
            sold_out: count(Outcome::SoldOut),
            refused: count(Outcome::Refused),
            unavailable: count(Outcome::Unavailable),
            error: count(Outcome::Error),
            ok: count(Outcome::Ok),
        }
    }

    pub fn total(&self) -> u64 {
        self.reserved + self.sold_out + self.refused + self.unavailable + self.error + self.ok
    }

    /// These counts over `seconds` as rates, rounded.
    pub fn per_second(&self, seconds: f64) -> Self {
        let rate = |count: u64| {
            let seconds = seconds.max(f64::EPSILON);
            (count as f64 / seconds).round() as u64
        };
        Self {
            reserved: rate(self.reserved),
            sold_out: rate(self.sold_out),
            refused: rate(self.refused),
            unavailable: rate(self.unavailable),
            error: rate(self.error),
            ok: rate(self.ok),
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

impl Latency {
    /// Of the requests in `requests` (an interval's), in milliseconds to
    /// the bound of their bucket; zeros when there were none.
    pub fn of(requests: &Snapshot) -> Self {
        let counts = requests.all_latency();
        let ms = |latency: Option<Duration>| latency.map_or(0.0, |l| l.as_secs_f64() * 1000.0);
        Self {
            p50: ms(latency::quantile(&counts, 0.5)),
            p99: ms(latency::quantile(&counts, 0.99)),
            max: ms(latency::max(&counts)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::status_of;
    use crate::requests::{Answer, Requests};

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
    fn an_interval_holds_what_was_answered_in_it() {
        let requests = Requests::new();
        let ms = Duration::from_millis;
        let ok = Answer::Given(StatusCode::OK, None);
        requests.record(Route::Stock, ok, ms(500));
        let earlier = requests.snapshot();
        for millis in 1..=100 {
            requests.record(Route::Stock, ok, ms(millis));
        }
        let sold_out = Answer::Given(StatusCode::CONFLICT, Some(ErrorCode::SoldOut));
        requests.record(Route::Purchase, sold_out, ms(1));
        requests.record(Route::Purchase, Answer::Degraded, ms(1));
        let later = requests.snapshot();

        let interval = later.since(&earlier);
        let latency = Latency::of(&interval);
        assert_eq!(latency.p50, 49.0, "three at 1 ms: {latency:?}");
        assert_eq!(latency.p99, 99.0, "{latency:?}");
        assert_eq!(latency.max, 100.0, "the 500 ms came before: {latency:?}");
        assert_eq!(Latency::of(&later.since(&later)), Latency::default());
        let counts = Counts::of(&interval);
        assert_eq!(
            (counts.ok, counts.sold_out, counts.unavailable),
            (100, 1, 1)
        );
        assert_eq!(counts.total(), 102);
        assert_eq!(Counts::of(&later).ok, 101, "since the start");
        assert_eq!(counts.per_second(0.5).ok, 200);
    }
}
