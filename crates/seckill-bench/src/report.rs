//! The result of a run: `BenchReport` is the stable JSON schema of
//! `--json` (and what `seckill plan --from-bench` reads), and its
//! `summary` the human text in the spirit of ab and wrk.

use crate::recorder::{Outcomes, Second};
use crate::run::{Load, Measured};
use crate::scenario::{Scenario, Target};
use crate::verify::Invariants;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Bumped when a field changes meaning or goes away; adding one does not.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    pub schema_version: u32,
    pub scenario: Scenario,
    pub url: String,
    pub sale: Option<String>,
    pub users: u64,
    pub connections: u64,
    pub threads: u64,
    /// The open-model arrival rate, visits per second; `null` for a closed model.
    pub rate: Option<f64>,
    /// HTTP requests sent (a lifecycle visit sends several).
    pub requests: u64,
    pub elapsed_s: f64,
    pub rps: f64,
    pub latency_ms: Latency,
    /// Answers by HTTP status.
    pub status: BTreeMap<String, u64>,
    /// Error answers by API error code.
    pub codes: BTreeMap<String, u64>,
    /// Purchase answers by outcome.
    pub outcomes: Outcomes,
    /// Orders paid (lifecycle).
    pub paid: u64,
    /// Requests that got no answer: connect, write or read failed.
    pub errors: u64,
    /// Seconds from the start to the first `sold_out` answer; `null` if none.
    pub stock_lasted_s: Option<f64>,
    /// Completed requests per second of the run.
    pub timeline: Vec<Second>,
    /// The latency distribution, for charts.
    pub percentiles: Vec<Percentile>,
    pub invariants: Invariants,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Percentile {
    pub percentile: f64,
    pub latency_ms: f64,
}

/// The percentiles charted: dense towards the tail, where flash sales hurt.
const CHART_PERCENTILES: &[f64] = &[
    0.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 99.999, 100.0,
];

impl BenchReport {
    pub fn new(target: &Target, load: &Load, measured: &Measured, invariants: Invariants) -> Self {
        let seen = &measured.recorder;
        let histogram = &seen.latency;
        let ms = |micros: u64| micros as f64 / 1000.0;
        let at = |quantile: f64| ms(histogram.value_at_quantile(quantile));
        let elapsed_s = measured.elapsed.as_secs_f64();
        let requests = seen.requests();
        Self {
            schema_version: SCHEMA_VERSION,
            scenario: target.scenario,
            url: target.endpoint.url.clone(),
            sale: target.sale.clone(),
            users: target.users as u64,
            connections: load.connections as u64,
            threads: load.threads as u64,
            rate: load.rate,
            requests,
            elapsed_s,
            rps: if elapsed_s > 0.0 {
                requests as f64 / elapsed_s
            } else {
                0.0
            },
            latency_ms: Latency {
                p50: at(0.5),
                p90: at(0.9),
                p99: at(0.99),
                p999: at(0.999),
                max: ms(histogram.max()),
                mean: histogram.mean() / 1000.0,
            },
            status: seen
                .status
                .iter()
                .map(|(status, count)| (status.to_string(), *count))
                .collect(),
            codes: seen.codes.clone(),
            outcomes: seen.outcomes,
            paid: seen.paid,
            errors: seen.errors,
            stock_lasted_s: seen.first_sold_out.map(|at| at.as_secs_f64()),
            timeline: seen.timeline.clone(),
            percentiles: CHART_PERCENTILES
                .iter()
                .map(|&percentile| Percentile {
                    percentile,
                    latency_ms: at(percentile / 100.0),
                })
                .collect(),
            invariants,
        }
    }

    /// The human summary printed after a run: what was measured, then the checks.
    pub fn summary(&self) -> String {
        self.measurements() + &self.checks()
    }

    /// Throughput, latency and answers, in the spirit of wrk.
    pub fn measurements(&self) -> String {
        let mut out = String::new();
        let sale = self
            .sale
            .as_deref()
            .map(|sale| format!(", sale {sale}"))
            .unwrap_or_default();
        let model = match self.rate {
            Some(rate) => format!(", {} visits/s offered", thousands(rate.round() as u64)),
            None => String::new(),
        };
        let users = if self.scenario.buys() {
            format!("{} users, ", thousands(self.users))
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "{} on {}{sale}: {users}{} connections, {} thread(s){model}",
            self.scenario.name(),
            self.url,
            self.connections,
            self.threads
        );
        let _ = writeln!(
            out,
            "  {} requests in {:.2}s: {} req/s, {} without an answer",
            thousands(self.requests),
            self.elapsed_s,
            thousands(self.rps.round() as u64),
            thousands(self.errors)
        );
        let l = &self.latency_ms;
        let _ = writeln!(
            out,
            "  latency   p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
            millis(l.p50),
            millis(l.p90),
            millis(l.p99),
            millis(l.p999),
            millis(l.max)
        );
        let statuses: Vec<String> = self
            .status
            .iter()
            .map(|(status, count)| format!("{status}: {}", thousands(*count)))
            .collect();
        let _ = writeln!(out, "  status    {}", statuses.join("  "));
        if !self.codes.is_empty() {
            let codes: Vec<String> = self
                .codes
                .iter()
                .map(|(code, count)| format!("{code}: {}", thousands(*count)))
                .collect();
            let _ = writeln!(out, "  errors    {}", codes.join("  "));
        }
        if self.scenario.buys() {
            let o = &self.outcomes;
            let _ = writeln!(
                out,
                "  purchases reserved {}  sold_out {}  limit_reached {}  rate_limited {}  other {}",
                thousands(o.reserved),
                thousands(o.sold_out),
                thousands(o.limit_reached),
                thousands(o.rate_limited),
                thousands(o.other)
            );
            if self.scenario == Scenario::Lifecycle {
                let _ = writeln!(out, "  paid      {}", thousands(self.paid));
            }
            if let Some(lasted) = self.stock_lasted_s {
                let _ = writeln!(out, "  the stock lasted {lasted:.2}s");
            }
        }
        out
    }

    /// The invariant checks, one per line.
    pub fn checks(&self) -> String {
        let mut out = String::new();
        let verdict = if self.invariants.ok { "hold" } else { "FAILED" };
        let _ = writeln!(out, "invariants {verdict}");
        for check in &self.invariants.checks {
            let mark = if check.ok { "ok  " } else { "FAIL" };
            let _ = writeln!(out, "  {mark} {:<26} {}", check.name, check.detail);
        }
        for skipped in &self.invariants.skipped {
            let _ = writeln!(out, "  skip {skipped}");
        }
        out
    }
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

fn millis(ms: f64) -> String {
    if ms >= 100.0 {
        format!("{ms:.0}ms")
    } else {
        format!("{ms:.2}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_thousands() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_000_000), "1,000,000");
        assert_eq!(thousands(12_345_678), "12,345,678");
    }
}
