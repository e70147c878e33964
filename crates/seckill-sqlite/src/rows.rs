//! Mapping between SQLite rows and domain types. Times are stored as unix
//! milliseconds; counts fit INTEGER (see the sale bounds).

use rusqlite::Row;
use rusqlite::types::Type;
use seckill_core::{Order, OrderStatus, Sale, Timestamp};

pub const SALE_COLUMNS: &str = "id, name, stock, price_cents, starts_at, ends_at, \
    per_user_limit, payment_timeout_secs, require_purchase_token, created_at";

pub const ORDER_COLUMNS: &str =
    "id, sale_id, user_id, quantity, status, created_at, expires_at, paid_at, payment_ref";

fn timestamp(row: &Row, column: &str) -> rusqlite::Result<Timestamp> {
    row.get(column).map(Timestamp::from_millis)
}

fn optional_timestamp(row: &Row, column: &str) -> rusqlite::Result<Option<Timestamp>> {
    Ok(row
        .get::<_, Option<i64>>(column)?
        .map(Timestamp::from_millis))
}

pub fn sale(row: &Row) -> rusqlite::Result<Sale> {
    Ok(Sale {
        id: row.get::<_, String>("id")?.into(),
        name: row.get("name")?,
        stock: row.get("stock")?,
        price_cents: row.get("price_cents")?,
        starts_at: timestamp(row, "starts_at")?,
        ends_at: optional_timestamp(row, "ends_at")?,
        per_user_limit: row.get("per_user_limit")?,
        payment_timeout_secs: row.get("payment_timeout_secs")?,
        require_purchase_token: row.get("require_purchase_token")?,
        created_at: timestamp(row, "created_at")?,
    })
}

pub fn order(row: &Row) -> rusqlite::Result<Order> {
    let status: String = row.get("status")?;
    let status = OrderStatus::parse(&status).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            4,
            Type::Text,
            format!("unknown order status {status:?}").into(),
        )
    })?;
    Ok(Order {
        id: row.get::<_, String>("id")?.into(),
        sale_id: row.get::<_, String>("sale_id")?.into(),
        user_id: row.get::<_, String>("user_id")?.into(),
        quantity: row.get("quantity")?,
        status,
        queue_position: None,
        created_at: timestamp(row, "created_at")?,
        expires_at: timestamp(row, "expires_at")?,
        paid_at: optional_timestamp(row, "paid_at")?,
        payment_ref: row.get("payment_ref")?,
    })
}
