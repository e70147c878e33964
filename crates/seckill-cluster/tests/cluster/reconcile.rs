//! `Reconciler` against the real Redis (SECKILL_TEST_REDIS_URL) and each
//! real database: a sale in order, each known drift made by hand (a crash
//! between the database and Redis, writes Redis lost, a dead letter), and a
//! sale compared while buyers, consumers and cancellations run.

use crate::fixtures::{self, authority, databases};
use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use seckill_cluster::authority::keys::SaleKeys;
use seckill_cluster::authority::{
    AuthorityError, Fence, RedisAuthority, ReleaseOutcome, ReserveOutcome, ReserveRequest,
};
use seckill_cluster::consumer::{Consumer, ConsumerConfig};
use seckill_cluster::orders::SqlOrders;
use seckill_cluster::reconcile::{RecentReleases, ReconcileError, Reconciler, Repair, Report};
use seckill_core::{OrderId, SaleId, Timestamp, UserId};
use seckill_engine::{CancelOutcome, PayOutcome};
use seckill_test_support::services::{connection, database_urls, redis_url};
use seckill_test_support::{PrivateRedis, Relay};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// What each test needs: Redis and one database, with a sale in both.
struct Fixture {
    redis: RedisAuthority,
    raw: MultiplexedConnection,
    store: SqlOrders,
    sale: SaleId,
    /// The user of each order bought here.
    buyers: HashMap<OrderId, UserId>,
}

impl Fixture {
    /// A fixture per configured database, each with a new sale of `stock`.
    async fn each(test: &str, stock: u64) -> Vec<Fixture> {
        let Some(url) = redis_url() else {
            return Vec::new();
        };
        Self::each_on(&url, test, stock).await
    }

    /// [`Fixture::each`] on the Redis at `url`.
    async fn each_on(url: &str, test: &str, stock: u64) -> Vec<Fixture> {
        let client = redis::Client::open(url).expect("SECKILL_TEST_REDIS_URL");
        let mut fixtures = Vec::new();
        for store in databases(test).await {
            let sale = fixtures::sale(stock, 2);
            store.create_sale(&sale).await.expect("create sale");
            let redis = authority(url).await;
            assert!(redis.create_sale(&sale).await.unwrap());
            fixtures.push(Fixture {
                raw: connection(&client).await,
                redis,
                store,
                sale: sale.id,
                buyers: HashMap::new(),
            });
        }
        fixtures
    }

    fn reconciler(&self) -> Reconciler {
        Reconciler::new(self.redis.clone(), self.store.clone())
            .with_settle(Duration::from_millis(300))
    }

    async fn check(&self) -> Report {
        self.reconciler().check(&self.sale).await.expect("check")
    }

    async fn repair(&self) -> Report {
        self.reconciler().repair(&self.sale).await.expect("repair")
    }

    /// One purchase of `quantity` by a new user, with an Idempotency-Key.
    async fn buy(&mut self, quantity: u64) -> OrderId {
        let user = UserId::from(format!("user-{}", OrderId::generate()));
        let order = OrderId::generate();
        let outcome = self
            .redis
            .reserve(&ReserveRequest {
                sale_id: &self.sale,
                user_id: &user,
                quantity,
                order_id: &order,
                idempotency_key: Some("key-1"),
            })
            .await
            .unwrap();
        assert!(
            matches!(outcome, ReserveOutcome::Reserved { .. }),
            "{outcome:?}"
        );
        self.buyers.insert(order.clone(), user);
        order
    }

    /// Turns every reservation so far into an order row.
    async fn consume(&self) {
        let config = ConsumerConfig {
            block: Duration::from_millis(50),
            ..ConsumerConfig::new("reconcile-test")
        };
        let mut consumer =
            Consumer::new(&self.redis, self.store.clone(), self.sale.clone(), config).unwrap();
        while consumer.step().await.expect("consume") > 0 {}
    }

    /// Cancels an order in the database only: the process died before it
    /// could release the units in Redis.
    async fn cancel_in_database(&self, order: &OrderId) {
        self.cancel_in_database_at(order, Timestamp::now()).await;
    }

    /// [`Fixture::cancel_in_database`] by a node whose clock read `at`.
    async fn cancel_in_database_at(&self, order: &OrderId, at: Timestamp) {
        let outcome = self
            .store
            .cancel(order, &self.buyers[order], at)
            .await
            .unwrap();
        assert!(
            matches!(outcome, CancelOutcome::Cancelled(..)),
            "{outcome:?}"
        );
    }

    /// Redis forgets a reservation, as a restart from an older snapshot
    /// (no AOF) forgets the writes after it: its entry, its units, the
    /// buyer's holding and its key's answer.
    async fn lose(&mut self, order: &OrderId, quantity: i64) {
        let keys = SaleKeys::new(&self.sale);
        let entries: Vec<(String, HashMap<String, String>)> = redis::cmd("XRANGE")
            .arg(&keys.reservations)
            .arg("-")
            .arg("+")
            .query_async(&mut self.raw)
            .await
            .unwrap();
        let (id, _) = entries
            .iter()
            .find(|(_, fields)| fields["order_id"] == order.as_str())
            .expect("the order's entry");
        let user = self.buyers[order].as_str();
        let _: () = redis::pipe()
            .atomic()
            .xdel(&keys.reservations, &[id])
            .hincr(&keys.sale, "sold", -quantity)
            .hincr(&keys.buyers, user, -quantity)
            .hdel(&keys.keys, format!("{user}\nkey-1"))
            .query_async(&mut self.raw)
            .await
            .unwrap();
    }

    /// Redis loses the whole sale, as a restart with no persistence does.
    async fn wipe_redis(&mut self) {
        let keys = SaleKeys::new(&self.sale);
        let _: () = self
            .raw
            .del(&[
                keys.sale,
                keys.buyers,
                keys.keys,
                keys.reservations,
                keys.released,
                keys.restored,
            ])
            .await
            .unwrap();
    }

    async fn sold(&self) -> u64 {
        self.redis.state(&self.sale).await.unwrap().unwrap().sold
    }

    async fn forget(mut self) {
        let keys = SaleKeys::new(&self.sale);
        let _: () = self
            .raw
            .del(&[
                keys.sale,
                keys.buyers,
                keys.keys,
                keys.reservations,
                keys.dead_letter,
                keys.released,
                keys.restored,
            ])
            .await
            .unwrap();
    }
}

fn ids(orders: &[seckill_engine::Reservation]) -> Vec<&OrderId> {
    orders.iter().map(|o| &o.order_id).collect()
}

#[tokio::test]
async fn a_sale_in_order_is_consistent() {
    for mut f in Fixture::each("a_sale_in_order_is_consistent", 100).await {
        let paid = f.buy(2).await;
        let cancelled = f.buy(1).await;
        f.buy(1).await;
        f.consume().await;
        f.buy(2).await; // not consumed yet
        let pay = f
            .store
            .pay(&paid, &f.buyers[&paid], "ref-1", Timestamp::now())
            .await
            .unwrap();
        assert!(matches!(pay, PayOutcome::Paid(_)), "{pay:?}");
        // A cancellation as the node makes it: the database, then Redis.
        f.cancel_in_database(&cancelled).await;
        f.redis
            .release(&f.sale, &cancelled, &f.buyers[&cancelled], 1)
            .await
            .unwrap();

        let report = f.check().await;
        assert!(report.consistent, "{report:#?}");
        assert_eq!(
            (
                report.stock,
                report.redis_sold,
                report.db_pending,
                report.db_paid,
                report.unconsumed
            ),
            (100, 5, 1, 2, 2),
            "{report:#?}"
        );
        assert_eq!((report.difference, report.oversold), (0, 0));
        assert!(report.released_missing.is_empty() && report.lost.is_empty());

        // Repairing a sale in order changes nothing.
        let repaired = f.repair().await;
        assert!(repaired.consistent && repaired.repaired.is_empty());
        assert_eq!(f.sold().await, 5);
        f.forget().await;
    }
}

#[tokio::test]
async fn units_never_released_after_a_crash_are_released_by_repair() {
    for mut f in Fixture::each("units_never_released_after_a_crash", 100).await {
        let orders = [f.buy(1).await, f.buy(2).await, f.buy(1).await];
        f.consume().await;
        f.cancel_in_database(&orders[1]).await;

        let report = f.check().await;
        assert!(!report.consistent);
        assert_eq!(ids(&report.released_missing), [&orders[1]]);
        assert_eq!((report.redis_sold, report.db_pending), (4, 2));
        assert_eq!((report.difference, report.unexplained), (2, 0));

        let repaired = f.repair().await;
        assert!(repaired.consistent, "{repaired:#?}");
        assert_eq!(
            repaired.repaired,
            [Repair::Released {
                order_id: orders[1].clone(),
                quantity: 2
            }]
        );
        assert_eq!(f.sold().await, 2);
        // Once repaired, there is nothing left to do.
        assert!(f.repair().await.repaired.is_empty());
        assert_eq!(f.sold().await, 2);
        f.forget().await;
    }
}

/// The nodes' pass over recent releases (`RecentReleases`) makes the
/// release a crash cut off, looking only at the orders released since the
/// last pass began (less its overlap): one released an hour before that is
/// left to `seckill reconcile`, until the mark is gone (Redis lost it) and
/// a pass reads every release again. A release that landed is not made
/// twice, and a second pass finds nothing to do.
#[tokio::test]
async fn recent_releases_are_made_by_the_nodes_pass_and_older_ones_left() {
    // The mark is one key for the whole Redis: a Redis of the test's own.
    if redis_url().is_none() {
        return;
    }
    let Some(private) = PrivateRedis::start(&[]).await else {
        panic!("redis-server is missing and SECKILL_TEST_REDIS_URL is set");
    };
    let mark = "seckill:releases_checked";
    for mut f in Fixture::each_on(&private.url(), "recent_releases", 10).await {
        let (old, recent, landed) = (f.buy(1).await, f.buy(1).await, f.buy(1).await);
        f.consume().await;
        let now = Timestamp::now().as_millis();
        f.cancel_in_database_at(&old, Timestamp::from_millis(now - 3_600_000))
            .await;
        f.cancel_in_database(&recent).await;
        f.cancel_in_database(&landed).await;
        f.redis
            .release(&f.sale, &landed, &f.buyers[&landed], 1)
            .await
            .unwrap();
        let _: () = f.raw.set(mark, now - 60_000).await.unwrap();

        let pass = RecentReleases::new(f.redis.clone(), f.store.clone());
        let released = |order: &OrderId| {
            vec![Repair::Released {
                order_id: order.clone(),
                quantity: 1,
            }]
        };
        assert_eq!(pass.repair().await.unwrap(), released(&recent));
        assert_eq!(f.sold().await, 1, "the old order still holds its unit");
        let checked: i64 = f.raw.get(mark).await.unwrap();
        assert!(checked >= now, "the mark moves to the pass's start");
        assert_eq!(pass.repair().await.unwrap(), []);
        assert_eq!(ids(&f.check().await.released_missing), [&old]);

        let _: () = f.raw.del(mark).await.unwrap();
        assert_eq!(pass.repair().await.unwrap(), released(&old));
        assert_eq!(f.sold().await, 0);
        assert!(f.check().await.consistent);
        f.forget().await;
    }
}

#[tokio::test]
async fn reservations_redis_lost_are_restored_by_repair() {
    for mut f in Fixture::each("reservations_redis_lost", 100).await {
        let orders = [f.buy(1).await, f.buy(2).await, f.buy(1).await];
        f.consume().await;
        f.lose(&orders[1], 2).await;
        // Lost too, and then cancelled: its release took a unit that Redis
        // no longer counted.
        f.lose(&orders[2], 1).await;
        f.cancel_in_database(&orders[2]).await;
        f.redis
            .release(&f.sale, &orders[2], &f.buyers[&orders[2]], 1)
            .await
            .unwrap();
        assert_eq!(f.sold().await, 0);

        let report = f.check().await;
        assert!(!report.consistent);
        assert_eq!(ids(&report.lost), {
            let mut lost = vec![&orders[1], &orders[2]];
            lost.sort();
            lost
        });
        assert_eq!((report.redis_sold, report.db_pending), (0, 3));
        assert_eq!((report.difference, report.unexplained), (-3, 0));

        let repaired = f.repair().await;
        assert!(repaired.consistent, "{repaired:#?}");
        assert_eq!(repaired.repaired.len(), 2);
        assert_eq!(f.sold().await, 3);
        // The buyer's limit and key hold again: the same key answers the
        // same order, and nothing more is taken.
        let again = f
            .redis
            .reserve(&ReserveRequest {
                sale_id: &f.sale,
                user_id: &f.buyers[&orders[1]],
                quantity: 1,
                order_id: &OrderId::generate(),
                idempotency_key: Some("key-1"),
            })
            .await
            .unwrap();
        assert!(
            matches!(&again, ReserveOutcome::Duplicate { order_id, .. } if *order_id == orders[1]),
            "{again:?}"
        );
        let limit = f
            .redis
            .reserve(&ReserveRequest {
                sale_id: &f.sale,
                user_id: &f.buyers[&orders[1]],
                quantity: 1,
                order_id: &OrderId::generate(),
                idempotency_key: None,
            })
            .await
            .unwrap();
        assert!(
            matches!(limit, ReserveOutcome::LimitReached { .. }),
            "{limit:?}"
        );
        // The restored entries reach the consumers again, changing nothing.
        f.consume().await;
        assert!(f.check().await.consistent);
        assert!(f.repair().await.repaired.is_empty());
        assert_eq!(f.sold().await, 3);
        f.forget().await;
    }
}

#[tokio::test]
async fn units_sold_beyond_the_stock_are_reported_not_repaired() {
    for mut f in Fixture::each("units_sold_beyond_the_stock", 2).await {
        let first = f.buy(1).await;
        f.buy(1).await;
        f.consume().await;
        // Redis forgets one and sells the unit again.
        f.lose(&first, 1).await;
        f.buy(1).await;
        f.consume().await;

        let repaired = f.repair().await;
        assert_eq!(repaired.repaired.len(), 1, "{repaired:#?}");
        assert_eq!((repaired.difference, repaired.oversold), (0, 1));
        assert!(!repaired.consistent);
        assert_eq!(f.sold().await, 3);
        f.forget().await;
    }
}

#[tokio::test]
async fn dead_lettered_reservations_are_reported_not_repaired() {
    for mut f in Fixture::each("dead_lettered_reservations", 100).await {
        f.buy(1).await;
        let refused = f.buy(1).await;
        // The consumer gave up on it: a copy in the dead-letter stream, no row.
        let keys = SaleKeys::new(&f.sale);
        let _: String = f
            .raw
            .xadd(
                &keys.dead_letter,
                "*",
                &[("order_id", refused.as_str()), ("error", "refused")],
            )
            .await
            .unwrap();
        let report = f.check().await;
        assert_eq!(
            (report.unconsumed, report.difference, report.unexplained),
            (1, 1, 0)
        );
        assert_eq!(ids(&report.dead_lettered), [&refused]);
        let repaired = f.repair().await;
        assert!(!repaired.consistent && repaired.repaired.is_empty());
        assert_eq!(f.sold().await, 2);
        f.forget().await;
    }
}

#[tokio::test]
async fn an_unknown_sale_is_an_error() {
    for f in Fixture::each("an_unknown_sale_is_an_error", 1).await {
        let unknown = SaleId::generate();
        let error = f.reconciler().check(&unknown).await.unwrap_err();
        assert!(
            matches!(&error, ReconcileError::UnknownSale(id) if *id == unknown),
            "{error}"
        );
        f.forget().await;
    }
}

/// What the crowd's n-th order becomes once its row exists: paid (n % 3 =
/// 1), cancelled and released a moment later as a node does (n % 3 = 0), or
/// left pending. A row that appears between the UPDATE and the read after it
/// looks not payable (or not cancellable): try again.
async fn finish_order(
    redis: &RedisAuthority,
    store: &SqlOrders,
    sale: &SaleId,
    order: &OrderId,
    user: &UserId,
    n: u64,
) {
    loop {
        match n % 3 {
            0 => {
                let outcome = store.cancel(order, user, Timestamp::now()).await.unwrap();
                if let CancelOutcome::Cancelled(_, units) = outcome {
                    tokio::time::sleep(Duration::from_millis(n % 20)).await;
                    redis
                        .release(sale, order, user, units.quantity)
                        .await
                        .unwrap();
                    return;
                }
            }
            1 => {
                let reference = format!("ref-{n}");
                match store
                    .pay(order, user, &reference, Timestamp::now())
                    .await
                    .unwrap()
                {
                    PayOutcome::Paid(_) => return,
                    PayOutcome::NotFound | PayOutcome::Expired => {}
                    other => panic!("{other:?}"),
                }
            }
            _ => return,
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Buyers, consumers, payments and cancellations (each released a moment
/// after the database, as a node does) keep going while the sale is
/// compared again and again: no comparison may see a difference.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_running_sale_shows_no_difference() {
    for f in Fixture::each("a_running_sale_shows_no_difference", 400).await {
        let running = Duration::from_secs(3);
        let consumer = Consumer::new(
            &f.redis,
            f.store.clone(),
            f.sale.clone(),
            ConsumerConfig {
                batch_size: 20,
                block: Duration::from_millis(20),
                ..ConsumerConfig::new("running")
            },
        )
        .unwrap();
        let consuming = tokio::spawn(consumer.run());
        let (orders_tx, mut orders_rx) = tokio::sync::mpsc::unbounded_channel();
        let buying = {
            let (redis, sale) = (f.redis.clone(), f.sale.clone());
            tokio::spawn(async move {
                let start = Instant::now();
                let mut n = 0;
                while start.elapsed() < running {
                    let user = UserId::from(format!("crowd-{n}"));
                    let order = OrderId::generate();
                    let outcome = redis
                        .reserve(&ReserveRequest {
                            sale_id: &sale,
                            user_id: &user,
                            quantity: 1 + n % 2,
                            order_id: &order,
                            idempotency_key: None,
                        })
                        .await
                        .unwrap();
                    if let ReserveOutcome::Reserved { .. } = outcome {
                        orders_tx.send((order, user)).unwrap();
                    }
                    n += 1;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            })
        };
        let finishing = {
            let (redis, store, sale) = (f.redis.clone(), f.store.clone(), f.sale.clone());
            tokio::spawn(async move {
                let mut n = 0u64;
                while let Some((order, user)) = orders_rx.recv().await {
                    n += 1;
                    finish_order(&redis, &store, &sale, &order, &user, n).await;
                }
            })
        };

        let reconciler = f.reconciler();
        let mut compared = 0;
        let (mut unconsumed, mut releasing) = (0, 0);
        while !buying.is_finished() {
            let report = reconciler.check(&f.sale).await.expect("check");
            assert!(report.consistent, "{report:#?}");
            compared += 1;
            unconsumed += report.unconsumed;
            releasing += report.releasing;
        }
        buying.await.unwrap();
        finishing.await.unwrap();
        consuming.abort();
        let last = reconciler.check(&f.sale).await.expect("check");
        assert!(last.consistent, "{last:#?}");
        assert!(last.redis_sold > 0 && last.db_paid > 0);
        assert!(compared >= 3, "compared {compared} times");
        eprintln!(
            "{:?}: {compared} comparisons while running; summed over them: \
             {unconsumed} units unconsumed, {releasing} releasing",
            f.store.dialect()
        );
        f.forget().await;
    }
}

/// Redis restarted empty (no persistence): the sale and its orders are in
/// the database only. The repair seeds the sale and puts its orders back —
/// the units and holdings of those that hold stock, the key answers, the
/// released ones as released — so that the sale sells on from the right
/// count, a keyed retry gets its order, and a later release of an order
/// released before changes nothing.
#[tokio::test]
async fn a_sale_redis_lost_is_seeded_again_by_repair() {
    for mut f in Fixture::each("sale_redis_lost", 10).await {
        let orders = [f.buy(1).await, f.buy(2).await, f.buy(1).await];
        f.consume().await;
        f.cancel_in_database(&orders[2]).await;
        let user = f.buyers[&orders[2]].clone();
        f.redis
            .release(&f.sale, &orders[2], &user, 1)
            .await
            .unwrap();
        f.wipe_redis().await;
        assert!(matches!(
            f.reconciler().check(&f.sale).await,
            Err(ReconcileError::UnknownSale(_))
        ));

        let repaired = f.repair().await;
        assert!(repaired.consistent, "{repaired:#?}");
        assert!(!repaired.fenced);
        assert!(repaired.repaired.contains(&Repair::Seeded));
        assert!(repaired.repaired.contains(&Repair::RestoredReleased {
            order_id: orders[2].clone()
        }));
        assert_eq!(f.sold().await, 3);
        let buyers: HashMap<String, u64> =
            f.raw.hgetall(SaleKeys::new(&f.sale).buyers).await.unwrap();
        assert_eq!(buyers[f.buyers[&orders[1]].as_str()], 2);
        // A keyed retry gets its order; a late release gives nothing back.
        let retry = f
            .redis
            .reserve(&ReserveRequest {
                sale_id: &f.sale,
                user_id: &f.buyers[&orders[0]],
                quantity: 1,
                order_id: &OrderId::generate(),
                idempotency_key: Some("key-1"),
            })
            .await
            .unwrap();
        assert!(
            matches!(&retry, ReserveOutcome::Duplicate { order_id, .. } if *order_id == orders[0]),
            "{retry:?}"
        );
        let late = f.redis.release(&f.sale, &orders[2], &user, 1).await;
        assert_eq!(late.unwrap(), ReleaseOutcome::AlreadyReleased);
        assert_eq!(f.sold().await, 3);
        f.forget().await;
    }
}

/// A consumer acknowledged an entry of which no row exists: its insert was
/// skipped as a duplicate (here another sale's order has its id, as when a
/// unique key collides). Redis counts its unit, the database never will:
/// reconcile reports it and calls the sale not consistent.
#[tokio::test]
async fn an_acknowledged_reservation_without_a_row_is_reported() {
    for mut f in Fixture::each("acknowledged_without_row", 10).await {
        let taken = f.buy(1).await;
        f.consume().await;
        let other = fixtures::sale(10, 2);
        f.store.create_sale(&other).await.unwrap();
        assert!(f.redis.create_sale(&other).await.unwrap());
        let keys = SaleKeys::new(&other.id);
        let now = fixtures::now().to_string();
        let _: () = redis::pipe()
            .atomic()
            .hincr(&keys.sale, "sold", 1)
            .hincr(&keys.buyers, "collider", 1)
            .xadd(
                &keys.reservations,
                "*",
                &[
                    ("order_id", taken.as_str()),
                    ("sale_id", other.id.as_str()),
                    ("user_id", "collider"),
                    ("quantity", "1"),
                    ("idempotency_key", ""),
                    ("created_at_ms", &now),
                    ("expires_at_ms", &now),
                ],
            )
            .query_async(&mut f.raw)
            .await
            .unwrap();
        let config = ConsumerConfig {
            block: Duration::from_millis(50),
            ..ConsumerConfig::new("reconcile-test")
        };
        let mut consumer =
            Consumer::new(&f.redis, f.store.clone(), other.id.clone(), config).unwrap();
        while consumer.step().await.expect("consume") > 0 {}

        let report = f.reconciler().check(&other.id).await.unwrap();
        assert!(!report.consistent, "{report:#?}");
        assert_eq!(ids(&report.acknowledged_without_row), [&taken]);
        assert_eq!((report.unconsumed, report.difference), (0, 1));
        assert_eq!(report.unexplained, 0);
        let _: () = f
            .raw
            .del(&[keys.sale, keys.buyers, keys.reservations])
            .await
            .unwrap();
        f.forget().await;
    }
}

/// A consumer read reservations, then the database was out of reach while
/// Redis restarted empty and the sale was seeded and checked again (it held
/// no rows yet). When the rows land, Redis holds nothing of them: the
/// consumer's acknowledgement finds no entry, so it fences the sale, and
/// the repair then puts the orders back — their units are not sold again.
#[tokio::test]
async fn rows_stored_after_redis_lost_their_entries_fence_the_sale() {
    let test = "rows_stored_after_redis_lost_their_entries";
    if redis_url().is_none() {
        return;
    }
    let Some(mut private) = PrivateRedis::start(&["--appendonly", "no"]).await else {
        panic!("redis-server is missing and SECKILL_TEST_REDIS_URL is set");
    };
    for (var, url) in database_urls(test) {
        let direct = SqlOrders::connect(&url).await.expect(var);
        let (template, target) = Relay::route(&url);
        let relay = Relay::start(target).await;
        let relayed = SqlOrders::connect(&template.replace("RELAY", &relay.addr.to_string()))
            .await
            .expect("connect through the relay");
        let redis = authority(&private.url()).await;
        let sale = fixtures::sale(10, 1);
        direct.create_sale(&sale).await.unwrap();
        redis.create_sale(&sale).await.unwrap();
        for n in 0..3 {
            let outcome = redis
                .reserve(&ReserveRequest {
                    sale_id: &sale.id,
                    user_id: &UserId::from(format!("user-{n}")),
                    quantity: 1,
                    order_id: &OrderId::generate(),
                    idempotency_key: None,
                })
                .await
                .unwrap();
            assert!(matches!(outcome, ReserveOutcome::Reserved { .. }));
        }
        relay.open.send_replace(false);
        let config = ConsumerConfig {
            block: Duration::from_millis(50),
            max_backoff: Duration::from_millis(100),
            ..ConsumerConfig::new("node-a")
        };
        let running = tokio::spawn(
            Consumer::new(&redis, relayed, sale.id.clone(), config)
                .unwrap()
                .run(),
        );
        tokio::time::sleep(Duration::from_millis(500)).await;

        private.restart().await;
        let reconciler =
            Reconciler::new(redis.clone(), direct.clone()).with_settle(Duration::from_millis(300));
        let mut seeded = reconciler.repair(&sale.id).await;
        // The first call after the restart finds the old connection broken.
        for _ in 0..50 {
            match seeded {
                Err(ReconcileError::Redis(AuthorityError::Unavailable(_))) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    seeded = reconciler.repair(&sale.id).await;
                }
                _ => break,
            }
        }
        let seeded = seeded.unwrap();
        assert!(!seeded.fenced && seeded.redis_sold == 0, "{seeded:#?}");

        relay.open.send_replace(true);
        let deadline = Instant::now() + Duration::from_secs(20);
        while redis.fence(&sale.id).await.unwrap() != Fence::Fenced {
            assert!(Instant::now() < deadline, "the sale was not fenced ({var})");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        running.abort();
        assert_eq!(
            direct
                .units_by_status(&sale.id)
                .await
                .unwrap()
                .pending_payment,
            3
        );
        let repaired = reconciler.repair(&sale.id).await.unwrap();
        assert!(repaired.consistent && !repaired.fenced, "{repaired:#?}");
        assert_eq!(repaired.redis_sold, 3);
    }
}
