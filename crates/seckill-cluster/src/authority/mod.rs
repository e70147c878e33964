//! Redis as the stock authority: every change of a sale is one Lua script,
//! one round trip, decided by Redis alone (I1, I4, I5 across nodes). Nodes
//! keep no stock of their own beyond their quota (`crate::quota`).
//!
//! Redis being unreachable, slow or loading is `AuthorityError::Unavailable`,
//! never a guess (I7): the engine answers 503 with Retry-After.

mod durability;
mod events;
pub mod keys;
mod primary;

pub use durability::Durability;
pub use events::{StockEvent, StockEvents};

use crate::clock::AuthorityClock;
use crate::queue::{self, QueuedReservation};
pub(crate) use durability::Wait;
use keys::SaleKeys;
use primary::Primary;
use redis::{ErrorKind, FromRedisValue, RedisError, Script, ServerErrorKind, Value};
use seckill_core::{OrderId, Sale, SaleId, Timestamp, UserId};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

/// The scripts that read the fence start with `run_id.lua`'s function.
static CREATE_SALE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("run_id.lua"),
        include_str!("create_sale.lua")
    ))
});
static RESERVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("run_id.lua"),
        include_str!("reserve.lua")
    ))
});
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("run_id.lua"),
        include_str!("release.lua")
    ))
});
static HEARTBEAT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("heartbeat.lua")));

#[derive(Debug, thiserror::Error)]
pub enum AuthorityError {
    /// Redis could not be reached, did not answer in time, is loading, or a
    /// durability wait fell short. Purchases answer 503 (fail closed). A
    /// write may still have been applied (sent before the time limit, or
    /// run before a short wait): a reservation then exists although its
    /// buyer heard 503, and the consumer turns it into an order.
    #[error("the stock authority is unavailable: {0}")]
    Unavailable(String),
    /// A purchase Redis reserved (or answered again for its key) whose
    /// durability wait then fell short: a 503 like `Unavailable`, but the
    /// reservation stands, and a retry with the same Idempotency-Key gets
    /// it back.
    #[error("reserved, but not yet as durable as asked: {0}")]
    Unconfirmed(String),
    /// The settings cannot keep their promise (bad URL, durability that the
    /// server cannot give): refuse to start.
    #[error("stock authority settings: {0}")]
    Config(String),
    /// Redis answered something this code does not expect.
    #[error("unexpected answer from the stock authority: {0}")]
    Protocol(String),
}

impl From<RedisError> for AuthorityError {
    fn from(e: RedisError) -> Self {
        let unreachable = e.is_io_error()
            || e.is_connection_dropped()
            || e.is_unrecoverable_error()
            || e.is_cluster_error()
            || matches!(
                e.kind(),
                ErrorKind::Server(
                    ServerErrorKind::BusyLoading
                        | ServerErrorKind::MasterDown
                        | ServerErrorKind::ReadOnly
                )
            )
            // A primary configured with `min-replicas-to-write` that lost
            // its replicas refuses writes.
            || e.code() == Some("NOREPLICAS");
        if unreachable {
            Self::Unavailable(e.to_string())
        } else {
            Self::Protocol(e.to_string())
        }
    }
}

/// How to reach Redis and how long to wait for it.
#[derive(Debug, Clone)]
pub struct AuthorityConfig {
    /// `redis://HOST:PORT[/DB]`, or
    /// `redis+sentinel://HOST:PORT[,HOST:PORT…]/SERVICE_NAME` (see `primary`).
    pub url: String,
    pub durability: Durability,
    /// The longest a call may take, connecting included; a durability wait
    /// gets half of it. Past it the call is `Unavailable`.
    pub timeout: Duration,
}

impl AuthorityConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            durability: Durability::None,
            timeout: Duration::from_secs(1),
        }
    }
}

/// One purchase as the node hands it to Redis. The order id is made by the
/// node (UUIDv7) so that the stream entry and the 202 carry the same id.
#[derive(Debug, Clone)]
pub struct ReserveRequest<'a> {
    pub sale_id: &'a SaleId,
    pub user_id: &'a UserId,
    pub quantity: u64,
    pub order_id: &'a OrderId,
    pub idempotency_key: Option<&'a str>,
}

/// Redis' answer to a purchase. Every known sale reports `remaining`
/// (total − sold after the call), so nodes learn the stock for free.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReserveOutcome {
    Reserved {
        order_id: OrderId,
        expires_at: Timestamp,
        remaining: u64,
    },
    /// The user's Idempotency-Key was seen: the earlier order, nothing taken.
    Duplicate {
        order_id: OrderId,
        expires_at: Timestamp,
        remaining: u64,
    },
    LimitReached {
        remaining: u64,
    },
    SoldOut {
        remaining: u64,
    },
    NotStarted {
        remaining: u64,
    },
    Ended {
        remaining: u64,
    },
    UnknownSale,
    /// The sale is fenced: Redis restarted since its counts were checked
    /// against the order store (`run_id.lua`). Nothing was taken; the sale
    /// sells again once a repair (`crate::reconcile`) lifts the fence.
    Unverified,
}

impl ReserveOutcome {
    pub fn remaining(&self) -> Option<u64> {
        match self {
            Self::Reserved { remaining, .. }
            | Self::Duplicate { remaining, .. }
            | Self::LimitReached { remaining }
            | Self::SoldOut { remaining }
            | Self::NotStarted { remaining }
            | Self::Ended { remaining } => Some(*remaining),
            Self::UnknownSale | Self::Unverified => None,
        }
    }

    /// Whether the buyer holds a reservation after this answer (made now,
    /// or earlier for the same key).
    pub fn holds_reservation(&self) -> bool {
        matches!(self, Self::Reserved { .. } | Self::Duplicate { .. })
    }

    /// Whether the answer was decided by the stock (taken, or none left),
    /// as opposed to the user, the key or the clock.
    pub fn decided_by_stock(&self) -> bool {
        matches!(self, Self::Reserved { .. } | Self::SoldOut { .. })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseOutcome {
    Released,
    /// This order's units came back earlier: nothing changed.
    AlreadyReleased,
    UnknownSale,
    /// The sale is fenced (see `ReserveOutcome::Unverified`): nothing was
    /// given back; the repair that lifts the fence settles this order.
    Unverified,
}

/// Whether a sale may be sold through Redis right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fence {
    /// Its counts were checked against the order store under this run;
    /// its stock as Redis holds it now.
    Open(StockLevel),
    /// Redis restarted (or this sale was seeded again) since: purchases and
    /// releases are refused until a repair.
    Fenced,
    /// Redis does not have the sale at all (it restarted empty).
    Unknown,
}

/// A sale's stock as Redis holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StockLevel {
    pub total: u64,
    pub sold: u64,
}

impl StockLevel {
    pub fn remaining(&self) -> u64 {
        self.total.saturating_sub(self.sold)
    }
}

/// The handle nodes share (cheap to clone). Its connection reconnects by
/// itself after Redis restarts, and follows a failover when Sentinel names
/// the primary; calls fail as `Unavailable` meanwhile.
#[derive(Clone)]
pub struct RedisAuthority {
    inner: Arc<Inner>,
}

struct Inner {
    primary: Primary,
    wait: Wait,
    timeout: Duration,
    /// Redis' clock, read with every heartbeat.
    clock: Arc<AuthorityClock>,
}

impl RedisAuthority {
    /// Connects, and checks that the server can give `durability` (else
    /// `Config`, so the node refuses to start). A primary with fewer
    /// replicas in sync than `replicas:N` needs, or none named by Sentinel
    /// yet, is `Unavailable`: worth waiting for.
    pub async fn connect(config: AuthorityConfig) -> Result<Self, AuthorityError> {
        let primary = Primary::connect(&config.url, config.timeout).await?;
        let wait = bounded(
            config.timeout,
            durability::wait_for(config.durability, &mut primary.conn()),
        )
        .await?;
        Ok(Self {
            inner: Arc::new(Inner {
                primary,
                wait,
                timeout: config.timeout,
                clock: Arc::default(),
            }),
        })
    }

    /// Writes the sale if Redis does not have it yet. Returns whether it was
    /// written (false: it existed, e.g. created by another node).
    pub async fn create_sale(&self, sale: &Sale) -> Result<bool, AuthorityError> {
        self.write_sale(sale, true).await
    }

    /// Writes a sale Redis lost back from the order store, with nothing
    /// sold and fenced, if no one did yet: the repair then puts its orders
    /// back and lifts the fence (`crate::reconcile`).
    pub(crate) async fn seed_sale(&self, sale: &Sale) -> Result<bool, AuthorityError> {
        self.write_sale(sale, false).await
    }

    async fn write_sale(&self, sale: &Sale, new: bool) -> Result<bool, AuthorityError> {
        let keys = SaleKeys::new(&sale.id);
        let args = [
            sale.stock.to_string(),
            sale.per_user_limit.to_string(),
            sale.starts_at.as_millis().to_string(),
            sale.ends_at.map_or(0, Timestamp::as_millis).to_string(),
            (sale.payment_timeout_secs.saturating_mul(1000)).to_string(),
            if new { "1" } else { "0" }.to_string(),
        ];
        let reply = self
            .write(&sale.id, "create_sale", &CREATE_SALE, &[&keys.sale], &args)
            .await?;
        Ok(int(&reply)? == 1)
    }

    pub async fn reserve(
        &self,
        request: &ReserveRequest<'_>,
    ) -> Result<ReserveOutcome, AuthorityError> {
        let keys = SaleKeys::new(request.sale_id);
        let args = [
            request.sale_id.to_string(),
            request.user_id.to_string(),
            request.quantity.to_string(),
            request.order_id.to_string(),
            request.idempotency_key.unwrap_or_default().to_string(),
        ];
        let (reply, waited) = self
            .eval(
                request.sale_id,
                "reserve",
                &RESERVE,
                &[&keys.sale, &keys.buyers, &keys.keys, &keys.reservations],
                &args,
                self.inner.wait,
            )
            .await?;
        let outcome = parse_reserve(reply)?;
        match waited {
            Err(AuthorityError::Unavailable(short)) if outcome.holds_reservation() => {
                Err(AuthorityError::Unconfirmed(short))
            }
            waited => waited.map(|()| outcome),
        }
    }

    /// Puts an order's units back on sale (expiry, cancellation). Safe to
    /// repeat: only the first call for an order changes anything.
    pub async fn release(
        &self,
        sale_id: &SaleId,
        order_id: &OrderId,
        user_id: &UserId,
        quantity: u64,
    ) -> Result<ReleaseOutcome, AuthorityError> {
        self.release_under(sale_id, order_id, user_id, quantity, "")
            .await
    }

    /// `release`, by a repair that found the order's reservation in Redis
    /// under `run`: allowed while the sale is fenced under that run.
    pub(crate) async fn release_under(
        &self,
        sale_id: &SaleId,
        order_id: &OrderId,
        user_id: &UserId,
        quantity: u64,
        run: &str,
    ) -> Result<ReleaseOutcome, AuthorityError> {
        let keys = SaleKeys::new(sale_id);
        let args = [
            sale_id.to_string(),
            order_id.to_string(),
            user_id.to_string(),
            quantity.to_string(),
            run.to_string(),
        ];
        let reply = self
            .write(
                sale_id,
                "release",
                &RELEASE,
                &[&keys.sale, &keys.buyers, &keys.released],
                &args,
            )
            .await?;
        match int(&reply)? {
            1 => Ok(ReleaseOutcome::Released),
            0 => Ok(ReleaseOutcome::AlreadyReleased),
            -1 => Ok(ReleaseOutcome::UnknownSale),
            -2 => Ok(ReleaseOutcome::Unverified),
            other => Err(AuthorityError::Protocol(format!(
                "release answered {other}"
            ))),
        }
    }

    /// The sale's stock, or `None` for a sale Redis does not know.
    pub async fn state(&self, sale_id: &SaleId) -> Result<Option<StockLevel>, AuthorityError> {
        let keys = SaleKeys::new(sale_id);
        let (total, sold): (Option<u64>, Option<u64>) = self
            .query(
                sale_id,
                "state",
                redis::cmd("HMGET").arg(&keys.sale).arg("total").arg("sold"),
            )
            .await?;
        Ok(total.map(|total| StockLevel {
            total,
            sold: sold.unwrap_or(0),
        }))
    }

    /// The running Redis process's `run_id` (new at every restart).
    pub async fn run_id(&self) -> Result<String, AuthorityError> {
        let mut conn = self.inner.primary.conn();
        let info: String = self
            .bounded(redis::cmd("INFO").arg("server").query_async(&mut conn))
            .await?;
        run_id_of(&info)
    }

    /// Whether `sale_id` may be sold now, and if so its stock: one round
    /// trip reading the run and the sale's checked run and counts together.
    pub async fn fence(&self, sale_id: &SaleId) -> Result<Fence, AuthorityError> {
        let keys = SaleKeys::new(sale_id);
        count_call(sale_id, "fence");
        let mut conn = self.inner.primary.conn();
        type Fields = (Option<u64>, Option<u64>, Option<String>);
        let (info, (total, sold, checked)): (String, Fields) = self
            .bounded(
                redis::pipe()
                    .cmd("INFO")
                    .arg("server")
                    .cmd("HMGET")
                    .arg(&keys.sale)
                    .arg("total")
                    .arg("sold")
                    .arg("run_id")
                    .query_async(&mut conn),
            )
            .await?;
        Ok(match (total, checked) {
            (None, _) => Fence::Unknown,
            (Some(total), Some(checked)) if checked == run_id_of(&info)? => {
                Fence::Open(StockLevel {
                    total,
                    sold: sold.unwrap_or(0),
                })
            }
            (Some(_), _) => Fence::Fenced,
        })
    }

    /// Marks `node_id` alive for `ttl`, drops expired nodes, and returns how
    /// many are alive (this one included). See `crate::nodes`. The answer
    /// carries Redis' time, which [`RedisAuthority::clock`] takes.
    pub async fn heartbeat(&self, node_id: &str, ttl: Duration) -> Result<u64, AuthorityError> {
        let ttl_ms = ttl.as_millis().to_string();
        let mut conn = self.inner.primary.conn();
        let sent = Instant::now();
        let (live, now): (i64, i64) = self
            .bounded(
                HEARTBEAT
                    .key(keys::NODES)
                    .arg(node_id)
                    .arg(ttl_ms)
                    .invoke_async(&mut conn),
            )
            .await?;
        self.inner
            .clock
            .record(sent, Timestamp::from_millis(now), Instant::now());
        Ok(u64::try_from(live).unwrap_or(0))
    }

    /// Redis' clock as this process knows it: the cluster's one clock for
    /// deadlines and sale phases (`crate::clock`).
    pub fn clock(&self) -> &Arc<AuthorityClock> {
        &self.inner.clock
    }

    /// Removes `node_id` from the live nodes at once (a clean shutdown), so
    /// the others need not wait for its heartbeat to expire.
    pub async fn leave(&self, node_id: &str) -> Result<(), AuthorityError> {
        let mut conn = self.inner.primary.conn();
        self.bounded(
            redis::cmd("ZREM")
                .arg(keys::NODES)
                .arg(node_id)
                .exec_async(&mut conn),
        )
        .await
    }

    /// When the last complete pass over recent releases started, if one did
    /// (`crate::reconcile::RecentReleases`).
    pub(crate) async fn releases_checked(&self) -> Result<Option<Timestamp>, AuthorityError> {
        let mut conn = self.inner.primary.conn();
        let at: Option<i64> = self
            .bounded(
                redis::cmd("GET")
                    .arg(keys::RELEASES_CHECKED)
                    .query_async(&mut conn),
            )
            .await?;
        Ok(at.map(Timestamp::from_millis))
    }

    /// Records that every release up to `at` has been looked at.
    pub(crate) async fn set_releases_checked(&self, at: Timestamp) -> Result<(), AuthorityError> {
        let mut conn = self.inner.primary.conn();
        self.bounded(
            redis::cmd("SET")
                .arg(keys::RELEASES_CHECKED)
                .arg(at.as_millis())
                .exec_async(&mut conn),
        )
        .await
    }

    /// The reservation of `order` if it still waits in `sale`'s stream, with
    /// its place in the queue (see `crate::queue`).
    pub async fn queued(
        &self,
        sale: &SaleId,
        order: &OrderId,
    ) -> Result<Option<QueuedReservation>, AuthorityError> {
        let mut conn = self.inner.primary.conn();
        self.bounded(queue::queue_position(&mut conn, sale, order))
            .await
    }

    /// The client of the current primary, for the connections of the
    /// stream consumers (a blocking read needs a connection of its own).
    pub(crate) fn client(&self) -> redis::Client {
        self.inner.primary.client()
    }

    /// Changes each time the primary moves (Sentinel): connections opened
    /// from [`RedisAuthority::client`] are to be opened again.
    pub(crate) fn primary_moves(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.primary.moves()
    }

    /// After a failure that may mean the primary moved: asks Sentinel
    /// where it is now and moves there (nothing for a fixed address).
    pub(crate) async fn follow_primary(&self) {
        self.inner.primary.follow().await;
    }

    /// What each write waits for, and its time limit: the stream consumers
    /// wait the same before an entry becomes an order.
    pub(crate) fn durability_wait(&self) -> (Wait, Duration) {
        (self.inner.wait, self.inner.timeout / 2)
    }

    /// Sold-out and restock messages from every node, on a connection of
    /// their own that is reopened when Redis comes back or the primary moves.
    pub fn events(&self) -> StockEvents {
        StockEvents::start(self.clone(), self.inner.timeout)
    }

    /// `bounded`, and a failure that may mean the primary moved starts a
    /// lookup (in the background: the caller's answer does not wait for it).
    async fn bounded<T, E: Into<AuthorityError>>(
        &self,
        call: impl Future<Output = Result<T, E>>,
    ) -> Result<T, AuthorityError> {
        let result = bounded(self.inner.timeout, call).await;
        self.noted(result)
    }

    fn noted<T>(&self, result: Result<T, AuthorityError>) -> Result<T, AuthorityError> {
        if let Err(AuthorityError::Unavailable(_)) = &result
            && self.inner.primary.may_move()
        {
            let authority = self.clone();
            tokio::spawn(async move { authority.follow_primary().await });
        }
        result
    }

    /// Runs a writing script and, in the same pipeline (one round trip, one
    /// connection), the durability wait; see `durability`.
    pub(crate) async fn write(
        &self,
        sale_id: &SaleId,
        op: &'static str,
        script: &Script,
        keys: &[&str],
        args: &[String],
    ) -> Result<Value, AuthorityError> {
        let (reply, waited) = self
            .eval(sale_id, op, script, keys, args, self.inner.wait)
            .await?;
        waited.map(|()| reply)
    }

    /// Runs a script that only reads: nothing to make durable, no wait.
    pub(crate) async fn read(
        &self,
        sale_id: &SaleId,
        op: &'static str,
        script: &Script,
        keys: &[&str],
        args: &[String],
    ) -> Result<Value, AuthorityError> {
        let (reply, _) = self
            .eval(sale_id, op, script, keys, args, Wait::Nothing)
            .await?;
        Ok(reply)
    }

    /// One plain command of `op` on the shared connection, under the time
    /// limit: for reads of the data model that need no script.
    pub(crate) async fn query<T: FromRedisValue>(
        &self,
        sale_id: &SaleId,
        op: &'static str,
        command: &redis::Cmd,
    ) -> Result<T, AuthorityError> {
        count_call(sale_id, op);
        let mut conn = self.inner.primary.conn();
        self.bounded(command.query_async(&mut conn)).await
    }

    /// EVALSHA, then `wait`'s command in the same pipeline: the script's
    /// reply, and whether the wait was met (the script ran either way). A
    /// script Redis does not know (it restarted, or its scripts were
    /// flushed) is loaded and the pipeline sent again.
    async fn eval(
        &self,
        sale_id: &SaleId,
        op: &'static str,
        script: &Script,
        keys: &[&str],
        args: &[String],
        wait: Wait,
    ) -> Result<(Value, Result<(), AuthorityError>), AuthorityError> {
        count_call(sale_id, op);
        let mut evalsha = redis::cmd("EVALSHA");
        evalsha
            .arg(script.get_hash())
            .arg(keys.len())
            .arg(keys)
            .arg(args);
        let mut pipe = redis::pipe();
        pipe.add_command(evalsha);
        if let Some(wait) = wait.command(self.durability_wait().1) {
            pipe.add_command(wait);
        }
        let mut conn = self.inner.primary.conn();
        let run = async {
            match pipe.query_async::<Vec<Value>>(&mut conn).await {
                Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                    script.load_async(&mut conn).await?;
                    pipe.query_async::<Vec<Value>>(&mut conn).await
                }
                other => other,
            }
        };
        let mut replies = self
            .noted(bounded(self.inner.timeout * 2, run).await)?
            .into_iter();
        let reply = replies
            .next()
            .ok_or_else(|| AuthorityError::Protocol("no reply to the script".into()))?;
        let waited = self.noted(wait.check(replies.next().as_ref()));
        Ok((reply, waited))
    }
}

/// Counts one Redis call of `op` for a sale (`seckill_redis_calls_total`).
fn count_call(sale_id: &SaleId, op: &'static str) {
    metrics::counter!("seckill_redis_calls_total", "sale_id" => sale_id.to_string(), "op" => op)
        .increment(1);
}

/// Runs a Redis call under a hard time limit: past it, `Unavailable`.
async fn bounded<T, E: Into<AuthorityError>>(
    limit: Duration,
    call: impl Future<Output = Result<T, E>>,
) -> Result<T, AuthorityError> {
    match tokio::time::timeout(limit, call).await {
        Ok(result) => result.map_err(Into::into),
        Err(_) => Err(AuthorityError::Unavailable(format!(
            "no answer from Redis within {limit:?}"
        ))),
    }
}

/// The `run_id` line of `INFO server`.
fn run_id_of(info: &str) -> Result<String, AuthorityError> {
    info.lines()
        .find_map(|line| line.strip_prefix("run_id:"))
        .map(|id| id.trim().to_owned())
        .ok_or_else(|| AuthorityError::Protocol("INFO server without a run_id".into()))
}

fn int(value: &Value) -> Result<i64, AuthorityError> {
    match value {
        Value::Int(n) => Ok(*n),
        other => Err(AuthorityError::Protocol(format!(
            "expected an integer, got {other:?}"
        ))),
    }
}

fn text(value: &Value) -> Result<&str, AuthorityError> {
    match value {
        Value::BulkString(bytes) => std::str::from_utf8(bytes)
            .map_err(|_| AuthorityError::Protocol("a reply is not UTF-8".into())),
        Value::SimpleString(s) => Ok(s),
        other => Err(AuthorityError::Protocol(format!(
            "expected a string, got {other:?}"
        ))),
    }
}

/// `{status, remaining[, order_id, expires_at_ms]}` from `reserve.lua`.
fn parse_reserve(reply: Value) -> Result<ReserveOutcome, AuthorityError> {
    let Value::Array(fields) = reply else {
        return Err(AuthorityError::Protocol(format!(
            "reserve answered {reply:?}"
        )));
    };
    let status = fields.first().map(text).transpose()?.unwrap_or_default();
    let remaining = || -> Result<u64, AuthorityError> {
        let n = fields.get(1).map(int).transpose()?.unwrap_or(0);
        Ok(u64::try_from(n).unwrap_or(0))
    };
    let order = || -> Result<(OrderId, Timestamp), AuthorityError> {
        match (fields.get(2), fields.get(3)) {
            (Some(id), Some(expires)) => Ok((
                OrderId::from(text(id)?),
                Timestamp::from_millis(int(expires)?),
            )),
            _ => Err(AuthorityError::Protocol(format!(
                "`{status}` without its order"
            ))),
        }
    };
    Ok(match status {
        "reserved" => {
            let (order_id, expires_at) = order()?;
            ReserveOutcome::Reserved {
                order_id,
                expires_at,
                remaining: remaining()?,
            }
        }
        "duplicate" => {
            let (order_id, expires_at) = order()?;
            ReserveOutcome::Duplicate {
                order_id,
                expires_at,
                remaining: remaining()?,
            }
        }
        "limit_reached" => ReserveOutcome::LimitReached {
            remaining: remaining()?,
        },
        "sold_out" => ReserveOutcome::SoldOut {
            remaining: remaining()?,
        },
        "not_started" => ReserveOutcome::NotStarted {
            remaining: remaining()?,
        },
        "ended" => ReserveOutcome::Ended {
            remaining: remaining()?,
        },
        "unknown_sale" => ReserveOutcome::UnknownSale,
        "unverified" => ReserveOutcome::Unverified,
        other => {
            return Err(AuthorityError::Protocol(format!(
                "reserve answered `{other}`"
            )));
        }
    })
}
