//! The seckill engine as an HTTP service: the in-memory [`market`] that
//! decides purchases, the [`routes`] of the v1 API, and the background
//! [`expiry`] sweeper, over any [`seckill_store::Store`].

pub mod auth;
pub mod degrade;
pub mod error;
pub mod expiry;
mod http1;
pub mod market;
pub mod metrics;
pub mod openapi;
pub mod purchase_token;
pub mod route;
pub mod routes;
pub mod shedding;

use auth::Auth;
use market::Market;
use seckill_store::{Store, StoreError};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::net::TcpListener;

/// What the engine needs beyond its store.
pub struct ServerConfig {
    pub jwt_secret: Vec<u8>,
    pub admin_token: String,
    pub limits: shedding::Limits,
}

/// Shared by every request and worker.
pub struct AppState {
    pub market: Market,
    pub auth: Auth,
    pub purchase_tokens: purchase_token::PurchaseTokens,
    pub metrics: metrics::Metrics,
    pub limits: shedding::Limits,
    pub degrade: degrade::Degrade,
    pub in_flight: shedding::InFlight,
    /// Set at shutdown: readiness fails while in-flight requests finish.
    pub draining: AtomicBool,
}

pub type App = Arc<AppState>;

/// A warm engine: stock rebuilt, ready to serve.
pub struct Server {
    app: App,
}

impl Server {
    /// Loads the store and rebuilds every sale's stock from its orders.
    pub async fn open(config: ServerConfig, store: Arc<dyn Store>) -> Result<Self, StoreError> {
        let snapshot = store.load().await?;
        let app = Arc::new(AppState {
            market: Market::restore(store, snapshot),
            auth: Auth::new(&config.jwt_secret, &config.admin_token),
            purchase_tokens: purchase_token::PurchaseTokens::new(&config.jwt_secret),
            metrics: metrics::Metrics::new(),
            limits: config.limits,
            degrade: degrade::Degrade::new(),
            in_flight: shedding::InFlight::new(config.limits.max_in_flight),
            draining: AtomicBool::new(false),
        });
        Ok(Self { app })
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets
    /// in-flight requests finish and flushes the store's writer.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) {
        let sweeper = expiry::spawn(Arc::clone(&self.app));
        let app = Arc::clone(&self.app);
        http1::serve(
            listener,
            Arc::clone(&self.app),
            routes::router(Arc::clone(&self.app)),
            async move {
                shutdown.await;
                app.draining.store(true, Ordering::Release);
                tracing::info!("draining: no new connections, finishing in-flight requests");
            },
        )
        .await;
        sweeper.abort();
        self.app.market.store().close().await;
        tracing::info!("stopped; every acknowledged write is committed");
    }
}
