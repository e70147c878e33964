//! Deciding a purchase, in memory and without I/O: the per-user limit, the
//! stock, the Idempotency-Key; then waiting for the store to make the
//! reservation durable before anyone is told it succeeded (I2).

use super::live_sale::receipt_of;
use super::{LiveSale, Market};
use crate::refusal::{Decided, Refusal};
use crate::{CommitTicket, Reservation, StoreError, StoreResult};
use futures::FutureExt;
use futures::future::BoxFuture;
use seckill_core::{OrderId, Purchase, Receipt, SalePhase, Timestamp, UserId};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

impl Market {
    /// Reserves `purchase.quantity` units of `sale` for the buyer, durably:
    /// in memory then the store, or by the stock authority in cluster mode.
    pub async fn purchase(&self, sale: &Arc<LiveSale>, purchase: Purchase) -> Decided<Receipt> {
        match &self.authority {
            Some(authority) => authority.purchase(sale, purchase).await,
            None => self.take(sale, purchase)?.await,
        }
    }

    /// The in-memory decision: an earlier answer to the key first, whatever
    /// the sale's state now (I5); then the phase, the limit and the stock.
    /// The buyer's entry stays locked from the key check to the recorded
    /// answer, so concurrent retries of one user can
    /// neither pass the limit together (I4) nor reserve twice for one key
    /// (I5). Nothing here waits on I/O.
    fn take(
        &self,
        sale: &Arc<LiveSale>,
        purchase: Purchase,
    ) -> Decided<BoxFuture<'static, Decided<Receipt>>> {
        let mut buyer = sale.buyers.entry(purchase.user.clone()).or_default();
        if let Some(key) = &purchase.idempotency_key
            && let Some(answer) = buyer.answers.get(key)
        {
            return Ok(answer.clone().boxed());
        }
        let now = Timestamp::now();
        let quantity = purchase.quantity;
        let refusal = match sale.sale.phase(now) {
            SalePhase::Upcoming => Some(Refusal::NotStarted),
            SalePhase::Ended => Some(Refusal::Ended),
            SalePhase::Open if buyer.held + quantity > sale.sale.per_user_limit => {
                Some(Refusal::LimitReached)
            }
            // Taken here, under the buyer's lock: the last check.
            SalePhase::Open if !sale.stock.try_take(quantity) => Some(Refusal::SoldOut),
            SalePhase::Open => None,
        };
        if let Some(refusal) = refusal {
            drop(buyer);
            sale.forget_if_empty(&purchase.user);
            return Err(refusal);
        }
        buyer.held += purchase.quantity;

        let reservation = Reservation {
            order_id: OrderId::generate(),
            sale_id: sale.sale.id.clone(),
            user_id: purchase.user.clone(),
            quantity: purchase.quantity,
            idempotency_key: purchase.idempotency_key.clone(),
            created_at: now,
            expires_at: sale.sale.payment_deadline(now),
        };
        let receipt = receipt_of(&reservation);
        let undo = Undo {
            sale: Arc::clone(sale),
            user: purchase.user,
            quantity: purchase.quantity,
            idempotency_key: purchase.idempotency_key.clone(),
        };
        let ticket = match self.store.reserve(reservation) {
            Ok(ticket) => ticket,
            Err(error) => {
                // Nothing was queued: give back at once, once the buyer's
                // entry is unlocked (the undo locks it again).
                drop(buyer);
                undo.run();
                return Err(error.into());
            }
        };
        let committing = Committing {
            ticket: Some(ticket),
            undo: Some(undo),
        };
        let outcome = async move {
            match committing.await {
                Ok(()) => Ok(receipt),
                Err(_) => Err(Refusal::Unavailable(
                    "the reservation could not be made durable; nothing was reserved",
                )),
            }
        }
        .boxed();
        Ok(match purchase.idempotency_key {
            Some(key) => {
                // Retries await this answer too, so it runs to the end even
                // if the request that started it is dropped.
                let shared = outcome.shared();
                tokio::spawn(shared.clone());
                buyer.answers.insert(key, shared.clone());
                shared.boxed()
            }
            None => outcome,
        })
    }
}

/// What a purchase took in memory, to give back if its write fails.
struct Undo {
    sale: Arc<LiveSale>,
    user: UserId,
    quantity: u64,
    idempotency_key: Option<String>,
}

impl Undo {
    fn run(self) {
        if let Some(key) = &self.idempotency_key {
            self.sale.forget_answer(&self.user, key);
        }
        self.sale.release(&self.user, self.quantity);
    }
}

/// A reservation waiting for its commit; if the commit fails, the units go
/// back. Dropped before the answer (the client hung up), it hands the wait
/// to a task of its own, so memory and store never disagree.
struct Committing {
    ticket: Option<CommitTicket>,
    undo: Option<Undo>,
}

impl Future for Committing {
    type Output = StoreResult<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(ticket) = self.ticket.as_mut() else {
            return Poll::Ready(Err(StoreError::NotCommitted));
        };
        let result = ready!(ticket.as_mut().poll(cx));
        self.ticket = None;
        let undo = self.undo.take();
        if result.is_err()
            && let Some(undo) = undo
        {
            undo.run();
        }
        Poll::Ready(result)
    }
}

impl Drop for Committing {
    fn drop(&mut self) {
        if let (Some(ticket), Some(undo)) = (self.ticket.take(), self.undo.take()) {
            tokio::spawn(async move {
                if ticket.await.is_err() {
                    undo.run();
                }
            });
        }
    }
}
