//! A real headless Chromium driven over the Chrome DevTools protocol, for
//! the tests that look at pages as a person would: evaluate JavaScript in
//! the page, take a screenshot.
//!
//! Without Chromium the tests that need it say SKIPPED on the terminal and
//! pass, unless `SECKILL_REQUIRE_BROWSER=1` (set by CI), which makes a
//! missing browser a failure.

use crate::PATIENCE;
use base64::Engine;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const CANDIDATES: [&str; 4] = [
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
];

/// The Chromium to use: `SECKILL_CHROMIUM`, else the first on `PATH`.
/// `None` means the calling test is skipped, which it is told to say.
pub fn chromium(test: &str) -> Option<PathBuf> {
    let found = std::env::var_os("SECKILL_CHROMIUM")
        .map(PathBuf::from)
        .or_else(|| {
            let path = std::env::var_os("PATH")?;
            std::env::split_paths(&path)
                .flat_map(|dir| CANDIDATES.map(|name| dir.join(name)))
                .find(|candidate| candidate.is_file())
        });
    if found.is_none() {
        let required = std::env::var("SECKILL_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "{test}: no Chromium found and SECKILL_REQUIRE_BROWSER=1 (apt-get install chromium)"
        );
        // Straight to the terminal: the test harness captures eprintln!.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: no Chromium found (apt-get install chromium, or set SECKILL_CHROMIUM)"
        );
    }
    found
}

/// One headless Chromium with a fresh profile; killed when dropped.
pub struct Browser {
    process: Child,
    _profile: tempfile::TempDir,
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
}

/// One tab, attached to the browser's connection.
pub struct Page {
    session: String,
}

impl Browser {
    /// Starts `executable` headless and connects to its DevTools endpoint.
    pub async fn launch(executable: &Path) -> Self {
        let profile = tempfile::tempdir().expect("a profile dir");
        let mut process = Command::new(executable)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-quic",
                "--no-first-run",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--remote-debugging-port=0",
                "--window-size=1600,1000",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", executable.display()));
        let stderr = process.stderr.take().expect("piped stderr");
        let (found, endpoint) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut found = Some(found);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("DevTools listening on ")
                    && let Some(found) = found.take()
                {
                    let _ = found.send(url.trim().to_string());
                }
            }
        });
        let url = endpoint
            .recv_timeout(PATIENCE)
            .expect("Chromium prints its DevTools endpoint");
        let (socket, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .expect("connect to the DevTools endpoint");
        Self {
            process,
            _profile: profile,
            socket,
            next_id: 0,
        }
    }

    /// Sends one command (to a page's session if given) and returns its result.
    async fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut command = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            command["sessionId"] = json!(session);
        }
        self.socket
            .send(Message::text(command.to_string()))
            .await
            .expect("send a DevTools command");
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let message = tokio::time::timeout(left, self.socket.next())
                .await
                .unwrap_or_else(|_| panic!("{method}: no answer within {PATIENCE:?}"))
                .expect("the DevTools connection is open")
                .expect("a DevTools message");
            let Message::Text(text) = message else {
                continue;
            };
            let answer: Value = serde_json::from_str(&text).expect("DevTools speaks JSON");
            if answer["id"] != json!(id) {
                continue; // an event
            }
            assert!(answer["error"].is_null(), "{method}: {answer}");
            return answer["result"].clone();
        }
    }

    /// Opens `url` in a new 1600×1000 tab.
    pub async fn open(&mut self, url: &str) -> Page {
        let target = self
            .call(None, "Target.createTarget", json!({"url": "about:blank"}))
            .await;
        let attached = self
            .call(
                None,
                "Target.attachToTarget",
                json!({"targetId": target["targetId"], "flatten": true}),
            )
            .await;
        let page = Page {
            session: attached["sessionId"]
                .as_str()
                .expect("a session id")
                .to_string(),
        };
        let metrics =
            json!({"width": 1600, "height": 1000, "deviceScaleFactor": 1, "mobile": false});
        self.call(
            Some(&page.session),
            "Emulation.setDeviceMetricsOverride",
            metrics,
        )
        .await;
        self.call(Some(&page.session), "Page.navigate", json!({"url": url}))
            .await;
        page
    }

    /// Evaluates `expression` in the page; returns its value (awaited if a promise).
    pub async fn eval(&mut self, page: &Page, expression: &str) -> Value {
        self.try_eval(page, expression)
            .await
            .unwrap_or_else(|exception| panic!("{expression}: {exception}"))
    }

    /// [`Browser::eval`], with a thrown exception as the error.
    async fn try_eval(&mut self, page: &Page, expression: &str) -> Result<Value, Value> {
        let result = self
            .call(
                Some(&page.session),
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        match result.get("exceptionDetails") {
            Some(exception) => Err(exception.clone()),
            None => Ok(result["result"]["value"].clone()),
        }
    }

    /// Evaluates `expression` every 100 ms until it is truthy; returns it.
    /// Until then it may also throw (the page may still be loading).
    pub async fn wait_for(&mut self, page: &Page, expression: &str) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let value = self.try_eval(page, expression).await;
            if let Ok(value) = &value
                && !matches!(value, Value::Null | Value::Bool(false))
                && *value != json!("")
                && *value != json!(0)
            {
                return value.clone();
            }
            assert!(
                Instant::now() < deadline,
                "not within {PATIENCE:?}: {expression} (last: {value:?})"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Saves a PNG of the page under the workspace's `target/`; returns its path.
    pub async fn screenshot(&mut self, page: &Page, name: &str) -> PathBuf {
        let shot = self
            .call(
                Some(&page.session),
                "Page.captureScreenshot",
                json!({"format": "png"}),
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("screenshot data"))
            .expect("base64 PNG");
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target");
        std::fs::create_dir_all(&dir).expect("create the screenshots' folder");
        let path = dir.join(name);
        std::fs::write(&path, png).expect("write the screenshot");
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}
