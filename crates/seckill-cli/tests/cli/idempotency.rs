//! I5: the same `Idempotency-Key` from the same user on the same sale gets
//! the same answer and never a second order — concurrently, sequentially
//! and across restarts — while other users, sales and keys are unaffected.

use futures::future::join_all;
use seckill_test_support::*;
use std::collections::HashSet;

/// Ten concurrent retries with one key make one order of one unit, even
/// though the limit (5) would allow more; a later retry returns it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_retries_make_one_order() {
    let server = Seckill::start().await;
    let sale = server.open_sale(10, 5).await;

    let retries = (0..10).map(|_| server.purchase_with("ivy", &sale, None, Some("key-1")));
    let ids: HashSet<String> = join_all(retries)
        .await
        .iter()
        .map(|resp| resp.accepted(&sale))
        .collect();
    assert_eq!(ids.len(), 1, "one key, one order: {ids:?}");
    let order_id = ids.into_iter().next().unwrap();

    let retry = server
        .purchase_with("ivy", &sale, None, Some("key-1"))
        .await;
    assert_eq!(retry.accepted(&sale), order_id);

    let report = server.report(&sale).await;
    assert_balanced(&report);
    assert_eq!(
        (report.pending_payment, report.remaining),
        (1, 9),
        "{report:?}"
    );
    let mine = server.my_orders("ivy", &sale).await;
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert_eq!(str_field(&mine[0], "order_id"), order_id);

    // Without the key (or with another one) the same user buys again.
    let other_key = server
        .purchase_with("ivy", &sale, None, Some("key-2"))
        .await;
    let no_key = server.purchase("ivy", &sale).await;
    let more: HashSet<String> = [other_key.accepted(&sale), no_key.accepted(&sale)].into();
    assert_eq!(more.len(), 2);
    assert!(!more.contains(&order_id));
    assert_eq!(server.report(&sale).await.pending_payment, 3);
}

/// A key belongs to one user and one sale: another user, or the same user
/// on another sale, gets a new order with the same key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_is_scoped_to_user_and_sale() {
    let server = Seckill::start().await;
    let sale = server.open_sale(10, 5).await;
    let other_sale = server.open_sale(10, 5).await;

    let ivy = server
        .purchase_with("ivy", &sale, None, Some("shared-key"))
        .await
        .accepted(&sale);
    let jack = server
        .purchase_with("jack", &sale, None, Some("shared-key"))
        .await
        .accepted(&sale);
    let ivy_elsewhere = server
        .purchase_with("ivy", &other_sale, None, Some("shared-key"))
        .await
        .accepted(&other_sale);
    let ids: HashSet<&String> = [&ivy, &jack, &ivy_elsewhere].into();
    assert_eq!(ids.len(), 3, "three orders");

    assert_eq!(
        str_field(&server.order_of("jack", &jack).await, "sale_id"),
        sale
    );
    server
        .order("jack", &ivy)
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(server.report(&sale).await.pending_payment, 2);
    assert_eq!(server.report(&other_sale).await.pending_payment, 1);

    let retry = server
        .purchase_with("jack", &sale, None, Some("shared-key"))
        .await;
    assert_eq!(retry.accepted(&sale), jack);
}

/// The key is durable with the order: a retry after a graceful restart,
/// and after a `kill -9`, returns the original order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_restart_returns_the_same_order() {
    let mut server = Seckill::start().await;
    let sale = server.open_sale(10, 5).await;

    let graceful = server
        .purchase_with("kim", &sale, None, Some("before-stop"))
        .await
        .accepted(&sale);
    server.stop().await;
    server.restart().await;
    let retry = server
        .purchase_with("kim", &sale, None, Some("before-stop"))
        .await;
    assert_eq!(retry.accepted(&sale), graceful);

    let crashed = server
        .purchase_with("kim", &sale, None, Some("before-crash"))
        .await
        .accepted(&sale);
    assert_ne!(crashed, graceful);
    server.kill();
    server.restart().await;
    for (key, order_id) in [("before-stop", &graceful), ("before-crash", &crashed)] {
        let retry = server.purchase_with("kim", &sale, None, Some(key)).await;
        assert_eq!(&retry.accepted(&sale), order_id, "key {key}");
    }

    let report = server.report(&sale).await;
    assert_balanced(&report);
    assert_eq!(
        (report.pending_payment, report.remaining),
        (2, 8),
        "{report:?}"
    );
    assert_eq!(server.my_orders("kim", &sale).await.len(), 2);
}

/// A retry is never told it lost: a key that was answered gets that answer
/// although the sale sold out or ended since, and after a restart. The
/// same request without the key, with another key or from another user is
/// refused as the sale now stands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_gets_its_answer_after_the_sale_sold_out_or_ended() {
    let mut server = Seckill::start().await;
    let sold_out = server.open_sale(1, 2).await;
    let ending = server
        .open_sale_with(serde_json::json!({
            "stock": 5, "per_user_limit": 2, "ends_at": rfc3339(now_unix() + 2),
        }))
        .await;
    let won = server
        .purchase_with("lee", &sold_out, None, Some("k1"))
        .await
        .accepted(&sold_out);
    let before_end = server
        .purchase_with("lee", &ending, None, Some("k1"))
        .await
        .accepted(&ending);
    eventually(PATIENCE, "the sale ended", || async {
        (str_field(&server.stock(&ending).await, "state") == "ended").then_some(())
    })
    .await;

    for moment in ["as it happens", "after a restart"] {
        for (sale, order_id, refusal) in [
            (&sold_out, &won, "sold_out"),
            (&ending, &before_end, "ended"),
        ] {
            let retry = server.purchase_with("lee", sale, None, Some("k1")).await;
            assert_eq!(&retry.accepted(sale), order_id, "{refusal} sale, {moment}");
            for (user, key) in [("lee", None), ("lee", Some("k2")), ("mo", Some("k1"))] {
                server
                    .purchase_with(user, sale, None, key)
                    .await
                    .expect_error(StatusCode::CONFLICT, refusal);
            }
        }
        server.stop().await;
        server.restart().await;
    }
    assert_eq!(server.my_orders("lee", &sold_out).await.len(), 1);
    assert_eq!(server.my_orders("lee", &ending).await.len(), 1);
}

/// SQLite compares user ids and keys byte for byte: `victim ` and `VICTIM`
/// are not `victim` (the same case runs on PostgreSQL and MariaDB in
/// the `cluster` module).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identities_compare_byte_for_byte_on_sqlite() {
    let server = Seckill::start().await;
    let sale = server.open_sale(10, 2).await;
    identities_compare_byte_for_byte(&server, &sale).await;
    let report = server.report(&sale).await;
    assert_eq!(report.pending_payment, 5, "{report:?}");
}
