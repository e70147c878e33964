//! The store behind a circuit [`Breaker`]: while the store keeps failing,
//! calls fail at once with `Unavailable` instead of each waiting out the
//! store's own timeouts — a purchase is refused in microseconds (503, I7)
//! and nothing is taken. Any [`Store`] can be guarded; loading at start and
//! closing at shutdown are not.

use crate::breaker::{Breaker, Call};
use crate::{
    CancelOutcome, CommitTicket, PayOutcome, ReleasedUnits, Reservation, Snapshot, Store,
    StoreError, StoreResult, UnitsByStatus,
};
use async_trait::async_trait;
use seckill_core::{Order, OrderId, Sale, SaleId, UserId};
use std::future::Future;
use std::sync::Arc;

pub struct GuardedStore {
    inner: Arc<dyn Store>,
    breaker: Arc<Breaker>,
}

impl GuardedStore {
    pub fn new(inner: Arc<dyn Store>, breaker: Arc<Breaker>) -> Self {
        Self { inner, breaker }
    }

    fn call(&self) -> StoreResult<Call> {
        self.breaker.call().map_err(|_| StoreError::CircuitOpen)
    }

    async fn guard<T>(&self, operation: impl Future<Output = StoreResult<T>>) -> StoreResult<T> {
        let call = self.call()?;
        let result = operation.await;
        report(call, result.as_ref().err());
        result
    }
}

/// Only an outage counts against the store: a refusal of one request's
/// data says the store is up.
fn report(call: Call, error: Option<&StoreError>) {
    match error {
        Some(error) if error.is_outage() => call.failed(),
        _ => call.succeeded(),
    }
}

#[async_trait]
impl Store for GuardedStore {
    async fn load(&self) -> StoreResult<Snapshot> {
        self.inner.load().await
    }

    async fn create_sale(&self, sale: &Sale) -> StoreResult<()> {
        self.guard(self.inner.create_sale(sale)).await
    }

    fn reserve(&self, reservation: Reservation) -> StoreResult<CommitTicket> {
        let call = self.call()?;
        let ticket = match self.inner.reserve(reservation) {
            Ok(ticket) => ticket,
            Err(error) => {
                report(call, Some(&error));
                return Err(error);
            }
        };
        Ok(Box::pin(async move {
            let result = ticket.await;
            report(call, result.as_ref().err());
            result
        }))
    }

    async fn pay(
        &self,
        order: &OrderId,
        owner: &UserId,
        payment_ref: &str,
    ) -> StoreResult<PayOutcome> {
        self.guard(self.inner.pay(order, owner, payment_ref)).await
    }

    async fn cancel(&self, order: &OrderId, owner: &UserId) -> StoreResult<CancelOutcome> {
        self.guard(self.inner.cancel(order, owner)).await
    }

    async fn expire_due(&self) -> StoreResult<Vec<ReleasedUnits>> {
        self.guard(self.inner.expire_due()).await
    }

    async fn order(&self, id: &OrderId) -> StoreResult<Option<Order>> {
        self.guard(self.inner.order(id)).await
    }

    async fn orders_of(&self, owner: &UserId, sale: Option<&SaleId>) -> StoreResult<Vec<Order>> {
        self.guard(self.inner.orders_of(owner, sale)).await
    }

    async fn units_by_status(&self, sale: &SaleId) -> StoreResult<UnitsByStatus> {
        self.guard(self.inner.units_by_status(sale)).await
    }

    async fn close(&self) {
        self.inner.close().await
    }
}
