//! Rate limiting per user, per client address and for the whole engine, on
//! the routes the configuration names (purchases by default). A refused
//! request gets 429 `rate_limited` with a `Retry-After`, and is counted in
//! `seckill_rate_limited_total{scope}`.
//!
//! Three algorithms, one per engine: the token bucket (GCRA, by governor),
//! the leaky bucket (requests spaced at the rate, waiting a bounded time
//! for their slot) and the fixed-window counter. Each scope keeps one
//! small state per key, evicted once idle and capped in number
//! ([`keyed`]).
//!
//! Where: purchases check the address right after the sale's own refusals
//! (sold out, not started, …), which stay as cheap as they were, and the
//! user and the engine-wide limit right after authentication; other routes
//! check all three before routing (`http1.rs`).

mod fixed_window;
mod keyed;
mod leaky_bucket;
mod limiter;

pub use crate::client_ip::TrustedProxies;
pub use limiter::{FULL_TABLE_RETRY, Limiter, RetryAfter};

use crate::App;
use crate::error::ApiError;
use crate::route::Route;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use metrics::Counter;
use seckill_core::{ErrorCode, UserId};
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::time::Duration;
use tokio::task::JoinHandle;

/// How often idle keys are evicted.
pub const EVICT_EVERY: Duration = Duration::from_secs(1);
/// Keys one scope may hold at once, so a flood of distinct clients has a
/// bounded cost (`tests/rate_limit_memory.rs` checks a full table).
pub const MAX_KEYS: usize = 1_000_000;

pub const DEFAULT_USER_RATE: u32 = 10;
pub const DEFAULT_USER_BURST: u32 = 20;
/// Off: a benchmark crowd comes from one address, and so do the users
/// behind one NAT; turn it on behind a trusted proxy.
pub const DEFAULT_IP_RATE: u32 = 0;
pub const DEFAULT_IP_BURST: u32 = 100;
/// Off: shedding (`--max-in-flight`) already caps the engine's load.
pub const DEFAULT_GLOBAL_RATE: u32 = 0;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Algorithm {
    #[default]
    TokenBucket,
    LeakyBucket,
    FixedWindow,
}

impl Algorithm {
    pub const ALL: [Self; 3] = [Self::TokenBucket, Self::LeakyBucket, Self::FixedWindow];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::TokenBucket => "token_bucket",
            Self::LeakyBucket => "leaky_bucket",
            Self::FixedWindow => "fixed_window",
        }
    }
}

impl FromStr for Algorithm {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|algorithm| algorithm.as_str() == name)
            .ok_or_else(|| {
                format!(
                    "rate algorithm {name:?}: expected token_bucket, leaky_bucket or fixed_window"
                )
            })
    }
}

/// `per_second` requests per second, `burst` at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub per_second: NonZeroU32,
    pub burst: NonZeroU32,
}

impl Rate {
    /// `None` (no limit) for a rate of 0; a burst of 0 is refused.
    pub fn new(what: &str, per_second: u32, burst: u32) -> Result<Option<Self>, String> {
        let Some(per_second) = NonZeroU32::new(per_second) else {
            return Ok(None);
        };
        let burst =
            NonZeroU32::new(burst).ok_or_else(|| format!("{what}_burst must be at least 1"))?;
        Ok(Some(Self { per_second, burst }))
    }
}

/// The settings, each `None` when that scope is not limited.
#[derive(Clone, Debug)]
pub struct RateLimitConfig {
    pub algorithm: Algorithm,
    pub user: Option<Rate>,
    pub ip: Option<Rate>,
    /// Requests per second for the whole engine; its burst is one second's worth.
    pub global: Option<NonZeroU32>,
    pub trusted_proxies: TrustedProxies,
    pub routes: Vec<Route>,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            algorithm: Algorithm::default(),
            user: Rate::new("user", DEFAULT_USER_RATE, DEFAULT_USER_BURST).expect("valid default"),
            ip: None,
            global: None,
            trusted_proxies: TrustedProxies::default(),
            routes: vec![Route::Purchase],
        }
    }
}

/// A route by its metrics label (`purchase`, `purchase_token`, …).
pub fn route_named(label: &str) -> Result<Route, String> {
    Route::ALL
        .into_iter()
        .find(|route| route.label() == label)
        .ok_or_else(|| {
            let known: Vec<_> = Route::ALL.iter().map(|route| route.label()).collect();
            format!(
                "rate-limited route {label:?}: expected one of {}",
                known.join(", ")
            )
        })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    User,
    Ip,
    Global,
}

impl Scope {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Ip => "ip",
            Self::Global => "global",
        }
    }

    const fn refusal(self) -> &'static str {
        match self {
            Self::User => "too many requests from this user; retry after the time in Retry-After",
            Self::Ip => "too many requests from this address; retry after the time in Retry-After",
            Self::Global => {
                "the engine is taking all the requests it can; retry after the time in Retry-After"
            }
        }
    }
}

/// A refused request: 429 `rate_limited`, `Retry-After` in whole seconds,
/// at least 1.
#[derive(Debug)]
pub struct Limited {
    pub scope: Scope,
    pub retry_after: Duration,
}

impl IntoResponse for Limited {
    fn into_response(self) -> Response {
        let mut response =
            ApiError::new(ErrorCode::RateLimited, self.scope.refusal()).into_response();
        let seconds = self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        response
    }
}

/// One scope's limiter and its refusal counter.
struct Scoped {
    scope: Scope,
    limiter: Limiter,
    refused: Counter,
}

impl Scoped {
    fn new(scope: Scope, algorithm: Algorithm, rate: Rate) -> Self {
        Self {
            scope,
            limiter: Limiter::new(algorithm, rate, MAX_KEYS),
            refused: metrics::counter!("seckill_rate_limited_total", "scope" => scope.as_str()),
        }
    }

    fn check(&self, key: u64) -> Result<Duration, Limited> {
        self.limiter.check(key).map_err(|RetryAfter(retry_after)| {
            self.refused.increment(1);
            Limited {
                scope: self.scope,
                retry_after,
            }
        })
    }
}

/// The engine's limits.
pub struct RateLimits {
    /// Bit `route as u32` set for each limited route.
    routes: u32,
    trusted_proxies: TrustedProxies,
    /// Keys are fingerprints of the user id or address (see `keyed`).
    fingerprints: RandomState,
    user: Option<Scoped>,
    ip: Option<Scoped>,
    global: Option<Scoped>,
}

impl RateLimits {
    /// Counters are registered here: build after `Metrics::new`.
    pub fn new(config: RateLimitConfig) -> Self {
        let scoped =
            |scope, rate: Option<Rate>| rate.map(|rate| Scoped::new(scope, config.algorithm, rate));
        let global = config.global.map(|per_second| Rate {
            per_second,
            burst: per_second,
        });
        Self {
            routes: config
                .routes
                .iter()
                .fold(0, |bits, route| bits | 1 << *route as u32),
            user: scoped(Scope::User, config.user),
            ip: scoped(Scope::Ip, config.ip),
            global: scoped(Scope::Global, global),
            trusted_proxies: config.trusted_proxies,
            fingerprints: RandomState::new(),
        }
    }

    pub fn applies_to(&self, route: Route) -> bool {
        self.routes & 1 << route as u32 != 0
    }

    /// Before authentication: the client's address (see `client_ip`).
    pub async fn admit_address(
        &self,
        route: Route,
        peer: IpAddr,
        headers: &HeaderMap,
    ) -> Result<(), Limited> {
        let Some(ip) = self.ip.as_ref().filter(|_| self.applies_to(route)) else {
            return Ok(());
        };
        let client = self.trusted_proxies.client_ip(peer, headers);
        pause(ip.check(self.fingerprints.hash_one(client))?).await;
        Ok(())
    }

    /// After authentication: the user, if known, then the engine-wide limit,
    /// last, so that requests refused for their user do not use it up.
    pub async fn admit_user(&self, route: Route, user: Option<&UserId>) -> Result<(), Limited> {
        if !self.applies_to(route) {
            return Ok(());
        }
        let mut wait = Duration::ZERO;
        if let (Some(scoped), Some(user)) = (&self.user, user) {
            wait = scoped.check(self.fingerprints.hash_one(user.as_str()))?;
        }
        if let Some(global) = &self.global {
            wait = wait.max(global.check(0)?);
        }
        pause(wait).await;
        Ok(())
    }

    /// Forgets idle keys in every scope.
    pub fn evict_idle(&self) {
        for scoped in self.scopes() {
            if scoped.limiter.len() >= MAX_KEYS {
                tracing::warn!(
                    scope = scoped.scope.as_str(),
                    "rate limit table full: new clients are refused until idle ones are evicted"
                );
            }
            scoped.limiter.evict_idle();
        }
    }

    fn scopes(&self) -> impl Iterator<Item = &Scoped> {
        [&self.user, &self.ip, &self.global].into_iter().flatten()
    }
}

/// A leaky bucket's wait for the request's slot.
async fn pause(wait: Duration) {
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
}

/// Evicts idle keys every [`EVICT_EVERY`], on a blocking thread: a sweep of
/// a full table takes milliseconds.
pub fn spawn_eviction(app: App) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVICT_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let app = app.clone();
            let _ = tokio::task::spawn_blocking(move || app.rate_limits.evict_idle()).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_algorithms_are_named_as_in_the_configuration() {
        assert_eq!(route_named("purchase_token"), Ok(Route::PurchaseToken));
        assert!(route_named("buy").unwrap_err().contains("purchase_token"));
        for algorithm in Algorithm::ALL {
            assert_eq!(algorithm.as_str().parse(), Ok(algorithm));
        }
        assert!("gcra".parse::<Algorithm>().is_err());
        assert_eq!(Rate::new("ip", 0, 0), Ok(None));
        assert_eq!(
            Rate::new("ip", 5, 0),
            Err("ip_burst must be at least 1".into())
        );
    }

    #[test]
    fn only_the_configured_routes_are_limited() {
        let limits = RateLimits::new(RateLimitConfig {
            routes: vec![Route::Purchase, Route::Pay],
            ..RateLimitConfig::default()
        });
        assert!(limits.applies_to(Route::Purchase));
        assert!(limits.applies_to(Route::Pay));
        assert!(!limits.applies_to(Route::PurchaseToken));
    }

    #[tokio::test]
    async fn a_refusal_is_a_429_with_whole_seconds_to_wait() {
        let response = Limited {
            scope: Scope::User,
            retry_after: Duration::from_millis(1_200),
        }
        .into_response();
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["error"]["code"], "rate_limited");
        let soon = Limited {
            scope: Scope::Global,
            retry_after: Duration::from_millis(10),
        };
        assert_eq!(soon.into_response().headers()[header::RETRY_AFTER], "1");
    }
}
