//! The seckill engine's HTTP door: the accept loop, the [`routes`] of the
//! v1 API over the engine's market, and what guards and observes them
//! (auth, CORS, rate limits, shedding, degradation, metrics, dashboard).
//! It knows the engine's ports, never what implements them.

pub mod auth;
mod client_body;
pub mod client_ip;
mod connections;
pub mod cors;
pub mod dashboard;
pub mod degrade;
pub mod error;
mod from_memory;
mod http1;
mod latency;
pub mod metrics;
pub mod openapi;
pub mod per_thread;
mod prebuilt;
pub mod pulse;
pub mod purchase_token;
pub mod rate_limit;
pub mod request_scope;
pub mod requests;
pub mod route;
pub mod routes;
pub mod sale_views;
pub mod shedding;
pub mod tls;
pub mod waiting;

use auth::Auth;
use sale_views::SaleViews;
use seckill_engine::breaker::{Breaker, BreakerRules};
use seckill_engine::guarded_store::GuardedStore;
use seckill_engine::{Market, StockAuthority, Store, StoreError, expiry};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::net::TcpListener;

/// What the engine needs beyond its store.
#[derive(Clone)]
pub struct ServerConfig {
    /// Keys the purchase tokens; also the user JWTs' key unless `jwt` says otherwise.
    pub jwt_secret: Vec<u8>,
    pub jwt: auth::JwtRules,
    pub admin_token: String,
    pub limits: shedding::Limits,
    /// Automatic degradation, when on.
    pub auto_degrade: Option<degrade::AutoRules>,
    /// When the store's breaker opens.
    pub store_breaker: BreakerRules,
    /// Serve TLS instead of plain HTTP.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    pub rate_limits: rate_limit::RateLimitConfig,
    pub dashboard: dashboard::DashboardRules,
}

/// Shared by every request and worker.
pub struct AppState {
    pub market: Arc<Market>,
    /// The sales as the read path serves them.
    pub sales: SaleViews,
    pub auth: Auth,
    pub purchase_tokens: purchase_token::PurchaseTokens,
    /// Every answered request: what metrics, the dashboard and automatic
    /// degradation read.
    pub requests: requests::Requests,
    pub metrics: metrics::Metrics,
    pub rate_limits: rate_limit::RateLimits,
    pub limits: shedding::Limits,
    pub degrade: degrade::Degrade,
    pub in_flight: shedding::InFlight,
    /// Set at shutdown: readiness fails while in-flight requests finish.
    pub draining: AtomicBool,
    pub dashboard: dashboard::Feed,
}

pub type App = Arc<AppState>;

/// Why the engine could not open.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Key(#[from] auth::BadJwtKey),
}

/// A warm engine: stock rebuilt, ready to serve.
pub struct Server {
    app: App,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Server {
    /// Loads the store, rebuilds every sale's stock from its orders and
    /// counts their settled units. With an `authority` (a cluster node),
    /// it decides purchases and `store` is the cluster's.
    pub async fn open(
        config: ServerConfig,
        store: Arc<dyn Store>,
        authority: Option<Arc<dyn StockAuthority>>,
    ) -> Result<Self, OpenError> {
        let auth = Auth::new(&config.jwt, &config.admin_token)?
            .with_dashboard_token(config.dashboard.token.as_deref());
        // First: it installs the recorder that every metric handle binds to.
        let metrics = metrics::Metrics::new();
        let snapshot = store.load().await?;
        let breaker = Arc::new(Breaker::new("store", config.store_breaker));
        let store = Arc::new(GuardedStore::new(store, breaker));
        let market = Arc::new(Market::restore(store, snapshot, authority));
        market.count_settled().await?;
        let app = Arc::new(AppState {
            sales: SaleViews::new(Arc::clone(&market)),
            market,
            auth,
            purchase_tokens: purchase_token::PurchaseTokens::new(&config.jwt_secret),
            requests: requests::Requests::new(),
            metrics,
            rate_limits: rate_limit::RateLimits::new(config.rate_limits),
            limits: config.limits,
            degrade: degrade::Degrade::new(config.auto_degrade),
            in_flight: shedding::InFlight::new(config.limits.max_in_flight),
            draining: AtomicBool::new(false),
            dashboard: dashboard::Feed::new(config.dashboard.max_streams),
        });
        Ok(Self {
            app,
            tls: config.tls,
        })
    }

    /// The engine this server answers for.
    pub fn market(&self) -> &Arc<Market> {
        &self.app.market
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets
    /// in-flight requests finish and flushes the store's writer.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) {
        let sweeper = expiry::spawn(Arc::clone(&self.app.market));
        let health_judge = degrade::auto::spawn(Arc::clone(&self.app));
        let evictor = rate_limit::spawn_eviction(Arc::clone(&self.app));
        let node = listener
            .local_addr()
            .map_or_else(|_| "this engine".to_string(), |address| address.to_string());
        let sampler = dashboard::spawn(Arc::clone(&self.app), node);
        let app = Arc::clone(&self.app);
        http1::serve(
            listener,
            Arc::clone(&self.app),
            self.tls.clone(),
            async move {
                shutdown.await;
                app.draining.store(true, Ordering::Release);
                tracing::info!("draining: no new connections, finishing in-flight requests");
            },
        )
        .await;
        sweeper.abort();
        if let Some(judge) = health_judge {
            judge.abort();
        }
        evictor.abort();
        sampler.abort();
        self.app.market.store().close().await;
        tracing::info!("stopped; every acknowledged write is committed");
    }
}
