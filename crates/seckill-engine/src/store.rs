//! What the engine needs from durable storage ([`Store`]), in terms of no
//! backend: the embedded SQLite store and the cluster's SQL store both
//! implement it.

use async_trait::async_trait;
use seckill_core::lifecycle::Answer;
use seckill_core::{Order, OrderId, OrderStatus, Sale, SaleId, Timestamp, UserId};
use std::future::Future;
use std::pin::Pin;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend failed; its own error, as text.
    #[error("database: {0}")]
    Database(String),
    /// No connection or thread to run the query on.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// Not attempted: the store kept failing and its circuit breaker is
    /// open (see the breaker's log line and metric; not logged per call).
    #[error("the store keeps failing; its circuit breaker is open")]
    CircuitOpen,
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// The store refused this request's data (a value it cannot hold, a
    /// constraint): the request is to blame, so it is no outage of the
    /// store and never opens its breaker.
    #[error("the store refused the request's data: {0}")]
    Refused(String),
    /// The writer could not commit this write (the cause is in its log) or
    /// has shut down. Nothing of the write is durable.
    #[error("the write was not committed")]
    NotCommitted,
}

impl StoreError {
    /// Whether this says the store is failing, as opposed to refusing what
    /// one request asked of it.
    pub fn is_outage(&self) -> bool {
        !matches!(self, Self::Refused(_))
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A reservation to make durable: stock already taken in memory. Serialized
/// as `seckill reconcile --json` lists the orders it found adrift.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Reservation {
    pub order_id: OrderId,
    pub sale_id: SaleId,
    pub user_id: UserId,
    pub quantity: u64,
    pub idempotency_key: Option<String>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// An order that holds stock or answers an Idempotency-Key: what the engine
/// needs at start to rebuild stock, per-user holdings and idempotency.
#[derive(Debug, Clone)]
pub struct LiveOrder {
    pub reservation: Reservation,
    pub status: OrderStatus,
}

/// Everything the engine rebuilds its memory from at start.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub sales: Vec<Sale>,
    pub live_orders: Vec<LiveOrder>,
}

/// Units a transition took out of an order (expiry, cancel): they go back on
/// sale and off their owner's holding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleasedUnits {
    pub sale_id: SaleId,
    pub user_id: UserId,
    pub quantity: u64,
}

impl ReleasedUnits {
    /// The units `order` holds.
    pub fn of(order: &Order) -> Self {
        Self {
            sale_id: order.sale_id.clone(),
            user_id: order.user_id.clone(),
            quantity: order.quantity,
        }
    }
}

/// The engine's answers to a payment and a cancellation are
/// [`seckill_core::lifecycle::decide`]'s, with the order as stored after
/// the transition it decided (if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayOutcome {
    /// Paid now.
    Paid(Order),
    /// Paid earlier with the same payment reference: the same answer, and
    /// nothing changed (so nothing is counted twice).
    AlreadyPaid(Order),
    NotFound,
    /// The deadline passed first (the order may still await the sweeper).
    Expired,
    Cancelled,
    /// Still queued, or already paid with another payment reference.
    NotPayable,
}

impl PayOutcome {
    pub fn decided(answer: Answer, order: Order) -> Self {
        match answer {
            Answer::Paid => Self::Paid(order),
            Answer::AlreadyPaid => Self::AlreadyPaid(order),
            Answer::NotFound => Self::NotFound,
            Answer::Expired => Self::Expired,
            Answer::Cancelled => Self::Cancelled,
            // `decide` answers a payment with none of the last three (its
            // tests show); were it to, refusing is the safe reading.
            Answer::NotPayable | Answer::NotCancellable | Answer::Released | Answer::NotDue => {
                Self::NotPayable
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelOutcome {
    Cancelled(Order, ReleasedUnits),
    NotFound,
    NotCancellable,
}

impl CancelOutcome {
    pub fn decided(answer: Answer, order: Order) -> Self {
        match answer {
            Answer::Released => {
                let released = ReleasedUnits::of(&order);
                Self::Cancelled(order, released)
            }
            Answer::NotFound => Self::NotFound,
            // `decide` answers a cancellation with none of the others but
            // `NotCancellable` (its tests show); refusing is the safe reading.
            Answer::NotCancellable
            | Answer::Paid
            | Answer::AlreadyPaid
            | Answer::Expired
            | Answer::Cancelled
            | Answer::NotPayable
            | Answer::NotDue => Self::NotCancellable,
        }
    }
}

/// Units per order status for one sale (the report's numbers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnitsByStatus {
    pub queued: u64,
    pub pending_payment: u64,
    pub paid: u64,
    pub expired: u64,
    pub cancelled: u64,
}

/// A queued reservation on its way to durable storage: resolves once it
/// has committed, or failed. It owns all it needs, so any task may wait on it.
pub type CommitTicket = Pin<Box<dyn Future<Output = StoreResult<()>> + Send>>;

/// What the engine needs from durable storage. Every state change of an
/// order is decided by [`seckill_core::lifecycle::decide`] and written as
/// one compare-and-set on its status (and deadline), so that pay, cancel
/// and expiry can never both win.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    async fn load(&self) -> StoreResult<Snapshot>;
    async fn create_sale(&self, sale: &Sale) -> StoreResult<()>;
    /// Queues a reservation without waiting. Once the ticket resolves `Ok`,
    /// the reservation is durable and the caller may acknowledge it.
    fn reserve(&self, reservation: Reservation) -> StoreResult<CommitTicket>;
    async fn pay(
        &self,
        order: &OrderId,
        owner: &UserId,
        payment_ref: &str,
    ) -> StoreResult<PayOutcome>;
    async fn cancel(&self, order: &OrderId, owner: &UserId) -> StoreResult<CancelOutcome>;
    /// Expires every unpaid order past its deadline; returns what they held.
    async fn expire_due(&self) -> StoreResult<Vec<ReleasedUnits>>;
    async fn order(&self, id: &OrderId) -> StoreResult<Option<Order>>;
    async fn orders_of(&self, owner: &UserId, sale: Option<&SaleId>) -> StoreResult<Vec<Order>>;
    async fn units_by_status(&self, sale: &SaleId) -> StoreResult<UnitsByStatus>;
    /// Finishes every queued write, then stops the writer.
    async fn close(&self);
}
