//! The stock authority port: who decides a purchase when it is not this
//! process' memory. The embedded engine has none (the market decides, the
//! store makes it durable); a cluster node plugs in its Redis authority.

use crate::clock::RemoteClock;
use crate::market::{LiveSale, Market, Purchase, Receipt};
use crate::refusal::Decided;
use async_trait::async_trait;
use std::sync::Arc;
use tokio::task::JoinHandle;

#[async_trait]
pub trait StockAuthority: Send + Sync + 'static {
    /// Decides and reserves a purchase; the answer is durable as promised.
    async fn purchase(&self, sale: &LiveSale, purchase: Purchase) -> Decided<Receipt>;
    /// The clock the authority decides by.
    fn clock(&self) -> Arc<dyn RemoteClock>;
    /// Starts the authority's upkeep of the market's view (stock, sales
    /// created elsewhere, repairs); the tasks are aborted at shutdown.
    fn start(self: Arc<Self>, market: Arc<Market>) -> Vec<JoinHandle<()>>;
    /// Leaves at shutdown, so that others take over this process' share.
    async fn stop(&self);
    /// Purchases refused as unavailable that the authority reserved all
    /// the same (a durability wait fell short), since the start.
    fn unconfirmed(&self) -> u64;
}
