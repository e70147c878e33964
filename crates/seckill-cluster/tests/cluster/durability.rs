//! Durability and failure: private `redis-server`s that the tests kill,
//! pause and restart.

use crate::fixtures::{self, lift_fence, reservations, sale};
use seckill_cluster::authority::{
    AuthorityConfig, AuthorityError, Durability, RedisAuthority, ReserveOutcome, ReserveRequest,
};
use seckill_cluster::consumer::{Consumer, ConsumerConfig};
use seckill_core::{OrderId, SaleId, UserId};
use seckill_test_support::PrivateRedis;
use seckill_test_support::services::raw;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const AOF_ALWAYS: &[&str] = &["--appendonly", "yes", "--appendfsync", "always"];

async fn connect(url: &str, durability: Durability) -> Result<RedisAuthority, AuthorityError> {
    let mut config = AuthorityConfig::new(url);
    config.durability = durability;
    RedisAuthority::connect(config).await
}

async fn reserve(
    redis: &RedisAuthority,
    sale: &SaleId,
    user: &str,
) -> Result<ReserveOutcome, AuthorityError> {
    let (user, order) = (UserId::from(user), OrderId::generate());
    redis
        .reserve(&ReserveRequest {
            sale_id: sale,
            user_id: &user,
            quantity: 1,
            order_id: &order,
            idempotency_key: None,
        })
        .await
}

/// Retries until Redis answers again (the connection comes back by itself).
async fn until_answered(redis: &RedisAuthority, sale: &SaleId, user: &str) -> ReserveOutcome {
    for _ in 0..100 {
        match reserve(redis, sale, user).await {
            Ok(outcome) => return outcome,
            Err(AuthorityError::Unavailable(_)) => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("{e}"),
        }
    }
    panic!("Redis did not answer again within 10 s");
}

async fn redis_version(url: &str) -> (u32, u32) {
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut raw(url).await)
        .await
        .unwrap();
    let version = info
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .unwrap()
        .trim()
        .to_string();
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap());
    (parts.next().unwrap(), parts.next().unwrap())
}

#[tokio::test]
async fn aof_is_refused_when_redis_cannot_keep_it() {
    let Some(plain) = PrivateRedis::start(&["--appendonly", "no"]).await else {
        return;
    };
    let refused = connect(&plain.url(), Durability::Aof).await;
    assert!(
        matches!(&refused, Err(AuthorityError::Config(m)) if m.contains("appendonly")),
        "{:?}",
        refused.err()
    );

    let Some(everysec) =
        PrivateRedis::start(&["--appendonly", "yes", "--appendfsync", "everysec"]).await
    else {
        return;
    };
    let result = connect(&everysec.url(), Durability::Aof).await;
    if redis_version(&everysec.url()).await >= (7, 2) {
        assert!(
            result.is_ok(),
            "WAITAOF makes everysec safe: {:?}",
            result.err()
        );
    } else {
        assert!(
            matches!(&result, Err(AuthorityError::Config(m)) if m.contains("appendfsync always")),
            "{:?}",
            result.err()
        );
    }
    assert!(
        connect(&plain.url(), Durability::Replicas(1))
            .await
            .is_err(),
        "no replica"
    );
}

#[tokio::test]
async fn no_acknowledged_reservation_is_lost_to_kill_9() {
    let Some(mut server) = PrivateRedis::start(AOF_ALWAYS).await else {
        return;
    };
    let redis = connect(&server.url(), Durability::Aof).await.unwrap();
    let s = sale(300, 1);
    redis.create_sale(&s).await.unwrap();

    let acknowledged = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..600)
        .map(|i| {
            let (redis, sale_id, acknowledged) =
                (redis.clone(), s.id.clone(), acknowledged.clone());
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(i / 4)).await;
                let outcome = reserve(&redis, &sale_id, &format!("u{i}")).await;
                if let Ok(ReserveOutcome::Reserved { order_id, .. }) = outcome {
                    acknowledged.fetch_add(1, Ordering::Relaxed);
                    return Some(order_id);
                }
                match outcome {
                    Ok(ReserveOutcome::SoldOut { .. }) | Err(AuthorityError::Unavailable(_)) => {
                        None
                    }
                    other => panic!("{other:?}"),
                }
            })
        })
        .collect();
    while acknowledged.load(Ordering::Relaxed) < 100 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    server.kill();
    let mut acked = HashSet::new();
    for task in tasks {
        acked.extend(task.await.unwrap());
    }
    assert!(
        acked.len() >= 100 && acked.len() < 300,
        "killed mid-sale: {} acked",
        acked.len()
    );

    server.restart().await;
    // A restarted Redis sells nothing of the sale until it is checked.
    assert_eq!(
        until_answered(&redis, &s.id, "after-restart").await,
        ReserveOutcome::Unverified
    );
    lift_fence(&server.url(), &s.id).await;
    let stream: HashSet<String> = reservations(&server.url(), &s.id)
        .await
        .into_iter()
        .map(|entry| entry["order_id"].clone())
        .collect();
    let lost: Vec<_> = acked
        .iter()
        .filter(|id| !stream.contains(id.as_str()))
        .collect();
    assert!(lost.is_empty(), "acknowledged, then lost: {lost:?}");
    let level = redis.state(&s.id).await.unwrap().unwrap();
    assert_eq!(
        level.sold as usize,
        stream.len(),
        "sold and the stream agree"
    );

    // The same authority sells the rest, and never more.
    let mut i = 0;
    while let ReserveOutcome::Reserved { .. } =
        reserve(&redis, &s.id, &format!("v{i}")).await.unwrap()
    {
        i += 1;
    }
    let level = redis.state(&s.id).await.unwrap().unwrap();
    assert_eq!(level.sold, 300);
    assert_eq!(reservations(&server.url(), &s.id).await.len(), 300);
}

#[tokio::test]
async fn a_stopped_or_hung_redis_is_unavailable_quickly_then_comes_back() {
    let Some(mut server) = PrivateRedis::start(AOF_ALWAYS).await else {
        return;
    };
    let redis = connect(&server.url(), Durability::None).await.unwrap();
    let s = sale(100, 1);
    redis.create_sale(&s).await.unwrap();
    assert!(matches!(
        reserve(&redis, &s.id, "a").await,
        Ok(ReserveOutcome::Reserved { .. })
    ));

    server.kill();
    for user in ["b", "c"] {
        let started = Instant::now();
        let outcome = reserve(&redis, &s.id, user).await;
        assert!(
            matches!(outcome, Err(AuthorityError::Unavailable(_))),
            "{outcome:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "took {:?}",
            started.elapsed()
        );
    }
    assert!(matches!(
        redis.state(&s.id).await,
        Err(AuthorityError::Unavailable(_))
    ));
    server.restart().await;
    assert_eq!(
        until_answered(&redis, &s.id, "d").await,
        ReserveOutcome::Unverified
    );
    lift_fence(&server.url(), &s.id).await;
    assert!(matches!(
        reserve(&redis, &s.id, "d").await,
        Ok(ReserveOutcome::Reserved { .. })
    ));

    server.signal("STOP");
    let started = Instant::now();
    let outcome = reserve(&redis, &s.id, "e").await;
    server.signal("CONT");
    assert!(
        matches!(outcome, Err(AuthorityError::Unavailable(_))),
        "{outcome:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert!(matches!(
        until_answered(&redis, &s.id, "f").await,
        ReserveOutcome::Reserved { .. }
    ));
    // e was sent before the time limit and ran when Redis woke: its buyer
    // heard 503 and the reservation exists (the consumer makes it an order).
    assert_eq!(
        redis.state(&s.id).await.unwrap().unwrap().sold,
        4,
        "a, d, e and f"
    );
}

#[tokio::test]
async fn replicas_wait_for_a_replica_and_fail_closed_without_it() {
    let Some(primary) = PrivateRedis::start(&["--appendonly", "no"]).await else {
        return;
    };
    let mut replica = replica_in_sync(&primary).await;

    // Fewer replicas online than asked: not yet (a node waits), not wrong.
    let two = connect(&primary.url(), Durability::Replicas(2)).await;
    assert!(
        matches!(two, Err(AuthorityError::Unavailable(_))),
        "{:?}",
        two.err()
    );
    let redis = connect(&primary.url(), Durability::Replicas(1))
        .await
        .unwrap();
    let s = sale(10, 1);
    redis.create_sale(&s).await.unwrap();
    assert!(matches!(
        reserve(&redis, &s.id, "a").await,
        Ok(ReserveOutcome::Reserved { .. })
    ));

    replica.kill();
    let started = Instant::now();
    let outcome = reserve(&redis, &s.id, "b").await;
    assert!(
        matches!(outcome, Err(AuthorityError::Unconfirmed(_))),
        "{outcome:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    // The short wait came after the script: the reservation exists (the
    // consumer makes it an order once a replica has it) although its buyer
    // heard 503, which is what `Unconfirmed` says, unlike `Unavailable`.
    assert_eq!(redis.state(&s.id).await.unwrap().unwrap().sold, 2);
}

/// Starts a replica of `primary` and waits until the primary has it in sync.
async fn replica_in_sync(primary: &PrivateRedis) -> PrivateRedis {
    let port = primary.port.to_string();
    let replica = PrivateRedis::start(&["--replicaof", "127.0.0.1", &port])
        .await
        .expect("redis-server");
    in_sync(primary).await;
    replica
}

async fn in_sync(primary: &PrivateRedis) {
    for _ in 0..100 {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query_async(&mut raw(&primary.url()).await)
            .await
            .unwrap();
        if info.contains("state=online") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the replica did not get in sync");
}

/// With `replicas:1` an entry becomes an order only once a replica has it:
/// a primary cut off from its replica (as a deposed one is) turns nothing
/// into an order; the entries stay pending, and become orders once a
/// replica has them.
#[tokio::test]
async fn a_consumer_orders_only_what_a_replica_has() {
    let test = "a_consumer_orders_only_what_a_replica_has";
    let Some(store) = fixtures::databases(test).await.into_iter().next() else {
        return;
    };
    let Some(primary) = PrivateRedis::start(&[]).await else {
        return;
    };
    let mut replica = replica_in_sync(&primary).await;
    let redis = connect(&primary.url(), Durability::Replicas(1))
        .await
        .unwrap();
    let s = sale(10, 1);
    store.create_sale(&s).await.unwrap();
    redis.create_sale(&s).await.unwrap();
    let order_of = |outcome| match outcome {
        Ok(ReserveOutcome::Reserved { order_id, .. }) => order_id,
        other => panic!("{other:?}"),
    };
    let acknowledged = order_of(reserve(&redis, &s.id, "a").await);
    replica.kill();
    assert!(matches!(
        reserve(&redis, &s.id, "b").await,
        Err(AuthorityError::Unconfirmed(_))
    ));
    let config = ConsumerConfig {
        min_idle: Duration::from_millis(100),
        block: Duration::from_millis(100),
        ..ConsumerConfig::new("alone")
    };
    let mut consumer = Consumer::new(&redis, store.clone(), s.id.clone(), config).unwrap();
    for _ in 0..3 {
        assert!(consumer.step().await.is_err(), "nothing is confirmed");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let rows = store.orders_of_sale(&s.id).await.unwrap();
    assert!(rows.is_empty(), "{rows:?}");

    replica.restart().await;
    in_sync(&primary).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let rows = loop {
        let _ = consumer.step().await;
        let rows = store.orders_of_sale(&s.id).await.unwrap();
        if rows.len() == 2 {
            break rows;
        }
        assert!(Instant::now() < deadline, "{rows:?}");
        tokio::time::sleep(Duration::from_millis(150)).await;
    };
    assert!(rows.iter().any(|(r, _)| r.order_id == acknowledged));
}
