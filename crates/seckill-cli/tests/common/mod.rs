//! Shared harness of the integration tests: starts `seckill serve` on a
//! private data dir, mints tokens, sends requests and checks the API's
//! answers — the error shape above all.
//!
//! Each test file says `mod common;` and uses the part it needs.

#![allow(dead_code)] // every test file uses a different subset

pub mod nginx;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::ops::Deref;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use reqwest::{Method, StatusCode};
pub use serde_json::{Value, json};

/// Upper bound for anything the harness waits on: start-up, shutdown, one
/// HTTP request.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// How much of the server's stderr is kept for failure messages.
const LOG_TAIL_BYTES: usize = 64 * 1024;

// ---------------------------------------------------------------------------
// The server process
// ---------------------------------------------------------------------------

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
    pub fn data_dir(&self) -> &std::path::Path {
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
    pub async fn terminate(&mut self) -> ExitStatus {
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
        let mut child = Command::new(env!("CARGO_BIN_EXE_seckill"))
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
        self.api = Some(Api {
            base: base.to_string(),
            http: http_client(),
            jwt_secret: Arc::clone(&self.jwt_secret),
            admin_token: Arc::clone(&self.admin_token),
        });
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

pub fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!(
        "{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(PATIENCE)
        .pool_max_idle_per_host(1024)
        // Under the engine's 10 s limit for an idle connection to send a
        // request head, so a pooled connection is never reused just as the
        // engine closes it.
        .pool_idle_timeout(Duration::from_secs(5))
        .build()
        .expect("build the HTTP client")
}

// ---------------------------------------------------------------------------
// Tokens and time
// ---------------------------------------------------------------------------

/// Seconds since the Unix epoch.
pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// An HS256 JWT `{"sub": sub, "exp": exp}` signed with `secret`.
pub fn mint_jwt(secret: &[u8], sub: &str, exp: i64) -> String {
    let claims = json!({ "sub": sub, "exp": exp });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret).expect("a non-empty HMAC key"),
    )
    .expect("sign a JWT")
}

/// `unix_secs` as RFC 3339 in UTC, e.g. `2026-12-01T08:00:00Z`.
pub fn rfc3339(unix_secs: i64) -> String {
    let (days, secs) = (unix_secs.div_euclid(86_400), unix_secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Parses an RFC 3339 UTC time (`Z` or `+00:00`, optional fraction) into
/// milliseconds since the epoch. Panics on anything else.
pub fn parse_rfc3339_millis(s: &str) -> i64 {
    let rest = s
        .strip_suffix('Z')
        .or_else(|| s.strip_suffix("+00:00"))
        .unwrap_or_else(|| not_rfc3339(s));
    let (date, time) = rest.split_once('T').unwrap_or_else(|| not_rfc3339(s));
    let num = |x: &str| x.parse::<i64>().unwrap_or_else(|_| not_rfc3339(s));
    let date: Vec<i64> = date.split('-').map(num).collect();
    let (clock, fraction) = time.split_once('.').unwrap_or((time, "0"));
    let clock: Vec<i64> = clock.split(':').map(num).collect();
    if date.len() != 3 || clock.len() != 3 || fraction.is_empty() {
        not_rfc3339(s);
    }
    let millis = num(&format!("{fraction:0<3}")[..3]);
    // Howard Hinnant's days_from_civil.
    let (month, day) = (date[1], date[2]);
    let year = date[0] - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + clock[0] * 3600 + clock[1] * 60 + clock[2];
    secs * 1000 + millis
}

fn not_rfc3339(s: &str) -> ! {
    panic!("not an RFC 3339 UTC time: {s:?}")
}

/// Polls `probe` every 50 ms until it returns `Some`, or panics after
/// `within` saying `what` never happened.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------

/// Who a request claims to be.
#[derive(Debug, Clone)]
pub enum Auth {
    /// No `Authorization` header.
    None,
    /// A valid user token for this user id.
    User(String),
    /// The admin token.
    Admin,
    /// `Authorization: Bearer <this>`, verbatim.
    Bearer(String),
    /// `Authorization: <this>`, verbatim.
    Header(String),
}

impl Auth {
    pub fn user(id: impl Into<String>) -> Self {
        Self::User(id.into())
    }
}

/// What a request carries.
#[derive(Debug, Clone)]
pub enum Body {
    Empty,
    /// Serialised, with `Content-Type: application/json`.
    Json(Value),
    /// These bytes, with `Content-Type: application/json`.
    Raw(Vec<u8>),
}

impl From<Value> for Body {
    fn from(value: Value) -> Self {
        Self::Json(value)
    }
}

/// The API of one running server: cheap to clone and to share between
/// concurrent tasks.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    http: reqwest::Client,
    jwt_secret: Arc<str>,
    admin_token: Arc<str>,
}

/// A complete answer.
#[derive(Debug)]
pub struct Resp {
    /// `METHOD path`, for failure messages.
    pub request: String,
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Api {
    /// A valid user token (expires in an hour).
    pub fn user_token(&self, user: &str) -> String {
        mint_jwt(self.jwt_secret.as_bytes(), user, now_unix() + 3600)
    }

    /// A token the server would accept but for its `exp`.
    pub fn user_token_expiring(&self, user: &str, exp: i64) -> String {
        mint_jwt(self.jwt_secret.as_bytes(), user, exp)
    }

    /// The same users and operator, talking to `base` (e.g. a load
    /// balancer in front of this server).
    pub fn at(&self, base: &str) -> Api {
        Api {
            base: base.to_string(),
            ..self.clone()
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The server's JWT secret, for tools that mint their own tokens.
    pub fn jwt_secret(&self) -> &str {
        &self.jwt_secret
    }

    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// Sends a request; transport errors (e.g. the server died) are returned.
    pub async fn try_call(
        &self,
        method: Method,
        path: &str,
        auth: &Auth,
        body: Body,
        headers: &[(&str, &str)],
    ) -> Result<Resp, reqwest::Error> {
        let request = format!("{method} {path}");
        let mut builder = self.http.request(method, self.url(path));
        builder = match auth {
            Auth::None => builder,
            Auth::User(user) => builder.bearer_auth(self.user_token(user)),
            Auth::Admin => builder.bearer_auth(&*self.admin_token),
            Auth::Bearer(token) => builder.bearer_auth(token),
            Auth::Header(value) => builder.header("authorization", value),
        };
        builder = match body {
            Body::Empty => builder,
            Body::Json(value) => builder
                .header("content-type", "application/json")
                .body(value.to_string()),
            Body::Raw(bytes) => builder
                .header("content-type", "application/json")
                .body(bytes),
        };
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let response = builder.send().await?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await?.to_vec();
        Ok(Resp {
            request,
            status,
            headers,
            body,
        })
    }

    /// Sends a request; panics on transport errors.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        auth: &Auth,
        body: Body,
        headers: &[(&str, &str)],
    ) -> Resp {
        let request = format!("{method} {path}");
        self.try_call(method, path, auth, body, headers)
            .await
            .unwrap_or_else(|e| panic!("{request}: no answer: {e:?}"))
    }

    pub async fn get(&self, path: &str, auth: &Auth) -> Resp {
        self.call(Method::GET, path, auth, Body::Empty, &[]).await
    }

    pub async fn post(&self, path: &str, auth: &Auth, body: impl Into<Body>) -> Resp {
        self.call(Method::POST, path, auth, body.into(), &[]).await
    }

    // --- sales ----------------------------------------------------------

    /// `POST /api/v1/sales`; asserts 201 and a matching `Location`, returns
    /// the sale object.
    pub async fn create_sale(&self, body: Value) -> Value {
        let resp = self.post("/api/v1/sales", &Auth::Admin, body).await;
        let sale = resp.expect(StatusCode::CREATED);
        let id = str_field(&sale, "id");
        assert!(!id.is_empty(), "empty sale id: {sale}");
        assert_eq!(
            resp.header("location"),
            Some(format!("/api/v1/sales/{id}").as_str()),
            "Location of the created sale"
        );
        sale
    }

    /// A sale open now, with no end, price 100 cents; returns its id.
    pub async fn open_sale(&self, stock: u64, per_user_limit: u64) -> String {
        self.open_sale_with(json!({ "stock": stock, "per_user_limit": per_user_limit }))
            .await
    }

    /// A sale open now; `fields` are added to (or override) a name and a price.
    pub async fn open_sale_with(&self, fields: Value) -> String {
        let mut body = json!({ "name": "integration test sale", "price_cents": 100 });
        for (key, value) in fields.as_object().expect("fields is an object") {
            body[key] = value.clone();
        }
        str_field(&self.create_sale(body).await, "id")
    }

    /// `GET /api/v1/sales/{id}/stock`, asserted 200.
    pub async fn stock(&self, sale_id: &str) -> Value {
        self.get(&format!("/api/v1/sales/{sale_id}/stock"), &Auth::None)
            .await
            .expect(StatusCode::OK)
    }

    /// `GET /api/v1/sales/{id}/report` as admin, asserted 200.
    pub async fn report(&self, sale_id: &str) -> Report {
        let value = self
            .get(&format!("/api/v1/sales/{sale_id}/report"), &Auth::Admin)
            .await
            .expect(StatusCode::OK);
        Report::from_json(&value)
    }

    // --- buying ---------------------------------------------------------

    /// `POST /api/v1/sales/{id}/purchase` with an empty body.
    pub async fn purchase(&self, user: &str, sale_id: &str) -> Resp {
        self.purchase_with(user, sale_id, None, None).await
    }

    /// A purchase with an optional `{"quantity": n}` and `Idempotency-Key`.
    pub async fn purchase_with(
        &self,
        user: &str,
        sale_id: &str,
        quantity: Option<u64>,
        idempotency_key: Option<&str>,
    ) -> Resp {
        self.try_purchase(user, sale_id, quantity, idempotency_key)
            .await
            .unwrap_or_else(|e| panic!("purchase on {sale_id} by {user}: no answer: {e:?}"))
    }

    /// [`Api::purchase_with`] that returns transport errors.
    pub async fn try_purchase(
        &self,
        user: &str,
        sale_id: &str,
        quantity: Option<u64>,
        idempotency_key: Option<&str>,
    ) -> Result<Resp, reqwest::Error> {
        let body = quantity.map_or(Body::Empty, |n| Body::Json(json!({ "quantity": n })));
        let key_header;
        let headers: &[(&str, &str)] = match idempotency_key {
            Some(key) => {
                key_header = [("idempotency-key", key)];
                &key_header
            }
            None => &[],
        };
        self.try_call(
            Method::POST,
            &format!("/api/v1/sales/{sale_id}/purchase"),
            &Auth::user(user),
            body,
            headers,
        )
        .await
    }

    /// A purchase that must succeed: asserts 202 with a well-formed
    /// reservation, returns the order id.
    pub async fn buy(&self, user: &str, sale_id: &str) -> String {
        self.purchase(user, sale_id).await.accepted(sale_id)
    }

    // --- orders ---------------------------------------------------------

    /// `GET /api/v1/orders/{id}` as `user`.
    pub async fn order(&self, user: &str, order_id: &str) -> Resp {
        self.get(&format!("/api/v1/orders/{order_id}"), &Auth::user(user))
            .await
    }

    /// The order as its owner sees it (asserted 200).
    pub async fn order_of(&self, user: &str, order_id: &str) -> Value {
        let order = self.order(user, order_id).await.expect(StatusCode::OK);
        assert_eq!(str_field(&order, "order_id"), order_id, "{order}");
        assert_eq!(str_field(&order, "user_id"), user, "{order}");
        order
    }

    /// `GET /api/v1/orders?sale_id=…` as `user` (asserted 200, an array).
    pub async fn my_orders(&self, user: &str, sale_id: &str) -> Vec<Value> {
        let list = self
            .get(
                &format!("/api/v1/orders?sale_id={sale_id}"),
                &Auth::user(user),
            )
            .await
            .expect(StatusCode::OK);
        list.as_array()
            .unwrap_or_else(|| panic!("orders list is not an array: {list}"))
            .clone()
    }

    pub async fn pay(&self, user: &str, order_id: &str, payment_ref: &str) -> Resp {
        self.post(
            &format!("/api/v1/orders/{order_id}/pay"),
            &Auth::user(user),
            json!({ "payment_ref": payment_ref }),
        )
        .await
    }

    pub async fn cancel(&self, user: &str, order_id: &str) -> Resp {
        self.post(
            &format!("/api/v1/orders/{order_id}/cancel"),
            &Auth::user(user),
            Body::Empty,
        )
        .await
    }

    /// One order paid (by "payer") and one cancelled (by "canceller") on
    /// `sale_id`, both asserted 200.
    pub async fn settle_one_of_each(&self, sale_id: &str) {
        let paid = self.buy("payer", sale_id).await;
        self.pay("payer", &paid, "ref").await.expect(StatusCode::OK);
        let cancelled = self.buy("canceller", sale_id).await;
        self.cancel("canceller", &cancelled)
            .await
            .expect(StatusCode::OK);
    }
}

impl Resp {
    /// The body as JSON; panics with the raw body if it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} → {}: body is not JSON ({e}): {:?}",
                self.request,
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the status, whatever the body.
    #[track_caller]
    pub fn assert_status(&self, status: StatusCode) {
        assert_eq!(
            self.status,
            status,
            "{}: unexpected status; body: {}",
            self.request,
            self.text()
        );
    }

    /// Asserts the status and returns the JSON body.
    #[track_caller]
    pub fn expect(&self, status: StatusCode) -> Value {
        assert_eq!(
            self.status,
            status,
            "{}: unexpected status; body: {}",
            self.request,
            self.text()
        );
        self.json()
    }

    /// Asserts the status and an error body of exactly
    /// `{"error":{"code":code,"message":…}}`; returns the message.
    #[track_caller]
    pub fn expect_error(&self, status: StatusCode, code: &str) -> String {
        let (got_code, message) = self.error();
        assert_eq!(
            (self.status, got_code.as_str()),
            (status, code),
            "{}: unexpected answer; message: {message}",
            self.request
        );
        message
    }

    /// Asserts the refusal a buyer may get in a rush — 409 `sold_out` or
    /// `limit_reached` — and returns its code.
    #[track_caller]
    pub fn expect_rush_refusal(&self) -> String {
        let (code, _) = self.error();
        assert_eq!(
            self.status,
            StatusCode::CONFLICT,
            "{}: {code}",
            self.request
        );
        assert!(
            code == "sold_out" || code == "limit_reached",
            "{}: unexpected refusal {code}",
            self.request
        );
        code
    }

    /// The `(code, message)` of an error body, asserting its exact shape.
    #[track_caller]
    pub fn error(&self) -> (String, String) {
        let body = self.json();
        let (code, message) = error_shape(&body)
            .unwrap_or_else(|why| panic!("{} → {}: {why}: {body}", self.request, self.status));
        (code.to_string(), message.to_string())
    }

    /// The `(code, message)` if the body is exactly the error shape.
    pub fn try_error(&self) -> Option<(String, String)> {
        let body: Value = serde_json::from_slice(&self.body).ok()?;
        error_shape(&body)
            .ok()
            .map(|(c, m)| (c.to_string(), m.to_string()))
    }

    /// Asserts a well-formed 202 reservation on `sale_id`, pending payment;
    /// returns its order id.
    #[track_caller]
    pub fn accepted(&self, sale_id: &str) -> String {
        let body = self.expect(StatusCode::ACCEPTED);
        let order_id = str_field(&body, "order_id");
        assert!(!order_id.is_empty(), "empty order id: {body}");
        assert_eq!(str_field(&body, "sale_id"), sale_id, "{body}");
        // Cluster mode answers `queued`, before the order's row exists.
        let status = str_field(&body, "status");
        assert!(status == "pending_payment" || status == "queued", "{body}");
        parse_rfc3339_millis(&str_field(&body, "expires_at"));
        assert_eq!(
            self.header("location"),
            Some(format!("/api/v1/orders/{order_id}").as_str()),
            "Location of the reservation"
        );
        order_id
    }
}

/// Checks `{"error":{"code":"…","message":"…"}}` with no other member and
/// non-empty strings.
pub fn error_shape(body: &Value) -> Result<(&str, &str), String> {
    let outer = body.as_object().ok_or("not an object")?;
    let keys: BTreeSet<&str> = outer.keys().map(String::as_str).collect();
    if keys != BTreeSet::from(["error"]) {
        return Err(format!("top-level members {keys:?}, want only `error`"));
    }
    let inner = outer["error"]
        .as_object()
        .ok_or("`error` is not an object")?;
    let keys: BTreeSet<&str> = inner.keys().map(String::as_str).collect();
    if keys != BTreeSet::from(["code", "message"]) {
        return Err(format!(
            "`error` members {keys:?}, want `code` and `message`"
        ));
    }
    let code = inner["code"].as_str().ok_or("`code` is not a string")?;
    let message = inner["message"]
        .as_str()
        .ok_or("`message` is not a string")?;
    if code.is_empty() || message.is_empty() {
        return Err("empty `code` or `message`".into());
    }
    Ok((code, message))
}

/// A string member, asserted present.
#[track_caller]
pub fn str_field(value: &Value, name: &str) -> String {
    value[name]
        .as_str()
        .unwrap_or_else(|| panic!("`{name}` is not a string in {value}"))
        .to_string()
}

/// An unsigned integer member, asserted present.
#[track_caller]
pub fn u64_field(value: &Value, name: &str) -> u64 {
    value[name]
        .as_u64()
        .unwrap_or_else(|| panic!("`{name}` is not an unsigned integer in {value}"))
}

/// `GET /api/v1/sales/{id}/report`: units per order status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    pub stock: u64,
    pub remaining: u64,
    pub queued: u64,
    pub pending_payment: u64,
    pub paid: u64,
    pub expired: u64,
    pub cancelled: u64,
}

impl Report {
    #[track_caller]
    pub fn from_json(value: &Value) -> Self {
        Self {
            stock: u64_field(value, "stock"),
            remaining: u64_field(value, "remaining"),
            queued: u64_field(value, "queued"),
            pending_payment: u64_field(value, "pending_payment"),
            paid: u64_field(value, "paid"),
            expired: u64_field(value, "expired"),
            cancelled: u64_field(value, "cancelled"),
        }
    }

    /// Units that count against the stock.
    pub fn held(&self) -> u64 {
        self.queued + self.pending_payment + self.paid
    }

    /// I1 in numbers: every unit is either held or still for sale.
    #[track_caller]
    pub fn assert_balanced(&self) {
        assert_eq!(
            self.remaining + self.held(),
            self.stock,
            "remaining + queued + pending_payment + paid must equal stock: {self:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// Strings no order store keeps
// ---------------------------------------------------------------------------

/// Control characters (PostgreSQL refuses NUL in text) in every string
/// that reaches a store, sent in every mode: each is refused at the door
/// (400 naming the field, 401 for a token's `sub`), nothing is reserved or
/// changed, and the store's breaker stays closed. `owner` holds `order`,
/// pending payment, on `sale`; it is paid at the end, which a store breaker
/// opened by the refusals would answer 503.
pub async fn refuse_what_no_store_keeps(api: &Api, sale: &str, owner: &str, order: &str) {
    let before = (api.report(sale).await, api.my_orders(owner, sale).await);
    let sales = api.get("/api/v1/sales", &Auth::None).await.json();
    let bad_text = ["a\0b", "line\nbreak", "\u{1b}[2J", "c1\u{85}c1"];

    // More refusals in a row than any breaker's threshold.
    for payment_ref in bad_text.iter().chain(&bad_text) {
        let message = api
            .pay(owner, order, payment_ref)
            .await
            .expect_error(StatusCode::BAD_REQUEST, "bad_request");
        assert!(
            message.contains("payment_ref"),
            "{payment_ref:?}: {message}"
        );
    }
    for name in bad_text {
        let body = json!({ "name": name, "stock": 1, "price_cents": 1 });
        let message = api
            .post("/api/v1/sales", &Auth::Admin, body)
            .await
            .expect_error(StatusCode::BAD_REQUEST, "bad_request");
        assert!(message.contains("name"), "{name:?}: {message}");
    }
    let too_long = "u".repeat(201);
    for sub in bad_text.iter().copied().chain([too_long.as_str()]) {
        let token = Auth::Bearer(mint_jwt(
            api.jwt_secret().as_bytes(),
            sub,
            now_unix() + 3600,
        ));
        let purchase = format!("/api/v1/sales/{sale}/purchase");
        for key in [None, Some("k")] {
            let headers: Vec<(&str, &str)> =
                key.map(|k| ("idempotency-key", k)).into_iter().collect();
            api.call(Method::POST, &purchase, &token, Body::Empty, &headers)
                .await
                .expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
        }
        api.get(&format!("/api/v1/orders?sale_id={sale}"), &token)
            .await
            .expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    // Ids no order or sale can have reach no store either.
    let user = Auth::user(owner);
    for path in ["/api/v1/orders/a%00b", "/api/v1/orders/a%00b/cancel"] {
        let method = if path.ends_with("cancel") {
            Method::POST
        } else {
            Method::GET
        };
        api.call(method, path, &user, Body::Empty, &[])
            .await
            .expect_error(StatusCode::NOT_FOUND, "not_found");
    }
    let none = api
        .get("/api/v1/orders?sale_id=a%00b", &user)
        .await
        .expect(StatusCode::OK);
    assert_eq!(none, json!([]));

    let after = (api.report(sale).await, api.my_orders(owner, sale).await);
    assert_eq!(before, after, "refused requests changed the orders");
    assert_eq!(api.get("/api/v1/sales", &Auth::None).await.json(), sales);
    let paid = api.pay(owner, order, "ref-ok").await.expect(StatusCode::OK);
    assert_eq!(str_field(&paid, "status"), "paid");
}

/// Identities and keys compare byte for byte in every order store: a user
/// whose id is another's with a space added, or in capitals, is someone
/// else. `victim` buys on `sale` with a key; each impostor sees none of
/// it, cannot read, pay or cancel it, and its own purchase with the same
/// key becomes an order of its own, written and readable (a store that
/// padded would take it for the victim's row and drop it).
pub async fn identities_compare_byte_for_byte(api: &Api, sale: &str) {
    let victim = "victim";
    let key = Some("same-key");
    let theirs = api
        .purchase_with(victim, sale, None, key)
        .await
        .accepted(sale);
    let pending = |user: &'static str, order: String| async move {
        eventually(PATIENCE, "the order is written", || async {
            (api.order_of(user, &order).await["status"] == "pending_payment").then_some(())
        })
        .await;
    };
    pending(victim, theirs.clone()).await;

    let impostors = ["victim ", "victim  ", " victim", "VICTIM"];
    let mut own = Vec::new();
    for impostor in impostors {
        assert_eq!(
            api.my_orders(impostor, sale).await,
            Vec::<Value>::new(),
            "{impostor:?}"
        );
        for resp in [
            api.order(impostor, &theirs).await,
            api.pay(impostor, &theirs, "not-mine").await,
            api.cancel(impostor, &theirs).await,
        ] {
            resp.expect_error(StatusCode::NOT_FOUND, "not_found");
        }
        let order = api
            .purchase_with(impostor, sale, None, key)
            .await
            .accepted(sale);
        assert_ne!(order, theirs, "{impostor:?} got the victim's order");
        pending(impostor, order.clone()).await;
        own.push(order);
    }
    for (impostor, order) in impostors.iter().zip(&own) {
        let listed = api.my_orders(impostor, sale).await;
        assert_eq!(listed.len(), 1, "{impostor:?}: {listed:?}");
        assert_eq!(&str_field(&listed[0], "order_id"), order);
    }
    let mine = api.my_orders(victim, sale).await;
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert_eq!(str_field(&mine[0], "order_id"), theirs);
    assert_eq!(str_field(&mine[0], "status"), "pending_payment");
}

// ---------------------------------------------------------------------------
// Raw sockets
// ---------------------------------------------------------------------------

/// A purchase whose body never finishes: the handler waits for it.
pub async fn stalled_purchase(api: &Api, sale: &str) -> tokio::net::TcpStream {
    let addr = api.base.strip_prefix("http://").expect("an http base");
    let mut socket = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST /api/v1/sales/{sale}/purchase HTTP/1.1\r\nHost: {addr}\r\n\
         Authorization: Bearer {}\r\nContent-Type: application/json\r\n\
         Content-Length: 100\r\n\r\n{{\"quan",
        api.user_token("staller")
    );
    tokio::io::AsyncWriteExt::write_all(&mut socket, head.as_bytes())
        .await
        .expect("send the head");
    socket
}

/// Runs `seckill serve` with `flags` on a fresh data dir, expecting it to
/// refuse to start: its exit code and what it said on stderr.
pub fn serve_refusal(flags: &[&str]) -> (Option<i32>, String) {
    let data_dir = tempfile::tempdir().expect("a data dir");
    let output = Command::new(env!("CARGO_BIN_EXE_seckill"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(flags)
        .env("SECKILL_DATA_DIR", data_dir.path())
        .output()
        .expect("run seckill serve");
    assert!(!output.status.success(), "{flags:?} started");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code(), stderr)
}
