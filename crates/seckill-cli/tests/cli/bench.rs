//! `seckill bench` and `seckill demo` against a real engine on port 0: the
//! counts they report, the checks they run afterwards, and their JSON.

use seckill_bench::BenchReport;
use seckill_test_support::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};

/// Runs `seckill bench ARGS --json FILE` against `api`, with the server's
/// secrets; returns the process output and the JSON report.
fn bench(api: &Api, args: &[&str]) -> (Output, Value) {
    bench_at(api, &api.base, args)
}

/// The same against `url` on `api`'s server.
fn bench_at(api: &Api, url: &str, args: &[&str]) -> (Output, Value) {
    let dir = tempfile::tempdir().expect("a temporary dir");
    let json = dir.path().join("report.json");
    let output = Command::new(seckill_binary())
        .arg("bench")
        .args(["--url", url])
        .args(["--jwt-secret", api.jwt_secret()])
        .args(["--admin-token", api.admin_token()])
        .args(["--connections", "50"])
        .arg("--json")
        .arg(&json)
        .args(args)
        .output()
        .expect("run seckill bench");
    let text = std::fs::read_to_string(&json).unwrap_or_else(|error| {
        panic!(
            "no JSON report ({error}); stdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (
        output,
        serde_json::from_str(&text).expect("the report is JSON"),
    )
}

fn count(report: &Value, path: &[&str]) -> u64 {
    let mut value = report;
    for key in path {
        value = &value[key];
    }
    value
        .as_u64()
        .unwrap_or_else(|| panic!("{path:?} is not a count in {report:#}"))
}

#[tokio::test]
async fn a_rush_of_5000_on_500_sells_exactly_500_and_the_checks_hold() {
    let seckill = Seckill::start().await;
    let sale = seckill.open_sale(500, 1).await;

    let (output, report) = bench(&seckill, &["--sale", &sale, "--users", "5000"]);

    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "bench failed:\n{stdout}");
    assert_eq!(count(&report, &["requests"]), 5000);
    assert_eq!(count(&report, &["outcomes", "reserved"]), 500);
    assert_eq!(count(&report, &["outcomes", "sold_out"]), 4500);
    assert_eq!(count(&report, &["status", "202"]), 500);
    assert_eq!(count(&report, &["status", "409"]), 4500);
    assert_eq!(count(&report, &["errors"]), 0);
    assert_eq!(report["invariants"]["ok"], true, "{report:#}");
    let checks: Vec<&str> = report["invariants"]["checks"]
        .as_array()
        .expect("a list of checks")
        .iter()
        .map(|check| check["name"].as_str().expect("a check name"))
        .collect();
    for expected in [
        "no_5xx",
        "orders_readable_by_owner",
        "report_matches_crowd",
        "sold_min_stock_buyers",
        "report_balanced",
        "stock_endpoint_agrees",
    ] {
        assert!(
            checks.contains(&expected),
            "{expected} not checked: {checks:?}"
        );
    }
    assert!(stdout.contains("invariants hold"), "{stdout}");

    // The engine agrees with what the bench reported.
    let after = seckill.report(&sale).await;
    assert_balanced(&after);
    assert_eq!((after.pending_payment, after.remaining), (500, 0));
}

#[tokio::test]
async fn a_wrong_expectation_fails_the_run_and_names_the_check() {
    let seckill = Seckill::start().await;
    let sale = seckill.open_sale(300, 1).await;

    let (output, report) = bench(
        &seckill,
        &[
            "--sale",
            &sale,
            "--users",
            "1000",
            "--expect-reserved",
            "299",
        ],
    );

    assert!(!output.status.success(), "a failed check must fail the run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("sold_min_stock_buyers") && stderr.contains("expected 299"),
        "{stderr}"
    );
    assert_eq!(report["invariants"]["ok"], false);
    let failed = report["invariants"]["failed"].as_array().expect("a list");
    assert_eq!(
        failed.len(),
        1,
        "only the wrong expectation fails: {failed:?}"
    );
    assert_eq!(count(&report, &["outcomes", "reserved"]), 300);
}

#[tokio::test]
async fn a_second_crowd_on_a_sold_out_sale_is_refused_and_still_checks_out() {
    let seckill = Seckill::start().await;
    let sale = seckill.open_sale(100, 1).await;
    let (first, _) = bench(&seckill, &["--sale", &sale, "--users", "200"]);
    assert!(first.status.success());

    let (second, report) = bench(&seckill, &["--sale", &sale, "--users", "200"]);

    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stdout)
    );
    assert_eq!(count(&report, &["outcomes", "reserved"]), 0);
    assert_eq!(count(&report, &["outcomes", "sold_out"]), 200);
    assert!(report["stock_lasted_s"].as_f64().is_some());
}

#[tokio::test]
async fn lifecycle_pays_the_chosen_share_and_the_report_agrees() {
    let seckill = Seckill::start().await;
    let sale = seckill.open_sale(200, 1).await;

    let (output, report) = bench(
        &seckill,
        &[
            "--sale",
            &sale,
            "--scenario",
            "lifecycle",
            "--users",
            "200",
            "--pay-percent",
            "25",
        ],
    );

    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert_eq!(count(&report, &["outcomes", "reserved"]), 200);
    // Users 0..199 pay when user % 100 < 25: 50 of them.
    assert_eq!(count(&report, &["paid"]), 50);
    let after = seckill.report(&sale).await;
    assert_eq!((after.paid, after.pending_payment), (50, 150));
}

#[tokio::test]
async fn browse_and_get_only_read() {
    let seckill = Seckill::start().await;
    let sale = seckill.open_sale(10, 1).await;

    let (browse, report) = bench(
        &seckill,
        &["--sale", &sale, "--scenario", "browse", "--requests", "400"],
    );
    assert!(browse.status.success());
    assert_eq!(count(&report, &["status", "200"]), 400);
    assert_eq!(count(&report, &["outcomes", "reserved"]), 0);

    let healthz = seckill.url("/healthz");
    let (get, report) = bench_at(
        &seckill,
        &healthz,
        &["--scenario", "get", "--duration", "300ms"],
    );
    assert!(get.status.success());
    assert!(count(&report, &["requests"]) > 0);
    assert_eq!(
        count(&report, &["requests"]),
        count(&report, &["status", "200"])
    );
    assert_eq!(
        seckill.report(&sale).await.remaining,
        10,
        "reads bought nothing"
    );
}

#[tokio::test]
async fn the_json_report_round_trips_through_its_schema() {
    let seckill = Seckill::start().await;
    let sale = seckill.open_sale(50, 1).await;
    let (_, json) = bench(
        &seckill,
        &["--sale", &sale, "--users", "100", "--rate", "2000"],
    );

    let typed: BenchReport = serde_json::from_value(json.clone()).expect("the schema reads it");
    assert_eq!(serde_json::to_value(&typed).expect("serializes"), json);
    for key in [
        "scenario",
        "requests",
        "elapsed_s",
        "rps",
        "latency_ms",
        "status",
        "outcomes",
        "errors",
        "invariants",
    ] {
        assert!(json.get(key).is_some(), "{key} missing from {json:#}");
    }
    for key in ["p50", "p90", "p99", "p999", "max"] {
        assert!(
            json["latency_ms"][key].as_f64().is_some(),
            "latency_ms.{key}"
        );
    }
    assert_eq!(json["scenario"], "rush");
    assert_eq!(json["rate"], 2000.0);
}

#[tokio::test]
async fn bad_arguments_are_refused_with_a_message() {
    let seckill = Seckill::start().await;
    for (args, says) in [
        (vec!["--scenario", "rush"], "needs --sale"),
        (vec!["--sale", "no-such-sale"], "404"),
        (vec!["--sale", "a/b"], "sale id"),
        (vec!["--scenario", "get", "--rate", "0"], "--rate"),
        (vec!["--scenario", "get", "--users", "0"], "at least 1"),
    ] {
        let output = Command::new(seckill_binary())
            .args(["bench", "--url", &seckill.base, "--jwt-secret", "x"])
            .args(&args)
            .output()
            .expect("run seckill bench");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains(says),
            "{args:?} should say {says:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[tokio::test]
async fn demo_sells_exactly_its_stock_then_keeps_serving_until_sigterm() {
    let mut demo = Command::new(seckill_binary())
        .args([
            "demo",
            "--users",
            "5000",
            "--stock",
            "500",
            "--listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start seckill demo");
    let mut lines = BufReader::new(demo.stdout.take().expect("piped stdout")).lines();
    let mut seen = Vec::new();
    let url = loop {
        let line = lines
            .next()
            .expect("the demo ended before serving")
            .expect("read the demo's stdout");
        seen.push(line.clone());
        if let Some(rest) = line.strip_prefix("serving on ") {
            break rest.split(' ').next().expect("a URL").to_string();
        }
    };
    let seen = seen.join("\n");
    assert!(seen.contains("sold exactly 500 of 500 tickets"), "{seen}");
    assert!(seen.contains("invariants hold"), "{seen}");
    let sale = seen
        .lines()
        .find_map(|line| line.strip_prefix("sale "))
        .and_then(|rest| rest.split(' ').next())
        .expect("the demo names its sale")
        .to_string();

    let stock: Value = reqwest::get(format!("{url}/api/v1/sales/{sale}/stock"))
        .await
        .expect("the demo still serves")
        .json()
        .await
        .expect("stock JSON");
    assert_eq!(stock["remaining"], 0);
    assert_eq!(stock["state"], "sold_out");
    assert!(
        seen.contains(&format!("watch it live: {url}/dashboard")),
        "{seen}"
    );
    let dashboard = reqwest::get(format!("{url}/dashboard"))
        .await
        .expect("the dashboard is served")
        .text()
        .await
        .expect("the dashboard page");
    assert!(dashboard.contains("/dashboard/dashboard.js"), "{dashboard}");

    let kill = Command::new("kill")
        .args(["-TERM", &demo.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(kill.success());
    let status = demo.wait().expect("the demo exits");
    assert_eq!(status.code(), Some(0), "SIGTERM ends the demo cleanly");
}
