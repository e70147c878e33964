//! The keyed state of one limiter: one `u64` per key (a time or a packed
//! window counter, whatever the algorithm keeps), in a sharded map that is
//! bounded twice: idle keys are evicted by the periodic sweep, and the
//! number of keys has a hard cap, so a flood of distinct clients cannot
//! grow memory without bound. Keys are 64-bit fingerprints, so an entry
//! costs the same for any user id or address (16 bytes plus the table's
//! overhead).

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use governor::nanos::Nanos;
use governor::state::StateStore;
use governor::state::keyed::ShrinkableKeyedStateStore;
use std::num::NonZeroU64;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// More shards than dashmap's default (4 × cores): the sweep write-locks one
/// shard at a time, so smaller shards stall fewer requests for less long.
const SHARDS: usize = 64;

/// A cheap handle: the token bucket's governor limiter owns one clone, the
/// scope that checks the cap another.
#[derive(Clone)]
pub struct KeyedStates(Arc<Inner>);

struct Inner {
    map: DashMap<u64, AtomicU64>,
    /// Kept beside the map: `DashMap::len` locks every shard.
    len: AtomicUsize,
    max_keys: usize,
}

impl KeyedStates {
    pub fn new(max_keys: usize) -> Self {
        Self(Arc::new(Inner {
            map: DashMap::with_shard_amount(SHARDS),
            len: AtomicUsize::new(0),
            max_keys,
        }))
    }

    /// False when the table is full and `key` is not in it. Costs one
    /// atomic load unless the table is full.
    pub fn has_room_for(&self, key: u64) -> bool {
        self.0.len.load(Ordering::Relaxed) < self.0.max_keys || self.0.map.contains_key(&key)
    }

    /// Applies `decide` to the key's state (0 for a new key) and stores the
    /// new state it returns, atomically (compare-and-swap, retried on a
    /// race). A refusal (`Err`) leaves the state as it was.
    pub fn update<T, E>(
        &self,
        key: u64,
        decide: impl Fn(u64) -> Result<(T, u64), E>,
    ) -> Result<T, E> {
        if let Some(state) = self.0.map.get(&key) {
            return compare_and_swap(&state, decide);
        }
        let state = match self.0.map.entry(key) {
            Entry::Occupied(entry) => entry.into_ref(),
            Entry::Vacant(entry) => {
                self.0.len.fetch_add(1, Ordering::Relaxed);
                entry.insert(AtomicU64::new(0))
            }
        };
        compare_and_swap(&state, decide)
    }

    /// Drops every key whose state `keep` rejects, then gives the freed
    /// table space back.
    pub fn retain(&self, keep: impl Fn(u64) -> bool) {
        let mut removed = 0;
        self.0.map.retain(|_, state| {
            let kept = keep(state.load(Ordering::Relaxed));
            removed += usize::from(!kept);
            kept
        });
        self.0.len.fetch_sub(removed, Ordering::Relaxed);
        self.0.map.shrink_to_fit();
    }

    pub fn len(&self) -> usize {
        self.0.len.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn compare_and_swap<T, E>(
    state: &AtomicU64,
    decide: impl Fn(u64) -> Result<(T, u64), E>,
) -> Result<T, E> {
    let mut current = state.load(Ordering::Acquire);
    loop {
        let (outcome, next) = decide(current)?;
        match state.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return Ok(outcome),
            Err(now) => current = now,
        }
    }
}

/// The token bucket is governor's GCRA over this store: the state is the
/// theoretical arrival time in nanoseconds since the limiter started, and
/// 0 means "no state yet".
impl StateStore for KeyedStates {
    type Key = u64;

    fn measure_and_replace<T, F, E>(&self, key: &u64, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        self.update(*key, |state| {
            let (outcome, next) = f(NonZeroU64::new(state).map(|tat| Nanos::from(tat.get())))?;
            Ok((outcome, next.into()))
        })
    }
}

impl ShrinkableKeyedStateStore<u64> for KeyedStates {
    /// A theoretical arrival time at or below `drop_below` is the same as
    /// no state at all.
    fn retain_recent(&self, drop_below: Nanos) {
        let drop_below = u64::from(drop_below);
        self.retain(|tat| tat > drop_below);
    }

    fn len(&self) -> usize {
        KeyedStates::len(self)
    }

    fn is_empty(&self) -> bool {
        KeyedStates::is_empty(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_keys_start_at_zero_and_refusals_leave_the_state() {
        let states = KeyedStates::new(10);
        assert_eq!(states.update(7, |s| Ok::<_, ()>((s, s + 5))), Ok(0));
        assert_eq!(states.update(7, |s| Ok::<_, ()>((s, s + 5))), Ok(5));
        assert_eq!(states.update(7, |_| Err::<((), u64), _>("no")), Err("no"));
        assert_eq!(states.update(7, |s| Ok::<_, ()>((s, s))), Ok(10));
        assert_eq!(states.len(), 1);
    }

    #[test]
    fn the_cap_refuses_new_keys_only_and_the_sweep_makes_room() {
        let states = KeyedStates::new(2);
        for key in [1, 2] {
            assert!(states.has_room_for(key));
            states.update(key, |_| Ok::<_, ()>(((), key))).unwrap();
        }
        assert!(!states.has_room_for(3), "full");
        assert!(states.has_room_for(1), "a known key is still served");
        states.retain(|state| state != 1);
        assert_eq!(states.len(), 1);
        assert!(states.has_room_for(3));
    }
}
