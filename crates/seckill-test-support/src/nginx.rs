//! nginx in front of real nodes: finds the binary, writes a config with
//! `seckill nginx-conf`, runs it on a free port and reads its logs.

use crate::{PATIENCE, Seckill, free_port, seckill_binary};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The nginx binary, or None when it is missing and not required.
pub fn nginx_binary() -> Option<PathBuf> {
    let in_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("nginx"))
            .find(|candidate| candidate.is_file())
    });
    let found = in_path.or_else(|| {
        let sbin = PathBuf::from("/usr/sbin/nginx");
        sbin.is_file().then_some(sbin)
    });
    if found.is_none() {
        assert!(
            std::env::var("SECKILL_REQUIRE_NGINX").as_deref() != Ok("1"),
            "nginx not installed, and SECKILL_REQUIRE_NGINX=1"
        );
        eprintln!("SKIPPED: nginx not installed");
    }
    found
}

/// Runs `seckill nginx-conf ARGS`.
pub fn nginx_conf(args: &[&str]) -> Output {
    Command::new(seckill_binary())
        .arg("nginx-conf")
        .args(args)
        .output()
        .expect("run seckill nginx-conf")
}

/// A prefix directory nginx's workers can enter when nginx runs as root.
pub fn prefix_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("create a prefix dir");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod the prefix dir");
    dir
}

/// Writes a config for `nodes` into `prefix` and returns its path; panics
/// with the generator's stderr if it refuses.
pub fn write_conf(prefix: &Path, listen: &str, nodes: &[String], extra: &[&str]) -> PathBuf {
    let conf = prefix.join("nginx.conf");
    let mut args = vec![
        "--listen",
        listen,
        "--prefix",
        prefix.to_str().expect("a UTF-8 prefix"),
        "--out",
        conf.to_str().expect("a UTF-8 path"),
    ];
    for node in nodes {
        args.extend(["--node", node]);
    }
    args.extend(extra);
    let output = nginx_conf(&args);
    assert!(
        output.status.success(),
        "seckill nginx-conf {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    conf
}

/// A running nginx (`daemon off`, its own process group), stopped when dropped.
pub struct Nginx {
    child: Child,
    prefix: tempfile::TempDir,
    /// `http://127.0.0.1:PORT`, where nginx listens.
    pub base: String,
}

impl Nginx {
    /// Generates a config for `nodes` (HOST:PORT[=WEIGHT]) with `extra`
    /// arguments and runs nginx with it on a free port.
    pub async fn start(nginx: &Path, nodes: &[String], extra: &[&str]) -> Self {
        for _attempt in 0..3 {
            let prefix = prefix_dir();
            let listen = format!("127.0.0.1:{}", free_port());
            let mut args = vec!["--daemon", "off"];
            args.extend(extra);
            let conf = write_conf(prefix.path(), &listen, nodes, &args);
            let stderr = std::fs::File::create(prefix.path().join("stderr.log"))
                .expect("create nginx's stderr file");
            let child = Command::new(nginx)
                .arg("-p")
                .arg(prefix.path())
                .arg("-c")
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .process_group(0)
                .spawn()
                .expect("spawn nginx");
            let mut running = Self {
                child,
                prefix,
                base: format!("http://{listen}"),
            };
            if running.wait_until_listening(&listen).await {
                return running;
            }
            let log = running.error_log();
            assert!(
                log.contains("Address already in use"),
                "nginx did not start:\n{log}"
            );
        }
        panic!("nginx found no free port in three tries");
    }

    /// True once nginx accepts connections; false if it exited.
    async fn wait_until_listening(&mut self, listen: &str) -> bool {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if self.child.try_wait().expect("poll nginx").is_some() {
                return false;
            }
            if tokio::net::TcpStream::connect(listen).await.is_ok() {
                return true;
            }
            assert!(
                Instant::now() < deadline,
                "nginx did not listen on {listen}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn error_log(&self) -> String {
        let read =
            |name| std::fs::read_to_string(self.prefix.path().join(name)).unwrap_or_default();
        format!("{}{}", read("stderr.log"), read("error.log"))
    }

    /// The access log's lines for requests whose line contains `request`,
    /// once there are `count` of them (nginx flushes its buffer each second).
    pub async fn access_log_lines(&self, request: &str, count: usize) -> Vec<String> {
        let path = self.prefix.path().join("access.log");
        let deadline = Instant::now() + PATIENCE;
        loop {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let lines: Vec<String> = text
                .lines()
                .filter(|line| line.contains(request))
                .map(str::to_string)
                .collect();
            if lines.len() >= count || Instant::now() > deadline {
                assert_eq!(lines.len(), count, "access log lines for {request:?}");
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Signals nginx's whole process group (master and workers).
    fn signal_group(&self, signal: &str) {
        let _ = Command::new("kill")
            .args([signal, "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.signal_group("-TERM");
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.signal_group("-KILL");
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- nginx error log ---\n{}", self.error_log());
        }
    }
}

/// `HOST:PORT` of a running server.
pub fn address_of(node: &Seckill) -> String {
    node.base
        .strip_prefix("http://")
        .expect("an http base")
        .to_string()
}
