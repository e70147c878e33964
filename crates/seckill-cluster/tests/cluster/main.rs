//! Cluster mode's parts against the real PostgreSQL, MariaDB/MySQL and
//! Redis named by SECKILL_TEST_DATABASE_URL_POSTGRES / _MYSQL and
//! SECKILL_TEST_REDIS_URL (a test whose service is unset says SKIPPED), and
//! against private redis-servers the tests kill and restart. One test
//! binary, a module per part.

mod authority;
mod consumer;
mod contract;
mod durability;
mod fixtures;
mod quota;
mod reconcile;
mod sql_orders;
