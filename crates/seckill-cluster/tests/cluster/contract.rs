//! The Store contract (`seckill-store-contract`) on the cluster's store,
//! on the real PostgreSQL and MariaDB/MySQL and Redis named by
//! SECKILL_TEST_DATABASE_URL_POSTGRES / _MYSQL and SECKILL_TEST_REDIS_URL.
//! Orders come in as in a running cluster: Redis reserves, then the row is
//! inserted as the stream consumer inserts it.

use crate::fixtures;
use async_trait::async_trait;
use redis::AsyncCommands;
use seckill_cluster::authority::keys::SaleKeys;
use seckill_cluster::authority::{RedisAuthority, ReserveOutcome, ReserveRequest};
use seckill_cluster::orders::SqlOrders;
use seckill_cluster::store::ClusterStore;
use seckill_core::{OrderId, SaleId, UserId};
use seckill_engine::{Reservation, Store};
use seckill_store_contract::{Harness, Rebuilt, store_contract};
use seckill_test_support::services;
use std::collections::HashMap;

struct Clustered {
    database_url: String,
    redis_url: String,
    orders: SqlOrders,
    authority: RedisAuthority,
    store: ClusterStore,
}

impl Clustered {
    async fn connect(database_url: String, redis_url: String) -> Self {
        let orders = SqlOrders::connect(&database_url)
            .await
            .unwrap_or_else(|e| panic!("{database_url}: {e}"));
        let authority = fixtures::authority(&redis_url).await;
        let store = ClusterStore::new(orders.clone(), authority.clone());
        Self {
            database_url,
            redis_url,
            orders,
            authority,
            store,
        }
    }
}

/// One harness per configured database; none without Redis.
async fn harnesses(case: &str) -> Vec<Clustered> {
    let Some(redis_url) = services::redis_url() else {
        services::skipped(case, services::REDIS_URL);
        return Vec::new();
    };
    let mut harnesses = Vec::new();
    for (_, database_url) in services::database_urls(case) {
        harnesses.push(Clustered::connect(database_url, redis_url.clone()).await);
    }
    harnesses
}

#[async_trait(?Send)]
impl Harness for Clustered {
    fn store(&self) -> &dyn Store {
        &self.store
    }

    async fn put(&self, reservation: &Reservation) {
        let reserved = self
            .authority
            .reserve(&ReserveRequest {
                sale_id: &reservation.sale_id,
                user_id: &reservation.user_id,
                quantity: reservation.quantity,
                order_id: &reservation.order_id,
                idempotency_key: reservation.idempotency_key.as_deref(),
            })
            .await
            .expect("reserve in Redis");
        assert!(
            matches!(reserved, ReserveOutcome::Reserved { .. }),
            "{reserved:?}"
        );
        self.orders
            .insert_reservations(std::slice::from_ref(reservation))
            .await
            .expect("insert the order");
    }

    /// Nothing is buffered (`close` does nothing): a restart is new
    /// connections to the same database and Redis.
    async fn restart(&mut self) {
        self.store.close().await;
        *self = Self::connect(self.database_url.clone(), self.redis_url.clone()).await;
    }

    /// A node keeps none of it: it is Redis' (`load` gives the sales only).
    async fn rebuilt(&self, sale: &SaleId) -> Rebuilt {
        let held = fixtures::buyers(&self.redis_url, sale).await;
        let answers: HashMap<String, String> = services::raw(&self.redis_url)
            .await
            .hgetall(SaleKeys::new(sale).keys)
            .await
            .expect("read the Idempotency-Keys");
        let keys = answers.into_iter().map(|(field, answer)| {
            let (user, key) = field.split_once('\n').expect("USER\\nKEY");
            let (order, _expires_at) = answer.split_once(' ').expect("ORDER EXPIRES_AT");
            ((UserId::from(user), key.to_owned()), OrderId::from(order))
        });
        Rebuilt {
            held: held
                .into_iter()
                .map(|(user, units)| (UserId::from(user), units))
                .collect(),
            keys: keys.collect(),
        }
    }
}

store_contract!(harnesses);
