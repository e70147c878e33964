//! Cluster mode: many `seckill serve` nodes behind nginx share one stock
//! through Redis, and orders live in PostgreSQL or MySQL/MariaDB.
//!
//! The Redis data model, one sale's keys sharing the hash tag `{SALE_ID}`
//! so that a Redis Cluster keeps them on one shard:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `seckill:{S}:sale` | hash | `total`, `sold`, `per_user_limit`, `starts_at_ms`, `ends_at_ms` (0 = no end), `payment_timeout_ms`, `run_id` (the Redis run its counts were last checked under: another run fences the sale, `authority/run_id.lua`) |
//! | `seckill:{S}:buyers` | hash | user id → units held |
//! | `seckill:{S}:keys` | hash | `USER\nKEY` → `ORDER_ID EXPIRES_AT_MS`, one answer per Idempotency-Key |
//! | `seckill:{S}:reservations` | stream | one entry per reservation: `order_id`, `sale_id`, `user_id`, `quantity`, `idempotency_key` (empty: none), `created_at_ms`, `expires_at_ms`; read by the consumer group `orders` |
//! | `seckill:{S}:dead_letter` | stream | reservations that failed to insert too often, same fields plus `error` |
//! | `seckill:{S}:released` | set | order ids whose units came back (release is idempotent) |
//! | `seckill:{S}:restored` | set | order ids whose lost reservation a repair (`seckill reconcile --repair`, or a node after a Redis restart) put back (once each) |
//! | `seckill:nodes` | sorted set | node id → heartbeat expiry (unix ms) |
//! | `seckill:releases_checked` | string | unix ms when the last complete pass over recent releases started (`reconcile::RecentReleases`) |
//!
//! Channels: `seckill:sold_out` and `seckill:restock` carry a sale id.

pub mod authority;
pub mod clock;
pub mod consumer;
pub mod node;
pub mod nodes;
pub mod orders;
pub mod queue;
pub mod quota;
pub mod reconcile;
pub mod store;
pub mod stream;
