//! Node quotas: a node sends a purchase to Redis only while it holds
//! allowance for it, so most refusals never leave the node.
//!
//! A node's allowance for a sale is `min(r, ⌈r / N⌉ + B)` units, `r` the
//! remaining stock Redis reported, `N` the live nodes, `B` the buffer. It is
//! derived again (one HMGET) when it is spent while Redis last said `r > 0`,
//! when the number of live nodes changes, on a restock message and when the
//! event subscription reopens — so a dead node's share is sold by the others
//! and the sale sells out fully (I3). Once Redis answers sold out, or the
//! sold-out message arrives, the node answers sold out itself until a
//! restock.
//!
//! A purchase with an Idempotency-Key is sent even when the node would
//! answer sold out: only Redis knows the key's earlier answer. Those calls
//! hold no allowance and are bounded per user by the rate limits; apart
//! from them, Redis is asked at most `S + R + Σ h` times per sale (`S` the
//! stock, `R` the units released back on sale, `h` below):
//! - every call holds ≥ 1 unit of allowance while in flight; a call that
//!   Redis answers by the user, the key or the clock (limit, duplicate, not
//!   started, ended) gives its units back, so those are bounded per user by
//!   the rate limits, not here. The rest are `reserved` (≤ S + R) or
//!   `sold_out`;
//! - a derivation sets allowance = grant − units in flight, so allowance +
//!   in flight never exceeds the largest grant, ⌈r/N⌉ + B ≤ ⌈S/N⌉ + B;
//! - `sold_out` answers come from what a node held when the stock ran out:
//!   its allowance and calls in flight, plus at most one derivation that read
//!   Redis just before and landed after (one landing after the node heard
//!   "sold out" is dropped). So `h ≤ 2 (⌈r/N⌉ + B)` per node and sell-out,
//!   with `r` the remaining at the node's last derivation: small for a node
//!   that was selling (it derived again as its share ran out), at most
//!   `⌈S/N⌉ + B` for one that sat on its first share.

use crate::authority::{
    AuthorityError, RedisAuthority, ReserveOutcome, ReserveRequest, StockEvent, StockEvents,
};
use crate::nodes::LiveNodes;
use seckill_core::SaleId;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};

/// One sale's quota on this node.
pub struct Quota {
    sale_id: SaleId,
    buffer: u64,
    live: Arc<LiveNodes>,
    /// Units this node may still send to Redis.
    allowance: AtomicU64,
    /// Units sent to Redis and not yet answered.
    in_flight: AtomicU64,
    /// What Redis last said remains.
    remaining: AtomicU64,
    /// Redis said sold out: answer locally.
    sold_out: AtomicBool,
    /// Derive again before the next call (new quota, restock, resync).
    stale: AtomicBool,
    /// The live-node count the allowance was derived for.
    derived_for: AtomicU64,
    /// Bumped by every "sold out" learned: a derivation that read Redis
    /// before it is older news and is dropped.
    epoch: AtomicU64,
    derive: tokio::sync::Mutex<()>,
    stats: Counters,
}

#[derive(Default)]
struct Counters {
    reserve_calls: AtomicU64,
    sold_out_answers: AtomicU64,
    local_refusals: AtomicU64,
    derivations: AtomicU64,
    granted: AtomicU64,
}

/// What a quota has done so far (for metrics, logs and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaStats {
    /// Purchases sent to Redis.
    pub reserve_calls: u64,
    /// Of those, answered sold out: the quota's waste.
    pub sold_out_answers: u64,
    /// Purchases answered sold out without asking Redis.
    pub local_refusals: u64,
    /// Allowance derivations (one HMGET each).
    pub derivations: u64,
    /// Units of allowance granted, all derivations together.
    pub granted: u64,
}

/// A unit claim on the allowance, held while the call is in flight.
struct Claim {
    units: u64,
}

enum Admit {
    Send(Claim),
    Derive,
    SoldOut,
}

impl Quota {
    pub fn new(sale_id: SaleId, buffer: u64, live: Arc<LiveNodes>) -> Self {
        Self {
            sale_id,
            buffer,
            live,
            allowance: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            remaining: AtomicU64::new(0),
            sold_out: AtomicBool::new(false),
            stale: AtomicBool::new(true),
            derived_for: AtomicU64::new(0),
            epoch: AtomicU64::new(0),
            derive: tokio::sync::Mutex::new(()),
            stats: Counters::default(),
        }
    }

    pub fn sale_id(&self) -> &SaleId {
        &self.sale_id
    }

    /// Whether this node currently answers the sale sold out by itself.
    pub fn is_sold_out(&self) -> bool {
        self.sold_out.load(Relaxed) && !self.stale.load(Relaxed)
    }

    /// A purchase through the quota: answered locally when the node knows
    /// the stock is gone, else by Redis.
    pub async fn reserve(
        &self,
        authority: &RedisAuthority,
        request: &ReserveRequest<'_>,
    ) -> Result<ReserveOutcome, AuthorityError> {
        let admitted = match self.admit(request.quantity) {
            Admit::Derive => {
                if !self.derive(authority).await? {
                    return Ok(ReserveOutcome::UnknownSale);
                }
                self.admit(request.quantity)
            }
            admitted => admitted,
        };
        let claim = match admitted {
            Admit::Send(claim) => claim,
            // Only Redis knows the key's earlier answer, which wins over
            // "sold out" (I5): sent, holding no allowance.
            _ if request.idempotency_key.is_some() => Claim { units: 0 },
            Admit::SoldOut | Admit::Derive => return Ok(self.refuse_locally()),
        };
        self.stats.reserve_calls.fetch_add(1, Relaxed);
        let result = authority.reserve(request).await;
        self.settle(claim, &result);
        result
    }

    /// The sold-out message for this sale arrived. Messages come in Redis'
    /// order, so it overrides an earlier restock or resync; a reply cannot
    /// (it may have been sent before a restock).
    pub fn on_sold_out(&self) {
        self.latch_sold_out();
        self.stale.store(false, Relaxed);
    }

    /// Units came back (restock message) or messages may have been missed
    /// (resync): derive again before the next call.
    pub fn on_restock(&self) {
        self.stale.store(true, Relaxed);
    }

    pub fn stats(&self) -> QuotaStats {
        let s = &self.stats;
        QuotaStats {
            reserve_calls: s.reserve_calls.load(Relaxed),
            sold_out_answers: s.sold_out_answers.load(Relaxed),
            local_refusals: s.local_refusals.load(Relaxed),
            derivations: s.derivations.load(Relaxed),
            granted: s.granted.load(Relaxed),
        }
    }

    fn admit(&self, quantity: u64) -> Admit {
        if self.needs_derivation() {
            return Admit::Derive;
        }
        if self.sold_out.load(Relaxed) {
            return Admit::SoldOut;
        }
        let taken = self.allowance.fetch_update(Relaxed, Relaxed, |left| {
            (left > 0).then(|| left - quantity.min(left))
        });
        match taken {
            // A call holds at most what is left; Redis decides the rest.
            Ok(left) => {
                let units = quantity.min(left);
                self.in_flight.fetch_add(units, Relaxed);
                Admit::Send(Claim { units })
            }
            Err(_) if self.remaining.load(Relaxed) > 0 => Admit::Derive,
            Err(_) => Admit::SoldOut,
        }
    }

    fn needs_derivation(&self) -> bool {
        self.stale.load(Relaxed)
            || self.derived_for.load(Relaxed) != self.live.count()
            || (self.allowance.load(Relaxed) == 0
                && self.remaining.load(Relaxed) > 0
                && !self.sold_out.load(Relaxed))
    }

    fn refuse_locally(&self) -> ReserveOutcome {
        self.stats.local_refusals.fetch_add(1, Relaxed);
        ReserveOutcome::SoldOut {
            remaining: if self.sold_out.load(Relaxed) {
                0
            } else {
                self.remaining.load(Relaxed)
            },
        }
    }

    /// Reads the stock and grants this node its share. One at a time; the
    /// others wait and find it done. Returns false for a sale Redis does
    /// not know.
    async fn derive(&self, authority: &RedisAuthority) -> Result<bool, AuthorityError> {
        let _one_at_a_time = self.derive.lock().await;
        if !self.needs_derivation() {
            return Ok(true);
        }
        let epoch = self.epoch.load(Relaxed);
        let was_stale = self.stale.swap(false, Relaxed);
        let nodes = self.live.count();
        let level = match authority.state(&self.sale_id).await {
            Ok(Some(level)) => level,
            Ok(None) => {
                self.stale.store(was_stale, Relaxed);
                return Ok(false);
            }
            Err(e) => {
                self.stale.store(was_stale, Relaxed);
                return Err(e);
            }
        };
        self.stats.derivations.fetch_add(1, Relaxed);
        if self.epoch.load(Relaxed) != epoch {
            return Ok(true);
        }
        let remaining = level.remaining();
        let grant = remaining.min(remaining.div_ceil(nodes) + self.buffer);
        self.stats.granted.fetch_add(grant, Relaxed);
        self.remaining.store(remaining, Relaxed);
        self.derived_for.store(nodes, Relaxed);
        self.allowance
            .store(grant.saturating_sub(self.in_flight.load(Relaxed)), Relaxed);
        if remaining == 0 {
            self.latch_sold_out();
        } else {
            self.sold_out.store(false, Relaxed);
        }
        Ok(true)
    }

    /// Learns from Redis' answer; units of a call not decided by the stock
    /// (or that failed) come back to the allowance.
    fn settle(&self, claim: Claim, result: &Result<ReserveOutcome, AuthorityError>) {
        self.in_flight.fetch_sub(claim.units, Relaxed);
        let outcome = match result {
            Ok(outcome) => outcome,
            // Reserved all the same (only the durability wait fell short):
            // the units are spent, as with `Reserved`.
            Err(AuthorityError::Unconfirmed(_)) => return,
            Err(_) => {
                self.allowance.fetch_add(claim.units, Relaxed);
                return;
            }
        };
        if !outcome.decided_by_stock() {
            self.allowance.fetch_add(claim.units, Relaxed);
        }
        if matches!(outcome, ReserveOutcome::SoldOut { .. }) {
            self.stats.sold_out_answers.fetch_add(1, Relaxed);
        }
        if let Some(remaining) = outcome.remaining() {
            self.remaining.store(remaining, Relaxed);
            if remaining == 0 {
                self.latch_sold_out();
            }
        }
    }

    fn latch_sold_out(&self) {
        self.epoch.fetch_add(1, Relaxed);
        self.sold_out.store(true, Relaxed);
        self.remaining.store(0, Relaxed);
        self.allowance.store(0, Relaxed);
    }
}

/// The quotas of every sale on this node, fed by the stock events.
pub struct Quotas {
    buffer: u64,
    live: Arc<LiveNodes>,
    sales: RwLock<HashMap<SaleId, Arc<Quota>>>,
}

impl Quotas {
    pub fn new(buffer: u64, live: Arc<LiveNodes>) -> Arc<Self> {
        Arc::new(Self {
            buffer,
            live,
            sales: RwLock::default(),
        })
    }

    /// The sale's quota, made on first use.
    pub fn get(&self, sale_id: &SaleId) -> Arc<Quota> {
        if let Some(quota) = self.read().get(sale_id) {
            return quota.clone();
        }
        let mut sales = self
            .sales
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        sales
            .entry(sale_id.clone())
            .or_insert_with(|| {
                Arc::new(Quota::new(sale_id.clone(), self.buffer, self.live.clone()))
            })
            .clone()
    }

    pub fn apply(&self, event: &StockEvent) {
        let sales = self.read();
        match event {
            StockEvent::SoldOut(sale) => sales.get(sale).into_iter().for_each(|q| q.on_sold_out()),
            StockEvent::Restock(sale) => sales.get(sale).into_iter().for_each(|q| q.on_restock()),
            StockEvent::Resync => sales.values().for_each(|q| q.on_restock()),
        }
    }

    /// Applies events as they come, until they stop.
    pub fn follow(self: &Arc<Self>, mut events: StockEvents) -> tokio::task::JoinHandle<()> {
        let quotas = self.clone();
        tokio::spawn(async move {
            while let Some(event) = events.next().await {
                quotas.apply(&event);
            }
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<SaleId, Arc<Quota>>> {
        self.sales
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
