//! The cluster's order store: PostgreSQL or MySQL/MariaDB through sqlx's
//! `Any` driver, so that one implementation serves both (the few words that
//! differ live in [`Dialect`]).
//!
//! Rows come from the stream consumers ([`SqlOrders::insert_reservations`],
//! idempotent by order id, so a redelivered entry never makes a second
//! order). Every later change of an order is decided by
//! `seckill_core::lifecycle`, as in the embedded store, and written as one
//! compare-and-set UPDATE on its status and deadline: pay, cancel and
//! expiry of one order can never both win, whichever node runs them.

mod dialect;
mod rows;

pub use dialect::Dialect;

use rows::{ORDER_COLUMNS, RESERVATION_COLUMNS, bigint};
use seckill_core::lifecycle::{self, Answer, Deadline, Event, Transition};
use seckill_core::{Order, OrderId, OrderStatus, Sale, SaleId, Timestamp, UserId};
use seckill_engine::{CancelOutcome, PayOutcome, ReleasedUnits, Reservation, UnitsByStatus};
use sqlx::any::{AnyArguments, AnyPoolOptions};
use sqlx::query::Query;
use sqlx::{Any, AnyPool};
use std::time::Duration;

/// Connections per node. Writes are batched, so a few suffice.
const POOL_SIZE: u32 = 16;
/// How long a query waits for a connection before it fails (and the
/// consumer backs off): an unreachable database shows within this.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
/// Most rows in one INSERT: 7 parameters a row stay under the 65,535
/// parameters both databases take in one statement.
const MAX_ROWS_PER_INSERT: usize = 8192;

#[derive(Debug, thiserror::Error)]
pub enum OrdersError {
    #[error("unsupported database URL (use postgres://… or mysql://…)")]
    UnsupportedUrl,
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("out of range for the database: {0}")]
    OutOfRange(String),
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
}

impl OrdersError {
    /// Whether the database could not be reached at all (connection, pool,
    /// TLS), as opposed to refusing this statement: retrying the same data
    /// later may succeed, and the data is not to blame.
    pub fn is_unreachable(&self) -> bool {
        use sqlx::Error::*;
        matches!(
            self,
            Self::Database(
                Io(_) | Tls(_) | Protocol(_) | PoolTimedOut | PoolClosed | WorkerCrashed
            )
        )
    }

    /// Whether the database refused this statement's data: SQLSTATE class
    /// 22 (a value it cannot hold, such as NUL in PostgreSQL text) or 23
    /// (a constraint). The statement's input is to blame, not the database.
    pub fn is_refusal(&self) -> bool {
        match self {
            Self::Database(sqlx::Error::Database(error)) => error
                .code()
                .is_some_and(|code| code.starts_with("22") || code.starts_with("23")),
            Self::OutOfRange(_) => true,
            _ => false,
        }
    }
}

impl OrdersError {
    /// Whether the server answered but takes no connections now: it is
    /// starting, shutting down or recovering (PostgreSQL 57P03), or has
    /// too many (53300; MySQL 08004). Worth waiting for, like
    /// [`OrdersError::is_unreachable`].
    pub fn refuses_connections(&self) -> bool {
        matches!(
            self,
            Self::Database(sqlx::Error::Database(error))
                if matches!(error.code().as_deref(), Some("57P03" | "53300" | "08004"))
        )
    }
}

pub type OrdersResult<T> = Result<T, OrdersError>;

/// An order the expiry sweeper took: its units go back to the stock
/// authority, keyed by order id so that the release happens once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiredOrder {
    pub order_id: OrderId,
    pub released: ReleasedUnits,
}

/// An order cancelled or expired, and when (by Redis' clock as the node
/// that changed it knew it, `crate::clock`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleasedOrder {
    pub order: ExpiredOrder,
    pub released_at: Timestamp,
}

/// Sales and orders in PostgreSQL or MySQL/MariaDB. Cheap to clone (a pool).
#[derive(Clone)]
pub struct SqlOrders {
    pool: AnyPool,
    dialect: Dialect,
}

impl SqlOrders {
    /// Connects to `postgres://…` or `mysql://…` and applies the schema
    /// migrations (under the database's migration lock, so nodes may start
    /// together).
    pub async fn connect(url: &str) -> OrdersResult<Self> {
        let dialect = Dialect::of_url(url).ok_or(OrdersError::UnsupportedUrl)?;
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect(url)
            .await?;
        let mut connection = pool.acquire().await?;
        let lock = dialect.migration_lock();
        if let Some([take, _]) = lock {
            sqlx::query(take).execute(&mut *connection).await?;
        }
        let migrated = dialect.migrations().run(&mut *connection).await;
        if let Some([_, release]) = lock {
            sqlx::query(release).execute(&mut *connection).await?;
        }
        migrated?;
        Ok(Self { pool, dialect })
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Records a sale; creating the same sale again changes nothing.
    pub async fn create_sale(&self, sale: &Sale) -> OrdersResult<()> {
        let sql = format!(
            "INSERT INTO sales (id, name, stock, price_cents, starts_at, ends_at, \
             per_user_limit, payment_timeout_secs, require_purchase_token, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) {}",
            self.dialect.skip_duplicates()
        );
        sqlx::query(self.dialect.sql(&sql))
            .bind(sale.id.as_str())
            .bind(sale.name.as_str())
            .bind(bigint(sale.stock, "stock")?)
            .bind(bigint(sale.price_cents, "price_cents")?)
            .bind(sale.starts_at.as_millis())
            .bind(sale.ends_at.map(Timestamp::as_millis))
            .bind(bigint(sale.per_user_limit, "per_user_limit")?)
            .bind(bigint(sale.payment_timeout_secs, "payment_timeout_secs")?)
            .bind(sale.require_purchase_token)
            .bind(sale.created_at.as_millis())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Every sale, oldest first.
    pub async fn sales(&self) -> OrdersResult<Vec<Sale>> {
        let columns = rows::sale_columns(self.dialect);
        let sql = format!("SELECT {columns} FROM sales ORDER BY created_at, id");
        sqlx::query(self.dialect.sql(&sql))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(rows::sale)
            .collect()
    }

    /// Inserts reservations as `pending_payment` orders, one multi-row
    /// INSERT per batch. Idempotent: a reservation whose order id (or
    /// Idempotency-Key) already has a row is skipped, so a redelivered
    /// stream entry never makes a second order. Not one transaction across
    /// batches beyond 8,192 rows: a failure part way is retried whole, and
    /// the rows that made it are skipped then.
    pub async fn insert_reservations(&self, batch: &[Reservation]) -> OrdersResult<()> {
        for chunk in batch.chunks(MAX_ROWS_PER_INSERT) {
            let rows = vec!["(?, ?, ?, ?, 'pending_payment', ?, ?, ?)"; chunk.len()].join(", ");
            let sql = format!(
                "INSERT INTO orders (id, sale_id, user_id, quantity, status, idempotency_key, \
                 created_at, expires_at) VALUES {rows} {}",
                self.dialect.skip_duplicates()
            );
            let sql = self.dialect.sql(&sql);
            let mut insert = sqlx::query(sql);
            for r in chunk {
                insert = insert
                    .bind(r.order_id.as_str())
                    .bind(r.sale_id.as_str())
                    .bind(r.user_id.as_str())
                    .bind(bigint(r.quantity, "quantity")?)
                    .bind(r.idempotency_key.as_deref())
                    .bind(r.created_at.as_millis())
                    .bind(r.expires_at.as_millis());
            }
            insert.execute(&self.pool).await?;
        }
        Ok(())
    }

    pub async fn order(&self, id: &OrderId) -> OrdersResult<Option<Order>> {
        let sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = ?");
        sqlx::query(self.dialect.sql(&sql))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(rows::order)
            .transpose()
    }

    /// The orders of `owner`, of one sale or of all, oldest first.
    pub async fn orders_of(
        &self,
        owner: &UserId,
        sale: Option<&SaleId>,
    ) -> OrdersResult<Vec<Order>> {
        let filter = if sale.is_some() {
            " AND sale_id = ?"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE user_id = ?{filter} ORDER BY created_at, id"
        );
        let sql = self.dialect.sql(&sql);
        let mut query = sqlx::query(sql).bind(owner.as_str());
        if let Some(sale) = sale {
            query = query.bind(sale.as_str());
        }
        query
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(rows::order)
            .collect()
    }

    pub async fn pay(
        &self,
        order: &OrderId,
        owner: &UserId,
        payment_ref: &str,
        now: Timestamp,
    ) -> OrdersResult<PayOutcome> {
        let event = Event::Pay {
            by: owner,
            payment_ref,
        };
        Ok(match self.apply(order, event, now).await? {
            Some((answer, order)) => PayOutcome::decided(answer, order),
            None => PayOutcome::NotFound,
        })
    }

    pub async fn cancel(
        &self,
        order: &OrderId,
        owner: &UserId,
        now: Timestamp,
    ) -> OrdersResult<CancelOutcome> {
        Ok(
            match self.apply(order, Event::Cancel { by: owner }, now).await? {
                Some((answer, order)) => CancelOutcome::decided(answer, order),
                None => CancelOutcome::NotFound,
            },
        )
    }

    /// Expires up to `limit` orders the lifecycle finds due and returns
    /// them, in one transaction. Rows another node is expiring (or paying)
    /// right now are locked, and skipped rather than waited for, so every
    /// node may sweep at once and each order is expired exactly once.
    pub async fn claim_expired(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> OrdersResult<Vec<ExpiredOrder>> {
        let mut tx = self.pool.begin().await?;
        let sql = format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE status = '{}' AND {} \
             ORDER BY expires_at LIMIT ? FOR UPDATE SKIP LOCKED",
            lifecycle::EXPIRES_FROM.as_str(),
            deadline_stands(Deadline::Passed)
        );
        let due = sqlx::query(self.dialect.sql(&sql))
            .bind(now.as_millis())
            .bind(bigint(limit as u64, "limit")?)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(rows::order)
            .collect::<OrdersResult<Vec<_>>>()?;
        // Orders that make the same transition are written by one UPDATE.
        let mut moves: Vec<(Transition, Vec<&Order>)> = Vec::new();
        for order in &due {
            let Some(transition) = lifecycle::decide(order, Event::Expire, now).transition else {
                continue;
            };
            match moves.iter_mut().find(|(made, _)| *made == transition) {
                Some((_, orders)) => orders.push(order),
                None => moves.push((transition, vec![order])),
            }
        }
        let mut expired = Vec::new();
        for (transition, orders) in moves {
            let ids: Vec<&str> = orders.iter().map(|order| order.id.as_str()).collect();
            // Locked since the SELECT: every one of them is written.
            self.write(transition, None, &ids, now)
                .execute(&mut *tx)
                .await?;
            if transition.releases() {
                expired.extend(orders.into_iter().map(|order| ExpiredOrder {
                    order_id: order.id.clone(),
                    released: ReleasedUnits::of(order),
                }));
            }
        }
        tx.commit().await?;
        Ok(expired)
    }

    /// Orders that gave their units back (cancelled or expired) at `since`
    /// or later by their `released_at`, up to `limit` of them after
    /// `after` in (`released_at`, id) order: one page of the nodes' pass
    /// over recent releases (`crate::reconcile::RecentReleases`).
    pub async fn released_since(
        &self,
        since: Timestamp,
        after: Option<&ReleasedOrder>,
        limit: usize,
    ) -> OrdersResult<Vec<ReleasedOrder>> {
        let (after_at, after_id) = after.map_or((since.as_millis() - 1, ""), |order| {
            (order.released_at.as_millis(), order.order.order_id.as_str())
        });
        sqlx::query(self.dialect.sql(
            "SELECT id, sale_id, user_id, quantity, released_at FROM orders \
             WHERE released_at >= ? AND (released_at > ? OR (released_at = ? AND id > ?)) \
             ORDER BY released_at, id LIMIT ?",
        ))
        .bind(since.as_millis())
        .bind(after_at)
        .bind(after_at)
        .bind(after_id)
        .bind(bigint(limit as u64, "limit")?)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(rows::released_order)
        .collect()
    }

    /// Units per order status for one sale (the report). Reservations still
    /// in the stream are not rows yet; the caller adds them as `queued`.
    pub async fn units_by_status(&self, sale: &SaleId) -> OrdersResult<UnitsByStatus> {
        let sql = format!(
            "SELECT status, CAST(SUM(quantity) AS {}) AS units FROM orders \
             WHERE sale_id = ? GROUP BY status",
            self.dialect.bigint()
        );
        let mut units = UnitsByStatus::default();
        for row in sqlx::query(self.dialect.sql(&sql))
            .bind(sale.as_str())
            .fetch_all(&self.pool)
            .await?
        {
            let (status, n) = rows::units(&row)?;
            *match status {
                OrderStatus::Queued => &mut units.queued,
                OrderStatus::PendingPayment => &mut units.pending_payment,
                OrderStatus::Paid => &mut units.paid,
                OrderStatus::Expired => &mut units.expired,
                OrderStatus::Cancelled => &mut units.cancelled,
            } += n;
        }
        Ok(units)
    }

    /// Every order of a sale with its reservation and status, read in one
    /// statement (one consistent view): what `crate::reconcile` holds the
    /// stream against.
    pub async fn orders_of_sale(
        &self,
        sale: &SaleId,
    ) -> OrdersResult<Vec<(Reservation, OrderStatus)>> {
        let sql = format!("SELECT {RESERVATION_COLUMNS}, status FROM orders WHERE sale_id = ?");
        sqlx::query(self.dialect.sql(&sql))
            .bind(sale.as_str())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(rows::reservation_and_status)
            .collect()
    }

    /// `event` applied to the order as `lifecycle::decide` rules: its
    /// answer and the order as stored after; `None`: no such order. A
    /// write that lost a race (another node moved the order first) is
    /// decided again from the row read anew; statuses only move forward,
    /// so this ends.
    async fn apply(
        &self,
        id: &OrderId,
        event: Event<'_>,
        now: Timestamp,
    ) -> OrdersResult<Option<(Answer, Order)>> {
        loop {
            let Some(current) = self.order(id).await? else {
                return Ok(None);
            };
            let decision = lifecycle::decide(&current, event, now);
            let Some(transition) = decision.transition else {
                return Ok(Some((decision.answer, current)));
            };
            let payment_ref = transition.payment_ref(event);
            let written = self
                .write(transition, payment_ref, &[id.as_str()], now)
                .execute(&self.pool)
                .await?
                .rows_affected()
                == 1;
            if written {
                // Nothing moves a paid, cancelled or expired order again:
                // the row read back is the one written.
                let order = self.order(id).await?.ok_or_else(|| {
                    OrdersError::Corrupt(format!("order {id} vanished after its {transition:?}"))
                })?;
                return Ok(Some((decision.answer, order)));
            }
        }
    }

    /// `transition` as one compare-and-set UPDATE of the orders `ids`:
    /// each is written only while it has the `from` status and its
    /// deadline stands as decided. A payment records its reference and
    /// time; a release its time.
    fn write(
        &self,
        transition: Transition,
        payment_ref: Option<&str>,
        ids: &[&str],
        now: Timestamp,
    ) -> Query<'static, Any, AnyArguments> {
        let sql = format!(
            "UPDATE orders SET status = ?, paid_at = COALESCE(?, paid_at), \
             payment_ref = COALESCE(?, payment_ref), released_at = COALESCE(?, released_at) \
             WHERE status = ? AND {} AND id IN ({})",
            deadline_stands(transition.deadline),
            vec!["?"; ids.len()].join(", ")
        );
        let mut update = sqlx::query(self.dialect.sql(&sql))
            .bind(transition.to.as_str())
            .bind(payment_ref.map(|_| now.as_millis()))
            .bind(payment_ref)
            .bind(transition.releases().then_some(now.as_millis()))
            .bind(transition.from.as_str())
            .bind(now.as_millis());
        for id in ids {
            update = update.bind(*id);
        }
        update
    }
}

/// The condition that an order's deadline stands as `deadline` at the
/// instant bound to its `?`.
fn deadline_stands(deadline: Deadline) -> &'static str {
    match deadline {
        Deadline::Ahead => "expires_at > ?",
        Deadline::Passed => "expires_at <= ?",
    }
}
