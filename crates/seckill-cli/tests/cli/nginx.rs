//! `seckill nginx-conf` with real nginx: every strategy's config passes
//! `nginx -t`; bad arguments are refused; and traffic through a running
//! nginx in front of real `seckill serve` nodes follows the weights, is
//! rate-limited in the API's error shape, survives a dead node, answers
//! the API's 502 when all are dead, and never sends a purchase twice.
//!
//! Needs nginx in PATH or /usr/sbin/nginx; without it each test prints
//! "SKIPPED: nginx not installed", unless SECKILL_REQUIRE_NGINX=1 (as in CI),
//! where that is a failure.

use futures::StreamExt;
use seckill_test_support::nginx::*;
use seckill_test_support::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ---------------------------------------------------------------------------
// nginx -t
// ---------------------------------------------------------------------------

/// `nginx -t -p PREFIX -c CONF`, asserted successful.
#[track_caller]
fn assert_nginx_accepts(nginx: &Path, prefix: &Path, conf: &Path) {
    let output = Command::new(nginx)
        .arg("-t")
        .arg("-p")
        .arg(prefix)
        .arg("-c")
        .arg(conf)
        .output()
        .expect("run nginx -t");
    assert!(
        output.status.success(),
        "nginx -t refused {}:\n{}\n--- config ---\n{}",
        conf.display(),
        String::from_utf8_lossy(&output.stderr),
        std::fs::read_to_string(conf).unwrap_or_default()
    );
}

/// Asserts nginx's own refusal: `status`, the API's error `code`,
/// `Content-Type: application/json` and `Retry-After: 1`.
#[track_caller]
fn assert_nginx_refusal(resp: &Resp, status: StatusCode, code: &str) {
    resp.expect_error(status, code);
    assert_eq!(
        resp.header("content-type"),
        Some("application/json"),
        "{}",
        resp.request
    );
    assert_eq!(resp.header("retry-after"), Some("1"), "{}", resp.request);
}

// ---------------------------------------------------------------------------
// The generated file
// ---------------------------------------------------------------------------

#[test]
fn every_strategy_gives_a_config_nginx_accepts() {
    let Some(nginx) = nginx_binary() else { return };
    let nodes = [
        "127.0.0.1:18081=1".to_string(),
        "[::1]:18082=2".to_string(),
        "localhost:18083=3".to_string(),
    ];
    for (strategy, upstream_line) in [
        ("round_robin", "server 127.0.0.1:18081 max_fails"),
        ("weighted", "server [::1]:18082 weight=2 max_fails"),
        ("ip_hash", "ip_hash;"),
        ("uri_hash", "hash $request_uri consistent;"),
        ("least_conn", "least_conn;"),
        ("random", "random two least_conn;"),
    ] {
        let prefix = prefix_dir();
        let conf = write_conf(
            prefix.path(),
            "127.0.0.1:18080",
            &nodes,
            &[
                "--strategy",
                strategy,
                "--rate",
                "100",
                "--burst",
                "50",
                "--limit-conn",
                "64",
                "--max-fails",
                "2",
                "--fail-timeout",
                "5",
                "--keepalive",
                "16",
            ],
        );
        let text = std::fs::read_to_string(&conf).expect("read the config");
        assert!(
            text.contains(upstream_line),
            "{strategy}: no {upstream_line:?} in\n{text}"
        );
        assert!(
            text.contains("limit_req zone=purchase_rate burst=50 nodelay;"),
            "{text}"
        );
        assert!(text.contains("limit_conn conn_per_client 64;"), "{text}");
        assert!(text.contains("keepalive 16;"), "{text}");
        assert_nginx_accepts(&nginx, prefix.path(), &conf);
    }
}

#[test]
fn the_smallest_config_uses_the_prefix_nginx_is_given() {
    let Some(nginx) = nginx_binary() else { return };
    let output = nginx_conf(&["--listen", "127.0.0.1:18080", "--node", "127.0.0.1:18081"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let prefix = prefix_dir();
    let conf = prefix.path().join("nginx.conf");
    std::fs::write(&conf, &output.stdout).expect("write the config");
    assert_nginx_accepts(&nginx, prefix.path(), &conf);
    // Relative paths: `nginx -p` put its files under the prefix.
    assert!(prefix.path().join("error.log").is_file());
    assert!(prefix.path().join("client_body_temp").is_dir());
}

#[test]
fn a_rate_without_a_burst_is_accepted() {
    let Some(nginx) = nginx_binary() else { return };
    let prefix = prefix_dir();
    let nodes = ["127.0.0.1:18081".to_string()];
    let conf = write_conf(prefix.path(), "127.0.0.1:18080", &nodes, &["--rate", "5"]);
    assert_nginx_accepts(&nginx, prefix.path(), &conf);
}

#[test]
fn bad_arguments_are_refused_with_a_message() {
    let base = ["--listen", "127.0.0.1:18080"];
    for (args, status, message) in [
        (&["--node", "10.0.0.1"][..], 2, "not HOST:PORT"),
        (&["--node", "10.0.0.1:80=0"], 2, "weight"),
        (&["--node", "10.0.0.1:80=many"], 2, "weight"),
        (&["--node", "10.0.0.1:99999"], 2, "not a port"),
        (
            &["--node", "10.0.0.1:80", "--strategy", "fastest"],
            2,
            "fastest",
        ),
        (&["--node", "10.0.0.1:80", "--rate", "0"], 2, "--rate"),
        (&["--node", "10.0.0.1:80", "--rate", "-5"], 2, "--rate"),
        (
            &["--node", "10.0.0.1:80", "--rate", "5", "--burst", "-1"],
            2,
            "--burst",
        ),
        (&["--node", "10.0.0.1:80", "--burst", "5"], 2, "--rate"),
        (
            &["--node", "10.0.0.1:80", "--limit-conn", "0"],
            2,
            "--limit-conn",
        ),
        (&["--node", "10.0.0.1:80", "--daemon", "maybe"], 2, "maybe"),
        (&[], 2, "--node"),
        (
            &["--node", "10.0.0.1:80", "--node", "10.0.0.1:80=2"],
            1,
            "given twice",
        ),
        (
            &["--node", "10.0.0.1:80", "--prefix", "/tmp/a$b"],
            1,
            "--prefix",
        ),
    ] {
        let mut all = base.to_vec();
        all.extend(args);
        let output = nginx_conf(&all);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(status), "{all:?}: {stderr}");
        assert!(
            stderr.contains(message),
            "{all:?}: want {message:?} in {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{all:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{all:?}: printed a config");
    }
    let output = nginx_conf(&["--listen", "nowhere", "--node", "10.0.0.1:80"]);
    assert_eq!(output.status.code(), Some(2));
}

// ---------------------------------------------------------------------------
// Traffic through nginx to real nodes
// ---------------------------------------------------------------------------

/// `n` nodes with the same secrets, as behind one load balancer.
async fn cluster(n: usize) -> Vec<Seckill> {
    let first = Seckill::start().await;
    let mut nodes = Vec::with_capacity(n);
    for _ in 1..n {
        nodes.push(Seckill::start_like(&first, &[]).await);
    }
    nodes.insert(0, first);
    nodes
}

/// `count` GETs of `path` through `api`, 16 at a time; asserts each is 200.
async fn get_many(api: &Api, path: &str, count: usize) {
    futures::stream::iter(0..count)
        .map(|_| api.get(path, &Auth::None))
        .buffer_unordered(16)
        .for_each(|resp| async move { resp.assert_status(StatusCode::OK) })
        .await;
}

#[tokio::test]
async fn weighted_traffic_follows_the_weights() {
    let Some(nginx) = nginx_binary() else { return };
    let nodes = cluster(4).await;
    let upstreams: Vec<String> = nodes
        .iter()
        .zip(1..)
        .map(|(node, weight)| format!("{}={weight}", address_of(node)))
        .collect();
    let proxy = Nginx::start(&nginx, &upstreams, &["--strategy", "weighted"]).await;
    let api = nodes[0].at(&proxy.base);

    const REQUESTS: usize = 2000;
    get_many(&api, "/healthz", REQUESTS).await;

    let mut served: BTreeMap<String, usize> = BTreeMap::new();
    for line in proxy.access_log_lines("GET /healthz", REQUESTS).await {
        let upstream = line
            .split_once("upstream=")
            .and_then(|(_, rest)| rest.split_once(' '))
            .map(|(upstream, _)| upstream.to_string())
            .unwrap_or_else(|| panic!("no upstream in {line:?}"));
        *served.entry(upstream).or_default() += 1;
    }
    for (node, weight) in nodes.iter().zip(1..) {
        let share = served.get(&address_of(node)).copied().unwrap_or(0) as f64 / REQUESTS as f64;
        let want = f64::from(weight) / 10.0;
        assert!(
            (share - want).abs() <= 0.03,
            "node of weight {weight} served {share:.3} of the requests, want {want} ± 0.03: {served:?}"
        );
    }
}

#[tokio::test]
async fn purchases_beyond_rate_and_burst_get_the_apis_429() {
    let Some(nginx) = nginx_binary() else { return };
    let node = Seckill::start().await;
    let sale = node.open_sale(100, 1).await;
    let proxy = Nginx::start(
        &nginx,
        &[address_of(&node)],
        &["--rate", "1", "--burst", "5"],
    )
    .await;
    let api = node.at(&proxy.base);

    const BURST: usize = 5;
    let started = Instant::now();
    let mut reserved = 0;
    for i in 0..20 {
        let resp = api.purchase(&format!("user-{i}"), &sale).await;
        if resp.status == StatusCode::ACCEPTED {
            resp.accepted(&sale);
            reserved += 1;
        } else {
            assert_nginx_refusal(&resp, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
        }
    }
    // One at once plus the burst, and one more per second that passed.
    let refills = started.elapsed().as_secs() as usize + 1;
    assert!(
        (1 + BURST..=1 + BURST + refills).contains(&reserved),
        "{reserved} purchases passed the limit of rate 1/s, burst {BURST}"
    );
    assert_eq!(
        node.report(&sale).await.held(),
        reserved as u64,
        "refused purchases must not reach the node"
    );
    // Only purchases are limited.
    api.get(&format!("/api/v1/sales/{sale}/stock"), &Auth::None)
        .await
        .assert_status(StatusCode::OK);
}

#[tokio::test]
async fn a_dead_node_is_passed_over_and_no_node_is_the_apis_502() {
    let Some(nginx) = nginx_binary() else { return };
    let mut nodes = cluster(4).await;
    let upstreams: Vec<String> = nodes.iter().map(address_of).collect();
    let proxy = Nginx::start(&nginx, &upstreams, &["--strategy", "round_robin"]).await;
    let api = nodes[0].at(&proxy.base);

    nodes[0].kill();
    get_many(&api, "/healthz", 100).await;
    // A purchase whose connection was refused was never sent: nginx may and
    // does try the next node, which answers (here: no such sale).
    for i in 0..8 {
        api.purchase(&format!("user-{i}"), "no-such-sale")
            .await
            .expect_error(StatusCode::NOT_FOUND, "not_found");
    }
    let retried = proxy
        .access_log_lines("GET /healthz", 100)
        .await
        .iter()
        .filter(|line| line.contains(&format!("upstream={}, ", upstreams[0])))
        .count();
    assert!(retried >= 1, "no request was tried on the dead node first");

    for node in &mut nodes[1..] {
        node.kill();
    }
    assert_nginx_refusal(
        &api.get("/healthz", &Auth::None).await,
        StatusCode::BAD_GATEWAY,
        "unavailable",
    );
    assert_nginx_refusal(
        &api.purchase("late-user", "no-such-sale").await,
        StatusCode::BAD_GATEWAY,
        "unavailable",
    );
}

#[tokio::test]
async fn purchases_through_nginx_reach_the_node_a_client_sticks_to() {
    let Some(nginx) = nginx_binary() else { return };
    let nodes = cluster(4).await;
    let upstreams: Vec<String> = nodes.iter().map(address_of).collect();
    let proxy = Nginx::start(&nginx, &upstreams, &["--strategy", "ip_hash"]).await;
    let api = nodes[0].at(&proxy.base);

    // Embedded nodes each keep their own sales; ip_hash sends this client
    // to one node every time, so the sale it creates is the one it buys.
    let sale = api.open_sale(50, 1).await;
    let mut orders = Vec::new();
    for i in 0..10 {
        let user = format!("buyer-{i}");
        let order = api.buy(&user, &sale).await;
        orders.push((user, order));
    }
    for (user, order) in &orders {
        api.order_of(user, order).await;
    }

    let mut holders: Vec<SaleReport> = Vec::new();
    for node in &nodes {
        let resp = node
            .get(&format!("/api/v1/sales/{sale}/report"), &Auth::Admin)
            .await;
        match resp.status {
            StatusCode::OK => holders.push(resp.expect_as(StatusCode::OK)),
            _ => {
                resp.expect_error(StatusCode::NOT_FOUND, "not_found");
            }
        }
    }
    assert_eq!(holders.len(), 1, "exactly one node holds the sale");
    assert_eq!(holders[0].held(), 10);
    assert_balanced(&holders[0]);
}

// ---------------------------------------------------------------------------
// What nginx sends a node, seen from a bare socket
// ---------------------------------------------------------------------------

/// A TCP listener standing in for a node: it records each request head and
/// either answers `202 {}` or hangs up without answering.
struct Listener {
    address: String,
    heads: Arc<Mutex<Vec<String>>>,
    received: Arc<AtomicUsize>,
}

impl Listener {
    async fn start(answer: bool) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a listener");
        let address = listener.local_addr().expect("local address").to_string();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let received = Arc::new(AtomicUsize::new(0));
        let (task_heads, task_received) = (Arc::clone(&heads), Arc::clone(&received));
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let Some(head) = read_head(&mut socket).await else {
                    continue;
                };
                task_received.fetch_add(1, Ordering::SeqCst);
                task_heads.lock().expect("heads").push(head);
                if answer {
                    let _ = socket
                        .write_all(b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
                        .await;
                }
                // Dropping the socket closes it: with no answer, a hang-up.
            }
        });
        Self {
            address,
            heads,
            received,
        }
    }

    fn received(&self) -> usize {
        self.received.load(Ordering::SeqCst)
    }
}

/// Reads up to the end of a request head; None if the peer closed first.
async fn read_head(socket: &mut tokio::net::TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = socket.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Some(String::from_utf8_lossy(&head).to_ascii_lowercase())
}

#[tokio::test]
async fn a_purchase_reaches_the_node_with_the_clients_address() {
    let Some(nginx) = nginx_binary() else { return };
    let node = Listener::start(true).await;
    let proxy = Nginx::start(&nginx, std::slice::from_ref(&node.address), &[]).await;
    let client = reqwest::Client::new();
    let resp = client
        .post(format!("{}/api/v1/sales/s-1/purchase", proxy.base))
        .header("authorization", "Bearer some-token")
        .header("idempotency-key", "key-1")
        .header("x-forwarded-for", "203.0.113.7")
        .send()
        .await
        .expect("a purchase through nginx");
    assert_eq!(resp.status(), StatusCode::ACCEPTED);

    let heads = node.heads.lock().expect("heads").clone();
    assert_eq!(heads.len(), 1, "{heads:?}");
    let head = &heads[0];
    for line in [
        "post /api/v1/sales/s-1/purchase http/1.1\r\n",
        "\r\nx-forwarded-for: 203.0.113.7, 127.0.0.1\r\n",
        "\r\nx-real-ip: 127.0.0.1\r\n",
        "\r\nauthorization: bearer some-token\r\n",
        "\r\nidempotency-key: key-1\r\n",
    ] {
        assert!(
            head.contains(line),
            "no {line:?} in the head the node got:\n{head}"
        );
    }
    assert!(
        !head.contains("\r\nconnection:"),
        "the connection to the node must stay reusable:\n{head}"
    );
}

#[tokio::test]
async fn a_purchase_that_reached_a_node_is_never_sent_to_another() {
    let Some(nginx) = nginx_binary() else { return };
    let nodes = [Listener::start(false).await, Listener::start(false).await];
    let upstreams: Vec<String> = nodes.iter().map(|n| n.address.clone()).collect();
    // --max-fails 0: both nodes stay in rotation whatever happens.
    let proxy = Nginx::start(&nginx, &upstreams, &["--max-fails", "0"]).await;
    let token_minter = Seckill::start().await;
    let api = token_minter.at(&proxy.base);
    let received = || nodes.iter().map(Listener::received).sum::<usize>();

    // The node hangs up after reading the purchase: it may have reserved.
    let resp = api.purchase("buyer", "s-1").await;
    assert_nginx_refusal(&resp, StatusCode::BAD_GATEWAY, "unavailable");
    assert_eq!(received(), 1, "the purchase was sent to a second node");

    // A GET is safe to repeat: nginx tries the other node too.
    let resp = api.get("/api/v1/sales/s-1", &Auth::None).await;
    assert_nginx_refusal(&resp, StatusCode::BAD_GATEWAY, "unavailable");
    assert_eq!(received(), 3, "the GET was not tried on the second node");
}
