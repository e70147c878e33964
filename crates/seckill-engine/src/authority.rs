//! The stock authority port: who decides a purchase when it is not this
//! process' memory. The embedded engine has none (the market decides, the
//! store makes it durable); a cluster node plugs in its Redis authority.

use crate::clock::RemoteClock;
use crate::market::live_sale::LiveSale;
use crate::refusal::Decided;
use async_trait::async_trait;
use seckill_core::{Purchase, Receipt};
use std::sync::Arc;

#[async_trait]
pub trait StockAuthority: Send + Sync + 'static {
    /// Decides and reserves a purchase; the answer is durable as promised.
    async fn purchase(&self, sale: &LiveSale, purchase: Purchase) -> Decided<Receipt>;
    /// The clock the authority decides by.
    fn clock(&self) -> Arc<dyn RemoteClock>;
    /// Purchases refused as unavailable that the authority reserved all
    /// the same (a durability wait fell short), since the start.
    fn unconfirmed(&self) -> u64;
}
