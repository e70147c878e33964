//! `seckill plan` run as a binary: the articles' worked examples come out of
//! `--json` and the table, a bench report feeds the per-node QPS, and bad
//! input is refused with a message rather than a panic.

use seckill_test_support::seckill_binary;
use serde_json::Value;
use std::process::{Command, Output};

fn seckill_plan(flags: &[&str]) -> Output {
    Command::new(seckill_binary())
        .arg("plan")
        .args(flags)
        .output()
        .expect("run seckill")
}

/// Runs `seckill plan --json FLAGS`, which must succeed, and parses its JSON.
fn plan_json(flags: &[&str]) -> Value {
    let output = seckill_plan(&[&["--json"], flags].concat());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{flags:?} failed: {stderr}");
    serde_json::from_slice(&output.stdout).expect("stdout is one JSON object")
}

fn number(plan: &Value, key: &str) -> f64 {
    plan[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number in {plan}"))
}

#[test]
fn example_1_five_million_requests_a_day() {
    let plan = plan_json(&[
        "--requests-per-day",
        "5000000",
        "--active-hours",
        "12",
        "--node-qps",
        "300",
    ]);
    assert_eq!(number(&plan, "avg_peak_qps").round(), 463.0);
    assert_eq!(number(&plan, "burst"), 3.0);
    assert_eq!(number(&plan, "peak_qps").round(), 1389.0);
    assert_eq!(number(&plan, "node_qps"), 300.0);
    assert_eq!(plan["node_qps_source"], "node_qps");
    assert_eq!(plan["nodes"], 5);
    assert_eq!(number(&plan, "headroom"), 0.2);
    assert_eq!(plan["recommended_nodes"], 6);
    assert!(plan["sale"].is_null());
}

#[test]
fn example_2_thread_model() {
    let plan = plan_json(&["--peak-qps", "3000", "--threads", "200", "--rt-ms", "200"]);
    assert!(plan["avg_peak_qps"].is_null());
    assert_eq!(number(&plan, "node_qps"), 1000.0);
    assert_eq!(plan["node_qps_source"], "threads");
    assert_eq!(plan["nodes"], 3);
    assert_eq!(plan["recommended_nodes"], 4);
}

#[test]
fn without_a_per_node_figure_nodes_are_null() {
    let plan = plan_json(&["--peak-qps", "3000"]);
    assert_eq!(number(&plan, "peak_qps"), 3000.0);
    assert!(plan["node_qps"].is_null());
    assert!(plan["nodes"].is_null());
    assert!(plan["recommended_nodes"].is_null());
}

#[test]
fn sale_section() {
    let plan = plan_json(&[
        "--peak-qps",
        "5000",
        "--node-qps",
        "1000",
        "--stock",
        "10000",
        "--crowd",
        "1000000",
    ]);
    let sale = &plan["sale"];
    assert_eq!(sale["nodes"], 5);
    assert_eq!(sale["per_node_share"], 2000);
    assert_eq!(sale["buffer"], 200);
    assert_eq!(sale["per_node_quota"], 2200);
    assert_eq!(sale["redis_calls_max"], 11000);
    assert_eq!(number(sale, "refused_locally_share"), 0.989);

    let plan = plan_json(&[
        "--peak-qps",
        "5000",
        "--stock",
        "10",
        "--crowd",
        "5",
        "--nodes",
        "2",
        "--buffer",
        "0",
    ]);
    assert_eq!(plan["sale"]["per_node_quota"], 5);
    assert_eq!(number(&plan["sale"], "refused_locally_share"), 0.0);
}

#[test]
fn table_shows_example_1() {
    let output = seckill_plan(&[
        "--requests-per-day",
        "5000000",
        "--active-hours",
        "12",
        "--node-qps",
        "300",
    ]);
    assert!(output.status.success());
    let table = String::from_utf8(output.stdout).expect("utf-8");
    let words = |line: &str| line.split_whitespace().collect::<Vec<_>>().join(" ");
    let lines: Vec<String> = table.lines().map(words).collect();
    for expected in [
        "average peak QPS 463 5,000,000 × 0.8 / (12 h × 0.2 × 3600 s)",
        "peak QPS 1,389 × burst 3",
        "per-node QPS 300 --node-qps",
        "nodes 5 ceil(1,389 / 300)",
    ] {
        assert!(
            lines.iter().any(|l| l == expected),
            "no {expected:?} in\n{table}"
        );
    }
    assert!(
        lines.iter().any(|l| l.starts_with("with headroom 20% 6 ")),
        "{table}"
    );
}

#[test]
fn per_node_qps_from_a_bench_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    let report = dir.path().join("bench.json");
    std::fs::write(&report, r#"{"scenario":"rush","rps":2500.0,"requests":10}"#).expect("write");
    let report = report.to_str().expect("utf-8 path");
    let plan = plan_json(&["--peak-qps", "6000", "--from-bench", report]);
    assert_eq!(number(&plan, "node_qps"), 2500.0);
    assert_eq!(plan["node_qps_source"], "bench");
    assert_eq!(plan["nodes"], 3);

    std::fs::write(dir.path().join("bad.json"), r#"{"scenario":"rush"}"#).expect("write");
    let bad = dir.path().join("bad.json");
    let output = seckill_plan(&[
        "--peak-qps",
        "1",
        "--from-bench",
        bad.to_str().expect("utf-8"),
    ]);
    assert!(!output.status.success());
}

#[test]
fn bad_input_is_refused_without_a_panic() {
    for (flags, names) in [
        (
            &["--requests-per-day", "1000", "--active-hours", "0"][..],
            "--active-hours",
        ),
        (&["--peak-qps", "100", "--node-qps", "-5"], "--node-qps"),
        (
            &[
                "--peak-qps",
                "100",
                "--requests-per-day",
                "1000",
                "--active-hours",
                "8",
            ],
            "--peak-qps",
        ),
        (&["--peak-qps", "100", "--threads", "10"], "--rt-ms"),
        (
            &["--peak-qps", "100", "--stock", "10", "--crowd", "20"],
            "--nodes",
        ),
        (&[], "--peak-qps"),
    ] {
        let output = seckill_plan(flags);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{flags:?}: {stderr}");
        assert!(stderr.contains(names), "{flags:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{flags:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{flags:?}");
    }
}
