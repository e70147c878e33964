//! A sale's remaining stock: one atomic counter, so taking a unit is a single
//! compare-and-swap and no lock is ever held on the hot path.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug)]
pub struct Stock {
    remaining: AtomicU64,
}

impl Stock {
    pub fn new(remaining: u64) -> Self {
        Self {
            remaining: AtomicU64::new(remaining),
        }
    }

    pub fn remaining(&self) -> u64 {
        self.remaining.load(Ordering::Acquire)
    }

    pub fn is_sold_out(&self) -> bool {
        self.remaining() == 0
    }

    /// Takes `quantity` units if that many remain; never goes below zero,
    /// which is what makes overselling impossible (I1).
    pub fn try_take(&self, quantity: u64) -> bool {
        self.remaining
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                left.checked_sub(quantity)
            })
            .is_ok()
    }

    /// Replaces the count. In cluster mode memory only mirrors the stock
    /// Redis holds (the engine's `cluster` module), and this is how.
    pub fn set(&self, remaining: u64) {
        self.remaining.store(remaining, Ordering::Release);
    }

    /// Puts units back on sale (expiry, cancel, a failed commit).
    pub fn give_back(&self, quantity: u64) {
        self.remaining.fetch_add(quantity, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn never_takes_more_than_there_is() {
        let stock = Stock::new(3);
        assert!(stock.try_take(2));
        assert!(!stock.try_take(2));
        assert!(stock.try_take(1));
        assert!(stock.is_sold_out());
        stock.give_back(1);
        assert_eq!(stock.remaining(), 1);
    }

    #[test]
    fn concurrent_takers_share_exactly_the_stock() {
        let stock = Arc::new(Stock::new(1000));
        let taken: u64 = (0..8)
            .map(|_| {
                let stock = Arc::clone(&stock);
                std::thread::spawn(move || (0..500).filter(|_| stock.try_take(1)).count() as u64)
            })
            .map(|t| t.join().unwrap())
            .sum();
        assert_eq!(taken, 1000);
        assert_eq!(stock.remaining(), 0);
    }
}
