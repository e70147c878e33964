//! The live dashboard's data. Once a second a sampler takes a snapshot of
//! this node (requests per second by outcome, latency, degrade level) and of
//! every sale (units by state, from memory), serializes it once as a
//! server-sent event, and every open `/dashboard/events` stream sends those
//! same bytes. The last minutes of node samples are kept so that a page
//! opened mid-sale draws its charts at once.
//!
//! Streams are capped ([`DashboardRules::max_streams`]), and each holds
//! only the latest snapshot: one that has not been sent when the next comes
//! is replaced by it, never queued.
//!
//! A snapshot lists `nodes` so that a cluster can show all of them; one
//! engine shows itself.

use crate::App;
use crate::degrade::Level;
use crate::pulse::{Counts, Latency};
use crate::shedding::{Held, InFlight};
use bytes::Bytes;
use seckill_core::{StockState, Timestamp};
use seckill_engine::{Market, SaleUnits};
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
/// Event streams open at once, unless configured.
pub const DEFAULT_MAX_STREAMS: usize = 64;

/// Who may watch the dashboard, and how many at once.
#[derive(Clone, Debug)]
pub struct DashboardRules {
    /// Event streams open at once; past it, 503.
    pub max_streams: usize,
    /// When set, the page and its events ask for it.
    pub token: Option<String>,
}

impl Default for DashboardRules {
    fn default() -> Self {
        Self {
            max_streams: DEFAULT_MAX_STREAMS,
            token: None,
        }
    }
}

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
    /// Purchases answered 503 that Redis reserved all the same (a cluster
    /// node whose durability wait fell short), since the start.
    pub unconfirmed: u64,
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

/// The latest snapshot and the recent points, and the open streams.
pub struct Feed {
    latest: watch::Sender<Latest>,
    history: Mutex<History>,
    streams: Arc<InFlight>,
}

/// The recent points, and the `history` event made of them, made when a
/// stream first asks for it after a sample and shared by the streams that
/// open before the next.
struct History {
    points: VecDeque<Point>,
    event: Option<Bytes>,
}

/// What the feed holds now.
#[derive(Clone)]
enum Latest {
    /// No sample taken yet: the first comes a second after the start.
    Starting,
    /// The `snapshot` event, as sent.
    Snapshot(Bytes),
    /// The engine drains, which ends every stream.
    Closed,
}

/// One open event stream: its place among the capped streams, the events
/// due at once (the history, then the current snapshot), and the
/// snapshots after them.
pub struct Events {
    _place: Held,
    /// The next one last.
    due: Vec<Bytes>,
    snapshots: watch::Receiver<Latest>,
}

impl Events {
    /// The next event to send: those due first, then the latest snapshot
    /// each time there is a new one; `None` once the engine drains.
    pub async fn next(&mut self) -> Option<Bytes> {
        if let Some(event) = self.due.pop() {
            return Some(event);
        }
        loop {
            self.snapshots.changed().await.ok()?;
            match &*self.snapshots.borrow_and_update() {
                Latest::Snapshot(event) => return Some(event.clone()),
                Latest::Closed => return None,
                Latest::Starting => {}
            }
        }
    }

    /// Resolves when a snapshot newer than every event so far is
    /// published (`true`), or the engine drains (`false`).
    pub async fn newer(&mut self) -> bool {
        loop {
            if self.snapshots.changed().await.is_err() {
                return false;
            }
            match &*self.snapshots.borrow() {
                Latest::Snapshot(_) => return true,
                Latest::Closed => return false,
                Latest::Starting => {}
            }
            self.snapshots.mark_unchanged();
        }
    }
}

impl Feed {
    pub fn new(max_streams: usize) -> Self {
        Self {
            latest: watch::Sender::new(Latest::Starting),
            history: Mutex::new(History {
                points: VecDeque::with_capacity(HISTORY_LEN),
                event: None,
            }),
            streams: Arc::new(InFlight::new(max_streams)),
        }
    }

    /// A new stream: the recent points, then snapshots as they come, the
    /// current one first; `None` when `max_streams` are open.
    pub fn open(&self) -> Option<Events> {
        let place = self.streams.hold()?;
        let mut snapshots = self.latest.subscribe();
        let mut due = Vec::with_capacity(2);
        if let Latest::Snapshot(current) = &*snapshots.borrow_and_update() {
            due.push(current.clone());
        }
        due.push(self.history_event());
        Some(Events {
            _place: place,
            due,
            snapshots,
        })
    }

    fn history_event(&self) -> Bytes {
        let mut history = self.history.lock().unwrap_or_else(|e| e.into_inner());
        let History { points, event } = &mut *history;
        event
            .get_or_insert_with(|| {
                let json = serde_json::to_string(points).expect("points serialize");
                sse_event("history", &json)
            })
            .clone()
    }

    fn publish(&self, point: Point, market: &Market) {
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
                    state: StockState::of(market.clock().phase(&sale.sale), units.remaining),
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
        if history.points.len() == HISTORY_LEN {
            history.points.pop_front();
        }
        history.points.push_back(point);
        history.event = None;
        drop(history);
        self.latest
            .send_replace(Latest::Snapshot(sse_event("snapshot", &json)));
    }

    pub(crate) fn close(&self) {
        self.latest.send_replace(Latest::Closed);
    }
}

/// A server-sent event: its name, and its data on one line (JSON as
/// serde writes it has no line breaks).
fn sse_event(name: &str, json: &str) -> Bytes {
    debug_assert!(!json.contains('\n'));
    let mut event = String::with_capacity(name.len() + json.len() + 16);
    for part in ["event: ", name, "\ndata: ", json, "\n\n"] {
        event.push_str(part);
    }
    event.into()
}

/// Samples every second until the engine drains. `node` names this engine
/// on the dashboard.
pub fn spawn(app: App, node: String) -> JoinHandle<()> {
    tokio::spawn(async move {
        let node: Arc<str> = node.into();
        let mut tick = tokio::time::interval(SAMPLE_INTERVAL);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        tick.tick().await;
        let mut last = (Instant::now(), app.requests.snapshot());
        loop {
            tick.tick().await;
            if app.draining.load(Ordering::Acquire) {
                app.dashboard.close();
                return;
            }
            // Histogram samples are folded in here too, scraped or not.
            app.metrics.upkeep();
            let now = (Instant::now(), app.requests.snapshot());
            let seconds = now.0.duration_since(last.0).as_secs_f64();
            let interval = now.1.since(&last.1);
            let sample = NodeSample {
                id: Arc::clone(&node),
                rps: Counts::of(&interval).per_second(seconds),
                latency_ms: Latency::of(&interval),
                requests_total: Counts::of(&now.1).total(),
                in_flight: app.in_flight.current(),
                degrade: app.degrade.level(),
                unconfirmed: app
                    .market
                    .authority()
                    .map_or(0, |authority| authority.unconfirmed()),
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
impl Feed {
    /// Publishes `json` as the sampler publishes a snapshot.
    pub(crate) fn publish_json(&self, json: &str) {
        self.latest
            .send_replace(Latest::Snapshot(sse_event("snapshot", json)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_stream_opened_before_the_first_sample_waits_for_it_and_ends_at_the_drain() {
        let feed = Feed::new(1);
        let mut events = feed.open().expect("a place");
        assert_eq!(
            events.next().await.as_deref(),
            Some(&b"event: history\ndata: []\n\n"[..])
        );
        let early = tokio::time::timeout(SAMPLE_INTERVAL, events.next()).await;
        assert!(early.is_err(), "nothing to show before the first sample");
        feed.publish_json("{}");
        assert_eq!(
            events.next().await.as_deref(),
            Some(&b"event: snapshot\ndata: {}\n\n"[..])
        );
        feed.close();
        assert_eq!(events.next().await, None);
    }

    #[test]
    fn past_the_cap_no_stream_opens_until_one_closes() {
        let feed = Feed::new(2);
        let first = feed.open().expect("1 of 2");
        let _second = feed.open().expect("2 of 2");
        assert!(feed.open().is_none());
        drop(first);
        assert!(feed.open().is_some());
    }

    #[tokio::test]
    async fn a_slow_stream_gets_the_latest_snapshot_not_every_one() {
        let feed = Feed::new(1);
        let mut events = feed.open().expect("a place");
        for n in 0..5 {
            feed.publish_json(&n.to_string());
        }
        events.next().await.expect("the history");
        let latest = events.next().await.expect("a snapshot");
        assert_eq!(&latest[..], b"event: snapshot\ndata: 4\n\n");
    }
}
