//! The cluster's one clock: Redis'. `reserve.lua` reads Redis' `TIME` for
//! the sale's phase and the payment deadline it writes into the order, so
//! every later judgement of that deadline (pay, cancel, expiry) and every
//! refusal a node makes from memory must use the same clock, or a node
//! whose own clock is off expires orders early, takes payments late, or
//! refuses purchases Redis would accept.
//!
//! A node does not ask Redis the time for each of those: it reads `TIME`
//! with every heartbeat (once a second), corrects the reading by half the
//! round trip, and carries it forward on its monotonic clock, which the
//! node's wall clock (wrong, stepped or faked) does not move. What is
//! left is the reading's uncertainty (half the round trip) and the
//! monotonic clock's drift since, a few milliseconds; refusals from memory
//! stay that far plus [`MARGIN`] away from the boundaries. See
//! docs/decisions/one-clock.md.

use seckill_core::{Sale, SalePhase, Timestamp};
use seckill_engine::clock::RemoteClock;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

/// How far a node's wall clock may be from Redis' before it warns.
pub const SKEW_WARNING: Duration = Duration::from_secs(1);
/// Beyond a reading's own uncertainty: the monotonic clock's drift in the
/// second or so since the reading, and the rounding to milliseconds.
pub const MARGIN: Duration = Duration::from_millis(50);

/// No reading yet.
const UNREAD: i64 = i64::MIN;

/// Redis' clock as this process knows it. Lock-free: read on every
/// purchase triage.
#[derive(Debug)]
pub struct AuthorityClock {
    base: Instant,
    /// Redis' unix milliseconds minus milliseconds since `base`, at the
    /// last reading; [`UNREAD`] before the first.
    offset_ms: AtomicI64,
    /// Half the round trip of that reading, in milliseconds.
    uncertainty_ms: AtomicI64,
    /// Whether the last reading was past [`SKEW_WARNING`] (warned once per
    /// crossing).
    skewed: AtomicBool,
}

impl Default for AuthorityClock {
    fn default() -> Self {
        Self {
            base: Instant::now(),
            offset_ms: AtomicI64::new(UNREAD),
            uncertainty_ms: AtomicI64::new(0),
            skewed: AtomicBool::new(false),
        }
    }
}

impl AuthorityClock {
    /// Redis' time now; the local wall clock until the first reading.
    pub fn now(&self) -> Timestamp {
        match self.offset_ms.load(Ordering::Relaxed) {
            UNREAD => Timestamp::now(),
            offset => Timestamp::from_millis(self.elapsed_ms() + offset),
        }
    }

    /// The sale's phase where Redis would surely find it: `Upcoming` or
    /// `Ended` only when Redis' clock is past the boundary by more than
    /// the uncertainty, `Open` otherwise (Redis then decides). Before the
    /// first reading, always `Open`.
    pub fn phase(&self, sale: &Sale) -> SalePhase {
        let offset = self.offset_ms.load(Ordering::Relaxed);
        if offset == UNREAD {
            return SalePhase::Open;
        }
        let now = self.elapsed_ms() + offset;
        let doubt = self.uncertainty_ms.load(Ordering::Relaxed) + MARGIN.as_millis() as i64;
        match sale.phase(Timestamp::from_millis(now + doubt)) {
            SalePhase::Upcoming => SalePhase::Upcoming,
            _ => match sale.phase(Timestamp::from_millis(now - doubt)) {
                SalePhase::Ended => SalePhase::Ended,
                _ => SalePhase::Open,
            },
        }
    }

    /// How far this process' wall clock is ahead of Redis' (negative:
    /// behind), as of the last reading (`seckill_clock_skew_seconds`).
    pub fn skew_seconds(&self) -> f64 {
        (Timestamp::now().as_millis() - self.now().as_millis()) as f64 / 1000.0
    }

    /// Takes a reading of Redis' clock, `authority`, made by a call sent at
    /// `sent` and answered at `received`; exports the skew
    /// (`seckill_clock_skew_seconds`) and warns when it is past the bound.
    pub fn record(&self, sent: Instant, authority: Timestamp, received: Instant) {
        let half_trip = received.saturating_duration_since(sent) / 2;
        let midpoint = sent.saturating_duration_since(self.base) + half_trip;
        let offset = authority.as_millis() - midpoint.as_millis() as i64;
        self.offset_ms.store(offset, Ordering::Relaxed);
        self.uncertainty_ms
            .store(half_trip.as_millis() as i64 + 1, Ordering::Relaxed);
        let skew = self.skew_seconds();
        let past = skew.abs() > SKEW_WARNING.as_secs_f64();
        if self.skewed.swap(past, Ordering::Relaxed) != past {
            if past {
                tracing::warn!(
                    skew_seconds = skew,
                    bound_seconds = SKEW_WARNING.as_secs_f64(),
                    "this node's clock is off Redis' clock: deadlines and sale phases follow Redis' clock; fix the node's time (NTP)"
                );
            } else {
                tracing::info!(
                    skew_seconds = skew,
                    "this node's clock agrees with Redis' again"
                );
            }
        }
    }

    fn elapsed_ms(&self) -> i64 {
        self.base.elapsed().as_millis() as i64
    }
}

/// The engine judges a node's sale phases by this clock.
impl RemoteClock for AuthorityClock {
    fn now(&self) -> Timestamp {
        AuthorityClock::now(self)
    }

    fn skew_seconds(&self) -> f64 {
        AuthorityClock::skew_seconds(self)
    }

    fn phase(&self, sale: &Sale) -> SalePhase {
        AuthorityClock::phase(self, sale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use seckill_core::{NewSale, SaleId};

    fn sale_from(starts_at: i64, ends_at: i64) -> Sale {
        let new_sale: NewSale =
            serde_json::from_str(r#"{"name":"x","stock":1,"price_cents":1}"#).unwrap();
        let mut sale = new_sale
            .validate(SaleId::generate(), Timestamp::now())
            .unwrap();
        sale.starts_at = Timestamp::from_millis(starts_at);
        sale.ends_at = Some(Timestamp::from_millis(ends_at));
        sale
    }

    #[test]
    fn a_reading_is_carried_forward_whatever_the_wall_clock_says() {
        let clock = AuthorityClock::default();
        let sent = Instant::now();
        // Redis 30 s behind this process' wall clock.
        let redis = Timestamp::from_millis(Timestamp::now().as_millis() - 30_000);
        clock.record(sent, redis, sent);
        let now = clock.now().as_millis();
        assert!((now - redis.as_millis()).abs() < 100, "{now}");
        assert!((clock.skew_seconds() - 30.0).abs() < 0.1);
    }

    #[test]
    fn phases_are_refused_only_past_the_doubt() {
        let clock = AuthorityClock::default();
        let now = Timestamp::now().as_millis();
        let sale = sale_from(now + 10_000, now + 20_000);
        assert_eq!(
            clock.phase(&sale),
            SalePhase::Open,
            "no reading: no shortcut"
        );
        let sent = Instant::now();
        clock.record(sent, Timestamp::from_millis(now), sent);
        assert_eq!(clock.phase(&sale), SalePhase::Upcoming);
        let at_start = sale_from(now + 10, now + 20_000);
        assert_eq!(clock.phase(&at_start), SalePhase::Open);
        let at_end = sale_from(now - 20_000, now - 10);
        assert_eq!(clock.phase(&at_end), SalePhase::Open);
        let ended = sale_from(now - 20_000, now - 10_000);
        assert_eq!(clock.phase(&ended), SalePhase::Ended);
    }
}
