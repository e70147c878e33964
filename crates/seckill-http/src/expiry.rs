//! The expiry sweeper: a few times a second, expires every unpaid order past
//! its deadline (one compare-and-set in the store) and puts its units back
//! on sale, so an order expires within its payment timeout plus one second
//! (I6). The store's index of pending orders by deadline is the timer queue,
//! so orders pending at start are picked up without reloading anything.

use crate::App;
use seckill_engine::StoreError;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

pub const SWEEP_INTERVAL: Duration = Duration::from_millis(250);

pub fn spawn(app: App) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SWEEP_INTERVAL);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match app.market.store().expire_due().await {
                Ok(released) => {
                    for units in &released {
                        app.market.expired(units);
                    }
                    app.metrics.expired.increment(released.len() as u64);
                    app.swept_once.store(true, Ordering::Release);
                }
                Err(StoreError::CircuitOpen) => {}
                Err(error) => tracing::warn!(%error, "expiry sweep failed; retrying"),
            }
        }
    })
}
