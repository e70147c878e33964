//! Shared by the modules, in the crate's own types: the authority and the
//! order stores on the real Redis and databases, sales and reservations
//! that no other test touches, and raw reads of the Redis data model.

use redis::AsyncCommands;
use seckill_cluster::authority::keys::SaleKeys;
use seckill_cluster::authority::{AuthorityConfig, RedisAuthority};
use seckill_cluster::orders::SqlOrders;
use seckill_core::{OrderId, Sale, SaleId, Timestamp, UserId};
use seckill_engine::Reservation;
use seckill_test_support::services::{database_urls, raw};
use std::collections::HashMap;

/// The authority on the Redis at `url`, with the default settings.
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

/// Units held per user of a sale, as Redis counts them.
pub async fn buyers(url: &str, sale: &SaleId) -> HashMap<String, u64> {
    raw(url)
        .await
        .hgetall(SaleKeys::new(sale).buyers)
        .await
        .unwrap()
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

/// Milliseconds since the epoch, as the crate's timestamps count them.
pub fn now() -> i64 {
    Timestamp::now().as_millis()
}

/// A new sale of its own, recorded in `store`.
pub async fn new_sale(store: &SqlOrders) -> SaleId {
    let sale = sale(1_000_000, 10);
    store.create_sale(&sale).await.expect("create sale");
    sale.id
}

/// A reservation of one unit of `sale` by `user`, due at `expires_at_ms`.
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
