//! `SqlOrders` against the real PostgreSQL and MariaDB/MySQL named by
//! SECKILL_TEST_DATABASE_URL_POSTGRES / _MYSQL. Every test makes its own
//! sale, so the tables may hold anything from earlier runs.

use crate::fixtures::{databases, new_sale, now, reservation};
use seckill_cluster::orders::{Dialect, ExpiredOrder, SqlOrders};
use seckill_core::{OrderId, OrderStatus, SaleId, Timestamp, UserId};
use seckill_engine::{CancelOutcome, PayOutcome, UnitsByStatus};
use std::collections::HashSet;

const HOUR_MS: i64 = 3_600_000;

/// `claim_expired` takes due orders of every sale: the tests that sweep take
/// turns, so that none takes another's orders.
static SWEEP: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Sweeps until nothing is due; what it took of `sale`.
async fn sweep(store: &SqlOrders, sale: &SaleId, limit: usize) -> Vec<ExpiredOrder> {
    let mut taken = Vec::new();
    loop {
        let claimed = store
            .claim_expired(Timestamp::now(), limit)
            .await
            .expect("claim");
        if claimed.is_empty() {
            return taken;
        }
        taken.extend(claimed.into_iter().filter(|e| &e.released.sale_id == sale));
    }
}

#[tokio::test]
async fn the_same_batch_twice_makes_each_order_once() {
    for store in databases("the_same_batch_twice_makes_each_order_once").await {
        let sale = new_sale(&store).await;
        let expires = now() + HOUR_MS;
        let mut batch: Vec<_> = (0..5)
            .map(|i| reservation(&sale, &format!("user-{i}"), expires))
            .collect();
        batch[0].idempotency_key = Some("key-1".into());
        batch[1].quantity = 3;
        // Two orders of one user without a key do not collide.
        batch[2].user_id = UserId::from("user-1");
        store.insert_reservations(&batch).await.expect("insert");
        store
            .insert_reservations(&batch)
            .await
            .expect("insert again");
        store
            .insert_reservations(&batch[1..3])
            .await
            .expect("part again");

        let units = store.units_by_status(&sale).await.unwrap();
        assert_eq!(
            units,
            UnitsByStatus {
                pending_payment: 7,
                ..UnitsByStatus::default()
            },
            "{:?}",
            store.dialect()
        );
        let first = store.order(&batch[0].order_id).await.unwrap().unwrap();
        assert_eq!(first.status, OrderStatus::PendingPayment);
        assert_eq!(first.user_id.as_str(), "user-0");
        assert_eq!(first.expires_at, batch[0].expires_at);
        assert_eq!(first.created_at, batch[0].created_at);
        assert_eq!(first.paid_at, None);
        let user_1 = UserId::from("user-1");
        let theirs = store.orders_of(&user_1, Some(&sale)).await.unwrap();
        assert_eq!(theirs.len(), 2);
        assert_eq!(theirs.iter().map(|o| o.quantity).sum::<u64>(), 4);
        let everywhere = store.orders_of(&user_1, None).await.unwrap();
        for order in &theirs {
            assert!(
                everywhere.contains(order),
                "{order:?} missing from all sales"
            );
        }
        // User ids compare exactly (MySQL's default collation would not).
        let upper = UserId::from("USER-1");
        assert!(
            store
                .orders_of(&upper, Some(&sale))
                .await
                .unwrap()
                .is_empty()
        );

        // Another order with a key already answered is not a second order.
        let mut same_key = reservation(&sale, "user-0", expires);
        same_key.idempotency_key = Some("key-1".into());
        store
            .insert_reservations(&[same_key.clone()])
            .await
            .unwrap();
        assert_eq!(store.order(&same_key.order_id).await.unwrap(), None);
        // The same key of another user is another order.
        same_key.user_id = UserId::from("user-4");
        store
            .insert_reservations(&[same_key.clone()])
            .await
            .unwrap();
        assert!(store.order(&same_key.order_id).await.unwrap().is_some());
        assert_eq!(store.order(&OrderId::generate()).await.unwrap(), None);
    }
}

#[tokio::test]
async fn pay_cancel_and_expiry_follow_the_state_machine() {
    for store in databases("pay_cancel_and_expiry_follow_the_state_machine").await {
        let _turn = SWEEP.lock().await;
        let sale = new_sale(&store).await;
        let expires = now() + HOUR_MS;
        let to_pay = reservation(&sale, "alice", expires);
        let to_cancel = reservation(&sale, "alice", expires);
        let late = reservation(&sale, "bob", expires);
        let due = reservation(&sale, "bob", now() - 1_000);
        let batch = [to_pay.clone(), to_cancel.clone(), late.clone(), due.clone()];
        store.insert_reservations(&batch).await.unwrap();
        let alice = UserId::from("alice");
        let bob = UserId::from("bob");
        let before = Timestamp::from_millis(now());

        // Pay: once, again with the same reference, never with another.
        assert_eq!(
            store
                .pay(&to_pay.order_id, &bob, "ref-1", before)
                .await
                .unwrap(),
            PayOutcome::NotFound,
            "someone else's order is not found"
        );
        let PayOutcome::Paid(paid) = store
            .pay(&to_pay.order_id, &alice, "ref-1", before)
            .await
            .unwrap()
        else {
            panic!("not paid");
        };
        assert_eq!(paid.status, OrderStatus::Paid);
        assert_eq!(paid.paid_at, Some(before));
        assert_eq!(paid.payment_ref.as_deref(), Some("ref-1"));
        let later = before.plus_secs(1);
        assert_eq!(
            store
                .pay(&to_pay.order_id, &alice, "ref-1", later)
                .await
                .unwrap(),
            PayOutcome::AlreadyPaid(paid.clone())
        );
        assert_eq!(
            store
                .pay(&to_pay.order_id, &alice, "ref-2", later)
                .await
                .unwrap(),
            PayOutcome::NotPayable
        );
        assert_eq!(
            store.cancel(&to_pay.order_id, &alice, later).await.unwrap(),
            CancelOutcome::NotCancellable
        );

        // Cancel: once, returning the units; then neither payable nor cancellable.
        assert_eq!(
            store
                .cancel(&to_cancel.order_id, &bob, before)
                .await
                .unwrap(),
            CancelOutcome::NotFound
        );
        let CancelOutcome::Cancelled(cancelled, released) = store
            .cancel(&to_cancel.order_id, &alice, before)
            .await
            .unwrap()
        else {
            panic!("not cancelled");
        };
        assert_eq!(cancelled.status, OrderStatus::Cancelled);
        assert_eq!(
            (released.sale_id, released.user_id, released.quantity),
            (sale.clone(), alice.clone(), 1)
        );
        assert_eq!(
            store
                .cancel(&to_cancel.order_id, &alice, before)
                .await
                .unwrap(),
            CancelOutcome::NotCancellable
        );
        assert_eq!(
            store
                .pay(&to_cancel.order_id, &alice, "ref-3", before)
                .await
                .unwrap(),
            PayOutcome::Cancelled
        );

        // Past the deadline: not payable, not cancellable, even before the sweep.
        let at_deadline = late.expires_at;
        assert_eq!(
            store
                .pay(&late.order_id, &bob, "ref-4", at_deadline)
                .await
                .unwrap(),
            PayOutcome::Expired
        );
        assert_eq!(
            store
                .cancel(&late.order_id, &bob, at_deadline)
                .await
                .unwrap(),
            CancelOutcome::NotCancellable
        );

        // The sweep expires what is due, once.
        let swept = sweep(&store, &sale, 1000).await;
        assert_eq!(swept.len(), 1, "{swept:?}");
        assert_eq!(swept[0].order_id, due.order_id);
        assert_eq!(swept[0].released.quantity, 1);
        assert_eq!(sweep(&store, &sale, 1000).await, vec![]);
        assert_eq!(
            store.order(&due.order_id).await.unwrap().unwrap().status,
            OrderStatus::Expired
        );
        assert_eq!(
            store
                .pay(&due.order_id, &bob, "ref-5", before)
                .await
                .unwrap(),
            PayOutcome::Expired
        );
        assert_eq!(
            store.cancel(&due.order_id, &bob, before).await.unwrap(),
            CancelOutcome::NotCancellable
        );

        assert_eq!(
            store.units_by_status(&sale).await.unwrap(),
            UnitsByStatus {
                pending_payment: 1,
                paid: 1,
                expired: 1,
                cancelled: 1,
                ..UnitsByStatus::default()
            }
        );
        let unknown = OrderId::generate();
        assert_eq!(
            store.pay(&unknown, &bob, "r", before).await.unwrap(),
            PayOutcome::NotFound
        );
        assert_eq!(
            store.cancel(&unknown, &bob, before).await.unwrap(),
            CancelOutcome::NotFound
        );
    }
}

#[tokio::test]
async fn pay_racing_expiry_has_exactly_one_winner() {
    for store in databases("pay_racing_expiry_has_exactly_one_winner").await {
        let _turn = SWEEP.lock().await;
        let sale = new_sale(&store).await;
        let deadline = now() - 1;
        let batch: Vec<_> = (0..60)
            .map(|i| reservation(&sale, &format!("racer-{i}"), deadline))
            .collect();
        store.insert_reservations(&batch).await.unwrap();

        // Each payer pays on time by its own clock; the sweepers see the
        // same orders as overdue. Only the status decides.
        let payers = batch.iter().map(|r| {
            let store = store.clone();
            let (order, owner) = (r.order_id.clone(), r.user_id.clone());
            tokio::spawn(async move {
                let on_time = Timestamp::from_millis(deadline - 1);
                let outcome = store.pay(&order, &owner, "ref", on_time).await.unwrap();
                (order, outcome)
            })
        });
        let payers: Vec<_> = payers.collect();
        let sweepers: Vec<_> = (0..2)
            .map(|_| {
                let (store, sale) = (store.clone(), sale.clone());
                tokio::spawn(async move { sweep(&store, &sale, 7).await })
            })
            .collect();
        let mut expired = HashSet::new();
        for sweeper in sweepers {
            for e in sweeper.await.unwrap() {
                assert!(
                    expired.insert(e.order_id.clone()),
                    "{} expired twice",
                    e.order_id
                );
            }
        }
        let mut paid = 0;
        for payer in payers {
            let (order, outcome) = payer.await.unwrap();
            let status = store.order(&order).await.unwrap().unwrap().status;
            match outcome {
                PayOutcome::Paid(_) => {
                    paid += 1;
                    assert!(!expired.contains(&order), "{order} paid and expired");
                    assert_eq!(status, OrderStatus::Paid);
                }
                PayOutcome::Expired => {
                    assert!(expired.contains(&order), "{order} neither paid nor expired");
                    assert_eq!(status, OrderStatus::Expired);
                }
                other => panic!("{order}: {other:?}"),
            }
        }
        assert_eq!(paid + expired.len(), batch.len());
    }
}

#[tokio::test]
async fn concurrent_sweepers_expire_each_order_once() {
    for store in databases("concurrent_sweepers_expire_each_order_once").await {
        let _turn = SWEEP.lock().await;
        let sale = new_sale(&store).await;
        let due = now() - 1_000;
        let batch: Vec<_> = (0..300)
            .map(|i| reservation(&sale, &format!("sleeper-{i}"), due))
            .collect();
        store.insert_reservations(&batch).await.unwrap();
        let not_due = reservation(&sale, "awake", now() + HOUR_MS);
        store
            .insert_reservations(std::slice::from_ref(&not_due))
            .await
            .unwrap();

        let sweepers: Vec<_> = (0..2)
            .map(|_| {
                let (store, sale) = (store.clone(), sale.clone());
                tokio::spawn(async move { sweep(&store, &sale, 25).await })
            })
            .collect();
        let mut expired = HashSet::new();
        let mut per_sweeper = Vec::new();
        for sweeper in sweepers {
            let taken = sweeper.await.unwrap();
            per_sweeper.push(taken.len());
            for e in taken {
                assert_eq!(e.released.quantity, 1);
                assert!(
                    expired.insert(e.order_id.clone()),
                    "{} expired twice",
                    e.order_id
                );
            }
        }
        let wanted: HashSet<_> = batch.iter().map(|r| r.order_id.clone()).collect();
        assert_eq!(expired, wanted, "sweepers took {per_sweeper:?}");
        let units = store.units_by_status(&sale).await.unwrap();
        assert_eq!((units.expired, units.pending_payment), (300, 1));
    }
}

/// A value the database cannot hold (NUL in PostgreSQL text) or a broken
/// constraint is the statement's fault, not an outage: it is told apart,
/// so that it never counts against the store's breaker.
#[tokio::test]
async fn data_the_database_refuses_is_not_an_outage() {
    for store in databases("data_the_database_refuses_is_not_an_outage").await {
        let sale = new_sale(&store).await;
        let order = reservation(&sale, "owner", now() + HOUR_MS);
        store
            .insert_reservations(std::slice::from_ref(&order))
            .await
            .unwrap();
        let paid = store
            .pay(&order.order_id, &order.user_id, "a\0b", Timestamp::now())
            .await;
        match (store.dialect(), paid) {
            (Dialect::Postgres, Err(error)) => {
                assert!(error.is_refusal(), "{error}");
                assert!(!error.is_unreachable(), "{error}");
            }
            // MariaDB keeps NUL in a VARCHAR.
            (Dialect::MySql, Ok(PayOutcome::Paid(_))) => {}
            (dialect, other) => panic!("{dialect:?}: {other:?}"),
        }
        // A row against the schema's CHECK (quantity >= 1).
        let mut none = reservation(&sale, "owner", now() + HOUR_MS);
        none.quantity = 0;
        let checked = store.insert_reservations(&[none]).await.unwrap_err();
        assert!(checked.is_refusal(), "{checked}");
        assert!(!checked.is_unreachable(), "{checked}");
    }
}
