//! `seckill reconcile` run as a binary against the real Redis
//! (SECKILL_TEST_REDIS_URL) and each real database
//! (SECKILL_TEST_DATABASE_URL_POSTGRES, _MYSQL): a sale in order exits 0; a
//! crash between the database and Redis (an order cancelled, its units
//! never released) exits 1, and `--repair` releases them and exits 0; a
//! sale Redis does not know, or a Redis that does not answer, exits 2.

use seckill_cluster::authority::{AuthorityConfig, RedisAuthority, ReserveRequest};
use seckill_cluster::consumer::{Consumer, ConsumerConfig};
use seckill_cluster::orders::SqlOrders;
use seckill_core::{OrderId, Sale, SaleId, Timestamp, UserId};
use seckill_engine::CancelOutcome;
use seckill_test_support::seckill_binary;
use seckill_test_support::services::{DATABASE_URLS, REDIS_URL, configured};
use serde_json::Value;
use std::process::{Command, Output};
use std::time::Duration;

fn seckill_reconcile(args: &[&str]) -> Output {
    Command::new(seckill_binary())
        .arg("reconcile")
        .args(args)
        .output()
        .expect("run seckill")
}

fn report(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON object ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// A new sale of 10 in Redis and the database, three orders of one unit
/// made into rows; returns the sale and the orders with their users.
async fn sale_with_orders(
    redis: &RedisAuthority,
    store: &SqlOrders,
) -> (SaleId, Vec<(OrderId, UserId)>) {
    let now = Timestamp::now();
    let sale = Sale {
        id: SaleId::generate(),
        name: "reconcile".into(),
        stock: 10,
        price_cents: 100,
        starts_at: Timestamp::from_millis(now.as_millis() - 60_000),
        ends_at: None,
        per_user_limit: 1,
        payment_timeout_secs: 600,
        require_purchase_token: false,
        created_at: now,
    };
    store.create_sale(&sale).await.expect("create sale");
    redis.create_sale(&sale).await.expect("create sale");
    let mut orders = Vec::new();
    for n in 0..3 {
        let (order, user) = (OrderId::generate(), UserId::from(format!("user-{n}")));
        redis
            .reserve(&ReserveRequest {
                sale_id: &sale.id,
                user_id: &user,
                quantity: 1,
                order_id: &order,
                idempotency_key: None,
            })
            .await
            .expect("reserve");
        orders.push((order, user));
    }
    let config = ConsumerConfig {
        block: Duration::from_millis(50),
        ..ConsumerConfig::new("cli-test")
    };
    let mut consumer = Consumer::new(redis, store.clone(), sale.id.clone(), config).unwrap();
    while consumer.step().await.expect("consume") > 0 {}
    (sale.id, orders)
}

#[tokio::test]
async fn reconcile_reports_a_crash_gap_and_repairs_it() {
    let test = "reconcile_reports_a_crash_gap_and_repairs_it";
    let Some(redis_url) = configured(test, REDIS_URL) else {
        return;
    };
    let redis = RedisAuthority::connect(AuthorityConfig::new(&redis_url))
        .await
        .expect("connect to Redis");
    for var in DATABASE_URLS {
        let Some(database_url) = configured(test, var) else {
            continue;
        };
        let store = SqlOrders::connect(&database_url).await.expect(var);
        let (sale, orders) = sale_with_orders(&redis, &store).await;
        let flags = [
            "--redis",
            &redis_url,
            "--database",
            &database_url,
            "--sale",
            sale.as_str(),
        ];

        let consistent = seckill_reconcile(&[&flags[..], &["--json"]].concat());
        assert_eq!(consistent.status.code(), Some(0), "{var}: {consistent:?}");
        let json = report(&consistent);
        assert_eq!(json["consistent"], true, "{json}");
        assert_eq!(json["redis_sold"], 3, "{json}");
        assert_eq!(json["db_pending"], 3, "{json}");

        // The process dies between the database's cancel and Redis' release.
        let (order, user) = &orders[1];
        let cancelled = store.cancel(order, user, Timestamp::now()).await.unwrap();
        assert!(matches!(cancelled, CancelOutcome::Cancelled(..)));
        let drifted = seckill_reconcile(&flags);
        let text = String::from_utf8_lossy(&drifted.stdout);
        assert_eq!(drifted.status.code(), Some(1), "{var}: {drifted:?}");
        assert!(text.contains("NOT consistent"), "{text}");
        assert!(text.contains("released missing: 1 order, 1 unit"), "{text}");
        assert!(text.contains(order.as_str()), "{text}");

        let repaired = seckill_reconcile(&[&flags[..], &["--repair", "--json"]].concat());
        assert_eq!(repaired.status.code(), Some(0), "{var}: {repaired:?}");
        let json = report(&repaired);
        assert_eq!(json["consistent"], true, "{json}");
        assert_eq!(json["repaired"][0]["action"], "released", "{json}");
        assert_eq!(json["repaired"][0]["order_id"], order.as_str(), "{json}");
        let level = redis.state(&sale).await.unwrap().expect("the sale");
        assert_eq!(level.sold, 2, "{var}: Redis sold after the repair");

        let again = seckill_reconcile(&flags);
        assert_eq!(again.status.code(), Some(0), "{var}: {again:?}");
    }
}

#[tokio::test]
async fn reconcile_without_a_comparison_exits_2() {
    let test = "reconcile_without_a_comparison_exits_2";
    let Some(redis_url) = configured(test, REDIS_URL) else {
        return;
    };
    for var in DATABASE_URLS {
        let Some(database_url) = configured(test, var) else {
            continue;
        };
        let unknown = SaleId::generate();
        let output = seckill_reconcile(&[
            "--redis",
            &redis_url,
            "--database",
            &database_url,
            "--sale",
            unknown.as_str(),
        ]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{var}: {output:?}");
        assert!(stderr.contains("does not know sale"), "{stderr}");

        // Nothing listens on port 1.
        let output = seckill_reconcile(&[
            "--redis",
            "redis://127.0.0.1:1",
            "--database",
            &database_url,
            "--sale",
            unknown.as_str(),
        ]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{var}: {output:?}");
        assert!(stderr.contains("Redis (--redis)"), "{stderr}");
        assert!(output.stdout.is_empty());
    }
}

/// `seckill reconcile … | head`: the reader goes away before the report is
/// written. The command ends like any filter (SIGPIPE), without a panic.
#[tokio::test]
async fn reconcile_into_a_closed_pipe_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;
    let test = "reconcile_into_a_closed_pipe_ends_quietly";
    let Some(redis_url) = configured(test, REDIS_URL) else {
        return;
    };
    let Some(database_url) = DATABASE_URLS.iter().find_map(|var| configured(test, var)) else {
        return;
    };
    let redis = RedisAuthority::connect(AuthorityConfig::new(&redis_url))
        .await
        .expect("connect to Redis");
    let store = SqlOrders::connect(&database_url).await.expect("database");
    let (sale, _) = sale_with_orders(&redis, &store).await;
    let mut child = Command::new(seckill_binary())
        .args([
            "reconcile",
            "--redis",
            &redis_url,
            "--database",
            &database_url,
        ])
        .args(["--sale", sale.as_str()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run seckill");
    drop(child.stdout.take());
    let output = child.wait_with_output().expect("wait for seckill");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        output.status.signal(),
        Some(SIGPIPE),
        "{:?}: {stderr}",
        output.status
    );
}

/// SIGPIPE's number on Linux.
const SIGPIPE: i32 = 13;
