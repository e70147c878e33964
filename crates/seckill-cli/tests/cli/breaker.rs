//! The store's circuit breaker: while the store cannot commit (here another
//! process holds SQLite's write lock, as a stuck backup job would), the
//! first purchases wait out the store's busy timeout and fail; then the
//! breaker opens and purchases are refused at once (503, nothing taken).
//! Once the store is back, a probe closes the breaker and sales resume.

use seckill_test_support::*;
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_stuck_store_opens_the_breaker_and_purchases_fail_fast_until_it_recovers() {
    let seckill =
        Seckill::start_with(&["--breaker-failures", "3", "--breaker-open-ms", "3000"]).await;
    let sale = seckill.open_sale(100, 1).await;
    seckill
        .purchase("before", &sale)
        .await
        .expect(StatusCode::ACCEPTED);

    let mut lock_holder = rusqlite::Connection::open(seckill.data_dir().join("seckill.db"))
        .expect("open the engine's database");
    let lock = lock_holder
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .expect("take SQLite's write lock");

    // The first failures each wait for the store to give up (or for the
    // request time limit; their writes fail later either way).
    let failing = (0..3).map(|i| {
        let api = seckill.api();
        let sale = sale.clone();
        async move { api.purchase(&format!("waiting-{i}"), &sale).await }
    });
    for answer in futures::future::join_all(failing).await {
        answer.expect_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    }
    eventually(PATIENCE, "the breaker opens", || async {
        let metrics = seckill.get("/metrics", &Auth::None).await.text();
        metrics
            .contains("seckill_breaker_state{dependency=\"store\"} 2")
            .then_some(())
    })
    .await;

    // Open: refused at once, well inside the store's 5 s busy timeout.
    let started = Instant::now();
    let refused = seckill.purchase("refused-fast", &sale).await;
    let took = started.elapsed();
    refused.expect_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert!(
        took < Duration::from_secs(1),
        "took {took:?}: the breaker is not open"
    );

    lock.rollback().expect("release the write lock");
    drop(lock_holder);
    let mut attempt = 0;
    eventually(PATIENCE, "purchases succeed again", || {
        attempt += 1;
        let user = format!("after-{attempt}");
        let api = seckill.api();
        let sale = sale.clone();
        async move { (api.purchase(&user, &sale).await.status == StatusCode::ACCEPTED).then_some(()) }
    })
    .await;

    let report = seckill.report(&sale).await;
    assert_eq!(
        report.pending_payment, 2,
        "only 'before' and the first success hold stock: {report:?}"
    );
    assert_eq!(report.remaining, 98, "{report:?}");
    let metrics = seckill.get("/metrics", &Auth::None).await.text();
    assert!(
        metrics.contains("seckill_breaker_state{dependency=\"store\"} 0"),
        "closed again:\n{metrics}"
    );
}
