//! Orders as the API shows them and their statuses; what moves an order
//! from one status to another is [`crate::lifecycle`].

use crate::FieldError;
use crate::ids::{OrderId, SaleId, UserId};
use crate::text::refuse_control_characters;
use crate::time::Timestamp;
use serde::Serialize;
use utoipa::ToSchema;

/// Longest accepted `payment_ref`, in bytes.
pub const MAX_PAYMENT_REF_LEN: usize = 200;

/// A payment reference as a store keeps it: not blank, at most
/// [`MAX_PAYMENT_REF_LEN`] bytes, no control characters.
pub fn check_payment_ref(payment_ref: &str) -> Result<(), FieldError> {
    if payment_ref.trim().is_empty() || payment_ref.len() > MAX_PAYMENT_REF_LEN {
        return Err(FieldError::new(
            "payment_ref",
            format!("must be 1 to {MAX_PAYMENT_REF_LEN} bytes"),
        ));
    }
    refuse_control_characters("payment_ref", payment_ref)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Queued,
    PendingPayment,
    Paid,
    Expired,
    Cancelled,
}

impl OrderStatus {
    pub const ALL: [Self; 5] = [
        Self::Queued,
        Self::PendingPayment,
        Self::Paid,
        Self::Expired,
        Self::Cancelled,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::PendingPayment => "pending_payment",
            Self::Paid => "paid",
            Self::Expired => "expired",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }

    /// Whether an order in this state keeps its units off sale and counts
    /// against its owner's per-user limit.
    pub const fn holds_stock(self) -> bool {
        matches!(self, Self::Queued | Self::PendingPayment | Self::Paid)
    }
}

/// An order as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Order {
    #[serde(rename = "order_id")]
    pub id: OrderId,
    pub sale_id: SaleId,
    pub user_id: UserId,
    pub quantity: u64,
    pub status: OrderStatus,
    /// Present only while `queued` (0 = next).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_position: Option<u64>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub paid_at: Option<Timestamp>,
    #[serde(skip)]
    pub payment_ref: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_round_trip() {
        for status in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(OrderStatus::parse("shipped"), None);
    }

    #[test]
    fn only_live_orders_hold_stock() {
        assert!(OrderStatus::PendingPayment.holds_stock());
        assert!(OrderStatus::Paid.holds_stock());
        assert!(!OrderStatus::Expired.holds_stock());
        assert!(!OrderStatus::Cancelled.holds_stock());
    }
}
