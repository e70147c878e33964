//! The embedded store: one SQLite file in WAL mode under the data dir.
//!
//! All writes go through one writer thread ([`writer`]) that owns the only
//! writing connection and commits them in batches; reads use a small pool of
//! read-only connections, which WAL lets run beside the writer.

mod rows;
mod writer;

use async_trait::async_trait;
use r2d2_sqlite::SqliteConnectionManager;
use rows::{ORDER_COLUMNS, SALE_COLUMNS};
use rusqlite::{Connection, OpenFlags, params};
use rusqlite_migration::{M, Migrations};
use seckill_core::{Order, OrderId, OrderStatus, Sale, SaleId, UserId};
use seckill_engine::{
    CancelOutcome, CommitTicket, LiveOrder, PayOutcome, ReleasedUnits, Reservation, Snapshot,
    Store, StoreError, StoreResult, UnitsByStatus,
};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{Mutex, mpsc, oneshot};
use writer::Command;

/// The database file's name inside the data dir.
pub const DATABASE_FILE: &str = "seckill.db";
const READERS: u32 = 4;
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

type ReaderPool = r2d2::Pool<SqliteConnectionManager>;

pub struct SqliteStore {
    readers: ReaderPool,
    writer: mpsc::Sender<Command>,
    /// Resolves when the writer thread has committed its last batch.
    writer_stopped: Mutex<Option<oneshot::Receiver<()>>>,
}

fn migrations() -> Migrations<'static> {
    Migrations::new(vec![M::up(include_str!(
        "../migrations/sqlite/0001_init.sql"
    ))])
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `dir` and applies migrations.
    pub async fn open(dir: &Path) -> StoreResult<Self> {
        let path = dir.join(DATABASE_FILE);
        tokio::task::spawn_blocking(move || Self::open_blocking(path))
            .await
            .map_err(unavailable)?
    }

    fn open_blocking(path: PathBuf) -> StoreResult<Self> {
        let mut connection = Connection::open(&path).map_err(sqlite)?;
        connection
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(sqlite)?;
        // FULL: every commit is fsynced, so an acknowledged reservation
        // survives a crash of the process and of the machine (I2).
        connection
            .pragma_update(None, "synchronous", "FULL")
            .map_err(sqlite)?;
        connection
            .pragma_update(None, "foreign_keys", "ON")
            .map_err(sqlite)?;
        connection.busy_timeout(BUSY_TIMEOUT).map_err(sqlite)?;
        migrations()
            .to_latest(&mut connection)
            .map_err(|error| StoreError::Database(format!("migration: {error}")))?;
        let manager = SqliteConnectionManager::file(&path)
            .with_flags(OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .with_init(|reader| reader.busy_timeout(BUSY_TIMEOUT));
        let readers = r2d2::Pool::builder()
            .max_size(READERS)
            .build(manager)
            .map_err(unavailable)?;
        let (writer, writer_stopped) = writer::spawn(connection).map_err(unavailable)?;
        Ok(Self {
            readers,
            writer,
            writer_stopped: Mutex::new(Some(writer_stopped)),
        })
    }

    /// Sends a command to the writer and waits for its committed result.
    async fn write<T>(&self, command: impl FnOnce(writer::Reply<T>) -> Command) -> StoreResult<T> {
        let (reply, result) = oneshot::channel();
        self.writer
            .send(command(reply))
            .await
            .map_err(|_| StoreError::NotCommitted)?;
        committed(result).await
    }

    /// Runs a query on a reader connection, off the async threads.
    async fn read<T: Send + 'static>(
        &self,
        query: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> StoreResult<T> {
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let connection = readers.get().map_err(unavailable)?;
            query(&connection).map_err(sqlite)
        })
        .await
        .map_err(unavailable)?
    }
}

/// A constraint or a value SQLite cannot hold is the request's fault, not
/// the store's.
fn sqlite(error: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode::{ConstraintViolation, TooBig, TypeMismatch};
    match error.sqlite_error_code() {
        Some(ConstraintViolation | TooBig | TypeMismatch) => StoreError::Refused(error.to_string()),
        _ => StoreError::Database(error.to_string()),
    }
}

/// No pool connection, thread or task to run on.
fn unavailable(error: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

/// The writer's answer; a dropped reply means the batch did not commit.
async fn committed<T>(result: oneshot::Receiver<StoreResult<T>>) -> StoreResult<T> {
    result.await.map_err(|_| StoreError::NotCommitted)?
}

#[async_trait]
impl Store for SqliteStore {
    async fn load(&self) -> StoreResult<Snapshot> {
        self.read(|db| {
            let sales = db
                .prepare(&format!("SELECT {SALE_COLUMNS} FROM sales ORDER BY id"))?
                .query_map([], rows::sale)?
                .collect::<Result<_, _>>()?;
            let live_orders = db
                .prepare(&format!(
                    "SELECT {ORDER_COLUMNS}, idempotency_key FROM orders
                     WHERE status IN ('queued', 'pending_payment', 'paid')
                        OR idempotency_key IS NOT NULL"
                ))?
                .query_map([], |row| {
                    let order = rows::order(row)?;
                    Ok(LiveOrder {
                        status: order.status,
                        reservation: Reservation {
                            order_id: order.id,
                            sale_id: order.sale_id,
                            user_id: order.user_id,
                            quantity: order.quantity,
                            idempotency_key: row.get("idempotency_key")?,
                            created_at: order.created_at,
                            expires_at: order.expires_at,
                        },
                    })
                })?
                .collect::<Result<_, _>>()?;
            Ok(Snapshot { sales, live_orders })
        })
        .await
    }

    async fn create_sale(&self, sale: &Sale) -> StoreResult<()> {
        let sale = sale.clone();
        self.write(|reply| Command::CreateSale(sale, reply)).await
    }

    fn reserve(&self, reservation: Reservation) -> StoreResult<CommitTicket> {
        let (reply, result) = oneshot::channel();
        self.writer
            .try_send(Command::Reserve(reservation, reply))
            .map_err(|error| match error {
                // Far behind already: refuse now rather than queue more.
                TrySendError::Full(_) => {
                    StoreError::Unavailable("the writer's queue is full".into())
                }
                TrySendError::Closed(_) => StoreError::NotCommitted,
            })?;
        Ok(Box::pin(committed(result)))
    }

    async fn pay(
        &self,
        order: &OrderId,
        owner: &UserId,
        payment_ref: &str,
    ) -> StoreResult<PayOutcome> {
        self.write(|reply| Command::Pay {
            order: order.clone(),
            owner: owner.clone(),
            payment_ref: payment_ref.to_string(),
            reply,
        })
        .await
    }

    async fn cancel(&self, order: &OrderId, owner: &UserId) -> StoreResult<CancelOutcome> {
        self.write(|reply| Command::Cancel {
            order: order.clone(),
            owner: owner.clone(),
            reply,
        })
        .await
    }

    async fn expire_due(&self) -> StoreResult<Vec<ReleasedUnits>> {
        self.write(Command::ExpireDue).await
    }

    async fn order(&self, id: &OrderId) -> StoreResult<Option<Order>> {
        let id = id.clone();
        self.read(move |db| {
            let mut query =
                db.prepare_cached(&format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = ?"))?;
            let mut found = query.query_map([id.as_str()], rows::order)?;
            found.next().transpose()
        })
        .await
    }

    async fn orders_of(&self, owner: &UserId, sale: Option<&SaleId>) -> StoreResult<Vec<Order>> {
        let (owner, sale) = (owner.clone(), sale.cloned());
        self.read(move |db| {
            db.prepare_cached(&format!(
                "SELECT {ORDER_COLUMNS} FROM orders
                     WHERE user_id = ?1 AND (?2 IS NULL OR sale_id = ?2)
                     ORDER BY created_at, id"
            ))?
            .query_map(
                params![owner.as_str(), sale.as_ref().map(SaleId::as_str)],
                rows::order,
            )?
            .collect::<Result<_, _>>()
        })
        .await
    }

    async fn units_by_status(&self, sale: &SaleId) -> StoreResult<UnitsByStatus> {
        let sale = sale.clone();
        let counted: Vec<(String, u64)> = self
            .read(move |db| {
                db.prepare_cached(
                    "SELECT status, SUM(quantity) FROM orders WHERE sale_id = ? GROUP BY status",
                )?
                .query_map([sale.as_str()], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect::<Result<_, _>>()
            })
            .await?;
        let mut units = UnitsByStatus::default();
        for (status, count) in counted {
            match OrderStatus::parse(&status) {
                Some(OrderStatus::Queued) => units.queued = count,
                Some(OrderStatus::PendingPayment) => units.pending_payment = count,
                Some(OrderStatus::Paid) => units.paid = count,
                Some(OrderStatus::Expired) => units.expired = count,
                Some(OrderStatus::Cancelled) => units.cancelled = count,
                None => return Err(StoreError::Corrupt(format!("order status {status:?}"))),
            }
        }
        Ok(units)
    }

    async fn close(&self) {
        let stopped = self.writer_stopped.lock().await.take();
        if let Some(stopped) = stopped {
            let _ = self.writer.send(Command::Shutdown).await;
            let _ = stopped.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_valid() {
        assert!(migrations().validate().is_ok());
    }
}
