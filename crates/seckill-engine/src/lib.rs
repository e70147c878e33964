//! The flash-sale engine, free of HTTP, Redis and SQL: what it needs from
//! a durable store is the [`Store`] port, which the embedded SQLite store
//! and the cluster's SQL store implement.

pub mod store;

pub use store::{
    CancelOutcome, CommitTicket, LiveOrder, PayOutcome, ReleasedUnits, Reservation, Snapshot,
    Store, StoreError, StoreResult, UnitsByStatus,
};
