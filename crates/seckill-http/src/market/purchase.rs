//! Deciding a purchase, in memory and without I/O: the per-user limit, the
//! stock, the Idempotency-Key; then waiting for the store to make the
//! reservation durable before anyone is told it succeeded (I2).

use super::{LiveSale, Market};
use crate::error::{ApiError, ApiResult};
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use seckill_core::{OrderId, OrderStatus, SaleId, SalePhase, Timestamp, UserId};
use seckill_engine::{CommitTicket, Reservation, StoreError, StoreResult};
use serde::Serialize;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

/// A purchase request that passed the cheap checks and authentication.
pub struct Purchase {
    pub user: UserId,
    pub quantity: u64,
    pub idempotency_key: Option<String>,
}

/// The body of a 202: the order the buyer now holds.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Receipt {
    pub order_id: OrderId,
    pub sale_id: SaleId,
    pub status: OrderStatus,
    pub expires_at: Timestamp,
}

impl Receipt {
    pub(super) fn of(reservation: &Reservation) -> Self {
        Self {
            order_id: reservation.order_id.clone(),
            sale_id: reservation.sale_id.clone(),
            status: OrderStatus::PendingPayment,
            expires_at: reservation.expires_at,
        }
    }
}

/// The answer to an Idempotency-Key: every retry awaits the same one.
pub(super) type SharedOutcome = Shared<BoxFuture<'static, ApiResult<Receipt>>>;

impl Market {
    /// Reserves `purchase.quantity` units of `sale` for the buyer, durably:
    /// in memory then the store, or in cluster mode by Redis.
    pub async fn purchase(&self, sale: &Arc<LiveSale>, purchase: Purchase) -> ApiResult<Receipt> {
        match &self.cluster {
            Some(cluster) => cluster.purchase(sale, purchase).await,
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
    ) -> ApiResult<BoxFuture<'static, ApiResult<Receipt>>> {
        let mut buyer = sale.buyers.entry(purchase.user.clone()).or_default();
        if let Some(key) = &purchase.idempotency_key
            && let Some(answer) = buyer.answers.get(key)
        {
            return Ok(answer.clone().boxed());
        }
        let now = Timestamp::now();
        let quantity = purchase.quantity;
        let refusal = match sale.sale.phase(now) {
            SalePhase::Upcoming => Some(ApiError::not_started()),
            SalePhase::Ended => Some(ApiError::ended()),
            SalePhase::Open if buyer.held + quantity > sale.sale.per_user_limit => {
                Some(ApiError::limit_reached())
            }
            // Taken here, under the buyer's lock: the last check.
            SalePhase::Open if !sale.stock.try_take(quantity) => Some(ApiError::sold_out()),
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
        let receipt = Receipt::of(&reservation);
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
                Err(_) => Err(ApiError::unavailable(
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

#[cfg(test)]
mod tests {
    use super::*;
    use seckill_core::{ErrorCode, NewSale, SaleId};
    use seckill_engine::Snapshot;
    use seckill_sqlite::{DATABASE_FILE, SqliteStore};
    use std::time::Duration;

    /// A market whose only sale exists in memory but not in the real
    /// SQLite store: every reservation then fails its foreign key at commit.
    async fn market_whose_commits_fail(dir: &std::path::Path) -> (Market, Arc<LiveSale>) {
        let store = Arc::new(SqliteStore::open(dir).await.unwrap());
        let new_sale: NewSale =
            serde_json::from_str(r#"{"name":"x","stock":5,"price_cents":1,"per_user_limit":3}"#)
                .unwrap();
        let sale = new_sale
            .validate(SaleId::generate(), Timestamp::now())
            .unwrap();
        let id = sale.id.clone();
        let snapshot = Snapshot {
            sales: vec![sale],
            live_orders: Vec::new(),
        };
        let market = Market::restore(store, snapshot, None);
        let live = market.get(id.as_str()).unwrap();
        (market, live)
    }

    fn purchase(user: &str, idempotency_key: Option<&str>) -> Purchase {
        Purchase {
            user: UserId::from(user),
            quantity: 2,
            idempotency_key: idempotency_key.map(String::from),
        }
    }

    #[tokio::test]
    async fn a_failed_commit_gives_everything_back() {
        let dir = tempfile::tempdir().unwrap();
        let (market, sale) = market_whose_commits_fail(dir.path()).await;
        let error = market
            .purchase(&sale, purchase("u", Some("key")))
            .await
            .unwrap_err();
        assert_eq!(error.code, ErrorCode::Unavailable);
        assert_eq!(sale.stock.remaining(), 5);
        assert!(sale.buyers.is_empty(), "no holding, no remembered answer");
    }

    #[tokio::test]
    async fn a_request_dropped_while_committing_still_gives_back() {
        for idempotency_key in [None, Some("key")] {
            let dir = tempfile::tempdir().unwrap();
            let (market, sale) = market_whose_commits_fail(dir.path()).await;
            // Another connection holds the write lock, so the writer waits.
            let mut blocker = rusqlite::Connection::open(dir.path().join(DATABASE_FILE)).unwrap();
            let lock = blocker
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .unwrap();
            // Polled once (the units are taken, the write queued), then
            // dropped like the request of a client that hung up.
            let buying = market.purchase(&sale, purchase("u", idempotency_key));
            let abandoned = tokio::time::timeout(Duration::ZERO, buying).await;
            assert!(abandoned.is_err(), "answered early: {abandoned:?}");
            assert_eq!(sale.stock.remaining(), 3);
            lock.rollback().unwrap();
            for _ in 0..250 {
                if sale.stock.remaining() == 5 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert_eq!(sale.stock.remaining(), 5, "key {idempotency_key:?}");
            assert!(sale.buyers.is_empty(), "key {idempotency_key:?}");
        }
    }
}
