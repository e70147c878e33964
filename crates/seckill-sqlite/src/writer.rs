//! The single writer: one thread owns the writing connection and applies
//! queued writes in batches, one transaction and one fsync per batch (group
//! commit). A caller hears back only after its batch has committed, which is
//! what lets the server acknowledge a reservation as durable (I2).
//!
//! A plain thread rather than an async task: a whole batch runs as plain
//! synchronous code, without handing each statement to another thread.
//!
//! Being the only writer also makes each order transition a plain
//! compare-and-set on its row: pay, cancel and expiry of one order are
//! applied one after another, and the `WHERE status = … AND expires_at …`
//! of each decides which one wins.

use crate::rows::{self, ORDER_COLUMNS, SALE_COLUMNS};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use seckill_core::{Order, OrderId, OrderStatus, Sale, Timestamp, UserId};
use seckill_engine::{CancelOutcome, PayOutcome, ReleasedUnits, Reservation, StoreResult};
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

/// Most commands applied in one transaction. Large enough that one fsync
/// serves a whole crowd; small enough to bound the latency of a batch.
const MAX_BATCH: usize = 4096;
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

/// Starts the writer thread; the receiver resolves once it has stopped.
pub fn spawn(
    connection: Connection,
) -> std::io::Result<(mpsc::Sender<Command>, oneshot::Receiver<()>)> {
    let (sender, queue) = mpsc::channel(QUEUE_CAPACITY);
    let (stopped, on_stop) = oneshot::channel();
    std::thread::Builder::new()
        .name("seckill-writer".into())
        .spawn(move || {
            run(connection, queue);
            let _ = stopped.send(());
        })?;
    Ok((sender, on_stop))
}

fn run(mut connection: Connection, mut queue: mpsc::Receiver<Command>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = queue.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(command) => batch.push(command),
                Err(_) => break,
            }
        }
        let shutdown = batch.iter().position(|c| matches!(c, Command::Shutdown));
        if let Some(at) = shutdown {
            batch.truncate(at);
        }
        let size = batch.len();
        let started = Instant::now();
        match apply(&mut connection, batch.drain(..)) {
            Ok(answers) => {
                // Looked up per batch, not once: the thread starts before
                // the engine installs its metrics recorder.
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

fn apply(
    connection: &mut Connection,
    commands: impl Iterator<Item = Command>,
) -> rusqlite::Result<Vec<Box<dyn Answer>>> {
    let tx = connection.transaction()?;
    let now = Timestamp::now();
    let mut answers = Vec::new();
    for command in commands {
        answers.push(match command {
            Command::Reserve(reservation, reply) => {
                insert_reservation(&tx, &reservation)?;
                answer(reply, ())
            }
            Command::CreateSale(sale, reply) => {
                insert_sale(&tx, &sale)?;
                answer(reply, ())
            }
            Command::Pay {
                order,
                owner,
                payment_ref,
                reply,
            } => answer(reply, pay(&tx, &order, &owner, &payment_ref, now)?),
            Command::Cancel {
                order,
                owner,
                reply,
            } => answer(reply, cancel(&tx, &order, &owner, now)?),
            Command::ExpireDue(reply) => answer(reply, expire_due(&tx, now)?),
            Command::Shutdown => continue,
        });
    }
    tx.commit()?;
    Ok(answers)
}

fn insert_sale(tx: &Transaction, sale: &Sale) -> rusqlite::Result<()> {
    tx.prepare_cached(&format!(
        "INSERT INTO sales ({SALE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ))?
    .execute(params![
        sale.id.as_str(),
        sale.name,
        sale.stock,
        sale.price_cents,
        sale.starts_at.as_millis(),
        sale.ends_at.map(Timestamp::as_millis),
        sale.per_user_limit,
        sale.payment_timeout_secs,
        sale.require_purchase_token,
        sale.created_at.as_millis(),
    ])?;
    Ok(())
}

fn insert_reservation(tx: &Transaction, r: &Reservation) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO orders (id, sale_id, user_id, quantity, status, idempotency_key, \
         created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )?
    .execute(params![
        r.order_id.as_str(),
        r.sale_id.as_str(),
        r.user_id.as_str(),
        r.quantity,
        OrderStatus::PendingPayment.as_str(),
        r.idempotency_key,
        r.created_at.as_millis(),
        r.expires_at.as_millis(),
    ])?;
    Ok(())
}

/// pending_payment → paid, only before the deadline.
fn pay(
    tx: &Transaction,
    order: &OrderId,
    owner: &UserId,
    payment_ref: &str,
    now: Timestamp,
) -> rusqlite::Result<PayOutcome> {
    let paid = tx
        .prepare_cached(&format!(
            "UPDATE orders SET status = 'paid', paid_at = ?1, payment_ref = ?2
             WHERE id = ?3 AND user_id = ?4 AND status = 'pending_payment' AND expires_at > ?1
             RETURNING {ORDER_COLUMNS}"
        ))?
        .query_row(
            params![now.as_millis(), payment_ref, order.as_str(), owner.as_str()],
            rows::order,
        )
        .optional()?;
    if let Some(paid) = paid {
        return Ok(PayOutcome::Paid(paid));
    }
    let Some(current) = owned_order(tx, order, owner)? else {
        return Ok(PayOutcome::NotFound);
    };
    Ok(match current.status {
        OrderStatus::Paid if current.payment_ref.as_deref() == Some(payment_ref) => {
            PayOutcome::AlreadyPaid(current)
        }
        OrderStatus::Paid | OrderStatus::Queued => PayOutcome::NotPayable,
        // Still pending here means the deadline has passed.
        OrderStatus::PendingPayment | OrderStatus::Expired => PayOutcome::Expired,
        OrderStatus::Cancelled => PayOutcome::Cancelled,
    })
}

/// pending_payment → cancelled, only before the deadline.
fn cancel(
    tx: &Transaction,
    order: &OrderId,
    owner: &UserId,
    now: Timestamp,
) -> rusqlite::Result<CancelOutcome> {
    let cancelled = tx
        .prepare_cached(&format!(
            "UPDATE orders SET status = 'cancelled'
             WHERE id = ?1 AND user_id = ?2 AND status = 'pending_payment' AND expires_at > ?3
             RETURNING {ORDER_COLUMNS}"
        ))?
        .query_row(
            params![order.as_str(), owner.as_str(), now.as_millis()],
            rows::order,
        )
        .optional()?;
    if let Some(order) = cancelled {
        let released = ReleasedUnits {
            sale_id: order.sale_id.clone(),
            user_id: order.user_id.clone(),
            quantity: order.quantity,
        };
        return Ok(CancelOutcome::Cancelled(order, released));
    }
    Ok(match owned_order(tx, order, owner)? {
        Some(_) => CancelOutcome::NotCancellable,
        None => CancelOutcome::NotFound,
    })
}

/// pending_payment → expired for every order past its deadline.
fn expire_due(tx: &Transaction, now: Timestamp) -> rusqlite::Result<Vec<ReleasedUnits>> {
    tx.prepare_cached(
        "UPDATE orders SET status = 'expired'
             WHERE status = 'pending_payment' AND expires_at <= ?
             RETURNING sale_id, user_id, quantity",
    )?
    .query_map([now.as_millis()], |row| {
        Ok(ReleasedUnits {
            sale_id: row.get::<_, String>("sale_id")?.into(),
            user_id: row.get::<_, String>("user_id")?.into(),
            quantity: row.get("quantity")?,
        })
    })?
    .collect::<Result<_, _>>()
}

/// The order if it exists and belongs to `owner`; others' orders stay unseen.
fn owned_order(
    tx: &Transaction,
    order: &OrderId,
    owner: &UserId,
) -> rusqlite::Result<Option<Order>> {
    tx.prepare_cached(&format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE id = ? AND user_id = ?"
    ))?
    .query_row([order.as_str(), owner.as_str()], rows::order)
    .optional()
}
