//! What the integration tests share: the real `seckill` binary run as a
//! process on a private data dir ([`Seckill`]), a client of its API that
//! checks the answers' shape ([`Api`], [`Resp`]), tokens and times, the
//! services named by the environment, private `redis-server`s, a TCP relay
//! that can be cut, nginx in front of nodes and a headless Chromium.
//!
//! The tests say `use seckill_test_support::*;` and take what they need.

#![warn(missing_docs)]

mod api;
pub mod browser;
mod clock;
pub mod nginx;
mod private_redis;
mod relay;
mod scenarios;
pub mod sentinels;
mod server;
pub mod services;
mod token;

pub use api::{
    Api, Auth, Body, Resp, SaleReport, assert_balanced, error_shape, stalled_purchase, str_field,
    u64_field,
};
pub use clock::{now_unix, parse_rfc3339_millis, rfc3339};
pub use private_redis::PrivateRedis;
pub use relay::Relay;
pub use reqwest::{Method, StatusCode};
pub use scenarios::{identities_compare_byte_for_byte, refuse_what_no_store_keeps};
pub use sentinels::Sentinels;
pub use serde_json::{Value, json};
pub use server::{Seckill, seckill_binary, serve_refusal};
pub use token::mint_jwt;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Upper bound for anything a test waits on: start-up, shutdown, one
/// HTTP request, a browser's answer.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Polls `probe` every 50 ms until it returns `Some`, or panics after
/// `within` saying `what` never happened.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A string no other call in any test process returns: pid, time, counter.
pub fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!(
        "{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A 127.0.0.1 port nobody listened on a moment ago.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind a free port")
        .port()
}
