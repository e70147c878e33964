//! The clock this engine judges sale phases and times by. One engine is
//! one process with one clock: its own. A cluster node judges by the stock
//! authority's clock as it knows it ([`RemoteClock`]), so that what the
//! node refuses from memory the authority would refuse too.

use seckill_core::{Sale, SalePhase, Timestamp};
use std::sync::Arc;

/// A clock kept elsewhere and followed from here (the cluster's Redis).
pub trait RemoteClock: Send + Sync {
    fn now(&self) -> Timestamp;
    /// How far this process' clock is ahead of the remote one.
    fn skew_seconds(&self) -> f64;
    /// The sale's phase for an answer from memory: `Upcoming` or `Ended`
    /// only where the remote clock surely says so, else `Open`.
    fn phase(&self, sale: &Sale) -> SalePhase;
}

#[derive(Clone)]
pub enum Clock {
    /// The embedded engine: this process' wall clock.
    Local,
    Remote(Arc<dyn RemoteClock>),
}

impl Clock {
    pub fn now(&self) -> Timestamp {
        match self {
            Self::Local => Timestamp::now(),
            Self::Remote(clock) => clock.now(),
        }
    }

    /// A cluster node's skew against the clock it judges by.
    pub fn skew_seconds(&self) -> Option<f64> {
        match self {
            Self::Local => None,
            Self::Remote(clock) => Some(clock.skew_seconds()),
        }
    }

    pub fn phase(&self, sale: &Sale) -> SalePhase {
        match self {
            Self::Local => sale.phase(Timestamp::now()),
            Self::Remote(clock) => clock.phase(sale),
        }
    }
}
