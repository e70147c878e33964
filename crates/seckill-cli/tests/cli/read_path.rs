//! The read path: sale details and the list are served from memory with
//! `ETag` and `Cache-Control` and answer `If-None-Match` with 304; the
//! stock is a small uncached-for-long answer; `/readyz` says what it waits
//! for until the engine is warm.

use seckill_sqlite::DATABASE_FILE;
use seckill_test_support::*;

async fn get_with(api: &Api, path: &str, if_none_match: &str) -> Resp {
    api.call(
        Method::GET,
        path,
        &Auth::None,
        Body::Empty,
        &[("if-none-match", if_none_match)],
    )
    .await
}

#[tokio::test]
async fn the_list_is_revalidated_with_its_etag_and_changes_with_a_new_sale() {
    let seckill = Seckill::start().await;
    let first = seckill.open_sale(5, 1).await;
    let list = seckill.get("/api/v1/sales", &Auth::None).await;
    let sales = list.expect(StatusCode::OK);
    assert_eq!(sales.as_array().map(Vec::len), Some(1), "{sales}");
    assert_eq!(list.header("cache-control"), Some("public, max-age=5"));
    let etag = list.header("etag").expect("an ETag").to_string();

    let again = get_with(&seckill, "/api/v1/sales", &etag).await;
    again.assert_status(StatusCode::NOT_MODIFIED);
    assert!(again.body.is_empty());
    assert_eq!(again.header("etag"), Some(etag.as_str()));
    let weak = get_with(&seckill, "/api/v1/sales", &format!("W/{etag}")).await;
    weak.assert_status(StatusCode::NOT_MODIFIED);

    let second = seckill.open_sale(7, 1).await;
    let changed = get_with(&seckill, "/api/v1/sales", &etag).await;
    let sales = changed.expect(StatusCode::OK);
    let ids: Vec<String> = sales
        .as_array()
        .expect("a list")
        .iter()
        .map(|sale| str_field(sale, "id"))
        .collect();
    assert_eq!(ids, [first, second], "oldest first");
    assert_ne!(changed.header("etag"), Some(etag.as_str()));
}

#[tokio::test]
async fn a_sale_is_revalidated_with_its_etag() {
    let seckill = Seckill::start().await;
    let sale = seckill.open_sale(5, 1).await;
    let path = format!("/api/v1/sales/{sale}");
    let read = seckill.get(&path, &Auth::None).await;
    read.expect(StatusCode::OK);
    assert_eq!(read.header("cache-control"), Some("public, max-age=60"));
    let etag = read.header("etag").expect("an ETag").to_string();
    for matching in [etag.clone(), format!("\"other\", {etag}"), "*".to_string()] {
        get_with(&seckill, &path, &matching)
            .await
            .assert_status(StatusCode::NOT_MODIFIED);
    }
    get_with(&seckill, &path, "\"stale\"")
        .await
        .expect(StatusCode::OK);
    // The stock is live: cacheable for one second at most.
    let stock = seckill.get(&format!("{path}/stock"), &Auth::None).await;
    stock.expect(StatusCode::OK);
    assert_eq!(stock.header("cache-control"), Some("public, max-age=1"));
}

/// Until its first expiry sweep has committed, a restarted engine is not
/// ready: the sweep is held back by another connection holding SQLite's
/// write lock, and `/readyz` says so.
#[tokio::test]
async fn readiness_waits_for_the_first_expiry_sweep() {
    let mut seckill = Seckill::start().await;
    let ready = eventually(PATIENCE, "the first start to be ready", || async {
        let answer = seckill.get("/readyz", &Auth::None).await;
        (answer.status == StatusCode::OK).then_some(answer)
    })
    .await;
    assert_eq!(ready.json(), json!({"status": "ready"}));
    seckill.stop().await;

    let mut blocker = rusqlite::Connection::open(seckill.data_dir().join(DATABASE_FILE))
        .expect("open the database");
    let lock = blocker
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .expect("take the write lock");
    seckill.restart().await;
    let waiting = seckill.get("/readyz", &Auth::None).await;
    let message = waiting.expect_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert!(message.contains("expiry sweep"), "{message}");
    seckill
        .get("/healthz", &Auth::None)
        .await
        .assert_status(StatusCode::OK);

    lock.rollback().expect("release the write lock");
    eventually(PATIENCE, "the engine to be ready", || async {
        let answer = seckill.get("/readyz", &Auth::None).await;
        (answer.status == StatusCode::OK).then_some(())
    })
    .await;
}
