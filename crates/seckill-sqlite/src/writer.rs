//! The single writer: one thread owns the writing connection and applies
//! queued writes in batches, one transaction and one fsync per batch (group
//! commit). A caller hears back only after its batch has committed, which is
//! what lets the server acknowledge a reservation as durable (I2).
//!
//! A plain thread rather than an async task: a whole batch runs as plain
//! synchronous code, without handing each statement to another thread.
//!
//! Being the only writer also applies pay, cancel and expiry of one order
//! one after another: each is decided by `seckill_core::lifecycle` from the
//! row as read and written as a compare-and-set on it.

use crate::rows::{self, ORDER_COLUMNS, SALE_COLUMNS};
use rusqlite::{Connection, OptionalExtension, Transaction, named_params, params};
use seckill_core::lifecycle::{self, Deadline, Event, Transition};
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

fn pay(
    tx: &Transaction,
    order: &OrderId,
    owner: &UserId,
    payment_ref: &str,
    now: Timestamp,
) -> rusqlite::Result<PayOutcome> {
    let event = Event::Pay {
        by: owner,
        payment_ref,
    };
    Ok(match apply_event(tx, order, event, now)? {
        Some((answer, order)) => PayOutcome::decided(answer, order),
        None => PayOutcome::NotFound,
    })
}

fn cancel(
    tx: &Transaction,
    order: &OrderId,
    owner: &UserId,
    now: Timestamp,
) -> rusqlite::Result<CancelOutcome> {
    Ok(
        match apply_event(tx, order, Event::Cancel { by: owner }, now)? {
            Some((answer, order)) => CancelOutcome::decided(answer, order),
            None => CancelOutcome::NotFound,
        },
    )
}

/// Expires every order the lifecycle finds due.
fn expire_due(tx: &Transaction, now: Timestamp) -> rusqlite::Result<Vec<ReleasedUnits>> {
    let due = tx
        .prepare_cached(&format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE status = '{}' AND {}",
            lifecycle::EXPIRES_FROM.as_str(),
            deadline_stands(Deadline::Passed)
        ))?
        .query_map(named_params! {":now": now.as_millis()}, rows::order)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut released = Vec::new();
    for order in due {
        if let Some(transition) = lifecycle::decide(&order, Event::Expire, now).transition
            && write(tx, &order.id, transition, None, now)?
            && transition.releases()
        {
            released.push(ReleasedUnits::of(&order));
        }
    }
    Ok(released)
}

/// `event` applied to the order as `lifecycle::decide` rules: its answer
/// and the order as stored after; `None`: no such order. Inside the
/// writer's transaction nothing moves the row between the read and the
/// write, which is still the compare-and-set every store makes.
fn apply_event(
    tx: &Transaction,
    id: &OrderId,
    event: Event<'_>,
    now: Timestamp,
) -> rusqlite::Result<Option<(lifecycle::Answer, Order)>> {
    loop {
        let Some(current) = order_by_id(tx, id)? else {
            return Ok(None);
        };
        let decision = lifecycle::decide(&current, event, now);
        let Some(transition) = decision.transition else {
            return Ok(Some((decision.answer, current)));
        };
        let payment_ref = transition.payment_ref(event);
        if write(tx, id, transition, payment_ref, now)? {
            let written = order_by_id(tx, id)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
            return Ok(Some((decision.answer, written)));
        }
    }
}

/// Writes `transition` if the order still has its `from` status and
/// deadline; whether it did. A payment records its reference and time.
fn write(
    tx: &Transaction,
    id: &OrderId,
    transition: Transition,
    payment_ref: Option<&str>,
    now: Timestamp,
) -> rusqlite::Result<bool> {
    let written = tx
        .prepare_cached(&format!(
            "UPDATE orders SET status = :to,
                 paid_at = COALESCE(:paid_at, paid_at),
                 payment_ref = COALESCE(:payment_ref, payment_ref)
             WHERE id = :id AND status = :from AND {}",
            deadline_stands(transition.deadline)
        ))?
        .execute(named_params! {
            ":to": transition.to.as_str(),
            ":paid_at": payment_ref.map(|_| now.as_millis()),
            ":payment_ref": payment_ref,
            ":id": id.as_str(),
            ":from": transition.from.as_str(),
            ":now": now.as_millis(),
        })?;
    Ok(written == 1)
}

/// The condition that an order's deadline stands as `deadline` at `:now`.
fn deadline_stands(deadline: Deadline) -> &'static str {
    match deadline {
        Deadline::Ahead => "expires_at > :now",
        Deadline::Passed => "expires_at <= :now",
    }
}

fn order_by_id(tx: &Transaction, id: &OrderId) -> rusqlite::Result<Option<Order>> {
    tx.prepare_cached(&format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = ?"))?
        .query_row([id.as_str()], rows::order)
        .optional()
}
