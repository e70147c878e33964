//! The stock authority's scripts against a real Redis.

use crate::fixtures::{authority, buyers, reservations, sale};
use seckill_cluster::authority::{
    AuthorityError, ReleaseOutcome, ReserveOutcome, ReserveRequest, StockEvent, StockEvents,
    StockLevel,
};
use seckill_core::{OrderId, SaleId, Timestamp, UserId};
use seckill_test_support::services::redis_url;
use std::collections::HashSet;
use std::time::Duration;

fn request<'a>(
    sale: &'a SaleId,
    user: &'a UserId,
    quantity: u64,
    order: &'a OrderId,
    key: Option<&'a str>,
) -> ReserveRequest<'a> {
    ReserveRequest {
        sale_id: sale,
        user_id: user,
        quantity,
        order_id: order,
        idempotency_key: key,
    }
}

#[tokio::test]
async fn every_status_of_reserve() {
    let Some(url) = redis_url() else {
        return;
    };
    let redis = authority(&url).await;
    let mut s = sale(3, 2);
    s.payment_timeout_secs = 60;
    assert!(redis.create_sale(&s).await.unwrap());
    assert!(
        !redis.create_sale(&s).await.unwrap(),
        "a second create changes nothing"
    );

    let (alice, bob, carol) = (
        UserId::from("alice"),
        UserId::from("bob"),
        UserId::from("carol"),
    );
    let first = OrderId::generate();
    let before = Timestamp::now();
    let reserved = redis
        .reserve(&request(&s.id, &alice, 1, &first, Some("k1")))
        .await
        .unwrap();
    let ReserveOutcome::Reserved {
        order_id,
        expires_at,
        remaining,
    } = reserved
    else {
        panic!("{reserved:?}");
    };
    assert_eq!((order_id.clone(), remaining), (first.clone(), 2));
    let timeout = expires_at.as_millis() - before.as_millis();
    assert!(
        (59_000..=61_000).contains(&timeout),
        "expires {timeout} ms after the call"
    );

    let again = redis
        .reserve(&request(&s.id, &alice, 1, &OrderId::generate(), Some("k1")))
        .await
        .unwrap();
    assert_eq!(
        again,
        ReserveOutcome::Duplicate {
            order_id: first.clone(),
            expires_at,
            remaining: 2
        }
    );

    let over_limit = redis
        .reserve(&request(&s.id, &alice, 2, &OrderId::generate(), None))
        .await;
    assert_eq!(
        over_limit.unwrap(),
        ReserveOutcome::LimitReached { remaining: 2 }
    );

    let last_two = redis
        .reserve(&request(&s.id, &bob, 2, &OrderId::generate(), None))
        .await;
    assert!(matches!(
        last_two.unwrap(),
        ReserveOutcome::Reserved { remaining: 0, .. }
    ));
    let late = redis
        .reserve(&request(&s.id, &carol, 1, &OrderId::generate(), None))
        .await;
    assert_eq!(late.unwrap(), ReserveOutcome::SoldOut { remaining: 0 });

    assert_eq!(
        redis.state(&s.id).await.unwrap(),
        Some(StockLevel { total: 3, sold: 3 })
    );
    let entries = reservations(&url, &s.id).await;
    assert_eq!(entries.len(), 2, "only reservations are in the stream");
    let entry = &entries[0];
    let field = |name: &str| entry.get(name).map(String::as_str);
    assert_eq!(field("order_id"), Some(first.as_str()));
    assert_eq!(field("sale_id"), Some(s.id.as_str()));
    assert_eq!(field("user_id"), Some("alice"));
    assert_eq!(field("quantity"), Some("1"));
    assert_eq!(field("idempotency_key"), Some("k1"));
    assert_eq!(
        field("expires_at_ms"),
        Some(expires_at.as_millis().to_string().as_str())
    );
    let created: i64 = field("created_at_ms").unwrap().parse().unwrap();
    assert_eq!(created + 60_000, expires_at.as_millis());
    assert_eq!(
        entry.len(),
        7,
        "exactly the fields of the data model: {entry:?}"
    );
    assert_eq!(
        entries[1].get("idempotency_key").map(String::as_str),
        Some("")
    );

    let unknown = SaleId::generate();
    let outcome = redis
        .reserve(&request(&unknown, &alice, 1, &OrderId::generate(), None))
        .await;
    assert_eq!(outcome.unwrap(), ReserveOutcome::UnknownSale);
    assert_eq!(redis.state(&unknown).await.unwrap(), None);

    let now = Timestamp::now().as_millis();
    let mut upcoming = sale(5, 1);
    upcoming.starts_at = Timestamp::from_millis(now + 3_600_000);
    let mut ended = sale(5, 1);
    ended.starts_at = Timestamp::from_millis(now - 7_200_000);
    ended.ends_at = Some(Timestamp::from_millis(now - 3_600_000));
    for s in [&upcoming, &ended] {
        redis.create_sale(s).await.unwrap();
    }
    let outcome = redis
        .reserve(&request(
            &upcoming.id,
            &alice,
            1,
            &OrderId::generate(),
            None,
        ))
        .await;
    assert_eq!(
        outcome.unwrap(),
        ReserveOutcome::NotStarted { remaining: 5 }
    );
    let outcome = redis
        .reserve(&request(&ended.id, &alice, 1, &OrderId::generate(), None))
        .await;
    assert_eq!(outcome.unwrap(), ReserveOutcome::Ended { remaining: 5 });
}

#[tokio::test]
async fn one_key_is_one_order_across_nodes() {
    let Some(url) = redis_url() else {
        return;
    };
    let nodes = [authority(&url).await, authority(&url).await];
    let s = sale(10, 5);
    nodes[0].create_sale(&s).await.unwrap();
    nodes[1].create_sale(&s).await.unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let (node, sale_id) = (nodes[i % 2].clone(), s.id.clone());
            tokio::spawn(async move {
                let (user, order) = (UserId::from("dave"), OrderId::generate());
                node.reserve(&request(&sale_id, &user, 1, &order, Some("retry")))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut orders = HashSet::new();
    let mut reserved = 0;
    for task in tasks {
        match task.await.unwrap() {
            ReserveOutcome::Reserved { order_id, .. } => {
                reserved += 1;
                orders.insert(order_id);
            }
            ReserveOutcome::Duplicate { order_id, .. } => {
                orders.insert(order_id);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(reserved, 1);
    assert_eq!(orders.len(), 1, "every answer names the same order");
    assert_eq!(nodes[0].state(&s.id).await.unwrap().unwrap().sold, 1);
    assert_eq!(reservations(&url, &s.id).await.len(), 1);
}

#[tokio::test]
async fn a_crowd_takes_exactly_the_stock() {
    let Some(url) = redis_url() else {
        return;
    };
    let nodes = [authority(&url).await, authority(&url).await];
    let s = sale(50, 1);
    nodes[0].create_sale(&s).await.unwrap();
    let tasks: Vec<_> = (0..500)
        .map(|i| {
            let (node, sale_id) = (nodes[i % 2].clone(), s.id.clone());
            tokio::spawn(async move {
                let (user, order) = (UserId::from(format!("user-{i}")), OrderId::generate());
                node.reserve(&request(&sale_id, &user, 1, &order, None))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut reserved = 0;
    for task in tasks {
        match task.await.unwrap() {
            ReserveOutcome::Reserved { .. } => reserved += 1,
            ReserveOutcome::SoldOut { remaining: 0 } => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(reserved, 50);
    assert_eq!(
        nodes[1].state(&s.id).await.unwrap(),
        Some(StockLevel {
            total: 50,
            sold: 50
        })
    );
    assert_eq!(reservations(&url, &s.id).await.len(), 50);
    let held = buyers(&url, &s.id).await;
    assert_eq!(held.values().sum::<u64>(), 50);
    assert!(held.values().all(|&units| units == 1));
}

#[tokio::test]
async fn concurrent_retries_never_pass_the_user_limit() {
    let Some(url) = redis_url() else {
        return;
    };
    let nodes = [authority(&url).await, authority(&url).await];
    let s = sale(100, 2);
    nodes[0].create_sale(&s).await.unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let (node, sale_id) = (nodes[i % 2].clone(), s.id.clone());
            tokio::spawn(async move {
                let (user, order, key) =
                    (UserId::from("erin"), OrderId::generate(), format!("k{i}"));
                node.reserve(&request(&sale_id, &user, 1, &order, Some(&key)))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut reserved = 0;
    for task in tasks {
        match task.await.unwrap() {
            ReserveOutcome::Reserved { .. } => reserved += 1,
            ReserveOutcome::LimitReached { .. } => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(reserved, 2);
    assert_eq!(buyers(&url, &s.id).await.get("erin"), Some(&2));
    assert_eq!(nodes[0].state(&s.id).await.unwrap().unwrap().sold, 2);
}

#[tokio::test]
async fn release_is_idempotent_and_announced() {
    let Some(url) = redis_url() else {
        return;
    };
    let redis = authority(&url).await;
    let s = sale(2, 2);
    let mut events = redis.events();
    assert_eq!(
        next_event(&mut events, &s.id).await,
        StockEvent::Resync,
        "subscribed"
    );
    redis.create_sale(&s).await.unwrap();
    let user = UserId::from("frank");
    let order = OrderId::generate();
    let outcome = redis
        .reserve(&request(&s.id, &user, 2, &order, None))
        .await
        .unwrap();
    assert!(matches!(
        outcome,
        ReserveOutcome::Reserved { remaining: 0, .. }
    ));
    assert_eq!(
        next_event(&mut events, &s.id).await,
        StockEvent::SoldOut(s.id.clone())
    );

    assert_eq!(
        redis.release(&s.id, &order, &user, 2).await.unwrap(),
        ReleaseOutcome::Released
    );
    assert_eq!(
        next_event(&mut events, &s.id).await,
        StockEvent::Restock(s.id.clone())
    );
    assert_eq!(
        redis.release(&s.id, &order, &user, 2).await.unwrap(),
        ReleaseOutcome::AlreadyReleased
    );
    assert_eq!(
        redis.state(&s.id).await.unwrap(),
        Some(StockLevel { total: 2, sold: 0 })
    );
    assert!(
        buyers(&url, &s.id).await.is_empty(),
        "a buyer holding nothing is removed"
    );
    let unknown = SaleId::generate();
    assert_eq!(
        redis.release(&unknown, &order, &user, 1).await.unwrap(),
        ReleaseOutcome::UnknownSale
    );
    // The units are on sale again, and the user may buy again.
    let outcome = redis
        .reserve(&request(&s.id, &user, 2, &OrderId::generate(), None))
        .await;
    assert!(matches!(
        outcome.unwrap(),
        ReserveOutcome::Reserved { remaining: 0, .. }
    ));
    // A release of more than was sold is refused, and changes nothing.
    let bogus = redis.release(&s.id, &OrderId::generate(), &user, 3).await;
    assert!(
        matches!(bogus, Err(AuthorityError::Protocol(_))),
        "{bogus:?}"
    );
    assert_eq!(redis.state(&s.id).await.unwrap().unwrap().sold, 2);
}

/// The next event about `sale` (other tests' sales share the channels),
/// or a resync.
async fn next_event(events: &mut StockEvents, sale: &SaleId) -> StockEvent {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let event = events.next().await.expect("events stopped");
            match &event {
                StockEvent::SoldOut(id) | StockEvent::Restock(id) if id != sale => continue,
                _ => return event,
            }
        }
    })
    .await
    .expect("an event within 5 s")
}
