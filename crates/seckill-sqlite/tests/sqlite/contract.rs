//! The Store contract (`seckill-store-contract`) on the embedded SQLite
//! store, each case in a directory of its own.

use async_trait::async_trait;
use seckill_core::SaleId;
use seckill_engine::{Reservation, Store};
use seckill_sqlite::SqliteStore;
use seckill_store_contract::{Harness, Rebuilt, store_contract};

struct Embedded {
    store: SqliteStore,
    dir: tempfile::TempDir,
}

async fn harnesses(_case: &str) -> Vec<Embedded> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = SqliteStore::open(dir.path()).await.expect("open the store");
    vec![Embedded { store, dir }]
}

#[async_trait(?Send)]
impl Harness for Embedded {
    fn store(&self) -> &dyn Store {
        &self.store
    }

    async fn put(&self, reservation: &Reservation) {
        let ticket = self.store.reserve(reservation.clone()).expect("queue");
        ticket.await.expect("commit the reservation");
    }

    async fn restart(&mut self) {
        self.store.close().await;
        self.store = SqliteStore::open(self.dir.path())
            .await
            .expect("reopen the store");
    }

    /// The engine rebuilds its memory from what `load` lists.
    async fn rebuilt(&self, sale: &SaleId) -> Rebuilt {
        let mut rebuilt = Rebuilt::default();
        let snapshot = self.store.load().await.expect("load");
        for live in snapshot.live_orders {
            let order = live.reservation;
            if &order.sale_id != sale {
                continue;
            }
            if live.status.holds_stock() {
                *rebuilt.held.entry(order.user_id.clone()).or_default() += order.quantity;
            }
            if let Some(key) = order.idempotency_key {
                rebuilt.keys.insert((order.user_id, key), order.order_id);
            }
        }
        rebuilt
    }
}

store_contract!(harnesses);
