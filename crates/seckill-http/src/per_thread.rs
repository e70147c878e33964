//! One slot per thread for what every request adds to and only a reader
//! (a scrape, the once-a-second samplers) sums: each worker thread writes
//! its own slot, on cache lines of its own, so counting a request moves no
//! cache line between cores, as one shared counter would on every request.
//! Threads take slots in turn; past [`SLOTS`] threads share one, which
//! stays correct (a slot is atomic or locked), only slower.

use std::sync::atomic::{AtomicUsize, Ordering};

/// More than the worker threads of a small machine.
const SLOTS: usize = 8;

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
            static SLOT: usize = {
                static NEXT: AtomicUsize = AtomicUsize::new(0);
                NEXT.fetch_add(1, Ordering::Relaxed) % SLOTS
            };
        }
        &self.slots[SLOT.with(|slot| *slot)].0
    }

    /// Every slot, for a reader to sum.
    pub fn all(&self) -> impl Iterator<Item = &T> {
        self.slots.iter().map(|slot| &slot.0)
    }
}
