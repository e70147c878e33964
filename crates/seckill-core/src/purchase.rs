//! A purchase as asked, once it passed the cheap checks and authentication,
//! and as answered when reserved (the body of a 202).

use crate::ids::{OrderId, SaleId, UserId};
use crate::order::OrderStatus;
use crate::time::Timestamp;
use serde::Serialize;
use utoipa::ToSchema;

pub struct Purchase {
    pub user: UserId,
    pub quantity: u64,
    pub idempotency_key: Option<String>,
}

/// The order the buyer now holds.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Receipt {
    pub order_id: OrderId,
    pub sale_id: SaleId,
    /// `pending_payment` when the store holds the order at once; `queued`
    /// in cluster mode, until the order reaches the database.
    pub status: OrderStatus,
    pub expires_at: Timestamp,
}
