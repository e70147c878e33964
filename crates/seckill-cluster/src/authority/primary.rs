//! Where the Redis primary is, and the shared connection to it.
//!
//! `redis://HOST:PORT[/DB]` names one server for good: its
//! `ConnectionManager` reconnects to it by itself. With
//! `redis+sentinel://HOST:PORT[,HOST:PORT…]/SERVICE_NAME` the primary is
//! asked of the sentinels (and checked to call itself primary); after a
//! call that found Redis unavailable (unreachable, slow, READONLY, a
//! durability wait that fell short: all what a failover looks like from
//! here) the sentinels are asked again, at most every `LOOKUP_GAP`, and on
//! a new answer every connection moves to the promoted primary: this one
//! at once, the stream consumers and the stock events when they see the
//! generation change.

use super::{AuthorityError, bounded};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::sentinel::{SentinelClient, SentinelServerType};
use std::sync::RwLock;
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, watch};

/// The shortest time between two lookups of the primary.
const LOOKUP_GAP: Duration = Duration::from_millis(250);
/// A sentinel's port when the URL names none.
const SENTINEL_PORT: u16 = 26379;

/// How the primary is found.
enum Locator {
    Fixed(redis::Client),
    Sentinel(Mutex<SentinelClient>),
}

impl Locator {
    fn parse(url: &str) -> Result<Self, AuthorityError> {
        let invalid = |why: &str| AuthorityError::Config(format!("redis URL `{url}`: {why}"));
        let Some(rest) = url.strip_prefix("redis+sentinel://") else {
            let client = redis::Client::open(url).map_err(|e| invalid(&e.to_string()))?;
            return Ok(Self::Fixed(client));
        };
        let (hosts, service) = rest
            .split_once('/')
            .filter(|(hosts, service)| !hosts.is_empty() && !service.is_empty())
            .ok_or_else(|| {
                invalid("expected redis+sentinel://HOST:PORT[,HOST:PORT…]/SERVICE_NAME")
            })?;
        if service.contains(['/', '?', '#', '@']) || hosts.contains(['@', '?', '#']) {
            return Err(invalid(
                "expected redis+sentinel://HOST:PORT[,HOST:PORT…]/SERVICE_NAME",
            ));
        }
        let sentinels = hosts
            .split(',')
            .map(|host| match host.rsplit_once(':') {
                Some((name, port)) if !name.is_empty() => port
                    .parse::<u16>()
                    .map(|port| format!("redis://{name}:{port}"))
                    .map_err(|_| invalid(&format!("`{host}`: not HOST:PORT"))),
                None if !host.is_empty() => Ok(format!("redis://{host}:{SENTINEL_PORT}")),
                _ => Err(invalid(&format!("`{host}`: not HOST:PORT"))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let client = SentinelClient::build(
            sentinels,
            service.to_string(),
            None,
            SentinelServerType::Master,
        )
        .map_err(|e| invalid(&e.to_string()))?;
        Ok(Self::Sentinel(Mutex::new(client)))
    }

    /// The primary as of now.
    async fn primary(&self, timeout: Duration) -> Result<redis::Client, AuthorityError> {
        match self {
            Self::Fixed(client) => Ok(client.clone()),
            Self::Sentinel(sentinel) => {
                let mut sentinel = sentinel.lock().await;
                bounded(timeout, async {
                    sentinel.async_get_client().await.map_err(|e| {
                        AuthorityError::Unavailable(format!("Sentinel names no primary: {e}"))
                    })
                })
                .await
            }
        }
    }
}

/// The connection to the current primary, shared by every call.
pub(super) struct Primary {
    locator: Locator,
    manager_config: ConnectionManagerConfig,
    timeout: Duration,
    current: RwLock<Current>,
    /// Held during a lookup; when the last one started.
    lookup: Mutex<Option<Instant>>,
    /// Bumped each time the connection moves to another server.
    moved: watch::Sender<u64>,
}

#[derive(Clone)]
struct Current {
    client: redis::Client,
    conn: ConnectionManager,
}

impl Primary {
    pub(super) async fn connect(url: &str, timeout: Duration) -> Result<Self, AuthorityError> {
        let locator = Locator::parse(url)?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            // A failed connection is reported at once; the next call tries
            // again, so a call never queues behind a retry loop.
            .set_number_of_retries(0);
        let client = locator.primary(timeout).await?;
        let conn = manage(&client, &manager_config, timeout).await?;
        Ok(Self {
            locator,
            manager_config,
            timeout,
            current: RwLock::new(Current { client, conn }),
            lookup: Mutex::new(None),
            moved: watch::Sender::new(0),
        })
    }

    pub(super) fn conn(&self) -> ConnectionManager {
        self.read().conn
    }

    pub(super) fn client(&self) -> redis::Client {
        self.read().client
    }

    /// Changes each time the primary moves: connections of its client are
    /// to be opened again.
    pub(super) fn moves(&self) -> watch::Receiver<u64> {
        self.moved.subscribe()
    }

    fn read(&self) -> Current {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Whether the primary can move: it is asked of Sentinel.
    pub(super) fn may_move(&self) -> bool {
        matches!(self.locator, Locator::Sentinel(_))
    }

    /// Asks where the primary is now (Sentinel only; one lookup at a time,
    /// at most one per `LOOKUP_GAP`) and moves there if it changed.
    pub(super) async fn follow(&self) {
        if !self.may_move() {
            return;
        }
        let Ok(mut last) = self.lookup.try_lock() else {
            return; // another caller is looking
        };
        if last.is_some_and(|at| at.elapsed() < LOOKUP_GAP) {
            return;
        }
        *last = Some(Instant::now());
        let found = match self.locator.primary(self.timeout).await {
            Ok(found) => found,
            Err(error) => {
                tracing::debug!(%error, "primary not found; asking again on the next failure");
                return;
            }
        };
        let (from, to) = (address(&self.client()), address(&found));
        if from == to {
            return;
        }
        match manage(&found, &self.manager_config, self.timeout).await {
            Ok(conn) => {
                *self
                    .current
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = Current {
                    client: found,
                    conn,
                };
                self.moved.send_modify(|n| *n += 1);
                tracing::warn!(%from, %to, "Redis primary moved (Sentinel): following it");
            }
            Err(error) => tracing::warn!(%to, %error, "the new Redis primary is not reachable yet"),
        }
    }
}

async fn manage(
    client: &redis::Client,
    config: &ConnectionManagerConfig,
    timeout: Duration,
) -> Result<ConnectionManager, AuthorityError> {
    bounded(
        timeout,
        ConnectionManager::new_with_config(client.clone(), config.clone()),
    )
    .await
}

fn address(client: &redis::Client) -> String {
    client.get_connection_info().addr().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_urls_name_the_sentinels_and_the_service() {
        for good in [
            "redis+sentinel://127.0.0.1:26379/main",
            "redis+sentinel://a:1,b:2,c/main",
            "redis://127.0.0.1:6379/0",
        ] {
            assert!(Locator::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "redis+sentinel://127.0.0.1:26379",
            "redis+sentinel://127.0.0.1:26379/",
            "redis+sentinel:///main",
            "redis+sentinel://a:x/main",
            "redis+sentinel://a:1,,b:2/main",
            "redis+sentinel://a:1/main/0",
            "nope://x",
        ] {
            assert!(
                matches!(Locator::parse(bad), Err(AuthorityError::Config(_))),
                "{bad}"
            );
        }
    }
}
