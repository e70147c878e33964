//! Behaviours every order store must show, run against the embedded
//! engine and against cluster nodes on each database.

use crate::api::{Api, Auth, Body, str_field};
use crate::clock::now_unix;
use crate::token::mint_jwt;
use crate::{PATIENCE, eventually};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

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
