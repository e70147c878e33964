//! One sale in memory: its immutable description (with its answer made
//! once for the read path), its stock counter and its buyers.

use super::purchase::{Receipt, SharedOutcome};
use crate::prebuilt::CachedJson;
use bytes::{Bytes, BytesMut};
use dashmap::DashMap;
use futures::FutureExt;
use seckill_core::{Sale, Stock, StockState, UserId};
use seckill_engine::{Reservation, UnitsByStatus};
use std::collections::HashMap;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

pub struct LiveSale {
    pub sale: Sale,
    pub stock: Stock,
    /// The sale object as served by `GET /api/v1/sales/{id}`.
    pub detail: CachedJson,
    /// The start of `GET /api/v1/sales/{id}/stock`'s body, up to the live
    /// part ([`Self::stock_json`]).
    stock_json_head: Bytes,
    /// Users who hold units or have an idempotent answer on this sale.
    /// Sharded locks, held only for in-memory bookkeeping, never across I/O.
    pub(super) buyers: DashMap<UserId, Buyer>,
    /// Units that left the sale for good or were paid, counted in memory
    /// for metrics and the dashboard (loaded from the store at start).
    settled: Settled,
    /// Cluster mode: Redis lost or fenced this sale (it restarted) and its
    /// repair has not finished: purchases and stock reads answer 503.
    unavailable: AtomicBool,
}

#[derive(Default)]
struct Settled {
    paid: AtomicU64,
    expired: AtomicU64,
    cancelled: AtomicU64,
}

/// A sale's units by where they are, from memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SaleUnits {
    pub stock: u64,
    pub remaining: u64,
    /// Held by orders not paid yet (queued or pending payment, or being
    /// committed right now).
    pub reserved: u64,
    pub paid: u64,
    pub expired: u64,
    pub cancelled: u64,
}

/// What one user has on one sale.
#[derive(Default)]
pub(super) struct Buyer {
    /// Units in orders that hold stock; bounded by the per-user limit (I4).
    pub held: u64,
    /// The answer given to each Idempotency-Key (I5).
    pub answers: HashMap<String, SharedOutcome>,
}

impl Buyer {
    fn is_empty(&self) -> bool {
        self.held == 0 && self.answers.is_empty()
    }
}

/// A sale never changes once created, so caches may keep it a while; the
/// ETag lets them revalidate for free.
const DETAIL_CACHE_CONTROL: &str = "public, max-age=60";

/// The end of the stock body after the count: `,"state":"…"}`, serialized
/// once per state.
fn state_tail(state: StockState) -> &'static str {
    static TAILS: LazyLock<Vec<(StockState, String)>> = LazyLock::new(|| {
        use StockState::*;
        [Upcoming, Open, SoldOut, Ended]
            .into_iter()
            .map(|state| {
                let json = serde_json::to_string(&state).expect("a state serializes");
                (state, format!(r#","state":{json}}}"#))
            })
            .collect()
    });
    let tail = TAILS.iter().find(|(each, _)| *each == state);
    &tail.expect("every state has a tail").1
}

impl LiveSale {
    /// `GET /api/v1/sales/{id}/stock`'s body (`routes::sales::StockView`):
    /// the parts that never change serialized once, the live count written
    /// between them with `itoa`: the crowd polls it, so it does no serde.
    pub fn stock_json(&self, remaining: u64, state: StockState) -> Bytes {
        let tail = state_tail(state);
        let mut json = BytesMut::with_capacity(self.stock_json_head.len() + 20 + tail.len());
        json.extend_from_slice(&self.stock_json_head);
        json.extend_from_slice(itoa::Buffer::new().format(remaining).as_bytes());
        json.extend_from_slice(tail.as_bytes());
        json.freeze()
    }

    pub fn new(sale: Sale) -> Self {
        let json = Bytes::from(serde_json::to_vec(&sale).expect("a sale serializes"));
        let id = serde_json::to_string(&sale.id).expect("an id serializes");
        let head = format!(r#"{{"sale_id":{id},"stock":{},"remaining":"#, sale.stock);
        Self {
            stock_json_head: Bytes::from(head),
            stock: Stock::new(sale.stock),
            sale,
            detail: CachedJson::new(json, DETAIL_CACHE_CONTROL),
            buyers: DashMap::new(),
            settled: Settled::default(),
            unavailable: AtomicBool::new(false),
        }
    }

    /// Whether the sale is out of service until its repair (cluster mode).
    pub fn is_unavailable(&self) -> bool {
        self.unavailable.load(Ordering::Acquire)
    }

    pub fn set_unavailable(&self, unavailable: bool) {
        self.unavailable.store(unavailable, Ordering::Release);
    }

    pub fn units(&self) -> SaleUnits {
        let remaining = self.stock.remaining();
        let paid = self.settled.paid.load(Ordering::Relaxed);
        SaleUnits {
            stock: self.sale.stock,
            remaining,
            reserved: (self.sale.stock - remaining).saturating_sub(paid),
            paid,
            expired: self.settled.expired.load(Ordering::Relaxed),
            cancelled: self.settled.cancelled.load(Ordering::Relaxed),
        }
    }

    /// Sets the paid, expired and cancelled counts from the store's.
    pub(super) fn restore_settled(&self, units: &UnitsByStatus) {
        self.settled.paid.store(units.paid, Ordering::Relaxed);
        self.settled.expired.store(units.expired, Ordering::Relaxed);
        self.settled
            .cancelled
            .store(units.cancelled, Ordering::Relaxed);
    }

    pub fn paid(&self, quantity: u64) {
        self.settled.paid.fetch_add(quantity, Ordering::Relaxed);
    }

    pub(super) fn expired(&self, user: &UserId, quantity: u64) {
        self.release(user, quantity);
        self.settled.expired.fetch_add(quantity, Ordering::Relaxed);
    }

    pub(super) fn cancelled(&self, user: &UserId, quantity: u64) {
        self.release(user, quantity);
        self.settled
            .cancelled
            .fetch_add(quantity, Ordering::Relaxed);
    }

    /// Counts a stored order back in at start: its units are held if its
    /// status holds stock, and its Idempotency-Key keeps its answer.
    pub(super) fn restore_order(&self, order: &Reservation, holds_stock: bool) {
        let mut buyer = self.buyers.entry(order.user_id.clone()).or_default();
        if holds_stock {
            if !self.stock.try_take(order.quantity) {
                tracing::error!(order = %order.order_id, "stored orders exceed the stock");
            }
            buyer.held += order.quantity;
        }
        if let Some(key) = &order.idempotency_key {
            let receipt = Receipt::of(order);
            buyer.answers.insert(
                key.clone(),
                futures::future::ready(Ok(receipt)).boxed().shared(),
            );
        }
    }

    /// Units leave `user`'s holding and go back on sale.
    pub(super) fn release(&self, user: &UserId, quantity: u64) {
        if let Some(mut buyer) = self.buyers.get_mut(user) {
            buyer.held = buyer.held.saturating_sub(quantity);
        }
        self.forget_if_empty(user);
        self.stock.give_back(quantity);
    }

    /// Drops an Idempotency-Key whose purchase did not commit, so that a
    /// retry tries again.
    pub(super) fn forget_answer(&self, user: &UserId, key: &str) {
        if let Some(mut buyer) = self.buyers.get_mut(user) {
            buyer.answers.remove(key);
        }
        self.forget_if_empty(user);
    }

    /// Keeps memory to the users who hold something: refused buyers leave no trace.
    pub(super) fn forget_if_empty(&self, user: &UserId) {
        self.buyers.remove_if(user, |_, buyer| buyer.is_empty());
    }
}
