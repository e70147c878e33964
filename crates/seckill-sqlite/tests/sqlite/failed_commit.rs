//! The engine's purchase over the real SQLite store when the commit fails:
//! whatever the purchase took in memory is given back, also when the
//! request was dropped while it waited.

use seckill_core::{NewSale, SaleId, Timestamp, UserId};
use seckill_engine::{LiveSale, Market, Purchase, Refusal, Snapshot};
use seckill_sqlite::{DATABASE_FILE, SqliteStore};
use std::sync::Arc;
use std::time::Duration;

/// A market whose only sale exists in memory but not in the real
/// SQLite store: every reservation then fails its foreign key at commit.
async fn market_whose_commits_fail(dir: &std::path::Path) -> (Market, Arc<LiveSale>) {
    let store = Arc::new(SqliteStore::open(dir).await.unwrap());
    let new_sale: NewSale =
        serde_json::from_str(r#"{"name":"x","stock":5,"price_cents":1,"per_user_limit":3}"#)
            .unwrap();
    let sale = new_sale
        .validate(SaleId::generate(), Timestamp::now())
        .unwrap();
    let id = sale.id.clone();
    let snapshot = Snapshot {
        sales: vec![sale],
        live_orders: Vec::new(),
    };
    let market = Market::restore(store, snapshot, None);
    let live = market.get(id.as_str()).unwrap();
    (market, live)
}

fn purchase(user: &str, idempotency_key: Option<&str>) -> Purchase {
    Purchase {
        user: UserId::from(user),
        quantity: 2,
        idempotency_key: idempotency_key.map(String::from),
    }
}

#[tokio::test]
async fn a_failed_commit_gives_everything_back() {
    let dir = tempfile::tempdir().unwrap();
    let (market, sale) = market_whose_commits_fail(dir.path()).await;
    let error = market
        .purchase(&sale, purchase("u", Some("key")))
        .await
        .unwrap_err();
    assert!(matches!(error, Refusal::Unavailable(_)), "{error:?}");
    assert_eq!(sale.stock.remaining(), 5);
    assert_eq!(sale.tracked_buyers(), 0, "no holding, no remembered answer");
}

#[tokio::test]
async fn a_request_dropped_while_committing_still_gives_back() {
    for idempotency_key in [None, Some("key")] {
        let dir = tempfile::tempdir().unwrap();
        let (market, sale) = market_whose_commits_fail(dir.path()).await;
        // Another connection holds the write lock, so the writer waits.
        let mut blocker = rusqlite::Connection::open(dir.path().join(DATABASE_FILE)).unwrap();
        let lock = blocker
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .unwrap();
        // Polled once (the units are taken, the write queued), then
        // dropped like the request of a client that hung up.
        let buying = market.purchase(&sale, purchase("u", idempotency_key));
        let abandoned = tokio::time::timeout(Duration::ZERO, buying).await;
        assert!(abandoned.is_err(), "answered early: {abandoned:?}");
        assert_eq!(sale.stock.remaining(), 3);
        lock.rollback().unwrap();
        for _ in 0..250 {
            if sale.stock.remaining() == 5 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(sale.stock.remaining(), 5, "key {idempotency_key:?}");
        assert_eq!(sale.tracked_buyers(), 0, "key {idempotency_key:?}");
    }
}
