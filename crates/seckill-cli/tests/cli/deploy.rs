//! The monitoring files under `deploy/`: the Grafana dashboard is valid
//! JSON whose every query names a series that a real engine exposes, and
//! the Prometheus example scrapes `/metrics`.

use seckill_test_support::*;
use std::collections::BTreeSet;
use std::path::PathBuf;

fn deploy(file: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every `seckill_…` metric a PromQL expression names, without the
/// histogram suffixes.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("seckill_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        let base = ["_bucket", "_count", "_sum"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(&name);
        names.push(base.to_string());
    }
    names
}

#[tokio::test]
async fn the_grafana_dashboard_queries_only_series_the_engine_exposes() {
    let dashboard: Value =
        serde_json::from_str(&deploy("grafana/seckill.json")).expect("seckill.json is JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    let mut wanted = BTreeSet::new();
    for panel in panels {
        assert!(
            ids.insert(panel["id"].as_u64().expect("a panel id")),
            "{panel}"
        );
        assert!(panel["gridPos"]["w"].as_u64().is_some(), "{panel}");
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("an expr");
            let named = metric_names(expr);
            assert!(!named.is_empty(), "{expr}");
            wanted.extend(named);
        }
    }
    assert!(wanted.len() >= 10, "{wanted:?}");

    // A little of everything, then one scrape.
    let seckill = Seckill::start().await;
    let sale = seckill.open_sale(3, 1).await;
    seckill.settle_one_of_each(&sale).await;
    let scrape = seckill.get("/metrics", &Auth::None).await.text();
    let exposed: BTreeSet<String> = scrape
        .lines()
        .filter(|line| !line.starts_with('#'))
        .flat_map(metric_names)
        .collect();
    let missing: Vec<_> = wanted.difference(&exposed).collect();
    assert!(missing.is_empty(), "not exposed: {missing:?}\n{scrape}");
}

#[test]
fn the_prometheus_example_scrapes_metrics() {
    let config = deploy("prometheus.yml");
    assert!(config.contains("metrics_path: /metrics"), "{config}");
    assert!(config.contains("job_name: seckill"), "{config}");
}
