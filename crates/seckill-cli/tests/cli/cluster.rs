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

use futures::StreamExt;
use seckill_test_support::nginx::{Nginx, address_of, nginx_binary};
use seckill_test_support::services::{MYSQL_URL, POSTGRES_URL, configured};
use seckill_test_support::*;
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Row};
use std::collections::HashSet;
use std::time::{Duration, Instant};

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
        let base = configured(test, var)?;
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
        let envs = vec![&[][..]; nodes];
        Self::start_in(test, db_var, &envs, redis_args, flags, relay).await
    }

    /// [`Cluster::start_through`] with one node per entry of `envs`, each
    /// with those environment variables (e.g. a faked clock).
    async fn start_in(
        test: &str,
        db_var: &str,
        envs: &[&[(&str, &str)]],
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
        let redis = PrivateRedis::start(redis_args).await?;
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
        let first = Seckill::start_in(&all, envs[0]).await;
        let mut started = vec![];
        for env in &envs[1..] {
            started.push(Some(Seckill::start_like_in(&first, &all, env).await));
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
        assert_reconciled(&self.redis.url(), &self.db.url, sale);
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
        std::process::Command::new(seckill_binary())
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

/// `seckill reconcile` finds the Redis at `redis` and the database at
/// `database` in agreement about the sale.
fn assert_reconciled(redis: &str, database: &str, sale: &str) {
    let output = std::process::Command::new(seckill_binary())
        .args(["reconcile", "--redis", redis, "--database", database])
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
    rush_through_nginx(POSTGRES_URL, 20_000, 2_000).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn three_nodes_behind_nginx_sell_exactly_the_stock_on_mariadb() {
    rush_through_nginx(MYSQL_URL, 5_000, 500).await;
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
    // Paying again with the same reference is the same answer, counted once.
    for _ in 0..2 {
        assert_eq!(
            b.pay("payer", &paid, "ref-1").await.expect(StatusCode::OK)["status"],
            "paid"
        );
    }
    let metrics = b.get("/metrics", &Auth::None).await.text();
    let counted = metrics
        .lines()
        .find_map(|line| line.strip_prefix("seckill_orders_paid_total "))
        .map(|n| n.trim().parse::<f64>().expect("a count"));
    assert_eq!(counted, Some(1.0), "seckill_orders_paid_total");
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
    order_lifecycle(POSTGRES_URL).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn orders_are_paid_cancelled_and_expired_across_nodes_on_mariadb() {
    order_lifecycle(MYSQL_URL).await;
}

/// `kill -9` of a node mid-rush: no oversell, every 202 becomes an order
/// (its consumer's entries are reclaimed), and once its heartbeat expires
/// the other two sell its share: the sale sells out completely.
#[tokio::test(flavor = "multi_thread")]
async fn a_node_killed_mid_rush_loses_nothing_and_the_rest_sell_out() {
    let Some(mut cluster) = Cluster::start("node_killed", POSTGRES_URL, 3, &[], &[]).await else {
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
    let Some(mut cluster) = Cluster::start("redis_restarted", POSTGRES_URL, 2, &aof, &flags).await
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
    let Some(mut cluster) = Cluster::start("redis_down", POSTGRES_URL, 1, &aof, &[]).await else {
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
    let Some(mut cluster) = Cluster::start("release_lost", POSTGRES_URL, 2, &aof, &[]).await else {
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
    let Some(base) = configured("database_unreachable", POSTGRES_URL) else {
        return;
    };
    let (_, target) = Relay::route(&base);
    let relay = Relay::start(target).await;
    let Some(cluster) = Cluster::start_through(
        "database_unreachable",
        POSTGRES_URL,
        2,
        &[],
        &[],
        Some(&relay),
    )
    .await
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
    let Some(cluster) = Cluster::start("redis_hung", POSTGRES_URL, 1, &[], &[]).await else {
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
    let Some(mut cluster) = Cluster::start(test, POSTGRES_URL, 2, &[], &[]).await else {
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
    text_no_store_keeps(POSTGRES_URL).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn text_no_store_keeps_is_refused_at_the_door_on_mariadb() {
    text_no_store_keeps(MYSQL_URL).await;
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
    let Some(db) = OrderDb::create(POSTGRES_URL, "redis_late").await else {
        return;
    };
    let Some(mut redis) = PrivateRedis::not_started(&[]) else {
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
    let Some(db) = OrderDb::create(POSTGRES_URL, "database_late").await else {
        return;
    };
    let Some(redis) = PrivateRedis::start(&[]).await else {
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

/// User ids and keys compare byte for byte in the SQL order stores too:
/// MariaDB's utf8mb4_bin took `victim ` for `victim` (PAD SPACE).
async fn identities_in(db_var: &str) {
    let Some(cluster) = Cluster::start("identities", db_var, 1, &[], &[]).await else {
        return;
    };
    let sale = cluster
        .open_sale(json!({ "stock": 10, "per_user_limit": 2 }))
        .await;
    let api = cluster.node(0).api();
    identities_compare_byte_for_byte(&api, &sale).await;
    let report = api.report(&sale).await;
    assert_eq!(report.pending_payment, 5, "{report:?}");
    cluster.assert_reconciled(&sale);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn identities_compare_byte_for_byte_on_postgres() {
    identities_in(POSTGRES_URL).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn identities_compare_byte_for_byte_on_mariadb() {
    identities_in(MYSQL_URL).await;
}

/// libfaketime, which the test preloads into a node to move its clock.
/// `None` (said out loud) when it is not installed; with
/// `SECKILL_TEST_REDIS_URL` set (as in CI) that is a failure.
fn faketime_library() -> Option<String> {
    let dirs = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .chain([std::path::PathBuf::from("/usr/lib")]);
    let found = dirs
        .map(|dir| dir.join("faketime/libfaketimeMT.so.1"))
        .find(|library| library.exists())
        .map(|library| library.display().to_string());
    if found.is_none() {
        assert!(
            std::env::var_os(services::REDIS_URL).is_none(),
            "libfaketime is missing (apt-get install faketime) and SECKILL_TEST_REDIS_URL is set"
        );
        eprintln!("SKIPPED: libfaketime is not installed (apt-get install faketime)");
    }
    found
}

/// The node's `seckill_clock_skew_seconds`.
async fn clock_skew(node: &Seckill) -> f64 {
    let metrics = node.get("/metrics", &Auth::None).await.text();
    metrics
        .lines()
        .find_map(|line| line.strip_prefix("seckill_clock_skew_seconds "))
        .unwrap_or_else(|| panic!("no seckill_clock_skew_seconds on {}", node.base))
        .trim()
        .parse()
        .expect("a number")
}

fn unix_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

async fn sleep_until_unix_millis(at: i64) {
    let wait = at - unix_millis();
    if wait > 0 {
        tokio::time::sleep(Duration::from_millis(wait as u64)).await;
    }
}

/// One node 30 s fast and one 30 s slow (libfaketime): deadlines, payment,
/// expiry and the sale's start follow Redis' clock on both, and each node
/// reports its skew and warns.
#[tokio::test(flavor = "multi_thread")]
async fn nodes_with_clocks_30_s_off_follow_redis_clock() {
    let Some(library) = faketime_library() else {
        return;
    };
    let fast: &[(&str, &str)] = &[("LD_PRELOAD", &library), ("FAKETIME", "+30s")];
    let slow: &[(&str, &str)] = &[("LD_PRELOAD", &library), ("FAKETIME", "-30s")];
    let Some(mut cluster) =
        Cluster::start_in("clock_skew", POSTGRES_URL, &[fast, slow], &[], &[], None).await
    else {
        return;
    };
    let (fast, slow) = (cluster.node(0).api(), cluster.node(1).api());

    // (d) Each node measures its clock against Redis' and warns.
    for (node, expected) in [(cluster.node(0), 30.0), (cluster.node(1), -30.0)] {
        let skew = clock_skew(node).await;
        assert!(
            (skew - expected).abs() < 2.0,
            "{}: skew {skew}, expected about {expected}",
            node.base
        );
        assert!(
            node.log().contains("clock is off Redis' clock"),
            "{}: no warning in\n{}",
            node.base,
            node.log()
        );
    }

    let started = rfc3339(now_unix() - 60);
    let open = cluster
        .open_sale(
            json!({ "stock": 10, "per_user_limit": 1, "starts_at": started,
            "payment_timeout_secs": 40 }),
        )
        .await;
    let starts_at = now_unix() + 4;
    let upcoming = cluster
        .open_sale(json!({ "stock": 10, "per_user_limit": 1, "starts_at": rfc3339(starts_at) }))
        .await;

    // (a) A 40 s payment window is not cut short by the fast node.
    let bought_at = Instant::now();
    let on_fast = fast.buy("fast-buyer", &open).await;
    let on_slow = slow.buy("slow-buyer", &open).await;
    for (api, user, order) in [
        (&fast, "fast-buyer", &on_fast),
        (&slow, "slow-buyer", &on_slow),
    ] {
        eventually(PATIENCE, "the order is a row", || async {
            let resp = api.order(user, order).await;
            (resp.status == StatusCode::OK && resp.json()["status"] == "pending_payment")
                .then_some(())
        })
        .await;
    }

    // (c) Right after the start, the slow node sells: Redis' clock says the
    // sale is open, whatever the node's says.
    sleep_until_unix_millis(starts_at * 1000 + 300).await;
    let stock = slow.stock(&upcoming).await;
    assert_eq!(
        stock["state"], "open",
        "the slow node's stock view: {stock}"
    );
    let resp = slow.purchase("early-bird", &upcoming).await;
    resp.assert_status(StatusCode::ACCEPTED);

    // (a) Paid 12 s into the 40 s window, on either node: neither node's
    // sweeper expired it (the fast one's own clock says 42 s have passed).
    tokio::time::sleep(Duration::from_secs(12).saturating_sub(bought_at.elapsed())).await;
    for (api, user, order) in [
        (&fast, "fast-buyer", &on_fast),
        (&slow, "slow-buyer", &on_slow),
    ] {
        let paid = api.pay(user, order, "ref").await.expect(StatusCode::OK);
        assert_eq!(paid["status"], "paid", "{paid}");
    }

    // (b) The slow node alone does not take a payment past the deadline
    // (its own clock says 29 s remain).
    cluster.nodes[0].take().expect("the fast node").stop().await;
    let short = slow
        .open_sale_with(
            json!({ "stock": 10, "per_user_limit": 1, "starts_at": started,
            "payment_timeout_secs": 5 }),
        )
        .await;
    let resp = slow.purchase("late-payer", &short).await;
    let order = resp.accepted(&short);
    let deadline = parse_rfc3339_millis(resp.json()["expires_at"].as_str().expect("expires_at"));
    eventually(PATIENCE, "the order is a row", || async {
        let resp = slow.order("late-payer", &order).await;
        (resp.status == StatusCode::OK && resp.json()["status"] != "queued").then_some(())
    })
    .await;
    sleep_until_unix_millis(deadline + 1000).await;
    slow.pay("late-payer", &order, "ref-late")
        .await
        .expect_error(StatusCode::CONFLICT, "order_expired");
    cluster.stop().await;
}

/// The `unconfirmed` count of the node in the dashboard's snapshots, once
/// one shows at least `at_least` (the stream sends a snapshot a second).
async fn dashboard_unconfirmed(node: &Seckill, at_least: u64) -> u64 {
    let mut events = reqwest::get(node.url("/dashboard/events"))
        .await
        .expect("the dashboard's events");
    assert_eq!(events.status(), StatusCode::OK);
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, events.chunk())
            .await
            .expect("a snapshot showing it within 10 s")
            .expect("read")
            .expect("the stream goes on");
        seen.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = seen.find("\n\n") {
            let event: String = seen.drain(..end + 2).collect();
            let Some(data) = event.strip_prefix("event: snapshot\ndata: ") else {
                continue;
            };
            let snapshot: Value = serde_json::from_str(data.trim_end()).expect("a JSON snapshot");
            let count = snapshot["nodes"][0]["unconfirmed"]
                .as_u64()
                .unwrap_or_else(|| panic!("no nodes[0].unconfirmed in {snapshot}"));
            if count >= at_least {
                return count;
            }
        }
    }
}

/// With `replicas:1` and the replica paused, a purchase that Redis
/// reserved gets 503 (the WAIT fell short): the node counts it in
/// `seckill_purchases_unconfirmed_total` and on the dashboard, and once
/// the replica is back a retry with the same Idempotency-Key gets 202 with
/// that very order.
#[tokio::test(flavor = "multi_thread")]
async fn a_503_after_a_short_durability_wait_is_counted_and_a_keyed_retry_gets_its_order() {
    let Some(db) = OrderDb::create(POSTGRES_URL, "unconfirmed").await else {
        return;
    };
    let Some(primary) = PrivateRedis::start(&[]).await else {
        return;
    };
    let port = primary.port.to_string();
    let Some(replica) = PrivateRedis::start(&["--replicaof", "127.0.0.1", &port]).await else {
        return;
    };
    let client = redis::Client::open(primary.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    eventually(PATIENCE, "the replica is in sync", || {
        let mut conn = conn.clone();
        async move {
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query_async(&mut conn)
                .await
                .unwrap();
            info.contains("state=online").then_some(())
        }
    })
    .await;
    let mut node = Seckill::start_with(&[
        "--redis",
        &primary.url(),
        "--database",
        &db.url,
        "--redis-durability",
        "replicas:1",
    ])
    .await;
    ready(&node).await;
    let sale = node
        .open_sale_with(json!({ "stock": 10, "per_user_limit": 1 }))
        .await;

    replica.signal("STOP");
    let resp = node
        .purchase_with("unlucky", &sale, None, Some("key-1"))
        .await;
    let message = resp.expect_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert!(message.contains("Idempotency-Key"), "{message}");
    let sold: u64 = redis::cmd("HGET")
        .arg(format!("seckill:{{{sale}}}:sale"))
        .arg("sold")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(sold, 1, "Redis reserved it although the buyer heard 503");
    let metrics = node.get("/metrics", &Auth::None).await.text();
    assert!(
        metrics
            .lines()
            .any(|line| line == "seckill_purchases_unconfirmed_total 1"),
        "seckill_purchases_unconfirmed_total is not 1:\n{metrics}"
    );
    assert_eq!(dashboard_unconfirmed(&node, 1).await, 1);

    replica.signal("CONT");
    let order = eventually(PATIENCE, "a keyed retry gets 202", || async {
        let resp = node
            .purchase_with("unlucky", &sale, None, Some("key-1"))
            .await;
        (resp.status == StatusCode::ACCEPTED).then(|| resp.accepted(&sale))
    })
    .await;
    let orders = eventually(PATIENCE, "the order is a row", || async {
        let orders = node.my_orders("unlucky", &sale).await;
        (!orders.is_empty()).then_some(orders)
    })
    .await;
    assert_eq!(orders.len(), 1, "{orders:?}");
    assert_eq!(orders[0]["order_id"], order.as_str(), "{orders:?}");
    node.stop().await;
    drop(replica);
    drop(primary);
    db.remove().await;
}

// ---------------------------------------------------------------------------
// Failover: a primary, a replica and three sentinels
// ---------------------------------------------------------------------------

/// The order ids in the sale's stream on the Redis at `port`.
async fn stream_orders(port: u16, sale: &str) -> HashSet<String> {
    let reply: redis::streams::StreamRangeReply = sentinels::query(
        port,
        redis::cmd("XRANGE")
            .arg(format!("seckill:{{{sale}}}:reservations"))
            .arg("-")
            .arg("+"),
    )
    .await
    .expect("XRANGE");
    reply
        .ids
        .iter()
        .filter_map(|entry| entry.get::<String>("order_id"))
        .collect()
}

/// `sold` of the sale on the Redis at `port`.
async fn sold_on(port: u16, sale: &str) -> u64 {
    sentinels::query::<Option<u64>>(
        port,
        redis::cmd("HGET")
            .arg(format!("seckill:{{{sale}}}:sale"))
            .arg("sold"),
    )
    .await
    .expect("HGET sold")
    .unwrap_or(0)
}

/// Fresh users buy one unit each through `apis`, a few at a time, until
/// `stop` says so.
async fn rush_until(
    apis: Vec<Api>,
    sale: String,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Outcome {
    let mut all = Outcome::default();
    let mut round = 0;
    while !*stop.borrow() {
        let outcome = crowd(&apis, &sale, &format!("rush{round}"), 20, 4, true).await;
        all.reserved.extend(outcome.reserved);
        all.sold_out += outcome.sold_out;
        all.unavailable += outcome.unavailable;
        round += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    all
}

/// A split brain: mid-rush the primary stops (SIGSTOP) for 7 s, Sentinel
/// promotes the replica, then the old primary resumes (and runs what its
/// clients had sent it meanwhile) until Sentinel makes it a replica of the
/// new one, which drops whatever it wrote alone. Nodes with
/// `--redis-durability replicas:1` reach Redis through `url` (the
/// sentinels, or the first primary's own address). Whatever the nodes
/// did, no reservation written on the deposed primary alone may become an
/// order: every order row is an entry of the new primary, every 202 too,
/// and the new primary never sold more than the stock. Returns the
/// cluster for more checks, with the sale and the 202s.
async fn split_brain(
    test: &str,
    stock: u64,
    sentinel_url: bool,
) -> Option<(Sentinels, OrderDb, Vec<Seckill>, String, HashSet<String>)> {
    let db = OrderDb::create(POSTGRES_URL, test).await?;
    let set = Sentinels::start().await?;
    let url = if sentinel_url {
        set.url()
    } else {
        set.primary.url()
    };
    let buffer = BUFFER.to_string();
    let flags = [
        "--redis",
        &url,
        "--database",
        &db.url,
        "--buffer",
        &buffer,
        "--redis-durability",
        "replicas:1",
    ];
    let first = Seckill::start_with(&flags).await;
    let second = Seckill::start_like(&first, &flags).await;
    let nodes = vec![first, second];
    for node in &nodes {
        ready(node).await;
    }
    let sale = nodes[0]
        .open_sale_with(json!({ "stock": stock, "per_user_limit": 1 }))
        .await;
    for node in &nodes {
        let path = format!("/api/v1/sales/{sale}");
        eventually(PATIENCE, "every node knows the sale", || async {
            (node.get(&path, &Auth::None).await.status == StatusCode::OK).then_some(())
        })
        .await;
    }
    let apis: Vec<Api> = nodes.iter().map(Seckill::api).collect();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let rush = tokio::spawn(rush_until(apis, sale.clone(), stopped));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    set.primary.signal("STOP");
    tokio::time::sleep(Duration::from_secs(7)).await;
    set.primary.signal("CONT");
    // What the old primary ran after it resumed, before Sentinel makes it
    // a replica (for the record: it varies from run to run).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let deposed_held = stream_orders(set.primary.port, &sale).await;
    set.until_failed_over().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.send_replace(true);
    let outcome = rush.await.unwrap();

    let new_primary = set.replica.port;
    let kept = stream_orders(new_primary, &sale).await;
    let rows = db.order_ids(&sale).await;
    let deposed: Vec<&String> = rows.difference(&kept).collect();
    let held_alone = deposed_held.difference(&kept).count();
    let unconfirmed: usize = nodes
        .iter()
        .map(|node| {
            node.log()
                .matches("entries not confirmed as durable")
                .count()
        })
        .sum();
    let unacknowledged_lost: Vec<&String> = outcome.reserved.difference(&kept).collect();
    let sold = sold_on(new_primary, &sale).await;
    eprintln!(
        "{test}: {} 202s, {} 503s, {} rows, {} entries and sold {sold} on the new primary; \
         0.5 s after it resumed the deposed primary held {held_alone} entries alone; \
         {} rows are of entries the new primary lacks; \
         reads refused as unconfirmed: {unconfirmed}",
        outcome.reserved.len(),
        outcome.unavailable,
        rows.len(),
        kept.len(),
        deposed.len(),
    );
    assert!(
        deposed.is_empty(),
        "{} orders of reservations only the deposed primary had: {deposed:?}",
        deposed.len()
    );
    assert!(
        unacknowledged_lost.is_empty(),
        "acknowledged reservations lost in the failover: {unacknowledged_lost:?}"
    );
    assert!(sold <= stock, "sold {sold} of {stock}");
    // Every row holds one unit (none paid, cancelled or expired yet).
    assert!(
        rows.len() as u64 <= sold,
        "{} orders for {sold} units the new primary sold",
        rows.len()
    );
    Some((set, db, nodes, sale, outcome.reserved))
}

/// Nodes given the first primary's own address keep talking to it after
/// the failover: whatever it took while deposed never becomes an order.
#[tokio::test(flavor = "multi_thread")]
async fn a_deposed_primary_turns_no_reservation_into_an_order() {
    let Some((set, db, mut nodes, sale, _)) = split_brain("deposed_primary", 3_000, false).await
    else {
        return;
    };
    // What the new primary holds and the rows agree (entries the nodes
    // could not consume from the old address count as not yet consumed).
    assert_reconciled(&set.replica.url(), &db.url, &sale);
    for node in &mut nodes {
        node.stop().await;
    }
    db.remove().await;
}

/// Nodes given the sentinels follow the promoted primary by themselves:
/// purchases succeed again without a restart, the sale sells out exactly,
/// every 202 becomes an order and reconcile (through Sentinel too) agrees.
#[tokio::test(flavor = "multi_thread")]
async fn nodes_follow_a_sentinel_failover_and_sell_exactly_the_stock() {
    const STOCK: u64 = 3_000;
    let Some((set, db, mut nodes, sale, mut reserved)) =
        split_brain("sentinel_failover", STOCK, true).await
    else {
        return;
    };
    let apis: Vec<Api> = nodes.iter().map(Seckill::api).collect();
    for (i, api) in apis.iter().enumerate() {
        eventually(
            Duration::from_secs(20),
            "purchases succeed again",
            || async {
                let resp = api.purchase(&format!("after-{i}"), &sale).await;
                (resp.status == StatusCode::ACCEPTED).then(|| resp.accepted(&sale))
            },
        )
        .await;
    }
    let mut round = 0;
    while sold_on(set.replica.port, &sale).await < STOCK {
        assert!(round < 200, "the sale did not sell out");
        let outcome = crowd(&apis, &sale, &format!("late{round}"), 400, 32, true).await;
        reserved.extend(outcome.reserved);
        round += 1;
    }
    assert_eq!(sold_on(set.replica.port, &sale).await, STOCK);
    let rows = eventually(
        Duration::from_secs(60),
        "every order in the database",
        || async {
            let rows = db.order_ids(&sale).await;
            (rows.len() >= STOCK as usize && reserved.is_subset(&rows)).then_some(rows)
        },
    )
    .await;
    assert_eq!(rows.len() as u64, STOCK, "order rows of the sale");
    assert_reconciled(&set.url(), &db.url, &sale);
    for node in &mut nodes {
        node.stop().await;
    }
    db.remove().await;
}

/// A node started while the sentinels know no primary waits (not ready),
/// still waits while the primary has no replica for `replicas:1`, and
/// serves once it has one, without a restart.
#[tokio::test(flavor = "multi_thread")]
async fn a_node_started_before_the_primary_waits_for_sentinel_and_a_replica() {
    let Some(db) = OrderDb::create(POSTGRES_URL, "sentinel_late").await else {
        return;
    };
    let Some(mut set) = Sentinels::before_the_primary() else {
        return;
    };
    let flags = [
        "--redis",
        &set.url(),
        "--database",
        &db.url,
        "--redis-durability",
        "replicas:1",
    ];
    let mut node = Seckill::start_with(&flags).await;
    assert_waiting(&node, "redis").await;
    set.primary.restart().await;
    eventually(PATIENCE, "Sentinel names the primary", || async {
        let message = node.get("/readyz", &Auth::None).await.text();
        message.contains("replicas online").then_some(())
    })
    .await;
    assert_waiting(&node, "replicas").await;
    set.start_replica().await;
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
    let Some(mut cluster) = Cluster::start("older_snapshot", POSTGRES_URL, 2, &no_aof, &[]).await
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
    let Some(mut cluster) = Cluster::start("restarted_empty", POSTGRES_URL, 2, &none, &[]).await
    else {
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
    // The buying node hears of the unit by the restock message, a moment
    // after Redis has it back.
    eventually(PATIENCE, "the buying node sees the unit", || async {
        let stock = apis[1]
            .get(&format!("/api/v1/sales/{sale}/stock"), &Auth::None)
            .await;
        (stock.status == StatusCode::OK && stock.json()["remaining"] == 1).then_some(())
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

/// The cluster's settings by the variable names of the HTTP contract: a
/// node given only `SECKILL_REDIS_URL` and `SECKILL_DATABASE_URL` joins
/// the cluster and sells its sale; one given the earlier names refuses to
/// start rather than run as an embedded engine of its own.
#[tokio::test(flavor = "multi_thread")]
async fn a_node_joins_by_the_contracts_variable_names() {
    let Some(cluster) = Cluster::start("variable_names", POSTGRES_URL, 1, &[], &[]).await else {
        return;
    };
    let sale = cluster
        .open_sale(json!({ "stock": 5, "per_user_limit": 1 }))
        .await;
    let redis = cluster.redis.url();
    let env = [
        ("SECKILL_REDIS_URL", redis.as_str()),
        ("SECKILL_DATABASE_URL", cluster.db.url.as_str()),
    ];
    let mut node = Seckill::start_like_in(cluster.node(0), &[], &env).await;
    ready(&node).await;
    let path = format!("/api/v1/sales/{sale}");
    eventually(PATIENCE, "the node sells the cluster's sale", || async {
        (node.get(&path, &Auth::None).await.status == StatusCode::OK).then_some(())
    })
    .await;
    let order = node.buy("by-variables", &sale).await;
    cluster
        .assert_orders_materialize(&sale, &HashSet::from([order]), 1)
        .await;
    node.stop().await;

    for old in ["SECKILL_REDIS", "SECKILL_DATABASE"] {
        let data_dir = tempfile::tempdir().expect("a data dir");
        let output = std::process::Command::new(seckill_binary())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("SECKILL_DATA_DIR", data_dir.path())
            .env(old, &redis)
            .output()
            .expect("run seckill serve");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{old}: started");
        assert!(stderr.contains(&format!("{old}_URL")), "{old}: {stderr}");
    }
    cluster.stop().await;
}
