//! Why the engine did not do what it was asked: the domain's answers, in
//! no protocol's terms. The HTTP layer maps each to a status and a code.

use crate::StoreError;
use seckill_core::FieldError;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub enum Refusal {
    SoldOut,
    /// The buyer already holds the most the sale allows per user.
    LimitReached,
    NotStarted,
    Ended,
    NoSuchOrder,
    /// The payment deadline passed first; the units are back on sale.
    OrderExpired,
    OrderCancelled,
    /// Still queued, or already paid with another payment reference.
    NotPayable,
    /// Only an unpaid order within its deadline can be cancelled.
    NotCancellable,
    /// A new sale's field is invalid.
    Invalid(FieldError),
    /// The stock authority restarted and this sale is being checked
    /// against its orders (cluster mode).
    UnderRepair,
    /// The stock authority cannot decide now; the text says whether
    /// anything may have been reserved.
    Unavailable(&'static str),
    /// The store failed or refused the request's data.
    Store(Arc<StoreError>),
}

pub type Decided<T> = Result<T, Refusal>;

impl From<StoreError> for Refusal {
    fn from(error: StoreError) -> Self {
        Self::Store(Arc::new(error))
    }
}

impl From<FieldError> for Refusal {
    fn from(error: FieldError) -> Self {
        Self::Invalid(error)
    }
}
