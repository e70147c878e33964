//! The single writer: one task owns the writing connection and applies
//! queued writes in batches, one transaction and one fsync per batch (group
//! commit). A caller hears back only after its batch has committed, which is
//! what lets the server acknowledge a reservation as durable (I2).
//!
//! Being the only writer also makes each order transition a plain
//! compare-and-set on its row: pay, cancel and expiry of one order are
//! applied one after another, and the `WHERE status = … AND expires_at …`
//! of each decides which one wins.

use super::rows::{self, ORDER_COLUMNS, signed};
use crate::{CancelOutcome, PayOutcome, ReleasedUnits, Reservation, StoreResult};
use seckill_core::{OrderId, OrderStatus, Sale, Timestamp, UserId};
use sqlx::sqlite::SqliteConnection;
use sqlx::{Connection, QueryBuilder, Row, Sqlite, Transaction};
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Most commands applied in one transaction. Large enough that one fsync
/// serves a whole crowd; small enough to bound the latency of a batch.
const MAX_BATCH: usize = 4096;
/// Rows per INSERT statement (SQLite allows 32,766 bound parameters).
const ROWS_PER_INSERT: usize = 1024;
/// Commands waiting for the writer; senders wait when it is full.
const QUEUE_CAPACITY: usize = 65_536;

pub type Reply<T> = oneshot::Sender<StoreResult<T>>;

pub enum Command {
    CreateSale(Sale, Reply<()>),
    Reserve(Reservation, Reply<()>),
    Pay {
        order: OrderId,
        owner: UserId,
        payment_ref: String,
        reply: Reply<PayOutcome>,
    },
    Cancel {
        order: OrderId,
        owner: UserId,
        reply: Reply<CancelOutcome>,
    },
    ExpireDue(Reply<Vec<ReleasedUnits>>),
    /// Commit what came before, then stop.
    Shutdown,
}

pub fn spawn(connection: SqliteConnection) -> (mpsc::Sender<Command>, JoinHandle<()>) {
    let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
    (sender, tokio::spawn(run(connection, receiver)))
}

async fn run(mut connection: SqliteConnection, mut queue: mpsc::Receiver<Command>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let shutdown = batch.iter().position(|c| matches!(c, Command::Shutdown));
        if let Some(at) = shutdown {
            batch.truncate(at);
        }
        let size = batch.len();
        let started = Instant::now();
        match apply(&mut connection, batch.drain(..)).await {
            Ok(answers) => {
                metrics::histogram!("seckill_writer_batch_size").record(size as f64);
                metrics::histogram!("seckill_writer_commit_seconds")
                    .record(started.elapsed().as_secs_f64());
                answers.into_iter().for_each(|answer| answer.send());
            }
            // The replies were dropped with the batch: every caller hears
            // "not committed" and undoes what it took in memory.
            Err(error) => {
                metrics::counter!("seckill_writer_failed_batches_total").increment(1);
                tracing::error!(%error, size, "writer batch failed, nothing of it committed");
            }
        }
        if shutdown.is_some() {
            break;
        }
    }
    let _ = connection.close().await;
    tracing::debug!("writer stopped");
}

/// A result computed inside the transaction, sent once it has committed.
trait Answer: Send {
    fn send(self: Box<Self>);
}

struct Pending<T> {
    reply: Reply<T>,
    value: T,
}

impl<T: Send> Answer for Pending<T> {
    fn send(self: Box<Self>) {
        // The caller may have gone (client disconnected); the write stands.
        let _ = self.reply.send(Ok(self.value));
    }
}

fn answer<T: Send + 'static>(reply: Reply<T>, value: T) -> Box<dyn Answer> {
    Box::new(Pending { reply, value })
}

async fn apply(
    connection: &mut SqliteConnection,
    commands: impl Iterator<Item = Command>,
) -> StoreResult<Vec<Box<dyn Answer>>> {
    let mut tx = connection.begin().await?;
    let now = Timestamp::now();
    let mut answers = Vec::new();
    let mut reservations = Vec::new();
    for command in commands {
        // Consecutive reservations become multi-row INSERTs; anything else
        // first flushes them so that commands apply in arrival order.
        if let Command::Reserve(reservation, reply) = command {
            reservations.push(reservation);
            answers.push(answer(reply, ()));
            continue;
        }
        insert_reservations(&mut tx, &mut reservations).await?;
        answers.push(match command {
            Command::CreateSale(sale, reply) => {
                insert_sale(&mut tx, &sale).await?;
                answer(reply, ())
            }
            Command::Pay {
                order,
                owner,
                payment_ref,
                reply,
            } => answer(
                reply,
                pay(&mut tx, &order, &owner, &payment_ref, now).await?,
            ),
            Command::Cancel {
                order,
                owner,
                reply,
            } => answer(reply, cancel(&mut tx, &order, &owner, now).await?),
            Command::ExpireDue(reply) => answer(reply, expire_due(&mut tx, now).await?),
            Command::Reserve(..) | Command::Shutdown => continue,
        });
    }
    insert_reservations(&mut tx, &mut reservations).await?;
    tx.commit().await?;
    Ok(answers)
}

async fn insert_sale(tx: &mut Transaction<'_, Sqlite>, sale: &Sale) -> StoreResult<()> {
    sqlx::query(&format!(
        "INSERT INTO sales ({}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows::SALE_COLUMNS
    ))
    .bind(sale.id.as_str())
    .bind(&sale.name)
    .bind(signed(sale.stock))
    .bind(signed(sale.price_cents))
    .bind(sale.starts_at.as_millis())
    .bind(sale.ends_at.map(Timestamp::as_millis))
    .bind(signed(sale.per_user_limit))
    .bind(signed(sale.payment_timeout_secs))
    .bind(sale.require_purchase_token)
    .bind(sale.created_at.as_millis())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn insert_reservations(
    tx: &mut Transaction<'_, Sqlite>,
    reservations: &mut Vec<Reservation>,
) -> StoreResult<()> {
    for chunk in reservations.chunks(ROWS_PER_INSERT) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO orders (id, sale_id, user_id, quantity, status, idempotency_key, \
             created_at, expires_at) ",
        );
        insert.push_values(chunk, |mut row, r| {
            row.push_bind(r.order_id.as_str())
                .push_bind(r.sale_id.as_str())
                .push_bind(r.user_id.as_str())
                .push_bind(signed(r.quantity))
                .push_bind(OrderStatus::PendingPayment.as_str())
                .push_bind(r.idempotency_key.as_deref())
                .push_bind(r.created_at.as_millis())
                .push_bind(r.expires_at.as_millis());
        });
        insert.build().execute(&mut **tx).await?;
    }
    reservations.clear();
    Ok(())
}

/// pending_payment → paid, only before the deadline.
async fn pay(
    tx: &mut Transaction<'_, Sqlite>,
    order: &OrderId,
    owner: &UserId,
    payment_ref: &str,
    now: Timestamp,
) -> StoreResult<PayOutcome> {
    let paid = sqlx::query(&format!(
        "UPDATE orders SET status = 'paid', paid_at = ?1, payment_ref = ?2
         WHERE id = ?3 AND user_id = ?4 AND status = 'pending_payment' AND expires_at > ?1
         RETURNING {ORDER_COLUMNS}"
    ))
    .bind(now.as_millis())
    .bind(payment_ref)
    .bind(order.as_str())
    .bind(owner.as_str())
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(row) = paid {
        return Ok(PayOutcome::Paid(rows::order(&row)?));
    }
    let Some(current) = owned_order(tx, order, owner).await? else {
        return Ok(PayOutcome::NotFound);
    };
    Ok(match current.status {
        OrderStatus::Paid if current.payment_ref.as_deref() == Some(payment_ref) => {
            PayOutcome::Paid(current)
        }
        OrderStatus::Paid | OrderStatus::Queued => PayOutcome::NotPayable,
        // Still pending here means the deadline has passed.
        OrderStatus::PendingPayment | OrderStatus::Expired => PayOutcome::Expired,
        OrderStatus::Cancelled => PayOutcome::Cancelled,
    })
}

/// pending_payment → cancelled, only before the deadline.
async fn cancel(
    tx: &mut Transaction<'_, Sqlite>,
    order: &OrderId,
    owner: &UserId,
    now: Timestamp,
) -> StoreResult<CancelOutcome> {
    let cancelled = sqlx::query(&format!(
        "UPDATE orders SET status = 'cancelled'
         WHERE id = ?1 AND user_id = ?2 AND status = 'pending_payment' AND expires_at > ?3
         RETURNING {ORDER_COLUMNS}"
    ))
    .bind(order.as_str())
    .bind(owner.as_str())
    .bind(now.as_millis())
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(row) = cancelled {
        let order = rows::order(&row)?;
        let released = ReleasedUnits {
            sale_id: order.sale_id.clone(),
            user_id: order.user_id.clone(),
            quantity: order.quantity,
        };
        return Ok(CancelOutcome::Cancelled(order, released));
    }
    Ok(match owned_order(tx, order, owner).await? {
        Some(_) => CancelOutcome::NotCancellable,
        None => CancelOutcome::NotFound,
    })
}

/// pending_payment → expired for every order past its deadline.
async fn expire_due(
    tx: &mut Transaction<'_, Sqlite>,
    now: Timestamp,
) -> StoreResult<Vec<ReleasedUnits>> {
    sqlx::query(
        "UPDATE orders SET status = 'expired'
         WHERE status = 'pending_payment' AND expires_at <= ?
         RETURNING sale_id, user_id, quantity",
    )
    .bind(now.as_millis())
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(|row| {
        Ok(ReleasedUnits {
            sale_id: row.try_get::<String, _>("sale_id")?.into(),
            user_id: row.try_get::<String, _>("user_id")?.into(),
            quantity: rows::unsigned(row.try_get("quantity")?)?,
        })
    })
    .collect()
}

/// The order if it exists and belongs to `owner`; others' orders stay unseen.
async fn owned_order(
    tx: &mut Transaction<'_, Sqlite>,
    order: &OrderId,
    owner: &UserId,
) -> StoreResult<Option<seckill_core::Order>> {
    sqlx::query(&format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE id = ? AND user_id = ?"
    ))
    .bind(order.as_str())
    .bind(owner.as_str())
    .fetch_optional(&mut **tx)
    .await?
    .as_ref()
    .map(rows::order)
    .transpose()
}
