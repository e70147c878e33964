//! A sale: a fixed stock offered between two instants, with a per-user limit
//! and a payment deadline for each reservation.

use crate::error::FieldError;
use crate::ids::SaleId;
use crate::text::refuse_control_characters;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Upper bounds that keep every number inside what the stores hold (signed
/// 64-bit integers) and inside what a sale can sensibly mean.
pub const MAX_STOCK: u64 = 1_000_000_000;
pub const MAX_PAYMENT_TIMEOUT_SECS: u64 = 366 * 24 * 3600;
pub const MAX_PRICE_CENTS: u64 = i64::MAX as u64;
pub const MAX_NAME_CHARS: usize = 200;

/// The body of `POST /api/v1/sales`, as the client sent it. Unknown fields
/// are refused so a typo never silently becomes a default.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSale {
    #[schema(
        min_length = 1,
        max_length = 200,
        example = "G1234 Beijing-Shanghai 2nd class"
    )]
    pub name: String,
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    pub stock: u64,
    pub price_cents: u64,
    #[serde(default)]
    pub starts_at: Option<Timestamp>,
    #[serde(default)]
    pub ends_at: Option<Timestamp>,
    #[serde(default = "default_per_user_limit")]
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    pub per_user_limit: u64,
    #[serde(default = "default_payment_timeout_secs")]
    #[schema(minimum = 1, maximum = 31_622_400)]
    pub payment_timeout_secs: u64,
    #[serde(default)]
    pub require_purchase_token: bool,
}

fn default_per_user_limit() -> u64 {
    1
}

fn default_payment_timeout_secs() -> u64 {
    600
}

/// A validated sale. Immutable once created: only its stock moves, and that
/// lives elsewhere ([`crate::Stock`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Sale {
    pub id: SaleId,
    pub name: String,
    pub stock: u64,
    pub price_cents: u64,
    pub starts_at: Timestamp,
    pub ends_at: Option<Timestamp>,
    pub per_user_limit: u64,
    pub payment_timeout_secs: u64,
    pub require_purchase_token: bool,
    pub created_at: Timestamp,
}

/// Where a sale stands in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SalePhase {
    Upcoming,
    Open,
    Ended,
}

/// The `state` of `GET /api/v1/sales/{id}/stock`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StockState {
    Upcoming,
    Open,
    SoldOut,
    Ended,
}

impl StockState {
    /// The state of a sale in `phase` with `remaining` units.
    pub fn of(phase: SalePhase, remaining: u64) -> Self {
        match phase {
            SalePhase::Upcoming => Self::Upcoming,
            SalePhase::Ended => Self::Ended,
            SalePhase::Open if remaining == 0 => Self::SoldOut,
            SalePhase::Open => Self::Open,
        }
    }
}

impl NewSale {
    /// Checks every field and turns the request into a sale created `now`.
    pub fn validate(self, id: SaleId, now: Timestamp) -> Result<Sale, FieldError> {
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
            return Err(FieldError::new(
                "name",
                format!("must be 1 to {MAX_NAME_CHARS} characters"),
            ));
        }
        refuse_control_characters("name", name)?;
        in_range("stock", self.stock, 1, MAX_STOCK)?;
        in_range("price_cents", self.price_cents, 0, MAX_PRICE_CENTS)?;
        in_range("per_user_limit", self.per_user_limit, 1, MAX_STOCK)?;
        in_range(
            "payment_timeout_secs",
            self.payment_timeout_secs,
            1,
            MAX_PAYMENT_TIMEOUT_SECS,
        )?;
        let starts_at = self.starts_at.unwrap_or(now);
        if let Some(ends_at) = self.ends_at
            && ends_at <= starts_at
        {
            return Err(FieldError::new("ends_at", "must be after starts_at"));
        }
        Ok(Sale {
            id,
            name: name.to_string(),
            stock: self.stock,
            price_cents: self.price_cents,
            starts_at,
            ends_at: self.ends_at,
            per_user_limit: self.per_user_limit,
            payment_timeout_secs: self.payment_timeout_secs,
            require_purchase_token: self.require_purchase_token,
            created_at: now,
        })
    }
}

fn in_range(field: &'static str, value: u64, min: u64, max: u64) -> Result<(), FieldError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            format!("must be between {min} and {max}"),
        ))
    }
}

impl Sale {
    pub fn phase(&self, now: Timestamp) -> SalePhase {
        if now < self.starts_at {
            SalePhase::Upcoming
        } else if self.ends_at.is_some_and(|end| now >= end) {
            SalePhase::Ended
        } else {
            SalePhase::Open
        }
    }

    /// Checks a purchase's `quantity` against the per-user limit.
    pub fn check_quantity(&self, quantity: u64) -> Result<u64, FieldError> {
        in_range("quantity", quantity, 1, self.per_user_limit)?;
        Ok(quantity)
    }

    /// When a reservation made at `reserved_at` stops being payable.
    pub fn payment_deadline(&self, reserved_at: Timestamp) -> Timestamp {
        reserved_at.plus_secs(self.payment_timeout_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_sale(json: &str) -> NewSale {
        serde_json::from_str(json).unwrap()
    }

    const NOW: Timestamp = Timestamp::from_millis(1_800_000_000_000);

    #[test]
    fn omitted_fields_take_their_defaults() {
        let sale = new_sale(r#"{"name":"x","stock":5,"price_cents":100}"#)
            .validate(SaleId::from("s"), NOW)
            .unwrap();
        assert_eq!(sale.starts_at, NOW);
        assert_eq!(sale.ends_at, None);
        assert_eq!(sale.per_user_limit, 1);
        assert_eq!(sale.payment_timeout_secs, 600);
        assert!(!sale.require_purchase_token);
    }

    #[test]
    fn each_bound_names_its_field() {
        for (json, field) in [
            (r#"{"name":"","stock":5,"price_cents":1}"#, "name"),
            (r#"{"name":"x","stock":0,"price_cents":1}"#, "stock"),
            (
                r#"{"name":"x","stock":1000000001,"price_cents":1}"#,
                "stock",
            ),
            (
                r#"{"name":"x","stock":1,"price_cents":1,"per_user_limit":0}"#,
                "per_user_limit",
            ),
            (
                r#"{"name":"x","stock":1,"price_cents":1,"payment_timeout_secs":0}"#,
                "payment_timeout_secs",
            ),
            (
                r#"{"name":"x","stock":1,"price_cents":1,"starts_at":"2027-01-01T00:00:00Z","ends_at":"2027-01-01T00:00:00Z"}"#,
                "ends_at",
            ),
        ] {
            let err = new_sale(json).validate(SaleId::from("s"), NOW).unwrap_err();
            assert_eq!(err.field, field, "{json}");
        }
    }

    #[test]
    fn phase_and_state_follow_the_clock_and_the_stock() {
        let mut sale = new_sale(r#"{"name":"x","stock":5,"price_cents":1}"#)
            .validate(SaleId::from("s"), NOW)
            .unwrap();
        sale.ends_at = Some(NOW.plus_secs(10));
        assert_eq!(sale.phase(Timestamp::from_millis(0)), SalePhase::Upcoming);
        let state = |now, remaining| StockState::of(sale.phase(now), remaining);
        assert_eq!(state(NOW, 5), StockState::Open);
        assert_eq!(state(NOW, 0), StockState::SoldOut);
        assert_eq!(state(NOW.plus_secs(10), 0), StockState::Ended);
    }

    /// The schema's bounds are literals (the derive takes no constants):
    /// they must say what `validate` checks.
    #[test]
    fn the_documented_bounds_are_the_checked_ones() {
        use utoipa::PartialSchema;
        let schema = serde_json::to_value(NewSale::schema()).unwrap();
        let field = |name: &str, bound: &str| schema["properties"][name][bound].as_u64();
        assert_eq!(field("name", "maxLength"), Some(MAX_NAME_CHARS as u64));
        assert_eq!(field("stock", "maximum"), Some(MAX_STOCK));
        assert_eq!(field("per_user_limit", "maximum"), Some(MAX_STOCK));
        assert_eq!(
            field("payment_timeout_secs", "maximum"),
            Some(MAX_PAYMENT_TIMEOUT_SECS)
        );
    }

    #[test]
    fn quantity_is_bounded_by_the_per_user_limit() {
        let sale = new_sale(r#"{"name":"x","stock":5,"price_cents":1,"per_user_limit":2}"#)
            .validate(SaleId::from("s"), NOW)
            .unwrap();
        assert!(sale.check_quantity(0).is_err());
        assert_eq!(sale.check_quantity(2), Ok(2));
        assert!(sale.check_quantity(3).is_err());
    }
}
