//! Degradation, one click: an operator steps the engine down a level and
//! the least important traffic is refused first (503 `unavailable`), so the
//! purchase path keeps its capacity. Reads that need the store go first,
//! then every read; purchases (and paying for them) are the last to go.
//! The level is one atomic read per request.

use crate::route::Route;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU8, Ordering};

/// The levels of API.md, from everything served to nearly nothing.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Normal,
    /// Reads answered from memory only: orders (read from the store) are refused.
    ReadsCached,
    /// Only buying, paying and cancelling, plus the operator's endpoints.
    PurchasesOnly,
    /// Only the operator's endpoints.
    Closed,
}

const LEVELS: [Level; 4] = [
    Level::Normal,
    Level::ReadsCached,
    Level::PurchasesOnly,
    Level::Closed,
];

/// What a request is, as far as degradation cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Traffic {
    /// Buying: the purchase and its purchase token.
    Purchase,
    /// Paying or cancelling an order.
    OrderWrite,
    /// Reading orders: a store access per request.
    StoreRead,
    /// Sale details, lists and stock: answered from memory.
    MemoryRead,
    /// Admin endpoints, health, readiness, metrics: never refused.
    Operator,
}

impl Traffic {
    pub fn of(route: Route) -> Self {
        match route {
            Route::Purchase | Route::PurchaseToken => Self::Purchase,
            Route::Pay | Route::Cancel => Self::OrderWrite,
            Route::ListOrders | Route::GetOrder => Self::StoreRead,
            Route::ListSales | Route::GetSale | Route::Stock | Route::OpenApi | Route::Other => {
                Self::MemoryRead
            }
            Route::CreateSale
            | Route::Report
            | Route::Degrade
            | Route::Healthz
            | Route::Readyz
            | Route::Metrics => Self::Operator,
        }
    }
}

impl Level {
    pub fn allows(self, traffic: Traffic) -> bool {
        match self {
            Self::Normal => true,
            Self::ReadsCached => traffic != Traffic::StoreRead,
            Self::PurchasesOnly => matches!(
                traffic,
                Traffic::Purchase | Traffic::OrderWrite | Traffic::Operator
            ),
            Self::Closed => traffic == Traffic::Operator,
        }
    }
}

/// The engine's current level, shown as the gauge `seckill_degrade_level`
/// (0 = normal … 3 = closed).
pub struct Degrade {
    level: AtomicU8,
    gauge: metrics::Gauge,
}

impl Degrade {
    pub fn new() -> Self {
        let gauge = metrics::gauge!("seckill_degrade_level");
        gauge.set(0.0);
        Self {
            level: AtomicU8::new(0),
            gauge,
        }
    }

    pub fn level(&self) -> Level {
        LEVELS[usize::from(self.level.load(Ordering::Relaxed)).min(LEVELS.len() - 1)]
    }

    /// Switches to `level`; every switch is logged.
    pub fn set(&self, level: Level) {
        let index = LEVELS
            .iter()
            .position(|l| *l == level)
            .expect("every level is listed");
        let previous = LEVELS[usize::from(self.level.swap(index as u8, Ordering::Relaxed))];
        self.gauge.set(index as f64);
        if previous != level {
            tracing::warn!(from = ?previous, to = ?level, "degrade level switched by the operator");
        }
    }
}

impl Default for Degrade {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_map_to_traffic() {
        assert_eq!(Traffic::of(Route::Purchase), Traffic::Purchase);
        assert_eq!(Traffic::of(Route::PurchaseToken), Traffic::Purchase);
        assert_eq!(Traffic::of(Route::Pay), Traffic::OrderWrite);
        assert_eq!(Traffic::of(Route::GetOrder), Traffic::StoreRead);
        assert_eq!(Traffic::of(Route::Stock), Traffic::MemoryRead);
        assert_eq!(Traffic::of(Route::Report), Traffic::Operator);
        assert_eq!(Traffic::of(Route::Degrade), Traffic::Operator);
    }

    #[test]
    fn each_level_refuses_more_and_purchases_go_last() {
        use Traffic::*;
        let served = |level: Level| {
            [Purchase, OrderWrite, StoreRead, MemoryRead, Operator]
                .into_iter()
                .filter(|traffic| level.allows(*traffic))
                .collect::<Vec<_>>()
        };
        assert_eq!(served(Level::Normal).len(), 5);
        assert_eq!(
            served(Level::ReadsCached),
            [Purchase, OrderWrite, MemoryRead, Operator]
        );
        assert_eq!(
            served(Level::PurchasesOnly),
            [Purchase, OrderWrite, Operator]
        );
        assert_eq!(served(Level::Closed), [Operator]);
    }

    #[test]
    fn the_level_switches() {
        let degrade = Degrade::new();
        assert_eq!(degrade.level(), Level::Normal);
        degrade.set(Level::Closed);
        assert_eq!(degrade.level(), Level::Closed);
        degrade.set(Level::ReadsCached);
        assert_eq!(degrade.level(), Level::ReadsCached);
    }
}
