//! Which nodes are alive: each node heartbeats into `seckill:nodes` (a
//! sorted set, node id → expiry by Redis' clock) and reads back how many
//! are alive. Quotas divide the remaining stock by that number, so when a
//! node dies its share comes back to the others once its heartbeat expires.

use crate::authority::RedisAuthority;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::task::JoinHandle;

/// How often a node heartbeats.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
/// How long a heartbeat keeps a node alive: three missed beats.
pub const HEARTBEAT_TTL: Duration = Duration::from_secs(3);

/// This node's view of the number of live nodes, shared with its quotas.
#[derive(Debug, Default)]
pub struct LiveNodes {
    count: AtomicU64,
}

impl LiveNodes {
    /// Live nodes, at least 1 (this one) even before the first heartbeat.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed).max(1)
    }

    fn set(&self, count: u64) {
        self.count.store(count, Ordering::Relaxed);
    }
}

/// A node's heartbeat task. Dropping it stops the beats (the node then
/// counts as dead once its TTL passes); `leave` also removes it at once.
pub struct Heartbeat {
    authority: RedisAuthority,
    node_id: String,
    live: Arc<LiveNodes>,
    task: JoinHandle<()>,
}

impl Heartbeat {
    /// Beats once (so the count is right from the start), then every
    /// `every` in a task. A failed beat keeps the last count: while Redis
    /// is away no reservation can be made anyway.
    pub async fn start(
        authority: RedisAuthority,
        node_id: impl Into<String>,
        every: Duration,
        ttl: Duration,
    ) -> Result<Self, crate::authority::AuthorityError> {
        let node_id = node_id.into();
        let live = Arc::new(LiveNodes::default());
        live.set(authority.heartbeat(&node_id, ttl).await?);
        let task = tokio::spawn({
            let (authority, node_id, live) = (authority.clone(), node_id.clone(), live.clone());
            async move {
                let mut ticks = tokio::time::interval(every);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                ticks.tick().await;
                loop {
                    ticks.tick().await;
                    match authority.heartbeat(&node_id, ttl).await {
                        Ok(count) => live.set(count),
                        Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
                    }
                }
            }
        });
        Ok(Self {
            authority,
            node_id,
            live,
            task,
        })
    }

    pub fn live_nodes(&self) -> Arc<LiveNodes> {
        self.live.clone()
    }

    /// Stops beating and leaves the live set (a clean shutdown).
    pub async fn leave(self) -> Result<(), crate::authority::AuthorityError> {
        self.task.abort();
        self.authority.leave(&self.node_id).await
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.task.abort();
    }
}
