//! Degradation, one click: an operator steps the engine down a level and
//! the least important traffic is refused first (503 `unavailable`), so the
//! purchase path keeps its capacity. Reads that need the store go first,
//! then every read; purchases (and paying for them) are the last to go.
//! The level is two atomic reads per request.
//!
//! The operator switches levels by hand ([`By::Operator`]); with automatic
//! degradation on, [`auto`] steps down when the engine is unhealthy and back
//! up when it has recovered. The stricter of the two applies.

pub mod auto;

pub use auto::AutoRules;

use crate::route::Route;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU8, Ordering};

/// The degrade levels, from everything served to nearly nothing.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
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
    /// Admin endpoints, health, readiness, metrics, dashboard: never refused.
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
            | Route::Metrics
            | Route::Dashboard
            | Route::DashboardEvents => Self::Operator,
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

/// The engine's level: the higher of the operator's choice and the
/// automatic one, shown as the gauge `seckill_degrade_level` (0 = normal …
/// 3 = closed); every switch is counted in
/// `seckill_degrade_switches_total{by, to}` and logged.
pub struct Degrade {
    operator: AtomicU8,
    automatic: AtomicU8,
    gauge: metrics::Gauge,
    /// Present when automatic degradation is on.
    pub auto: Option<AutoRules>,
}

/// Who switched the level.
#[derive(Clone, Copy, Debug)]
pub enum By {
    Operator,
    Automatic,
}

impl Degrade {
    pub fn new(auto: Option<AutoRules>) -> Self {
        let gauge = metrics::gauge!("seckill_degrade_level");
        gauge.set(0.0);
        Self {
            operator: AtomicU8::new(0),
            automatic: AtomicU8::new(0),
            gauge,
            auto,
        }
    }

    /// The level requests are judged by.
    pub fn level(&self) -> Level {
        self.operator_level().max(self.automatic_level())
    }

    pub fn operator_level(&self) -> Level {
        Level::from_index(self.operator.load(Ordering::Relaxed))
    }

    pub fn automatic_level(&self) -> Level {
        Level::from_index(self.automatic.load(Ordering::Relaxed))
    }

    /// Sets the operator's level (one click) or the automatic one.
    pub fn set(&self, by: By, level: Level) {
        let slot = match by {
            By::Operator => &self.operator,
            By::Automatic => &self.automatic,
        };
        let previous = Level::from_index(slot.swap(level.index(), Ordering::Relaxed));
        self.gauge.set(f64::from(self.level().index()));
        if previous != level {
            let by_label = match by {
                By::Operator => "operator",
                By::Automatic => "automatic",
            };
            metrics::counter!("seckill_degrade_switches_total", "by" => by_label, "to" => level.as_str())
                .increment(1);
            tracing::warn!(
                request_id = crate::request_scope::current_id(),
                by = by_label,
                from = previous.as_str(),
                to = level.as_str(),
                now = self.level().as_str(),
                "degrade level switched"
            );
        }
    }
}

impl Level {
    fn index(self) -> u8 {
        self as u8
    }

    fn from_index(index: u8) -> Self {
        LEVELS[usize::from(index).min(LEVELS.len() - 1)]
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::ReadsCached => "reads_cached",
            Self::PurchasesOnly => "purchases_only",
            Self::Closed => "closed",
        }
    }

    /// One level down (less served), or `None` at the bottom.
    pub fn lower(self) -> Option<Self> {
        LEVELS.get(usize::from(self.index()) + 1).copied()
    }

    /// One level up (more served), or `None` at `Normal`.
    pub fn higher(self) -> Option<Self> {
        usize::from(self.index())
            .checked_sub(1)
            .map(|index| LEVELS[index])
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
    fn the_stricter_of_operator_and_automatic_applies() {
        let degrade = Degrade::new(None);
        assert_eq!(degrade.level(), Level::Normal);
        degrade.set(By::Operator, Level::Closed);
        assert_eq!(degrade.level(), Level::Closed);
        degrade.set(By::Automatic, Level::ReadsCached);
        assert_eq!(degrade.level(), Level::Closed);
        degrade.set(By::Operator, Level::Normal);
        assert_eq!(degrade.level(), Level::ReadsCached);
        degrade.set(By::Automatic, Level::Normal);
        assert_eq!(degrade.level(), Level::Normal);
    }

    #[test]
    fn levels_step_one_at_a_time() {
        assert_eq!(Level::Normal.lower(), Some(Level::ReadsCached));
        assert_eq!(Level::Closed.lower(), None);
        assert_eq!(Level::ReadsCached.higher(), Some(Level::Normal));
        assert_eq!(Level::Normal.higher(), None);
    }
}
