//! One slot per thread for what every request adds to and only a reader
//! (a scrape, the once-a-second samplers) sums: each worker thread writes
//! its own slot, on cache lines of its own, so counting a request moves no
//! cache line between cores, as one shared counter would on every request.
//! Threads take slots in turn; past [`SLOTS`] threads share one, which
//! stays correct (a slot is atomic), only slower. A reader sums only the
//! slots taken so far.

use std::sync::atomic::{AtomicUsize, Ordering};

/// More than the worker threads of a small machine.
const SLOTS: usize = 8;
/// Slots taken so far, the same in every `PerThread`: a thread takes its
/// slot when it first writes to one.
static TAKEN: AtomicUsize = AtomicUsize::new(0);

/// A `T` per thread.
pub struct PerThread<T> {
    slots: [Padded<T>; SLOTS],
}

/// A slot on cache lines of its own (two lines: the adjacent-line
/// prefetcher pulls pairs).
#[repr(align(128))]
struct Padded<T>(T);

impl<T> PerThread<T> {
    pub fn new(mut make: impl FnMut() -> T) -> Self {
        Self {
            slots: std::array::from_fn(|_| Padded(make())),
        }
    }

    /// This thread's slot.
    pub fn mine(&self) -> &T {
        thread_local! {
            static SLOT: usize = TAKEN.fetch_add(1, Ordering::Relaxed) % SLOTS;
        }
        &self.slots[SLOT.with(|slot| *slot)].0
    }

    /// Every slot a thread has taken, for a reader to sum (the others are
    /// as made).
    pub fn all(&self) -> impl Iterator<Item = &T> {
        let taken = TAKEN.load(Ordering::Relaxed).min(SLOTS);
        self.slots[..taken].iter().map(|slot| &slot.0)
    }
}
