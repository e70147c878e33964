//! One `seckill serve` process on a private data dir: started, stopped,
//! killed and started again as a test needs, its log kept for failure
//! messages.

use crate::PATIENCE;
use crate::api::Api;
use crate::unique_suffix;
use std::io::{BufRead, BufReader, Read};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How much of the server's stderr is kept for failure messages.
const LOG_TAIL_BYTES: usize = 64 * 1024;

/// The `seckill` binary under test, as cargo names it to the tests of the
/// crate that builds it (`CARGO_BIN_EXE_seckill` at run time).
pub fn seckill_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        std::env::var_os("CARGO_BIN_EXE_seckill")
            .map(PathBuf::from)
            .expect(
                "CARGO_BIN_EXE_seckill is not set: run the tests of seckill-cli with cargo test",
            )
    })
}

/// One `seckill serve` on its own temporary data dir, with its own secrets.
/// It can be stopped and started again on the same dir; it is SIGKILLed
/// when dropped. Derefs to the [`Api`] of the running process.
pub struct Seckill {
    dir: tempfile::TempDir,
    jwt_secret: Arc<str>,
    admin_token: Arc<str>,
    process: Option<Process>,
    api: Option<Api>,
    /// More `serve` flags, kept across restarts.
    flags: Vec<String>,
    /// More environment variables of the process, kept across restarts.
    env: Vec<(String, String)>,
}

struct Process {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Seckill {
    /// Starts a server on a fresh data dir with fresh secrets.
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// [`Seckill::start`] with more `serve` flags.
    pub async fn start_with(flags: &[&str]) -> Self {
        Self::start_in(flags, &[]).await
    }

    /// Another node for `other`'s users and operator: a fresh data dir with
    /// `other`'s JWT secret and admin token, as the nodes behind one load
    /// balancer have.
    pub async fn start_like(other: &Seckill, flags: &[&str]) -> Self {
        Self::start_like_in(other, flags, &[]).await
    }

    /// [`Seckill::start_like`] with more environment variables (e.g. a
    /// faked clock).
    pub async fn start_like_in(other: &Seckill, flags: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_with_secrets(
            Arc::clone(&other.jwt_secret),
            Arc::clone(&other.admin_token),
            flags,
            env,
        )
        .await
    }

    /// [`Seckill::start_with`] with more environment variables.
    pub async fn start_in(flags: &[&str], env: &[(&str, &str)]) -> Self {
        let unique = unique_suffix();
        Self::start_with_secrets(
            format!("jwt-secret-for-tests-{unique}-0123456789abcdef").into(),
            format!("admin-token-for-tests-{unique}-fedcba9876543210").into(),
            flags,
            env,
        )
        .await
    }

    async fn start_with_secrets(
        jwt_secret: Arc<str>,
        admin_token: Arc<str>,
        flags: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let mut seckill = Self {
            dir: tempfile::tempdir().expect("create a temporary data dir"),
            jwt_secret,
            admin_token,
            process: None,
            api: None,
            flags: flags.iter().map(|flag| flag.to_string()).collect(),
            env: env
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
        };
        seckill.spawn().await;
        seckill
    }

    /// Starts the server again on the same data dir with the same secrets.
    /// The previous process must have been stopped.
    pub async fn restart(&mut self) {
        assert!(
            self.process.is_none(),
            "restart: the server is still running"
        );
        self.spawn().await;
    }

    /// The server's data dir (kept across restarts).
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The API of the running process.
    pub fn api(&self) -> Api {
        self.api.clone().expect("the server is not running")
    }

    /// `kill -9`: no chance to flush or drain.
    pub fn kill(&mut self) {
        let mut process = self
            .process
            .take()
            .expect("kill: the server is not running");
        self.api = None;
        process.child.kill().expect("SIGKILL the server");
        process.child.wait().expect("reap the killed server");
    }

    /// SIGTERM, then waits for the process to exit and returns its status.
    async fn terminate(&mut self) -> ExitStatus {
        let mut process = self
            .process
            .take()
            .expect("terminate: the server is not running");
        self.api = None;
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(process.child.id().to_string())
            .status()
            .expect("run kill -TERM");
        assert!(status.success(), "kill -TERM failed: {status}");
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = process.child.try_wait().expect("poll the server") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = process.child.kill();
                let _ = process.child.wait();
                panic!(
                    "the server did not exit within {PATIENCE:?} of SIGTERM; its log:\n{}",
                    tail(&process.log)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGTERM and asserts a clean exit (status 0).
    pub async fn stop(&mut self) {
        let log = Arc::clone(&self.process.as_ref().expect("stop: not running").log);
        let status = self.terminate().await;
        assert_eq!(
            status.code(),
            Some(0),
            "SIGTERM must drain and exit 0, got {status}; log:\n{}",
            tail(&log)
        );
    }

    /// The running process's id, e.g. to read its memory from `/proc`.
    pub fn pid(&self) -> u32 {
        self.process
            .as_ref()
            .expect("the server is not running")
            .child
            .id()
    }

    /// What the server wrote to stderr (its tail).
    pub fn log(&self) -> String {
        self.process
            .as_ref()
            .map(|p| tail(&p.log))
            .unwrap_or_default()
    }

    async fn spawn(&mut self) {
        let mut child = Command::new(seckill_binary())
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(self.dir.path())
            .args(&self.flags)
            .current_dir(self.dir.path())
            .env("SECKILL_JWT_SECRET", &*self.jwt_secret)
            .env("SECKILL_ADMIN_TOKEN", &*self.admin_token)
            .env("RUST_LOG", "warn")
            .env_remove("SECKILL_LISTEN")
            .env_remove("SECKILL_DATA_DIR")
            .env_remove("SECKILL_REDIS_URL")
            .env_remove("SECKILL_DATABASE_URL")
            .envs(self.env.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the seckill binary");

        let log = Arc::new(Mutex::new(String::new()));
        drain(
            child.stderr.take().expect("stderr is piped"),
            Arc::clone(&log),
        );
        let stdout = child.stdout.take().expect("stdout is piped");
        let (first_line_tx, first_line_rx) = tokio::sync::oneshot::channel();
        let stdout_log = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout);
            let mut first = String::new();
            let _ = lines.read_line(&mut first);
            let _ = first_line_tx.send(first);
            drain(lines, stdout_log);
        });

        let first = match tokio::time::timeout(PATIENCE, first_line_rx).await {
            Ok(Ok(line)) => line,
            _ => String::new(),
        };
        let Some(base) = first
            .trim_end()
            .strip_prefix("listening on ")
            .filter(|url| url.starts_with("http://") || url.starts_with("https://"))
        else {
            let _ = child.kill();
            let _ = child.wait();
            std::thread::sleep(Duration::from_millis(100)); // let the log drain
            panic!(
                "the first stdout line must be `listening on http(s)://ADDR`, got {first:?}; log:\n{}",
                tail(&log)
            );
        };
        self.api = Some(Api::new(
            base,
            Arc::clone(&self.jwt_secret),
            Arc::clone(&self.admin_token),
        ));
        self.process = Some(Process { child, log });
    }
}

impl Deref for Seckill {
    type Target = Api;

    fn deref(&self) -> &Api {
        self.api.as_ref().expect("the server is not running")
    }
}

impl Drop for Seckill {
    fn drop(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.child.kill();
            let _ = process.child.wait();
            if std::thread::panicking() {
                eprintln!("--- seckill log ---\n{}", tail(&process.log));
            }
        }
    }
}

/// Copies a pipe into the log, keeping its tail, until the pipe closes.
fn drain(pipe: impl Read + Send + 'static, log: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
            log.push_str(&line);
            log.push('\n');
            if log.len() > 2 * LOG_TAIL_BYTES {
                let mut cut = log.len() - LOG_TAIL_BYTES;
                while !log.is_char_boundary(cut) {
                    cut += 1;
                }
                log.drain(..cut);
            }
        }
    });
}

fn tail(log: &Mutex<String>) -> String {
    log.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Runs `seckill serve` with `flags` on a fresh data dir, expecting it to
/// refuse to start: its exit code and what it said on stderr.
pub fn serve_refusal(flags: &[&str]) -> (Option<i32>, String) {
    let data_dir = tempfile::tempdir().expect("a data dir");
    let output = Command::new(seckill_binary())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(flags)
        .env("SECKILL_DATA_DIR", data_dir.path())
        .output()
        .expect("run seckill serve");
    assert!(!output.status.success(), "{flags:?} started");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code(), stderr)
}
