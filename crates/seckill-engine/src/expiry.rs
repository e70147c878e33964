//! The expiry sweeper: a few times a second, expires every unpaid order past
//! its deadline (one compare-and-set in the store) and puts its units back
//! on sale, so an order expires within its payment timeout plus one second.
//! The store's index of pending orders by deadline is the timer queue, so
//! orders pending at start are picked up without reloading anything.

use crate::StoreError;
use crate::market::Market;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

pub const SWEEP_INTERVAL: Duration = Duration::from_millis(250);

pub fn spawn(market: Arc<Market>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SWEEP_INTERVAL);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match market.expire_due().await {
                Ok(()) | Err(StoreError::CircuitOpen) => {}
                Err(error) => tracing::warn!(%error, "expiry sweep failed; retrying"),
            }
        }
    })
}
