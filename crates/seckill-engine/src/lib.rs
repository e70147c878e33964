//! The flash-sale engine, free of HTTP, Redis and SQL: every sale in memory
//! ([`market`]), where a purchase is decided and an order's lifecycle is
//! kept; the [`Store`] port that makes decisions durable (the embedded
//! SQLite store, the cluster's SQL store); the [`StockAuthority`] port that
//! decides instead in cluster mode; the [`expiry`] sweeper; and the
//! [`breaker`] that guards a failing dependency.

pub mod authority;
pub mod breaker;
pub mod clock;
pub mod expiry;
pub mod guarded_store;
pub mod market;
pub mod refusal;
pub mod store;

pub use authority::StockAuthority;
pub use market::{LiveSale, Market, Purchase, Receipt, SaleUnits};
pub use refusal::{Decided, Refusal};
pub use store::{
    CancelOutcome, CommitTicket, LiveOrder, PayOutcome, ReleasedUnits, Reservation, Snapshot,
    Store, StoreError, StoreResult, UnitsByStatus,
};
