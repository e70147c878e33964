//! The seckill engine as an HTTP service: the in-memory [`market`] that
//! decides purchases, the [`routes`] of the v1 API, and the background
//! [`expiry`] sweeper, over any [`seckill_engine::Store`].

pub mod auth;
pub mod breaker;
mod client_body;
pub mod client_ip;
pub mod clock;
pub mod cluster;
mod connections;
pub mod cors;
pub mod dashboard;
pub mod degrade;
pub mod error;
pub mod expiry;
mod from_memory;
pub mod guarded_store;
mod http1;
pub mod market;
pub mod metrics;
pub mod openapi;
pub mod per_thread;
mod prebuilt;
pub mod pulse;
pub mod purchase_token;
pub mod rate_limit;
pub mod request_scope;
pub mod route;
pub mod routes;
pub mod shedding;
pub mod tls;
pub mod waiting;

use auth::Auth;
use market::Market;
use seckill_engine::{Store, StoreError};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

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
    pub store_breaker: breaker::BreakerRules,
    /// Serve TLS instead of plain HTTP.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    pub rate_limits: rate_limit::RateLimitConfig,
    pub dashboard: dashboard::DashboardRules,
}

/// Shared by every request and worker.
pub struct AppState {
    pub market: Market,
    pub auth: Auth,
    pub purchase_tokens: purchase_token::PurchaseTokens,
    pub metrics: metrics::Metrics,
    pub rate_limits: rate_limit::RateLimits,
    pub limits: shedding::Limits,
    pub degrade: degrade::Degrade,
    pub in_flight: shedding::InFlight,
    /// Set at shutdown: readiness fails while in-flight requests finish.
    pub draining: AtomicBool,
    /// Set once the first expiry sweep is done: until then, units of orders
    /// that expired while the engine was stopped are not back on sale.
    pub swept_once: AtomicBool,
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
    /// counts their settled units. With `cluster`, this engine is one node
    /// of it: `store` is the cluster's, and Redis decides purchases.
    pub async fn open(
        config: ServerConfig,
        store: Arc<dyn Store>,
        cluster: Option<Arc<cluster::Cluster>>,
    ) -> Result<Self, OpenError> {
        let auth = Auth::new(&config.jwt, &config.admin_token)?
            .with_dashboard_token(config.dashboard.token.as_deref());
        // First: it installs the recorder that every metric handle binds to.
        let metrics = metrics::Metrics::new();
        let snapshot = store.load().await?;
        let breaker = Arc::new(breaker::Breaker::new("store", config.store_breaker));
        let store = Arc::new(guarded_store::GuardedStore::new(store, breaker));
        let market = Market::restore(store, snapshot, cluster);
        market.count_settled().await?;
        let app = Arc::new(AppState {
            market,
            auth,
            purchase_tokens: purchase_token::PurchaseTokens::new(&config.jwt_secret),
            metrics,
            rate_limits: rate_limit::RateLimits::new(config.rate_limits),
            limits: config.limits,
            degrade: degrade::Degrade::new(config.auto_degrade),
            in_flight: shedding::InFlight::new(config.limits.max_in_flight),
            draining: AtomicBool::new(false),
            swept_once: AtomicBool::new(false),
            dashboard: dashboard::Feed::new(config.dashboard.max_streams),
        });
        Ok(Self {
            app,
            tls: config.tls,
        })
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets
    /// in-flight requests finish and flushes the store's writer.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) {
        let sweeper = expiry::spawn(Arc::clone(&self.app));
        let health_judge = degrade::auto::spawn(Arc::clone(&self.app));
        let evictor = rate_limit::spawn_eviction(Arc::clone(&self.app));
        let node = listener
            .local_addr()
            .map_or_else(|_| "this engine".to_string(), |address| address.to_string());
        let sampler = dashboard::spawn(Arc::clone(&self.app), node);
        let cluster_tasks = self
            .app
            .market
            .cluster()
            .map(|cluster| cluster.spawn(Arc::clone(&self.app)))
            .unwrap_or_default();
        let app = Arc::clone(&self.app);
        http1::serve(
            listener,
            Arc::clone(&self.app),
            routes::router(Arc::clone(&self.app)),
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
        cluster_tasks.iter().for_each(JoinHandle::abort);
        if let Some(cluster) = self.app.market.cluster() {
            cluster.leave().await;
        }
        self.app.market.store().close().await;
        tracing::info!("stopped; every acknowledged write is committed");
    }
}
