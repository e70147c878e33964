//! The real PostgreSQL, MariaDB and Redis the environment names. A test
//! whose service is not named says SKIPPED on the terminal and passes.

use std::io::Write;
use std::time::Duration;

/// The variable naming the PostgreSQL to test against.
pub const POSTGRES_URL: &str = "SECKILL_TEST_DATABASE_URL_POSTGRES";
/// The variable naming the MariaDB (or MySQL) to test against.
pub const MYSQL_URL: &str = "SECKILL_TEST_DATABASE_URL_MYSQL";
/// The variable naming the shared Redis to test against.
pub const REDIS_URL: &str = "SECKILL_TEST_REDIS_URL";
/// The variables naming a database, PostgreSQL first.
pub const DATABASE_URLS: [&str; 2] = [POSTGRES_URL, MYSQL_URL];

/// Says that `test` skips what needs `var`, on the terminal even when the
/// test's output is captured.
pub fn skipped(test: &str, var: &str) {
    let _ = writeln!(std::io::stderr(), "SKIPPED: {test}: {var} not set");
}

/// The value of `var`, or `None` (said out loud) when it is unset or empty.
pub fn configured(test: &str, var: &str) -> Option<String> {
    let value = std::env::var(var).ok().filter(|value| !value.is_empty());
    if value.is_none() {
        skipped(test, var);
    }
    value
}

/// The URLs of the databases to test against, each with its variable.
pub fn database_urls(test: &str) -> Vec<(&'static str, String)> {
    DATABASE_URLS
        .into_iter()
        .filter_map(|var| configured(test, var).map(|url| (var, url)))
        .collect()
}

/// The shared Redis, or `None` (said out loud, under the name of the test
/// thread the harness runs) when it is not configured.
pub fn redis_url() -> Option<String> {
    let thread = std::thread::current();
    configured(thread.name().unwrap_or("a test"), REDIS_URL)
}

/// A client of the shared Redis, or `None` as for [`redis_url`].
pub fn redis() -> Option<redis::Client> {
    redis_url().map(|url| redis::Client::open(url).expect(REDIS_URL))
}

/// A connection that waits for large replies (the default gives up after
/// 500 ms, which a debug build on a busy machine can exceed).
pub async fn connection(client: &redis::Client) -> redis::aio::MultiplexedConnection {
    let config =
        redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(10)));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .expect("connect to Redis")
}

/// A connection as [`connection`] to the Redis at `url`.
pub async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    connection(&redis::Client::open(url).expect("a Redis URL")).await
}
