//! The stream consumer: turns one sale's reservation entries into order
//! rows. Each node runs one per sale, all in the consumer group `orders`, so
//! every entry goes to one of them.
//!
//! An entry is acknowledged only after its row has committed, so the
//! stream stays the durable record until then: a consumer may be killed at
//! any point and nothing is lost. The entries a dead consumer held are
//! reclaimed by the others (`XAUTOCLAIM` once idle for `min_idle`) and
//! inserted again, idempotently by order id, so each order exists once.
//!
//! An entry becomes an order only once the durability wait of the writes
//! (`--redis-durability`, e.g. `WAIT N`) confirms it on the server it was
//! read from, sent in the same pipeline as the read: a primary that a
//! failover deposed (cut off from its replicas, or stopped and resumed)
//! may still hold entries its replicas never got; the wait falls short
//! there, the entries stay pending and vanish when the old primary rejoins
//! as a replica, so a unit the new primary never counted is never an order.
//! The consumer's connection follows the primary when it moves (Sentinel).
//!
//! Failures, and what becomes of the entry:
//! - malformed (a field missing or unreadable): straight to the sale's
//!   dead-letter stream, acknowledged;
//! - refused by the database (a constraint, a value out of range): left
//!   pending, retried when reclaimed; once delivered `max_deliveries` times it
//!   goes to the dead-letter stream with the `error`, acknowledged;
//! - database unreachable: the consumer waits and retries the same batch
//!   (backoff capped at `max_backoff`) and keeps the entries pending; an
//!   outage never counts towards the dead-letter limit.
//!
//! An acknowledgement that finds fewer pending entries than it names means
//! Redis lost them after they were read (it restarted meanwhile) while
//! their rows now exist: the consumer fences the sale (`authority/fence.lua`)
//! so that nothing more is sold before a repair puts them back. (Another
//! consumer that took an entry over and stored it first causes the same,
//! and then the repair finds nothing to do.)

use crate::authority::keys::SaleKeys;
use crate::authority::{RedisAuthority, Wait};
use crate::orders::{OrdersError, SqlOrders};
use crate::stream::{self, ORDERS_GROUP};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamId, StreamInfoGroupsReply,
    StreamPendingCountReply, StreamReadOptions, StreamReadReply,
};
use redis::{AsyncCommands, ErrorKind, FromRedisValue, RedisError, RedisResult, Value};
use seckill_core::SaleId;
use seckill_engine::Reservation;
use std::sync::LazyLock;
use std::time::{Duration, Instant};
use tokio::sync::watch;

static FENCE: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("authority/fence.lua")));

/// How often the lag gauges are refreshed (one XINFO GROUPS call).
const GAUGE_EVERY: Duration = Duration::from_secs(1);
/// The first wait after a failure; it doubles up to `max_backoff`.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);

#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// This consumer's name in the group: unique per node (e.g. the node id).
    pub name: String,
    /// Most entries read and inserted at once (one multi-row INSERT).
    pub batch_size: usize,
    /// How long a read waits for new entries.
    pub block: Duration,
    /// How long an entry stays unacknowledged before another consumer
    /// takes it over (its consumer is presumed dead, or its insert failed).
    pub min_idle: Duration,
    /// Deliveries after which an entry the database refuses is dead-lettered.
    pub max_deliveries: usize,
    /// The longest wait between retries while Redis or the database is down.
    pub max_backoff: Duration,
}

impl ConsumerConfig {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            batch_size: 500,
            block: Duration::from_secs(1),
            min_idle: Duration::from_secs(5),
            max_deliveries: 5,
            max_backoff: Duration::from_secs(5),
        }
    }
}

pub struct Consumer {
    sale: SaleId,
    stream: String,
    dead_letter: String,
    /// Its own connection: a blocking read holds it for up to `block`.
    redis: ConnectionManager,
    authority: RedisAuthority,
    /// Changes when the primary moves: `redis` is then opened again.
    moves: watch::Receiver<u64>,
    /// What confirms entries before they become orders, and its limit.
    wait: (Wait, Duration),
    orders: SqlOrders,
    config: ConsumerConfig,
    group_ready: bool,
    /// Where the next `XAUTOCLAIM` scan of the pending entries starts.
    claim_cursor: String,
    /// Entries stored as rows whose acknowledgement has not reached Redis
    /// yet: sent again before anything else.
    unacknowledged: Vec<String>,
    gauges_at: Option<Instant>,
}

impl Consumer {
    /// A consumer of `sale`'s stream on `authority`'s primary. Connects
    /// lazily: Redis may be down now.
    pub fn new(
        authority: &RedisAuthority,
        orders: SqlOrders,
        sale: SaleId,
        config: ConsumerConfig,
    ) -> RedisResult<Self> {
        let mut moves = authority.primary_moves();
        moves.mark_unchanged();
        let wait = authority.durability_wait();
        Ok(Self {
            stream: SaleKeys::new(&sale).reservations,
            dead_letter: SaleKeys::new(&sale).dead_letter,
            sale,
            redis: connect(authority, &config, wait.1)?,
            authority: authority.clone(),
            moves,
            wait,
            orders,
            config,
            group_ready: false,
            claim_cursor: "0-0".into(),
            unacknowledged: Vec::new(),
            gauges_at: None,
        })
    }

    /// Consumes until the task is aborted, which is safe at any point.
    pub async fn run(mut self) {
        let mut backoff = Backoff::new(self.config.max_backoff);
        loop {
            match self.step().await {
                Ok(_) => backoff.reset(),
                Err(error) => {
                    tracing::warn!(sale = %self.sale, %error, "stream consumer: Redis failed, retrying");
                    self.authority.follow_primary().await;
                    tokio::time::sleep(backoff.next()).await;
                }
            }
        }
    }

    /// One round: take over idle entries, read new ones (waiting up to
    /// `block` when there is nothing to take over), store both. Returns how
    /// many entries it handled.
    pub async fn step(&mut self) -> RedisResult<usize> {
        if self.moves.has_changed().unwrap_or(false) {
            self.moves.mark_unchanged();
            self.redis = connect(&self.authority, &self.config, self.wait.1)?;
            self.group_ready = false;
            self.claim_cursor = "0-0".into();
        }
        let result = self.round().await;
        if let Err(error) = &result
            && error.code() == Some("NOGROUP")
        {
            // The stream or its group is gone (deleted, or Redis restarted
            // empty): make them again next round, reading from the start.
            self.group_ready = false;
            self.claim_cursor = "0-0".into();
        }
        result
    }

    async fn round(&mut self) -> RedisResult<usize> {
        self.acknowledge().await?;
        if !self.group_ready {
            self.create_group().await?;
            self.group_ready = true;
        }
        let reclaimed = self.reclaim().await?;
        let taken_over = reclaimed.len();
        self.store(reclaimed).await?;
        let fresh = self.read_new(taken_over == 0).await?;
        let handled = taken_over + fresh.len();
        self.store(fresh).await?;
        self.refresh_gauges().await;
        Ok(handled)
    }

    /// Creates the group (and the stream) if missing, reading from the
    /// start so that entries written before any consumer ran are consumed.
    async fn create_group(&mut self) -> RedisResult<()> {
        let created: RedisResult<()> = self
            .redis
            .xgroup_create_mkstream(&self.stream, ORDERS_GROUP, "0")
            .await;
        match created {
            Err(error) if error.code() == Some("BUSYGROUP") => Ok(()),
            other => other,
        }
    }

    async fn reclaim(&mut self) -> RedisResult<Vec<StreamId>> {
        let min_idle = u64::try_from(self.config.min_idle.as_millis()).unwrap_or(u64::MAX);
        let mut read = redis::pipe();
        read.xautoclaim_options(
            &self.stream,
            ORDERS_GROUP,
            &self.config.name,
            min_idle,
            &self.claim_cursor,
            StreamAutoClaimOptions::default().count(self.config.batch_size),
        );
        let reply: StreamAutoClaimReply = self
            .confirmed(read, |reply: &StreamAutoClaimReply| {
                reply.claimed.is_empty()
            })
            .await?;
        self.claim_cursor = reply.next_stream_id;
        if !reply.claimed.is_empty() {
            metrics::counter!("seckill_consumer_reclaimed_total", "sale" => self.sale.to_string())
                .increment(reply.claimed.len() as u64);
            tracing::info!(sale = %self.sale, entries = reply.claimed.len(), "took over idle stream entries");
        }
        Ok(reply.claimed)
    }

    async fn read_new(&mut self, block: bool) -> RedisResult<Vec<StreamId>> {
        let mut options = StreamReadOptions::default()
            .group(ORDERS_GROUP, &self.config.name)
            .count(self.config.batch_size);
        if block {
            let millis = usize::try_from(self.config.block.as_millis()).unwrap_or(usize::MAX);
            options = options.block(millis.max(1));
        }
        let mut read = redis::pipe();
        read.xread_options(&[&self.stream], &[">"], &options);
        let reply: Option<StreamReadReply> = self
            .confirmed(read, |reply: &Option<StreamReadReply>| {
                reply
                    .iter()
                    .flat_map(|reply| &reply.keys)
                    .all(|key| key.ids.is_empty())
            })
            .await?;
        Ok(reply
            .into_iter()
            .flat_map(|reply| reply.keys)
            .flat_map(|key| key.ids)
            .collect())
    }

    /// Runs `read` (one command) with the durability wait after it in the
    /// same pipeline (a pipeline never spans a reconnect, so the wait is for
    /// this read's connection), and returns what it read only if the wait
    /// confirms it or it read nothing; see the module docs.
    async fn confirmed<T: FromRedisValue>(
        &mut self,
        mut read: redis::Pipeline,
        read_nothing: impl Fn(&T) -> bool,
    ) -> RedisResult<T> {
        let (wait, limit) = self.wait;
        if let Some(command) = wait.command(limit) {
            read.add_command(command);
        }
        let mut replies = read
            .ignore_errors()
            .query_async::<Vec<Value>>(&mut self.redis)
            .await?
            .into_iter();
        // An error reply keeps its code (NOGROUP: the group is made again).
        let first = replies.next().unwrap_or(Value::Nil).extract_error()?;
        let reply: T = redis::from_redis_value(first)?;
        match wait.check(replies.next().as_ref()) {
            Err(error) if !read_nothing(&reply) => Err(RedisError::from((
                ErrorKind::Client,
                "entries not confirmed as durable; they stay pending",
                error.to_string(),
            ))),
            _ => Ok(reply),
        }
    }

    /// Inserts the entries' reservations and acknowledges them; see the
    /// module docs for what happens to entries that fail.
    async fn store(&mut self, entries: Vec<StreamId>) -> RedisResult<()> {
        let mut parsed = Vec::with_capacity(entries.len());
        let mut reservations = Vec::with_capacity(entries.len());
        for entry in entries {
            match stream::parse_reservation(&self.sale, &entry.map) {
                Ok(reservation) => {
                    reservations.push(reservation);
                    parsed.push(entry);
                }
                Err(reason) => self.dead_letter(&entry, &reason).await?,
            }
        }
        if parsed.is_empty() {
            return Ok(());
        }
        if self.insert(&reservations).await.is_ok() {
            return self.ack(&parsed).await;
        }
        // Some entry is refused: find which, one at a time, and store the rest.
        for (entry, reservation) in parsed.iter().zip(&reservations) {
            match self.insert(std::slice::from_ref(reservation)).await {
                Ok(()) => self.ack(std::slice::from_ref(entry)).await?,
                Err(error) => self.refused(entry, &error).await?,
            }
        }
        Ok(())
    }

    /// Inserts, waiting out an unreachable database with capped backoff: the
    /// entries stay pending in the stream meanwhile. Returns the database's
    /// refusal, if any.
    async fn insert(&self, batch: &[Reservation]) -> Result<(), OrdersError> {
        let mut backoff = Backoff::new(self.config.max_backoff);
        loop {
            match self.orders.insert_reservations(batch).await {
                Err(error) if error.is_unreachable() => {
                    metrics::counter!("seckill_consumer_database_retries_total").increment(1);
                    tracing::warn!(sale = %self.sale, %error, entries = batch.len(),
                        "database unreachable; the entries stay pending, retrying");
                    tokio::time::sleep(backoff.next()).await;
                }
                other => return other,
            }
        }
    }

    async fn ack(&mut self, entries: &[StreamId]) -> RedisResult<()> {
        self.unacknowledged
            .extend(entries.iter().map(|entry| entry.id.clone()));
        self.acknowledge().await
    }

    /// Acknowledges the stored entries; if Redis no longer holds some of
    /// them, fences the sale (see the module docs).
    async fn acknowledge(&mut self) -> RedisResult<()> {
        if self.unacknowledged.is_empty() {
            return Ok(());
        }
        let ids = &self.unacknowledged;
        let acknowledged: usize = self.redis.xack(&self.stream, ORDERS_GROUP, ids).await?;
        if acknowledged < ids.len() {
            tracing::warn!(sale = %self.sale, entries = ids.len() - acknowledged,
                "Redis lost entries stored as orders (it restarted): fencing the sale until it is repaired");
            let _: i64 = FENCE
                .key(SaleKeys::new(&self.sale).sale)
                .invoke_async(&mut self.redis)
                .await?;
        }
        metrics::counter!("seckill_consumer_entries_total", "sale" => self.sale.to_string())
            .increment(ids.len() as u64);
        self.unacknowledged.clear();
        Ok(())
    }

    /// The database refused this entry's row: dead-letter it once it has been
    /// delivered often enough, else leave it pending for a later delivery.
    async fn refused(&mut self, entry: &StreamId, error: &OrdersError) -> RedisResult<()> {
        let pending: StreamPendingCountReply = self
            .redis
            .xpending_count(&self.stream, ORDERS_GROUP, &entry.id, &entry.id, 1)
            .await?;
        let Some(deliveries) = pending.ids.first().map(|p| p.times_delivered) else {
            return Ok(()); // another consumer has stored it meanwhile
        };
        if deliveries >= self.config.max_deliveries {
            return self.dead_letter(entry, &error.to_string()).await;
        }
        tracing::debug!(sale = %self.sale, entry = %entry.id, deliveries, %error,
            "the database refused a reservation; it will be retried");
        Ok(())
    }

    /// Moves an entry to the dead-letter stream (its fields plus `error`)
    /// and acknowledges it, in one MULTI: it is never in both, nor in neither.
    async fn dead_letter(&mut self, entry: &StreamId, reason: &str) -> RedisResult<()> {
        let mut fields: Vec<(&str, Vec<u8>)> = entry
            .map
            .iter()
            .filter_map(|(name, value)| {
                redis::from_redis_value_ref::<Vec<u8>>(value)
                    .ok()
                    .map(|value| (name.as_str(), value))
            })
            .collect();
        fields.push(("error", reason.as_bytes().to_vec()));
        let _: (Value, Value) = redis::pipe()
            .atomic()
            .xadd(&self.dead_letter, "*", &fields)
            .xack(&self.stream, ORDERS_GROUP, &[&entry.id])
            .query_async(&mut self.redis)
            .await?;
        metrics::counter!("seckill_dead_letters_total", "sale" => self.sale.to_string())
            .increment(1);
        tracing::warn!(sale = %self.sale, entry = %entry.id, error = reason,
            "reservation moved to the dead-letter stream");
        Ok(())
    }

    /// `seckill_consumer_lag`: entries not yet acknowledged (delivered and
    /// pending, plus not yet delivered); `seckill_consumer_queue_depth`: not
    /// yet delivered. Redis cannot tell the latter after some deletions
    /// from the stream; the gauges then count the pending entries only.
    async fn refresh_gauges(&mut self) {
        if self.gauges_at.is_some_and(|at| at.elapsed() < GAUGE_EVERY) {
            return;
        }
        self.gauges_at = Some(Instant::now());
        let groups: Result<StreamInfoGroupsReply, RedisError> =
            self.redis.xinfo_groups(&self.stream).await;
        let Some(group) = groups
            .ok()
            .and_then(|reply| reply.groups.into_iter().find(|g| g.name == ORDERS_GROUP))
        else {
            return;
        };
        let undelivered = group.lag.unwrap_or(0);
        let sale = self.sale.to_string();
        metrics::gauge!("seckill_consumer_lag", "sale" => sale.clone())
            .set((group.pending + undelivered) as f64);
        metrics::gauge!("seckill_consumer_queue_depth", "sale" => sale).set(undelivered as f64);
    }
}

/// A connection to the current primary whose replies may take a blocking
/// read and a durability wait.
fn connect(
    authority: &RedisAuthority,
    config: &ConsumerConfig,
    wait: Duration,
) -> RedisResult<ConnectionManager> {
    let connection = ConnectionManagerConfig::new()
        .set_response_timeout(Some(config.block + wait + Duration::from_secs(2)));
    ConnectionManager::new_lazy_with_config(authority.client(), connection)
}

/// Waits that double from `FIRST_BACKOFF` up to a cap.
struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    fn new(max: Duration) -> Self {
        Self {
            next: FIRST_BACKOFF.min(max),
            max,
        }
    }

    fn next(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(self.max);
        wait
    }

    fn reset(&mut self) {
        self.next = FIRST_BACKOFF.min(self.max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap_and_resets() {
        let mut backoff = Backoff::new(Duration::from_millis(300));
        let waits: Vec<_> = (0..5).map(|_| backoff.next().as_millis()).collect();
        assert_eq!(waits, [50, 100, 200, 300, 300]);
        backoff.reset();
        assert_eq!(backoff.next().as_millis(), 50);
    }
}
