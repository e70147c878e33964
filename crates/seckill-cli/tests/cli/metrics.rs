//! `/metrics`: the Prometheus exposition is parsed and its numbers must
//! move with the traffic sent — N purchases, N more in the counters; the
//! per-sale gauges follow the sale from memory.

use seckill_test_support::*;
use std::collections::BTreeMap;

/// One scrape: every sample line as (name, labels) → value.
struct Scrape(Vec<(String, BTreeMap<String, String>, f64)>);

impl Scrape {
    async fn of(api: &Api) -> Self {
        let answer = api.get("/metrics", &Auth::None).await;
        answer.assert_status(StatusCode::OK);
        assert!(
            answer
                .header("content-type")
                .is_some_and(|t| t.starts_with("text/plain")),
            "{:?}",
            answer.header("content-type")
        );
        Self::parse(&answer.text())
    }

    fn parse(text: &str) -> Self {
        let samples = text
            .lines()
            .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
            .map(|line| {
                let (series, value) = line
                    .rsplit_once(' ')
                    .unwrap_or_else(|| panic!("not a sample line: {line}"));
                let value: f64 = value
                    .parse()
                    .unwrap_or_else(|_| panic!("not a number in: {line}"));
                let (name, labels) = match series.split_once('{') {
                    Some((name, labels)) => (name, labels.trim_end_matches('}')),
                    None => (series, ""),
                };
                let labels = labels
                    .split(',')
                    .filter(|pair| !pair.is_empty())
                    .map(|pair| {
                        let (key, value) = pair
                            .split_once('=')
                            .unwrap_or_else(|| panic!("not a label in: {line}"));
                        (key.to_string(), value.trim_matches('"').to_string())
                    })
                    .collect();
                (name.to_string(), labels, value)
            })
            .collect();
        Self(samples)
    }

    /// The sum of the samples of `name` that carry all of `labels` (0 if none).
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(key, value)| l.get(*key).map(String::as_str) == Some(*value))
            })
            .map(|(_, _, value)| value)
            .sum()
    }

    fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _, _)| n == name)
    }
}

#[tokio::test]
async fn counters_and_gauges_move_with_traffic() {
    let seckill = Seckill::start().await;
    let sale = seckill.open_sale(10, 1).await;
    let sale_label = [("sale_id", sale.as_str())];
    let before = Scrape::of(&seckill).await;

    let mut orders = Vec::new();
    for buyer in 0..10 {
        orders.push(seckill.buy(&format!("buyer-{buyer}"), &sale).await);
    }
    for late in 0..5 {
        seckill
            .purchase(&format!("late-{late}"), &sale)
            .await
            .expect_error(StatusCode::CONFLICT, "sold_out");
    }
    seckill
        .get("/nowhere", &Auth::None)
        .await
        .assert_status(StatusCode::NOT_FOUND);
    let after = Scrape::of(&seckill).await;

    let moved = |name: &str, labels: &[(&str, &str)]| {
        after.value(name, labels) - before.value(name, labels)
    };
    let requests = "seckill_http_requests_total";
    assert_eq!(
        moved(
            requests,
            &[("route", "purchase"), ("status", "202"), ("code", "none")]
        ),
        10.0
    );
    assert_eq!(
        moved(
            requests,
            &[
                ("route", "purchase"),
                ("status", "409"),
                ("code", "sold_out")
            ]
        ),
        5.0
    );
    assert_eq!(
        moved(
            requests,
            &[("route", "other"), ("status", "404"), ("code", "not_found")]
        ),
        1.0
    );
    let latency = "seckill_http_request_duration_seconds";
    assert_eq!(
        moved(&format!("{latency}_count"), &[("route", "purchase")]),
        15.0
    );
    assert_eq!(
        moved(
            &format!("{latency}_bucket"),
            &[("route", "purchase"), ("le", "+Inf")]
        ),
        15.0,
        "latency is a histogram with buckets"
    );
    assert!(after.value(&format!("{latency}_sum"), &[("route", "purchase")]) > 0.0);
    assert_eq!(
        moved("seckill_purchases_total", &[("outcome", "reserved")]),
        10.0
    );
    assert_eq!(
        moved("seckill_purchases_total", &[("outcome", "sold_out")]),
        5.0
    );
    assert_eq!(after.value("seckill_sale_stock", &sale_label), 10.0);
    assert_eq!(after.value("seckill_sale_remaining", &sale_label), 0.0);
    assert_eq!(after.value("seckill_sale_reserved", &sale_label), 10.0);
    assert_eq!(after.value("seckill_sale_paid", &sale_label), 0.0);
    assert!(after.value("seckill_writer_batch_size_count", &[]) >= 1.0);
    assert!(after.has("seckill_writer_batch_size_bucket"));
    assert!(after.has("seckill_writer_commit_seconds_bucket"));
    assert!(after.has("seckill_degrade_level"));

    // Paying (twice with the same reference: counted once) and cancelling.
    for _ in 0..2 {
        seckill
            .pay("buyer-0", &orders[0], "pay-0")
            .await
            .expect(StatusCode::OK);
    }
    seckill
        .cancel("buyer-1", &orders[1])
        .await
        .expect(StatusCode::OK);
    let settled = Scrape::of(&seckill).await;
    assert_eq!(settled.value("seckill_sale_paid", &sale_label), 1.0);
    assert_eq!(settled.value("seckill_sale_cancelled", &sale_label), 1.0);
    assert_eq!(settled.value("seckill_sale_reserved", &sale_label), 8.0);
    assert_eq!(settled.value("seckill_sale_remaining", &sale_label), 1.0);
    assert_eq!(
        settled.value("seckill_orders_paid_total", &[])
            - after.value("seckill_orders_paid_total", &[]),
        1.0
    );
}

#[tokio::test]
async fn settled_units_are_counted_again_after_a_restart() {
    let mut seckill = Seckill::start().await;
    let sale = seckill.open_sale(5, 1).await;
    seckill.settle_one_of_each(&sale).await;
    seckill.buy("holder", &sale).await;
    seckill.stop().await;
    seckill.restart().await;

    let scrape = Scrape::of(&seckill).await;
    let sale_label = [("sale_id", sale.as_str())];
    assert_eq!(scrape.value("seckill_sale_paid", &sale_label), 1.0);
    assert_eq!(scrape.value("seckill_sale_cancelled", &sale_label), 1.0);
    assert_eq!(scrape.value("seckill_sale_reserved", &sale_label), 1.0);
    assert_eq!(scrape.value("seckill_sale_remaining", &sale_label), 3.0);
}
