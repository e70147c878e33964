//! What a reserved purchase answers (the body of a 202): the order the
//! buyer now holds.

use crate::ids::{OrderId, SaleId};
use crate::order::OrderStatus;
use crate::time::Timestamp;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Receipt {
    pub order_id: OrderId,
    pub sale_id: SaleId,
    /// `pending_payment` when the store holds the order at once; `queued`
    /// in cluster mode, until the order reaches the database.
    pub status: OrderStatus,
    pub expires_at: Timestamp,
}
