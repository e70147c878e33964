//! Shared by the cluster tests: the real databases and Redis named by the
//! environment (or a private `redis-server` a test starts and stops), sales
//! and reservations that no other test touches, and raw reads of the Redis
//! data model.
#![allow(dead_code)] // each test binary uses its own part

use redis::AsyncCommands;
use seckill_cluster::authority::keys::SaleKeys;
use seckill_cluster::authority::{AuthorityConfig, RedisAuthority};
use seckill_cluster::orders::SqlOrders;
use seckill_core::{OrderId, Sale, SaleId, Timestamp, UserId};
use seckill_store::Reservation;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

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

pub async fn buyers(url: &str, sale: &SaleId) -> HashMap<String, u64> {
    raw(url)
        .await
        .hgetall(SaleKeys::new(sale).buyers)
        .await
        .unwrap()
}

/// A `redis-server` of the test's own on a free port, in its own directory.
pub struct PrivateRedis {
    pub port: u16,
    pub dir: tempfile::TempDir,
    args: Vec<String>,
    child: Option<Child>,
}

impl PrivateRedis {
    const BINARY: &str = "/usr/bin/redis-server";

    /// Starts one with `args` added to port, dir and no snapshots; `None`
    /// (said out loud) when redis-server is not installed.
    pub async fn start(args: &[&str]) -> Option<Self> {
        if !Path::new(Self::BINARY).exists() {
            let _ = writeln!(std::io::stderr(), "SKIPPED: {} not found", Self::BINARY);
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let mut redis = Self {
            port,
            dir: tempfile::tempdir().unwrap(),
            args: args.iter().map(|a| a.to_string()).collect(),
            child: None,
        };
        redis.restart().await;
        Some(redis)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Sends a signal to the server (e.g. STOP, CONT).
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let status = Command::new("kill")
            .args(["-s", signal, &pid])
            .status()
            .unwrap();
        assert!(status.success(), "kill -s {signal} {pid}");
    }

    /// `kill -9`: no shutdown, no final save.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Starts it again on the same port and directory, and waits until it
    /// answers PING (it answers LOADING while it reads its AOF).
    pub async fn restart(&mut self) {
        self.kill();
        let child = Command::new(Self::BINARY)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--daemonize", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let url = self.url();
        for _ in 0..100 {
            if let Ok(client) = redis::Client::open(url.as_str())
                && let Ok(mut conn) = client.get_multiplexed_async_connection().await
                && redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server on port {} did not come up", self.port);
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
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
