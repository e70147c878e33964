//! `--html FILE`: one self-contained page (inline CSS and SVG, nothing
//! fetched) with the summary, the invariants, the throughput over time and
//! the latency distribution.

use crate::report::{BenchReport, thousands};
use std::fmt::Write;

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 260.0;
const MARGIN: f64 = 48.0;

pub fn render(report: &BenchReport) -> String {
    let title = format!(
        "seckill bench: {} on {}",
        report.scenario.name(),
        report.url
    );
    let mut checks = String::new();
    for check in &report.invariants.checks {
        let class = if check.ok { "ok" } else { "fail" };
        let mark = if check.ok { "✓" } else { "✗" };
        let _ = writeln!(
            checks,
            r#"<li class="{class}">{mark} <b>{}</b> {}</li>"#,
            escape(&check.name),
            escape(&check.detail)
        );
    }
    for skipped in &report.invariants.skipped {
        let _ = writeln!(checks, r#"<li class="skip">– {}</li>"#, escape(skipped));
    }
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 820px; color: #1d2330; }}
h1 {{ font-size: 1.3rem; }} h2 {{ font-size: 1.05rem; margin-top: 2rem; }}
pre {{ background: #f3f5f8; padding: 1rem; overflow-x: auto; font-size: 13px; }}
ul {{ list-style: none; padding: 0; }} .ok {{ color: #1a7f37; }} .fail {{ color: #c62828; font-weight: bold; }} .skip {{ color: #777; }}
svg text {{ font: 11px system-ui, sans-serif; fill: #555; }}
.legend span {{ display: inline-block; width: 10px; height: 10px; margin: 0 4px 0 12px; }}
</style></head><body>
<h1>{title}</h1>
<pre>{summary}</pre>
<h2>Invariants: {verdict}</h2>
<ul>
{checks}</ul>
<h2>Throughput over time (requests completed per second)</h2>
<div class="legend"><span style="background:#2e7d32"></span>2xx<span style="background:#f9a825"></span>4xx<span style="background:#c62828"></span>5xx or no answer</div>
{timeline}
<h2>Latency by percentile</h2>
{latency}
</body></html>
"#,
        title = escape(&title),
        summary = escape(&report.measurements()),
        verdict = if report.invariants.ok {
            "hold"
        } else {
            "FAILED"
        },
        timeline = timeline_chart(report),
        latency = latency_chart(report),
    )
}

/// Stacked bars, one per second: answered 2xx, 4xx, failed.
fn timeline_chart(report: &BenchReport) -> String {
    let seconds = &report.timeline;
    let peak = seconds.iter().map(|s| s.requests).max().unwrap_or(0).max(1) as f64;
    let plot_w = WIDTH - 2.0 * MARGIN;
    let plot_h = HEIGHT - 2.0 * MARGIN;
    let bar_w = plot_w / seconds.len().max(1) as f64;
    let mut svg = chart_frame(&format!("{} req/s", thousands(peak as u64)), "0");
    for (i, second) in seconds.iter().enumerate() {
        let x = MARGIN + i as f64 * bar_w;
        let mut base = HEIGHT - MARGIN;
        for (count, color) in [
            (second.ok, "#2e7d32"),
            (second.refused, "#f9a825"),
            (second.failed, "#c62828"),
        ] {
            let h = count as f64 / peak * plot_h;
            base -= h;
            let _ = write!(
                svg,
                r#"<rect x="{x:.1}" y="{base:.1}" width="{:.1}" height="{h:.1}" fill="{color}"/>"#,
                (bar_w * 0.9).max(0.5)
            );
        }
    }
    let label_every = (seconds.len() / 10).max(1);
    for i in (0..seconds.len()).step_by(label_every) {
        let x = MARGIN + (i as f64 + 0.5) * bar_w;
        let _ = write!(
            svg,
            r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{i}s</text>"#,
            HEIGHT - MARGIN + 16.0
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Latency against percentile on HdrHistogram's axis: 1 / (1 − p) on a
/// log scale, so 90, 99, 99.9 … get equal room.
fn latency_chart(report: &BenchReport) -> String {
    const LAST_NINES: f64 = 5.0; // up to 99.999
    let nines = |percentile: f64| -> f64 {
        let tail = (1.0 - percentile / 100.0).max(10f64.powf(-LAST_NINES));
        -tail.log10()
    };
    let points: Vec<(f64, f64)> = report
        .percentiles
        .iter()
        .map(|p| (nines(p.percentile), p.latency_ms))
        .collect();
    let peak = points.iter().map(|p| p.1).fold(0.0, f64::max).max(0.001);
    let plot_w = WIDTH - 2.0 * MARGIN;
    let plot_h = HEIGHT - 2.0 * MARGIN;
    let x = |n: f64| MARGIN + n / LAST_NINES * plot_w;
    let y = |ms: f64| HEIGHT - MARGIN - ms / peak * plot_h;
    let mut svg = chart_frame(&format!("{peak:.2} ms"), "0 ms");
    let path: Vec<String> = points
        .iter()
        .map(|&(n, ms)| format!("{:.1},{:.1}", x(n), y(ms)))
        .collect();
    let _ = write!(
        svg,
        r##"<polyline points="{}" fill="none" stroke="#1565c0" stroke-width="2"/>"##,
        path.join(" ")
    );
    for &(n, ms) in &points {
        let _ = write!(
            svg,
            r##"<circle cx="{:.1}" cy="{:.1}" r="3" fill="#1565c0"><title>{ms:.3} ms</title></circle>"##,
            x(n),
            y(ms)
        );
    }
    for (n, label) in [
        (0.0, "0%"),
        (1.0, "90%"),
        (2.0, "99%"),
        (3.0, "99.9%"),
        (4.0, "99.99%"),
        (5.0, "99.999%"),
    ] {
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{label}</text>"#,
            x(n),
            HEIGHT - MARGIN + 16.0
        );
    }
    svg.push_str("</svg>");
    svg
}

/// An open `<svg>` with axes and the y-axis labels at the top and bottom.
fn chart_frame(top: &str, bottom: &str) -> String {
    let (left, right, top_y, bottom_y) = (MARGIN, WIDTH - MARGIN, MARGIN, HEIGHT - MARGIN);
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}"><line x1="{left}" y1="{bottom_y}" x2="{right}" y2="{bottom_y}" stroke="#999"/><line x1="{left}" y1="{top_y}" x2="{left}" y2="{bottom_y}" stroke="#999"/><text x="{left}" y="{:.1}">{}</text><text x="4" y="{bottom_y}">{}</text>"##,
        top_y - 8.0,
        escape(top),
        escape(bottom)
    )
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
