//! Mapping between SQLite rows and domain types. Times are stored as unix
//! milliseconds, unsigned numbers as INTEGER (they fit: see the sale bounds).

use crate::{StoreError, StoreResult};
use seckill_core::{Order, OrderStatus, Sale, Timestamp};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

pub const SALE_COLUMNS: &str = "id, name, stock, price_cents, starts_at, ends_at, \
    per_user_limit, payment_timeout_secs, require_purchase_token, created_at";

pub const ORDER_COLUMNS: &str =
    "id, sale_id, user_id, quantity, status, created_at, expires_at, paid_at, payment_ref";

pub fn unsigned(value: i64) -> StoreResult<u64> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("negative count {value}")))
}

/// A value the schema keeps non-negative, as stored.
pub fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn timestamp(row: &SqliteRow, column: &str) -> StoreResult<Timestamp> {
    Ok(Timestamp::from_millis(row.try_get(column)?))
}

fn optional_timestamp(row: &SqliteRow, column: &str) -> StoreResult<Option<Timestamp>> {
    Ok(row
        .try_get::<Option<i64>, _>(column)?
        .map(Timestamp::from_millis))
}

pub fn sale(row: &SqliteRow) -> StoreResult<Sale> {
    Ok(Sale {
        id: row.try_get::<String, _>("id")?.into(),
        name: row.try_get("name")?,
        stock: unsigned(row.try_get("stock")?)?,
        price_cents: unsigned(row.try_get("price_cents")?)?,
        starts_at: timestamp(row, "starts_at")?,
        ends_at: optional_timestamp(row, "ends_at")?,
        per_user_limit: unsigned(row.try_get("per_user_limit")?)?,
        payment_timeout_secs: unsigned(row.try_get("payment_timeout_secs")?)?,
        require_purchase_token: row.try_get("require_purchase_token")?,
        created_at: timestamp(row, "created_at")?,
    })
}

pub fn order(row: &SqliteRow) -> StoreResult<Order> {
    let status: String = row.try_get("status")?;
    Ok(Order {
        id: row.try_get::<String, _>("id")?.into(),
        sale_id: row.try_get::<String, _>("sale_id")?.into(),
        user_id: row.try_get::<String, _>("user_id")?.into(),
        quantity: unsigned(row.try_get("quantity")?)?,
        status: OrderStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("order status {status:?}")))?,
        queue_position: None,
        created_at: timestamp(row, "created_at")?,
        expires_at: timestamp(row, "expires_at")?,
        paid_at: optional_timestamp(row, "paid_at")?,
        payment_ref: row.try_get("payment_ref")?,
    })
}
