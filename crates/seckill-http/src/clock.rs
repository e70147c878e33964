//! The clock this engine judges sale phases and times by. One engine is
//! one process with one clock: its own. A cluster node uses Redis' clock as
//! it knows it ([`AuthorityClock`]), the clock `reserve.lua` decides by, so
//! that what the node refuses from memory Redis would refuse too.

use seckill_cluster::clock::AuthorityClock;
use seckill_core::{Sale, SalePhase, Timestamp};
use std::sync::Arc;

pub enum Clock {
    /// The embedded engine: this process' wall clock.
    Local,
    /// A cluster node: Redis' clock, read with every heartbeat.
    Authority(Arc<AuthorityClock>),
}

impl Clock {
    pub fn now(&self) -> Timestamp {
        match self {
            Self::Local => Timestamp::now(),
            Self::Authority(clock) => clock.now(),
        }
    }

    /// How far this process' clock is ahead of the one it judges by:
    /// a cluster node's skew against Redis' clock.
    pub fn skew_seconds(&self) -> Option<f64> {
        match self {
            Self::Local => None,
            Self::Authority(clock) => Some(clock.skew_seconds()),
        }
    }

    /// The sale's phase for an answer from memory. A cluster node says
    /// `Upcoming` or `Ended` only where Redis surely would; near a boundary
    /// it says `Open` and lets Redis decide.
    pub fn phase(&self, sale: &Sale) -> SalePhase {
        match self {
            Self::Local => sale.phase(Timestamp::now()),
            Self::Authority(clock) => clock.phase(sale),
        }
    }
}
