//! What the crowd saw: one `Recorder` per generator thread (no sharing on
//! the hot path), merged when the run ends.

use crate::client::{Answer, is_plain_id};
use hdrhistogram::Histogram;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Latencies are recorded in microseconds, from 1 µs to one minute, with
/// three significant digits.
const LATENCY_MAX_US: u64 = 60_000_000;

/// The purchase answers that matter to a flash sale, by error code.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct Outcomes {
    pub reserved: u64,
    pub sold_out: u64,
    pub limit_reached: u64,
    pub rate_limited: u64,
    pub other: u64,
}

/// Requests completed in one second of the run, by class of answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct Second {
    pub second: u64,
    pub requests: u64,
    /// 2xx answers.
    pub ok: u64,
    /// 4xx answers: refusals such as sold out.
    pub refused: u64,
    /// 5xx answers and requests that got no answer.
    pub failed: u64,
}

/// A reservation the crowd was told about: who holds which order.
#[derive(Clone, Debug)]
pub struct Reserved {
    pub user: usize,
    pub order_id: String,
}

#[derive(Deserialize)]
struct ErrorBody<'a> {
    #[serde(borrow)]
    error: ErrorDetail<'a>,
}

#[derive(Deserialize)]
struct ErrorDetail<'a> {
    code: &'a str,
}

#[derive(Deserialize)]
struct OrderBody {
    order_id: String,
}

/// The error code of an API error body, if it is one.
pub fn error_code(body: &[u8]) -> Option<&str> {
    serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .map(|body| body.error.code)
}

/// The order id of a 202 purchase answer or an order body, if it is one
/// that can be put in a path.
pub fn order_id(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<OrderBody>(body)
        .ok()
        .map(|body| body.order_id)
        .filter(|id| is_plain_id(id))
}

pub struct Recorder {
    start: Instant,
    pub latency: Histogram<u64>,
    pub status: BTreeMap<u16, u64>,
    pub codes: BTreeMap<String, u64>,
    pub outcomes: Outcomes,
    /// Requests that got no answer (connect, write or read failed).
    pub errors: u64,
    pub timeline: Vec<Second>,
    pub reserved: Vec<Reserved>,
    /// Users whose purchase was decided by stock (reserved or sold out),
    /// one bit each: the buyers `reserved == min(stock, buyers)` counts.
    pub decided: Vec<u64>,
    /// When the first `sold_out` came back, since the start.
    pub first_sold_out: Option<Duration>,
    pub paid: u64,
}

impl Recorder {
    pub fn new(start: Instant, users: usize) -> Self {
        Self {
            start,
            latency: Histogram::new_with_bounds(1, LATENCY_MAX_US, 3)
                .expect("constant histogram bounds are valid"),
            status: BTreeMap::new(),
            codes: BTreeMap::new(),
            outcomes: Outcomes::default(),
            errors: 0,
            timeline: Vec::new(),
            reserved: Vec::new(),
            decided: vec![0; users.div_ceil(64)],
            first_sold_out: None,
            paid: 0,
        }
    }

    /// Records one answered request; `latency_from` is when it was sent, or
    /// when it should have been sent under `--rate`.
    pub fn answer(&mut self, latency_from: Instant, answer: &Answer) {
        let now = Instant::now();
        self.record_latency(now - latency_from);
        *self.status.entry(answer.status).or_default() += 1;
        let second = self.second(now);
        match answer.status {
            200..=299 => second.ok += 1,
            400..=499 => second.refused += 1,
            _ => second.failed += 1,
        }
        if answer.status >= 400 {
            let code = error_code(&answer.body).unwrap_or("(no error code)");
            match self.codes.get_mut(code) {
                Some(count) => *count += 1,
                None => {
                    self.codes.insert(code.to_string(), 1);
                }
            }
        }
    }

    /// Records a request that got no answer.
    pub fn error(&mut self, latency_from: Instant) {
        let now = Instant::now();
        self.record_latency(now - latency_from);
        self.errors += 1;
        self.second(now).failed += 1;
    }

    /// Classifies a purchase answer by user (already passed to [`answer`]).
    pub fn purchase(&mut self, user: usize, answer: &Answer) {
        let code = match answer.status {
            202 => {
                self.outcomes.reserved += 1;
                self.decide(user);
                match order_id(&answer.body) {
                    Some(order_id) => self.reserved.push(Reserved { user, order_id }),
                    None => self.outcomes.other += 1,
                }
                return;
            }
            _ => error_code(&answer.body),
        };
        match code {
            Some("sold_out") => {
                self.outcomes.sold_out += 1;
                self.decide(user);
                self.first_sold_out
                    .get_or_insert_with(|| self.start.elapsed());
            }
            Some("limit_reached") => self.outcomes.limit_reached += 1,
            Some("rate_limited") => self.outcomes.rate_limited += 1,
            _ => self.outcomes.other += 1,
        }
    }

    fn decide(&mut self, user: usize) {
        self.decided[user / 64] |= 1 << (user % 64);
    }

    /// Distinct users whose purchase was decided by stock.
    pub fn decided_users(&self) -> u64 {
        self.decided.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    pub fn requests(&self) -> u64 {
        self.status.values().sum::<u64>() + self.errors
    }

    fn record_latency(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latency.saturating_record(micros.max(1));
    }

    fn second(&mut self, now: Instant) -> &mut Second {
        let second = bucket(&mut self.timeline, (now - self.start).as_secs());
        second.requests += 1;
        second
    }

    /// Adds another thread's recording into this one.
    pub fn merge(&mut self, other: Recorder) {
        self.latency
            .add(&other.latency)
            .expect("histograms share their bounds");
        for (status, count) in other.status {
            *self.status.entry(status).or_default() += count;
        }
        for (code, count) in other.codes {
            *self.codes.entry(code).or_default() += count;
        }
        let o = other.outcomes;
        self.outcomes.reserved += o.reserved;
        self.outcomes.sold_out += o.sold_out;
        self.outcomes.limit_reached += o.limit_reached;
        self.outcomes.rate_limited += o.rate_limited;
        self.outcomes.other += o.other;
        self.errors += other.errors;
        for theirs in other.timeline {
            let ours = bucket(&mut self.timeline, theirs.second);
            ours.requests += theirs.requests;
            ours.ok += theirs.ok;
            ours.refused += theirs.refused;
            ours.failed += theirs.failed;
        }
        self.reserved.extend(other.reserved);
        for (ours, theirs) in self.decided.iter_mut().zip(other.decided) {
            *ours |= theirs;
        }
        self.first_sold_out = match (self.first_sold_out, other.first_sold_out) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.paid += other.paid;
    }
}

/// The timeline's bucket for `second`, growing the timeline up to it.
fn bucket(timeline: &mut Vec<Second>, second: u64) -> &mut Second {
    let index = usize::try_from(second).unwrap_or(usize::MAX);
    while timeline.len() <= index {
        let second = timeline.len() as u64;
        timeline.push(Second {
            second,
            ..Second::default()
        });
    }
    &mut timeline[index]
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn answer(status: u16, body: &'static str) -> Answer {
        Answer {
            status,
            body: Bytes::from_static(body.as_bytes()),
        }
    }

    #[test]
    fn classifies_purchase_answers_and_merges_threads() {
        let start = Instant::now();
        let mut one = Recorder::new(start, 100);
        let mut two = Recorder::new(start, 100);
        let reserved = answer(202, r#"{"order_id":"o1","status":"pending_payment"}"#);
        let sold_out = answer(409, r#"{"error":{"code":"sold_out","message":"x"}}"#);
        let limit = answer(409, r#"{"error":{"code":"limit_reached","message":"x"}}"#);
        let see = |recorder: &mut Recorder, user: usize, answer: &Answer| {
            recorder.answer(start, answer);
            recorder.purchase(user, answer);
        };
        see(&mut one, 1, &reserved);
        see(&mut one, 2, &sold_out);
        see(&mut two, 2, &sold_out);
        see(&mut two, 3, &limit);
        two.error(start);
        one.merge(two);
        assert_eq!(
            one.outcomes,
            Outcomes {
                reserved: 1,
                sold_out: 2,
                limit_reached: 1,
                ..Outcomes::default()
            }
        );
        assert_eq!(one.requests(), 5);
        assert_eq!(one.errors, 1);
        assert_eq!(one.status[&409], 3);
        assert_eq!(one.codes["sold_out"], 2);
        assert_eq!(
            one.decided_users(),
            2,
            "users 1 and 2; 3 was refused by limit"
        );
        assert_eq!(one.reserved[0].order_id, "o1");
        assert!(one.first_sold_out.is_some());
        assert_eq!(one.timeline[0].requests, 5);
        assert_eq!(one.timeline[0].failed, 1);
    }
}
