//! The nodes' own repair of `released_missing`: an order cancelled or
//! expired in the database whose release never reached Redis (the process
//! died in between, or Redis was away) is released by whichever node looks
//! next, without anyone running `seckill reconcile --repair`.
//!
//! A pass reads only the orders released since the last complete pass
//! began (`released_at`, indexed; `seckill:releases_checked` in Redis, one
//! value for all nodes), less `OVERLAP`, a page at a time, and asks Redis
//! which of them it has not taken back with one SMISMEMBER per page
//! ([`release_missing`]). Its cost follows the releases of the last few
//! seconds, not the size of the sales. With no mark yet (a new cluster, or
//! Redis lost its data) it reads every release once.
//!
//! Like the release a cancel or an expiry makes, it does not look for the
//! order's entry in the stream: it relies on the fence (`run_id.lua`). After
//! a Redis restart every release of the sale is refused until its repair has
//! put back each order Redis lost, released ones as released, so a release
//! never gives back units Redis did not count.

use super::{ReconcileError, Repair, release_missing};
use crate::authority::RedisAuthority;
use crate::orders::{ExpiredOrder, ReleasedOrder, SqlOrders};
use seckill_core::{SaleId, Timestamp};
use std::collections::BTreeMap;
use std::time::Duration;

/// How far before the last pass's start a pass looks again: `released_at`
/// is read (from Redis' clock as the node that changed the order knows it,
/// `crate::clock`) before its transaction committed, so it may lag behind
/// a pass by the commit's time and the nodes' small uncertainty.
const OVERLAP: Duration = Duration::from_secs(10);
/// Orders read per query.
const PAGE: usize = 1000;

/// Finds and releases the units of recently released orders Redis has not
/// taken back. Cheap to clone.
#[derive(Clone)]
pub struct RecentReleases {
    redis: RedisAuthority,
    orders: SqlOrders,
}

impl RecentReleases {
    pub fn new(redis: RedisAuthority, orders: SqlOrders) -> Self {
        Self { redis, orders }
    }

    /// One pass; returns the releases it made. The mark moves on only when
    /// every page was looked at, so a pass cut short by Redis or the
    /// database is made again whole. A sale Redis lost or fenced is left
    /// to its repair (`Reconciler::repair`), which releases what a fence
    /// refused once it lifts it.
    pub async fn repair(&self) -> Result<Vec<Repair>, ReconcileError> {
        let started = self.redis.clock().now();
        let since = self
            .redis
            .releases_checked()
            .await?
            .map_or(Timestamp::from_millis(0), |checked| {
                Timestamp::from_millis(checked.as_millis() - OVERLAP.as_millis() as i64)
            });
        let mut repaired = Vec::new();
        let mut after: Option<ReleasedOrder> = None;
        loop {
            let page = self
                .orders
                .released_since(since, after.as_ref(), PAGE)
                .await?;
            let mut by_sale: BTreeMap<&SaleId, Vec<ExpiredOrder>> = BTreeMap::new();
            for released in &page {
                by_sale
                    .entry(&released.order.released.sale_id)
                    .or_default()
                    .push(released.order.clone());
            }
            for (sale, orders) in by_sale {
                match release_missing(&self.redis, sale, &orders).await {
                    Ok(done) => repaired.extend(done),
                    Err(ReconcileError::UnknownSale(sale) | ReconcileError::Fenced(sale)) => {
                        tracing::debug!(%sale, "releases left to the sale's repair");
                    }
                    Err(error) => return Err(error),
                }
            }
            if page.len() < PAGE {
                break;
            }
            after = page.into_iter().last();
        }
        self.redis.set_releases_checked(started).await?;
        Ok(repaired)
    }
}
