//! Shared by the cluster tests: the real databases and Redis named by the
//! environment (or a private `redis-server` a test starts and stops), sales
//! and reservations that no other test touches, and raw reads of the Redis
//! data model.
#![allow(dead_code)] // each test binary uses its own part

mod private_redis;
mod relay;
#[allow(unused_imports)] // not every test binary starts one
pub use private_redis::PrivateRedis;
#[allow(unused_imports)] // not every test binary cuts a database off
pub use relay::Relay;

use redis::AsyncCommands;
use seckill_cluster::authority::keys::SaleKeys;
use seckill_cluster::authority::{AuthorityConfig, RedisAuthority};
use seckill_cluster::orders::SqlOrders;
use seckill_core::{OrderId, Sale, SaleId, Timestamp, UserId};
use seckill_engine::Reservation;
use std::collections::HashMap;
use std::io::Write;

/// The shared Redis, or `None` (said out loud) when it is not configured.
pub fn redis_url() -> Option<String> {
    let url = std::env::var(REDIS_URL).ok().filter(|u| !u.is_empty());
    if url.is_none() {
        let _ = writeln!(std::io::stderr(), "SKIPPED: {REDIS_URL} not set");
    }
    url
}

pub async fn authority(url: &str) -> RedisAuthority {
    RedisAuthority::connect(AuthorityConfig::new(url))
        .await
        .expect("connect to Redis")
}

/// An open sale with a unique id.
pub fn sale(stock: u64, per_user_limit: u64) -> Sale {
    let now = Timestamp::now();
    Sale {
        id: SaleId::generate(),
        name: "test".into(),
        stock,
        price_cents: 100,
        starts_at: Timestamp::from_millis(now.as_millis() - 60_000),
        ends_at: None,
        per_user_limit,
        payment_timeout_secs: 600,
        require_purchase_token: false,
        created_at: now,
    }
}

pub async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// The reservations stream of a sale, each entry's fields.
pub async fn reservations(url: &str, sale: &SaleId) -> Vec<HashMap<String, String>> {
    let mut conn = raw(url).await;
    let entries: Vec<(String, HashMap<String, String>)> = redis::cmd("XRANGE")
        .arg(SaleKeys::new(sale).reservations)
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    entries.into_iter().map(|(_, fields)| fields).collect()
}

/// Lifts the fence a Redis restart put on `sale` as a repair would once it
/// found Redis holds every unit (for tests of Redis alone, with no orders).
pub async fn lift_fence(url: &str, sale: &SaleId) {
    let mut conn = raw(url).await;
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut conn)
        .await
        .unwrap();
    let run = info
        .lines()
        .find_map(|line| line.strip_prefix("run_id:"))
        .unwrap()
        .trim()
        .to_owned();
    let _: () = conn
        .hset(SaleKeys::new(sale).sale, "run_id", run)
        .await
        .unwrap();
}

pub async fn buyers(url: &str, sale: &SaleId) -> HashMap<String, u64> {
    raw(url)
        .await
        .hgetall(SaleKeys::new(sale).buyers)
        .await
        .unwrap()
}

pub const POSTGRES_URL: &str = "SECKILL_TEST_DATABASE_URL_POSTGRES";
pub const MYSQL_URL: &str = "SECKILL_TEST_DATABASE_URL_MYSQL";
pub const REDIS_URL: &str = "SECKILL_TEST_REDIS_URL";

/// Says so on the terminal even when the test's output is captured.
pub fn skipped(test: &str, var: &str) {
    let _ = writeln!(std::io::stderr(), "SKIPPED: {test} on {var}: {var} not set");
}

/// The URLs of the databases to test against, each with its variable.
pub fn database_urls(test: &str) -> Vec<(&'static str, String)> {
    [POSTGRES_URL, MYSQL_URL]
        .into_iter()
        .filter_map(|var| match std::env::var(var) {
            Ok(url) => Some((var, url)),
            Err(_) => {
                skipped(test, var);
                None
            }
        })
        .collect()
}

/// A store on each configured database.
pub async fn databases(test: &str) -> Vec<SqlOrders> {
    let mut stores = Vec::new();
    for (var, url) in database_urls(test) {
        let store = SqlOrders::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("{var}={url}: {e}"));
        stores.push(store);
    }
    stores
}

pub fn redis() -> Option<redis::Client> {
    redis_url().map(|url| redis::Client::open(url).expect(REDIS_URL))
}

/// A connection that waits for large replies (the default gives up after
/// 500 ms, which a debug build on a busy machine can exceed).
pub async fn connection(client: &redis::Client) -> redis::aio::MultiplexedConnection {
    let config = redis::AsyncConnectionConfig::new()
        .set_response_timeout(Some(std::time::Duration::from_secs(10)));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .expect(REDIS_URL)
}

pub fn now() -> i64 {
    Timestamp::now().as_millis()
}

/// A new sale of its own, recorded in `store`.
pub async fn new_sale(store: &SqlOrders) -> SaleId {
    let sale = sale(1_000_000, 10);
    store.create_sale(&sale).await.expect("create sale");
    sale.id
}

pub fn reservation(sale: &SaleId, user: &str, expires_at_ms: i64) -> Reservation {
    Reservation {
        order_id: OrderId::generate(),
        sale_id: sale.clone(),
        user_id: UserId::from(user),
        quantity: 1,
        idempotency_key: None,
        created_at: Timestamp::from_millis(now()),
        expires_at: Timestamp::from_millis(expires_at_ms),
    }
}
