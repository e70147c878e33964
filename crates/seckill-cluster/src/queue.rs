//! Where a reservation stands in its sale's stream before its order row
//! exists: what a node answers (`queued`, with `queue_position`) until the
//! consumers have inserted it.
//!
//! The position is the number of entries not yet delivered to the group
//! that come before it (0 = next). Redis keeps no rank for stream entries,
//! so it is counted: one `XINFO GROUPS` for the group's last-delivered id,
//! then `XRANGE` from there in chunks of 1,000 until the order's entry. The
//! cost grows with the position — about one round trip per 1,000 entries
//! ahead — which is small while the consumers keep up (the usual case: the
//! backlog is a batch or two) and is paid only by orders not yet in the
//! database. An entry already delivered but not yet acknowledged (its row is
//! being written) is found in the pending range and is at position 0.

use crate::authority::keys::SaleKeys;
use crate::stream::{self, ORDERS_GROUP};
use redis::AsyncCommands;
use redis::aio::ConnectionLike;
use redis::streams::{StreamInfoGroupsReply, StreamPendingReply, StreamRangeReply};
use seckill_core::{OrderId, SaleId};
use seckill_engine::Reservation;

/// Entries read per `XRANGE` while counting.
const SCAN_CHUNK: usize = 1000;

/// A reservation still in the stream, and how many entries are ahead of it.
#[derive(Debug, Clone)]
pub struct QueuedReservation {
    pub reservation: Reservation,
    pub position: u64,
}

/// The reservation of `order` in `sale`'s stream if it is still waiting
/// for the consumers, with its position. `None` when it is not waiting: its
/// row exists (or is about to: ask the database again), or no such order.
pub async fn queue_position<C: ConnectionLike + Send + Sync>(
    redis: &mut C,
    sale: &SaleId,
    order: &OrderId,
) -> redis::RedisResult<Option<QueuedReservation>> {
    let key = SaleKeys::new(sale).reservations;
    let exists: bool = redis.exists(&key).await?;
    if !exists {
        return Ok(None);
    }
    let groups: StreamInfoGroupsReply = redis.xinfo_groups(&key).await?;
    // No group yet: no consumer has run, every entry is waiting.
    let (last_delivered, pending) = groups
        .groups
        .into_iter()
        .find(|group| group.name == ORDERS_GROUP)
        .map_or(("0-0".to_string(), 0), |group| {
            (group.last_delivered_id, group.pending)
        });
    let undelivered = find(
        redis,
        &key,
        sale,
        order,
        format!("({last_delivered}"),
        "+".into(),
    );
    if let Some((reservation, position)) = undelivered.await? {
        return Ok(Some(QueuedReservation {
            reservation,
            position,
        }));
    }
    if pending == 0 {
        return Ok(None);
    }
    let StreamPendingReply::Data(range) = redis.xpending(&key, ORDERS_GROUP).await? else {
        return Ok(None);
    };
    let delivered = find(redis, &key, sale, order, range.start_id, range.end_id).await?;
    Ok(delivered.map(|(reservation, _)| QueuedReservation {
        reservation,
        position: 0,
    }))
}

/// Scans `start..=end` (`(` makes a bound exclusive) for the entry of
/// `order`: its reservation and how many entries came before it.
async fn find<C: ConnectionLike + Send + Sync>(
    redis: &mut C,
    key: &str,
    sale: &SaleId,
    order: &OrderId,
    mut start: String,
    end: String,
) -> redis::RedisResult<Option<(Reservation, u64)>> {
    let mut before = 0u64;
    loop {
        let chunk: StreamRangeReply = redis.xrange_count(key, &start, &end, SCAN_CHUNK).await?;
        for entry in &chunk.ids {
            if entry.get::<String>("order_id").as_deref() == Some(order.as_str()) {
                // A malformed entry is on its way to the dead-letter stream.
                return Ok(stream::parse_reservation(sale, &entry.map)
                    .ok()
                    .map(|reservation| (reservation, before)));
            }
            before += 1;
        }
        match chunk.ids.last() {
            Some(last) if chunk.ids.len() == SCAN_CHUNK => start = format!("({}", last.id),
            _ => return Ok(None),
        }
    }
}
