//! The order lifecycle after the purchase: pay, cancel and expire, each a
//! compare-and-set in the store, then memory and counters updated here and
//! nowhere else, so that a transition is counted once whoever asked for it.

use super::Market;
use crate::refusal::{Decided, Refusal};
use crate::{CancelOutcome, PayOutcome, ReleasedUnits, StoreResult};
use seckill_core::{Order, OrderId, SaleId, UserId};
use std::sync::atomic::Ordering;

impl Market {
    /// The owner's order; another user's is no such order.
    pub async fn order(&self, id: &OrderId, owner: &UserId) -> Decided<Order> {
        match self.store.order(id).await? {
            Some(order) if &order.user_id == owner => Ok(order),
            _ => Err(Refusal::NoSuchOrder),
        }
    }

    pub async fn orders_of(&self, owner: &UserId, sale: Option<&SaleId>) -> Decided<Vec<Order>> {
        Ok(self.store.orders_of(owner, sale).await?)
    }

    /// Pays the owner's order; paying again with the same reference
    /// answers the same order and counts nothing twice.
    pub async fn pay(&self, id: &OrderId, owner: &UserId, payment_ref: &str) -> Decided<Order> {
        match self.store.pay(id, owner, payment_ref).await? {
            PayOutcome::Paid(order) => {
                self.counters.paid.increment(1);
                if let Some(sale) = self.get(order.sale_id.as_str()) {
                    sale.paid(order.quantity);
                }
                Ok(order)
            }
            PayOutcome::AlreadyPaid(order) => Ok(order),
            PayOutcome::NotFound => Err(Refusal::NoSuchOrder),
            PayOutcome::Expired => Err(Refusal::OrderExpired),
            PayOutcome::Cancelled => Err(Refusal::OrderCancelled),
            PayOutcome::NotPayable => Err(Refusal::NotPayable),
        }
    }

    /// Cancels the owner's unpaid order; its units go back on sale.
    pub async fn cancel(&self, id: &OrderId, owner: &UserId) -> Decided<Order> {
        match self.store.cancel(id, owner).await? {
            CancelOutcome::Cancelled(order, released) => {
                if let Some(sale) = self.sale_of(&released) {
                    sale.cancelled(&released.user_id, released.quantity);
                }
                self.counters.cancelled.increment(1);
                Ok(order)
            }
            CancelOutcome::NotFound => Err(Refusal::NoSuchOrder),
            CancelOutcome::NotCancellable => Err(Refusal::NotCancellable),
        }
    }

    /// Expires every unpaid order past its deadline and puts its units
    /// back on sale (the sweeper's step).
    pub async fn expire_due(&self) -> StoreResult<()> {
        let released = self.store.expire_due().await?;
        for units in &released {
            self.expired(units);
        }
        self.counters.expired.increment(released.len() as u64);
        self.swept_once.store(true, Ordering::Release);
        Ok(())
    }

    /// Puts the units of an expired order back on sale.
    fn expired(&self, released: &ReleasedUnits) {
        if let Some(sale) = self.sale_of(released) {
            sale.expired(&released.user_id, released.quantity);
        }
    }
}
