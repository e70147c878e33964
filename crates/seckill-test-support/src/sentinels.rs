//! A primary, one replica and three sentinels of a test's own (quorum 2,
//! a primary is down after 1 s), all `redis-server` processes on free
//! loopback ports, so that a test can stop or kill the primary and watch
//! Sentinel promote the replica.

use crate::eventually;
use crate::free_port;
use crate::private_redis::PrivateRedis;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The name the sentinels monitor the primary under.
const SERVICE: &str = "seckill";

/// How long a failover and the resyncs around it may take.
const FAILOVER_PATIENCE: Duration = Duration::from_secs(60);

/// The primary, its replica and the sentinels; all killed when dropped.
pub struct Sentinels {
    /// The first primary (after a failover, a replica of the other one).
    pub primary: PrivateRedis,
    /// Its replica (after a failover, the primary).
    pub replica: PrivateRedis,
    ports: Vec<u16>,
    children: Vec<Child>,
    dir: tempfile::TempDir,
}

impl Sentinels {
    /// The primary and its replica running, the replica in sync, and the
    /// sentinels watching both; `None` (said out loud) without redis-server.
    pub async fn start() -> Option<Self> {
        let mut sentinels = Self::before_the_primary()?;
        sentinels.primary.restart().await;
        sentinels.start_replica().await;
        let (port, ports) = (sentinels.replica.port, sentinels.ports.clone());
        eventually(FAILOVER_PATIENCE, "the sentinels know the replica", || {
            let ports = ports.clone();
            async move {
                for sentinel in ports {
                    let replicas: Vec<Vec<String>> = query(
                        sentinel,
                        redis::cmd("SENTINEL").arg("REPLICAS").arg(SERVICE),
                    )
                    .await
                    .unwrap_or_default();
                    let listed = replicas
                        .iter()
                        .any(|fields| fields.iter().any(|f| f == &port.to_string()));
                    if !listed {
                        return None;
                    }
                }
                Some(())
            }
        })
        .await;
        Some(sentinels)
    }

    /// The sentinels running, watching a primary that is not started yet
    /// (its port refuses connections), and no replica.
    pub fn before_the_primary() -> Option<Self> {
        let primary = PrivateRedis::not_started(&[])?;
        let replica =
            PrivateRedis::not_started(&["--replicaof", "127.0.0.1", &primary.port.to_string()])?;
        let dir = tempfile::tempdir().unwrap();
        let mut sentinels = Self {
            primary,
            replica,
            ports: Vec::new(),
            children: Vec::new(),
            dir,
        };
        for i in 0..3 {
            let port = free_port();
            let conf = sentinels.dir.path().join(format!("sentinel-{i}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\ndir {dir}\n\
                     sentinel monitor {SERVICE} 127.0.0.1 {primary} 2\n\
                     sentinel down-after-milliseconds {SERVICE} 1000\n\
                     sentinel failover-timeout {SERVICE} 2000\n\
                     sentinel parallel-syncs {SERVICE} 1\n",
                    dir = sentinels.dir.path().display(),
                    primary = sentinels.primary.port,
                ),
            )
            .unwrap();
            let child = Command::new("/usr/bin/redis-server")
                .arg(&conf)
                .arg("--sentinel")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start redis-server --sentinel");
            sentinels.ports.push(port);
            sentinels.children.push(child);
        }
        Some(sentinels)
    }

    /// Starts the replica and waits until the primary has it in sync.
    pub async fn start_replica(&mut self) {
        self.replica.restart().await;
        let primary = self.primary.port;
        eventually(FAILOVER_PATIENCE, "the replica is in sync", || async move {
            let info: String = query(primary, redis::cmd("INFO").arg("replication"))
                .await
                .ok()?;
            info.contains("state=online").then_some(())
        })
        .await;
    }

    /// `redis+sentinel://…/seckill`, naming every sentinel.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .ports
            .iter()
            .map(|port| format!("127.0.0.1:{port}"))
            .collect();
        format!("redis+sentinel://{}/{SERVICE}", hosts.join(","))
    }

    /// The port of the primary the sentinels name now.
    async fn primary_port(&self) -> Option<u16> {
        for sentinel in &self.ports {
            let addr: Option<(String, u16)> = query(
                *sentinel,
                redis::cmd("SENTINEL")
                    .arg("GET-MASTER-ADDR-BY-NAME")
                    .arg(SERVICE),
            )
            .await
            .ok()
            .flatten();
            if let Some((_, port)) = addr {
                return Some(port);
            }
        }
        None
    }

    /// Waits until the sentinels name the replica as primary and the old
    /// primary has become its replica (its writes since the failover gone).
    pub async fn until_failed_over(&self) {
        let (old, new) = (self.primary.port, self.replica.port);
        eventually(
            FAILOVER_PATIENCE,
            "Sentinel promoted the replica",
            || async move { (self.primary_port().await == Some(new)).then_some(()) },
        )
        .await;
        eventually(
            FAILOVER_PATIENCE,
            "the old primary follows the new one",
            || async move {
                let info: String = query(old, redis::cmd("INFO").arg("replication"))
                    .await
                    .ok()?;
                (info.contains("role:slave") && info.contains("master_link_status:up"))
                    .then_some(())
            },
        )
        .await;
    }
}

impl Drop for Sentinels {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One command to the server on `port`, under a time limit.
pub async fn query<T: redis::FromRedisValue>(port: u16, cmd: &redis::Cmd) -> Result<T, String> {
    let run = async {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        cmd.query_async::<T>(&mut conn).await
    };
    match tokio::time::timeout(Duration::from_secs(2), run).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer from port {port}")),
    }
}
