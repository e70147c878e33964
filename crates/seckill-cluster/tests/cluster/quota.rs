//! Node quotas: three simulated nodes (an authority, a heartbeat and the
//! quotas each) against a private redis-server, so that the live-node set
//! is theirs alone.

use crate::fixtures::{reservations, sale};
use seckill_cluster::authority::{AuthorityConfig, RedisAuthority, ReserveOutcome, ReserveRequest};
use seckill_cluster::nodes::Heartbeat;
use seckill_cluster::quota::{QuotaStats, Quotas};
use seckill_core::{OrderId, Sale, UserId};
use seckill_test_support::PrivateRedis;
use std::sync::Arc;
use std::time::Duration;

const EVERY: Duration = Duration::from_millis(100);
const TTL: Duration = Duration::from_millis(400);
const BUFFER: u64 = 2;

struct Node {
    authority: RedisAuthority,
    heartbeat: Option<Heartbeat>,
    quotas: Arc<Quotas>,
}

impl Node {
    async fn start(url: &str, id: &str) -> Self {
        let authority = RedisAuthority::connect(AuthorityConfig::new(url))
            .await
            .unwrap();
        let heartbeat = Heartbeat::start(authority.clone(), id, EVERY, TTL)
            .await
            .unwrap();
        let quotas = Quotas::new(BUFFER, heartbeat.live_nodes());
        quotas.follow(authority.events());
        Self {
            authority,
            heartbeat: Some(heartbeat),
            quotas,
        }
    }

    fn live_nodes(&self) -> u64 {
        self.heartbeat.as_ref().unwrap().live_nodes().count()
    }

    /// `users` buy one unit each, all at once, through this node's quota.
    /// Returns how many were reserved.
    async fn crowd(&self, sale: &Sale, users: std::ops::Range<usize>) -> u64 {
        let quota = self.quotas.get(&sale.id);
        let tasks: Vec<_> = users
            .map(|i| {
                let (quota, authority, sale_id) =
                    (quota.clone(), self.authority.clone(), sale.id.clone());
                tokio::spawn(async move {
                    let (user, order) = (UserId::from(format!("u{i}")), OrderId::generate());
                    let request = ReserveRequest {
                        sale_id: &sale_id,
                        user_id: &user,
                        quantity: 1,
                        order_id: &order,
                        idempotency_key: None,
                    };
                    quota.reserve(&authority, &request).await.unwrap()
                })
            })
            .collect();
        let mut reserved = 0;
        for task in tasks {
            match task.await.unwrap() {
                ReserveOutcome::Reserved { .. } => reserved += 1,
                ReserveOutcome::SoldOut { .. } => {}
                other => panic!("{other:?}"),
            }
        }
        reserved
    }

    fn stats(&self, sale: &Sale) -> QuotaStats {
        self.quotas.get(&sale.id).stats()
    }
}

async fn three_nodes(url: &str) -> Vec<Node> {
    let mut nodes = Vec::new();
    for id in ["a", "b", "c"] {
        nodes.push(Node::start(url, id).await);
    }
    // Every node has seen the others' first beat.
    tokio::time::sleep(EVERY * 3).await;
    for node in &nodes {
        assert_eq!(node.live_nodes(), 3);
    }
    nodes
}

/// The bound of `quota.rs`: a node's sold-out answers from Redis are at
/// most two of its largest grants, ⌈S/N⌉ + B each.
fn assert_within_bound(sale: &Sale, live: u64, stats: &[QuotaStats]) {
    let per_node = 2 * (sale.stock.div_ceil(live) + BUFFER);
    for s in stats {
        assert!(s.sold_out_answers <= per_node, "{s:?} over {per_node}");
    }
    let calls: u64 = stats.iter().map(|s| s.reserve_calls).sum();
    let bound = sale.stock + stats.len() as u64 * per_node;
    assert!(
        calls <= bound,
        "{calls} reserve calls, bound {bound}: {stats:?}"
    );
    println!(
        "stock {}: {calls} reserve calls (bound {bound}); {stats:?}",
        sale.stock
    );
}

#[tokio::test]
async fn three_nodes_sell_exactly_the_stock_mostly_refusing_locally() {
    let Some(redis) = PrivateRedis::start(&[]).await else {
        return;
    };
    let url = redis.url();
    let nodes = three_nodes(&url).await;
    let s = sale(90, 1);
    nodes[0].authority.create_sale(&s).await.unwrap();

    let crowds = nodes
        .iter()
        .enumerate()
        .map(|(n, node)| node.crowd(&s, n * 300..(n + 1) * 300));
    let reserved: u64 = futures::future::join_all(crowds).await.into_iter().sum();
    assert_eq!(reserved, 90);
    let level = nodes[0].authority.state(&s.id).await.unwrap().unwrap();
    assert_eq!(level.sold, 90);
    assert_eq!(reservations(&url, &s.id).await.len(), 90);

    let stats: Vec<_> = nodes.iter().map(|n| n.stats(&s)).collect();
    assert_within_bound(&s, 3, &stats);
    let local: u64 = stats.iter().map(|s| s.local_refusals).sum();
    assert!(
        local > 0,
        "the late crowd is refused without Redis: {stats:?}"
    );
    // Once sold out, every node refuses locally: no more calls.
    let calls_before: u64 = stats.iter().map(|s| s.reserve_calls).sum();
    let late = nodes
        .iter()
        .enumerate()
        .map(|(n, node)| node.crowd(&s, 1000 + n * 50..1000 + (n + 1) * 50));
    assert_eq!(
        futures::future::join_all(late)
            .await
            .into_iter()
            .sum::<u64>(),
        0
    );
    let calls_after: u64 = nodes.iter().map(|n| n.stats(&s).reserve_calls).sum();
    assert_eq!(calls_before, calls_after);
}

#[tokio::test]
async fn a_dead_nodes_share_is_sold_by_the_others() {
    let Some(redis) = PrivateRedis::start(&[]).await else {
        return;
    };
    let url = redis.url();
    let mut nodes = three_nodes(&url).await;
    let s = sale(60, 1);
    nodes[0].authority.create_sale(&s).await.unwrap();

    // Each node takes its share of the quota (one sale each), then c dies:
    // its heartbeat stops and its share sits unused.
    for (n, node) in nodes.iter().enumerate() {
        assert_eq!(node.crowd(&s, n..n + 1).await, 1);
    }
    assert!(nodes[2].stats(&s).granted > 1);
    nodes[2].heartbeat = None;
    tokio::time::sleep(TTL + EVERY * 3).await;
    assert_eq!(nodes[0].live_nodes(), 2);
    assert_eq!(nodes[1].live_nodes(), 2);

    let crowds = [nodes[0].crowd(&s, 100..400), nodes[1].crowd(&s, 400..700)];
    let reserved: u64 = futures::future::join_all(crowds).await.into_iter().sum();
    assert_eq!(reserved, 57, "everything but the 3 sold before");
    let level = nodes[0].authority.state(&s.id).await.unwrap().unwrap();
    assert_eq!((level.sold, level.remaining()), (60, 0), "no unit stranded");
    assert_eq!(reservations(&url, &s.id).await.len(), 60);

    let stats: Vec<_> = nodes[..2].iter().map(|n| n.stats(&s)).collect();
    assert_within_bound(&s, 2, &stats);
}

#[tokio::test]
async fn a_restock_reopens_a_sold_out_node() {
    let Some(redis) = PrivateRedis::start(&[]).await else {
        return;
    };
    let url = redis.url();
    let nodes = three_nodes(&url).await;
    let s = sale(3, 1);
    nodes[0].authority.create_sale(&s).await.unwrap();
    // Each node has a quota for the sale (the engine makes one per sale).
    for node in &nodes {
        node.quotas.get(&s.id);
    }
    assert_eq!(nodes[0].crowd(&s, 0..10).await, 3);
    // The sold-out message reaches the other nodes: they refuse locally.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(nodes[1].quotas.get(&s.id).is_sold_out());
    assert_eq!(nodes[1].crowd(&s, 10..20).await, 0);
    assert_eq!(
        nodes[1].stats(&s).reserve_calls,
        0,
        "answered without Redis"
    );

    // One of the orders expires: the sweeper releases its unit.
    let order = OrderId::from(reservations(&url, &s.id).await[0]["order_id"].as_str());
    let user = UserId::from(reservations(&url, &s.id).await[0]["user_id"].as_str());
    nodes[2]
        .authority
        .release(&s.id, &order, &user, 1)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!nodes[1].quotas.get(&s.id).is_sold_out(), "restock heard");
    assert_eq!(nodes[1].crowd(&s, 20..30).await, 1, "the unit sells again");
}
