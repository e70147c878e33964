//! The order lifecycle: what paying, cancelling and the deadline do to an
//! order, decided by one function, [`decide`], that every store calls.
//!
//! ```text
//! queued ──► pending_payment ──► paid
//!                 │  └─────────► cancelled   (owner cancels; units return)
//!                 └────────────► expired     (deadline passes; units return)
//! ```
//!
//! Embedded reservations start as `pending_payment`; `queued` is for cluster
//! mode, where a consumer turns a reservation into a payable order.
//!
//! A store does the atomic part: it reads the order, asks [`decide`], and
//! writes the [`Transition`] as one compare-and-set on the status it read
//! and on the deadline, so that pay, cancel and expiry of one order can
//! never both win. A write that lost a race is decided again from the order
//! read anew; statuses only move forward, so that ends.

use crate::ids::UserId;
use crate::order::{Order, OrderStatus};
use crate::time::Timestamp;

/// What happens to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// `by` pays it with a payment reference.
    Pay {
        by: &'a UserId,
        payment_ref: &'a str,
    },
    /// `by` gives it up.
    Cancel { by: &'a UserId },
    /// The expiry sweep looks at it.
    Expire,
}

impl<'a> Event<'a> {
    /// The payment reference a payment records.
    pub fn payment_ref(self) -> Option<&'a str> {
        match self {
            Self::Pay { payment_ref, .. } => Some(payment_ref),
            Self::Cancel { .. } | Self::Expire => None,
        }
    }
}

/// Where an order's deadline stands at an instant: it passes at
/// `expires_at` itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Deadline {
    Ahead,
    Passed,
}

impl Deadline {
    pub fn at(expires_at: Timestamp, now: Timestamp) -> Self {
        if now < expires_at {
            Self::Ahead
        } else {
            Self::Passed
        }
    }
}

/// A change of status to write, only where the order still has status
/// `from` and its deadline still stands as `deadline` (compare-and-set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Transition {
    pub from: OrderStatus,
    pub to: OrderStatus,
    pub deadline: Deadline,
}

impl Transition {
    /// The payment reference the write records: a payment's, on the
    /// transition to `paid` only.
    pub fn payment_ref<'a>(self, event: Event<'a>) -> Option<&'a str> {
        event.payment_ref().filter(|_| self.to == OrderStatus::Paid)
    }

    /// Whether the order's units go back on sale.
    pub const fn releases(self) -> bool {
        self.from.holds_stock() && !self.to.holds_stock()
    }
}

/// What the caller answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Paid now.
    Paid,
    /// Paid earlier with the same payment reference: the same answer, and
    /// nothing changes (so nothing is counted twice).
    AlreadyPaid,
    /// Another user's order: it stays unseen.
    NotFound,
    /// The deadline passed first (the order may still await the sweep).
    Expired,
    /// The owner cancelled it.
    Cancelled,
    /// Still queued, or already paid with another payment reference.
    NotPayable,
    /// Only an unpaid order within its deadline can be cancelled.
    NotCancellable,
    /// Cancelled or expired now: its units go back on sale.
    Released,
    /// Nothing for the deadline to end: paid, cancelled, expired already,
    /// queued, or before its deadline.
    NotDue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// What to write; `None`: nothing.
    pub transition: Option<Transition>,
    pub answer: Answer,
}

/// The one status the deadline ends. Stores look for due orders among
/// these (an indexed query); [`decide`] has the last word on each.
pub const EXPIRES_FROM: OrderStatus = OrderStatus::PendingPayment;

/// What `event` does to `order` (as stored) at `now`.
pub fn decide(order: &Order, event: Event<'_>, now: Timestamp) -> Decision {
    use OrderStatus::{Cancelled, Expired, Paid, PendingPayment, Queued};
    let deadline = Deadline::at(order.expires_at, now);
    let moves = |to, answer| Decision {
        transition: Some(Transition {
            from: order.status,
            to,
            deadline,
        }),
        answer,
    };
    let stays = |answer| Decision {
        transition: None,
        answer,
    };
    match event {
        Event::Pay { by, .. } | Event::Cancel { by } if *by != order.user_id => {
            stays(Answer::NotFound)
        }
        Event::Pay { payment_ref, .. } => match (order.status, deadline) {
            (PendingPayment, Deadline::Ahead) => moves(Paid, Answer::Paid),
            (PendingPayment, Deadline::Passed) | (Expired, _) => stays(Answer::Expired),
            (Paid, _) if order.payment_ref.as_deref() == Some(payment_ref) => {
                stays(Answer::AlreadyPaid)
            }
            (Paid | Queued, _) => stays(Answer::NotPayable),
            (Cancelled, _) => stays(Answer::Cancelled),
        },
        Event::Cancel { .. } => match (order.status, deadline) {
            (PendingPayment, Deadline::Ahead) => moves(Cancelled, Answer::Released),
            _ => stays(Answer::NotCancellable),
        },
        Event::Expire => match (order.status, deadline) {
            (EXPIRES_FROM, Deadline::Passed) => moves(Expired, Answer::Released),
            _ => stays(Answer::NotDue),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{OrderId, SaleId};
    use OrderStatus::{Cancelled, Expired, Paid, PendingPayment, Queued};

    const DEADLINE: Timestamp = Timestamp::from_millis(1_000_000);
    const STORED_REF: &str = "ref-1";

    fn order(status: OrderStatus, payment_ref: Option<&str>) -> Order {
        Order {
            id: OrderId::generate(),
            sale_id: SaleId::generate(),
            user_id: UserId::from("owner"),
            quantity: 2,
            status,
            queue_position: None,
            created_at: Timestamp::from_millis(0),
            expires_at: DEADLINE,
            paid_at: None,
            payment_ref: payment_ref.map(String::from),
        }
    }

    /// Instants around the deadline: before, at, after.
    const TIMES: [(Timestamp, Deadline); 3] = [
        (Timestamp::from_millis(999_999), Deadline::Ahead),
        (DEADLINE, Deadline::Passed),
        (Timestamp::from_millis(1_000_001), Deadline::Passed),
    ];

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Who {
        Owner,
        Other,
    }

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Kind {
        Pay { who: Who, same_ref: bool },
        Cancel(Who),
        Expire,
    }

    const KINDS: [Kind; 7] = [
        Kind::Pay {
            who: Who::Owner,
            same_ref: true,
        },
        Kind::Pay {
            who: Who::Owner,
            same_ref: false,
        },
        Kind::Pay {
            who: Who::Other,
            same_ref: true,
        },
        Kind::Pay {
            who: Who::Other,
            same_ref: false,
        },
        Kind::Cancel(Who::Owner),
        Kind::Cancel(Who::Other),
        Kind::Expire,
    ];

    /// The specification, one rule a line, first match wins: (status
    /// (None: any), kind, deadline (None: either), stored reference
    /// matches the payment's (None: either)) → (status to write, answer).
    #[allow(clippy::type_complexity)]
    fn specification() -> Vec<(
        Option<OrderStatus>,
        fn(Kind) -> bool,
        Option<Deadline>,
        Option<bool>,
        Option<OrderStatus>,
        Answer,
    )> {
        use Answer as A;
        use Deadline::{Ahead, Passed};
        let pay: fn(Kind) -> bool = |k| matches!(k, Kind::Pay { .. });
        let pay_by_other: fn(Kind) -> bool = |k| {
            matches!(
                k,
                Kind::Pay {
                    who: Who::Other,
                    ..
                }
            )
        };
        let cancel: fn(Kind) -> bool = |k| matches!(k, Kind::Cancel(_));
        let cancel_by_other: fn(Kind) -> bool = |k| k == Kind::Cancel(Who::Other);
        let expire: fn(Kind) -> bool = |k| k == Kind::Expire;
        vec![
            (None, pay_by_other, None, None, None, A::NotFound),
            (None, cancel_by_other, None, None, None, A::NotFound),
            (
                Some(PendingPayment),
                pay,
                Some(Ahead),
                None,
                Some(Paid),
                A::Paid,
            ),
            (
                Some(PendingPayment),
                pay,
                Some(Passed),
                None,
                None,
                A::Expired,
            ),
            (Some(Paid), pay, None, Some(true), None, A::AlreadyPaid),
            (Some(Paid), pay, None, Some(false), None, A::NotPayable),
            (Some(Queued), pay, None, None, None, A::NotPayable),
            (Some(Expired), pay, None, None, None, A::Expired),
            (Some(Cancelled), pay, None, None, None, A::Cancelled),
            (
                Some(PendingPayment),
                cancel,
                Some(Ahead),
                None,
                Some(Cancelled),
                A::Released,
            ),
            (None, cancel, None, None, None, A::NotCancellable),
            (
                Some(PendingPayment),
                expire,
                Some(Passed),
                None,
                Some(Expired),
                A::Released,
            ),
            (None, expire, None, None, None, A::NotDue),
        ]
    }

    /// Every status × every event × before, at and after the deadline ×
    /// owner or not × the same or another payment reference × a reference
    /// stored or not, against the specification.
    #[test]
    fn every_case_follows_the_specification() {
        let owner = UserId::from("owner");
        let other = UserId::from("someone-else");
        let spec = specification();
        let mut cases = 0;
        for status in OrderStatus::ALL {
            for stored in [None, Some(STORED_REF)] {
                let order = order(status, stored);
                for kind in KINDS {
                    for (now, deadline) in TIMES {
                        let event = match kind {
                            Kind::Pay { who, same_ref } => Event::Pay {
                                by: if who == Who::Owner { &owner } else { &other },
                                payment_ref: if same_ref { STORED_REF } else { "ref-2" },
                            },
                            Kind::Cancel(who) => Event::Cancel {
                                by: if who == Who::Owner { &owner } else { &other },
                            },
                            Kind::Expire => Event::Expire,
                        };
                        let ref_matches = matches!(kind, Kind::Pay { same_ref: true, .. })
                            && stored == Some(STORED_REF);
                        let (to, answer) = spec
                            .iter()
                            .find(|(s, k, d, r, _, _)| {
                                s.is_none_or(|s| s == status)
                                    && k(kind)
                                    && d.is_none_or(|d| d == deadline)
                                    && r.is_none_or(|r| r == ref_matches)
                            })
                            .map(|&(_, _, _, _, to, answer)| (to, answer))
                            .expect("the specification covers every case");
                        let expected = Decision {
                            transition: to.map(|to| Transition {
                                from: status,
                                to,
                                deadline,
                            }),
                            answer,
                        };
                        let case = format!("{status:?} ref {stored:?}, {kind:?} at {now:?}");
                        assert_eq!(decide(&order, event, now), expected, "{case}");
                        cases += 1;
                    }
                }
            }
        }
        assert_eq!(cases, 5 * 2 * 7 * 3);
    }

    #[test]
    fn paying_again_with_the_same_reference_changes_nothing() {
        let owner = UserId::from("owner");
        let pay = |payment_ref| Event::Pay {
            by: &owner,
            payment_ref,
        };
        let pending = order(PendingPayment, None);
        let before = Timestamp::from_millis(1);
        let first = decide(&pending, pay(STORED_REF), before);
        assert_eq!(first.answer, Answer::Paid);
        let paid = order(Paid, Some(STORED_REF));
        // Even past the deadline: the payment was made before it.
        for (now, _) in TIMES {
            assert_eq!(
                decide(&paid, pay(STORED_REF), now),
                Decision {
                    transition: None,
                    answer: Answer::AlreadyPaid
                }
            );
            assert_eq!(decide(&paid, pay("ref-2"), now).answer, Answer::NotPayable);
        }
    }

    #[test]
    fn only_cancel_and_expiry_release_units() {
        let owner = UserId::from("owner");
        let events = [
            Event::Pay {
                by: &owner,
                payment_ref: STORED_REF,
            },
            Event::Cancel { by: &owner },
            Event::Expire,
        ];
        for status in OrderStatus::ALL {
            let order = order(status, None);
            for event in events {
                for (now, _) in TIMES {
                    let decision = decide(&order, event, now);
                    let released = decision.transition.is_some_and(Transition::releases);
                    assert_eq!(
                        released,
                        decision.answer == Answer::Released,
                        "{status:?} {event:?} at {now:?}"
                    );
                    assert_eq!(
                        decision.transition.is_some(),
                        matches!(decision.answer, Answer::Paid | Answer::Released),
                        "{status:?} {event:?} at {now:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_deadline_passes_at_its_instant() {
        assert_eq!(
            Deadline::at(DEADLINE, Timestamp::from_millis(999_999)),
            Deadline::Ahead
        );
        assert_eq!(Deadline::at(DEADLINE, DEADLINE), Deadline::Passed);
    }

    #[test]
    fn events_carry_their_payment_reference() {
        let owner = UserId::from("owner");
        let pay = Event::Pay {
            by: &owner,
            payment_ref: "r",
        };
        assert_eq!(pay.payment_ref(), Some("r"));
        assert_eq!(Event::Cancel { by: &owner }.payment_ref(), None);
        assert_eq!(Event::Expire.payment_ref(), None);
    }
}
