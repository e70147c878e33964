//! The market: every sale in memory with its live stock and its buyers.
//! This is where a purchase is decided; the store only makes the decision
//! durable. Rebuilt at start from the store's orders, never from a cached
//! count (I1, I3). In cluster mode Redis decides instead ([`Cluster`]) and
//! each sale's stock in memory is a view of Redis' count.

mod live_sale;
mod purchase;

pub use live_sale::{LiveSale, SaleUnits};
pub use purchase::{Purchase, Receipt};

use crate::clock::Clock;
use crate::cluster::Cluster;
use crate::error::ApiResult;
use crate::prebuilt::CachedJson;
use bytes::Bytes;
use seckill_core::{NewSale, Sale, SaleId};
use seckill_engine::{ReleasedUnits, Snapshot, Store, StoreResult};
use std::sync::{Arc, RwLock};

pub struct Market {
    sales: RwLock<Sales>,
    /// `GET /api/v1/sales`, serialized once per change.
    listing: RwLock<Arc<CachedJson>>,
    store: Arc<dyn Store>,
    /// Set in cluster mode: purchases go to Redis.
    cluster: Option<Arc<Cluster>>,
    /// This process' clock, or in cluster mode Redis'.
    clock: Clock,
}

/// Every sale by id. Hashed with foldhash, not SipHash: looking a sale up
/// is on every purchase and read, and only the operator adds keys, so the
/// map needs no defence against a crowd choosing colliding ones.
type Sales = foldhash::HashMap<SaleId, Arc<LiveSale>>;

/// The list changes only when a sale is created: caches may keep it a few
/// seconds and revalidate with its ETag.
const LISTING_CACHE_CONTROL: &str = "public, max-age=5";

/// Every sale, oldest first, as served by `GET /api/v1/sales`.
fn listing_of(sales: &Sales) -> CachedJson {
    let mut sales: Vec<&Sale> = sales.values().map(|live| &live.sale).collect();
    sales.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    let json = Bytes::from(serde_json::to_vec(&sales).expect("sales serialize"));
    CachedJson::new(json, LISTING_CACHE_CONTROL)
}

impl Market {
    /// Rebuilds every sale's stock, buyers and idempotency answers from the
    /// orders the store holds.
    pub fn restore(
        store: Arc<dyn Store>,
        snapshot: Snapshot,
        cluster: Option<Arc<Cluster>>,
    ) -> Self {
        let sales: Sales = snapshot
            .sales
            .into_iter()
            .map(|sale| (sale.id.clone(), Arc::new(LiveSale::new(sale))))
            .collect();
        for live in &snapshot.live_orders {
            match sales.get(&live.reservation.sale_id) {
                Some(sale) => sale.restore_order(&live.reservation, live.status.holds_stock()),
                None => {
                    tracing::error!(order = %live.reservation.order_id, "order of an unknown sale")
                }
            }
        }
        let held: u64 = sales
            .values()
            .map(|s| s.sale.stock - s.stock.remaining())
            .sum();
        tracing::info!(
            sales = sales.len(),
            held,
            "stock rebuilt from the stored orders"
        );
        let clock = cluster.as_ref().map_or(Clock::Local, |cluster| {
            Clock::Authority(Arc::clone(cluster.clock()))
        });
        Self {
            listing: RwLock::new(Arc::new(listing_of(&sales))),
            sales: RwLock::new(sales),
            store,
            cluster,
            clock,
        }
    }

    pub fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.cluster.as_ref()
    }

    /// The clock sale phases and times are judged by (`crate::clock`).
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn get(&self, id: &str) -> Option<Arc<LiveSale>> {
        self.sales
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(id)
            .cloned()
    }

    /// Every sale as `GET /api/v1/sales` serves it.
    pub fn listing(&self) -> Arc<CachedJson> {
        Arc::clone(
            &self
                .listing
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }

    /// Every sale, oldest first.
    pub fn all(&self) -> Vec<Arc<LiveSale>> {
        let mut all: Vec<_> = self
            .sales
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .values()
            .cloned()
            .collect();
        all.sort_by(|a, b| (a.sale.created_at, &a.sale.id).cmp(&(b.sale.created_at, &b.sale.id)));
        all
    }

    /// Validates, stores durably, then opens the sale in memory.
    pub async fn create_sale(&self, new_sale: NewSale) -> ApiResult<Arc<LiveSale>> {
        let sale = new_sale.validate(SaleId::generate(), self.clock.now())?;
        self.store.create_sale(&sale).await?;
        Ok(self.adopt(sale))
    }

    /// Opens a stored sale in memory unless it is open already (cluster
    /// mode: another node created it); returns it.
    pub fn adopt(&self, sale: Sale) -> Arc<LiveSale> {
        if let Some(live) = self.get(sale.id.as_str()) {
            return live;
        }
        let mut sales = self
            .sales
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let live = Arc::clone(
            sales
                .entry(sale.id.clone())
                .or_insert_with(|| Arc::new(LiveSale::new(sale))),
        );
        // Under the sales' lock, so that listings are replaced in order.
        *self
            .listing
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(listing_of(&sales));
        live
    }

    /// Counts each sale's paid, expired and cancelled units from the store:
    /// one query per sale, at start; memory keeps them up to date after.
    pub async fn count_settled(&self) -> StoreResult<()> {
        for sale in self.all() {
            let units = self.store.units_by_status(&sale.sale.id).await?;
            sale.restore_settled(&units);
        }
        Ok(())
    }

    /// Puts the units of an expired order back on sale.
    pub fn expired(&self, released: &ReleasedUnits) {
        if let Some(sale) = self.sale_of(released) {
            sale.expired(&released.user_id, released.quantity);
        }
    }

    /// Puts the units of a cancelled order back on sale.
    pub fn cancelled(&self, released: &ReleasedUnits) {
        if let Some(sale) = self.sale_of(released) {
            sale.cancelled(&released.user_id, released.quantity);
        }
    }

    fn sale_of(&self, released: &ReleasedUnits) -> Option<Arc<LiveSale>> {
        let sale = self.get(released.sale_id.as_str());
        if sale.is_none() {
            tracing::error!(sale = %released.sale_id, "released units of an unknown sale");
        }
        sale
    }
}
