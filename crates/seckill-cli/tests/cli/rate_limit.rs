//! Rate limiting: per user, per client address (the TCP peer, or what a
//! trusted proxy says in X-Forwarded-For) and for the whole engine, with
//! each algorithm's own behaviour. A refusal is 429 `rate_limited` with a
//! `Retry-After` of at least one second, counted by scope in `/metrics`.
//!
//! Bounds on what gets through are stated against the time the requests
//! actually took (`rate × elapsed + burst`), so a slow machine cannot make
//! them fail, only looser.

use futures::future::join_all;
use seckill_test_support::*;
use std::time::{Duration, Instant};

/// A sale no rate-limit test can sell out or hit the per-user limit of.
async fn roomy_sale(api: &Api) -> String {
    api.open_sale(1_000_000, 1_000_000).await
}

/// A purchase by `user` whose request says it was forwarded for `forwarded_for`.
async fn purchase_via(api: &Api, user: &str, sale: &str, forwarded_for: &str) -> Resp {
    api.call(
        Method::POST,
        &format!("/api/v1/sales/{sale}/purchase"),
        &Auth::user(user),
        Body::Empty,
        &[("x-forwarded-for", forwarded_for)],
    )
    .await
}

/// What a burst of answers came to.
struct Tally {
    admitted: usize,
    refused: usize,
    elapsed: Duration,
}

impl Tally {
    /// Counts 202s and 429s, asserting that every refusal is a well-formed
    /// `rate_limited` with `Retry-After` ≥ 1 and that nothing else came back.
    fn of<'a>(answers: impl IntoIterator<Item = &'a Resp>, started: Instant) -> Self {
        let elapsed = started.elapsed();
        let mut tally = Self {
            admitted: 0,
            refused: 0,
            elapsed,
        };
        for answer in answers {
            if answer.status == StatusCode::ACCEPTED {
                tally.admitted += 1;
                continue;
            }
            answer.expect_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
            let retry_after: u64 = answer
                .header("retry-after")
                .and_then(|value| value.parse().ok())
                .unwrap_or_else(|| panic!("429 without a numeric Retry-After: {answer:?}"));
            assert!(retry_after >= 1, "Retry-After {retry_after}");
            tally.refused += 1;
        }
        tally
    }

    /// The most a limit of `rate`/s with `burst` may let through in the
    /// time these requests took.
    fn assert_at_most(&self, rate: u64, burst: u64) {
        let most = burst + (rate as f64 * self.elapsed.as_secs_f64()).ceil() as u64;
        assert!(
            self.admitted as u64 <= most,
            "{} admitted in {:?}; rate {rate}/s burst {burst} allows {most}",
            self.admitted,
            self.elapsed
        );
    }
}

/// The value of a counter series in `/metrics`, 0 if absent.
async fn counter(api: &Api, series: &str) -> u64 {
    let text = api.get("/metrics", &Auth::None).await.text();
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse::<f64>().ok())
        .map_or(0, |value| value as u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_user_gets_at_most_rate_plus_burst_while_other_users_are_unaffected() {
    let server = Seckill::start().await; // defaults: 10/s, burst 20 per user
    let sale = roomy_sale(&server).await;

    let started = Instant::now();
    let greedy = (0..1_000).map(|_| server.purchase("greedy", &sale));
    let others = (0..20).map(|i| {
        let (server, sale) = (&server, &sale);
        async move { server.purchase(&format!("polite-{i}"), sale).await }
    });
    let (greedy, others) = tokio::join!(join_all(greedy), join_all(others));

    let tally = Tally::of(&greedy, started);
    eprintln!(
        "one user: {} admitted, {} refused in {:?}",
        tally.admitted, tally.refused, tally.elapsed
    );
    assert!(tally.admitted >= 20, "the burst goes through");
    tally.assert_at_most(10, 20);
    for answer in &others {
        answer.accepted(&sale);
    }
    let refused = tally.refused as u64;
    assert_eq!(
        counter(&server, r#"seckill_rate_limited_total{scope="user"}"#).await,
        refused
    );
    assert_eq!(
        counter(
            &server,
            r#"seckill_purchases_total{outcome="rate_limited"}"#
        )
        .await,
        refused
    );
    assert_eq!(
        server.report(&sale).await.pending_payment,
        tally.admitted as u64 + 20
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purchases_that_go_through_the_router_share_the_same_limits() {
    let server = Seckill::start_with(&["--user-rate", "1", "--user-burst", "2"]).await;
    let sale = roomy_sale(&server).await;
    // The same sale id with its first character percent-encoded: routed.
    let encoded = format!("%{:02X}{}", sale.as_bytes()[0], &sale[1..]);
    let routed = format!("/api/v1/sales/{encoded}/purchase");

    server.buy("router-user", &sale).await;
    server
        .post(&routed, &Auth::user("router-user"), Body::Empty)
        .await
        .accepted(&sale);
    for path in [routed, format!("/api/v1/sales/{sale}/purchase")] {
        server
            .post(&path, &Auth::user("router-user"), Body::Empty)
            .await
            .expect_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_behind_a_trusted_proxy_is_limited_and_other_addresses_are_not() {
    let server = Seckill::start_with(&[
        "--user-rate",
        "0",
        "--ip-rate",
        "10",
        "--ip-burst",
        "20",
        "--trusted-proxy",
        "127.0.0.0/8",
    ])
    .await;
    let sale = roomy_sale(&server).await;

    // Distinct users from one address; each request forges a different
    // left-most entry, which must not matter: our proxy appended the last.
    let started = Instant::now();
    let crowd = (0..1_000).map(|i| {
        let (server, sale) = (&server, &sale);
        async move {
            let forwarded = format!("10.{}.{}.1, 198.51.100.7", i / 256, i % 256);
            purchase_via(server, &format!("nat-{i}"), sale, &forwarded).await
        }
    });
    let elsewhere = (0..20).map(|i| {
        let (server, sale) = (&server, &sale);
        async move {
            let forwarded = format!("203.0.113.{i}");
            purchase_via(server, &format!("home-{i}"), sale, &forwarded).await
        }
    });
    let (crowd, elsewhere) = tokio::join!(join_all(crowd), join_all(elsewhere));

    let tally = Tally::of(&crowd, started);
    eprintln!(
        "one address: {} admitted, {} refused in {:?}",
        tally.admitted, tally.refused, tally.elapsed
    );
    assert!(tally.admitted >= 20, "the burst goes through");
    tally.assert_at_most(10, 20);
    for answer in &elsewhere {
        answer.accepted(&sale);
    }
    assert_eq!(
        counter(&server, r#"seckill_rate_limited_total{scope="ip"}"#).await,
        tally.refused as u64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_from_an_untrusted_peer_are_ignored() {
    // Loopback is not among the trusted proxies: it is the client.
    let server = Seckill::start_with(&[
        "--user-rate",
        "0",
        "--ip-rate",
        "1",
        "--ip-burst",
        "5",
        "--trusted-proxy",
        "10.0.0.0/8",
    ])
    .await;
    let sale = roomy_sale(&server).await;

    let mut answers = Vec::new();
    let started = Instant::now();
    for i in 0..10 {
        let user = format!("spoofer-{i}");
        let forwarded = format!("198.51.100.{i}");
        let answer = server
            .call(
                Method::POST,
                &format!("/api/v1/sales/{sale}/purchase"),
                &Auth::user(user),
                Body::Empty,
                &[("x-forwarded-for", &forwarded), ("x-real-ip", &forwarded)],
            )
            .await;
        answers.push(answer);
    }
    let tally = Tally::of(&answers, started);
    assert!(tally.admitted >= 5);
    tally.assert_at_most(1, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_wide_limit_holds_across_users() {
    let server = Seckill::start_with(&["--user-rate", "0", "--global-rate", "5"]).await;
    let sale = roomy_sale(&server).await;

    let started = Instant::now();
    let crowd = (0..200).map(|i| {
        let (server, sale) = (&server, &sale);
        async move { server.purchase(&format!("crowd-{i}"), sale).await }
    });
    let tally = Tally::of(&join_all(crowd).await, started);
    assert!(tally.admitted >= 5);
    tally.assert_at_most(5, 5);
    assert_eq!(
        counter(&server, r#"seckill_rate_limited_total{scope="global"}"#).await,
        tally.refused as u64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_bucket_lets_the_burst_through_then_one_per_interval() {
    // One token every 500 ms, ten at once.
    let server = Seckill::start_with(&["--user-rate", "2", "--user-burst", "10"]).await;
    let sale = roomy_sale(&server).await;

    let started = Instant::now();
    let burst = join_all((0..30).map(|_| server.purchase("steady", &sale))).await;
    let tally = Tally::of(&burst, started);
    assert!(tally.admitted >= 10, "the whole burst at once");
    tally.assert_at_most(2, 10);

    // Then steady: probing ten times a second for three seconds, one
    // request per 500 ms gets through (± one at either end).
    let steady = Instant::now();
    let mut admitted = 0;
    while steady.elapsed() < Duration::from_secs(3) {
        let answer = server.purchase("steady", &sale).await;
        if answer.status == StatusCode::ACCEPTED {
            admitted += 1;
        } else {
            answer.expect_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let expected = 2.0 * steady.elapsed().as_secs_f64();
    assert!(
        (admitted as f64 - expected).abs() <= 2.0,
        "{admitted} admitted in {:?} at 2/s",
        steady.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaky_bucket_spaces_requests_at_the_rate_and_refuses_those_that_would_wait_too_long() {
    // One leaves every 200 ms; three may be in the bucket (a wait of 400 ms at most).
    let server = Seckill::start_with(&[
        "--rate-algorithm",
        "leaky_bucket",
        "--user-rate",
        "5",
        "--user-burst",
        "3",
    ])
    .await;
    let sale = roomy_sale(&server).await;

    let started = Instant::now();
    let timed = (0..10).map(|_| async {
        let answer = server.purchase("patient", &sale).await;
        (started.elapsed(), answer)
    });
    let results = join_all(timed).await;
    let tally = Tally::of(results.iter().map(|(_, answer)| answer), started);
    assert!(tally.admitted >= 3, "the bucket holds three");
    assert!(tally.refused >= 1, "ten at once overflow a bucket of three");

    // Admitted requests leave one per 200 ms: the k-th cannot be answered
    // before k slots have passed.
    let mut admitted: Vec<Duration> = results
        .iter()
        .filter(|(_, answer)| answer.status == StatusCode::ACCEPTED)
        .map(|(at, _)| *at)
        .collect();
    admitted.sort();
    for (k, at) in admitted.iter().enumerate() {
        assert!(
            *at >= Duration::from_millis(200) * k as u32,
            "admitted request {k} answered after {at:?}: before its slot"
        );
    }
    // Refusals do not wait for a slot: they come back before the last slot.
    let slowest_refusal = results
        .iter()
        .filter(|(_, answer)| answer.status == StatusCode::TOO_MANY_REQUESTS)
        .map(|(at, _)| *at)
        .max()
        .expect("some were refused");
    let last_admitted = *admitted.last().expect("some were admitted");
    assert!(
        slowest_refusal < last_admitted,
        "refused at {slowest_refusal:?}, last admitted at {last_admitted:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_window_count_starts_again_at_the_window_boundary() {
    // Five per window of one second.
    let server = Seckill::start_with(&[
        "--rate-algorithm",
        "fixed_window",
        "--user-rate",
        "5",
        "--user-burst",
        "5",
    ])
    .await;
    let sale = roomy_sale(&server).await;

    // Use up the current window.
    let mut used = 0;
    while server.purchase("windowed", &sale).await.status == StatusCode::ACCEPTED {
        used += 1;
        assert!(
            used <= 10,
            "at most two windows' allowance before a refusal"
        );
    }
    // Wait for the boundary: refused until then, then admitted.
    let refused_at = Instant::now();
    eventually(Duration::from_secs(3), "the next window", || async {
        let answer = server.purchase("windowed", &sale).await;
        (answer.status == StatusCode::ACCEPTED).then_some(())
    })
    .await;
    assert!(refused_at.elapsed() < Duration::from_millis(1_500));
    // A fresh window: the whole allowance at once (one was just used), which
    // a token bucket of the same rate would not give.
    let started = Instant::now();
    let burst = join_all((0..10).map(|_| server.purchase("windowed", &sale))).await;
    let tally = Tally::of(&burst, started);
    assert_eq!(tally.admitted, 4, "five per window, one used by the probe");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_configured_routes_are_limited() {
    let server = Seckill::start_with(&[
        "--rate-limited-routes",
        "purchase_token,stock",
        "--user-rate",
        "1",
        "--user-burst",
        "2",
        "--ip-rate",
        "1",
        "--ip-burst",
        "6",
    ])
    .await;
    let sale = roomy_sale(&server).await;
    let token_path = format!("/api/v1/sales/{sale}/purchase-token");
    let stock_path = format!("/api/v1/sales/{sale}/stock");

    // Per user on the purchase token: two at once, then refusals.
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(
            server
                .post(&token_path, &Auth::user("tokener"), Body::Empty)
                .await
                .status,
        );
    }
    assert_eq!(statuses[..2], [StatusCode::OK; 2], "{statuses:?}");
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    // Per address on the stock, anonymous: loopback has used four of six.
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(server.get(&stock_path, &Auth::None).await.status);
    }
    assert_eq!(statuses[..2], [StatusCode::OK; 2], "{statuses:?}");
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    assert!(counter(&server, r#"seckill_rate_limited_total{scope="user"}"#).await >= 1);
    assert!(counter(&server, r#"seckill_rate_limited_total{scope="ip"}"#).await >= 1);
    // Purchases and sale reads are not limited here, though the address is spent.
    for _ in 0..10 {
        server.buy("unhurried", &sale).await;
        server
            .get(&format!("/api/v1/sales/{sale}"), &Auth::None)
            .await
            .assert_status(StatusCode::OK);
    }
}

#[tokio::test]
async fn bad_settings_are_refused_at_start() {
    for (flags, expected) in [
        (&["--trusted-proxy", "10.0.0.0/33"][..], "10.0.0.0/33"),
        (&["--rate-algorithm", "sliding_log"], "sliding_log"),
        (&["--rate-limited-routes", "purchase,checkout"], "checkout"),
        (&["--ip-rate", "5", "--ip-burst", "0"], "ip_burst"),
    ] {
        let (code, stderr) = serve_refusal(flags);
        assert_eq!(code, Some(1), "{flags:?}: {stderr}");
        assert!(stderr.contains(expected), "{flags:?}: {stderr}");
    }
}
