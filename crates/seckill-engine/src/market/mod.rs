//! The market: every sale in memory with its live stock and its buyers.
//! This is where a purchase is decided; the store only makes the decision
//! durable. Rebuilt at start from the store's orders, never from a cached
//! count. In cluster mode a [`StockAuthority`] decides instead and each
//! sale's stock in memory is a view of its count.

pub(crate) mod live_sale;
mod orders;
mod purchase;

pub use live_sale::{LiveSale, SaleUnits};
pub use seckill_core::{Purchase, Receipt};

use crate::authority::StockAuthority;
use crate::clock::Clock;
use crate::refusal::Decided;
use crate::{ReleasedUnits, Snapshot, Store, StoreResult};
use metrics::Counter;
use seckill_core::{NewSale, Sale, SaleId};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

pub struct Market {
    sales: RwLock<Sales>,
    /// Bumped whenever a sale opens, so that views of the list know to
    /// rebuild.
    generation: AtomicU64,
    store: Arc<dyn Store>,
    /// Set in cluster mode: purchases go to it.
    authority: Option<Arc<dyn StockAuthority>>,
    /// This process' clock, or the authority's.
    clock: Clock,
    /// Set once the first expiry sweep is done: until then, units of orders
    /// that expired while the engine was stopped are not back on sale.
    swept_once: AtomicBool,
    counters: Counters,
}

/// The order lifecycle's counters (`seckill_orders_*_total`).
struct Counters {
    paid: Counter,
    cancelled: Counter,
    expired: Counter,
}

/// Every sale by id. Hashed with foldhash, not SipHash: looking a sale up
/// is on every purchase and read, and only the operator adds keys, so the
/// map needs no defence against a crowd choosing colliding ones.
type Sales = foldhash::HashMap<SaleId, Arc<LiveSale>>;

impl Market {
    /// Rebuilds every sale's stock, buyers and idempotency answers from the
    /// orders the store holds.
    pub fn restore(
        store: Arc<dyn Store>,
        snapshot: Snapshot,
        authority: Option<Arc<dyn StockAuthority>>,
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
        let clock = authority
            .as_ref()
            .map_or(Clock::Local, |authority| Clock::Remote(authority.clock()));
        Self {
            sales: RwLock::new(sales),
            generation: AtomicU64::new(0),
            store,
            authority,
            clock,
            swept_once: AtomicBool::new(false),
            counters: Counters {
                paid: metrics::counter!("seckill_orders_paid_total"),
                cancelled: metrics::counter!("seckill_orders_cancelled_total"),
                expired: metrics::counter!("seckill_orders_expired_total"),
            },
        }
    }

    pub fn authority(&self) -> Option<&Arc<dyn StockAuthority>> {
        self.authority.as_ref()
    }

    /// Whether the first expiry sweep has run.
    pub fn swept_once(&self) -> bool {
        self.swept_once.load(Ordering::Acquire)
    }

    /// Changes whenever a sale opens.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
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
    pub async fn create_sale(&self, new_sale: NewSale) -> Decided<Arc<LiveSale>> {
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
        self.generation.fetch_add(1, Ordering::AcqRel);
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

    fn sale_of(&self, released: &ReleasedUnits) -> Option<Arc<LiveSale>> {
        let sale = self.get(released.sale_id.as_str());
        if sale.is_none() {
            tracing::error!(sale = %released.sale_id, "released units of an unknown sale");
        }
        sale
    }
}
