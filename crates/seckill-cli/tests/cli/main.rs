//! The `seckill` binary end to end, one module per area: each test runs the
//! real binary (`serve` on `127.0.0.1:0` with a data dir of its own, or a
//! one-shot command) and talks to it as a client would. One test binary,
//! so that the shared helpers (`seckill-test-support`) compile and link
//! once. Assets the tests read are under `tests/fixtures/`.

mod api;
mod bad_input;
mod bench;
mod breaker;
mod cluster;
mod crash;
mod dashboard;
mod dashboard_events;
mod degrade;
mod deploy;
mod expiry;
mod idempotency;
mod jwt;
mod logs;
mod metrics;
mod nginx;
mod openapi;
mod plan;
mod purchase_token;
mod rate_limit;
mod read_path;
mod reconcile;
mod render;
mod rush;
mod shedding;
mod tls;
