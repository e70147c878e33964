//! Every answered request, counted once: by route and answer, with its
//! latency in buckets (`latency`), into its own thread's tally
//! ([`PerThread`]), so counting one costs a few uncontended atomic adds, no
//! lock and no lookup by name. Nothing is ever reset: a reader takes a
//! cumulative [`Snapshot`], and what happened between two of them is their
//! difference ([`Snapshot::since`]). The Prometheus exposition, the
//! dashboard's pulse and automatic degradation all read these tallies.

use crate::error::status_of;
use crate::latency::{self, BUCKETS};
use crate::per_thread::PerThread;
use crate::route::Route;
use axum::http::StatusCode;
use seckill_core::ErrorCode;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// Set by `--cfg seckill_no_metrics`: requests and purchases are not
/// counted, only to measure what counting them costs
/// (bench/metrics-cost.sh).
pub(crate) const NOT_KEPT: bool = cfg!(seckill_no_metrics);

/// The successful statuses counted without a lookup; errors are counted by
/// their code, whose status follows from it.
const SUCCESSES: [StatusCode; 5] = [
    StatusCode::OK,
    StatusCode::CREATED,
    StatusCode::ACCEPTED,
    StatusCode::NO_CONTENT,
    StatusCode::NOT_MODIFIED,
];
/// Refusals by the degrade level have a column of their own, apart from
/// other 503s: automatic degradation leaves them out of its judgement.
const DEGRADED: usize = ErrorCode::ALL.len() + SUCCESSES.len();
/// Answers whose status is outside the table: their statuses are kept
/// aside, this column only says that they happened.
const UNUSUAL: usize = DEGRADED + 1;
/// Columns of the answers table: error codes, successes, degraded, unusual.
const ANSWERS: usize = UNUSUAL + 1;
const ROUTES: usize = Route::ALL.len();

/// How a request was answered.
#[derive(Clone, Copy, Debug)]
pub enum Answer {
    /// Refused by the degrade level (503 `unavailable`): the cure, not a
    /// symptom, so not judged for automatic degradation.
    Degraded,
    /// Any other answer: its status, and the error code it was built with.
    Given(StatusCode, Option<ErrorCode>),
}

impl Answer {
    /// Its column in the answers table, or its status if it has none.
    fn column(self) -> Result<usize, StatusCode> {
        let (status, code) = match self {
            Self::Degraded => return Ok(DEGRADED),
            Self::Given(status, code) => (status, code),
        };
        match code.filter(|code| status_of(*code) == status) {
            Some(code) => Ok(code as usize),
            None => SUCCESSES
                .iter()
                .position(|success| *success == status)
                .map(|at| ErrorCode::ALL.len() + at)
                .ok_or(status),
        }
    }
}

/// The status and code of the answers counted in `column` (a degraded
/// refusal is a 503 `unavailable`).
fn answer_of(column: usize) -> (StatusCode, Option<ErrorCode>) {
    match ErrorCode::ALL.get(column) {
        Some(code) => (status_of(*code), Some(*code)),
        None if column == DEGRADED => (
            StatusCode::SERVICE_UNAVAILABLE,
            Some(ErrorCode::Unavailable),
        ),
        None => (SUCCESSES[column - ErrorCode::ALL.len()], None),
    }
}

/// The engine's answered requests.
pub struct Requests {
    tallies: Box<PerThread<Tally>>,
    /// The statuses of the unusual answers (rare), by route and status.
    unusual: Mutex<HashMap<(Route, StatusCode), u64>>,
}

/// One thread's requests since the start.
struct Tally {
    /// By route and answer ([`Answer::column`]).
    answers: [[AtomicU64; ANSWERS]; ROUTES],
    /// By route and latency bucket.
    latency: Box<[[AtomicU64; BUCKETS]; ROUTES]>,
    /// By route: the latencies added up, in nanoseconds.
    latency_ns: [AtomicU64; ROUTES],
}

impl Tally {
    fn new() -> Self {
        // Built row by row on the heap: the table is too big for a stack.
        let latency: Box<[[AtomicU64; BUCKETS]]> = (0..ROUTES)
            .map(|_| [const { AtomicU64::new(0) }; BUCKETS])
            .collect();
        Self {
            answers: [const { [const { AtomicU64::new(0) }; ANSWERS] }; ROUTES],
            latency: latency.try_into().expect("a row per route"),
            latency_ns: [const { AtomicU64::new(0) }; ROUTES],
        }
    }
}

impl Requests {
    pub fn new() -> Self {
        Self {
            tallies: Box::new(PerThread::new(Tally::new)),
            unusual: Mutex::default(),
        }
    }

    /// Counts one answered request.
    pub fn record(&self, route: Route, answer: Answer, elapsed: Duration) {
        if NOT_KEPT {
            return;
        }
        let tally = self.tallies.mine();
        let index = route as usize;
        let column = answer.column().unwrap_or_else(|status| {
            *self.unusual().entry((route, status)).or_default() += 1;
            UNUSUAL
        });
        add(&tally.answers[index][column], 1);
        let nanos = latency::nanos(elapsed);
        add(&tally.latency[index][latency::bucket_of_nanos(nanos)], 1);
        add(&tally.latency_ns[index], nanos);
    }

    /// Every thread's requests since the start, added up. A route's
    /// latency is read only from the threads that answered it: most of
    /// the table is never written.
    pub fn snapshot(&self) -> Snapshot {
        let mut snapshot = Snapshot {
            answers: [[0; ANSWERS]; ROUTES],
            latency: [const { None }; ROUTES],
            latency_ns: [0; ROUTES],
            unusual: self.unusual().clone(),
        };
        for tally in self.tallies.all() {
            for (route, answers) in tally.answers.iter().enumerate() {
                if add_row(&mut snapshot.answers[route], answers) == 0 {
                    continue;
                }
                let latency = snapshot.latency[route].get_or_insert_with(|| Box::new([0; BUCKETS]));
                add_row(latency, &tally.latency[route]);
                snapshot.latency_ns[route] += tally.latency_ns[route].load(Ordering::Relaxed);
            }
        }
        snapshot
    }

    fn unusual(&self) -> MutexGuard<'_, HashMap<(Route, StatusCode), u64>> {
        self.unusual
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Default for Requests {
    fn default() -> Self {
        Self::new()
    }
}

/// Relaxed: a count read by a reader needs no ordering with anything else.
fn add(cell: &AtomicU64, n: u64) {
    cell.fetch_add(n, Ordering::Relaxed);
}

/// Adds `row` to `sum`; how much it held.
fn add_row<const N: usize>(sum: &mut [u64; N], row: &[AtomicU64; N]) -> u64 {
    let mut added = 0;
    for (sum, cell) in sum.iter_mut().zip(row) {
        let count = cell.load(Ordering::Relaxed);
        *sum += count;
        added += count;
    }
    added
}

/// Requests answered since the start, as of one moment; or, the difference
/// of two, between two moments.
#[derive(Clone, Debug)]
pub struct Snapshot {
    answers: [[u64; ANSWERS]; ROUTES],
    /// `None` for a route never answered.
    latency: [Option<Box<[u64; BUCKETS]>>; ROUTES],
    latency_ns: [u64; ROUTES],
    unusual: HashMap<(Route, StatusCode), u64>,
}

/// The latency of a route never answered.
static NO_LATENCY: [u64; BUCKETS] = [0; BUCKETS];

impl Snapshot {
    /// What was answered after `earlier` and up to this snapshot.
    pub fn since(&self, earlier: &Self) -> Self {
        let mut between = self.clone();
        for (row, before) in between.answers.iter_mut().zip(&earlier.answers) {
            subtract_row(row, before);
        }
        for (row, before) in between.latency.iter_mut().zip(&earlier.latency) {
            if let (Some(row), Some(before)) = (row, before) {
                subtract_row(row, before);
            }
        }
        subtract_row(&mut between.latency_ns, &earlier.latency_ns);
        for (key, count) in &mut between.unusual {
            *count = count.saturating_sub(earlier.unusual.get(key).copied().unwrap_or(0));
        }
        between
    }

    /// The requests to `route` answered otherwise than by a degraded
    /// refusal, by status and error code; zeros left out.
    pub fn given(
        &self,
        route: Route,
    ) -> impl Iterator<Item = (StatusCode, Option<ErrorCode>, u64)> + '_ {
        let table = self.answers[route as usize][..DEGRADED]
            .iter()
            .enumerate()
            .map(|(column, count)| {
                let (status, code) = answer_of(column);
                (status, code, *count)
            });
        let unusual = self
            .unusual
            .iter()
            .filter(move |((of, _), _)| *of == route)
            .map(|((_, status), count)| (*status, None, *count));
        table.chain(unusual).filter(|(_, _, count)| *count > 0)
    }

    /// The requests to `route` refused by the degrade level: 503 `unavailable`.
    pub fn degraded(&self, route: Route) -> u64 {
        self.answers[route as usize][DEGRADED]
    }

    /// Every request to `route`, by latency bucket.
    pub fn latency(&self, route: Route) -> &[u64; BUCKETS] {
        self.latency[route as usize]
            .as_deref()
            .unwrap_or(&NO_LATENCY)
    }

    /// The latencies of the requests to `route`, added up.
    pub fn latency_sum(&self, route: Route) -> Duration {
        Duration::from_nanos(self.latency_ns[route as usize])
    }

    /// Every request, by latency bucket.
    pub fn all_latency(&self) -> [u64; BUCKETS] {
        let mut all = [0; BUCKETS];
        for row in self.latency.iter().flatten() {
            all.iter_mut()
                .zip(row.iter())
                .for_each(|(sum, count)| *sum += count);
        }
        all
    }
}

/// Cumulative counts only grow; saturating all the same, never wrapping.
fn subtract_row<const N: usize>(row: &mut [u64; N], earlier: &[u64; N]) {
    for (count, before) in row.iter_mut().zip(earlier) {
        *count = count.saturating_sub(*before);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_indexed_by_declaration_order() {
        for (at, code) in ErrorCode::ALL.into_iter().enumerate() {
            assert_eq!(code as usize, at, "{code:?}");
        }
        for (at, route) in Route::ALL.into_iter().enumerate() {
            assert_eq!(route as usize, at, "{route:?}");
        }
    }

    #[test]
    fn answers_have_one_column_each() {
        let given = Answer::Given;
        let sold_out = Some(ErrorCode::SoldOut);
        assert_eq!(
            given(StatusCode::CONFLICT, sold_out).column(),
            Ok(ErrorCode::SoldOut as usize)
        );
        assert_eq!(
            given(StatusCode::NOT_MODIFIED, None).column(),
            Ok(ErrorCode::ALL.len() + 4)
        );
        assert_eq!(
            given(StatusCode::IM_A_TEAPOT, None).column(),
            Err(StatusCode::IM_A_TEAPOT)
        );
        assert_eq!(
            given(StatusCode::OK, sold_out).column(),
            given(StatusCode::OK, None).column(),
            "a code that does not match the status is not counted"
        );
        assert_eq!(Answer::Degraded.column(), Ok(DEGRADED));
        for column in 0..DEGRADED {
            let (status, code) = answer_of(column);
            assert_eq!(given(status, code).column(), Ok(column));
        }
        assert_eq!(
            answer_of(DEGRADED),
            answer_of(ErrorCode::Unavailable as usize),
            "a degraded refusal is a 503 unavailable"
        );
    }

    fn on_another_thread(requests: &Requests, route: Route, answer: Answer, elapsed: Duration) {
        std::thread::scope(|scope| {
            scope.spawn(|| requests.record(route, answer, elapsed));
        });
    }

    #[test]
    fn a_snapshot_adds_up_every_thread_since_the_start() {
        let requests = Requests::new();
        let sold_out = Answer::Given(StatusCode::CONFLICT, Some(ErrorCode::SoldOut));
        let ms = Duration::from_millis;
        on_another_thread(&requests, Route::Purchase, sold_out, ms(1));
        on_another_thread(&requests, Route::Purchase, sold_out, ms(3));
        requests.record(Route::Purchase, Answer::Degraded, ms(3));
        let teapot = Answer::Given(StatusCode::IM_A_TEAPOT, None);
        on_another_thread(&requests, Route::Stock, teapot, ms(20));

        let snapshot = requests.snapshot();
        let purchases: Vec<_> = snapshot.given(Route::Purchase).collect();
        assert_eq!(
            purchases,
            [(StatusCode::CONFLICT, Some(ErrorCode::SoldOut), 2)]
        );
        assert_eq!(snapshot.degraded(Route::Purchase), 1);
        let stock: Vec<_> = snapshot.given(Route::Stock).collect();
        assert_eq!(stock, [(StatusCode::IM_A_TEAPOT, None, 1)]);
        assert_eq!(snapshot.given(Route::GetSale).count(), 0);

        let latency = snapshot.latency(Route::Purchase);
        assert_eq!(latency.iter().sum::<u64>(), 3, "degraded ones too");
        assert_eq!(latency[latency::bucket(ms(3))], 2);
        assert_eq!(snapshot.latency_sum(Route::Purchase), ms(7));
        assert_eq!(snapshot.all_latency()[latency::bucket(ms(20))], 1);
        assert_eq!(snapshot.all_latency().iter().sum::<u64>(), 4);
        assert_eq!(
            requests.snapshot().given(Route::Purchase).count(),
            1,
            "reading resets nothing"
        );
    }

    #[test]
    fn the_difference_of_two_snapshots_is_what_came_between() {
        let requests = Requests::new();
        let ok = Answer::Given(StatusCode::OK, None);
        let teapot = Answer::Given(StatusCode::IM_A_TEAPOT, None);
        let ms = Duration::from_millis;
        requests.record(Route::Stock, ok, ms(1));
        requests.record(Route::Stock, teapot, ms(1));
        let earlier = requests.snapshot();
        on_another_thread(&requests, Route::Stock, ok, ms(5));
        requests.record(Route::Stock, ok, ms(5));
        requests.record(Route::Stock, Answer::Degraded, ms(2));
        let later = requests.snapshot();

        let between = later.since(&earlier);
        let stock: Vec<_> = between.given(Route::Stock).collect();
        assert_eq!(stock, [(StatusCode::OK, None, 2)], "the teapot came before");
        assert_eq!(between.degraded(Route::Stock), 1);
        let latency = between.latency(Route::Stock);
        assert_eq!(latency[latency::bucket(ms(5))], 2);
        assert_eq!(latency[latency::bucket(ms(2))], 1);
        assert_eq!(latency[latency::bucket(ms(1))], 0);
        assert_eq!(between.latency_sum(Route::Stock), ms(12));
        let nothing = later.since(&later);
        assert_eq!(nothing.given(Route::Stock).count(), 0);
        assert_eq!(nothing.all_latency(), [0; BUCKETS]);
    }
}
