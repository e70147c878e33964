//! The crowd: many more concurrent buyers than stock. Proves I1 (no
//! oversell), I4 (per-user limit under concurrent retries) and that every
//! refusal is a clean 409.

use futures::future::join_all;
use seckill_test_support::*;
use std::collections::{BTreeMap, HashMap, HashSet};

/// 1,000 users fire two purchases each, all at once, at 100 units with a
/// limit of one: exactly 100 reservations, one per user at most, all of them
/// real, and the stock ends at exactly zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_attempts_sell_exactly_the_stock() {
    const STOCK: u64 = 100;
    const USERS: usize = 1_000;
    let server = Seckill::start().await;
    let sale = server.open_sale(STOCK, 1).await;

    let attempts = (0..USERS).flat_map(|i| {
        let user = format!("rush-user-{i}");
        let api = &server;
        let sale = &sale;
        [0, 1].map(move |_| {
            let user = user.clone();
            async move {
                let resp = api.purchase(&user, sale).await;
                (user, resp)
            }
        })
    });
    let answers = join_all(attempts).await;
    assert_eq!(answers.len(), 2 * USERS);

    let mut winners: HashMap<String, String> = HashMap::new();
    let mut refusals: BTreeMap<String, usize> = BTreeMap::new();
    for (user, resp) in &answers {
        if resp.status == StatusCode::ACCEPTED {
            let order_id = resp.accepted(&sale);
            let previous = winners.insert(user.clone(), order_id);
            assert!(previous.is_none(), "{user} got two reservations (limit 1)");
        } else {
            *refusals.entry(resp.expect_rush_refusal()).or_default() += 1;
        }
    }
    eprintln!(
        "rush: {} reservations, refusals {refusals:?}",
        winners.len()
    );
    assert_eq!(winners.len() as u64, STOCK, "refusals: {refusals:?}");
    assert_eq!(refusals.values().sum::<usize>(), 2 * USERS - STOCK as usize);
    let order_ids: HashSet<&String> = winners.values().collect();
    assert_eq!(order_ids.len() as u64, STOCK, "order ids must be distinct");

    let reads = winners.iter().map(|(user, order_id)| async {
        let order = server.order_of(user, order_id).await;
        assert_eq!(str_field(&order, "sale_id"), sale);
        assert_eq!(str_field(&order, "status"), "pending_payment");
        assert_eq!(u64_field(&order, "quantity"), 1);
    });
    join_all(reads).await;

    let report = server.report(&sale).await;
    assert_balanced(&report);
    assert_eq!(
        (
            report.pending_payment,
            report.remaining,
            report.paid,
            report.queued
        ),
        (STOCK, 0, 0, 0),
        "{report:?}"
    );
    let stock = server.stock(&sale).await;
    assert_eq!(str_field(&stock, "sale_id"), sale);
    assert_eq!(u64_field(&stock, "stock"), STOCK);
    assert_eq!(u64_field(&stock, "remaining"), 0);
    assert_eq!(str_field(&stock, "state"), "sold_out");

    server
        .purchase("late-comer", &sale)
        .await
        .expect_error(StatusCode::CONFLICT, "sold_out");
}

/// Twenty users each ask for 3 of 10 units at once (limit 3): only whole
/// requests are granted, so exactly three succeed and one unit is left,
/// which is then still for sale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_unit_requests_are_all_or_nothing() {
    let server = Seckill::start().await;
    let sale = server.open_sale(10, 3).await;

    let attempts = (0..20).map(|i| {
        let user = format!("triple-{i}");
        let server = &server;
        let sale = &sale;
        async move {
            let resp = server.purchase_with(&user, sale, Some(3), None).await;
            (user, resp)
        }
    });
    let mut winners = Vec::new();
    for (user, resp) in join_all(attempts).await {
        if resp.status == StatusCode::ACCEPTED {
            winners.push((user, resp.accepted(&sale)));
        } else {
            resp.expect_error(StatusCode::CONFLICT, "sold_out");
        }
    }
    assert_eq!(winners.len(), 3, "10 units hold three requests of 3");
    for (user, order_id) in &winners {
        assert_eq!(
            u64_field(&server.order_of(user, order_id).await, "quantity"),
            3
        );
    }
    let report = server.report(&sale).await;
    assert_balanced(&report);
    assert_eq!(
        (report.pending_payment, report.remaining),
        (9, 1),
        "{report:?}"
    );
    assert_eq!(str_field(&server.stock(&sale).await, "state"), "open");

    let last = server.purchase_with("single", &sale, Some(1), None).await;
    last.accepted(&sale);
    let report = server.report(&sale).await;
    assert_eq!(
        (report.pending_payment, report.remaining),
        (10, 0),
        "{report:?}"
    );
}

/// Eight users each fire 3, 2, 1 and 1 units at once at 10 units (limit 3):
/// nobody ends above 3, the granted units match the report, and the rest is
/// exactly what remains for sale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_quantities_respect_limit_and_stock() {
    const STOCK: u64 = 10;
    const LIMIT: u64 = 3;
    let server = Seckill::start().await;
    let sale = server.open_sale(STOCK, LIMIT).await;

    let attempts = (0..8).flat_map(|i| {
        let user = format!("mixed-{i}");
        let server = &server;
        let sale = &sale;
        [3, 2, 1, 1].map(move |quantity| {
            let user = user.clone();
            async move {
                let resp = server
                    .purchase_with(&user, sale, Some(quantity), None)
                    .await;
                (user, quantity, resp)
            }
        })
    });
    let mut held: BTreeMap<String, u64> = BTreeMap::new();
    for (user, quantity, resp) in join_all(attempts).await {
        if resp.status == StatusCode::ACCEPTED {
            resp.accepted(&sale);
            *held.entry(user).or_default() += quantity;
        } else {
            resp.expect_rush_refusal();
        }
    }
    let reserved: u64 = held.values().sum();
    assert!(
        reserved > 0 && reserved <= STOCK,
        "reserved {reserved}: {held:?}"
    );
    for (user, units) in &held {
        assert!(*units <= LIMIT, "{user} holds {units} > {LIMIT}");
        let listed: u64 = server
            .my_orders(user, &sale)
            .await
            .iter()
            .map(|order| u64_field(order, "quantity"))
            .sum();
        assert_eq!(listed, *units, "{user}'s orders");
    }
    let report = server.report(&sale).await;
    assert_balanced(&report);
    assert_eq!(report.pending_payment, reserved, "{report:?}");
    assert_eq!(report.remaining, STOCK - reserved, "{report:?}");

    // The remainder still sells, to the unit.
    let mut left = report.remaining;
    let mut buyer = 0;
    while left > 0 {
        let quantity = left.min(LIMIT);
        server
            .purchase_with(&format!("sweeper-{buyer}"), &sale, Some(quantity), None)
            .await
            .accepted(&sale);
        left -= quantity;
        buyer += 1;
    }
    server
        .purchase("one-too-many", &sale)
        .await
        .expect_error(StatusCode::CONFLICT, "sold_out");
    let report = server.report(&sale).await;
    assert_eq!(
        (report.pending_payment, report.remaining),
        (STOCK, 0),
        "{report:?}"
    );
}
