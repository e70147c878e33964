//! The life of an order after its reservation: payment, expiry (I6),
//! cancellation, and expiry across a restart.

use seckill_test_support::*;
use std::time::{Duration, Instant};

/// With a 1 s payment timeout: the unpaid order is expired by 2.5 s, cannot
/// be paid, and its unit is back on sale; the paid one is untouched and
/// still counts against its buyer's limit; the expired buyer may buy again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpaid_order_expires_and_its_unit_returns() {
    let server = Seckill::start().await;
    let sale = server
        .open_sale_with(json!({ "stock": 5, "per_user_limit": 1, "payment_timeout_secs": 1 }))
        .await;

    let paid = server.buy("alice", &sale).await;
    let order = server
        .pay("alice", &paid, "alice-payment")
        .await
        .expect(StatusCode::OK);
    assert_eq!(str_field(&order, "status"), "paid", "{order}");
    assert_eq!(str_field(&order, "order_id"), paid);

    let unpaid = server.buy("bob", &sale).await;
    let reserved_at = Instant::now();
    let report = server.report(&sale).await;
    assert_eq!((report.remaining, report.paid), (3, 1), "{report:?}");

    // I6: expired within timeout + 1 s; checked at 2.5 s after the 202.
    tokio::time::sleep_until((reserved_at + Duration::from_millis(2_500)).into()).await;
    let order = server.order_of("bob", &unpaid).await;
    assert_eq!(str_field(&order, "status"), "expired", "{order}");
    server
        .pay("bob", &unpaid, "too-late")
        .await
        .expect_error(StatusCode::CONFLICT, "order_expired");

    let report = server.report(&sale).await;
    assert_balanced(&report);
    assert_eq!(
        (
            report.remaining,
            report.pending_payment,
            report.paid,
            report.expired
        ),
        (4, 0, 1, 1),
        "{report:?}"
    );
    eventually(
        Duration::from_secs(2),
        "/stock shows the unit back",
        || async { (u64_field(&server.stock(&sale).await, "remaining") == 4).then_some(()) },
    )
    .await;

    let order = server.order_of("alice", &paid).await;
    assert_eq!(str_field(&order, "status"), "paid", "{order}");
    server
        .purchase("alice", &sale)
        .await
        .expect_error(StatusCode::CONFLICT, "limit_reached");

    let again = server.buy("bob", &sale).await;
    assert_ne!(again, unpaid, "a new order, not the expired one");
}

/// Cancelling a pending order gives its unit back and frees the buyer; a
/// cancelled order can be neither cancelled again nor paid; a paid order
/// cannot be cancelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_returns_the_unit() {
    let server = Seckill::start().await;
    let sale = server.open_sale(3, 1).await;

    let order_id = server.buy("carol", &sale).await;
    assert_eq!(server.report(&sale).await.remaining, 2);
    let order = server
        .cancel("carol", &order_id)
        .await
        .expect(StatusCode::OK);
    assert_eq!(str_field(&order, "status"), "cancelled", "{order}");
    assert_eq!(str_field(&order, "order_id"), order_id);

    let report = server.report(&sale).await;
    assert_balanced(&report);
    assert_eq!(
        (report.remaining, report.pending_payment, report.cancelled),
        (3, 0, 1),
        "{report:?}"
    );
    let order = server.order_of("carol", &order_id).await;
    assert_eq!(str_field(&order, "status"), "cancelled", "{order}");
    server
        .cancel("carol", &order_id)
        .await
        .expect_error(StatusCode::CONFLICT, "not_cancellable");
    server
        .pay("carol", &order_id, "after-cancel")
        .await
        .expect_error(StatusCode::CONFLICT, "order_cancelled");
    let again = server.buy("carol", &sale).await;
    assert_ne!(again, order_id);

    let paid = server.buy("dave", &sale).await;
    server
        .pay("dave", &paid, "dave-ref")
        .await
        .expect(StatusCode::OK);
    server
        .cancel("dave", &paid)
        .await
        .expect_error(StatusCode::CONFLICT, "not_cancellable");

    let report = server.report(&sale).await;
    assert_balanced(&report);
    assert_eq!(
        (
            report.remaining,
            report.pending_payment,
            report.paid,
            report.cancelled
        ),
        (1, 1, 1, 1),
        "{report:?}"
    );
}

/// Paying twice with the same reference is one payment (same order, same
/// `paid_at`); another reference on a paid order is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payment_is_idempotent_per_reference() {
    let server = Seckill::start().await;
    let sale = server.open_sale(2, 1).await;
    let order_id = server.buy("erin", &sale).await;

    let first = server
        .pay("erin", &order_id, "ref-1")
        .await
        .expect(StatusCode::OK);
    assert_eq!(str_field(&first, "status"), "paid", "{first}");
    assert_eq!(str_field(&first, "order_id"), order_id);
    let paid_at = str_field(&first, "paid_at");
    parse_rfc3339_millis(&paid_at);

    let second = server
        .pay("erin", &order_id, "ref-1")
        .await
        .expect(StatusCode::OK);
    assert_eq!(str_field(&second, "status"), "paid", "{second}");
    assert_eq!(str_field(&second, "order_id"), order_id);
    assert_eq!(
        str_field(&second, "paid_at"),
        paid_at,
        "same payment, same paid_at"
    );

    server
        .pay("erin", &order_id, "ref-2")
        .await
        .expect_error(StatusCode::CONFLICT, "not_payable");

    let order = server.order_of("erin", &order_id).await;
    assert_eq!(str_field(&order, "status"), "paid");
    assert_eq!(str_field(&order, "paid_at"), paid_at);
    let report = server.report(&sale).await;
    assert_balanced(&report);
    assert_eq!(
        (report.paid, report.pending_payment, report.remaining),
        (1, 0, 1)
    );
}

/// An order whose deadline passes while the server is down is expired
/// within about a second of the restart, and its unit is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_expire_across_a_restart() {
    let mut server = Seckill::start().await;
    let sale = server
        .open_sale_with(json!({ "stock": 3, "payment_timeout_secs": 2 }))
        .await;
    let order_id = server.buy("frank", &sale).await;
    let reserved_at = Instant::now();
    let order = server.order_of("frank", &order_id).await;
    assert_eq!(str_field(&order, "status"), "pending_payment");

    server.stop().await;
    tokio::time::sleep_until((reserved_at + Duration::from_secs(3)).into()).await;
    server.restart().await;

    eventually(
        Duration::from_millis(1_500),
        "expiry after restart",
        || async {
            let order = server.order_of("frank", &order_id).await;
            (str_field(&order, "status") == "expired").then_some(())
        },
    )
    .await;
    let report = server.report(&sale).await;
    assert_balanced(&report);
    assert_eq!(
        (report.remaining, report.pending_payment, report.expired),
        (3, 0, 1),
        "{report:?}"
    );
    server
        .pay("frank", &order_id, "too-late")
        .await
        .expect_error(StatusCode::CONFLICT, "order_expired");
    server.buy("frank", &sale).await;
}
