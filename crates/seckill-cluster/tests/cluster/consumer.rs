//! The stream consumer against the real Redis (SECKILL_TEST_REDIS_URL) and
//! each real database: entries are written with plain XADD in the format
//! of the crate docs, as the purchase script writes them.

use crate::fixtures::{self, databases, new_sale, now};
use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use redis::streams::{
    StreamInfoGroupsReply, StreamPendingCountReply, StreamRangeReply, StreamReadOptions,
    StreamReadReply,
};
use seckill_cluster::authority::keys::SaleKeys;
use seckill_cluster::consumer::{Consumer, ConsumerConfig};
use seckill_cluster::orders::SqlOrders;
use seckill_cluster::queue::queue_position;
use seckill_cluster::stream::ORDERS_GROUP;
use seckill_core::{OrderId, SaleId};
use seckill_test_support::Relay;
use seckill_test_support::services::{connection, database_urls, redis};
use std::time::{Duration, Instant};

const HOUR_MS: i64 = 3_600_000;

/// The stock authority on the same Redis, which a consumer follows.
async fn authority_of(client: &redis::Client) -> seckill_cluster::authority::RedisAuthority {
    fixtures::authority(&format!("redis://{}", client.get_connection_info().addr())).await
}

/// The fields of a reservation entry as the purchase script XADDs them.
fn entry(sale: &SaleId, order: &OrderId, quantity: &str) -> [(&'static str, String); 7] {
    let now = now();
    [
        ("order_id", order.to_string()),
        ("sale_id", sale.to_string()),
        ("user_id", format!("buyer-{order}")),
        ("quantity", quantity.to_string()),
        ("idempotency_key", String::new()),
        ("created_at_ms", now.to_string()),
        ("expires_at_ms", (now + HOUR_MS).to_string()),
    ]
}

/// XADDs a reservation entry; returns its order id.
async fn add_entry(redis: &mut MultiplexedConnection, sale: &SaleId, quantity: &str) -> OrderId {
    let order = OrderId::generate();
    let _: String = redis
        .xadd(
            SaleKeys::new(sale).reservations,
            "*",
            &entry(sale, &order, quantity),
        )
        .await
        .expect("XADD");
    order
}

/// XADDs `n` reservation entries in one pipeline; returns their order ids.
async fn add_entries(redis: &mut MultiplexedConnection, sale: &SaleId, n: usize) -> Vec<OrderId> {
    let orders: Vec<_> = (0..n).map(|_| OrderId::generate()).collect();
    let mut pipe = redis::pipe();
    for order in &orders {
        pipe.xadd(
            SaleKeys::new(sale).reservations,
            "*",
            &entry(sale, order, "1"),
        )
        .ignore();
    }
    let _: () = pipe.query_async(redis).await.expect("XADD");
    orders
}

/// Entries delivered to the group and not acknowledged.
async fn pending(redis: &mut MultiplexedConnection, sale: &SaleId) -> usize {
    let reply: StreamPendingCountReply = redis
        .xpending_count(
            SaleKeys::new(sale).reservations,
            ORDERS_GROUP,
            "-",
            "+",
            100_000,
        )
        .await
        .expect("XPENDING");
    reply.ids.len()
}

/// Entries not yet delivered to the group (Redis 7's group lag).
async fn undelivered(redis: &mut MultiplexedConnection, sale: &SaleId) -> usize {
    let groups: StreamInfoGroupsReply = redis
        .xinfo_groups(SaleKeys::new(sale).reservations)
        .await
        .expect("XINFO GROUPS");
    let group = groups.groups.into_iter().find(|g| g.name == ORDERS_GROUP);
    group.and_then(|g| g.lag).expect("the group's lag")
}

async fn dead_letters(redis: &mut MultiplexedConnection, sale: &SaleId) -> StreamRangeReply {
    redis
        .xrange_all(SaleKeys::new(sale).dead_letter)
        .await
        .expect("XRANGE")
}

async fn forget(redis: &mut MultiplexedConnection, sale: &SaleId) {
    let _: () = redis
        .del(&[
            SaleKeys::new(sale).reservations,
            SaleKeys::new(sale).dead_letter,
        ])
        .await
        .expect("DEL");
}

/// Each order exists once: one unit each, and as many units as orders.
async fn assert_stored_once(store: &SqlOrders, sale: &SaleId, orders: &[OrderId]) {
    for order in orders {
        let row = store.order(order).await.unwrap();
        assert!(row.is_some(), "{order} has no row ({:?})", store.dialect());
    }
    let units = store.units_by_status(sale).await.unwrap();
    assert_eq!(
        units.pending_payment,
        orders.len() as u64,
        "{:?}",
        store.dialect()
    );
}

fn fast_config(name: &str) -> ConsumerConfig {
    ConsumerConfig {
        min_idle: Duration::from_millis(100),
        block: Duration::from_millis(100),
        max_deliveries: 3,
        max_backoff: Duration::from_millis(200),
        ..ConsumerConfig::new(name)
    }
}

/// Steps until a round finds nothing to do.
async fn drain(consumer: &mut Consumer) {
    while consumer.step().await.expect("step") > 0 {}
}

#[tokio::test]
async fn every_entry_becomes_one_order_and_is_acknowledged() {
    let Some(client) = redis() else {
        return;
    };
    let mut redis = connection(&client).await;
    for store in databases("every_entry_becomes_one_order_and_is_acknowledged").await {
        let sale = new_sale(&store).await;
        // More than one batch, and written before any consumer exists.
        let orders = add_entries(&mut redis, &sale, 1_234).await;
        let mut consumer = Consumer::new(
            &authority_of(&client).await,
            store.clone(),
            sale.clone(),
            fast_config("node-a"),
        )
        .unwrap();
        drain(&mut consumer).await;

        assert_stored_once(&store, &sale, &orders).await;
        assert_eq!(pending(&mut redis, &sale).await, 0);
        assert_eq!(undelivered(&mut redis, &sale).await, 0);
        assert_eq!(dead_letters(&mut redis, &sale).await.ids.len(), 0);

        // A reservation written twice (a retried script) is still one order.
        let again: Vec<(String, String)> = {
            let range: StreamRangeReply = redis
                .xrange_count(SaleKeys::new(&sale).reservations, "-", "+", 1)
                .await
                .unwrap();
            let first = &range.ids[0];
            first
                .map
                .keys()
                .map(|k| (k.clone(), first.get(k).unwrap()))
                .collect()
        };
        let _: String = redis
            .xadd(SaleKeys::new(&sale).reservations, "*", &again)
            .await
            .unwrap();
        drain(&mut consumer).await;
        assert_stored_once(&store, &sale, &orders).await;
        assert_eq!(pending(&mut redis, &sale).await, 0);
        forget(&mut redis, &sale).await;
    }
}

#[tokio::test]
async fn entries_of_a_dead_consumer_are_taken_over_once() {
    let Some(client) = redis() else {
        return;
    };
    let mut redis = connection(&client).await;
    for store in databases("entries_of_a_dead_consumer_are_taken_over_once").await {
        let sale = new_sale(&store).await;
        let orders = add_entries(&mut redis, &sale, 40).await;
        let mut survivor = Consumer::new(
            &authority_of(&client).await,
            store.clone(),
            sale.clone(),
            fast_config("node-b"),
        )
        .unwrap();
        survivor.step().await.unwrap(); // makes the group; nothing is idle yet
        let orders = [orders, add_entries(&mut redis, &sale, 30).await].concat();

        // Node A reads a batch and dies before acknowledging it.
        let options = StreamReadOptions::default()
            .group(ORDERS_GROUP, "node-a")
            .count(30);
        let taken: StreamReadReply = redis
            .xread_options(&[SaleKeys::new(&sale).reservations], &[">"], &options)
            .await
            .unwrap();
        assert_eq!(taken.keys[0].ids.len(), 30);
        assert_eq!(pending(&mut redis, &sale).await, 30);

        tokio::time::sleep(Duration::from_millis(150)).await;
        drain(&mut survivor).await;
        assert_stored_once(&store, &sale, &orders).await;
        assert_eq!(pending(&mut redis, &sale).await, 0);

        // Node A was only slow: its late insert of the same batch changes nothing.
        let late: Vec<_> = taken.keys[0]
            .ids
            .iter()
            .map(|entry| seckill_cluster::stream::parse_reservation(&sale, &entry.map).unwrap())
            .collect();
        store.insert_reservations(&late).await.unwrap();
        assert_stored_once(&store, &sale, &orders).await;
        forget(&mut redis, &sale).await;
    }
}

#[tokio::test]
async fn entries_that_cannot_be_stored_end_in_the_dead_letter_stream() {
    let Some(client) = redis() else {
        return;
    };
    let mut redis = connection(&client).await;
    for store in databases("entries_that_cannot_be_stored_end_in_the_dead_letter_stream").await {
        let sale = new_sale(&store).await;
        let good = add_entries(&mut redis, &sale, 3).await;
        // Quantity 0 breaks the CHECK constraint: the database refuses it.
        let refused = add_entry(&mut redis, &sale, "0").await;
        let more_good = add_entries(&mut redis, &sale, 2).await;
        // No user: malformed.
        let no_user = [
            ("order_id", "broken"),
            ("sale_id", sale.as_str()),
            ("quantity", "1"),
            ("idempotency_key", ""),
            ("created_at_ms", "1"),
            ("expires_at_ms", "2"),
        ];
        let _: String = redis
            .xadd(SaleKeys::new(&sale).reservations, "*", &no_user)
            .await
            .unwrap();
        let good = [good, more_good].concat();
        let mut consumer = Consumer::new(
            &authority_of(&client).await,
            store.clone(),
            sale.clone(),
            fast_config("node-a"),
        )
        .unwrap();

        consumer.step().await.unwrap();
        // The good ones are stored, the malformed one is out at once, the
        // refused one waits for another delivery.
        assert_stored_once(&store, &sale, &good).await;
        let letters = dead_letters(&mut redis, &sale).await;
        assert_eq!(letters.ids.len(), 1);
        assert_eq!(
            letters.ids[0].get::<String>("order_id").as_deref(),
            Some("broken")
        );
        assert!(
            letters.ids[0]
                .get::<String>("error")
                .unwrap()
                .contains("user_id")
        );
        assert_eq!(pending(&mut redis, &sale).await, 1);

        let deadline = Instant::now() + Duration::from_secs(20);
        let mut rounds = 1;
        while dead_letters(&mut redis, &sale).await.ids.len() < 2 {
            assert!(Instant::now() < deadline, "never dead-lettered");
            tokio::time::sleep(Duration::from_millis(120)).await;
            consumer.step().await.unwrap();
            rounds += 1;
        }
        assert!(
            rounds >= 3,
            "dead-lettered after {rounds} rounds, before 3 deliveries"
        );
        let letters = dead_letters(&mut redis, &sale).await;
        let letter = &letters.ids[1];
        assert_eq!(letter.get::<String>("order_id"), Some(refused.to_string()));
        assert_eq!(letter.get::<String>("quantity").as_deref(), Some("0"));
        assert!(!letter.get::<String>("error").unwrap().is_empty());
        assert_eq!(pending(&mut redis, &sale).await, 0);
        assert_eq!(store.order(&refused).await.unwrap(), None);
        assert_stored_once(&store, &sale, &good).await;
        forget(&mut redis, &sale).await;
    }
}

#[tokio::test]
async fn entries_wait_in_the_stream_while_the_database_is_unreachable() {
    let test = "entries_wait_in_the_stream_while_the_database_is_unreachable";
    let Some(client) = redis() else {
        return;
    };
    let mut redis = connection(&client).await;
    for (var, url) in database_urls(test) {
        let direct = SqlOrders::connect(&url).await.expect(var);
        let (template, target) = Relay::route(&url);
        let relay = Relay::start(target).await;
        let relayed = SqlOrders::connect(&template.replace("RELAY", &relay.addr.to_string()))
            .await
            .expect("connect through the relay");
        let sale = new_sale(&direct).await;
        relay.open.send_replace(false);

        let orders = add_entries(&mut redis, &sale, 25).await;
        let consumer = Consumer::new(
            &authority_of(&client).await,
            relayed,
            sale.clone(),
            fast_config("node-a"),
        )
        .unwrap();
        let running = tokio::spawn(consumer.run());
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(
            direct.units_by_status(&sale).await.unwrap().pending_payment,
            0
        );
        assert_eq!(
            pending(&mut redis, &sale).await,
            25,
            "read, held, not acknowledged"
        );
        assert_eq!(dead_letters(&mut redis, &sale).await.ids.len(), 0);

        relay.open.send_replace(true);
        let deadline = Instant::now() + Duration::from_secs(30);
        while pending(&mut redis, &sale).await > 0 {
            assert!(
                Instant::now() < deadline,
                "the entries never landed ({var})"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        running.abort();
        assert_stored_once(&direct, &sale, &orders).await;
        assert_eq!(dead_letters(&mut redis, &sale).await.ids.len(), 0);
        forget(&mut redis, &sale).await;
    }
}

#[tokio::test]
async fn queue_position_counts_the_entries_ahead() {
    let Some(client) = redis() else {
        return;
    };
    let mut redis = connection(&client).await;
    let sale = SaleId::generate();
    let unknown = OrderId::generate();
    assert!(
        queue_position(&mut redis, &sale, &unknown)
            .await
            .unwrap()
            .is_none()
    );

    let orders = add_entries(&mut redis, &sale, 2_500).await;
    // No consumer yet: every entry waits.
    let at = |i: usize| orders[i].clone();
    for i in [0, 1, 1_999, 2_499] {
        let queued = queue_position(&mut redis, &sale, &at(i))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(queued.position, i as u64);
        assert_eq!(queued.reservation.order_id, at(i));
        assert_eq!(queued.reservation.quantity, 1);
    }
    assert!(
        queue_position(&mut redis, &sale, &unknown)
            .await
            .unwrap()
            .is_none()
    );

    // A consumer takes the first 1,000: delivered ones are next (0), the rest move up.
    let _: () = redis
        .xgroup_create(SaleKeys::new(&sale).reservations, ORDERS_GROUP, "0")
        .await
        .unwrap();
    let options = StreamReadOptions::default()
        .group(ORDERS_GROUP, "node-a")
        .count(1_000);
    let taken: StreamReadReply = redis
        .xread_options(&[SaleKeys::new(&sale).reservations], &[">"], &options)
        .await
        .unwrap();
    for (i, expected) in [(0, 0), (999, 0), (1_000, 0), (1_001, 1), (2_499, 1_499)] {
        let queued = queue_position(&mut redis, &sale, &at(i))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(queued.position, expected, "entry {i}");
    }

    // Once acknowledged (its row exists), an entry is no longer queued.
    let ids: Vec<_> = taken.keys[0].ids.iter().map(|e| e.id.clone()).collect();
    let _: usize = redis
        .xack(SaleKeys::new(&sale).reservations, ORDERS_GROUP, &ids)
        .await
        .unwrap();
    assert!(
        queue_position(&mut redis, &sale, &at(0))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        queue_position(&mut redis, &sale, &at(999))
            .await
            .unwrap()
            .is_none()
    );
    let queued = queue_position(&mut redis, &sale, &at(1_000))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(queued.position, 0);
    forget(&mut redis, &sale).await;
}
