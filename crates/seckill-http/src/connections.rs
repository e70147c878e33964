//! The open connections, watched together: the time limit on sending a
//! request's head, and the graceful drain at shutdown, instead of hyper's
//! head timer (a sleep per request) and hyper-util's `GracefulShutdown` (a
//! watch polled at every wake-up), which were paid per request.
//! Here a connection only counts the heads it reads; one task looks at all
//! of them a few times per time limit ([`Connections::watch`]), and the
//! drain is a flag that each connection reads when it wakes.

use futures::task::AtomicWaker;
use hyper_util::server::graceful::GracefulConnection;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::Poll;
use std::time::Duration;

/// Looks per time limit: a connection is closed between the limit and a
/// fifth of it later.
const TICKS_PER_LIMIT: u32 = 5;
/// How often the drain looks whether every connection has closed.
const DRAIN_POLL: Duration = Duration::from_millis(10);

/// Every open connection, and whether the server is draining.
#[derive(Default)]
pub struct Connections {
    open: Mutex<Vec<Watched>>,
    draining: AtomicBool,
}

/// One connection as the watcher sees it.
struct Watched {
    activity: Weak<Activity>,
    /// Heads read at the last look, and looks since that changed.
    heads_seen: u64,
    idle_looks: u32,
}

/// What one connection tells the watcher, and the watcher tells it.
#[derive(Default)]
pub struct Activity {
    /// Request heads read; written by the connection's own task only.
    heads: AtomicU64,
    /// No head is due: a request is being answered the long way, or its
    /// answer's body is still streaming (the dashboard's events).
    busy: AtomicBool,
    /// Set by the watcher: the time limit on a head has passed.
    expired: AtomicBool,
    /// The request's handler waits for more of its body from the client
    /// ([`ClientBody`](crate::client_body::ClientBody)).
    awaiting_body: AtomicBool,
    waker: AtomicWaker,
}

impl Activity {
    /// A request's head was read: whatever streamed before it is done.
    pub fn head_read(&self) {
        self.heads.store(self.heads.load(Relaxed) + 1, Relaxed);
        if self.busy.load(Relaxed) {
            self.busy.store(false, Relaxed);
        }
    }

    /// Whether the connection is busy answering, not waiting for a head.
    pub fn set_busy(&self, busy: bool) {
        self.busy.store(busy, Relaxed);
    }

    /// Whether the request's handler now waits for the client's body.
    pub fn set_awaiting_body(&self, awaiting: bool) {
        self.awaiting_body.store(awaiting, Relaxed);
    }

    pub fn awaits_body(&self) -> bool {
        self.awaiting_body.load(Relaxed)
    }
}

impl Connections {
    /// Starts watching a connection; it is let go when its activity is
    /// dropped.
    pub fn open(&self) -> Arc<Activity> {
        let activity = Arc::new(Activity::default());
        self.watched().push(Watched {
            activity: Arc::downgrade(&activity),
            heads_seen: 0,
            idle_looks: 0,
        });
        activity
    }

    /// Runs `connection` until it ends, its time limit for a head passes
    /// (then it is dropped, which closes it), or the drain has it finish
    /// its request in flight and close.
    pub async fn serve<C: GracefulConnection>(&self, activity: &Activity, connection: C) {
        let mut connection = std::pin::pin!(connection);
        let mut shutting_down = false;
        poll_fn(|cx| {
            activity.waker.register(cx.waker());
            if activity.expired.load(Relaxed) {
                return Poll::Ready(());
            }
            if !shutting_down && self.draining.load(Relaxed) {
                shutting_down = true;
                connection.as_mut().graceful_shutdown();
            }
            connection.as_mut().poll(cx).map(drop)
        })
        .await;
    }

    /// Closes every connection that has not read a head for `head_limit`
    /// (and a fifth of it at most) while not busy; forever.
    pub async fn watch(&self, head_limit: Duration) {
        let mut looks = tokio::time::interval(head_limit / TICKS_PER_LIMIT);
        looks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        looks.tick().await;
        loop {
            looks.tick().await;
            self.watched().retain_mut(|watched| {
                let Some(activity) = watched.activity.upgrade() else {
                    return false;
                };
                let heads = activity.heads.load(Relaxed);
                if heads != watched.heads_seen || activity.busy.load(Relaxed) {
                    watched.heads_seen = heads;
                    watched.idle_looks = 0;
                    return true;
                }
                watched.idle_looks += 1;
                if watched.idle_looks < TICKS_PER_LIMIT {
                    return true;
                }
                activity.expired.store(true, Relaxed);
                activity.waker.wake();
                false
            });
        }
    }

    /// Has every connection finish its request in flight and close;
    /// `false` if some are still open after `within`.
    pub async fn drain(&self, within: Duration) -> bool {
        self.draining.store(true, Relaxed);
        for watched in self.watched().iter() {
            if let Some(activity) = watched.activity.upgrade() {
                activity.waker.wake();
            }
        }
        let all_closed = async {
            while !self.all_closed() {
                tokio::time::sleep(DRAIN_POLL).await;
            }
        };
        tokio::time::timeout(within, all_closed).await.is_ok()
    }

    fn all_closed(&self) -> bool {
        let mut open = self.watched();
        open.retain(|watched| watched.activity.strong_count() > 0);
        open.is_empty()
    }

    fn watched(&self) -> MutexGuard<'_, Vec<Watched>> {
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
