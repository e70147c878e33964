//! The engine's [`Store`] in cluster mode: orders in the database, stock in
//! Redis. Purchases do not come here: Redis decides them and its stream
//! entry is their durable record (the engine's cluster seller calls the
//! authority directly). What comes here is everything after: reading,
//! paying, cancelling and expiring orders — and the units of a cancelled
//! or expired order going back to Redis.
//!
//! Every deadline here is judged by Redis' clock, the one `reserve.lua`
//! set it by ([`crate::clock`]), whatever this node's own clock says.
//!
//! Releasing is the second step of a cancel or an expiry, after the
//! database's compare-and-set. If Redis cannot be reached then, or the
//! process dies in between, the nodes' pass over recent releases
//! ([`crate::reconcile::RecentReleases`]) releases it within seconds (the
//! release is idempotent by order id, so doing it twice is harmless).

use crate::authority::{AuthorityError, RedisAuthority, ReleaseOutcome};
use crate::orders::{ExpiredOrder, OrdersError, SqlOrders};
use async_trait::async_trait;
use seckill_core::{Order, OrderId, OrderStatus, Sale, SaleId, Timestamp, UserId};
use seckill_engine::{
    CancelOutcome, CommitTicket, PayOutcome, ReleasedUnits, Reservation, Snapshot, Store,
    StoreError, StoreResult, UnitsByStatus,
};

/// Most overdue orders one sweep expires.
const SWEEP_BATCH: usize = 1000;

pub struct ClusterStore {
    orders: SqlOrders,
    authority: RedisAuthority,
}

impl ClusterStore {
    pub fn new(orders: SqlOrders, authority: RedisAuthority) -> Self {
        Self { orders, authority }
    }

    /// Redis' time: the clock its deadlines were set by (`crate::clock`),
    /// never this node's own.
    fn now(&self) -> Timestamp {
        self.authority.clock().now()
    }

    /// Gives an order's units back to Redis; if it cannot be reached, the
    /// nodes' pass over recent releases does it later.
    async fn give_back(&self, order: ExpiredOrder) {
        let ExpiredOrder { order_id, released } = &order;
        let result = self
            .authority
            .release(
                &released.sale_id,
                order_id,
                &released.user_id,
                released.quantity,
            )
            .await;
        match result {
            Ok(ReleaseOutcome::Released | ReleaseOutcome::AlreadyReleased) => {}
            Ok(outcome) => {
                tracing::warn!(order = %order_id, ?outcome, "units not returned to Redis yet: it lost or fenced the sale; its repair will");
            }
            Err(error) => {
                tracing::warn!(order = %order_id, %error, "units not returned to Redis yet; the pass over recent releases will");
            }
        }
    }

    /// An order that has no row yet: its reservation still in a stream.
    async fn queued_order(&self, id: &OrderId) -> StoreResult<Option<Order>> {
        for sale in self.orders.sales().await? {
            if let Some(queued) = self.authority.queued(&sale.id, id).await? {
                let reservation = queued.reservation;
                return Ok(Some(Order {
                    id: reservation.order_id,
                    sale_id: reservation.sale_id,
                    user_id: reservation.user_id,
                    quantity: reservation.quantity,
                    status: OrderStatus::Queued,
                    queue_position: Some(queued.position),
                    created_at: reservation.created_at,
                    expires_at: reservation.expires_at,
                    paid_at: None,
                    payment_ref: None,
                }));
            }
        }
        Ok(None)
    }
}

#[async_trait]
impl Store for ClusterStore {
    /// The sales only: who holds what, and the Idempotency-Keys' answers,
    /// live in Redis, so a node keeps nothing of them in memory.
    async fn load(&self) -> StoreResult<Snapshot> {
        Ok(Snapshot {
            sales: self.orders.sales().await?,
            live_orders: Vec::new(),
        })
    }

    /// Redis first: a sale in the database is one every node may sell, so
    /// it must exist in Redis before (creating it again changes nothing).
    async fn create_sale(&self, sale: &Sale) -> StoreResult<()> {
        self.authority.create_sale(sale).await?;
        Ok(self.orders.create_sale(sale).await?)
    }

    /// Never called in cluster mode: Redis takes the reservations.
    fn reserve(&self, _: Reservation) -> StoreResult<CommitTicket> {
        Err(StoreError::Unavailable(
            "in cluster mode reservations are made in Redis".into(),
        ))
    }

    async fn pay(
        &self,
        order: &OrderId,
        owner: &UserId,
        payment_ref: &str,
    ) -> StoreResult<PayOutcome> {
        Ok(self
            .orders
            .pay(order, owner, payment_ref, self.now())
            .await?)
    }

    async fn cancel(&self, order: &OrderId, owner: &UserId) -> StoreResult<CancelOutcome> {
        let outcome = self.orders.cancel(order, owner, self.now()).await?;
        if let CancelOutcome::Cancelled(order, released) = &outcome {
            self.give_back(ExpiredOrder {
                order_id: order.id.clone(),
                released: released.clone(),
            })
            .await;
        }
        Ok(outcome)
    }

    /// Expires what is due (any node may sweep at once: rows are claimed
    /// `SKIP LOCKED`). Returns the orders expired now, whether or not Redis
    /// took their units yet.
    async fn expire_due(&self) -> StoreResult<Vec<ReleasedUnits>> {
        let due = self.orders.claim_expired(self.now(), SWEEP_BATCH).await?;
        let mut released = Vec::with_capacity(due.len());
        for order in due {
            released.push(order.released.clone());
            self.give_back(order).await;
        }
        Ok(released)
    }

    /// The order's row, or while it has none its place in the queue.
    async fn order(&self, id: &OrderId) -> StoreResult<Option<Order>> {
        if let Some(order) = self.orders.order(id).await? {
            return Ok(Some(order));
        }
        match self.queued_order(id).await? {
            Some(queued) => Ok(Some(queued)),
            // A consumer may have written the row and acknowledged the
            // entry between the two reads: the row exists by now.
            None => Ok(self.orders.order(id).await?),
        }
    }

    async fn orders_of(&self, owner: &UserId, sale: Option<&SaleId>) -> StoreResult<Vec<Order>> {
        Ok(self.orders.orders_of(owner, sale).await?)
    }

    /// The database's units by status; `queued` is what Redis counts sold
    /// beyond the rows that hold stock — the reservations still in the
    /// stream, as long as Redis and the database agree (which `seckill
    /// reconcile` checks).
    async fn units_by_status(&self, sale: &SaleId) -> StoreResult<UnitsByStatus> {
        let mut units = self.orders.units_by_status(sale).await?;
        if let Some(level) = self.authority.state(sale).await? {
            units.queued = level
                .sold
                .saturating_sub(units.pending_payment + units.paid);
        }
        Ok(units)
    }

    /// Nothing is buffered here: reservations are in Redis, rows committed.
    async fn close(&self) {}
}

impl From<OrdersError> for StoreError {
    fn from(error: OrdersError) -> Self {
        match error {
            OrdersError::Corrupt(message) => Self::Corrupt(message),
            refused if refused.is_refusal() => Self::Refused(refused.to_string()),
            other => Self::Unavailable(format!("database: {other}")),
        }
    }
}

impl From<AuthorityError> for StoreError {
    fn from(error: AuthorityError) -> Self {
        Self::Unavailable(error.to_string())
    }
}
