//! Load shedding: past a cap on requests in flight, answer 503 at once
//! instead of queueing without bound; and a time limit per request, so a
//! request stuck behind a slow client body (408) or a stalled store (503)
//! gives its place back. Health, readiness, metrics and the dashboard are exempt:
//! operators must be able to see an overloaded engine.

use crate::route::Route;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The engine's limits; the defaults leave a benchmark crowd of distinct
/// users untouched.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_in_flight: usize,
    pub request_timeout: Duration,
}

pub const DEFAULT_MAX_IN_FLIGHT: usize = 10_000;
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 10_000;

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            request_timeout: Duration::from_millis(DEFAULT_REQUEST_TIMEOUT_MS),
        }
    }
}

/// Requests being handled now, against the cap.
pub struct InFlight {
    count: AtomicUsize,
    max: usize,
}

/// A place among the requests in flight, given back when dropped.
pub struct Admitted<'a>(&'a AtomicUsize);

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A place held for as long as its owner lives (an event stream), given
/// back when dropped.
pub struct Held(Arc<InFlight>);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::Relaxed);
    }
}

impl InFlight {
    pub fn new(max: usize) -> Self {
        Self {
            count: AtomicUsize::new(0),
            max,
        }
    }

    /// Requests in flight now.
    pub fn current(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Whether no place is free: a request answered at once is shed then.
    pub fn is_full(&self) -> bool {
        self.current() >= self.max
    }

    /// A place if one is free, else `None`: the request is to be shed.
    pub fn admit(&self) -> Option<Admitted<'_>> {
        if self.count.fetch_add(1, Ordering::Relaxed) >= self.max {
            self.count.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(Admitted(&self.count))
    }

    /// [`InFlight::admit`], for a place that outlives the borrow.
    pub fn hold(self: &Arc<Self>) -> Option<Held> {
        std::mem::forget(self.admit()?);
        Some(Held(Arc::clone(self)))
    }
}

/// Routes never shed nor timed out: the operator's view of the engine (the
/// dashboard's event stream lasts as long as the page is open), and the
/// degrade switch, which an overloaded engine needs most.
pub fn is_exempt(route: Route) -> bool {
    matches!(
        route,
        Route::Healthz
            | Route::Readyz
            | Route::Metrics
            | Route::Dashboard
            | Route::DashboardEvents
            | Route::Degrade
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_up_to_the_cap_and_frees_places_on_drop() {
        let in_flight = InFlight::new(2);
        let first = in_flight.admit().expect("1 of 2");
        let second = in_flight.admit().expect("2 of 2");
        assert!(in_flight.admit().is_none(), "the third is shed");
        drop(first);
        let third = in_flight.admit().expect("a place came free");
        assert!(in_flight.admit().is_none());
        drop((second, third));
        assert_eq!(in_flight.count.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_held_place_counts_until_dropped() {
        let streams = Arc::new(InFlight::new(1));
        let held = streams.hold().expect("1 of 1");
        assert!(streams.hold().is_none(), "the second is refused");
        drop(held);
        assert!(streams.hold().is_some(), "the place came free");
        assert_eq!(streams.current(), 0);
    }
}
