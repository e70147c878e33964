//! I8: malformed, oversized, unauthorised and misrouted requests each get
//! the right 4xx with the exact error shape, change nothing, and leave the
//! server serving.

use seckill_test_support::*;

/// One hostile request and the answer it must get.
struct Case {
    what: &'static str,
    method: Method,
    path: String,
    auth: Auth,
    body: Body,
    status: StatusCode,
    code: &'static str,
    /// A field the message must name.
    names: Option<&'static str>,
}

fn case(
    what: &'static str,
    method: Method,
    path: impl Into<String>,
    auth: Auth,
    body: Body,
    (status, code): (StatusCode, &'static str),
) -> Case {
    Case {
        what,
        method,
        path: path.into(),
        auth,
        body,
        status,
        code,
        names: None,
    }
}

impl Case {
    fn naming(mut self, field: &'static str) -> Self {
        self.names = Some(field);
        self
    }
}

const BAD_REQUEST: (StatusCode, &str) = (StatusCode::BAD_REQUEST, "bad_request");
const UNAUTHORIZED: (StatusCode, &str) = (StatusCode::UNAUTHORIZED, "unauthorized");
const NOT_FOUND: (StatusCode, &str) = (StatusCode::NOT_FOUND, "not_found");
const TOO_LARGE: (StatusCode, &str) = (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
const WRONG_METHOD: (StatusCode, &str) = (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");

/// A sale-creation body: a valid one with `field` set to `value`.
fn sale_with(field: &str, value: Value) -> Body {
    let mut body = json!({ "name": "hostile", "stock": 10, "price_cents": 100 });
    body[field] = value;
    Body::Json(body)
}

/// A sale-creation body: a valid one without `field`.
fn sale_without(field: &str) -> Body {
    let mut body = json!({ "name": "hostile", "stock": 10, "price_cents": 100 });
    body.as_object_mut().unwrap().remove(field);
    Body::Json(body)
}

fn raw(bytes: &[u8]) -> Body {
    Body::Raw(bytes.to_vec())
}

/// A valid JSON document of more than 1 MiB.
fn oversized(field: &str) -> Body {
    Body::Json(json!({ field: "x".repeat(1024 * 1024 + 1024) }))
}

/// Everything a client can read about the world, to prove nothing moved.
#[derive(Debug, PartialEq)]
struct Snapshot {
    sales: Value,
    sale: Value,
    stock: Value,
    report: SaleReport,
    owner_orders: Vec<Value>,
}

async fn snapshot(server: &Api, sale: &str, owner: &str) -> Snapshot {
    Snapshot {
        sales: server
            .get("/api/v1/sales", &Auth::None)
            .await
            .expect(StatusCode::OK),
        sale: server
            .get(&format!("/api/v1/sales/{sale}"), &Auth::None)
            .await
            .expect(StatusCode::OK),
        stock: server.stock(sale).await,
        report: server.report(sale).await,
        owner_orders: server.my_orders(owner, sale).await,
    }
}

/// The whole table of hostile requests against a sale with one pending
/// order: every answer is the expected 4xx in the exact error shape (naming
/// the field where there is one), and afterwards the sales, the stock, the
/// report and the orders are exactly as before and `/healthz` answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_clean_errors_and_change_nothing() {
    let server = Seckill::start().await;
    let sale = server.open_sale(10, 2).await;
    let order = server.buy("owner", &sale).await;
    let before = snapshot(&server, &sale, "owner").await;
    assert_eq!(before.report.pending_payment, 1);
    assert_eq!(before.owner_orders.len(), 1);

    let now = now_unix();
    let owner = || Auth::user("owner");
    let sales = "/api/v1/sales";
    let purchase = format!("/api/v1/sales/{sale}/purchase");
    let pay = format!("/api/v1/orders/{order}/pay");
    let forged = mint_jwt(b"not the server's secret at all, nope", "owner", now + 3600);
    let expired = server.user_token_expiring("owner", now - 3600);
    let q = |n: Value| Body::Json(json!({ "quantity": n }));
    use Method as M;

    #[rustfmt::skip]
    let cases = vec![
        // --- creating a sale: syntax ---
        case("malformed JSON", M::POST, sales, Auth::Admin, raw(br#"{"name": "x", "stock": "#), BAD_REQUEST),
        case("not JSON", M::POST, sales, Auth::Admin, raw(b"hello"), BAD_REQUEST),
        case("JSON array", M::POST, sales, Auth::Admin, raw(b"[]"), BAD_REQUEST),
        case("sale fields as an array", M::POST, sales, Auth::Admin, raw(br#"["hostile",10,100]"#), BAD_REQUEST).naming("object"),
        case("empty body", M::POST, sales, Auth::Admin, Body::Empty, BAD_REQUEST),
        case("trailing garbage", M::POST, sales, Auth::Admin, raw(br#"{"name":"x","stock":1,"price_cents":1} x"#), BAD_REQUEST),
        case("non-UTF-8 body", M::POST, sales, Auth::Admin, raw(b"\xff\xfe\xfd"), BAD_REQUEST),
        case("non-UTF-8 name", M::POST, sales, Auth::Admin, raw(b"{\"name\":\"\xff\xfe\",\"stock\":1,\"price_cents\":1}"), BAD_REQUEST),
        // --- creating a sale: types and ranges ---
        case("stock as string", M::POST, sales, Auth::Admin, sale_with("stock", json!("10")), BAD_REQUEST).naming("stock"),
        case("stock null", M::POST, sales, Auth::Admin, sale_with("stock", json!(null)), BAD_REQUEST).naming("stock"),
        case("stock 0", M::POST, sales, Auth::Admin, sale_with("stock", json!(0)), BAD_REQUEST).naming("stock"),
        case("stock -1", M::POST, sales, Auth::Admin, sale_with("stock", json!(-1)), BAD_REQUEST).naming("stock"),
        case("stock 1.5", M::POST, sales, Auth::Admin, sale_with("stock", json!(1.5)), BAD_REQUEST).naming("stock"),
        case("stock 1e30", M::POST, sales, Auth::Admin, raw(br#"{"name":"x","stock":1e30,"price_cents":1}"#), BAD_REQUEST).naming("stock"),
        case("stock 2^64", M::POST, sales, Auth::Admin, raw(br#"{"name":"x","stock":18446744073709551616,"price_cents":1}"#), BAD_REQUEST).naming("stock"),
        case("stock above 1e9", M::POST, sales, Auth::Admin, sale_with("stock", json!(1_000_000_001)), BAD_REQUEST).naming("stock"),
        case("price -1", M::POST, sales, Auth::Admin, sale_with("price_cents", json!(-1)), BAD_REQUEST).naming("price_cents"),
        case("price above i64", M::POST, sales, Auth::Admin, sale_with("price_cents", json!(9_223_372_036_854_775_808_u64)), BAD_REQUEST).naming("price_cents"),
        case("per_user_limit 0", M::POST, sales, Auth::Admin, sale_with("per_user_limit", json!(0)), BAD_REQUEST).naming("per_user_limit"),
        case("per_user_limit above 1e9", M::POST, sales, Auth::Admin, sale_with("per_user_limit", json!(1_000_000_001)), BAD_REQUEST).naming("per_user_limit"),
        case("payment_timeout_secs 0", M::POST, sales, Auth::Admin, sale_with("payment_timeout_secs", json!(0)), BAD_REQUEST).naming("payment_timeout_secs"),
        case("payment_timeout_secs too long", M::POST, sales, Auth::Admin, sale_with("payment_timeout_secs", json!(31_622_401)), BAD_REQUEST).naming("payment_timeout_secs"),
        case("empty name", M::POST, sales, Auth::Admin, sale_with("name", json!("")), BAD_REQUEST).naming("name"),
        case("name of 201 chars", M::POST, sales, Auth::Admin, sale_with("name", json!("n".repeat(201))), BAD_REQUEST).naming("name"),
        case("name as number", M::POST, sales, Auth::Admin, sale_with("name", json!(7)), BAD_REQUEST).naming("name"),
        case("require_purchase_token as string", M::POST, sales, Auth::Admin, sale_with("require_purchase_token", json!("yes")), BAD_REQUEST).naming("require_purchase_token"),
        case("unknown field", M::POST, sales, Auth::Admin, sale_with("colour", json!("red")), BAD_REQUEST).naming("colour"),
        case("missing name", M::POST, sales, Auth::Admin, sale_without("name"), BAD_REQUEST).naming("name"),
        case("missing stock", M::POST, sales, Auth::Admin, sale_without("stock"), BAD_REQUEST).naming("stock"),
        case("missing price", M::POST, sales, Auth::Admin, sale_without("price_cents"), BAD_REQUEST).naming("price_cents"),
        case("starts_at in words", M::POST, sales, Auth::Admin, sale_with("starts_at", json!("tomorrow")), BAD_REQUEST).naming("starts_at"),
        case("starts_at month 13", M::POST, sales, Auth::Admin, sale_with("starts_at", json!("2030-13-01T00:00:00Z")), BAD_REQUEST).naming("starts_at"),
        case("starts_at without offset", M::POST, sales, Auth::Admin, sale_with("starts_at", json!("2030-12-01T08:00:00")), BAD_REQUEST).naming("starts_at"),
        case("ends_at as number", M::POST, sales, Auth::Admin, sale_with("ends_at", json!(1_900_000_000)), BAD_REQUEST).naming("ends_at"),
        case(
            "ends_at before starts_at",
            M::POST,
            sales,
            Auth::Admin,
            Body::Json(json!({ "name": "x", "stock": 1, "price_cents": 1,
                "starts_at": rfc3339(now + 7200), "ends_at": rfc3339(now + 3600) })),
            BAD_REQUEST,
        )
        .naming("ends_at"),
        case(
            "ends_at equal to starts_at",
            M::POST,
            sales,
            Auth::Admin,
            Body::Json(json!({ "name": "x", "stock": 1, "price_cents": 1,
                "starts_at": rfc3339(now + 3600), "ends_at": rfc3339(now + 3600) })),
            BAD_REQUEST,
        )
        .naming("ends_at"),
        case("ends_at before now", M::POST, sales, Auth::Admin, sale_with("ends_at", json!(rfc3339(now - 60))), BAD_REQUEST).naming("ends_at"),
        case("sale over 1 MiB", M::POST, sales, Auth::Admin, oversized("name"), TOO_LARGE),
        // --- admin endpoints without the admin ---
        case("create without token", M::POST, sales, Auth::None, sale_with("stock", json!(1)), UNAUTHORIZED),
        case("create with a user token", M::POST, sales, owner(), sale_with("stock", json!(1)), UNAUTHORIZED),
        case("create with a wrong admin token", M::POST, sales, Auth::Bearer("not-the-admin-token".into()), sale_with("stock", json!(1)), UNAUTHORIZED),
        case("create with Basic auth", M::POST, sales, Auth::Header("Basic YWRtaW46YWRtaW4=".into()), sale_with("stock", json!(1)), UNAUTHORIZED),
        case("report without token", M::GET, format!("/api/v1/sales/{sale}/report"), Auth::None, Body::Empty, UNAUTHORIZED),
        case("report with a user token", M::GET, format!("/api/v1/sales/{sale}/report"), owner(), Body::Empty, UNAUTHORIZED),
        // --- purchase: who ---
        case("purchase without token", M::POST, &purchase, Auth::None, Body::Empty, UNAUTHORIZED),
        case("purchase with forged token", M::POST, &purchase, Auth::Bearer(forged.clone()), Body::Empty, UNAUTHORIZED),
        case("purchase with expired token", M::POST, &purchase, Auth::Bearer(expired.clone()), Body::Empty, UNAUTHORIZED),
        case("purchase with garbage token", M::POST, &purchase, Auth::Bearer("garbage".into()), Body::Empty, UNAUTHORIZED),
        case("purchase with three-part garbage", M::POST, &purchase, Auth::Bearer("a.b.c".into()), Body::Empty, UNAUTHORIZED),
        case("purchase with empty bearer", M::POST, &purchase, Auth::Header("Bearer ".into()), Body::Empty, UNAUTHORIZED),
        case("purchase with the admin token", M::POST, &purchase, Auth::Admin, Body::Empty, UNAUTHORIZED),
        // --- purchase: what ---
        case("quantity 0", M::POST, &purchase, owner(), q(json!(0)), BAD_REQUEST).naming("quantity"),
        case("quantity above limit", M::POST, &purchase, owner(), q(json!(3)), BAD_REQUEST).naming("quantity"),
        case("quantity as string", M::POST, &purchase, owner(), q(json!("1")), BAD_REQUEST).naming("quantity"),
        case("quantity -1", M::POST, &purchase, owner(), q(json!(-1)), BAD_REQUEST).naming("quantity"),
        case("quantity 1.5", M::POST, &purchase, owner(), q(json!(1.5)), BAD_REQUEST).naming("quantity"),
        case("quantity 1e30", M::POST, &purchase, owner(), raw(br#"{"quantity":1e30}"#), BAD_REQUEST).naming("quantity"),
        case("quantity 2^64", M::POST, &purchase, owner(), raw(br#"{"quantity":18446744073709551616}"#), BAD_REQUEST).naming("quantity"),
        case("purchase malformed JSON", M::POST, &purchase, owner(), raw(b"{quantity: 1}"), BAD_REQUEST),
        case("purchase non-UTF-8 body", M::POST, &purchase, owner(), raw(b"\xff\xfe\xfd"), BAD_REQUEST),
        case("purchase over 1 MiB", M::POST, &purchase, owner(), oversized("quantity"), TOO_LARGE),
        case("purchase [1]", M::POST, &purchase, owner(), raw(b"[1]"), BAD_REQUEST).naming("object"),
        case("purchase []", M::POST, &purchase, owner(), raw(b"[]"), BAD_REQUEST).naming("object"),
        case("purchase [1,2]", M::POST, &purchase, owner(), raw(b" [1,2]"), BAD_REQUEST).naming("object"),
        // --- unknown sale ---
        case("get unknown sale", M::GET, "/api/v1/sales/no-such-sale", Auth::None, Body::Empty, NOT_FOUND),
        case("stock of unknown sale", M::GET, "/api/v1/sales/no-such-sale/stock", Auth::None, Body::Empty, NOT_FOUND),
        case("report of unknown sale", M::GET, "/api/v1/sales/no-such-sale/report", Auth::Admin, Body::Empty, NOT_FOUND),
        case("purchase on unknown sale", M::POST, "/api/v1/sales/no-such-sale/purchase", owner(), Body::Empty, NOT_FOUND),
        case("anonymous purchase on unknown sale", M::POST, "/api/v1/sales/no-such-sale/purchase", Auth::None, Body::Empty, NOT_FOUND),
        // --- orders ---
        case("get unknown order", M::GET, "/api/v1/orders/no-such-order", owner(), Body::Empty, NOT_FOUND),
        case("pay unknown order", M::POST, "/api/v1/orders/no-such-order/pay", owner(), Body::Json(json!({"payment_ref": "r"})), NOT_FOUND),
        case("cancel unknown order", M::POST, "/api/v1/orders/no-such-order/cancel", owner(), Body::Empty, NOT_FOUND),
        case("get another user's order", M::GET, format!("/api/v1/orders/{order}"), Auth::user("intruder"), Body::Empty, NOT_FOUND),
        case("pay another user's order", M::POST, &pay, Auth::user("intruder"), Body::Json(json!({"payment_ref": "r"})), NOT_FOUND),
        case("cancel another user's order", M::POST, format!("/api/v1/orders/{order}/cancel"), Auth::user("intruder"), Body::Empty, NOT_FOUND),
        case("get order without token", M::GET, format!("/api/v1/orders/{order}"), Auth::None, Body::Empty, UNAUTHORIZED),
        case("pay without token", M::POST, &pay, Auth::None, Body::Json(json!({"payment_ref": "r"})), UNAUTHORIZED),
        case("pay with forged token", M::POST, &pay, Auth::Bearer(forged.clone()), Body::Json(json!({"payment_ref": "r"})), UNAUTHORIZED),
        case("cancel with expired token", M::POST, format!("/api/v1/orders/{order}/cancel"), Auth::Bearer(expired.clone()), Body::Empty, UNAUTHORIZED),
        case("list orders without token", M::GET, format!("/api/v1/orders?sale_id={sale}"), Auth::None, Body::Empty, UNAUTHORIZED),
        case("empty payment_ref", M::POST, &pay, owner(), Body::Json(json!({"payment_ref": ""})), BAD_REQUEST).naming("payment_ref"),
        case("missing payment_ref", M::POST, &pay, owner(), Body::Json(json!({})), BAD_REQUEST).naming("payment_ref"),
        case("payment_ref as number", M::POST, &pay, owner(), Body::Json(json!({"payment_ref": 5})), BAD_REQUEST).naming("payment_ref"),
        case("pay without body", M::POST, &pay, owner(), Body::Empty, BAD_REQUEST),
        case("pay malformed JSON", M::POST, &pay, owner(), raw(br#"{"payment_ref": "#), BAD_REQUEST),
        case("pay non-UTF-8 body", M::POST, &pay, owner(), raw(b"{\"payment_ref\":\"\xff\"}"), BAD_REQUEST),
        case("pay with an array", M::POST, &pay, owner(), raw(br#"["r"]"#), BAD_REQUEST).naming("object"),
        // --- routing ---
        case("root", M::GET, "/", Auth::None, Body::Empty, NOT_FOUND),
        case("unknown v1 route", M::GET, "/api/v1/nope", Auth::None, Body::Empty, NOT_FOUND),
        case("unknown version", M::GET, "/api/v2/sales", Auth::None, Body::Empty, NOT_FOUND),
        case("route with extra segment", M::POST, format!("{purchase}/extra"), owner(), Body::Empty, NOT_FOUND),
        case("DELETE the sales", M::DELETE, sales, Auth::Admin, Body::Empty, WRONG_METHOD),
        case("PUT a sale", M::PUT, format!("/api/v1/sales/{sale}"), Auth::Admin, sale_with("stock", json!(1)), WRONG_METHOD),
        case("GET a purchase", M::GET, &purchase, owner(), Body::Empty, WRONG_METHOD),
        case("PATCH an order", M::PATCH, format!("/api/v1/orders/{order}"), owner(), Body::Empty, WRONG_METHOD),
        case("POST healthz", M::POST, "/healthz", Auth::None, Body::Empty, WRONG_METHOD),
    ];

    let mut failures = Vec::new();
    for case in &cases {
        let resp = server
            .call(
                case.method.clone(),
                &case.path,
                &case.auth,
                case.body.clone(),
                &[],
            )
            .await;
        let outcome = match resp.try_error() {
            None => Err(format!("not the error shape: {}", resp.text())),
            Some((code, _)) if (resp.status, code.as_str()) != (case.status, case.code) => {
                Err(format!("got {} {code}", resp.status))
            }
            Some((_, message)) => match case.names {
                Some(field) if !message.contains(field) => {
                    Err(format!("message does not name `{field}`: {message:?}"))
                }
                _ => Ok(()),
            },
        };
        if let Err(why) = outcome {
            failures.push(format!(
                "{} ({} {}): want {} {}: {why}",
                case.what, case.method, case.path, case.status, case.code
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );

    let after = snapshot(&server, &sale, "owner").await;
    assert_eq!(before, after, "hostile requests changed the state");
    server
        .get("/healthz", &Auth::None)
        .await
        .assert_status(StatusCode::OK);
    // The order is still the owner's to pay.
    let paid = server
        .pay("owner", &order, "real-payment")
        .await
        .expect(StatusCode::OK);
    assert_eq!(str_field(&paid, "status"), "paid");
}

/// Control characters in a payment reference, a sale's name or a token's
/// `sub` are refused at the door, as in cluster mode, and the refusals
/// never count against the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_no_store_keeps_is_refused_at_the_door() {
    let server = Seckill::start().await;
    let sale = server.open_sale(10, 2).await;
    let order = server.buy("owner", &sale).await;
    refuse_what_no_store_keeps(&server, &sale, "owner", &order).await;
}

/// An Idempotency-Key is 1 to 200 visible ASCII characters (`!` to `~`),
/// as the refusal says: a space, a tab or DEL in it is refused (400, no
/// order), while the same purchase with a good key goes through.
#[tokio::test]
async fn an_idempotency_key_of_other_than_visible_ascii_is_refused() {
    let server = Seckill::start().await;
    let sale = server.open_sale(10, 5).await;
    let purchase = format!("/api/v1/sales/{sale}/purchase");
    for key in ["a b", "a\tb", "café", &"k".repeat(201)] {
        let answer = server
            .call(
                Method::POST,
                &purchase,
                &Auth::user("keyholder"),
                Body::Empty,
                &[("idempotency-key", key)],
            )
            .await;
        let message = answer.expect_error(StatusCode::BAD_REQUEST, "bad_request");
        assert!(message.contains("Idempotency-Key"), "{key:?}: {message}");
    }
    // DEL cannot be sent through the HTTP client: a raw socket.
    let addr = server.base.strip_prefix("http://").expect("an http base");
    let mut socket = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST {purchase} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
         Idempotency-Key: a\x7fb\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        server.user_token("keyholder")
    );
    tokio::io::AsyncWriteExt::write_all(&mut socket, head.as_bytes())
        .await
        .expect("send");
    let mut answer = Vec::new();
    tokio::time::timeout(
        PATIENCE,
        tokio::io::AsyncReadExt::read_to_end(&mut socket, &mut answer),
    )
    .await
    .expect("an answer in time")
    .expect("read");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "DEL: {answer}");

    assert!(server.my_orders("keyholder", &sale).await.is_empty());
    server
        .purchase_with("keyholder", &sale, None, Some("a-b"))
        .await
        .accepted(&sale);
}
