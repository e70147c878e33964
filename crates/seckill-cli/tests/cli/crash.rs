//! `kill -9` in the middle of a rush. Proves I2 (every acknowledged
//! reservation survives), I1 across a crash (the stock is rebuilt from the
//! durable orders, never oversold) and I4 across a restart.

use futures::StreamExt;
use seckill_test_support::*;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

const STOCK: u64 = 3_000;
const ATTEMPTS: usize = 6_000;
const IN_FLIGHT: usize = 200;
/// Acknowledgements to wait for before pulling the plug.
const KILL_AFTER: usize = 300;

/// What the crowd saw before and after the crash.
#[derive(Default)]
struct Tally {
    /// (user, order id) of every 202.
    acknowledged: Mutex<Vec<(String, String)>>,
    acknowledged_count: AtomicUsize,
    /// Requests sent and not answered yet.
    in_flight: AtomicUsize,
    /// Set once the server is dead.
    killed: AtomicBool,
    /// Requests sent before the kill that got no answer: cut by the crash.
    cut: AtomicUsize,
    /// Requests sent after the kill (no answer possible).
    after_kill: AtomicUsize,
    /// Answers other than 202, as (status, code).
    refused: Mutex<Vec<(StatusCode, String)>>,
}

/// A stream of 6,000 distinct buyers, 200 in flight, is cut by SIGKILL
/// after a few hundred 202s; after a restart every acknowledged order is
/// there, the counts balance, and the rest of the stock sells to exactly
/// zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_orders_survive_kill_9() {
    let mut server = Seckill::start().await;
    let sale = server.open_sale(STOCK, 1).await;

    let tally = Arc::new(Tally::default());
    let crowd = tokio::spawn(crowd(server.api(), sale.clone(), Arc::clone(&tally)));

    // Pull the plug once enough 202s have arrived and the crowd is pressing.
    let deadline = Instant::now() + PATIENCE;
    while tally.acknowledged_count.load(Ordering::SeqCst) < KILL_AFTER
        || tally.in_flight.load(Ordering::SeqCst) < IN_FLIGHT / 2
    {
        assert!(
            Instant::now() < deadline,
            "no {KILL_AFTER} acknowledgements"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    server.kill();
    tally.killed.store(true, Ordering::SeqCst);
    tokio::time::timeout(2 * PATIENCE, crowd)
        .await
        .expect("the crowd finishes once the server is gone")
        .expect("the crowd did not panic");

    let acknowledged = tally.acknowledged.lock().unwrap().clone();
    let cut = tally.cut.load(Ordering::SeqCst);
    let after_kill = tally.after_kill.load(Ordering::SeqCst);
    let refused = tally.refused.lock().unwrap().clone();
    assert!(
        cut > 0,
        "the kill must land while requests are in flight (acknowledged {})",
        acknowledged.len()
    );
    assert!(
        (acknowledged.len() as u64) < STOCK,
        "the kill must land before the stock is gone"
    );
    assert_eq!(
        acknowledged.len() + cut + after_kill + refused.len(),
        ATTEMPTS
    );
    for (status, code) in &refused {
        assert_eq!(
            (*status, code.as_str()),
            (StatusCode::CONFLICT, "sold_out"),
            "unexpected answer before the crash"
        );
    }
    eprintln!(
        "crash: {} acknowledged, {cut} cut by the kill, {after_kill} after it, {} refused",
        acknowledged.len(),
        refused.len()
    );
    let ids: HashSet<&str> = acknowledged.iter().map(|(_, id)| id.as_str()).collect();
    assert_eq!(ids.len(), acknowledged.len(), "order ids must be distinct");

    server.restart().await;

    // I2: every acknowledged reservation is there, still payable.
    futures::stream::iter(&acknowledged)
        .for_each_concurrent(64, |(user, order_id)| {
            let server = &server;
            let sale = &sale;
            async move {
                let order = server.order_of(user, order_id).await;
                assert_eq!(str_field(&order, "sale_id"), *sale);
                assert_eq!(str_field(&order, "status"), "pending_payment", "{order}");
            }
        })
        .await;

    // I1: the rebuilt counter agrees with the durable orders.
    let report = server.report(&sale).await;
    assert_balanced(&report);
    assert_eq!(report.stock, STOCK);
    assert_eq!((report.paid, report.expired, report.cancelled), (0, 0, 0));
    assert!(
        report.pending_payment >= acknowledged.len() as u64,
        "{} acknowledged but only {report:?}",
        acknowledged.len()
    );
    assert!(
        report.pending_payment <= (acknowledged.len() + cut) as u64,
        "more orders than requests that may have reached the server ({} acknowledged, {cut} cut): {report:?}",
        acknowledged.len()
    );

    eprintln!("crash: after restart {report:?}");

    // I4 survives the restart.
    let (first_buyer, _) = &acknowledged[0];
    server
        .purchase(first_buyer, &sale)
        .await
        .expect_error(StatusCode::CONFLICT, "limit_reached");

    // The rest of the stock sells to exactly zero, then not one more.
    let remaining = report.remaining;
    let sold_after = AtomicUsize::new(0);
    futures::stream::iter(0..remaining)
        .for_each_concurrent(IN_FLIGHT, |i| {
            let (server, sale, sold_after) = (&server, &sale, &sold_after);
            async move {
                server.buy(&format!("after-restart-{i}"), sale).await;
                sold_after.fetch_add(1, Ordering::SeqCst);
            }
        })
        .await;
    assert_eq!(sold_after.load(Ordering::SeqCst) as u64, remaining);
    server
        .purchase("one-too-many", &sale)
        .await
        .expect_error(StatusCode::CONFLICT, "sold_out");

    let report = server.report(&sale).await;
    assert_balanced(&report);
    assert_eq!(
        (report.pending_payment, report.remaining),
        (STOCK, 0),
        "{report:?}"
    );
    let stock = eventually(Duration::from_secs(3), "/stock shows sold_out", || async {
        let stock = server.stock(&sale).await;
        (str_field(&stock, "state") == "sold_out").then_some(stock)
    })
    .await;
    assert_eq!(u64_field(&stock, "remaining"), 0);
}

/// 6,000 distinct buyers, each once, at most 200 at a time, each request
/// its own task; every outcome goes to the tally.
async fn crowd(api: Api, sale: String, tally: Arc<Tally>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut requests = JoinSet::new();
    for i in 0..ATTEMPTS {
        let slot = Arc::clone(&slots)
            .acquire_owned()
            .await
            .expect("open semaphore");
        let (api, sale, tally) = (api.clone(), sale.clone(), Arc::clone(&tally));
        requests.spawn(async move {
            let user = format!("crowd-{i}");
            let sent_before_kill = !tally.killed.load(Ordering::SeqCst);
            tally.in_flight.fetch_add(1, Ordering::SeqCst);
            let answer = api.try_purchase(&user, &sale, None, None).await;
            tally.in_flight.fetch_sub(1, Ordering::SeqCst);
            match answer {
                Ok(resp) if resp.status == StatusCode::ACCEPTED => {
                    let order_id = resp.accepted(&sale);
                    tally.acknowledged.lock().unwrap().push((user, order_id));
                    tally.acknowledged_count.fetch_add(1, Ordering::SeqCst);
                }
                Ok(resp) => {
                    let code = resp.try_error().map(|(c, _)| c).unwrap_or_default();
                    tally.refused.lock().unwrap().push((resp.status, code));
                }
                Err(_) if sent_before_kill => {
                    tally.cut.fetch_add(1, Ordering::SeqCst);
                }
                Err(_) => {
                    tally.after_kill.fetch_add(1, Ordering::SeqCst);
                }
            }
            drop(slot);
        });
    }
    while let Some(done) = requests.join_next().await {
        done.expect("a buyer task panicked");
    }
}
