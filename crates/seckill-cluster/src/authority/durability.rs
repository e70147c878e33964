//! `--redis-durability`: how sure a node is that a reservation survives a
//! Redis crash before it answers 202 (I2).
//!
//! - `none`: Redis' own persistence, whatever it is configured to do. A
//!   crash of Redis may lose the last acknowledged reservations.
//! - `aof`: the reservation is fsynced to Redis' append-only file. On Redis
//!   ≥ 7.2 each write is followed by `WAITAOF 1 0 T`; older Redis has no
//!   WAITAOF, so the node refuses to start unless `appendonly yes` and
//!   `appendfsync always` (Redis then fsyncs before it replies to anyone).
//! - `replicas:N` (`replicas` = 1): each write is followed by `WAIT N T`.
//!
//! The wait is sent in the same pipeline as the script, so it runs on the
//! same connection right after it. WAIT and WAITAOF wait for the offset of
//! the connection's latest write; on a multiplexed connection that is the
//! latest write of any caller sharing it, which is at or after ours, so the
//! wait covers our write (it may wait a little longer, never shorter). A
//! pipeline never spans a reconnect, so the wait cannot land on a fresh
//! connection that has written nothing.
//!
//! A wait that falls short is a 503 (`Unavailable`; after a reservation,
//! `Unconfirmed`), but the reservation was made: the stream entry exists,
//! the consumer turns it into an order once the same wait confirms it
//! (`crate::consumer`), and the buyer who heard 503 finds it in their
//! orders (it expires unpaid if nobody pays) or gets it back by retrying
//! with the same Idempotency-Key. No 202 is ever given for a reservation
//! that was not waited on, and no order made of one: an entry written on a
//! primary cut off from its replicas (deposed by a failover) never reaches
//! them, so it never becomes an order.

use super::AuthorityError;
use redis::Value;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    #[default]
    None,
    Aof,
    Replicas(u32),
}

impl FromStr for Durability {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || format!("`{s}` is not none, aof, replicas or replicas:N (N ≥ 1)");
        match s {
            "none" => Ok(Self::None),
            "aof" => Ok(Self::Aof),
            "replicas" => Ok(Self::Replicas(1)),
            _ => match s.strip_prefix("replicas:").map(str::parse) {
                Some(Ok(n)) if n >= 1 => Ok(Self::Replicas(n)),
                _ => Err(invalid()),
            },
        }
    }
}

impl fmt::Display for Durability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("none"),
            Self::Aof => f.write_str("aof"),
            Self::Replicas(n) => write!(f, "replicas:{n}"),
        }
    }
}

/// What follows each write, decided once at connect from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Nothing: `none`, or `aof` on a Redis that fsyncs before replying.
    Nothing,
    /// `WAITAOF 1 0 T`: the local AOF has the write.
    LocalAof,
    /// `WAIT N T`: N replicas have the write.
    Replicas(u32),
}

impl Wait {
    /// The command to pipeline after a write, if any.
    pub(crate) fn command(self, timeout: Duration) -> Option<redis::Cmd> {
        let millis = u64::try_from(timeout.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        match self {
            Self::Nothing => None,
            Self::LocalAof => Some(redis::cmd("WAITAOF").arg(1).arg(0).arg(millis).clone()),
            Self::Replicas(n) => Some(redis::cmd("WAIT").arg(n).arg(millis).clone()),
        }
    }

    /// Checks the wait's reply: short means the write is not yet as durable
    /// as promised.
    pub(crate) fn check(self, reply: Option<&Value>) -> Result<(), AuthorityError> {
        let short = |what: String| Err(AuthorityError::Unavailable(what));
        match (self, reply) {
            (Self::Nothing, _) => Ok(()),
            (Self::LocalAof, Some(Value::Array(counts))) => match counts.first() {
                Some(Value::Int(local)) if *local >= 1 => Ok(()),
                _ => short("WAITAOF: the write is not yet in the AOF".into()),
            },
            (Self::Replicas(n), Some(Value::Int(acked))) if *acked >= i64::from(n) => Ok(()),
            (Self::Replicas(n), Some(Value::Int(acked))) => {
                short(format!("WAIT: {acked} of {n} replicas have the write"))
            }
            (_, other) => Err(AuthorityError::Protocol(format!(
                "unexpected reply to the durability wait: {other:?}"
            ))),
        }
    }
}

/// Decides the wait from the server's version and settings, refusing what
/// cannot keep the promise.
pub(super) async fn wait_for(
    durability: Durability,
    conn: &mut redis::aio::ConnectionManager,
) -> Result<Wait, AuthorityError> {
    match durability {
        Durability::None => Ok(Wait::Nothing),
        Durability::Aof => {
            let appendonly = config_get(conn, "appendonly").await?;
            if appendonly != "yes" {
                return Err(AuthorityError::Config(format!(
                    "--redis-durability aof needs `appendonly yes` on Redis (it is `{appendonly}`)"
                )));
            }
            let version = server_version(conn).await?;
            if version >= (7, 2) {
                return Ok(Wait::LocalAof);
            }
            let fsync = config_get(conn, "appendfsync").await?;
            if fsync != "always" {
                return Err(AuthorityError::Config(format!(
                    "--redis-durability aof on Redis {}.{} (no WAITAOF before 7.2) needs \
                     `appendfsync always` (it is `{fsync}`)",
                    version.0, version.1
                )));
            }
            Ok(Wait::Nothing)
        }
        Durability::Replicas(n) => {
            let info: String = query(conn, redis::cmd("INFO").arg("replication")).await?;
            let online = online_replicas(&info);
            if online < n {
                // A replica still syncing, or a primary just promoted whose
                // replicas have not followed yet: worth waiting for.
                return Err(AuthorityError::Unavailable(format!(
                    "--redis-durability replicas:{n}, but Redis has {online} replicas online"
                )));
            }
            Ok(Wait::Replicas(n))
        }
    }
}

async fn query<T: redis::FromRedisValue>(
    conn: &mut redis::aio::ConnectionManager,
    cmd: &redis::Cmd,
) -> Result<T, AuthorityError> {
    cmd.query_async(conn).await.map_err(AuthorityError::from)
}

async fn config_get(
    conn: &mut redis::aio::ConnectionManager,
    name: &str,
) -> Result<String, AuthorityError> {
    let pair: Vec<String> = query(conn, redis::cmd("CONFIG").arg("GET").arg(name)).await?;
    pair.into_iter().nth(1).ok_or_else(|| {
        AuthorityError::Config(format!(
            "CONFIG GET {name} gave no value (is CONFIG disabled?)"
        ))
    })
}

/// `(major, minor)` from `INFO server`.
async fn server_version(
    conn: &mut redis::aio::ConnectionManager,
) -> Result<(u32, u32), AuthorityError> {
    let info: String = query(conn, redis::cmd("INFO").arg("server")).await?;
    info_field(&info, "redis_version")
        .and_then(parse_version)
        .ok_or_else(|| AuthorityError::Protocol("INFO server has no redis_version".into()))
}

fn info_field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

/// Replicas in sync (`slaveN:…,state=online,…`); one still loading its
/// first copy is connected but cannot acknowledge writes yet.
fn online_replicas(info: &str) -> u32 {
    let online = info
        .lines()
        .filter(|line| line.starts_with("slave") && line.contains("state=online"))
        .count();
    u32::try_from(online).unwrap_or(u32::MAX)
}

fn parse_version(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durability_parses_each_form() {
        assert_eq!("none".parse(), Ok(Durability::None));
        assert_eq!("aof".parse(), Ok(Durability::Aof));
        assert_eq!("replicas".parse(), Ok(Durability::Replicas(1)));
        assert_eq!("replicas:2".parse(), Ok(Durability::Replicas(2)));
        for bad in ["", "replicas:0", "replicas:x", "always"] {
            assert!(bad.parse::<Durability>().is_err(), "{bad}");
        }
        assert_eq!(Durability::Replicas(2).to_string(), "replicas:2");
    }

    #[test]
    fn version_and_fields_come_out_of_info() {
        let info = "# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n";
        assert_eq!(
            info_field(info, "redis_version").and_then(parse_version),
            Some((7, 0))
        );
        assert_eq!(info_field(info, "redis"), None);
    }

    #[test]
    fn only_replicas_in_sync_count() {
        let info = "connected_slaves:2\r\n\
            slave0:ip=127.0.0.1,port=7001,state=online,offset=10,lag=0\r\n\
            slave1:ip=127.0.0.1,port=7002,state=wait_bgsave,offset=0,lag=0\r\n";
        assert_eq!(online_replicas(info), 1);
    }

    #[test]
    fn a_short_wait_is_unavailable() {
        let wait = Wait::Replicas(2);
        assert!(wait.check(Some(&Value::Int(2))).is_ok());
        assert!(matches!(
            wait.check(Some(&Value::Int(1))),
            Err(AuthorityError::Unavailable(_))
        ));
        let aof = Wait::LocalAof;
        let counts = |local| Value::Array(vec![Value::Int(local), Value::Int(0)]);
        assert!(aof.check(Some(&counts(1))).is_ok());
        assert!(matches!(
            aof.check(Some(&counts(0))),
            Err(AuthorityError::Unavailable(_))
        ));
    }
}
