//! The happy paths of the API not covered elsewhere: sales, the stock
//! endpoint and its states, early refusals, listing orders, operations and
//! graceful shutdown.

use futures::StreamExt;
use seckill_test_support::*;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Asserts that `sale` echoes every member of `sent`, comparing times as
/// instants.
#[track_caller]
fn assert_echoes(sale: &Value, sent: &Value) {
    for (key, value) in sent.as_object().unwrap() {
        if key.ends_with("_at") {
            assert_eq!(
                parse_rfc3339_millis(&str_field(sale, key)),
                parse_rfc3339_millis(value.as_str().unwrap()),
                "{key} in {sale}"
            );
        } else {
            assert_eq!(&sale[key], value, "{key} in {sale}");
        }
    }
}

/// Creating a sale answers 201 with `Location`, the fields sent, an id and
/// `created_at`; defaults fill what was left out; the list and the single
/// read return the same objects; the single read is cacheable with an
/// `ETag` that `If-None-Match` turns into 304.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sales_are_created_listed_and_cached() {
    let server = Seckill::start().await;
    let now = now_unix();
    let full = json!({
        "name": "G1234 Beijing-Shanghai 2nd class",
        "stock": 42,
        "price_cents": 55_300,
        "starts_at": rfc3339(now - 60),
        "ends_at": rfc3339(now + 3600),
        "per_user_limit": 2,
        "payment_timeout_secs": 300,
        "require_purchase_token": false,
    });
    let created = server.create_sale(full.clone()).await;
    assert_echoes(&created, &full);
    let created_at = parse_rfc3339_millis(&str_field(&created, "created_at"));
    assert!(
        (created_at / 1000 - now).abs() <= 60,
        "created_at {created_at} is not now ({now})"
    );

    let minimal = json!({ "name": "minimal", "stock": 1, "price_cents": 0 });
    let defaults = server.create_sale(minimal.clone()).await;
    assert_echoes(&defaults, &minimal);
    assert_eq!(u64_field(&defaults, "per_user_limit"), 1);
    assert_eq!(u64_field(&defaults, "payment_timeout_secs"), 600);
    assert_eq!(defaults["require_purchase_token"], json!(false));
    assert!(defaults["ends_at"].is_null(), "no end: {defaults}");
    let starts_at = parse_rfc3339_millis(&str_field(&defaults, "starts_at"));
    assert!(
        (starts_at / 1000 - now).abs() <= 60,
        "starts now: {defaults}"
    );
    assert_ne!(str_field(&created, "id"), str_field(&defaults, "id"));

    let list = server
        .get("/api/v1/sales", &Auth::None)
        .await
        .expect(StatusCode::OK);
    let list = list.as_array().expect("the sales list is an array");
    assert_eq!(list.len(), 2, "{list:?}");
    for sale in [&created, &defaults] {
        assert!(list.contains(sale), "{sale} missing from {list:?}");
    }

    let path = format!("/api/v1/sales/{}", str_field(&created, "id"));
    let read = server.get(&path, &Auth::None).await;
    assert_eq!(read.expect(StatusCode::OK), created);
    assert!(
        read.header("cache-control").is_some(),
        "Cache-Control missing"
    );
    let etag = read.header("etag").expect("ETag missing").to_string();

    let cached = server
        .call(
            Method::GET,
            &path,
            &Auth::None,
            Body::Empty,
            &[("if-none-match", &etag)],
        )
        .await;
    cached.assert_status(StatusCode::NOT_MODIFIED);
    assert!(cached.body.is_empty(), "304 has no body");
    let stale = server
        .call(
            Method::GET,
            &path,
            &Auth::None,
            Body::Empty,
            &[("if-none-match", "\"some-other-version\"")],
        )
        .await;
    assert_eq!(stale.expect(StatusCode::OK), created);
}

/// `/stock` reports each state, and purchases on an upcoming, ended or sold
/// out sale are refused with their 409 before any token is looked at.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_states_and_early_refusals() {
    let server = Seckill::start().await;
    let now = now_unix();

    let open = server.open_sale(2, 1).await;
    let stock = server.stock(&open).await;
    assert_eq!(str_field(&stock, "sale_id"), open);
    assert_eq!(u64_field(&stock, "stock"), 2);
    assert_eq!(u64_field(&stock, "remaining"), 2);
    assert_eq!(str_field(&stock, "state"), "open");

    let upcoming = server
        .open_sale_with(json!({ "stock": 5, "starts_at": rfc3339(now + 3600) }))
        .await;
    let ended = server
        .open_sale_with(json!({
            "stock": 5,
            "starts_at": rfc3339(now - 7200),
            "ends_at": rfc3339(now - 3600),
        }))
        .await;
    for (sale, state, refusal) in [
        (&upcoming, "upcoming", "not_started"),
        (&ended, "ended", "ended"),
    ] {
        let stock = server.stock(sale).await;
        assert_eq!(str_field(&stock, "state"), state, "{stock}");
        assert_eq!(u64_field(&stock, "remaining"), 5, "{stock}");
        let path = format!("/api/v1/sales/{sale}/purchase");
        server
            .post(&path, &Auth::None, Body::Empty)
            .await
            .expect_error(StatusCode::CONFLICT, refusal);
        server
            .purchase("buyer", sale)
            .await
            .expect_error(StatusCode::CONFLICT, refusal);
    }

    // One purchase: the reservation says when it expires.
    let resp = server.purchase("first", &open).await;
    resp.accepted(&open);
    let expires_at = parse_rfc3339_millis(&str_field(&resp.json(), "expires_at")) / 1000;
    assert!(
        (expires_at - (now + 600)).abs() <= 60,
        "expires_at is about 600 s away: {}",
        resp.text()
    );
    // An id that needs percent-decoding takes the routed path to the same
    // purchase ("%30" is "0", the first character of every UUIDv7 here).
    let encoded = open.replacen('0', "%30", 1);
    assert_ne!(encoded, open);
    server
        .post(
            &format!("/api/v1/sales/{encoded}/purchase"),
            &Auth::User("second".into()),
            Body::Empty,
        )
        .await
        .accepted(&open);
    let stock = eventually(Duration::from_secs(3), "/stock shows sold_out", || async {
        let stock = server.stock(&open).await;
        (str_field(&stock, "state") == "sold_out").then_some(stock)
    })
    .await;
    assert_eq!(u64_field(&stock, "remaining"), 0);
    server
        .post(
            &format!("/api/v1/sales/{open}/purchase"),
            &Auth::None,
            Body::Empty,
        )
        .await
        .expect_error(StatusCode::CONFLICT, "sold_out");
    server
        .purchase("third", &open)
        .await
        .expect_error(StatusCode::CONFLICT, "sold_out");
}

/// An order reads back with every field the API documents, and
/// `GET /api/v1/orders?sale_id=…` lists the caller's orders of that sale
/// and no one else's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_are_read_and_listed_per_owner() {
    let server = Seckill::start().await;
    let sale = server.open_sale(10, 3).await;
    let other_sale = server.open_sale(10, 3).await;

    let single = server.buy("alice", &sale).await;
    let double = server
        .purchase_with("alice", &sale, Some(2), None)
        .await
        .accepted(&sale);
    let bobs = server.buy("bob", &sale).await;
    let elsewhere = server.buy("alice", &other_sale).await;

    let order = server.order_of("alice", &double).await;
    assert_eq!(str_field(&order, "sale_id"), sale);
    assert_eq!(u64_field(&order, "quantity"), 2);
    assert_eq!(str_field(&order, "status"), "pending_payment");
    let created = parse_rfc3339_millis(&str_field(&order, "created_at"));
    let expires = parse_rfc3339_millis(&str_field(&order, "expires_at"));
    assert_eq!(
        expires - created,
        600_000,
        "expires 600 s after creation: {order}"
    );
    assert!(order["paid_at"].is_null(), "{order}");
    assert!(
        order.get("queue_position").is_none_or(Value::is_null),
        "{order}"
    );

    let mut ids: Vec<String> = server
        .my_orders("alice", &sale)
        .await
        .iter()
        .map(|order| {
            assert_eq!(str_field(order, "user_id"), "alice");
            assert_eq!(str_field(order, "sale_id"), sale);
            str_field(order, "order_id")
        })
        .collect();
    ids.sort();
    let mut want = vec![single, double];
    want.sort();
    assert_eq!(ids, want);

    let bob = server.my_orders("bob", &sale).await;
    assert_eq!(bob.len(), 1);
    assert_eq!(str_field(&bob[0], "order_id"), bobs);
    let alice_elsewhere = server.my_orders("alice", &other_sale).await;
    assert_eq!(alice_elsewhere.len(), 1);
    assert_eq!(str_field(&alice_elsewhere[0], "order_id"), elsewhere);
    assert!(server.my_orders("nobody", &sale).await.is_empty());
}

/// `/healthz` and `/readyz` answer 200 on a started server, and `/metrics`
/// is Prometheus text with `seckill_` series.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_endpoints() {
    let server = Seckill::start().await;
    let sale = server.open_sale(5, 1).await;
    server.buy("metered", &sale).await;

    server
        .get("/healthz", &Auth::None)
        .await
        .assert_status(StatusCode::OK);
    server
        .get("/readyz", &Auth::None)
        .await
        .assert_status(StatusCode::OK);
    let metrics = server.get("/metrics", &Auth::None).await;
    metrics.assert_status(StatusCode::OK);
    let text = metrics.text();
    let series = text
        .lines()
        .filter(|line| line.starts_with("seckill_"))
        .count();
    assert!(series > 0, "no seckill_ series in:\n{text}");
}

/// SIGTERM in the middle of a stream of purchases: the server drains and
/// exits 0, every answer it gave was a 202, and every purchase it
/// acknowledged is there after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_exits_zero() {
    let mut server = Seckill::start().await;
    let sale = server.open_sale(2_000, 1).await;
    server.buy("before-shutdown", &sale).await;

    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let crowd = tokio::spawn({
        let (api, sale, acknowledged) = (server.api(), sale.clone(), Arc::clone(&acknowledged));
        async move {
            futures::stream::iter(0..1_000)
                .for_each_concurrent(20, |i| {
                    let (api, sale, acknowledged) = (&api, &sale, &acknowledged);
                    async move {
                        let user = format!("draining-{i}");
                        if let Ok(resp) = api.try_purchase(&user, sale, None, None).await {
                            let order_id = resp.accepted(sale);
                            acknowledged.lock().unwrap().push((user, order_id));
                        }
                    }
                })
                .await;
        }
    });
    eventually(PATIENCE, "some purchases in flight", || async {
        (acknowledged.lock().unwrap().len() >= 20).then_some(())
    })
    .await;
    server.stop().await;
    crowd
        .await
        .expect("every answer before the shutdown was a 202");

    server.restart().await;
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        (20..1_000).contains(&acknowledged.len()),
        "the shutdown must land during the stream: {} acknowledged",
        acknowledged.len()
    );
    for (user, order_id) in &acknowledged {
        let order = server.order_of(user, order_id).await;
        assert_eq!(str_field(&order, "status"), "pending_payment");
    }
    let report = server.report(&sale).await;
    assert_balanced(&report);
    assert!(
        report.pending_payment > acknowledged.len() as u64,
        "{} acknowledged (+1 before): {report:?}",
        acknowledged.len()
    );
}

/// A client stalled in the middle of a request head cannot hold the
/// shutdown: SIGTERM still exits 0, within the drain bound (5 s), far
/// sooner than the harness's patience.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_client_cannot_hold_up_shutdown() {
    use tokio::io::AsyncWriteExt;

    let mut server = Seckill::start().await;
    let address = server.api().base.trim_start_matches("http://").to_string();
    let mut stalled = tokio::net::TcpStream::connect(&address).await.unwrap();
    stalled
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let _idle = tokio::net::TcpStream::connect(&address).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let started = std::time::Instant::now();
    server.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "shutdown took {:?}",
        started.elapsed()
    );
}
