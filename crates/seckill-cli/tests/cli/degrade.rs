//! Degradation: the operator's one-click levels refuse the least important
//! traffic first and purchases last; automatic degradation steps down when
//! requests keep failing and back up, one level at a time, once healthy.

use seckill_test_support::*;
use std::time::{Duration, Instant};

const DEGRADE: &str = "/api/v1/admin/degrade";

async fn set_level(api: &Api, level: &str) -> Value {
    api.post(DEGRADE, &Auth::Admin, json!({ "level": level }))
        .await
        .expect(StatusCode::OK)
}

async fn degrade_state(api: &Api) -> Value {
    api.get(DEGRADE, &Auth::Admin).await.expect(StatusCode::OK)
}

/// Whether a request was served (any answer but the degraded 503).
fn served(answer: &Resp) -> bool {
    if answer.status == StatusCode::SERVICE_UNAVAILABLE {
        answer.expect_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
        assert_eq!(answer.header("retry-after"), Some("1"), "{answer:?}");
        return false;
    }
    true
}

/// What each kind of traffic gets at the current level: reading a sale,
/// reading an order, buying, cancelling, the admin report.
async fn what_is_served(api: &Api, sale: &str, buyer: &str) -> [bool; 5] {
    let read_sale = api
        .get(&format!("/api/v1/sales/{sale}/stock"), &Auth::None)
        .await;
    let bought = api.purchase(buyer, sale).await;
    let bought_ok = served(&bought);
    let (read_order, cancel) = if bought_ok {
        let order = str_field(&bought.expect(StatusCode::ACCEPTED), "order_id");
        let read = api
            .get(&format!("/api/v1/orders/{order}"), &Auth::user(buyer))
            .await;
        let cancel = api
            .post(
                &format!("/api/v1/orders/{order}/cancel"),
                &Auth::user(buyer),
                Body::Empty,
            )
            .await;
        (served(&read), served(&cancel))
    } else {
        (false, false)
    };
    let report = api
        .get(&format!("/api/v1/sales/{sale}/report"), &Auth::Admin)
        .await;
    [
        served(&read_sale),
        read_order,
        bought_ok,
        cancel,
        served(&report),
    ]
}

#[tokio::test]
async fn each_level_refuses_more_and_purchases_go_last() {
    let seckill = Seckill::start_with(&["--auto-degrade", "off"]).await;
    let sale = seckill.open_sale(100, 1).await;

    //                                   read sale, read order, buy, cancel, report
    for (level, expected) in [
        ("normal", [true, true, true, true, true]),
        ("reads_cached", [true, false, true, true, true]),
        ("purchases_only", [false, false, true, true, true]),
        ("closed", [false, false, false, false, true]),
        ("normal", [true, true, true, true, true]),
    ] {
        let state = set_level(&seckill, level).await;
        assert_eq!(state["level"], level, "{state}");
        assert_eq!(state["operator"], level, "{state}");
        assert_eq!(degrade_state(&seckill).await["level"], level);
        let buyer = format!("buyer-at-{level}-{}", now_unix());
        assert_eq!(
            what_is_served(&seckill, &sale, &buyer).await,
            expected,
            "at {level}"
        );
    }

    let metrics = seckill.get("/metrics", &Auth::None).await;
    assert!(
        metrics
            .text()
            .contains("seckill_degrade_switches_total{by=\"operator\",to=\"closed\"} 1"),
        "switches are counted:\n{}",
        metrics.text()
    );
    seckill
        .post(DEGRADE, &Auth::Admin, json!({ "level": "down" }))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "bad_request");
    seckill
        .post(
            DEGRADE,
            &Auth::user("mallory"),
            json!({ "level": "closed" }),
        )
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(degrade_state(&seckill).await["level"], "normal");
}

#[tokio::test]
async fn a_burst_of_errors_steps_down_automatically_and_it_recovers() {
    // One place in flight, held by a purchase whose body never comes: every
    // other request is shed with a 503, an error burst.
    let seckill = Seckill::start_with(&[
        "--max-in-flight",
        "1",
        "--request-timeout-ms",
        "60000",
        "--auto-degrade",
        "on",
        "--degrade-window-secs",
        "1",
        "--degrade-recover-secs",
        "2",
        "--degrade-min-requests",
        "5",
    ])
    .await;
    let sale = seckill.open_sale(100, 1).await;
    let holder = stalled_purchase(&seckill, &sale).await;
    let stock = format!("/api/v1/sales/{sale}/stock");
    eventually(
        PATIENCE,
        "the stalled purchase holds the only place",
        || async {
            let answer = seckill.get(&stock, &Auth::None).await;
            (!served(&answer)).then_some(())
        },
    )
    .await;

    let mut seen = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let automatic = degrade_state(&seckill).await["automatic"].clone();
        if seen.last() != Some(&automatic) {
            seen.push(automatic.clone());
        }
        if automatic == "purchases_only" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no step down; levels seen: {seen:?}"
        );
        for _ in 0..10 {
            let shed = seckill.get(&stock, &Auth::None).await;
            assert!(!served(&shed), "a stock read got through: {shed:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, ["normal", "reads_cached", "purchases_only"]);
    let metrics = seckill.get("/metrics", &Auth::None).await.text();
    assert!(
        metrics.contains("seckill_degrade_level 2"),
        "the level is shown:\n{metrics}"
    );

    drop(holder);
    let mut seen = vec![Value::from("purchases_only")];
    let deadline = Instant::now() + PATIENCE;
    while seen.last() != Some(&Value::from("normal")) {
        assert!(
            Instant::now() < deadline,
            "no recovery; levels seen: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        let automatic = degrade_state(&seckill).await["automatic"].clone();
        if seen.last() != Some(&automatic) {
            seen.push(automatic);
        }
    }
    assert_eq!(seen, ["purchases_only", "reads_cached", "normal"]);
    seckill
        .purchase("alice", &sale)
        .await
        .expect(StatusCode::ACCEPTED);
}
