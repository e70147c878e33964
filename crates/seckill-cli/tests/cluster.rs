//! Cluster mode end to end: real `seckill serve --redis --database` nodes,
//! a redis-server of each test's own (so that it can be killed and
//! restarted, and node counts and messages are the test's alone), the real
//! PostgreSQL and MariaDB in a schema of the test's own, and nginx in front.
//! The invariants are checked from Redis and the database afterwards.
//!
//! Needs `SECKILL_TEST_DATABASE_URL_POSTGRES` (and `…_MYSQL` for the
//! MariaDB runs) and `/usr/bin/redis-server`; without them each test says
//! SKIPPED. With `SECKILL_TEST_REDIS_URL` set (as in CI) a missing
//! redis-server is a failure.

mod common;
#[path = "../../seckill-cluster/tests/common/private_redis.rs"]
#[allow(dead_code)] // shared with the cluster crate's tests, which use all of it
mod private_redis;
#[path = "../../seckill-cluster/tests/common/relay.rs"]
mod relay;

use common::nginx::{Nginx, address_of, nginx_binary};
use common::*;
use futures::StreamExt;
use private_redis::PrivateRedis;
use relay::Relay;
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Row};
use std::collections::HashSet;
use std::time::{Duration, Instant};

const POSTGRES: &str = "SECKILL_TEST_DATABASE_URL_POSTGRES";
const MYSQL: &str = "SECKILL_TEST_DATABASE_URL_MYSQL";

/// A buffer small enough that the quota is exercised, not bypassed.
const BUFFER: u64 = 10;

// ---------------------------------------------------------------------------
// The cluster under test
// ---------------------------------------------------------------------------

/// A schema (PostgreSQL) or database (MariaDB) of the test's own, so that
/// the nodes see no other test's sales; dropped at the end of a passing test.
struct OrderDb {
    /// What the nodes are given.
    url: String,
    pool: AnyPool,
    /// `DROP SCHEMA … CASCADE` or `DROP DATABASE …`.
    drop: String,
}

impl OrderDb {
    /// `None` (said out loud) when `var` is not set.
    async fn create(var: &str, test: &str) -> Option<Self> {
        let Ok(base) = std::env::var(var) else {
            eprintln!("SKIPPED: {test} on {var}: {var} not set");
            return None;
        };
        sqlx::any::install_default_drivers();
        let name = format!("seckill_t{}", unique_suffix().replace('-', "_"));
        let admin = AnyPoolOptions::new()
            .max_connections(1)
            .connect(&base)
            .await
            .unwrap_or_else(|e| panic!("{var}={base}: {e}"));
        let (create, drop, url) = if base.starts_with("postgres") {
            let joiner = if base.contains('?') { '&' } else { '?' };
            (
                format!("CREATE SCHEMA {name}"),
                format!("DROP SCHEMA {name} CASCADE"),
                format!("{base}{joiner}options=-c%20search_path%3D{name}"),
            )
        } else {
            let server = base.rsplit_once('/').map_or(base.as_str(), |(s, _)| s);
            (
                format!("CREATE DATABASE {name}"),
                format!("DROP DATABASE {name}"),
                format!("{server}/{name}"),
            )
        };
        sqlx::query(sqlx::AssertSqlSafe(create))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        let pool = AnyPoolOptions::new()
            .max_connections(2)
            .connect(&url)
            .await
            .unwrap();
        Some(Self { url, pool, drop })
    }

    /// The ids of the sale's order rows.
    async fn order_ids(&self, sale: &str) -> HashSet<String> {
        let sql = if self.url.starts_with("postgres") {
            "SELECT id FROM orders WHERE sale_id = $1"
        } else {
            "SELECT id FROM orders WHERE sale_id = ?"
        };
        sqlx::query(sql)
            .bind(sale)
            .fetch_all(&self.pool)
            .await
            .map(|rows| rows.iter().map(|row| row.get::<String, _>(0)).collect())
            .unwrap_or_default()
    }

    async fn remove(self) {
        let _ = sqlx::query(sqlx::AssertSqlSafe(self.drop))
            .execute(&self.pool)
            .await;
        self.pool.close().await;
    }
}

/// Redis, the database and N nodes sharing secrets, as behind nginx.
struct Cluster {
    redis: PrivateRedis,
    db: OrderDb,
    nodes: Vec<Option<Seckill>>,
}

impl Cluster {
    /// `None` when a service is missing (said out loud).
    async fn start(
        test: &str,
        db_var: &str,
        nodes: usize,
        redis_args: &[&str],
        flags: &[&str],
    ) -> Option<Self> {
        Self::start_through(test, db_var, nodes, redis_args, flags, None).await
    }

    /// [`Cluster::start`] with the nodes reaching the database through
    /// `relay` (to cut it off).
    async fn start_through(
        test: &str,
        db_var: &str,
        nodes: usize,
        redis_args: &[&str],
        flags: &[&str],
        relay: Option<&Relay>,
    ) -> Option<Self> {
        let db = OrderDb::create(db_var, test).await?;
        let node_db = match relay {
            Some(relay) => {
                let (template, _) = Relay::route(&db.url);
                template.replace("RELAY", &relay.addr.to_string())
            }
            None => db.url.clone(),
        };
        let Some(redis) = PrivateRedis::start(redis_args).await else {
            assert!(
                std::env::var("SECKILL_TEST_REDIS_URL").is_err(),
                "redis-server is missing and SECKILL_TEST_REDIS_URL is set"
            );
            return None;
        };
        let buffer = BUFFER.to_string();
        let mut all = vec![
            "--redis",
            &redis.url(),
            "--database",
            &node_db,
            "--buffer",
            &buffer,
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
        all.extend(flags.iter().map(|f| f.to_string()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        let first = Seckill::start_with(&all).await;
        let mut started = vec![];
        for _ in 1..nodes {
            started.push(Some(Seckill::start_like(&first, &all).await));
        }
        started.insert(0, Some(first));
        for node in started.iter().flatten() {
            ready(node).await;
        }
        Some(Self {
            redis,
            db,
            nodes: started,
        })
    }

    fn node(&self, i: usize) -> &Seckill {
        self.nodes[i].as_ref().expect("a running node")
    }

    fn live(&self) -> impl Iterator<Item = &Seckill> {
        self.nodes.iter().flatten()
    }

    /// A sale created through the first node, once every node sells it
    /// (nodes pick up others' sales within about a second).
    async fn open_sale(&self, fields: Value) -> String {
        let sale = self.node(0).open_sale_with(fields).await;
        for node in self.live() {
            let path = format!("/api/v1/sales/{sale}");
            eventually(PATIENCE, "every node knows the sale", || async {
                (node.get(&path, &Auth::None).await.status == StatusCode::OK).then_some(())
            })
            .await;
        }
        sale
    }

    /// Redis' `sold` for the sale.
    async fn sold(&self, sale: &str) -> u64 {
        let client = redis::Client::open(self.redis.url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        redis::cmd("HGET")
            .arg(format!("seckill:{{{sale}}}:sale"))
            .arg("sold")
            .query_async::<Option<u64>>(&mut conn)
            .await
            .unwrap()
            .unwrap_or(0)
    }

    /// Purchases sent to Redis for the sale, summed over the running nodes.
    async fn reserve_calls(&self, sale: &str) -> u64 {
        let needle = format!("seckill_redis_calls_total{{sale_id=\"{sale}\",op=\"reserve\"}} ");
        let mut calls = 0;
        for node in self.live() {
            let metrics = node.get("/metrics", &Auth::None).await.text();
            calls += metrics
                .lines()
                .find_map(|line| line.strip_prefix(&needle))
                .map_or(0, |n| n.trim().parse::<u64>().expect("a count"));
        }
        calls
    }

    /// Waits until the database holds exactly `expected` orders of the sale
    /// and every acknowledged order is among them.
    async fn assert_orders_materialize(
        &self,
        sale: &str,
        acknowledged: &HashSet<String>,
        expected: usize,
    ) {
        let rows = eventually(
            Duration::from_secs(60),
            "every order in the database",
            || async {
                let rows = self.db.order_ids(sale).await;
                (rows.len() >= expected && acknowledged.is_subset(&rows)).then_some(rows)
            },
        )
        .await;
        assert_eq!(rows.len(), expected, "order rows of the sale");
    }

    /// `seckill reconcile` finds Redis and the database in agreement.
    fn assert_reconciled(&self, sale: &str) {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_seckill"))
            .args([
                "reconcile",
                "--redis",
                &self.redis.url(),
                "--database",
                &self.db.url,
            ])
            .args(["--sale", sale])
            .output()
            .expect("run seckill reconcile");
        assert!(
            output.status.success(),
            "reconcile: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Buys on with fresh users through `api` until Redis says sold out,
    /// then checks that exactly the stock was sold, every acknowledged
    /// order (`reserved`, plus these) is a row, and reconcile agrees.
    async fn sell_out_and_check(
        &self,
        api: &Api,
        sale: &str,
        stock: u64,
        mut reserved: HashSet<String>,
    ) {
        sell_out(self, api, sale, stock, &mut reserved).await;
        assert_eq!(self.sold(sale).await, stock, "Redis sold");
        self.assert_orders_materialize(sale, &reserved, stock as usize)
            .await;
        self.assert_reconciled(sale);
    }

    /// `seckill reconcile` on the sale, with `extra` flags.
    fn reconcile(&self, sale: &str, extra: &[&str]) -> std::process::Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_seckill"))
            .args(["reconcile", "--redis", &self.redis.url(), "--database"])
            .args([self.db.url.as_str(), "--sale", sale])
            .args(extra)
            .output()
            .expect("run seckill reconcile")
    }

    /// Writes Redis' snapshot (BGSAVE) and waits until it is on disk.
    async fn snapshot(&self) {
        let client = redis::Client::open(self.redis.url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let _: String = redis::cmd("BGSAVE").query_async(&mut conn).await.unwrap();
        eventually(PATIENCE, "the snapshot is written", || {
            let mut conn = conn.clone();
            async move {
                let info: String = redis::cmd("INFO")
                    .arg("persistence")
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                (info.contains("rdb_bgsave_in_progress:0")
                    && info.contains("rdb_last_bgsave_status:ok"))
                .then_some(())
            }
        })
        .await;
    }

    async fn stop(self) {
        for mut node in self.nodes.into_iter().flatten() {
            node.stop().await;
        }
        self.db.remove().await;
    }
}

/// Waits until the node has joined the cluster and is ready: it listens
/// (and answers 503) before that.
async fn ready(node: &Seckill) {
    eventually(Duration::from_secs(20), "the node is ready", || async {
        (node.get("/readyz", &Auth::None).await.status == StatusCode::OK).then_some(())
    })
    .await;
}

/// What a crowd got.
#[derive(Default, Debug)]
struct Outcome {
    /// Order ids of the 202s.
    reserved: HashSet<String>,
    sold_out: usize,
    /// 503s and transport errors (a node or Redis down).
    unavailable: usize,
}

/// `users` distinct users (`prefix-N`) buy one unit each through `apis`
/// in turn, `concurrency` at a time; anything but 202, 409 sold_out, 503
/// or (with `tolerate_errors`) no answer fails the test.
async fn crowd(
    apis: &[Api],
    sale: &str,
    prefix: &str,
    users: usize,
    concurrency: usize,
    tolerate_errors: bool,
) -> Outcome {
    let answers: Vec<Result<Resp, String>> = futures::stream::iter(0..users)
        .map(|i| {
            let api = apis[i % apis.len()].clone();
            let user = format!("{prefix}-{i}");
            async move {
                api.try_purchase(&user, sale, None, None)
                    .await
                    .map_err(|e| e.to_string())
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let mut outcome = Outcome::default();
    for answer in answers {
        match answer {
            Ok(resp) if resp.status == StatusCode::ACCEPTED => {
                outcome.reserved.insert(resp.accepted(sale));
            }
            Ok(resp) if resp.status == StatusCode::CONFLICT => {
                resp.expect_error(StatusCode::CONFLICT, "sold_out");
                outcome.sold_out += 1;
            }
            Ok(resp) if resp.status == StatusCode::SERVICE_UNAVAILABLE && tolerate_errors => {
                resp.expect_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
                outcome.unavailable += 1;
            }
            Err(_) if tolerate_errors => outcome.unavailable += 1,
            Ok(resp) => panic!("unexpected answer {} {}", resp.status, resp.text()),
            Err(e) => panic!("no answer: {e}"),
        }
    }
    outcome
}

/// Buys with fresh users on `api` until Redis reports the sale sold out.
async fn sell_out(
    cluster: &Cluster,
    api: &Api,
    sale: &str,
    stock: u64,
    bought: &mut HashSet<String>,
) {
    let mut round = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while cluster.sold(sale).await < stock {
        assert!(
            Instant::now() < deadline,
            "the sale did not sell out: {} of {stock}",
            cluster.sold(sale).await
        );
        let outcome = crowd(
            std::slice::from_ref(api),
            sale,
            &format!("late{round}"),
            20,
            4,
            true,
        )
        .await;
        bought.extend(outcome.reserved);
        round += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------

/// Three nodes behind nginx, a crowd ten times the stock: exactly the stock
/// is sold, every acknowledged order is in the database, and Redis was
/// asked about as many times as there were units (within the quota's bound).
async fn rush_through_nginx(db_var: &str, users: usize, stock: u64) {
    let test = "rush_through_nginx";
    let Some(nginx) = nginx_binary() else { return };
    let Some(cluster) = Cluster::start(test, db_var, 3, &[], &[]).await else {
        return;
    };
    let sale = cluster
        .open_sale(json!({ "stock": stock, "per_user_limit": 1 }))
        .await;
    let upstreams: Vec<String> = cluster.live().map(address_of).collect();
    let proxy = Nginx::start(&nginx, &upstreams, &["--strategy", "round_robin"]).await;
    let api = cluster.node(0).at(&proxy.base);

    let started = Instant::now();
    let outcome = crowd(std::slice::from_ref(&api), &sale, "rush", users, 64, false).await;
    let elapsed = started.elapsed();
    assert_eq!(outcome.reserved.len() as u64, stock, "202s: {outcome:?}");
    assert_eq!(outcome.sold_out, users - stock as usize);
    assert_eq!(cluster.sold(&sale).await, stock, "Redis sold");
    cluster
        .assert_orders_materialize(&sale, &outcome.reserved, stock as usize)
        .await;
    cluster.assert_reconciled(&sale);

    // The quota's bound (crates/seckill-cluster/src/quota.rs): S + R + Σh,
    // h ≤ 2(⌈S/N⌉ + B) per node; nothing was released here (R = 0).
    let nodes = 3;
    let bound = stock + 2 * nodes * (stock.div_ceil(nodes) + BUFFER);
    let calls = cluster.reserve_calls(&sale).await;
    eprintln!(
        "{db_var}: {users} users, stock {stock}, 3 nodes, buffer {BUFFER}: {calls} Redis reserve calls \
         ({:.3} per unit; stock + nodes × buffer = {}), {:.1} s",
        calls as f64 / stock as f64,
        stock + nodes * BUFFER,
        elapsed.as_secs_f64()
    );
    assert!(
        calls >= stock && calls <= bound,
        "{calls} calls, bound {bound}"
    );
    for node in cluster.live() {
        assert_eq!(node.stock(&sale).await["remaining"], 0, "{}", node.base);
    }
    drop(proxy);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn three_nodes_behind_nginx_sell_exactly_the_stock_on_postgres() {
    rush_through_nginx(POSTGRES, 20_000, 2_000).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn three_nodes_behind_nginx_sell_exactly_the_stock_on_mariadb() {
    rush_through_nginx(MYSQL, 5_000, 500).await;
}

/// Pay on one node what was bought on another; cancel and expiry put the
/// units back for every node.
async fn order_lifecycle(db_var: &str) {
    let Some(cluster) = Cluster::start("order_lifecycle", db_var, 2, &[], &[]).await else {
        return;
    };
    let sale = cluster
        .open_sale(json!({ "stock": 3, "per_user_limit": 1, "payment_timeout_secs": 1 }))
        .await;
    let (a, b) = (cluster.node(0), cluster.node(1));
    let paid = a.buy("payer", &sale).await;
    let cancelled = b.buy("canceller", &sale).await;
    let expired = a.buy("sleeper", &sale).await;
    b.purchase("late", &sale)
        .await
        .expect_error(StatusCode::CONFLICT, "sold_out");

    // Queued until a consumer writes the row, then payable on any node.
    eventually(PATIENCE, "the order is payable", || async {
        let order = b.order_of("payer", &paid).await;
        (order["status"] == "pending_payment").then_some(())
    })
    .await;
    assert_eq!(
        b.pay("payer", &paid, "ref-1").await.expect(StatusCode::OK)["status"],
        "paid"
    );
    eventually(PATIENCE, "the order is cancellable", || async {
        let resp = a.cancel("canceller", &cancelled).await;
        (resp.status == StatusCode::OK).then_some(())
    })
    .await;
    eventually(PATIENCE, "the unpaid order expires", || async {
        (a.order_of("sleeper", &expired).await["status"] == "expired").then_some(())
    })
    .await;
    for node in [a, b] {
        eventually(PATIENCE, "two units back on sale on every node", || async {
            (node.stock(&sale).await["remaining"] == 2).then_some(())
        })
        .await;
    }
    assert_eq!(cluster.sold(&sale).await, 1);
    let again = b.buy("late", &sale).await;
    assert_ne!(again, cancelled);
    let report = eventually(PATIENCE, "the report counts each outcome", || async {
        let report = a.report(&sale).await;
        let units = report.remaining + report.queued + report.pending_payment + report.paid;
        (report.paid == 1 && report.cancelled == 1 && report.expired == 1 && units == 3)
            .then_some(report)
    })
    .await;
    assert_eq!(report.remaining, 1, "{report:?}");
    cluster.assert_reconciled(&sale);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn orders_are_paid_cancelled_and_expired_across_nodes_on_postgres() {
    order_lifecycle(POSTGRES).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn orders_are_paid_cancelled_and_expired_across_nodes_on_mariadb() {
    order_lifecycle(MYSQL).await;
}

/// `kill -9` of a node mid-rush: no oversell, every 202 becomes an order
/// (its consumer's entries are reclaimed), and once its heartbeat expires
/// the other two sell its share: the sale sells out completely.
#[tokio::test(flavor = "multi_thread")]
async fn a_node_killed_mid_rush_loses_nothing_and_the_rest_sell_out() {
    let Some(mut cluster) = Cluster::start("node_killed", POSTGRES, 3, &[], &[]).await else {
        return;
    };
    const STOCK: u64 = 600;
    let sale = cluster
        .open_sale(json!({ "stock": STOCK, "per_user_limit": 1 }))
        .await;
    let apis: Vec<Api> = cluster.live().map(Seckill::api).collect();

    let mut reserved = crowd(&apis, &sale, "before", 300, 16, false).await.reserved;
    let rush = {
        let (apis, sale) = (apis.clone(), sale.clone());
        tokio::spawn(async move { crowd(&apis, &sale, "during", 600, 16, true).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.nodes[2].take().expect("node 2").kill();
    reserved.extend(rush.await.unwrap().reserved);

    cluster
        .sell_out_and_check(&cluster.node(0).api(), &sale, STOCK, reserved)
        .await;
    cluster.stop().await;
}

/// Redis (AOF, fsync always; nodes with `--redis-durability aof`) killed
/// and restarted mid-sale: every acknowledged reservation survives, sold
/// never exceeds the stock, and the nodes sell again without a restart.
#[tokio::test(flavor = "multi_thread")]
async fn redis_restarted_mid_sale_loses_no_acknowledged_reservation() {
    let aof = ["--appendonly", "yes", "--appendfsync", "always"];
    let flags = ["--redis-durability", "aof"];
    let Some(mut cluster) = Cluster::start("redis_restarted", POSTGRES, 2, &aof, &flags).await
    else {
        return;
    };
    const STOCK: u64 = 400;
    let sale = cluster
        .open_sale(json!({ "stock": STOCK, "per_user_limit": 1 }))
        .await;
    let apis: Vec<Api> = cluster.live().map(Seckill::api).collect();

    let rush = {
        let (apis, sale) = (apis.clone(), sale.clone());
        tokio::spawn(async move { crowd(&apis, &sale, "rush", 800, 16, true).await })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    cluster.redis.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.redis.restart().await;
    let outcome = rush.await.unwrap();
    let reserved = outcome.reserved;
    assert!(cluster.sold(&sale).await <= STOCK);

    cluster
        .sell_out_and_check(&cluster.node(1).api(), &sale, STOCK, reserved)
        .await;
    cluster.stop().await;
}

/// Redis down: purchases are refused with 503 and Retry-After at once
/// (I7); Redis back: they succeed again, with no node restarted.
#[tokio::test(flavor = "multi_thread")]
async fn purchases_fail_closed_while_redis_is_down_and_resume_after() {
    let aof = ["--appendonly", "yes", "--appendfsync", "always"];
    let Some(mut cluster) = Cluster::start("redis_down", POSTGRES, 1, &aof, &[]).await else {
        return;
    };
    let sale = cluster
        .open_sale(json!({ "stock": 50, "per_user_limit": 1 }))
        .await;
    let node = cluster.node(0).api();
    node.buy("before", &sale).await;

    cluster.redis.kill();
    for i in 0..5 {
        let started = Instant::now();
        let resp = node.purchase(&format!("during-{i}"), &sale).await;
        resp.expect_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
        assert_eq!(resp.header("retry-after"), Some("1"));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "refused after {:?}",
            started.elapsed()
        );
    }
    cluster.redis.restart().await;
    eventually(PATIENCE, "purchases succeed again", || async {
        let resp = node.purchase("after", &sale).await;
        (resp.status == StatusCode::ACCEPTED).then_some(())
    })
    .await;
    cluster.stop().await;
}

/// The crash window of a cancel: the database marked the order cancelled,
/// Redis could not take the unit back (it was down), and the node died
/// before trying again. Nobody runs `seckill reconcile`: the other node
/// releases the unit by itself once Redis is back, another buyer gets it,
/// and Redis and the database agree.
#[tokio::test(flavor = "multi_thread")]
async fn a_release_lost_with_its_node_is_made_by_the_other_nodes() {
    let aof = ["--appendonly", "yes", "--appendfsync", "always"];
    let Some(mut cluster) = Cluster::start("release_lost", POSTGRES, 2, &aof, &[]).await else {
        return;
    };
    let sale = cluster
        .open_sale(json!({ "stock": 1, "per_user_limit": 1 }))
        .await;
    let (dying, surviving) = (cluster.node(0).api(), cluster.node(1).api());
    let order = dying.buy("canceller", &sale).await;
    eventually(PATIENCE, "the order is a row", || async {
        let resp = dying.order("canceller", &order).await;
        (resp.status == StatusCode::OK && resp.json()["status"] == "pending_payment").then_some(())
    })
    .await;

    cluster.redis.kill();
    let cancelled = dying
        .cancel("canceller", &order)
        .await
        .expect(StatusCode::OK);
    assert_eq!(cancelled["status"], "cancelled");
    cluster.nodes[0].take().expect("node 0").kill();
    cluster.redis.restart().await;
    assert_eq!(
        cluster.sold(&sale).await,
        1,
        "the release died with its node"
    );

    eventually(
        Duration::from_secs(15),
        "the unit is back on sale",
        || async {
            // 503 while the node repairs the sale after the Redis restart.
            let stock = surviving
                .get(&format!("/api/v1/sales/{sale}/stock"), &Auth::None)
                .await;
            (stock.status == StatusCode::OK && stock.json()["remaining"] == 1).then_some(())
        },
    )
    .await;
    assert_eq!(cluster.sold(&sale).await, 0);
    surviving.buy("next", &sale).await;
    cluster.assert_reconciled(&sale);
    cluster.stop().await;
}

/// The database cut off: purchases go on (the Redis stream is their
/// durable record); reading an order answers 503; once the database is
/// back every acknowledged order becomes a row, with no node restarted.
#[tokio::test(flavor = "multi_thread")]
async fn purchases_go_on_while_the_database_is_unreachable() {
    let Ok(base) = std::env::var(POSTGRES) else {
        eprintln!("SKIPPED: database_unreachable on {POSTGRES}: {POSTGRES} not set");
        return;
    };
    let (_, target) = Relay::route(&base);
    let relay = Relay::start(target).await;
    let Some(cluster) =
        Cluster::start_through("database_unreachable", POSTGRES, 2, &[], &[], Some(&relay)).await
    else {
        return;
    };
    let sale = cluster
        .open_sale(json!({ "stock": 100, "per_user_limit": 1 }))
        .await;
    let apis: Vec<Api> = cluster.live().map(Seckill::api).collect();
    let mut reserved = crowd(&apis, &sale, "before", 20, 4, false).await.reserved;

    relay.open.send_replace(false);
    let during = crowd(&apis, &sale, "during", 40, 4, false).await;
    assert_eq!(during.reserved.len(), 40, "{during:?}");
    let order = during.reserved.iter().next().expect("an order");
    // The store is asked before the owner is checked: any user will do.
    eventually(PATIENCE, "reading an order fails closed", || async {
        let resp = apis[0].order("during-0", order).await;
        (resp.status == StatusCode::SERVICE_UNAVAILABLE).then_some(())
    })
    .await;
    reserved.extend(during.reserved);

    relay.open.send_replace(true);
    cluster
        .assert_orders_materialize(&sale, &reserved, 60)
        .await;
    assert_eq!(cluster.sold(&sale).await, 60);
    cluster.stop().await;
}

/// Redis hung (SIGSTOP): each call waits out its time limit until the
/// breaker opens after five failures in a row; then purchases are refused
/// at once, without waiting on Redis; Redis back, a probe closes it.
#[tokio::test(flavor = "multi_thread")]
async fn an_open_redis_breaker_refuses_purchases_at_once() {
    let Some(cluster) = Cluster::start("redis_hung", POSTGRES, 1, &[], &[]).await else {
        return;
    };
    let sale = cluster
        .open_sale(json!({ "stock": 50, "per_user_limit": 1 }))
        .await;
    let node = cluster.node(0).api();
    node.buy("before", &sale).await;

    cluster.redis.signal("STOP");
    let mut waits = Vec::new();
    for i in 0..8 {
        let started = Instant::now();
        node.purchase(&format!("hung-{i}"), &sale)
            .await
            .expect_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
        waits.push(started.elapsed());
    }
    // The first five waited for Redis (1 s limit); the breaker then refused
    // without asking it: far below that limit.
    assert!(waits[0] >= Duration::from_millis(900), "{waits:?}");
    assert!(
        waits[6..].iter().all(|w| *w < Duration::from_millis(500)),
        "{waits:?}"
    );
    cluster.redis.signal("CONT");
    eventually(PATIENCE, "purchases succeed again", || async {
        let resp = node.purchase("after", &sale).await;
        (resp.status == StatusCode::ACCEPTED).then_some(())
    })
    .await;
    cluster.stop().await;
}

/// A keyed retry is never told it lost, on any node: through a node that
/// has learnt the sale sold out, after the sale ended, and after that node
/// restarted, it gets the order it was first answered with. Without the
/// key, with another key or from another user the request is refused as
/// the sale now stands, and the sale has exactly one order per 202.
#[tokio::test(flavor = "multi_thread")]
async fn a_keyed_retry_through_another_node_gets_its_answer() {
    let test = "keyed_retry";
    let Some(mut cluster) = Cluster::start(test, POSTGRES, 2, &[], &[]).await else {
        return;
    };
    let sold_out = cluster
        .open_sale(json!({ "stock": 1, "per_user_limit": 2 }))
        .await;
    let ending = cluster
        .open_sale(json!({ "stock": 5, "per_user_limit": 2, "ends_at": rfc3339(now_unix() + 3) }))
        .await;
    let first = cluster.node(0).api();
    let won = first
        .purchase_with("lee", &sold_out, None, Some("k1"))
        .await
        .accepted(&sold_out);
    let before_end = first
        .purchase_with("lee", &ending, None, Some("k1"))
        .await
        .accepted(&ending);
    let other = cluster.node(1).api();
    // The other node learns the sale is sold out and answers from memory.
    other
        .purchase("mo", &sold_out)
        .await
        .expect_error(StatusCode::CONFLICT, "sold_out");
    eventually(PATIENCE, "the sale ended", || async {
        (str_field(&other.stock(&ending).await, "state") == "ended").then_some(())
    })
    .await;

    for moment in ["as it happens", "after the node restarted"] {
        let other = cluster.node(1).api();
        for (sale, order_id, refusal) in [
            (&sold_out, &won, "sold_out"),
            (&ending, &before_end, "ended"),
        ] {
            let retry = other.purchase_with("lee", sale, None, Some("k1")).await;
            assert_eq!(&retry.accepted(sale), order_id, "{refusal} sale, {moment}");
            for (user, key) in [("lee", None), ("lee", Some("k2")), ("mo", Some("k1"))] {
                other
                    .purchase_with(user, sale, None, key)
                    .await
                    .expect_error(StatusCode::CONFLICT, refusal);
            }
        }
        let node = cluster.nodes[1].as_mut().expect("a running node");
        node.stop().await;
        node.restart().await;
        ready(node).await;
    }
    for (sale, order_id) in [(&sold_out, &won), (&ending, &before_end)] {
        let acknowledged = HashSet::from([order_id.clone()]);
        cluster
            .assert_orders_materialize(sale, &acknowledged, 1)
            .await;
        cluster.assert_reconciled(sale);
    }
    cluster.stop().await;
}

/// Control characters in a payment reference, a sale's name or a token's
/// `sub` are refused at the door in cluster mode too: PostgreSQL would
/// refuse NUL (and open the store's breaker for every buyer of the node,
/// or dead-letter an acknowledged reservation); MariaDB would keep it.
async fn text_no_store_keeps(db_var: &str) {
    let Some(cluster) = Cluster::start("store_text", db_var, 2, &[], &[]).await else {
        return;
    };
    let sale = cluster
        .open_sale(json!({ "stock": 5, "per_user_limit": 2 }))
        .await;
    let (a, b) = (cluster.node(0).api(), cluster.node(1).api());
    let order = a.buy("owner", &sale).await;
    eventually(PATIENCE, "the order is a row", || async {
        (b.order_of("owner", &order).await["status"] == "pending_payment").then_some(())
    })
    .await;
    refuse_what_no_store_keeps(&b, &sale, "owner", &order).await;
    eventually(PATIENCE, "one unit paid, four for sale", || async {
        let report = b.report(&sale).await;
        ((report.paid, report.queued, report.remaining) == (1, 0, 4)).then_some(())
    })
    .await;
    cluster.assert_reconciled(&sale);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn text_no_store_keeps_is_refused_at_the_door_on_postgres() {
    text_no_store_keeps(POSTGRES).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn text_no_store_keeps_is_refused_at_the_door_on_mariadb() {
    text_no_store_keeps(MYSQL).await;
}

/// A node that cannot reach its services yet: alive (`/healthz` 200) but
/// not ready, `/readyz` naming what it waits for, purchases and the
/// store's routes refused with 503 and Retry-After; still so a while later
/// (it waits, it does not exit).
async fn assert_waiting(node: &Seckill, waits_for: &str) {
    for _ in 0..2 {
        let health = node.get("/healthz", &Auth::None).await;
        assert_eq!(health.status, StatusCode::OK, "{}", health.text());
        let ready = node.get("/readyz", &Auth::None).await;
        let message = ready.expect_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
        assert!(
            message.to_lowercase().contains(waits_for),
            "readyz should name {waits_for}: {message}"
        );
        assert_eq!(ready.header("retry-after"), Some("1"));
        for resp in [
            node.purchase("early", "any-sale").await,
            node.get("/api/v1/sales", &Auth::None).await,
            node.order("early", "01a236df-a59a-722f-b3af-04ae404e26f4")
                .await,
        ] {
            resp.expect_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
            assert_eq!(resp.header("retry-after"), Some("1"));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Waits until the node is ready, then sells: a sale created on it, a
/// purchase acknowledged and made a row.
async fn assert_serves(node: &Seckill) {
    ready(node).await;
    let sale = node
        .open_sale_with(json!({ "stock": 5, "per_user_limit": 1 }))
        .await;
    let order = node.buy("after", &sale).await;
    eventually(PATIENCE, "the order is a row", || async {
        let resp = node.order("after", &order).await;
        (resp.status == StatusCode::OK && resp.json()["status"] == "pending_payment").then_some(())
    })
    .await;
}

/// A node started while its Redis is not running yet waits for it (not
/// ready, refusing with 503), and serves once Redis starts, without a
/// restart.
#[tokio::test(flavor = "multi_thread")]
async fn a_node_started_before_redis_waits_for_it() {
    let Some(db) = OrderDb::create(POSTGRES, "redis_late").await else {
        return;
    };
    let Some(mut redis) = PrivateRedis::not_started(&[]) else {
        assert!(
            std::env::var("SECKILL_TEST_REDIS_URL").is_err(),
            "redis-server is missing and SECKILL_TEST_REDIS_URL is set"
        );
        return;
    };
    let mut node = Seckill::start_with(&["--redis", &redis.url(), "--database", &db.url]).await;
    assert_waiting(&node, "redis").await;
    redis.restart().await;
    assert_serves(&node).await;
    node.stop().await;
    db.remove().await;
}

/// A node started while its database refuses connections (nothing listens
/// on its port yet) waits for it, and serves once the database is there.
#[tokio::test(flavor = "multi_thread")]
async fn a_node_started_before_its_database_waits_for_it() {
    let Some(db) = OrderDb::create(POSTGRES, "database_late").await else {
        return;
    };
    let Some(redis) = PrivateRedis::start(&[]).await else {
        assert!(
            std::env::var("SECKILL_TEST_REDIS_URL").is_err(),
            "redis-server is missing and SECKILL_TEST_REDIS_URL is set"
        );
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap();
    let (template, target) = Relay::route(&db.url);
    let node_db = template.replace("RELAY", &port.to_string());
    let mut node = Seckill::start_with(&["--redis", &redis.url(), "--database", &node_db]).await;
    assert_waiting(&node, "database").await;
    let _relay = Relay::start_on(port, target).await;
    assert_serves(&node).await;
    node.stop().await;
    db.remove().await;
}

/// Redis without AOF restarted from a snapshot older than its last writes
/// (kill -9 after a BGSAVE): it comes back with half the sale forgotten —
/// `sold` at the snapshot — while those orders are rows. The nodes sell
/// nothing of the sale until their repair has put the forgotten orders
/// back: the database never holds more orders than the stock, each unit is
/// sold once, and reconcile agrees.
#[tokio::test(flavor = "multi_thread")]
async fn redis_restarted_from_an_older_snapshot_sells_no_unit_twice() {
    let no_aof = ["--appendonly", "no"];
    let Some(mut cluster) = Cluster::start("older_snapshot", POSTGRES, 2, &no_aof, &[]).await
    else {
        return;
    };
    const STOCK: u64 = 200;
    let sale = cluster
        .open_sale(json!({ "stock": STOCK, "per_user_limit": 1 }))
        .await;
    let apis: Vec<Api> = cluster.live().map(Seckill::api).collect();
    let mut reserved = crowd(&apis, &sale, "first", 100, 8, false).await.reserved;
    assert_eq!(reserved.len(), 100);
    cluster.snapshot().await;
    sell_out(&cluster, &apis[1], &sale, STOCK, &mut reserved).await;
    cluster
        .assert_orders_materialize(&sale, &reserved, STOCK as usize)
        .await;

    cluster.redis.kill();
    cluster.redis.restart().await;
    assert_eq!(
        cluster.sold(&sale).await,
        100,
        "Redis is back at its snapshot"
    );
    // Buyers at once, and for a few seconds after: none of them gets a unit.
    for round in 0..3 {
        let late = crowd(&apis, &sale, &format!("after{round}"), 100, 8, true).await;
        assert!(
            late.reserved.is_empty(),
            "sold again after the restart: {:?}",
            late.reserved
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eventually(PATIENCE, "the nodes repaired the sale", || async {
        let stock = apis[0]
            .get(&format!("/api/v1/sales/{sale}/stock"), &Auth::None)
            .await;
        (cluster.sold(&sale).await == STOCK && stock.status == StatusCode::OK).then(|| stock.json())
    })
    .await;
    for api in &apis {
        assert_eq!(api.stock(&sale).await["state"], "sold_out");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rows = cluster.db.order_ids(&sale).await;
    assert_eq!(rows.len() as u64, STOCK, "orders in the database");
    assert_eq!(
        rows, reserved,
        "the orders are the ones acknowledged before"
    );
    cluster.assert_reconciled(&sale);
    cluster.stop().await;
}

/// Redis without persistence killed and restarted empty: the nodes seed
/// the sale again from the database by themselves and sell on from the
/// right count; until then a purchase is 503 and `/stock` never says units
/// remain. The remaining units sell, a pending order from before can be
/// cancelled, another one expires, and their units sell again; reconcile
/// agrees. With the nodes gone, `seckill reconcile --repair` seeds the sale
/// the same way.
#[tokio::test(flavor = "multi_thread")]
async fn redis_restarted_empty_brings_the_sale_back_by_itself() {
    let none = ["--appendonly", "no"];
    let Some(mut cluster) = Cluster::start("restarted_empty", POSTGRES, 2, &none, &[]).await else {
        return;
    };
    const STOCK: u64 = 40;
    let sale = cluster
        .open_sale(json!({ "stock": STOCK, "per_user_limit": 1 }))
        .await;
    let apis: Vec<Api> = cluster.live().map(Seckill::api).collect();
    let mut reserved = crowd(&apis, &sale, "before", 20, 4, false).await.reserved;
    let kept = apis[0].buy("keeper", &sale).await;
    reserved.insert(kept.clone());
    cluster
        .assert_orders_materialize(&sale, &reserved, 21)
        .await;
    // One unit whose order expires a few seconds after the restart.
    let short = cluster
        .open_sale(json!({ "stock": 1, "per_user_limit": 1, "payment_timeout_secs": 5 }))
        .await;
    let unpaid = apis[0].buy("unpaid", &short).await;
    cluster
        .assert_orders_materialize(&short, &HashSet::from([unpaid]), 1)
        .await;

    cluster.redis.kill();
    cluster.redis.restart().await;
    assert_eq!(cluster.sold(&sale).await, 0, "Redis came back empty");
    let under_repair = |resp: &Resp| {
        resp.status == StatusCode::SERVICE_UNAVAILABLE
            && resp.try_error().is_some_and(|(_, message)| {
                message.contains("restarted") || message.contains("does not know")
            })
    };
    let started = Instant::now();
    let mut i = 0;
    loop {
        let api = &apis[i % apis.len()];
        let first = api.purchase(&format!("during-{i}"), &sale).await;
        if first.status == StatusCode::ACCEPTED {
            reserved.insert(first.accepted(&sale));
            break;
        }
        first.expect_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
        // Once a purchase was refused for the repair, the node's stock says
        // no unit remains — unless the sale is back, and then a purchase is
        // not refused for the repair any more. (Before the node learns of
        // the restart its stock lags, as any stock read may, by a second.)
        if under_repair(&first) {
            let stock = api
                .get(&format!("/api/v1/sales/{sale}/stock"), &Auth::None)
                .await;
            if stock.status == StatusCode::OK && stock.json()["remaining"] != 0 {
                let second = api.purchase(&format!("during-{i}-again"), &sale).await;
                assert!(
                    !under_repair(&second),
                    "/stock said {} while a purchase got {}",
                    stock.text(),
                    second.text()
                );
                if second.status == StatusCode::ACCEPTED {
                    reserved.insert(second.accepted(&sale));
                    break;
                }
            } else {
                stock.expect_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the sale did not come back within 20 s: {}",
            first.text()
        );
        i += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        cluster.sold(&sale).await,
        reserved.len() as u64,
        "the seeded count, then what sold since"
    );

    sell_out(&cluster, &apis[1], &sale, STOCK, &mut reserved).await;
    let cancelled = apis[0].cancel("keeper", &kept).await.expect(StatusCode::OK);
    assert_eq!(cancelled["status"], "cancelled");
    eventually(PATIENCE, "the cancelled unit is back", || async {
        (cluster.sold(&sale).await == STOCK - 1).then_some(())
    })
    .await;
    reserved.insert(apis[1].buy("after-cancel", &sale).await);
    assert_eq!(cluster.sold(&sale).await, STOCK);
    cluster
        .assert_orders_materialize(&sale, &reserved, STOCK as usize + 1)
        .await;
    cluster.assert_reconciled(&sale);
    eventually(PATIENCE, "the expired order's unit is back", || async {
        let stock = apis[1]
            .get(&format!("/api/v1/sales/{short}/stock"), &Auth::None)
            .await;
        (stock.status == StatusCode::OK && stock.json()["remaining"] == 1).then_some(())
    })
    .await;
    apis[1].buy("after-expiry", &short).await;
    assert_eq!(cluster.sold(&short).await, 1);
    cluster.assert_reconciled(&short);

    // Nodes gone, Redis empty again: reconcile --repair seeds the sale.
    for node in &mut cluster.nodes {
        node.take().expect("a node").kill();
    }
    cluster.redis.kill();
    cluster.redis.restart().await;
    let checked = cluster.reconcile(&sale, &[]);
    assert_eq!(checked.status.code(), Some(2), "Redis does not know it");
    let repaired = cluster.reconcile(&sale, &["--repair"]);
    let stdout = String::from_utf8_lossy(&repaired.stdout);
    assert!(
        repaired.status.success(),
        "reconcile --repair: {stdout}\n{}",
        String::from_utf8_lossy(&repaired.stderr)
    );
    assert!(stdout.contains("seeded the sale"), "{stdout}");
    assert_eq!(cluster.sold(&sale).await, STOCK);
    cluster.stop().await;
}
