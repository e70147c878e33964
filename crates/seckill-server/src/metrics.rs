//! Prometheus metrics. Handles for the hot path are looked up once (a fixed
//! table indexed by route and answer), so counting a request costs a few
//! atomic operations and no lookup by name. Per-sale gauges are set from
//! memory when `/metrics` is scraped, never from the store.

use crate::error::{ApiError, status_of};
use crate::market::Market;
use crate::pulse::{Outcome, Pulse};
use crate::route::Route;
use axum::http::StatusCode;
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use seckill_core::ErrorCode;
use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

/// Request latency buckets, in seconds: from a sold-out answer (tens of
/// microseconds) to a commit stuck behind a slow disk.
const LATENCY_BUCKETS: [f64; 16] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 10.0,
];
/// Writer commits (one fsync each), in seconds.
const COMMIT_BUCKETS: [f64; 12] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];
/// Commands per writer batch (at most 4,096).
const BATCH_BUCKETS: [f64; 10] = [
    1.0, 2.0, 4.0, 16.0, 64.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0,
];

/// The successful statuses counted without a lookup; errors are counted by
/// their code, whose status follows from it.
const SUCCESSES: [StatusCode; 5] = [
    StatusCode::OK,
    StatusCode::CREATED,
    StatusCode::ACCEPTED,
    StatusCode::NO_CONTENT,
    StatusCode::NOT_MODIFIED,
];
const ANSWERS: usize = ErrorCode::ALL.len() + SUCCESSES.len();
const ROUTES: usize = Route::ALL.len();
/// The `code` label of an answer without an error code.
const NO_CODE: &str = "none";

pub struct Metrics {
    prometheus: PrometheusHandle,
    /// `seckill_http_requests_total{route,status,code}`, registered on first use.
    requests: [[OnceLock<Counter>; ANSWERS]; ROUTES],
    /// `seckill_http_request_duration_seconds{route}`, registered on first use.
    latency: [OnceLock<Histogram>; ROUTES],
    /// The same requests, counted for the live dashboard.
    pub pulse: Pulse,
    reserved: Counter,
    refused: HashMap<ErrorCode, Counter>,
    pub paid: Counter,
    pub cancelled: Counter,
    pub expired: Counter,
    /// Requests answered 503 because too many were in flight.
    pub shed_in_flight: Counter,
    /// Requests answered 503 because they ran past the time limit.
    pub shed_timeout: Counter,
}

impl Metrics {
    pub fn new() -> Self {
        let prometheus = recorder();
        // Counted by the store's writer when a batch fails; registered here
        // so that `/metrics` shows the zero before the first failure.
        let _ = metrics::counter!("seckill_writer_failed_batches_total");
        let outcome =
            |label: &'static str| metrics::counter!("seckill_purchases_total", "outcome" => label);
        Self {
            requests: [const { [const { OnceLock::new() }; ANSWERS] }; ROUTES],
            latency: [const { OnceLock::new() }; ROUTES],
            pulse: Pulse::new(),
            reserved: outcome("reserved"),
            refused: ErrorCode::ALL
                .into_iter()
                .map(|code| (code, outcome(code.as_str())))
                .collect(),
            paid: metrics::counter!("seckill_orders_paid_total"),
            cancelled: metrics::counter!("seckill_orders_cancelled_total"),
            expired: metrics::counter!("seckill_orders_expired_total"),
            shed_in_flight: metrics::counter!("seckill_shed_requests_total", "reason" => "in_flight"),
            shed_timeout: metrics::counter!("seckill_shed_requests_total", "reason" => "timeout"),
            prometheus,
        }
    }

    /// Counts one answered request: by route, status and error code, its
    /// latency, and its outcome for the dashboard.
    pub fn request(
        &self,
        route: Route,
        status: StatusCode,
        code: Option<ErrorCode>,
        elapsed: Duration,
    ) {
        let code = code.filter(|code| status_of(*code) == status);
        let index = route as usize;
        match answer_index(status, code) {
            Some(answer) => self.requests[index][answer]
                .get_or_init(|| requests_counter(route, status, code))
                .increment(1),
            // A status outside the table: rare, so looked up by name.
            None => requests_counter(route, status, code).increment(1),
        }
        self.latency[index]
            .get_or_init(|| {
                metrics::histogram!("seckill_http_request_duration_seconds", "route" => route.label())
            })
            .record(elapsed.as_secs_f64());
        self.pulse.record(Outcome::of(route, status, code), elapsed);
    }

    /// Counts a purchase by outcome: reserved (`None`) or refused with `code`.
    pub fn purchase(&self, refused: Option<ErrorCode>) {
        match refused {
            None => self.reserved.increment(1),
            Some(code) => {
                if let Some(counter) = self.refused.get(&code) {
                    counter.increment(1);
                }
            }
        }
    }

    /// Counts a refused purchase and hands the error on.
    pub fn refused(&self, error: ApiError) -> ApiError {
        self.purchase(Some(error.code));
        error
    }

    /// The exposition: per-sale gauges set from memory first.
    pub fn render(&self, market: &Market, in_flight: usize) -> String {
        for sale in market.all() {
            let units = sale.units();
            let id = sale.sale.id.to_string();
            for (name, value) in [
                ("seckill_sale_stock", units.stock),
                ("seckill_sale_remaining", units.remaining),
                ("seckill_sale_reserved", units.reserved),
                ("seckill_sale_paid", units.paid),
                ("seckill_sale_expired", units.expired),
                ("seckill_sale_cancelled", units.cancelled),
            ] {
                metrics::gauge!(name, "sale_id" => id.clone()).set(value as f64);
            }
        }
        metrics::gauge!("seckill_http_requests_in_flight").set(in_flight as f64);
        self.upkeep();
        self.prometheus.render()
    }

    /// Folds recorded histogram samples into their buckets; without it they
    /// pile up in memory between scrapes.
    pub fn upkeep(&self) {
        self.prometheus.run_upkeep();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Where an answer is counted in the table: errors by their code, the
/// usual successes after them; `None` for anything else.
fn answer_index(status: StatusCode, code: Option<ErrorCode>) -> Option<usize> {
    match code {
        Some(code) => Some(code as usize),
        None => SUCCESSES
            .iter()
            .position(|success| *success == status)
            .map(|at| ErrorCode::ALL.len() + at),
    }
}

fn requests_counter(route: Route, status: StatusCode, code: Option<ErrorCode>) -> Counter {
    metrics::counter!(
        "seckill_http_requests_total",
        "route" => route.label(),
        "status" => status.as_u16().to_string(),
        "code" => code.map_or(NO_CODE, ErrorCode::as_str),
    )
}

/// The process-wide recorder, installed on first use.
fn recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("seckill_http_request_duration_seconds".into()),
                    &LATENCY_BUCKETS,
                )
                .and_then(|builder| {
                    builder.set_buckets_for_metric(
                        Matcher::Full("seckill_writer_commit_seconds".into()),
                        &COMMIT_BUCKETS,
                    )
                })
                .and_then(|builder| {
                    builder.set_buckets_for_metric(
                        Matcher::Full("seckill_writer_batch_size".into()),
                        &BATCH_BUCKETS,
                    )
                })
                .expect("the bucket lists are not empty")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
            }
            handle
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_indexed_by_declaration_order() {
        for (at, code) in ErrorCode::ALL.into_iter().enumerate() {
            assert_eq!(code as usize, at, "{code:?}");
        }
        for (at, route) in Route::ALL.into_iter().enumerate() {
            assert_eq!(route as usize, at, "{route:?}");
        }
    }

    #[test]
    fn answers_have_one_place_each() {
        assert_eq!(
            answer_index(StatusCode::CONFLICT, Some(ErrorCode::SoldOut)),
            Some(ErrorCode::SoldOut as usize)
        );
        assert_eq!(
            answer_index(StatusCode::NOT_MODIFIED, None),
            Some(ErrorCode::ALL.len() + 4)
        );
        assert_eq!(answer_index(StatusCode::IM_A_TEAPOT, None), None);
    }
}
