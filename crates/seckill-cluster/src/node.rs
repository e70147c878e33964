//! This engine as one node of a cluster: Redis decides every purchase,
//! through this node's quota; the database holds the orders
//! ([`ClusterStore`]), written by the stream consumers this node runs, one
//! per sale.
//!
//! Memory keeps each sale's stock only as a **view** of Redis' count: set
//! from every answer Redis gives, from the sold-out and restock messages,
//! and re-read every second. It serves the sold-out fast path, the stock
//! read and the dashboard; it never decides a purchase.
//!
//! Every second the node also picks up the sales other nodes created (a
//! sale is purchasable on every node within about a second of its
//! creation), starts their consumers, and counts settled units from the
//! database for metrics. At start and every few seconds it releases the
//! units of cancelled or expired orders that never reached Redis
//! ([`RecentReleases`]): a node that died between the two steps strands
//! nothing for longer than that.
//!
//! A Redis that restarted (from an older snapshot, or empty) fences each
//! sale: its scripts refuse purchases and releases of a sale whose counts
//! were not checked under the running process (`run_id.lua`). A node that
//! meets the fence — a purchase answered `unverified` or `unknown_sale`, or
//! the once-a-second look at each sale — marks the sale unavailable
//! (purchases and stock reads answer 503) and runs the repair
//! `seckill reconcile --repair` runs ([`Reconciler::repair`]: the sale
//! seeded again from the database if Redis lost it, the orders Redis lost
//! put back); the sale sells again once the fence is lifted.

use crate::authority::{
    AuthorityConfig, AuthorityError, Fence, RedisAuthority, ReserveOutcome, ReserveRequest,
    StockEvent,
};
use crate::consumer::{Consumer, ConsumerConfig};
use crate::nodes::Heartbeat;
use crate::orders::{OrdersError, SqlOrders};
use crate::quota::Quotas;
use crate::reconcile::{RecentReleases, Reconciler};
use crate::store::ClusterStore;
use async_trait::async_trait;
use seckill_core::{OrderId, OrderStatus, Receipt, SaleId};
use seckill_engine::breaker::{Breaker, BreakerRules};
use seckill_engine::clock::RemoteClock;
use seckill_engine::{Decided, LiveSale, Market, Purchase, Refusal, StockAuthority, Store};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How often a node says it is alive, and how long it counts as alive
/// after its last beat: a dead node's share returns within `HEARTBEAT_TTL`.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
const HEARTBEAT_TTL: Duration = Duration::from_secs(3);
/// How often the views, the sales and the consumers are brought up to date.
const REFRESH_EVERY: Duration = Duration::from_secs(1);
/// How often the node looks for releases that never reached Redis.
const RELEASES_EVERY: Duration = Duration::from_secs(5);
/// How soon a repair that could not lift a sale's fence is tried again.
const REPAIR_RETRY: Duration = Duration::from_secs(2);

/// What a node needs to join a cluster.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub redis: AuthorityConfig,
    /// `postgres://…` or `mysql://…`.
    pub database_url: String,
    /// Unique among the nodes: names the heartbeat and the stream consumer.
    pub node_id: String,
    /// Units a node may ask Redis for beyond its even share (the 12306
    /// design's buffer).
    pub buffer: u64,
    /// When Redis' circuit breaker opens.
    pub redis_breaker: BreakerRules,
}

#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("Redis: {0}")]
    Redis(#[from] AuthorityError),
    #[error("the order database: {0}")]
    Database(#[from] OrdersError),
}

impl JoinError {
    /// Whether Redis or the database could not be reached or takes no
    /// connections yet: worth waiting for, unlike wrong settings.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Redis(error) => matches!(error, AuthorityError::Unavailable(_)),
            Self::Database(error) => error.is_unreachable() || error.refuses_connections(),
        }
    }
}

pub struct Cluster {
    node_id: String,
    authority: RedisAuthority,
    orders: SqlOrders,
    quotas: Arc<Quotas>,
    heartbeat: Mutex<Option<Heartbeat>>,
    consumers: Mutex<HashMap<SaleId, JoinHandle<()>>>,
    /// Open while Redis keeps failing: purchases get 503 at once.
    breaker: Arc<Breaker>,
    /// Purchases answered 503 that Redis reserved all the same: the
    /// durability wait fell short (`seckill_purchases_unconfirmed_total`).
    unconfirmed: AtomicU64,
    /// Sales Redis lost or fenced, for the repairer (`spawn`); each sale
    /// is queued once until its repair ends.
    repairs: mpsc::UnboundedSender<SaleId>,
    repairs_queued: Mutex<HashSet<SaleId>>,
    repair_queue: Mutex<Option<mpsc::UnboundedReceiver<SaleId>>>,
}

impl Cluster {
    /// Connects to Redis (checking it can give the durability asked for)
    /// and to the database (applying its migrations), and starts beating.
    /// Returns the node and the store the engine runs on.
    pub async fn join(config: ClusterConfig) -> Result<(Arc<Self>, Arc<dyn Store>), JoinError> {
        let authority = RedisAuthority::connect(config.redis).await?;
        let orders = SqlOrders::connect(&config.database_url).await?;
        let heartbeat = Heartbeat::start(
            authority.clone(),
            config.node_id.clone(),
            HEARTBEAT_EVERY,
            HEARTBEAT_TTL,
        )
        .await?;
        let (repairs, repair_queue) = mpsc::unbounded_channel();
        let cluster = Arc::new(Self {
            repairs,
            repairs_queued: Mutex::default(),
            repair_queue: Mutex::new(Some(repair_queue)),
            quotas: Quotas::new(config.buffer, heartbeat.live_nodes()),
            heartbeat: Mutex::new(Some(heartbeat)),
            node_id: config.node_id,
            consumers: Mutex::default(),
            breaker: Arc::new(Breaker::new("redis", config.redis_breaker)),
            unconfirmed: AtomicU64::new(0),
            authority: authority.clone(),
            orders: orders.clone(),
        });
        Ok((cluster, Arc::new(ClusterStore::new(orders, authority))))
    }

    /// A purchase, decided by Redis through this node's quota (answered
    /// sold out here once the node knows the stock is gone). Redis being
    /// unreachable is a 503, never a guess (I7).
    async fn reserve(&self, sale: &LiveSale, purchase: Purchase) -> Decided<Receipt> {
        let call = self.breaker.call().map_err(|_| {
            Refusal::Unavailable("the stock authority keeps failing; nothing was reserved")
        })?;
        let order_id = OrderId::generate();
        let request = ReserveRequest {
            sale_id: &sale.sale.id,
            user_id: &purchase.user,
            quantity: purchase.quantity,
            order_id: &order_id,
            idempotency_key: purchase.idempotency_key.as_deref(),
        };
        let result = self
            .quotas
            .get(&sale.sale.id)
            .reserve(&self.authority, &request)
            .await;
        call.report(&result);
        let outcome = result.map_err(|error| match error {
            AuthorityError::Unconfirmed(short) => {
                self.unconfirmed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(sale = %sale.sale.id, %short, "purchase answered 503 although Redis reserved it: the durability wait fell short");
                Refusal::Unavailable(
                    "reserved, but not yet as durable as promised: the reservation may stand; \
                     retry with the same Idempotency-Key to get it",
                )
            }
            error => {
                tracing::warn!(sale = %sale.sale.id, %error, "purchase refused: Redis failed");
                // Not "nothing was reserved": a call that timed out may have
                // run in Redis all the same.
                Refusal::Unavailable("the stock authority is unavailable")
            }
        })?;
        if let Some(remaining) = outcome.remaining() {
            sale.stock.set(remaining);
        }
        let refusal = match outcome {
            ReserveOutcome::Reserved {
                order_id,
                expires_at,
                ..
            }
            | ReserveOutcome::Duplicate {
                order_id,
                expires_at,
                ..
            } => {
                return Ok(Receipt {
                    order_id,
                    sale_id: sale.sale.id.clone(),
                    status: OrderStatus::Queued,
                    expires_at,
                });
            }
            ReserveOutcome::LimitReached { .. } => Refusal::LimitReached,
            ReserveOutcome::SoldOut { .. } => Refusal::SoldOut,
            ReserveOutcome::NotStarted { .. } => Refusal::NotStarted,
            ReserveOutcome::Ended { .. } => Refusal::Ended,
            ReserveOutcome::UnknownSale | ReserveOutcome::Unverified => {
                self.fenced(sale);
                Refusal::UnderRepair
            }
        };
        Err(refusal)
    }

    /// Starts keeping `market` up to date (the views, the sales other nodes
    /// create, repairs after a Redis restart); abort the tasks at shutdown,
    /// then [`Self::leave`].
    pub fn start(self: &Arc<Self>, market: Arc<Market>) -> Vec<JoinHandle<()>> {
        let market_for_repairs = Arc::clone(&market);
        let follower = tokio::spawn({
            let (cluster, market) = (Arc::clone(self), Arc::clone(&market));
            async move { cluster.follow_events(&market).await }
        });
        let refresher = tokio::spawn({
            let cluster = Arc::clone(self);
            async move {
                let mut tick = tokio::time::interval(REFRESH_EVERY);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    cluster.refresh(&market).await;
                }
            }
        });
        let releases = RecentReleases::new(self.authority.clone(), self.orders.clone());
        let releaser = tokio::spawn(async move {
            let mut tick = tokio::time::interval(RELEASES_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match releases.repair().await {
                    Ok(repaired) => {
                        for repair in &repaired {
                            tracing::warn!(
                                ?repair,
                                "released the units of an order a cancel or expiry left held in Redis"
                            );
                        }
                    }
                    Err(error) => tracing::debug!(%error, "releases not checked; retrying"),
                }
            }
        });
        let repairer = tokio::spawn({
            let cluster = Arc::clone(self);
            async move { cluster.repair_fenced(&market_for_repairs).await }
        });
        vec![follower, refresher, releaser, repairer]
    }

    /// Redis lost or fenced `sale` (it restarted): nothing is sold or shown
    /// as remaining until its repair lifts the fence.
    fn fenced(&self, sale: &LiveSale) {
        if !sale.is_unavailable() {
            tracing::warn!(sale = %sale.sale.id, "Redis restarted since this sale was checked: not selling it until it is repaired");
        }
        sale.set_unavailable(true);
        let newly = self
            .repairs_queued
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(sale.sale.id.clone());
        if newly {
            let _ = self.repairs.send(sale.sale.id.clone());
        }
    }

    /// Repairs the sales queued by `fenced`, one at a time, with the
    /// reconcile repair; a sale whose fence stays (Redis restarted again,
    /// or it holds fewer units than the orders and no order explains it)
    /// is tried again.
    async fn repair_fenced(self: &Arc<Self>, market: &Market) {
        let Some(mut queue) = self
            .repair_queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
        else {
            return;
        };
        let reconciler = Reconciler::new(self.authority.clone(), self.orders.clone());
        while let Some(sale_id) = queue.recv().await {
            let lifted = match reconciler.repair(&sale_id).await {
                Ok(report) if !report.fenced => {
                    tracing::info!(sale = %sale_id, repairs = report.repaired.len(), consistent = report.consistent, "repaired after a Redis restart: selling again");
                    true
                }
                Ok(report) => {
                    tracing::error!(sale = %sale_id, difference = report.difference, unexplained = report.unexplained, "Redis holds fewer units than the orders: not selling; see `seckill reconcile`");
                    false
                }
                Err(error) => {
                    tracing::warn!(sale = %sale_id, %error, "repair after a Redis restart failed; retrying");
                    false
                }
            };
            if lifted {
                self.repairs_queued
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .remove(&sale_id);
                if let Some(sale) = market.get(sale_id.as_str()) {
                    self.reopen(&sale).await;
                }
            } else {
                let (cluster, sale_id) = (Arc::clone(self), sale_id);
                tokio::spawn(async move {
                    tokio::time::sleep(REPAIR_RETRY).await;
                    let _ = cluster.repairs.send(sale_id);
                });
            }
        }
    }

    /// The fence is lifted: the view and the quota are read again, then
    /// the sale is sold again.
    async fn reopen(&self, sale: &LiveSale) {
        self.quotas.get(&sale.sale.id).on_restock();
        self.read_view(sale).await;
        sale.set_unavailable(false);
    }

    /// Stops the consumers (their unacknowledged entries go to the other
    /// nodes) and leaves the live nodes, so the others' quotas grow at once.
    pub async fn leave(&self) {
        let consumers = std::mem::take(
            &mut *self
                .consumers
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        consumers.values().for_each(JoinHandle::abort);
        let heartbeat = self
            .heartbeat
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(heartbeat) = heartbeat
            && let Err(error) = heartbeat.leave().await
        {
            tracing::warn!(%error, "could not leave the live nodes; they notice when the heartbeat expires");
        }
    }

    /// Sold out: the view drops to zero at once. Restock, or messages that
    /// may have been missed: the views are read again.
    async fn follow_events(&self, market: &Market) {
        let mut events = self.authority.events();
        while let Some(event) = events.next().await {
            self.quotas.apply(&event);
            match event {
                StockEvent::SoldOut(sale_id) => {
                    if let Some(sale) = market.get(sale_id.as_str()) {
                        sale.stock.set(0);
                    }
                }
                StockEvent::Restock(sale_id) => {
                    if let Some(sale) = market.get(sale_id.as_str()) {
                        self.read_view(&sale).await;
                    }
                }
                StockEvent::Resync => {
                    for sale in market.all() {
                        self.read_view(&sale).await;
                    }
                }
            }
        }
    }

    /// Adopts sales created elsewhere, keeps a consumer on every sale,
    /// reads the views, and counts settled units for metrics.
    async fn refresh(&self, market: &Market) {
        match market.store().load().await {
            Ok(snapshot) => {
                for sale in snapshot.sales {
                    market.adopt(sale);
                }
            }
            Err(error) => tracing::warn!(%error, "could not list the sales"),
        }
        for sale in market.all() {
            self.keep_consuming(&sale.sale.id);
            self.check_fence(&sale).await;
        }
        if let Err(error) = market.count_settled().await {
            tracing::debug!(%error, "could not count settled units");
        }
    }

    /// Looks whether Redis restarted under the sale (it lost or fenced
    /// it), or whether another node's repair lifted the fence; an open
    /// sale's view is set from the same read.
    async fn check_fence(&self, sale: &LiveSale) {
        match self.authority.fence(&sale.sale.id).await {
            Ok(Fence::Open(level)) if !sale.is_unavailable() => sale.stock.set(level.remaining()),
            Ok(Fence::Open(_)) => {
                let queued = self
                    .repairs_queued
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .contains(&sale.sale.id);
                if !queued {
                    self.reopen(sale).await;
                }
            }
            Ok(Fence::Fenced | Fence::Unknown) => self.fenced(sale),
            Err(error) => tracing::debug!(sale = %sale.sale.id, %error, "fence not checked"),
        }
    }

    async fn read_view(&self, sale: &LiveSale) {
        match self.authority.state(&sale.sale.id).await {
            Ok(Some(level)) => sale.stock.set(level.remaining()),
            Ok(None) => {}
            Err(error) => tracing::debug!(sale = %sale.sale.id, %error, "stock view not refreshed"),
        }
    }

    /// Starts (or restarts, if it ended) this node's consumer of the sale.
    fn keep_consuming(&self, sale_id: &SaleId) {
        let mut consumers = self
            .consumers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if consumers
            .get(sale_id)
            .is_some_and(|task| !task.is_finished())
        {
            return;
        }
        match Consumer::new(
            &self.authority,
            self.orders.clone(),
            sale_id.clone(),
            ConsumerConfig::new(self.node_id.clone()),
        ) {
            Ok(consumer) => {
                consumers.insert(sale_id.clone(), tokio::spawn(consumer.run()));
            }
            Err(error) => tracing::warn!(sale = %sale_id, %error, "could not start a consumer"),
        }
    }
}

#[async_trait]
impl StockAuthority for Cluster {
    async fn purchase(&self, sale: &LiveSale, purchase: Purchase) -> Decided<Receipt> {
        self.reserve(sale, purchase).await
    }

    fn clock(&self) -> Arc<dyn RemoteClock> {
        Arc::clone(self.authority.clock()) as Arc<dyn RemoteClock>
    }

    fn unconfirmed(&self) -> u64 {
        self.unconfirmed.load(Ordering::Relaxed)
    }
}
