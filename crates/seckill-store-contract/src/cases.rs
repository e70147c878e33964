//! The cases. Each makes a sale of its own, so a shared database may hold
//! anything else; only the expiry sweep reaches across sales, so the cases
//! that sweep, or that need an overdue order left unswept, take turns
//! ([`SWEEPS`]) and count only their own sale's releases.

use crate::{Harness, Rebuilt};
use futures::future::join_all;
use seckill_core::{Order, OrderId, OrderStatus, Sale, SaleId, Timestamp, UserId};
use seckill_engine::{CancelOutcome, PayOutcome, ReleasedUnits, Reservation, Store, UnitsByStatus};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use tokio::sync::Mutex;

static SWEEPS: Mutex<()> = Mutex::const_new(());

const HOUR_MS: i64 = 3_600_000;
/// Races run this many rounds, all at once.
const ROUNDS: usize = 40;

fn now_ms() -> i64 {
    Timestamp::now().as_millis()
}

fn at(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}

async fn new_sale(harness: &dyn Harness) -> SaleId {
    let now = Timestamp::now();
    let sale = Sale {
        id: SaleId::generate(),
        name: "contract".into(),
        stock: 10_000,
        price_cents: 100,
        starts_at: at(now.as_millis() - 60_000),
        ends_at: None,
        per_user_limit: 100,
        payment_timeout_secs: 600,
        require_purchase_token: false,
        created_at: now,
    };
    harness
        .store()
        .create_sale(&sale)
        .await
        .expect("create sale");
    sale.id
}

/// A new `pending_payment` order of `user` due at `expires_at`.
async fn put(
    harness: &dyn Harness,
    sale: &SaleId,
    user: &str,
    quantity: u64,
    key: Option<&str>,
    expires_at: Timestamp,
) -> Order {
    let reservation = Reservation {
        order_id: OrderId::generate(),
        sale_id: sale.clone(),
        user_id: UserId::from(user),
        quantity,
        idempotency_key: key.map(String::from),
        created_at: Timestamp::now(),
        expires_at,
    };
    harness.put(&reservation).await;
    let order = stored(harness.store(), &reservation.order_id).await;
    assert_eq!(order.status, OrderStatus::PendingPayment, "{order:?}");
    assert_eq!(
        (&order.user_id, order.quantity, order.expires_at),
        (&reservation.user_id, quantity, expires_at)
    );
    order
}

/// A pending order due in an hour.
async fn pending(harness: &dyn Harness, sale: &SaleId, user: &str) -> Order {
    put(harness, sale, user, 1, None, at(now_ms() + HOUR_MS)).await
}

async fn stored(store: &dyn Store, id: &OrderId) -> Order {
    store
        .order(id)
        .await
        .expect("read order")
        .unwrap_or_else(|| panic!("order {id} not found"))
}

async fn status(store: &dyn Store, id: &OrderId) -> OrderStatus {
    stored(store, id).await.status
}

async fn pay(store: &dyn Store, order: &Order, by: &str, payment_ref: &str) -> PayOutcome {
    store
        .pay(&order.id, &UserId::from(by), payment_ref)
        .await
        .expect("pay")
}

async fn cancel(store: &dyn Store, order: &Order, by: &str) -> CancelOutcome {
    store
        .cancel(&order.id, &UserId::from(by))
        .await
        .expect("cancel")
}

/// A paid order (with `ref-1`).
async fn paid(harness: &dyn Harness, sale: &SaleId, user: &str) -> Order {
    let order = pending(harness, sale, user).await;
    match pay(harness.store(), &order, user, "ref-1").await {
        PayOutcome::Paid(paid) => paid,
        other => panic!("paying {order:?}: {other:?}"),
    }
}

/// A cancelled order.
async fn cancelled(harness: &dyn Harness, sale: &SaleId, user: &str) -> Order {
    let order = pending(harness, sale, user).await;
    match cancel(harness.store(), &order, user).await {
        CancelOutcome::Cancelled(cancelled, _) => cancelled,
        other => panic!("cancelling {order:?}: {other:?}"),
    }
}

/// Runs the sweep until none of `orders` is pending any more (a sweeper
/// elsewhere may take some first); what these sweeps released of `sale`.
/// Call with [`SWEEPS`] held.
async fn sweep_until_settled(
    store: &dyn Store,
    sale: &SaleId,
    orders: &[&OrderId],
) -> Vec<ReleasedUnits> {
    let mut released = Vec::new();
    for _ in 0..100 {
        let swept = store.expire_due().await.expect("expire_due");
        released.extend(swept.into_iter().filter(|units| &units.sale_id == sale));
        let mut settled = true;
        for id in orders {
            settled &= status(store, id).await != OrderStatus::PendingPayment;
        }
        if settled {
            return released;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{orders:?} still pending after 100 sweeps");
}

/// An expired order (due a minute ago, then swept).
async fn expired(harness: &dyn Harness, sale: &SaleId, user: &str, key: Option<&str>) -> Order {
    let order = put(harness, sale, user, 1, key, at(now_ms() - 60_000)).await;
    sweep_until_settled(harness.store(), sale, &[&order.id]).await;
    let order = stored(harness.store(), &order.id).await;
    assert_eq!(order.status, OrderStatus::Expired, "{order:?}");
    order
}

/// How many times each user's units came back.
fn releases_by_user(released: &[ReleasedUnits]) -> HashMap<UserId, usize> {
    let mut by_user = HashMap::new();
    for units in released {
        *by_user.entry(units.user_id.clone()).or_default() += 1;
    }
    by_user
}

/// pending → paid (the order as stored, reference and time recorded);
/// from every other status, a refusal that changes nothing.
pub async fn pay_moves_only_a_pending_order(harness: &mut dyn Harness) {
    let _turn = SWEEPS.lock().await;
    let h = &*harness;
    let store = h.store();
    let sale = new_sale(h).await;

    let order = pending(h, &sale, "payer").await;
    let before = Timestamp::now();
    let PayOutcome::Paid(paid) = pay(store, &order, "payer", "ref-1").await else {
        panic!("a pending order within its deadline is payable");
    };
    assert_eq!(paid.status, OrderStatus::Paid);
    assert_eq!(paid.payment_ref.as_deref(), Some("ref-1"));
    assert!(
        paid.paid_at
            .is_some_and(|t| t >= at(before.as_millis() - 1_000))
    );
    assert_eq!(
        (paid.id.clone(), paid.quantity, paid.expires_at),
        (order.id.clone(), order.quantity, order.expires_at)
    );
    assert_eq!(
        stored(store, &order.id).await,
        paid,
        "the answer is what is stored"
    );
    assert_eq!(
        pay(store, &paid, "payer", "ref-2").await,
        PayOutcome::NotPayable
    );

    let cancelled = cancelled(h, &sale, "canceller").await;
    assert_eq!(
        pay(store, &cancelled, "canceller", "ref-1").await,
        PayOutcome::Cancelled
    );
    let expired = expired(h, &sale, "sleeper", None).await;
    assert_eq!(
        pay(store, &expired, "sleeper", "ref-1").await,
        PayOutcome::Expired
    );

    for order in [&paid, &cancelled, &expired] {
        assert_eq!(
            &stored(store, &order.id).await,
            order,
            "a refusal changes nothing"
        );
    }
    assert_eq!(
        store.units_by_status(&sale).await.unwrap(),
        UnitsByStatus {
            paid: 1,
            cancelled: 1,
            expired: 1,
            ..UnitsByStatus::default()
        }
    );
}

/// pending (within its deadline) → cancelled, with the units it held;
/// from every other status, not cancellable and unchanged.
pub async fn cancel_moves_only_a_pending_order(harness: &mut dyn Harness) {
    let _turn = SWEEPS.lock().await;
    let h = &*harness;
    let store = h.store();
    let sale = new_sale(h).await;

    let order = put(h, &sale, "canceller", 3, None, at(now_ms() + HOUR_MS)).await;
    let CancelOutcome::Cancelled(cancelled, released) = cancel(store, &order, "canceller").await
    else {
        panic!("a pending order within its deadline is cancellable");
    };
    assert_eq!(cancelled.status, OrderStatus::Cancelled);
    assert_eq!(
        cancelled,
        Order {
            status: OrderStatus::Cancelled,
            ..order.clone()
        }
    );
    assert_eq!(
        released,
        ReleasedUnits {
            sale_id: sale.clone(),
            user_id: UserId::from("canceller"),
            quantity: 3,
        }
    );
    assert_eq!(stored(store, &order.id).await, cancelled);
    assert_eq!(
        cancel(store, &cancelled, "canceller").await,
        CancelOutcome::NotCancellable,
        "cancelled once only"
    );

    let paid = paid(h, &sale, "payer").await;
    let expired = expired(h, &sale, "sleeper", None).await;
    let overdue = put(h, &sale, "late", 1, None, at(now_ms() - 60_000)).await;
    for order in [&paid, &expired, &overdue] {
        assert_eq!(
            cancel(store, order, order.user_id.as_str()).await,
            CancelOutcome::NotCancellable,
            "{order:?}"
        );
        assert_eq!(
            &stored(store, &order.id).await,
            order,
            "a refusal changes nothing"
        );
    }
    assert_eq!(
        store.units_by_status(&sale).await.unwrap(),
        UnitsByStatus {
            pending_payment: 1,
            paid: 1,
            cancelled: 3,
            expired: 1,
            ..UnitsByStatus::default()
        }
    );
}

/// The sweep expires the pending orders past their deadline, once each,
/// and returns their units; it leaves every other order as it is.
pub async fn expiry_moves_only_an_overdue_pending_order(harness: &mut dyn Harness) {
    let _turn = SWEEPS.lock().await;
    let h = &*harness;
    let store = h.store();
    let sale = new_sale(h).await;
    let minute_ago = at(now_ms() - 60_000);

    let due = put(h, &sale, "due", 2, None, minute_ago).await;
    let also_due = put(h, &sale, "also-due", 1, None, minute_ago).await;
    let not_due = pending(h, &sale, "not-due").await;
    // Paid, then past its deadline: the payment stands.
    let paid_late = put(h, &sale, "paid", 1, None, at(now_ms() + 1_500)).await;
    let PayOutcome::Paid(paid_late) = pay(store, &paid_late, "paid", "ref-1").await else {
        panic!("payable within its deadline");
    };
    let cancelled = cancelled(h, &sale, "cancelled").await;
    tokio::time::sleep(Duration::from_millis(1_600)).await;

    let released = sweep_until_settled(store, &sale, &[&due.id, &also_due.id]).await;
    assert_eq!(released.len(), 2, "{released:?}");
    for order in [&due, &also_due] {
        let expired = stored(store, &order.id).await;
        assert_eq!(
            expired,
            Order {
                status: OrderStatus::Expired,
                ..order.clone()
            }
        );
        assert!(released.contains(&ReleasedUnits::of(order)), "{released:?}");
    }
    let again = store.expire_due().await.unwrap();
    assert!(
        !again.iter().any(|units| units.sale_id == sale),
        "expired twice: {again:?}"
    );
    for order in [&not_due, &paid_late, &cancelled] {
        assert_eq!(&stored(store, &order.id).await, order, "the sweep left it");
    }
    assert_eq!(
        store.units_by_status(&sale).await.unwrap(),
        UnitsByStatus {
            pending_payment: 1,
            paid: 1,
            expired: 3,
            cancelled: 1,
            ..UnitsByStatus::default()
        }
    );
}

/// Another user's order, in any status, is not found by pay or cancel,
/// and stays as it is; so is an order that does not exist.
pub async fn another_users_order_is_not_found(harness: &mut dyn Harness) {
    let h = &*harness;
    let store = h.store();
    let sale = new_sale(h).await;
    let pending = pending(h, &sale, "alice").await;
    let paid = paid(h, &sale, "bob").await;
    let cancelled = cancelled(h, &sale, "carol").await;
    for order in [&pending, &paid, &cancelled] {
        assert_eq!(
            pay(store, order, "mallory", "ref-1").await,
            PayOutcome::NotFound,
            "{order:?}"
        );
        assert_eq!(
            cancel(store, order, "mallory").await,
            CancelOutcome::NotFound,
            "{order:?}"
        );
        assert_eq!(&stored(store, &order.id).await, order);
    }
    let missing = Order {
        id: OrderId::generate(),
        ..pending.clone()
    };
    assert_eq!(
        pay(store, &missing, "alice", "ref-1").await,
        PayOutcome::NotFound
    );
    assert_eq!(
        cancel(store, &missing, "alice").await,
        CancelOutcome::NotFound
    );
    assert_eq!(store.order(&missing.id).await.unwrap(), None);
}

/// An order past its deadline that the sweep has not reached yet: not
/// payable, not cancellable; the sweep then expires it.
pub async fn pay_after_the_deadline_before_the_sweep_is_expired(harness: &mut dyn Harness) {
    let _turn = SWEEPS.lock().await;
    let h = &*harness;
    let store = h.store();
    let sale = new_sale(h).await;
    let late = put(h, &sale, "late", 1, None, at(now_ms() - 1)).await;

    assert_eq!(
        pay(store, &late, "late", "ref-1").await,
        PayOutcome::Expired
    );
    assert_eq!(
        cancel(store, &late, "late").await,
        CancelOutcome::NotCancellable
    );
    assert_eq!(
        stored(store, &late.id).await,
        late,
        "refused before the sweep, and still unswept"
    );
    sweep_until_settled(store, &sale, &[&late.id]).await;
    assert_eq!(status(store, &late.id).await, OrderStatus::Expired);
    assert_eq!(
        pay(store, &late, "late", "ref-1").await,
        PayOutcome::Expired
    );
}

/// Paying again with the same reference answers the paid order again
/// (`AlreadyPaid`, never a second `Paid`), whether after the first or
/// at the same time; another reference is refused.
pub async fn paying_again_with_the_same_reference_counts_once(harness: &mut dyn Harness) {
    let h = &*harness;
    let store = h.store();
    let sale = new_sale(h).await;

    let order = put(h, &sale, "payer", 2, None, at(now_ms() + HOUR_MS)).await;
    let PayOutcome::Paid(paid) = pay(store, &order, "payer", "ref-1").await else {
        panic!("payable");
    };
    for _ in 0..2 {
        assert_eq!(
            pay(store, &order, "payer", "ref-1").await,
            PayOutcome::AlreadyPaid(paid.clone())
        );
    }
    assert_eq!(
        pay(store, &order, "payer", "ref-2").await,
        PayOutcome::NotPayable
    );
    assert_eq!(stored(store, &order.id).await, paid);

    // The same payment sent several times at once: one of them pays.
    let (sale, deadline) = (&sale, order.expires_at);
    let orders = join_all(
        (0..ROUNDS).map(|i| async move { put(h, sale, &format!("u{i}"), 1, None, deadline).await }),
    )
    .await;
    let answers =
        join_all(orders.iter().flat_map(|order| {
            (0..3).map(move |_| pay(store, order, order.user_id.as_str(), "ref-1"))
        }))
        .await;
    for (order, answers) in orders.iter().zip(answers.chunks(3)) {
        let paid: Vec<_> = answers
            .iter()
            .filter_map(|answer| match answer {
                PayOutcome::Paid(paid) => Some(paid),
                _ => None,
            })
            .collect();
        assert_eq!(paid.len(), 1, "{answers:?}");
        for answer in answers {
            match answer {
                PayOutcome::Paid(_) => {}
                PayOutcome::AlreadyPaid(again) => assert_eq!(again, paid[0]),
                other => panic!("{order:?}: {other:?}"),
            }
        }
        assert_eq!(&stored(store, &order.id).await, paid[0]);
    }
    assert_eq!(
        store.units_by_status(sale).await.unwrap(),
        UnitsByStatus {
            paid: 2 + ROUNDS as u64,
            ..UnitsByStatus::default()
        },
        "each payment counted once"
    );
}

/// Payments sent right at their orders' deadlines while the sweep runs:
/// each order is paid or expired, never both, and the store holds what
/// was answered.
pub async fn pay_racing_expiry_has_one_winner(harness: &mut dyn Harness) {
    let _turn = SWEEPS.lock().await;
    let h = &*harness;
    let store = h.store();
    let sale = new_sale(h).await;
    let first_deadline = now_ms() + 2_000;
    let sale = &sale;
    let orders = join_all((0..ROUNDS).map(|i| async move {
        let deadline = at(first_deadline + 5 * i as i64);
        put(h, sale, &format!("racer-{i}"), 1, None, deadline).await
    }))
    .await;
    let last_deadline = orders.iter().map(|o| o.expires_at).max().unwrap();

    // Each payment goes out within a few milliseconds of its deadline.
    let payments = join_all(orders.iter().enumerate().map(|(i, order)| async move {
        let offset = [-3, -1, 0, 1, 3][i % 5];
        let wait = order.expires_at.as_millis() + offset - now_ms();
        tokio::time::sleep(Duration::from_millis(wait.max(0) as u64)).await;
        pay(store, order, order.user_id.as_str(), "ref").await
    }));
    let sweeps = async {
        let mut released = Vec::new();
        while Timestamp::now() <= at(last_deadline.as_millis() + 50) {
            let swept = store.expire_due().await.expect("expire_due");
            released.extend(swept.into_iter().filter(|units| &units.sale_id == sale));
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        released
    };
    let (answers, mut released) = futures::join!(payments, sweeps);
    let ids: Vec<_> = orders.iter().map(|o| &o.id).collect();
    released.extend(sweep_until_settled(store, sale, &ids).await);

    let by_user = releases_by_user(&released);
    let mut paid = 0;
    for (order, answer) in orders.iter().zip(&answers) {
        let now = stored(store, &order.id).await;
        let times_released = by_user.get(&order.user_id).copied().unwrap_or(0);
        match answer {
            PayOutcome::Paid(answered) => {
                paid += 1;
                assert_eq!(&now, answered, "paid, and stored as paid");
                assert_eq!(times_released, 0, "{order:?} paid and released");
            }
            PayOutcome::Expired => {
                assert_eq!(now.status, OrderStatus::Expired, "{order:?}");
                assert_eq!(times_released, 1, "{order:?} released once");
            }
            other => panic!("{order:?}: {other:?}"),
        }
    }
    eprintln!("pay racing expiry: {paid} of {ROUNDS} paid");
    assert_eq!(
        store.units_by_status(sale).await.unwrap(),
        UnitsByStatus {
            paid: paid as u64,
            expired: (ROUNDS - paid) as u64,
            ..UnitsByStatus::default()
        }
    );
}

/// The owner pays and cancels the same order at once: one of the two
/// wins, the other hears why, and the store holds the winner's status.
pub async fn cancel_racing_pay_has_one_winner(harness: &mut dyn Harness) {
    let h = &*harness;
    let store = h.store();
    let sale = new_sale(h).await;
    let sale = &sale;
    let orders =
        join_all((0..ROUNDS).map(|i| async move { pending(h, sale, &format!("racer-{i}")).await }))
            .await;
    let races = join_all(orders.iter().enumerate().map(|(i, order)| async move {
        let user = order.user_id.as_str();
        if i % 2 == 0 {
            futures::join!(pay(store, order, user, "ref"), cancel(store, order, user))
        } else {
            let (cancelled, paid) =
                futures::join!(cancel(store, order, user), pay(store, order, user, "ref"));
            (paid, cancelled)
        }
    }))
    .await;
    let mut paid = 0;
    for (order, answers) in orders.iter().zip(&races) {
        let now = stored(store, &order.id).await;
        match answers {
            (PayOutcome::Paid(answered), CancelOutcome::NotCancellable) => {
                paid += 1;
                assert_eq!(&now, answered);
            }
            (PayOutcome::Cancelled, CancelOutcome::Cancelled(answered, released)) => {
                assert_eq!(&now, answered);
                assert_eq!(released, &ReleasedUnits::of(order));
            }
            other => panic!("{order:?}: {other:?}"),
        }
    }
    eprintln!("cancel racing pay: {paid} of {ROUNDS} paid");
    assert_eq!(
        store.units_by_status(sale).await.unwrap(),
        UnitsByStatus {
            paid: paid as u64,
            cancelled: (ROUNDS - paid) as u64,
            ..UnitsByStatus::default()
        }
    );
}

/// After a restart the sale, every order and its status come back; the
/// units each user holds and the order each Idempotency-Key answers are
/// rebuilt from them; and the orders move on as before.
pub async fn restart_keeps_orders_statuses_and_keys(harness: &mut dyn Harness) {
    let _turn = SWEEPS.lock().await;
    let sale = new_sale(&*harness).await;
    let h = &*harness;
    let keyed_pending = put(h, &sale, "u1", 1, Some("k-pending"), at(now_ms() + HOUR_MS)).await;
    let keyed_paid = put(h, &sale, "u2", 1, Some("k-paid"), at(now_ms() + HOUR_MS)).await;
    let PayOutcome::Paid(keyed_paid) = pay(h.store(), &keyed_paid, "u2", "ref-1").await else {
        panic!("payable");
    };
    let keyed_cancelled = put(
        h,
        &sale,
        "u3",
        1,
        Some("k-cancelled"),
        at(now_ms() + HOUR_MS),
    )
    .await;
    let CancelOutcome::Cancelled(keyed_cancelled, _) =
        cancel(h.store(), &keyed_cancelled, "u3").await
    else {
        panic!("cancellable");
    };
    let keyed_expired = expired(h, &sale, "u4", Some("k-expired")).await;
    let unkeyed = put(h, &sale, "u5", 2, None, at(now_ms() + HOUR_MS)).await;
    let orders = [
        &keyed_pending,
        &keyed_paid,
        &keyed_cancelled,
        &keyed_expired,
        &unkeyed,
    ];
    let sale_before = h
        .store()
        .load()
        .await
        .unwrap()
        .sales
        .into_iter()
        .find(|s| s.id == sale)
        .expect("the sale is loaded");

    harness.restart().await;
    let h = &*harness;
    let store = h.store();
    let snapshot = store.load().await.expect("load after restart");
    assert_eq!(
        snapshot.sales.iter().find(|s| s.id == sale),
        Some(&sale_before)
    );
    for order in orders {
        assert_eq!(&stored(store, &order.id).await, order);
        assert_eq!(
            store.orders_of(&order.user_id, Some(&sale)).await.unwrap(),
            vec![order.clone()]
        );
    }
    let user = |u: &str| UserId::from(u);
    let key = |u: &str, k: &str| (user(u), k.to_string());
    assert_eq!(
        h.rebuilt(&sale).await,
        Rebuilt {
            held: BTreeMap::from([(user("u1"), 1), (user("u2"), 1), (user("u5"), 2)]),
            keys: BTreeMap::from([
                (key("u1", "k-pending"), keyed_pending.id.clone()),
                (key("u2", "k-paid"), keyed_paid.id.clone()),
                (key("u3", "k-cancelled"), keyed_cancelled.id.clone()),
                (key("u4", "k-expired"), keyed_expired.id.clone()),
            ]),
        }
    );
    assert_eq!(
        store.units_by_status(&sale).await.unwrap(),
        UnitsByStatus {
            pending_payment: 3,
            paid: 1,
            cancelled: 1,
            expired: 1,
            ..UnitsByStatus::default()
        }
    );

    // The reopened store moves orders on as before.
    assert_eq!(
        pay(store, &keyed_paid, "u2", "ref-1").await,
        PayOutcome::AlreadyPaid(keyed_paid.clone())
    );
    assert!(matches!(
        pay(store, &keyed_pending, "u1", "ref-9").await,
        PayOutcome::Paid(_)
    ));
    assert!(matches!(
        cancel(store, &unkeyed, "u5").await,
        CancelOutcome::Cancelled(..)
    ));
}
