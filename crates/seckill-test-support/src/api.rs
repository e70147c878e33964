//! A client of one server's API: requests as a given user or the operator,
//! and complete answers with assertions on their status and shape (above
//! all the error body, `{"error":{"code","message"}}`).

use crate::PATIENCE;
use crate::clock::{now_unix, parse_rfc3339_millis};
use crate::token::mint_jwt;
use reqwest::{Method, StatusCode};
pub use seckill_bench::api::SaleReport;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

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
    /// [`Auth::User`] for this user id.
    pub fn user(id: impl Into<String>) -> Self {
        Self::User(id.into())
    }
}

/// What a request carries.
#[derive(Debug, Clone)]
pub enum Body {
    /// No body.
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
    /// `http(s)://HOST:PORT`, no trailing slash.
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
    /// The status code.
    pub status: StatusCode,
    /// The headers.
    pub headers: reqwest::header::HeaderMap,
    /// The whole body.
    pub body: Vec<u8>,
}

impl Api {
    /// The API at `base` of a server with these secrets.
    pub(crate) fn new(base: &str, jwt_secret: Arc<str>, admin_token: Arc<str>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(PATIENCE)
            .pool_max_idle_per_host(1024)
            // Under the engine's 10 s limit for an idle connection to send a
            // request head, so a pooled connection is never reused just as the
            // engine closes it.
            .pool_idle_timeout(Duration::from_secs(5))
            .build()
            .expect("build the HTTP client");
        Self {
            base: base.to_string(),
            http,
            jwt_secret,
            admin_token,
        }
    }

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

    /// The absolute URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The server's JWT secret, for tools that mint their own tokens.
    pub fn jwt_secret(&self) -> &str {
        &self.jwt_secret
    }

    /// The server's admin token.
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// Sends a request; transport errors (e.g. the server died) are returned.
    async fn try_call(
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

    /// `GET path`; panics on transport errors.
    pub async fn get(&self, path: &str, auth: &Auth) -> Resp {
        self.call(Method::GET, path, auth, Body::Empty, &[]).await
    }

    /// `POST path` with `body`; panics on transport errors.
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
    pub async fn report(&self, sale_id: &str) -> SaleReport {
        self.get(&format!("/api/v1/sales/{sale_id}/report"), &Auth::Admin)
            .await
            .expect_as(StatusCode::OK)
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

    /// `POST /api/v1/orders/{id}/pay` as `user`.
    pub async fn pay(&self, user: &str, order_id: &str, payment_ref: &str) -> Resp {
        self.post(
            &format!("/api/v1/orders/{order_id}/pay"),
            &Auth::user(user),
            json!({ "payment_ref": payment_ref }),
        )
        .await
    }

    /// `POST /api/v1/orders/{id}/cancel` as `user`.
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

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header's value, if present and visible ASCII.
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

    /// Asserts the status and returns the JSON body read as a `T`.
    #[track_caller]
    pub fn expect_as<T: DeserializeOwned>(&self, status: StatusCode) -> T {
        let body = self.expect(status);
        serde_json::from_value(body.clone()).unwrap_or_else(|e| {
            panic!(
                "{} → {}: not a {} ({e}): {body}",
                self.request,
                self.status,
                std::any::type_name::<T>()
            )
        })
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

/// I1 in numbers: every unit of the report is either held or still for sale.
#[track_caller]
pub fn assert_balanced(report: &SaleReport) {
    assert_eq!(
        report.remaining + report.held(),
        report.stock,
        "remaining + queued + pending_payment + paid must equal stock: {report:?}"
    );
}

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
