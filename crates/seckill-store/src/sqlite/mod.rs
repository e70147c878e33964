//! The embedded store: one SQLite file in WAL mode under the data dir.
//!
//! All writes go through one writer task ([`writer`]) that owns the only
//! writing connection and commits them in batches; reads use a small pool of
//! read-only connections, which WAL lets run beside the writer.

mod rows;
mod writer;

use crate::{
    CancelOutcome, LiveOrder, PayOutcome, Reservation, Snapshot, Store, StoreError, StoreResult,
    UnitsByStatus,
};
use async_trait::async_trait;
use seckill_core::{Order, OrderId, OrderStatus, Sale, SaleId, UserId};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Row};
use std::path::Path;
use std::time::Duration;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::JoinHandle;
use writer::Command;

/// The database file's name inside the data dir.
pub const DATABASE_FILE: &str = "seckill.db";

pub struct SqliteStore {
    readers: SqlitePool,
    writer: mpsc::Sender<Command>,
    writer_task: Mutex<Option<JoinHandle<()>>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `dir` and applies migrations.
    pub async fn open(dir: &Path) -> StoreResult<Self> {
        let options = SqliteConnectOptions::new()
            .filename(dir.join(DATABASE_FILE))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: every commit is fsynced, so an acknowledged reservation
            // survives a crash of the process and of the machine (I2).
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5));
        let mut connection = options.connect().await?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&mut connection)
            .await?;
        let readers = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.read_only(true))
            .await?;
        let (writer, writer_task) = writer::spawn(connection);
        Ok(Self {
            readers,
            writer,
            writer_task: Mutex::new(Some(writer_task)),
        })
    }

    /// Sends a command to the writer and waits for its committed result.
    async fn write<T>(&self, command: impl FnOnce(writer::Reply<T>) -> Command) -> StoreResult<T> {
        let (reply, result) = oneshot::channel();
        self.writer
            .send(command(reply))
            .await
            .map_err(|_| StoreError::NotCommitted)?;
        // A dropped reply means the batch failed to commit.
        result.await.map_err(|_| StoreError::NotCommitted)?
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn load(&self) -> StoreResult<Snapshot> {
        let sales = sqlx::query(&format!(
            "SELECT {} FROM sales ORDER BY id",
            rows::SALE_COLUMNS
        ))
        .fetch_all(&self.readers)
        .await?
        .iter()
        .map(rows::sale)
        .collect::<StoreResult<_>>()?;
        let live_orders = sqlx::query(&format!(
            "SELECT {}, idempotency_key FROM orders
             WHERE status IN ('queued', 'pending_payment', 'paid') OR idempotency_key IS NOT NULL",
            rows::ORDER_COLUMNS
        ))
        .fetch_all(&self.readers)
        .await?
        .iter()
        .map(|row| {
            let order = rows::order(row)?;
            Ok(LiveOrder {
                status: order.status,
                reservation: Reservation {
                    order_id: order.id,
                    sale_id: order.sale_id,
                    user_id: order.user_id,
                    quantity: order.quantity,
                    idempotency_key: row.try_get("idempotency_key")?,
                    created_at: order.created_at,
                    expires_at: order.expires_at,
                },
            })
        })
        .collect::<StoreResult<_>>()?;
        Ok(Snapshot { sales, live_orders })
    }

    async fn create_sale(&self, sale: &Sale) -> StoreResult<()> {
        let sale = sale.clone();
        self.write(|reply| Command::CreateSale(sale, reply)).await
    }

    async fn reserve(&self, reservation: Reservation) -> StoreResult<()> {
        self.write(|reply| Command::Reserve(reservation, reply))
            .await
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

    async fn expire_due(&self) -> StoreResult<Vec<crate::ReleasedUnits>> {
        self.write(Command::ExpireDue).await
    }

    async fn order(&self, id: &OrderId) -> StoreResult<Option<Order>> {
        sqlx::query(&format!(
            "SELECT {} FROM orders WHERE id = ?",
            rows::ORDER_COLUMNS
        ))
        .bind(id.as_str())
        .fetch_optional(&self.readers)
        .await?
        .as_ref()
        .map(rows::order)
        .transpose()
    }

    async fn orders_of(&self, owner: &UserId, sale: Option<&SaleId>) -> StoreResult<Vec<Order>> {
        sqlx::query(&format!(
            "SELECT {} FROM orders WHERE user_id = ?1 AND (?2 IS NULL OR sale_id = ?2)
             ORDER BY created_at, id",
            rows::ORDER_COLUMNS
        ))
        .bind(owner.as_str())
        .bind(sale.map(SaleId::as_str))
        .fetch_all(&self.readers)
        .await?
        .iter()
        .map(rows::order)
        .collect()
    }

    async fn units_by_status(&self, sale: &SaleId) -> StoreResult<UnitsByStatus> {
        let mut units = UnitsByStatus::default();
        let counted = sqlx::query(
            "SELECT status, SUM(quantity) AS units FROM orders WHERE sale_id = ? GROUP BY status",
        )
        .bind(sale.as_str())
        .fetch_all(&self.readers)
        .await?;
        for row in &counted {
            let status: String = row.try_get("status")?;
            let count = rows::unsigned(row.try_get("units")?)?;
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
        // The writer ends once every sender is gone and its queue is drained;
        // this store's sender is the last one, so wait for the task instead.
        let task = self.writer_task.lock().await.take();
        if let Some(task) = task {
            let _ = self.writer.send(Command::Shutdown).await;
            let _ = task.await;
        }
        self.readers.close().await;
    }
}
