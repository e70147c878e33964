//! The sales as the read path serves them: beside each of the engine's
//! live sales, its answers made once (the sale with its ETag, the fixed
//! part of its stock body), and the list of sales, rebuilt only when a sale
//! opens. A view is made the first time its sale is asked for, so sales
//! another node created need no hook.

use crate::prebuilt::CachedJson;
use bytes::{Bytes, BytesMut};
use seckill_core::{Sale, SaleId, StockState};
use seckill_engine::{LiveSale, Market};
use std::ops::Deref;
use std::sync::{Arc, LazyLock, RwLock};

/// A sale never changes once created, so caches may keep it a while; the
/// ETag lets them revalidate for free.
const DETAIL_CACHE_CONTROL: &str = "public, max-age=60";
/// The list changes only when a sale is created: caches may keep it a few
/// seconds and revalidate with its ETag.
const LISTING_CACHE_CONTROL: &str = "public, max-age=5";

pub struct SaleView {
    pub live: Arc<LiveSale>,
    /// The sale object as served by `GET /api/v1/sales/{id}`.
    pub detail: CachedJson,
    /// The start of `GET /api/v1/sales/{id}/stock`'s body, up to the live
    /// part ([`Self::stock_json`]).
    stock_json_head: Bytes,
}

impl Deref for SaleView {
    type Target = LiveSale;

    fn deref(&self) -> &LiveSale {
        &self.live
    }
}

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

impl SaleView {
    pub fn new(live: Arc<LiveSale>) -> Self {
        let sale = &live.sale;
        let json = Bytes::from(serde_json::to_vec(sale).expect("a sale serializes"));
        let id = serde_json::to_string(&sale.id).expect("an id serializes");
        let head = format!(r#"{{"sale_id":{id},"stock":{},"remaining":"#, sale.stock);
        Self {
            stock_json_head: Bytes::from(head),
            detail: CachedJson::new(json, DETAIL_CACHE_CONTROL),
            live,
        }
    }

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
}

pub struct SaleViews {
    market: Arc<Market>,
    views: RwLock<foldhash::HashMap<SaleId, Arc<SaleView>>>,
    /// `GET /api/v1/sales`, with the market generation it was made at.
    listing: RwLock<(u64, Arc<CachedJson>)>,
}

impl SaleViews {
    pub fn new(market: Arc<Market>) -> Self {
        let listing = (market.generation(), Arc::new(listing_of(&market)));
        Self {
            market,
            views: RwLock::default(),
            listing: RwLock::new(listing),
        }
    }

    /// The sale's view, made now if this is the first time it is asked for.
    pub fn get(&self, id: &str) -> Option<Arc<SaleView>> {
        if let Some(view) = self
            .views
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(id)
        {
            return Some(Arc::clone(view));
        }
        self.market.get(id).map(|live| self.view_of(live))
    }

    /// The view of a sale the market holds, made now if it is the first
    /// time it is asked for.
    pub fn view_of(&self, live: Arc<LiveSale>) -> Arc<SaleView> {
        let mut views = self
            .views
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let view = views
            .entry(live.sale.id.clone())
            .or_insert_with(|| Arc::new(SaleView::new(live)));
        Arc::clone(view)
    }

    /// Every sale as `GET /api/v1/sales` serves it.
    pub fn listing(&self) -> Arc<CachedJson> {
        let generation = self.market.generation();
        {
            let listing = self
                .listing
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if listing.0 == generation {
                return Arc::clone(&listing.1);
            }
        }
        let fresh = Arc::new(listing_of(&self.market));
        let mut listing = self
            .listing
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if listing.0 < generation {
            *listing = (generation, Arc::clone(&fresh));
        }
        fresh
    }
}

/// Every sale, oldest first.
fn listing_of(market: &Market) -> CachedJson {
    let all = market.all();
    let sales: Vec<&Sale> = all.iter().map(|live| &live.sale).collect();
    let json = Bytes::from(serde_json::to_vec(&sales).expect("sales serialize"));
    CachedJson::new(json, LISTING_CACHE_CONTROL)
}
