//! A `redis-server` of a test's own, on a free port and in its own
//! directory, that the test can kill and restart (AOF survival, outages).

use crate::free_port;
use crate::services::REDIS_URL;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A `redis-server` of the test's own on a free port, in its own directory.
pub struct PrivateRedis {
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    dir: tempfile::TempDir,
    args: Vec<String>,
    child: Option<Child>,
}

impl PrivateRedis {
    const BINARY: &str = "/usr/bin/redis-server";

    /// Starts one with `args` added to port, dir and no snapshots; `None`
    /// as for [`PrivateRedis::not_started`].
    pub async fn start(args: &[&str]) -> Option<Self> {
        let mut redis = Self::not_started(args)?;
        redis.restart().await;
        Some(redis)
    }

    /// One with its port and directory chosen but not started yet: its
    /// port refuses connections until [`PrivateRedis::restart`]. `None`
    /// (said out loud) without redis-server; with SECKILL_TEST_REDIS_URL
    /// set (as in CI) that is a failure.
    pub fn not_started(args: &[&str]) -> Option<Self> {
        if !Path::new(Self::BINARY).exists() {
            assert!(
                std::env::var_os(REDIS_URL).is_none(),
                "{} is missing and {REDIS_URL} is set",
                Self::BINARY
            );
            let _ = writeln!(std::io::stderr(), "SKIPPED: {} not found", Self::BINARY);
            return None;
        }
        Some(Self {
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            args: args.iter().map(|a| a.to_string()).collect(),
            child: None,
        })
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Sends a signal to the server (e.g. STOP, CONT).
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let status = Command::new("kill")
            .args(["-s", signal, &pid])
            .status()
            .unwrap();
        assert!(status.success(), "kill -s {signal} {pid}");
    }

    /// `kill -9`: no shutdown, no final save.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Starts it again on the same port and directory, and waits until it
    /// answers PING (it answers LOADING while it reads its AOF).
    pub async fn restart(&mut self) {
        self.kill();
        let child = Command::new(Self::BINARY)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--daemonize", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let url = self.url();
        for _ in 0..100 {
            if let Ok(client) = redis::Client::open(url.as_str())
                && let Ok(mut conn) = client.get_multiplexed_async_connection().await
                && redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server on port {} did not come up", self.port);
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}
