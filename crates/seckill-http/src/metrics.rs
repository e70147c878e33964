//! Prometheus metrics. Requests are written from the engine's one tally of
//! answered requests ([`Requests`]) and purchases from their own per-thread
//! table ([`PerThread`]), indexed by outcome, so counting one costs an
//! uncontended atomic add and no lookup by name; a scrape writes their
//! series after the exporter's. Per-sale gauges are set from memory when
//! `/metrics` is scraped, never from the store.

use crate::error::ApiError;
use crate::latency;
use crate::per_thread::PerThread;
use crate::requests::{NOT_KEPT, Snapshot};
use crate::route::Route;
use axum::http::StatusCode;
use metrics::{Counter, Key};
use metrics_exporter_prometheus::formatting::{write_metric_line, write_type_line};
use metrics_exporter_prometheus::{LabelSet, Matcher, PrometheusBuilder, PrometheusHandle};
use seckill_core::ErrorCode;
use seckill_engine::Market;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// Request latency buckets, in nanoseconds: from a sold-out answer (tens of
/// microseconds) to a commit stuck behind a slow disk. Each is a bound of
/// the tally's own buckets, which are summed into them.
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

/// Purchase outcomes: refused with each error code, then reserved.
const OUTCOMES: usize = ErrorCode::ALL.len() + 1;
const RESERVED: usize = ErrorCode::ALL.len();
/// The `code` label of an answer without an error code.
const NO_CODE: &str = "none";

const REQUESTS: &str = "seckill_http_requests_total";
const LATENCY: &str = "seckill_http_request_duration_seconds";
const PURCHASES: &str = "seckill_purchases_total";

pub struct Metrics {
    prometheus: PrometheusHandle,
    /// `seckill_purchases_total{outcome}`, by outcome, since the start.
    purchases: Box<PerThread<[AtomicU64; OUTCOMES]>>,
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
            purchases: Box::new(PerThread::new(|| [const { AtomicU64::new(0) }; OUTCOMES])),
            shed_in_flight: metrics::counter!("seckill_shed_requests_total", "reason" => "in_flight"),
            shed_timeout: metrics::counter!("seckill_shed_requests_total", "reason" => "timeout"),
            prometheus,
        }
    }

    /// Counts a purchase by outcome: reserved (`None`) or refused with `code`.
    pub fn purchase(&self, refused: Option<ErrorCode>) {
        if NOT_KEPT {
            return;
        }
        let outcome = refused.map_or(RESERVED, |code| code as usize);
        self.purchases.mine()[outcome].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a refused purchase and hands the error on.
    pub fn refused(&self, error: ApiError) -> ApiError {
        self.purchase(Some(error.code));
        error
    }

    /// The exposition, with the answered `requests`: per-sale gauges set
    /// from memory first.
    pub fn render(&self, market: &Market, in_flight: usize, requests: &Snapshot) -> String {
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
        write_requests(&mut text, requests);
        self.write_purchases(&mut text);
        text
    }

    /// The per-thread table of purchases, summed: every outcome is listed.
    fn write_purchases(&self, text: &mut String) {
        let mut total = [0; OUTCOMES];
        for counts in self.purchases.all() {
            for (sum, count) in total.iter_mut().zip(counts) {
                *sum += count.load(Ordering::Relaxed);
            }
        }
        write_type_line(text, PURCHASES, None, None, "counter");
        for (outcome, count) in total.into_iter().enumerate() {
            let label = ErrorCode::ALL
                .get(outcome)
                .map_or("reserved", |code| code.as_str());
            let labels = label_set(&[("outcome", label.into())]);
            write_metric_line::<&str, u64>(text, PURCHASES, None, &labels, None, count, None);
        }
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

/// The answered requests in the exposition format. Answers and routes
/// that never happened are left out, as the exporter leaves out series
/// never registered.
fn write_requests(text: &mut String, requests: &Snapshot) {
    write_type_line(text, REQUESTS, None, None, "counter");
    for route in Route::ALL {
        let degraded = requests.degraded(route);
        let mut degraded_written = false;
        for (status, code, mut count) in requests.given(route) {
            if code == Some(ErrorCode::Unavailable) {
                count += degraded;
                degraded_written = true;
            }
            write_request_count(text, route, status, code, count);
        }
        if !degraded_written {
            let unavailable = Some(ErrorCode::Unavailable);
            let status = StatusCode::SERVICE_UNAVAILABLE;
            write_request_count(text, route, status, unavailable, degraded);
        }
    }
    write_type_line(text, LATENCY, None, None, "histogram");
    for route in Route::ALL {
        let buckets = requests.latency(route);
        let count: u64 = buckets.iter().sum();
        if count == 0 {
            continue;
        }
        let labels = label_set(&[("route", route.label().into())]);
        let (mut at_or_under, mut summed) = (0, 0);
        for bound in LATENCY_BUCKETS_NS {
            let last = latency::bucket_of_nanos(bound);
            at_or_under += buckets[summed..=last].iter().sum::<u64>();
            summed = last + 1;
            let le = Some(("le", bound as f64 / 1e9));
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
        let sum = requests.latency_sum(route).as_secs_f64();
        write_metric_line::<&str, f64>(text, LATENCY, Some("sum"), &labels, None, sum, None);
        write_metric_line::<&str, u64>(text, LATENCY, Some("count"), &labels, None, count, None);
    }
}

/// One `seckill_http_requests_total` sample, unless it is zero.
fn write_request_count(
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
    use crate::requests::{Answer, Requests};
    use std::time::Duration;

    #[test]
    fn every_prometheus_bound_is_a_bound_of_the_tally() {
        for bound in LATENCY_BUCKETS_NS {
            let bucket = latency::bucket_of_nanos(bound);
            assert_eq!(latency::bound(bucket), Duration::from_nanos(bound));
        }
    }

    #[test]
    fn the_exposition_sums_the_buckets_of_every_thread() {
        let metrics = Metrics::new();
        let requests = Requests::new();
        let on_another_thread = |route, status, code, elapsed| {
            let (metrics, requests) = (&metrics, &requests);
            std::thread::scope(|scope| {
                scope.spawn(move || {
                    requests.record(route, Answer::Given(status, code), elapsed);
                    metrics.purchase(code);
                });
            });
        };
        let sold_out = Some(ErrorCode::SoldOut);
        let ms = Duration::from_millis;
        on_another_thread(Route::Purchase, StatusCode::CONFLICT, sold_out, ms(1));
        on_another_thread(Route::Purchase, StatusCode::CONFLICT, sold_out, ms(3));
        on_another_thread(
            Route::Purchase,
            StatusCode::CONFLICT,
            sold_out,
            Duration::from_nanos(1_000_001),
        );
        on_another_thread(Route::Stock, StatusCode::IM_A_TEAPOT, None, ms(20_000));
        requests.record(Route::Stock, Answer::Degraded, Duration::from_micros(40));
        let unavailable = Answer::Given(
            StatusCode::SERVICE_UNAVAILABLE,
            Some(ErrorCode::Unavailable),
        );
        requests.record(Route::GetSale, unavailable, ms(1));
        requests.record(Route::GetSale, Answer::Degraded, ms(1));
        let mut text = String::new();
        write_requests(&mut text, &requests.snapshot());
        metrics.write_purchases(&mut text);
        for line in [
            r#"seckill_http_requests_total{route="purchase",status="409",code="sold_out"} 3"#,
            r#"seckill_http_requests_total{route="stock",status="418",code="none"} 1"#,
            r#"seckill_http_requests_total{route="stock",status="503",code="unavailable"} 1"#,
            r#"seckill_http_requests_total{route="get_sale",status="503",code="unavailable"} 2"#,
            r#"seckill_http_request_duration_seconds_bucket{route="purchase",le="0.0005"} 0"#,
            r#"seckill_http_request_duration_seconds_bucket{route="purchase",le="0.001"} 1"#,
            r#"seckill_http_request_duration_seconds_bucket{route="purchase",le="0.0025"} 2"#,
            r#"seckill_http_request_duration_seconds_bucket{route="purchase",le="0.005"} 3"#,
            r#"seckill_http_request_duration_seconds_bucket{route="purchase",le="10"} 3"#,
            r#"seckill_http_request_duration_seconds_bucket{route="purchase",le="+Inf"} 3"#,
            r#"seckill_http_request_duration_seconds_sum{route="purchase"} 0.005000001"#,
            r#"seckill_http_request_duration_seconds_count{route="purchase"} 3"#,
            r#"seckill_http_request_duration_seconds_bucket{route="stock",le="0.00005"} 1"#,
            r#"seckill_http_request_duration_seconds_bucket{route="stock",le="10"} 1"#,
            r#"seckill_http_request_duration_seconds_bucket{route="stock",le="+Inf"} 2"#,
            r#"seckill_purchases_total{outcome="sold_out"} 3"#,
            r#"seckill_purchases_total{outcome="reserved"} 1"#,
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from\n{text}"
            );
        }
        assert!(!text.contains(r#"route="list_sales""#), "{text}");
        assert_eq!(
            text.matches(r#"route="get_sale",status="503""#).count(),
            1,
            "degraded refusals are counted with the other 503s: {text}"
        );
    }
}
