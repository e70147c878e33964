//! What every [`Store`] must do with orders, written once: the cases in
//! [`cases`], run against each store through a [`Harness`]. A store's
//! tests call [`store_contract!`] with a function that gives its harnesses
//! (none, said out loud, when its database is not configured).

pub mod cases;

use async_trait::async_trait;
use seckill_core::{OrderId, SaleId, UserId};
use seckill_engine::{Reservation, Store};
use std::collections::BTreeMap;

/// A store under test and what the contract needs around it.
#[async_trait(?Send)]
pub trait Harness {
    fn store(&self) -> &dyn Store;

    /// Makes `reservation` a `pending_payment` order with the reservation's
    /// deadline, as this backend's purchase path does.
    async fn put(&self, reservation: &Reservation);

    /// Closes the store and opens it again on the same data.
    async fn restart(&mut self);

    /// What the engine holds of `sale` after a start, as this backend
    /// keeps it.
    async fn rebuilt(&self, sale: &SaleId) -> Rebuilt;
}

/// What a node rebuilds a sale from at start.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Rebuilt {
    /// Units each user holds (orders pending payment or paid).
    pub held: BTreeMap<UserId, u64>,
    /// The order each user's Idempotency-Key answers.
    pub keys: BTreeMap<(UserId, String), OrderId>,
}

/// One `#[tokio::test]` per case of [`cases`], each run on every harness
/// that `$harnesses` (an async fn of the case's name) gives.
#[macro_export]
macro_rules! store_contract {
    ($harnesses:path) => {
        $crate::store_contract!(@cases $harnesses;
            pay_moves_only_a_pending_order,
            cancel_moves_only_a_pending_order,
            expiry_moves_only_an_overdue_pending_order,
            another_users_order_is_not_found,
            pay_after_the_deadline_before_the_sweep_is_expired,
            paying_again_with_the_same_reference_counts_once,
            pay_racing_expiry_has_one_winner,
            cancel_racing_pay_has_one_winner,
            restart_keeps_orders_statuses_and_keys,
        );
    };
    (@cases $harnesses:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                for mut harness in $harnesses(stringify!($case)).await {
                    $crate::cases::$case(&mut harness).await;
                }
            }
        )*
    };
}
