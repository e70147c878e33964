//! The live dashboard's data. Once a second a sampler takes a snapshot of
//! this node (requests per second by outcome, latency, degrade level) and of
//! every sale (units by state, from memory), serializes it once, and hands
//! it to every open `/dashboard/events` stream. The last minutes of node
//! samples are kept so that a page opened mid-sale draws its charts at once.
//!
//! A snapshot lists `nodes` so that a cluster can show all of them; one
//! engine shows itself.

use crate::App;
use crate::degrade::Level;
use crate::market::{Market, SaleUnits};
use crate::pulse::{Counts, Latency};
use seckill_core::{StockState, Timestamp};
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);
/// Samples kept for a page that opens mid-sale: five minutes.
const HISTORY_LEN: usize = 300;

/// What one node did in the last interval.
#[derive(Clone, Debug, Serialize)]
pub struct NodeSample {
    pub id: Arc<str>,
    /// Requests per second, by outcome.
    pub rps: Counts,
    pub latency_ms: Latency,
    pub requests_total: u64,
    pub in_flight: usize,
    pub degrade: Level,
}

/// One point of the charts: when, and what each node did.
#[derive(Clone, Debug, Serialize)]
pub struct Point {
    /// Unix milliseconds.
    pub at: u64,
    pub nodes: Vec<NodeSample>,
}

#[derive(Debug, Serialize)]
struct SaleView<'a> {
    id: &'a str,
    name: &'a str,
    state: StockState,
    #[serde(flatten)]
    units: SaleUnits,
}

/// Units by state over every sale.
#[derive(Debug, Default, Serialize)]
struct Orders {
    reserved: u64,
    paid: u64,
    expired: u64,
    cancelled: u64,
}

#[derive(Serialize)]
struct Snapshot<'a> {
    #[serde(flatten)]
    point: &'a Point,
    sales: Vec<SaleView<'a>>,
    orders: Orders,
}

/// The latest snapshot (JSON) and the recent points.
pub struct Feed {
    latest: watch::Sender<Latest>,
    history: Mutex<VecDeque<Point>>,
}

/// What the feed holds now.
#[derive(Clone)]
enum Latest {
    /// No sample taken yet: the first comes a second after the start.
    Starting,
    Snapshot(Arc<str>),
    /// The engine drains, which ends every stream.
    Closed,
}

/// One stream's view of the feed.
pub struct Snapshots(watch::Receiver<Latest>);

impl Snapshots {
    /// The next snapshot, the current one first; `None` once the engine
    /// drains.
    pub async fn next(&mut self) -> Option<Arc<str>> {
        loop {
            self.0.changed().await.ok()?;
            match &*self.0.borrow_and_update() {
                Latest::Snapshot(json) => return Some(Arc::clone(json)),
                Latest::Closed => return None,
                Latest::Starting => {}
            }
        }
    }
}

impl Feed {
    pub fn new() -> Self {
        Self {
            latest: watch::Sender::new(Latest::Starting),
            history: Mutex::new(VecDeque::with_capacity(HISTORY_LEN)),
        }
    }

    /// Snapshots as they come, the current one first.
    pub fn subscribe(&self) -> Snapshots {
        let mut updates = self.latest.subscribe();
        updates.mark_changed();
        Snapshots(updates)
    }

    /// The recent points, oldest first, as a JSON array.
    pub fn history_json(&self) -> String {
        let history = self.history.lock().unwrap_or_else(|e| e.into_inner());
        serde_json::to_string(&*history).expect("points serialize")
    }

    fn publish(&self, point: Point, market: &Market) {
        let now = Timestamp::now();
        let sales_in_memory = market.all();
        let mut orders = Orders::default();
        let sales = sales_in_memory
            .iter()
            .map(|sale| {
                let units = sale.units();
                orders.reserved += units.reserved;
                orders.paid += units.paid;
                orders.expired += units.expired;
                orders.cancelled += units.cancelled;
                SaleView {
                    id: sale.sale.id.as_str(),
                    name: &sale.sale.name,
                    state: sale.sale.stock_state(now, units.remaining),
                    units,
                }
            })
            .collect();
        let snapshot = Snapshot {
            point: &point,
            sales,
            orders,
        };
        let json = serde_json::to_string(&snapshot).expect("snapshots serialize");
        let mut history = self.history.lock().unwrap_or_else(|e| e.into_inner());
        if history.len() == HISTORY_LEN {
            history.pop_front();
        }
        history.push_back(point);
        drop(history);
        self.latest.send_replace(Latest::Snapshot(json.into()));
    }

    fn close(&self) {
        self.latest.send_replace(Latest::Closed);
    }
}

impl Default for Feed {
    fn default() -> Self {
        Self::new()
    }
}

/// Samples every second until the engine drains. `node` names this engine
/// on the dashboard.
pub fn spawn(app: App, node: String) -> JoinHandle<()> {
    tokio::spawn(async move {
        let node: Arc<str> = node.into();
        let mut tick = tokio::time::interval(SAMPLE_INTERVAL);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        tick.tick().await;
        let mut last = (Instant::now(), app.metrics.pulse.counts());
        loop {
            tick.tick().await;
            if app.draining.load(Ordering::Acquire) {
                app.dashboard.close();
                return;
            }
            // Histogram samples are folded in here too, scraped or not.
            app.metrics.upkeep();
            let now = (Instant::now(), app.metrics.pulse.counts());
            let seconds = now.0.duration_since(last.0).as_secs_f64();
            let sample = NodeSample {
                id: Arc::clone(&node),
                rps: now.1.per_second_since(&last.1, seconds),
                latency_ms: app.metrics.pulse.take_latency(),
                requests_total: now.1.total(),
                in_flight: app.in_flight.current(),
                degrade: app.degrade.level(),
            };
            last = now;
            let point = Point {
                at: Timestamp::now().as_millis() as u64,
                nodes: vec![sample],
            };
            app.dashboard.publish(point, &app.market);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_stream_opened_before_the_first_sample_waits_for_it_and_ends_at_the_drain() {
        let feed = Feed::new();
        let mut snapshots = feed.subscribe();
        let early = tokio::time::timeout(SAMPLE_INTERVAL, snapshots.next()).await;
        assert!(early.is_err(), "nothing to show before the first sample");
        feed.latest.send_replace(Latest::Snapshot("{}".into()));
        assert_eq!(snapshots.next().await.as_deref(), Some("{}"));
        feed.close();
        assert_eq!(snapshots.next().await, None);
    }
}
