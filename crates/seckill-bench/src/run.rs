//! The machinery of a run: generator threads (each a single-threaded tokio
//! runtime driving its share of the connections, as wrk does), the shared
//! visit counter, the open-model pacing, and the progress bar.

use crate::client::Connection;
use crate::recorder::Recorder;
use crate::scenario::{Target, Visitor};
use indicatif::{ProgressBar, ProgressStyle};
use std::cell::RefCell;
use std::io::IsTerminal;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// When a run stops.
#[derive(Clone, Copy, Debug)]
pub enum Stop {
    /// After this many visits.
    Visits(u64),
    /// After this long; visits cycle through the users.
    After(Duration),
}

/// How hard to push.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    pub connections: usize,
    pub threads: usize,
    pub stop: Stop,
    /// Open model: visits start at this rate whatever the answers do, and
    /// latency counts from when a visit was due (no coordinated omission).
    /// `None`: each connection starts its next visit when the last ends.
    pub rate: Option<f64>,
    /// Draw a progress bar on stderr (only when it is a terminal).
    pub progress: bool,
}

/// What a run measured, all threads merged.
pub struct Measured {
    pub recorder: Recorder,
    pub elapsed: Duration,
}

struct Shared<'a> {
    target: &'a Target,
    load: Load,
    start: Instant,
    next_visit: AtomicU64,
    done: AtomicU64,
}

impl Shared<'_> {
    /// The next visit to make and when it is due, or `None` when the run is over.
    fn next(&self) -> Option<(u64, Instant)> {
        let visit = self.next_visit.fetch_add(1, Ordering::Relaxed);
        let due = match self.load.rate {
            Some(rate) => self.start + Duration::from_secs_f64(visit as f64 / rate),
            None => Instant::now(),
        };
        let more = match self.load.stop {
            Stop::Visits(count) => visit < count,
            Stop::After(duration) => due < self.start + duration,
        };
        more.then_some((visit, due))
    }
}

/// Runs the crowd against the target and returns what it saw.
pub fn run(target: &Target, load: Load) -> Measured {
    let threads = load.threads.clamp(1, load.connections.max(1));
    let shared = Shared {
        target,
        load,
        start: Instant::now(),
        next_visit: AtomicU64::new(0),
        done: AtomicU64::new(0),
    };
    let finished = AtomicBool::new(false);
    let recorders: Vec<Recorder> = std::thread::scope(|scope| {
        let progress = scope.spawn(|| show_progress(&shared, &finished));
        let generators: Vec<_> = (0..threads)
            .map(|thread| {
                let connections =
                    load.connections / threads + usize::from(thread < load.connections % threads);
                let shared = &shared;
                scope.spawn(move || generate(shared, connections))
            })
            .collect();
        let recorders = generators
            .into_iter()
            .map(|generator| generator.join().expect("a generator thread panicked"))
            .collect();
        finished.store(true, Ordering::Relaxed);
        progress.join().expect("the progress thread panicked");
        recorders
    });
    let elapsed = shared.start.elapsed();
    let mut recorders = recorders.into_iter();
    let mut merged = recorders
        .next()
        .expect("a run has at least one generator thread");
    for recorder in recorders {
        merged.merge(recorder);
    }
    Measured {
        recorder: merged,
        elapsed,
    }
}

/// One generator thread: `connections` visitors on a single-threaded runtime.
fn generate(shared: &Shared, connections: usize) -> Recorder {
    let recorder = Rc::new(RefCell::new(Recorder::new(
        shared.start,
        shared.target.users,
    )));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a generator runtime starts");
    // All visitors of the thread are polled by one task: no task switch
    // per request beyond the connection's own.
    let visitors = (0..connections).map(|_| {
        let mut visitor = Visitor {
            target: shared.target,
            connection: Connection::new(&shared.target.endpoint),
            recorder: recorder.clone(),
        };
        async move {
            while let Some((visit, due)) = shared.next() {
                if shared.load.rate.is_some() {
                    tokio::time::sleep_until(due.into()).await;
                }
                visitor.visit(visit, due).await;
                shared.done.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    runtime.block_on(futures::future::join_all(visitors));
    Rc::try_unwrap(recorder)
        .map(RefCell::into_inner)
        .unwrap_or_else(|_| panic!("visitors have ended"))
}

/// A progress bar on a terminal, none otherwise.
fn show_progress(shared: &Shared, finished: &AtomicBool) {
    if !shared.load.progress || !std::io::stderr().is_terminal() {
        return;
    }
    let (bar, position): (ProgressBar, Box<dyn Fn() -> u64>) = match shared.load.stop {
        Stop::Visits(count) => (
            ProgressBar::new(count),
            Box::new(|| shared.done.load(Ordering::Relaxed)),
        ),
        Stop::After(duration) => (
            ProgressBar::new(duration.as_secs().max(1)),
            Box::new(|| shared.start.elapsed().as_secs()),
        ),
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {msg} [{elapsed}]")
            .expect("constant template"),
    );
    while !finished.load(Ordering::Relaxed) {
        bar.set_position(position());
        let done = shared.done.load(Ordering::Relaxed);
        let secs = shared.start.elapsed().as_secs_f64().max(1e-3);
        bar.set_message(format!("{:.0} visits/s", done as f64 / secs));
        std::thread::sleep(Duration::from_millis(100));
    }
    bar.finish_and_clear();
}
