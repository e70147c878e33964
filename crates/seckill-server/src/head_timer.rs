//! hyper's timer for one connection, which hyper uses only for the time
//! limit on sending a request's head. hyper asks for a new sleep for every
//! head it reads; with hyper-util's `TokioTimer` each is a new tokio timer
//! (the runtime handle cloned, an entry filed in the runtime's timer wheel
//! and taken out again): about 0.6 µs of the ~10 µs a sold-out answer cost
//! here (ARCHITECTURE.md, "Request metrics, measured"). Here every sleep of
//! a connection shares one tokio sleep, which is left at an earlier
//! deadline while later ones are asked for: when it comes due it wakes the
//! connection, which moves it to the deadline then current. So the wheel
//! sees a connection once per time limit, not once per request, and no
//! deadline is reported passed before it is.

use hyper::rt::{Sleep, Timer};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// One connection's timer.
#[derive(Clone, Default)]
pub struct HeadTimer {
    /// Made on first use, in the runtime.
    shared: Arc<Mutex<Option<Pin<Box<tokio::time::Sleep>>>>>,
}

impl Timer for HeadTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        self.sleep_until(self.now() + duration)
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        Box::pin(Deadline {
            at: deadline.into(),
            shared: Arc::clone(&self.shared),
        })
    }

    /// The runtime's clock, which the sleeps go by.
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn Sleep>>, new_deadline: Instant) {
        if let Some(mut deadline) = sleep.as_mut().downcast_mut_pin::<Deadline>() {
            deadline.at = new_deadline.into();
        }
    }
}

/// One sleep hyper asked for.
struct Deadline {
    at: tokio::time::Instant,
    shared: Arc<Mutex<Option<Pin<Box<tokio::time::Sleep>>>>>,
}

impl Sleep for Deadline {}

impl Future for Deadline {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let at = self.at;
        let mut shared = self
            .shared
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let sleep = shared.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
        loop {
            let due = sleep.as_mut().poll(cx).is_ready();
            match (due, sleep.deadline() >= at) {
                // Due at or after ours: ours has passed.
                (true, true) => return Poll::Ready(()),
                // An earlier deadline came due; it wakes us, we sleep on.
                (true, false) => sleep.as_mut().reset(at),
                // It will wake us in time, to look again.
                (false, false) => return Poll::Pending,
                // Only if deadlines went backwards: it would wake us late.
                (false, true) if sleep.deadline() > at => sleep.as_mut().reset(at),
                (false, true) => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;

    fn is_due(sleep: &mut Pin<Box<dyn Sleep>>) -> bool {
        let waker = std::task::Waker::noop();
        sleep
            .as_mut()
            .poll(&mut Context::from_waker(waker))
            .is_ready()
    }

    #[tokio::test(start_paused = true)]
    async fn each_sleep_ends_at_its_own_deadline() {
        let timer = HeadTimer::default();
        let start = timer.now();
        let mut first = timer.sleep_until(start + Duration::from_secs(10));
        assert!(!is_due(&mut first));
        drop(first);
        tokio::time::advance(Duration::from_secs(5)).await;
        // The next head's deadline, later than the one the shared sleep has.
        let mut second = timer.sleep_until(start + Duration::from_secs(15));
        assert!(!is_due(&mut second));
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(
            !is_due(&mut second),
            "the first deadline is not the second's"
        );
        tokio::time::advance(Duration::from_secs(4)).await;
        assert!(is_due(&mut second));
        // An earlier deadline than the shared sleep's still comes in time.
        let mut third = timer.sleep(Duration::from_secs(30));
        assert!(!is_due(&mut third));
        let mut fourth = timer.sleep(Duration::from_secs(1));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(is_due(&mut fourth));
        // And hyper awaiting one wakes when it is due.
        let mut fifth = timer.sleep(Duration::from_secs(3));
        let waited = tokio::time::Instant::now();
        poll_fn(|cx| fifth.as_mut().poll(cx)).await;
        assert!(waited.elapsed() >= Duration::from_secs(3));
    }
}
