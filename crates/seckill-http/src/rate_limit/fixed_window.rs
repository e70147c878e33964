//! The fixed-window counter: time is cut into windows of `burst / rate`
//! seconds, aligned for every key to the limiter's start, and each key may
//! make `burst` requests per window; the count starts again at each
//! boundary. The cheapest of the three and the crudest: a client can make
//! twice its allowance across a boundary.
//!
//! State: the window's number (modulo 2^32) in the high half, the count in
//! the low half. A fresh 0 is window 0 with nothing counted.

use std::num::NonZeroU32;
use std::time::Duration;

const NANOS_PER_SECOND: u64 = 1_000_000_000;

#[derive(Clone, Copy, Debug)]
pub struct FixedWindow {
    window: u64,
    allowance: u32,
}

impl FixedWindow {
    /// `burst` requests per window of `burst / per_second` seconds: the
    /// long-run rate is `per_second`.
    pub fn new(per_second: NonZeroU32, burst: NonZeroU32) -> Self {
        let window = u64::from(burst.get()) * NANOS_PER_SECOND / u64::from(per_second.get());
        Self {
            window: window.max(1),
            allowance: burst.get(),
        }
    }

    /// At `now`: the new state if the request is admitted, else how long
    /// until the next window opens.
    pub fn decide(&self, state: u64, now: u64) -> Result<u64, Duration> {
        let window = self.number(now);
        let counted = if state >> 32 == window {
            state as u32
        } else {
            0
        };
        if counted >= self.allowance {
            return Err(Duration::from_nanos(self.window - now % self.window));
        }
        Ok(window << 32 | u64::from(counted + 1))
    }

    /// A count from an earlier window no longer limits anything.
    pub fn is_idle(&self, state: u64, now: u64) -> bool {
        state >> 32 != self.number(now)
    }

    fn number(&self, now: u64) -> u64 {
        u64::from((now / self.window) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn the_allowance_is_counted_per_window_and_restarts_at_the_boundary() {
        let windows = FixedWindow::new(NonZeroU32::new(10).unwrap(), NonZeroU32::new(5).unwrap());
        // 5 per window of 500 ms.
        let mut state = 0;
        for _ in 0..5 {
            state = windows
                .decide(state, 100 * MS)
                .expect("within the allowance");
        }
        assert_eq!(
            windows.decide(state, 499 * MS),
            Err(Duration::from_millis(1)),
            "the sixth waits for the boundary"
        );
        assert!(!windows.is_idle(state, 499 * MS));
        assert!(windows.is_idle(state, 500 * MS));
        let state = windows.decide(state, 500 * MS).expect("a new window");
        assert_eq!(state, 1 << 32 | 1);
    }
}
