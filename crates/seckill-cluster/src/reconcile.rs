//! `seckill reconcile`: does Redis' `sold` agree with the orders, and if
//! not, which orders make the difference and what may safely be repaired.
//!
//! The statement checked, which holds at any instant of a sale in order:
//!
//! > Redis sold = units of orders pending_payment + paid in the database
//! > + units of reservations not yet consumed (stream entries with no row)
//!
//! ## Comparing while the sale runs
//!
//! Purchases, consumers, payments, expiries and releases go on while this
//! runs; reading `sold`, the stream and the database one after another
//! would count a purchase or a release in one read and not in another. So
//! every order is judged as of one instant T:
//!
//! 1. `reconcile/snapshot.lua` reads, at T, `total`, `sold`, the id of the
//!    stream's last entry and the `released` set. Nothing trims or deletes
//!    reservation entries, so the entries up to that id, read afterwards
//!    1,000 at a time (Redis serves buyers in between), are exactly the
//!    reservations at T. The one cost inside the script is the SMEMBERS of
//!    `released`: O(orders released), while Redis serves nobody else.
//! 2. One SELECT reads every order of the sale (a consistent read, at T'
//!    after T). Rows only ever appear after their entry, and statuses only
//!    leave pending_payment, so each order is placed as of T:
//!    - an entry with no row: not yet consumed, unless it was dead-lettered
//!      or the consumer group acknowledged it anyway (its last-delivered id
//!      and pending entries, read before the SELECT: a row commits before
//!      its entry is acknowledged) — then it never will be;
//!    - pending_payment or paid: held on both sides;
//!    - expired or cancelled, released at T: held on neither side;
//!    - expired or cancelled, not released at T: Redis held it at T. Its
//!      release may be in flight (the sweeper marks the row, then releases):
//!      one that lands within `settle` counts as `releasing`; one that does
//!      not was lost with a crashed process (`released_missing`);
//!    - a row with no entry up to T: reserved after T (its entry follows
//!      T's id in the stream: left out of the comparison), or lost by Redis
//!      (`lost`; `lost_released` once cancelled or expired and not released
//!      in Redis) — which is decided by reading the stream's tail after the
//!      SELECT, when every row it saw has its entry.
//!
//! Hence `difference` = sold − (pending + paid + unconsumed + releasing) is
//! zero on a running sale that is in order, and when it is not, the orders
//! listed account for it; what they do not is `unexplained`.
//!
//! Every entry and row of the sale is held in memory once, so time and
//! memory grow with its orders (figures: bench/RESULTS.md). An entry the
//! purchase script could not have written (unreadable) stops the comparison
//! with its id: its units cannot be counted.
//!
//! ## Repairs
//!
//! - `released_missing`: the release the crashed process did not send, by
//!   the same idempotent release script (a late release then does nothing),
//!   in [`release_missing`]. The running nodes make the same repair of
//!   recent releases by themselves ([`RecentReleases`]), so this finds
//!   such orders only when no node ran since.
//! - `lost`: `reconcile/restore.lua` puts the reservation back as the
//!   purchase wrote it (units, the buyer's holding, the key's answer, the
//!   entry), once per order. It raises `sold`, so it never lets a unit be
//!   sold twice (I1) and restores the per-user limit (I4). An order that
//!   was released after Redis lost it gave back units Redis never had; its
//!   restore is the undo of that release (a holding that release could not
//!   take below zero then comes back too high, which can only refuse a
//!   purchase: the safe side of I4).
//! - `lost_released`: put back the same way, as released (no units, its id
//!   in the `released` set), so that a release of it gives nothing back.
//! - A sale Redis does not know (it restarted empty): written back from
//!   the order store with nothing sold, fenced; then every order is `lost`
//!   and put back as above.
//! - The fence (`authority/run_id.lua`): lifted (`reconcile/verify.lua`)
//!   once Redis holds at least every unit the orders and the stream hold,
//!   under the Redis run read before the comparison; the nodes run this
//!   same repair after a restart.
//! - Not repaired, left to a person (the report stays inconsistent):
//!   dead-lettered and acknowledged-without-row reservations (a buyer heard
//!   "reserved", no order will come), `oversold` units (orders must be
//!   cancelled), and an `unexplained` difference.

use crate::authority::keys::SaleKeys;
use crate::authority::{AuthorityError, Fence, RedisAuthority, ReleaseOutcome};
use crate::orders::{ExpiredOrder, OrdersError, SqlOrders};
use crate::stream::{self, ORDERS_GROUP};
use redis::streams::{StreamId, StreamInfoGroupsReply, StreamPendingCountReply, StreamRangeReply};
use redis::{Script, Value};
use seckill_core::{OrderId, OrderStatus, SaleId};
use seckill_engine::{ReleasedUnits, Reservation};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

mod recent;

pub use recent::RecentReleases;

static SNAPSHOT: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("reconcile/snapshot.lua")));
static RESTORE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("reconcile/restore.lua")));
static VERIFY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("authority/run_id.lua"),
        include_str!("reconcile/verify.lua")
    ))
});

/// Entries per XRANGE while the stream is read.
const CHUNK: usize = 1000;
/// How often a release in flight is looked for again while settling.
const SETTLE_POLL: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Redis(#[from] AuthorityError),
    #[error(transparent)]
    Orders(#[from] OrdersError),
    #[error("Redis does not know sale `{0}`")]
    UnknownSale(SaleId),
    #[error("neither Redis nor the order store knows sale `{0}`")]
    NoSuchSale(SaleId),
    #[error("Redis fenced sale `{0}` (it restarted): only a repair may change it")]
    Fenced(SaleId),
}

/// One sale compared, as of one instant of Redis (see the module docs).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub sale_id: SaleId,
    /// `difference` is zero, no order is adrift and nothing is oversold.
    pub consistent: bool,
    /// Redis restarted (or the sale was seeded again) since its counts were
    /// last checked against the orders: the nodes refuse its purchases and
    /// releases until a repair finds Redis holds every unit the orders and
    /// the stream hold (the running nodes make it within seconds).
    pub fenced: bool,
    pub stock: u64,
    pub redis_sold: u64,
    /// Units of orders pending_payment (or queued).
    pub db_pending: u64,
    pub db_paid: u64,
    /// Units of reservations whose row does not exist yet.
    pub unconsumed: u64,
    /// Units of orders that left pending_payment and whose release landed
    /// while this ran: Redis still held them at its instant.
    pub releasing: u64,
    /// redis_sold − (db_pending + db_paid + unconsumed + releasing).
    pub difference: i64,
    /// Expired or cancelled orders whose units never came back to Redis.
    pub released_missing: Vec<Reservation>,
    /// Orders the database holds (or Redis released) whose reservation
    /// Redis no longer has.
    pub lost: Vec<Reservation>,
    /// Reservations moved to the dead-letter stream: Redis holds their
    /// units, and no order will ever be made of them.
    pub dead_lettered: Vec<Reservation>,
    /// Reservations a consumer acknowledged although no row of them exists
    /// (e.g. the insert skipped it as a duplicate of another row): Redis
    /// holds their units, and no order will ever be made of them.
    pub acknowledged_without_row: Vec<Reservation>,
    /// Expired or cancelled orders whose reservation Redis lost: it holds
    /// nothing for them, yet it would take a release of them (a node's
    /// repair of missed releases) and give units back twice.
    pub lost_released: Vec<Reservation>,
    /// The part of `difference` that the orders listed do not account for.
    pub unexplained: i64,
    /// Units held (pending, paid, unconsumed) beyond the stock (I1).
    pub oversold: u64,
    /// What `Reconciler::repair` changed before this report was taken.
    pub repaired: Vec<Repair>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Repair {
    /// The release a crashed process did not send.
    Released { order_id: OrderId, quantity: u64 },
    /// A reservation Redis lost, put back.
    Restored { order_id: OrderId, quantity: u64 },
    /// A released order Redis lost, put back as released (no units).
    RestoredReleased { order_id: OrderId },
    /// The sale, lost by Redis, written back from the order store (nothing
    /// sold, fenced); its orders then come back as `Restored`.
    Seeded,
}

/// Compares (and repairs) sales between the stock authority and the order
/// store.
pub struct Reconciler {
    redis: RedisAuthority,
    orders: SqlOrders,
    settle: Duration,
}

impl Reconciler {
    /// How long a release may take to follow its order's expiry or
    /// cancellation before it counts as missing: well past the sweeper's
    /// Redis call time limit.
    pub const DEFAULT_SETTLE: Duration = Duration::from_secs(2);

    pub fn new(redis: RedisAuthority, orders: SqlOrders) -> Self {
        Self {
            redis,
            orders,
            settle: Self::DEFAULT_SETTLE,
        }
    }

    pub fn with_settle(self, settle: Duration) -> Self {
        Self { settle, ..self }
    }

    /// Compares, changing nothing.
    pub async fn check(&self, sale: &SaleId) -> Result<Report, ReconcileError> {
        let keys = SaleKeys::new(sale);
        let fenced = match self.redis.fence(sale).await? {
            Fence::Open(_) => false,
            Fence::Fenced => true,
            Fence::Unknown => return Err(ReconcileError::UnknownSale(sale.clone())),
        };
        // Redis at T, and the reservations up to T.
        let at = self.snapshot(sale, &keys).await?;
        let mut reserved: HashMap<OrderId, (String, Reservation)> = HashMap::new();
        self.scan(sale, &keys.reservations, "-", &at.last_entry, |entry| {
            let reservation = stream::parse_reservation(sale, &entry.map).map_err(|reason| {
                AuthorityError::Protocol(format!("reservation entry {}: {reason}", entry.id))
            })?;
            reserved.insert(
                reservation.order_id.clone(),
                (entry.id.clone(), reservation),
            );
            Ok(())
        })
        .await?;
        // What the consumers had acknowledged before the SELECT: a row is
        // committed before its entry is acknowledged, so the SELECT sees it.
        let acknowledged = self.acknowledged(sale, &keys).await?;
        // The database at T', then what Redis wrote since T (every row read
        // has its entry by now) and what it gave up on.
        let rows = self.orders.orders_of_sale(sale).await?;
        let after = self
            .order_ids(sale, &keys.reservations, &format!("({}", at.last_entry))
            .await?;
        let dead = self.order_ids(sale, &keys.dead_letter, "-").await?;

        // Each order as of T (the module docs' cases).
        let mut tally = Tally::default();
        let mut unreleased = Vec::new();
        for (order, status) in &rows {
            let in_snapshot = reserved.contains_key(&order.order_id);
            if !in_snapshot && after.contains(order.order_id.as_str()) {
                continue; // reserved after the snapshot
            }
            let released = at.released.contains(order.order_id.as_str());
            match status {
                OrderStatus::Paid => tally.paid += order.quantity,
                status if status.holds_stock() => tally.pending += order.quantity,
                _ if in_snapshot && !released => unreleased.push(order.clone()),
                _ if !in_snapshot && !released => tally.lost_released.push(order.clone()),
                _ => {}
            }
            if !in_snapshot && (status.holds_stock() || released) {
                tally.lost.push(order.clone());
            }
        }
        let with_row: HashSet<&OrderId> = rows.iter().map(|(order, _)| &order.order_id).collect();
        for (id, (entry, reservation)) in reserved {
            if with_row.contains(&id) {
                continue;
            }
            if dead.contains(id.as_str()) {
                tally.dead_lettered.push(reservation);
            } else if acknowledged.contains(&entry) {
                tally.acknowledged_without_row.push(reservation);
            } else {
                tally.unconsumed += reservation.quantity;
            }
        }
        let (releasing, missing) = self.settle(sale, &keys, unreleased).await?;
        tally.releasing = releasing;
        tally.released_missing = missing;
        Ok(tally.into_report(sale, &at, fenced))
    }

    /// Repairs what can be repaired safely (see the module docs), then
    /// compares again: the report says what is left, and what was done. A
    /// sale Redis lost is seeded from the order store first; a fenced sale
    /// sells again once Redis holds every unit the orders and the stream
    /// hold.
    pub async fn repair(&self, sale: &SaleId) -> Result<Report, ReconcileError> {
        // The run everything below is checked under: if Redis restarts
        // again meanwhile, the fence stays (verify.lua).
        let run = self.redis.run_id().await?;
        let mut repaired = Vec::new();
        let before = match self.check(sale).await {
            Err(ReconcileError::UnknownSale(_)) => {
                let stored = self
                    .orders
                    .sales()
                    .await?
                    .into_iter()
                    .find(|s| &s.id == sale);
                let stored = stored.ok_or_else(|| ReconcileError::NoSuchSale(sale.clone()))?;
                if self.redis.seed_sale(&stored).await? {
                    repaired.push(Repair::Seeded);
                }
                self.check(sale).await?
            }
            other => other?,
        };
        let missing = expired_orders(&before.released_missing);
        repaired.extend(release_missing_under(&self.redis, sale, &missing, &run).await?);
        for (order, released) in before
            .lost
            .iter()
            .map(|order| (order, false))
            .chain(before.lost_released.iter().map(|order| (order, true)))
        {
            if self.restore(order, released).await? {
                repaired.push(if released {
                    Repair::RestoredReleased {
                        order_id: order.order_id.clone(),
                    }
                } else {
                    Repair::Restored {
                        order_id: order.order_id.clone(),
                        quantity: order.quantity,
                    }
                });
            }
        }
        if repaired.is_empty() && !before.fenced {
            return Ok(before);
        }
        let mut after = self.check(sale).await?;
        if after.fenced && after.sells_nothing_twice() && self.verify(sale, &run).await? {
            // Releases the fence refused, of orders cancelled or expired
            // after the comparison above, are made now.
            after = self.check(sale).await?;
            let refused = expired_orders(&after.released_missing);
            let released = release_missing(&self.redis, sale, &refused).await?;
            if !released.is_empty() {
                repaired.extend(released);
                after = self.check(sale).await?;
            }
        }
        after.repaired = repaired;
        Ok(after)
    }

    /// Lifts the sale's fence if Redis still runs `run`.
    async fn verify(&self, sale: &SaleId, run: &str) -> Result<bool, ReconcileError> {
        let keys = SaleKeys::new(sale);
        let reply = self
            .redis
            .write(sale, "verify", &VERIFY, &[&keys.sale], &[run.to_owned()])
            .await?;
        match reply {
            Value::Int(1) => Ok(true),
            Value::Int(0) => Ok(false),
            Value::Int(-1) => Err(ReconcileError::UnknownSale(sale.clone())),
            other => Err(AuthorityError::Protocol(format!("verify answered {other:?}")).into()),
        }
    }

    /// The ids of the entries of the sale's stream that the consumer group
    /// has acknowledged: delivered (up to its last-delivered id) and no
    /// longer pending.
    async fn acknowledged(
        &self,
        sale: &SaleId,
        keys: &SaleKeys,
    ) -> Result<Acknowledged, AuthorityError> {
        let groups: StreamInfoGroupsReply = match self
            .redis
            .query(
                sale,
                "reconcile",
                redis::cmd("XINFO").arg("GROUPS").arg(&keys.reservations),
            )
            .await
        {
            Ok(groups) => groups,
            // No stream yet: nothing delivered.
            Err(AuthorityError::Protocol(_)) => return Ok(Acknowledged::default()),
            Err(error) => return Err(error),
        };
        let Some(group) = groups.groups.into_iter().find(|g| g.name == ORDERS_GROUP) else {
            return Ok(Acknowledged::default());
        };
        let mut pending = HashSet::new();
        let mut start = "-".to_owned();
        loop {
            let chunk: StreamPendingCountReply = self
                .redis
                .query(
                    sale,
                    "reconcile",
                    redis::cmd("XPENDING")
                        .arg(&keys.reservations)
                        .arg(ORDERS_GROUP)
                        .arg(&start)
                        .arg("+")
                        .arg(CHUNK),
                )
                .await?;
            let full = chunk.ids.len() == CHUNK;
            if let Some(last) = chunk.ids.last() {
                start = format!("({}", last.id);
            }
            pending.extend(chunk.ids.into_iter().map(|p| p.id));
            if !full {
                break;
            }
        }
        Ok(Acknowledged {
            delivered: entry_id(&group.last_delivered_id),
            pending,
        })
    }

    async fn snapshot(&self, sale: &SaleId, keys: &SaleKeys) -> Result<Snapshot, ReconcileError> {
        let reply = self
            .redis
            .read(
                sale,
                "reconcile",
                &SNAPSHOT,
                &[&keys.sale, &keys.reservations, &keys.released],
                &[],
            )
            .await?;
        if matches!(&reply, Value::Array(fields) if fields.is_empty()) {
            return Err(ReconcileError::UnknownSale(sale.clone()));
        }
        let (total, sold, last_entry, released) = redis::from_redis_value(reply)
            .map_err(|e| AuthorityError::Protocol(format!("reconcile snapshot: {e}")))?;
        Ok(Snapshot {
            total,
            sold,
            last_entry,
            released,
        })
    }

    /// Calls `each` on the entries of the stream `key` from `start` to the
    /// end, or to `end` (`(` makes `start` exclusive), a chunk per XRANGE.
    async fn scan(
        &self,
        sale: &SaleId,
        key: &str,
        start: &str,
        end: &str,
        mut each: impl FnMut(&StreamId) -> Result<(), AuthorityError>,
    ) -> Result<(), AuthorityError> {
        let mut start = start.to_owned();
        loop {
            let chunk: StreamRangeReply = self
                .redis
                .query(
                    sale,
                    "reconcile",
                    redis::cmd("XRANGE")
                        .arg(key)
                        .arg(&start)
                        .arg(end)
                        .arg("COUNT")
                        .arg(CHUNK),
                )
                .await?;
            chunk.ids.iter().try_for_each(&mut each)?;
            match chunk.ids.last() {
                Some(last) if chunk.ids.len() == CHUNK => start = format!("({}", last.id),
                _ => return Ok(()),
            }
        }
    }

    /// The `order_id`s of the entries of `key` from `start` on.
    async fn order_ids(
        &self,
        sale: &SaleId,
        key: &str,
        start: &str,
    ) -> Result<HashSet<String>, AuthorityError> {
        let mut ids = HashSet::new();
        self.scan(sale, key, start, "+", |entry| {
            ids.extend(entry.get::<String>("order_id"));
            Ok(())
        })
        .await?;
        Ok(ids)
    }

    /// Splits orders whose units Redis held at the snapshot although they
    /// left pending_payment: the units of those whose release lands within
    /// `settle`, and those whose release never comes.
    async fn settle(
        &self,
        sale: &SaleId,
        keys: &SaleKeys,
        mut waiting: Vec<Reservation>,
    ) -> Result<(u64, Vec<Reservation>), AuthorityError> {
        let deadline = Instant::now() + self.settle;
        let mut landed = 0;
        while !waiting.is_empty() {
            let ids: Vec<&str> = waiting.iter().map(|o| o.order_id.as_str()).collect();
            let mut flags = released_flags(&self.redis, sale, keys, &ids)
                .await?
                .into_iter();
            waiting.retain(|order| {
                let done = flags.next() == Some(true);
                if done {
                    landed += order.quantity;
                }
                !done
            });
            if Instant::now() >= deadline {
                break;
            }
            if !waiting.is_empty() {
                tokio::time::sleep(SETTLE_POLL).await;
            }
        }
        Ok((landed, waiting))
    }

    /// Puts back one reservation Redis lost (as released, with no units,
    /// when `released`); false when it was already.
    async fn restore(&self, order: &Reservation, released: bool) -> Result<bool, ReconcileError> {
        let sale = &order.sale_id;
        let sale_keys = SaleKeys::new(sale);
        let args = [
            order.order_id.to_string(),
            sale.to_string(),
            order.user_id.to_string(),
            order.quantity.to_string(),
            order.idempotency_key.clone().unwrap_or_default(),
            order.created_at.as_millis().to_string(),
            order.expires_at.as_millis().to_string(),
            if released { "1" } else { "0" }.to_owned(),
        ];
        let keys = [
            sale_keys.sale.as_str(),
            &sale_keys.buyers,
            &sale_keys.keys,
            &sale_keys.reservations,
            &sale_keys.restored,
            &sale_keys.released,
        ];
        let reply = self
            .redis
            .write(sale, "restore", &RESTORE, &keys, &args)
            .await?;
        match reply {
            Value::Int(1) => Ok(true),
            Value::Int(0) => Ok(false),
            Value::Int(-1) => Err(ReconcileError::UnknownSale(sale.clone())),
            other => Err(AuthorityError::Protocol(format!("restore answered {other:?}")).into()),
        }
    }
}

/// Releases those of `orders` (of `sale`, cancelled or expired in the
/// database) whose units Redis has not taken back: the repair of
/// `released_missing`, shared by `Reconciler::repair` and the nodes' pass
/// over recent releases. One SMISMEMBER per chunk finds them; releasing is
/// idempotent by the `released` set, so any number of callers may run it
/// at once, and a release that lands meanwhile is not repeated.
pub async fn release_missing(
    redis: &RedisAuthority,
    sale: &SaleId,
    orders: &[ExpiredOrder],
) -> Result<Vec<Repair>, ReconcileError> {
    release_missing_under(redis, sale, orders, "").await
}

/// `release_missing`, by a repair that found these orders' reservations in
/// Redis under `run` (`RedisAuthority::release_under`).
async fn release_missing_under(
    redis: &RedisAuthority,
    sale: &SaleId,
    orders: &[ExpiredOrder],
    run: &str,
) -> Result<Vec<Repair>, ReconcileError> {
    let keys = SaleKeys::new(sale);
    let mut repaired = Vec::new();
    for chunk in orders.chunks(CHUNK) {
        let ids: Vec<&str> = chunk.iter().map(|o| o.order_id.as_str()).collect();
        let flags = released_flags(redis, sale, &keys, &ids).await?;
        for (order, _) in chunk.iter().zip(flags).filter(|(_, released)| !released) {
            let ExpiredOrder { order_id, released } = order;
            match redis
                .release_under(sale, order_id, &released.user_id, released.quantity, run)
                .await?
            {
                ReleaseOutcome::Released => repaired.push(Repair::Released {
                    order_id: order_id.clone(),
                    quantity: released.quantity,
                }),
                ReleaseOutcome::AlreadyReleased => {}
                ReleaseOutcome::UnknownSale => {
                    return Err(ReconcileError::UnknownSale(sale.clone()));
                }
                ReleaseOutcome::Unverified => return Err(ReconcileError::Fenced(sale.clone())),
            }
        }
    }
    Ok(repaired)
}

fn expired_orders(orders: &[Reservation]) -> Vec<ExpiredOrder> {
    orders
        .iter()
        .map(|order| ExpiredOrder {
            order_id: order.order_id.clone(),
            released: ReleasedUnits {
                sale_id: order.sale_id.clone(),
                user_id: order.user_id.clone(),
                quantity: order.quantity,
            },
        })
        .collect()
}

/// Whether each of `ids` is in the sale's `released` set (one SMISMEMBER).
async fn released_flags(
    redis: &RedisAuthority,
    sale: &SaleId,
    keys: &SaleKeys,
    ids: &[&str],
) -> Result<Vec<bool>, AuthorityError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let flags: Vec<bool> = redis
        .query(
            sale,
            "reconcile",
            redis::cmd("SMISMEMBER").arg(&keys.released).arg(ids),
        )
        .await?;
    if flags.len() != ids.len() {
        return Err(AuthorityError::Protocol(format!(
            "SMISMEMBER answered {} flags for {} orders",
            flags.len(),
            ids.len()
        )));
    }
    Ok(flags)
}

/// Redis' side at one instant (`snapshot.lua`).
struct Snapshot {
    total: u64,
    sold: u64,
    last_entry: String,
    released: HashSet<String>,
}

/// Which entries the consumer group has acknowledged (see
/// `Reconciler::acknowledged`).
#[derive(Default)]
struct Acknowledged {
    delivered: Option<(u64, u64)>,
    pending: HashSet<String>,
}

impl Acknowledged {
    fn contains(&self, entry: &str) -> bool {
        match (self.delivered, entry_id(entry)) {
            (Some(delivered), Some(id)) => id <= delivered && !self.pending.contains(entry),
            _ => false,
        }
    }
}

/// A stream entry id `MS-SEQ` in its order.
fn entry_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// The orders placed as of the snapshot, before the sums are drawn.
#[derive(Default)]
struct Tally {
    pending: u64,
    paid: u64,
    unconsumed: u64,
    releasing: u64,
    released_missing: Vec<Reservation>,
    lost: Vec<Reservation>,
    dead_lettered: Vec<Reservation>,
    acknowledged_without_row: Vec<Reservation>,
    lost_released: Vec<Reservation>,
}

impl Tally {
    fn into_report(mut self, sale: &SaleId, at: &Snapshot, fenced: bool) -> Report {
        let units = |orders: &[Reservation]| signed(orders.iter().map(|o| o.quantity).sum());
        let expected = self.pending + self.paid + self.unconsumed + self.releasing;
        let difference = signed(at.sold) - signed(expected);
        let explained = units(&self.released_missing)
            + units(&self.dead_lettered)
            + units(&self.acknowledged_without_row)
            - units(&self.lost);
        let oversold = (self.pending + self.paid + self.unconsumed).saturating_sub(at.total);
        for list in [
            &mut self.released_missing,
            &mut self.lost,
            &mut self.dead_lettered,
            &mut self.acknowledged_without_row,
            &mut self.lost_released,
        ] {
            list.sort_by(|a, b| a.order_id.cmp(&b.order_id));
        }
        Report {
            sale_id: sale.clone(),
            consistent: difference == 0
                && oversold == 0
                && self.released_missing.is_empty()
                && self.lost.is_empty()
                && self.dead_lettered.is_empty()
                && self.acknowledged_without_row.is_empty()
                && self.lost_released.is_empty(),
            fenced,
            stock: at.total,
            redis_sold: at.sold,
            db_pending: self.pending,
            db_paid: self.paid,
            unconsumed: self.unconsumed,
            releasing: self.releasing,
            difference,
            released_missing: self.released_missing,
            lost: self.lost,
            dead_lettered: self.dead_lettered,
            acknowledged_without_row: self.acknowledged_without_row,
            lost_released: self.lost_released,
            unexplained: difference - explained,
            oversold,
            repaired: Vec::new(),
        }
    }
}

impl Report {
    /// Whether selling on from Redis' count can sell no unit twice: Redis
    /// holds at least the units the orders and the stream hold, and knows
    /// every order (a release of one it lost would give units back twice).
    pub fn sells_nothing_twice(&self) -> bool {
        self.difference >= 0 && self.lost.is_empty() && self.lost_released.is_empty()
    }
}

/// Units as a signed count; they are far below `i64::MAX` (sale bounds).
fn signed(units: u64) -> i64 {
    i64::try_from(units).unwrap_or(i64::MAX)
}
