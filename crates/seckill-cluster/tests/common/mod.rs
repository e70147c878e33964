//! Shared by the integration tests: the real databases and Redis named by
//! the environment, and sales and reservations that no other test touches.
#![allow(dead_code)] // each test binary uses its own part

use seckill_cluster::orders::SqlOrders;
use seckill_core::{OrderId, Sale, SaleId, Timestamp, UserId};
use seckill_store::Reservation;
use std::io::Write;

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

pub fn redis(test: &str) -> Option<redis::Client> {
    match std::env::var(REDIS_URL) {
        Ok(url) => Some(redis::Client::open(url).expect(REDIS_URL)),
        Err(_) => {
            skipped(test, REDIS_URL);
            None
        }
    }
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
    let sale = Sale {
        id: SaleId::generate(),
        name: "test sale".into(),
        stock: 1_000_000,
        price_cents: 100,
        starts_at: Timestamp::from_millis(now()),
        ends_at: None,
        per_user_limit: 10,
        payment_timeout_secs: 60,
        require_purchase_token: false,
        created_at: Timestamp::from_millis(now()),
    };
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
