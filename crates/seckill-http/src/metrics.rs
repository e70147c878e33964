//! Prometheus metrics. Requests and purchases are counted per thread
//! ([`PerThread`]) in fixed tables indexed by route and answer, so counting
//! one costs a few uncontended atomic adds and no lookup by name; a scrape
//! sums the tables and writes their series after the exporter's. Per-sale
//! gauges are set from memory when `/metrics` is scraped, never from the
//! store.

use crate::error::{ApiError, status_of};
use crate::per_thread::PerThread;
use crate::pulse::{Outcome, Pulse};
use crate::route::Route;
use axum::http::StatusCode;
use metrics::{Counter, Key};
use metrics_exporter_prometheus::formatting::{write_metric_line, write_type_line};
use metrics_exporter_prometheus::{LabelSet, Matcher, PrometheusBuilder, PrometheusHandle};
use seckill_core::ErrorCode;
use seckill_engine::Market;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Request latency buckets, in nanoseconds: from a sold-out answer (tens of
/// microseconds) to a commit stuck behind a slow disk.
const LATENCY_BUCKETS_NS: [u64; 16] = [
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    10_000_000_000,
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
/// Latency buckets and the one past the last bound.
const BUCKETS: usize = LATENCY_BUCKETS_NS.len() + 1;
/// Purchase outcomes: refused with each error code, then reserved.
const OUTCOMES: usize = ErrorCode::ALL.len() + 1;
const RESERVED: usize = ErrorCode::ALL.len();
/// The `code` label of an answer without an error code.
const NO_CODE: &str = "none";

/// Set by `--cfg seckill_no_metrics`: requests and purchases are not
/// counted, only to measure what counting them costs
/// (bench/metrics-cost.sh).
const NOT_KEPT: bool = cfg!(seckill_no_metrics);

const REQUESTS: &str = "seckill_http_requests_total";
const LATENCY: &str = "seckill_http_request_duration_seconds";
const PURCHASES: &str = "seckill_purchases_total";

pub struct Metrics {
    prometheus: PrometheusHandle,
    /// `seckill_http_requests_total{route,status,code}`,
    /// `seckill_http_request_duration_seconds{route}` and
    /// `seckill_purchases_total{outcome}`, counted since the start.
    tallies: Box<PerThread<Tally>>,
    /// Requests whose status is outside the tables (rare), by route and
    /// status.
    unusual: Mutex<HashMap<(Route, StatusCode), u64>>,
    /// The same requests, counted for the live dashboard.
    pub pulse: Pulse,
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
        Self {
            tallies: Box::default(),
            unusual: Mutex::default(),
            pulse: Pulse::new(),
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
        if NOT_KEPT {
            return;
        }
        let code = code.filter(|code| status_of(*code) == status);
        let tally = self.tallies.mine();
        let index = route as usize;
        match answer_index(status, code) {
            Some(answer) => add(&tally.answers[index][answer], 1),
            None => *self.unusual().entry((route, status)).or_default() += 1,
        }
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let bucket = LATENCY_BUCKETS_NS.partition_point(|bound| *bound < nanos);
        add(&tally.latency[index][bucket], 1);
        add(&tally.latency_ns[index], nanos);
        self.pulse.record(Outcome::of(route, status, code), elapsed);
    }

    /// Counts a purchase by outcome: reserved (`None`) or refused with `code`.
    pub fn purchase(&self, refused: Option<ErrorCode>) {
        if NOT_KEPT {
            return;
        }
        let outcome = refused.map_or(RESERVED, |code| code as usize);
        add(&self.tallies.mine().purchases[outcome], 1);
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
        if let Some(skew) = market.clock().skew_seconds() {
            metrics::gauge!("seckill_clock_skew_seconds").set(skew);
        }
        if let Some(authority) = market.authority() {
            metrics::counter!("seckill_purchases_unconfirmed_total")
                .absolute(authority.unconfirmed());
        }
        self.upkeep();
        let mut text = self.prometheus.render();
        self.write_tallies(&mut text);
        text
    }

    /// The per-thread tables, summed, in the exposition format. Answers
    /// and routes that never happened are left out, as the exporter leaves
    /// out series never registered; every purchase outcome is listed.
    fn write_tallies(&self, text: &mut String) {
        let total = Tally::default();
        for tally in self.tallies.all() {
            total.add(tally);
        }
        write_type_line(text, REQUESTS, None, None, "counter");
        for route in Route::ALL {
            let answers = &total.answers[route as usize];
            for (answer, count) in answers.iter().enumerate() {
                let (status, code) = answer_of(answer);
                write_requests(text, route, status, code, get(count));
            }
        }
        for ((route, status), count) in self.unusual().iter() {
            write_requests(text, *route, *status, None, *count);
        }
        write_type_line(text, LATENCY, None, None, "histogram");
        for route in Route::ALL {
            let index = route as usize;
            let buckets = &total.latency[index];
            let count: u64 = buckets.iter().map(get).sum();
            if count == 0 {
                continue;
            }
            let labels = label_set(&[("route", route.label().into())]);
            let mut at_or_under = 0;
            for (bound, in_bucket) in LATENCY_BUCKETS_NS.iter().zip(buckets) {
                at_or_under += get(in_bucket);
                let le = Some(("le", *bound as f64 / 1e9));
                write_metric_line(
                    text,
                    LATENCY,
                    Some("bucket"),
                    &labels,
                    le,
                    at_or_under,
                    None,
                );
            }
            let le = Some(("le", "+Inf"));
            write_metric_line(text, LATENCY, Some("bucket"), &labels, le, count, None);
            let sum = get(&total.latency_ns[index]) as f64 / 1e9;
            write_metric_line::<&str, f64>(text, LATENCY, Some("sum"), &labels, None, sum, None);
            write_metric_line::<&str, u64>(
                text,
                LATENCY,
                Some("count"),
                &labels,
                None,
                count,
                None,
            );
        }
        write_type_line(text, PURCHASES, None, None, "counter");
        for (outcome, count) in total.purchases.iter().enumerate() {
            let label = ErrorCode::ALL
                .get(outcome)
                .map_or("reserved", |code| code.as_str());
            let labels = label_set(&[("outcome", label.into())]);
            write_metric_line::<&str, u64>(text, PURCHASES, None, &labels, None, get(count), None);
        }
    }

    fn unusual(&self) -> std::sync::MutexGuard<'_, HashMap<(Route, StatusCode), u64>> {
        self.unusual
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
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

/// One thread's requests and purchases since the start.
struct Tally {
    /// By route and answer ([`answer_index`]).
    answers: [[AtomicU64; ANSWERS]; ROUTES],
    /// By route and latency bucket: how many fell at or under each bound
    /// and above the one before (the last: above every bound).
    latency: [[AtomicU64; BUCKETS]; ROUTES],
    /// By route: the latencies added up, in nanoseconds.
    latency_ns: [AtomicU64; ROUTES],
    /// By outcome: refused with each error code, then reserved.
    purchases: [AtomicU64; OUTCOMES],
}

impl Default for Tally {
    fn default() -> Self {
        Self {
            answers: [const { [const { AtomicU64::new(0) }; ANSWERS] }; ROUTES],
            latency: [const { [const { AtomicU64::new(0) }; BUCKETS] }; ROUTES],
            latency_ns: [const { AtomicU64::new(0) }; ROUTES],
            purchases: [const { AtomicU64::new(0) }; OUTCOMES],
        }
    }
}

impl Tally {
    /// Adds `other`'s counts to these.
    fn add(&self, other: &Self) {
        for (sum, cell) in self.cells().zip(other.cells()) {
            add(sum, get(cell));
        }
    }

    fn cells(&self) -> impl Iterator<Item = &AtomicU64> {
        let answers = self.answers.iter().flatten();
        let latency = self.latency.iter().flatten();
        answers
            .chain(latency)
            .chain(&self.latency_ns)
            .chain(&self.purchases)
    }
}

/// Relaxed: a count read by a scrape needs no ordering with anything else.
fn add(cell: &AtomicU64, n: u64) {
    cell.fetch_add(n, Ordering::Relaxed);
}

fn get(cell: &AtomicU64) -> u64 {
    cell.load(Ordering::Relaxed)
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

/// The status and code counted at `answer` in the table.
fn answer_of(answer: usize) -> (StatusCode, Option<ErrorCode>) {
    match ErrorCode::ALL.get(answer) {
        Some(code) => (status_of(*code), Some(*code)),
        None => (SUCCESSES[answer - ErrorCode::ALL.len()], None),
    }
}

/// One `seckill_http_requests_total` sample, unless it is zero.
fn write_requests(
    text: &mut String,
    route: Route,
    status: StatusCode,
    code: Option<ErrorCode>,
    count: u64,
) {
    if count == 0 {
        return;
    }
    let labels = label_set(&[
        ("route", route.label().into()),
        ("status", status.as_u16().to_string()),
        ("code", code.map_or(NO_CODE, ErrorCode::as_str).into()),
    ]);
    write_metric_line::<&str, u64>(text, REQUESTS, None, &labels, None, count, None);
}

/// `labels` in the exporter's own form, so our samples are written and
/// escaped as its are.
fn label_set(labels: &[(&'static str, String)]) -> LabelSet {
    // Only the key's labels are read: the name is written by the caller.
    LabelSet::from_key_and_global(&Key::from_parts("", labels), &Default::default())
}

/// The process-wide recorder, installed on first use.
fn recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("seckill_writer_commit_seconds".into()),
                    &COMMIT_BUCKETS,
                )
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
        for answer in 0..ANSWERS {
            let (status, code) = answer_of(answer);
            assert_eq!(answer_index(status, code), Some(answer));
        }
    }

    #[test]
    fn the_exposition_sums_every_thread() {
        let metrics = Metrics::new();
        let on_another_thread = |route, status, code, millis| {
            let metrics = &metrics;
            std::thread::scope(|scope| {
                scope.spawn(move || {
                    metrics.request(route, status, code, Duration::from_millis(millis));
                    metrics.purchase(code);
                });
            });
        };
        let sold_out = Some(ErrorCode::SoldOut);
        on_another_thread(Route::Purchase, StatusCode::CONFLICT, sold_out, 1);
        on_another_thread(Route::Purchase, StatusCode::CONFLICT, sold_out, 3);
        on_another_thread(Route::Stock, StatusCode::IM_A_TEAPOT, None, 20_000);
        let mut text = String::new();
        metrics.write_tallies(&mut text);
        for line in [
            r#"seckill_http_requests_total{route="purchase",status="409",code="sold_out"} 2"#,
            r#"seckill_http_requests_total{route="stock",status="418",code="none"} 1"#,
            r#"seckill_http_request_duration_seconds_bucket{route="purchase",le="0.001"} 1"#,
            r#"seckill_http_request_duration_seconds_bucket{route="purchase",le="0.0025"} 1"#,
            r#"seckill_http_request_duration_seconds_bucket{route="purchase",le="0.005"} 2"#,
            r#"seckill_http_request_duration_seconds_bucket{route="purchase",le="+Inf"} 2"#,
            r#"seckill_http_request_duration_seconds_sum{route="purchase"} 0.004"#,
            r#"seckill_http_request_duration_seconds_count{route="purchase"} 2"#,
            r#"seckill_http_request_duration_seconds_bucket{route="stock",le="10"} 0"#,
            r#"seckill_http_request_duration_seconds_bucket{route="stock",le="+Inf"} 1"#,
            r#"seckill_purchases_total{outcome="sold_out"} 2"#,
            r#"seckill_purchases_total{outcome="reserved"} 1"#,
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from\n{text}"
            );
        }
        assert!(!text.contains(r#"route="get_sale""#), "{text}");
    }
}
