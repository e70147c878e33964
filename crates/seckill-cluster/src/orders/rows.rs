//! Mapping between rows and domain types. Times are BIGINT unix
//! milliseconds; counts are BIGINT (they fit: see the sale bounds).

use super::{Dialect, ExpiredOrder, OrdersError, ReleasedOrder};
use seckill_core::{Order, OrderStatus, Sale, Timestamp};
use seckill_engine::{ReleasedUnits, Reservation};
use sqlx::Row;
use sqlx::any::AnyRow;

/// The columns of a sale, `require_purchase_token` as a BIGINT 0 or 1
/// (sqlx's `Any` driver cannot read MySQL's BOOLEAN, a TINYINT).
pub fn sale_columns(dialect: Dialect) -> String {
    format!(
        "id, name, stock, price_cents, starts_at, ends_at, per_user_limit, payment_timeout_secs, \
         CAST(CASE WHEN require_purchase_token THEN 1 ELSE 0 END AS {}) AS require_purchase_token, \
         created_at",
        dialect.bigint()
    )
}

pub const ORDER_COLUMNS: &str =
    "id, sale_id, user_id, quantity, status, created_at, expires_at, paid_at, payment_ref";
pub const RESERVATION_COLUMNS: &str =
    "id, sale_id, user_id, quantity, idempotency_key, created_at, expires_at";

/// A count for a BIGINT column.
pub fn bigint(n: u64, what: &str) -> Result<i64, OrdersError> {
    i64::try_from(n).map_err(|_| OrdersError::OutOfRange(format!("{what} {n}")))
}

fn count(row: &AnyRow, column: &str) -> Result<u64, OrdersError> {
    let n: i64 = row.try_get(column)?;
    u64::try_from(n).map_err(|_| OrdersError::Corrupt(format!("negative {column} {n}")))
}

fn text(row: &AnyRow, column: &str) -> Result<String, OrdersError> {
    optional_text(row, column)?.ok_or_else(|| OrdersError::Corrupt(format!("{column} is NULL")))
}

/// A text column or NULL. MySQL's byte-exact columns (VARBINARY: user id,
/// Idempotency-Key, payment reference) arrive as bytes, UTF-8 as written.
fn optional_text(row: &AnyRow, column: &str) -> Result<Option<String>, OrdersError> {
    match row.try_get::<Option<String>, _>(column) {
        Err(sqlx::Error::ColumnDecode { .. }) => row
            .try_get::<Option<Vec<u8>>, _>(column)?
            .map(|bytes| {
                String::from_utf8(bytes)
                    .map_err(|_| OrdersError::Corrupt(format!("{column} is not UTF-8")))
            })
            .transpose(),
        text => Ok(text?),
    }
}

pub fn status(row: &AnyRow) -> Result<OrderStatus, OrdersError> {
    let status = text(row, "status")?;
    OrderStatus::parse(&status)
        .ok_or_else(|| OrdersError::Corrupt(format!("unknown order status {status:?}")))
}

/// A row of [`sale_columns`].
pub fn sale(row: &AnyRow) -> Result<Sale, OrdersError> {
    Ok(Sale {
        id: text(row, "id")?.into(),
        name: text(row, "name")?,
        stock: count(row, "stock")?,
        price_cents: count(row, "price_cents")?,
        starts_at: Timestamp::from_millis(row.try_get("starts_at")?),
        ends_at: row
            .try_get::<Option<i64>, _>("ends_at")?
            .map(Timestamp::from_millis),
        per_user_limit: count(row, "per_user_limit")?,
        payment_timeout_secs: count(row, "payment_timeout_secs")?,
        require_purchase_token: row.try_get::<i64, _>("require_purchase_token")? != 0,
        created_at: Timestamp::from_millis(row.try_get("created_at")?),
    })
}

/// A row of `ORDER_COLUMNS`.
pub fn order(row: &AnyRow) -> Result<Order, OrdersError> {
    Ok(Order {
        id: text(row, "id")?.into(),
        sale_id: text(row, "sale_id")?.into(),
        user_id: text(row, "user_id")?.into(),
        quantity: count(row, "quantity")?,
        status: status(row)?,
        queue_position: None,
        created_at: Timestamp::from_millis(row.try_get("created_at")?),
        expires_at: Timestamp::from_millis(row.try_get("expires_at")?),
        paid_at: row
            .try_get::<Option<i64>, _>("paid_at")?
            .map(Timestamp::from_millis),
        payment_ref: optional_text(row, "payment_ref")?,
    })
}

/// A row of `RESERVATION_COLUMNS` and `status`.
pub fn reservation_and_status(row: &AnyRow) -> Result<(Reservation, OrderStatus), OrdersError> {
    Ok((
        Reservation {
            order_id: text(row, "id")?.into(),
            sale_id: text(row, "sale_id")?.into(),
            user_id: text(row, "user_id")?.into(),
            quantity: count(row, "quantity")?,
            idempotency_key: optional_text(row, "idempotency_key")?,
            created_at: Timestamp::from_millis(row.try_get("created_at")?),
            expires_at: Timestamp::from_millis(row.try_get("expires_at")?),
        },
        status(row)?,
    ))
}

/// A row of `id, sale_id, user_id, quantity`.
pub fn expired_order(row: &AnyRow) -> Result<ExpiredOrder, OrdersError> {
    Ok(ExpiredOrder {
        order_id: text(row, "id")?.into(),
        released: ReleasedUnits {
            sale_id: text(row, "sale_id")?.into(),
            user_id: text(row, "user_id")?.into(),
            quantity: count(row, "quantity")?,
        },
    })
}

/// A row of `id, sale_id, user_id, quantity, released_at`.
pub fn released_order(row: &AnyRow) -> Result<ReleasedOrder, OrdersError> {
    Ok(ReleasedOrder {
        order: expired_order(row)?,
        released_at: Timestamp::from_millis(row.try_get("released_at")?),
    })
}

/// A row of `status, units`.
pub fn units(row: &AnyRow) -> Result<(OrderStatus, u64), OrdersError> {
    Ok((status(row)?, count(row, "units")?))
}
