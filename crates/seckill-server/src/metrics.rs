//! Prometheus metrics. Handles for the hot path are looked up once, so that
//! counting a request costs one atomic add.

use crate::error::ApiError;
use metrics::Counter;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use seckill_core::ErrorCode;
use std::collections::HashMap;
use std::sync::OnceLock;

pub struct Metrics {
    prometheus: PrometheusHandle,
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
        let outcome =
            |label: &'static str| metrics::counter!("seckill_purchases_total", "outcome" => label);
        Self {
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

    pub fn render(&self) -> String {
        self.prometheus.run_upkeep();
        self.prometheus.render()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The process-wide recorder, installed on first use.
fn recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
            }
            handle
        })
        .clone()
}
