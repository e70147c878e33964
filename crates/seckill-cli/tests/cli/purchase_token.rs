//! Purchase tokens (the "hidden URL"): a sale with `require_purchase_token`
//! sells only to a buyer holding a token issued to them, for that sale,
//! while it was open.

use seckill_test_support::*;

fn token_path(sale: &str) -> String {
    format!("/api/v1/sales/{sale}/purchase-token")
}

/// A purchase of one unit carrying `X-Purchase-Token: token`.
async fn purchase_with_token(api: &Api, user: &str, sale: &str, token: &str) -> Resp {
    api.call(
        Method::POST,
        &format!("/api/v1/sales/{sale}/purchase"),
        &Auth::user(user),
        Body::Empty,
        &[("x-purchase-token", token)],
    )
    .await
}

async fn issue(api: &Api, user: &str, sale: &str) -> String {
    let answer = api
        .post(&token_path(sale), &Auth::user(user), Body::Empty)
        .await
        .expect(StatusCode::OK);
    let expires = parse_rfc3339_millis(&str_field(&answer, "expires_at"));
    let now = now_unix() * 1000;
    assert!(
        (now..=now + 61_000).contains(&expires),
        "a short validity window: {answer}"
    );
    str_field(&answer, "token")
}

#[tokio::test]
async fn a_guarded_sale_sells_only_with_the_buyers_own_token() {
    let seckill = Seckill::start().await;
    let sale = seckill
        .open_sale_with(json!({ "stock": 5, "require_purchase_token": true }))
        .await;
    let other_sale = seckill
        .open_sale_with(json!({ "stock": 5, "require_purchase_token": true }))
        .await;

    seckill
        .purchase("alice", &sale)
        .await
        .expect_error(StatusCode::FORBIDDEN, "purchase_token_required");
    purchase_with_token(&seckill, "alice", &sale, "123.forged")
        .await
        .expect_error(StatusCode::FORBIDDEN, "purchase_token_invalid");

    let alices = issue(&seckill, "alice", &sale).await;
    // Replayed by another user, or on another sale: refused.
    purchase_with_token(&seckill, "bob", &sale, &alices)
        .await
        .expect_error(StatusCode::FORBIDDEN, "purchase_token_invalid");
    purchase_with_token(&seckill, "alice", &other_sale, &alices)
        .await
        .expect_error(StatusCode::FORBIDDEN, "purchase_token_invalid");
    let report = seckill.report(&sale).await;
    assert_eq!(
        (report.remaining, report.held()),
        (5, 0),
        "nothing sold yet"
    );

    let order = purchase_with_token(&seckill, "alice", &sale, &alices)
        .await
        .accepted(&sale);
    assert_eq!(
        str_field(&seckill.order_of("alice", &order).await, "status"),
        "pending_payment"
    );
    let bobs = issue(&seckill, "bob", &sale).await;
    purchase_with_token(&seckill, "bob", &sale, &bobs)
        .await
        .accepted(&sale);
    let report = seckill.report(&sale).await;
    assert_balanced(&report);
    assert_eq!(report.pending_payment, 2);
}

#[tokio::test]
async fn tokens_are_issued_only_to_users_while_the_sale_is_open() {
    let seckill = Seckill::start().await;
    let upcoming = seckill
        .open_sale_with(json!({
            "stock": 5,
            "require_purchase_token": true,
            "starts_at": rfc3339(now_unix() + 3600),
        }))
        .await;
    seckill
        .post(&token_path(&upcoming), &Auth::user("alice"), Body::Empty)
        .await
        .expect_error(StatusCode::CONFLICT, "not_started");

    let open = seckill
        .open_sale_with(json!({ "stock": 5, "require_purchase_token": true }))
        .await;
    seckill
        .post(&token_path(&open), &Auth::None, Body::Empty)
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    seckill
        .post(
            &token_path("no-such-sale"),
            &Auth::user("alice"),
            Body::Empty,
        )
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn a_sale_without_the_guard_ignores_tokens() {
    let seckill = Seckill::start().await;
    let sale = seckill.open_sale(5, 1).await;
    seckill.purchase("alice", &sale).await.accepted(&sale);
    // Tokens can still be had; a purchase carrying junk is not refused for it.
    issue(&seckill, "bob", &sale).await;
    purchase_with_token(&seckill, "bob", &sale, "junk")
        .await
        .accepted(&sale);
}
