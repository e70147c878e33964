//! Load shedding: past `--max-in-flight` a request is answered 503 at once;
//! past `--request-timeout-ms` a request is answered 503 (408 if it was
//! its body that did not come) and its place freed. Requests are held in
//! flight by a client that sends a purchase's head but not its whole body,
//! over a raw socket. And the connections
//! that would pin the engine without a request are closed: a head that
//! does not come, or one too large.

use seckill_test_support::*;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The stalled request has had time to be read and admitted, and has not
/// been answered (a shed one would have been, at once).
async fn assert_unanswered(socket: &mut TcpStream) {
    let mut buf = [0u8; 1024];
    match tokio::time::timeout(Duration::from_millis(300), socket.read(&mut buf)).await {
        Err(_) => {}
        Ok(read) => panic!(
            "the stalled request was answered: {:?}",
            read.map(|n| String::from_utf8_lossy(&buf[..n]).into_owned())
        ),
    }
}

/// Reads one answer's status line and body from a raw socket.
async fn read_answer(socket: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).contains("}}") {
        let n = tokio::time::timeout(PATIENCE, socket.read(&mut buf))
            .await
            .expect("an answer in time")
            .expect("read");
        assert!(
            n > 0,
            "closed before answering: {:?}",
            String::from_utf8_lossy(&answer)
        );
        answer.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn past_the_in_flight_cap_requests_are_refused_at_once_but_health_is_not_and_places_come_back()
 {
    let seckill =
        Seckill::start_with(&["--max-in-flight", "2", "--request-timeout-ms", "60000"]).await;
    let sale = seckill.open_sale(10, 1).await;
    let mut first = stalled_purchase(&seckill, &sale).await;
    let mut second = stalled_purchase(&seckill, &sale).await;
    // Both are in flight: read, admitted, waiting for their bodies.
    assert_unanswered(&mut first).await;
    assert_unanswered(&mut second).await;

    let refusal = seckill.purchase("alice", &sale).await;
    refusal.expect_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert_eq!(refusal.header("retry-after"), Some("1"));
    seckill
        .get("/healthz", &Auth::None)
        .await
        .assert_status(StatusCode::OK);
    let metrics = seckill.get("/metrics", &Auth::None).await.text();
    assert!(
        metrics.contains(r#"seckill_shed_requests_total{reason="in_flight"}"#),
        "{metrics}"
    );
    // The stalled clients hang up: their places come free.
    drop((first, second));
    let answer = eventually(PATIENCE, "the places to come free", || async {
        let answer = seckill.purchase("alice", &sale).await;
        (answer.status != StatusCode::SERVICE_UNAVAILABLE).then_some(answer)
    })
    .await;
    answer.accepted(&sale);
}

/// A client that does not finish sending its body within the time limit
/// gets 408 `request_timeout`: it was the client that was slow. The place
/// it held is free again.
#[tokio::test]
async fn a_body_that_does_not_come_in_time_gets_408_and_frees_its_place() {
    let seckill =
        Seckill::start_with(&["--max-in-flight", "1", "--request-timeout-ms", "300"]).await;
    let sale = seckill.open_sale(10, 1).await;
    let started = Instant::now();
    let mut stalled = stalled_purchase(&seckill, &sale).await;

    let answer = read_answer(&mut stalled).await;

    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{answer}"
    );
    assert!(answer.contains(r#""code":"request_timeout""#), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
    // Its place is free again: the next purchase goes through.
    let order = seckill.buy("alice", &sale).await;

    // The same for a payment whose body stalls.
    let addr = seckill.base.strip_prefix("http://").expect("an http base");
    let mut stalled = TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST /api/v1/orders/{order}/pay HTTP/1.1\r\nHost: {addr}\r\n\
         Authorization: Bearer {}\r\nContent-Type: application/json\r\n\
         Content-Length: 100\r\n\r\n{{\"payment_ref\"",
        seckill.user_token("alice")
    );
    stalled.write_all(head.as_bytes()).await.expect("send");
    let answer = read_answer(&mut stalled).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""code":"request_timeout""#), "{answer}");
    assert_eq!(
        str_field(&seckill.order_of("alice", &order).await, "status"),
        "pending_payment"
    );
}

/// A request whose handler is still waiting past the time limit — here on
/// a store that cannot commit while another process holds SQLite's write
/// lock — gets 503 `unavailable`: the engine was slow, not the client.
#[tokio::test]
async fn a_slow_handler_past_the_time_limit_gets_503() {
    let seckill = Seckill::start_with(&["--request-timeout-ms", "300"]).await;
    let sale = seckill.open_sale(10, 1).await;
    let mut lock_holder = rusqlite::Connection::open(seckill.data_dir().join("seckill.db"))
        .expect("open the engine's database");
    let lock = lock_holder
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .expect("take SQLite's write lock");

    let started = Instant::now();
    let answer = seckill.purchase_with("bob", &sale, Some(1), None).await;

    answer.expect_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert_eq!(answer.header("retry-after"), Some("1"));
    assert!(started.elapsed() >= Duration::from_millis(300));
    lock.rollback().expect("release the write lock");
}

#[tokio::test]
async fn bad_limits_are_refused_at_start() {
    for flags in [["--max-in-flight", "0"], ["--request-timeout-ms", "0"]] {
        let (code, stderr) = serve_refusal(&flags);
        assert_eq!(code, Some(1), "{flags:?}: {stderr}");
        assert!(stderr.contains("at least 1"), "{stderr}");
    }
}

#[tokio::test]
async fn a_huge_request_head_is_refused_and_the_engine_serves_on() {
    let seckill = Seckill::start().await;
    let addr = seckill.base.strip_prefix("http://").expect("an http base");
    for (what, extra_headers) in [
        (
            "one huge header",
            format!("X-Padding: {}\r\n", "a".repeat(40 * 1024)),
        ),
        (
            "too many headers",
            (0..100).map(|i| format!("X-H{i}: v\r\n")).collect(),
        ),
    ] {
        let mut socket = TcpStream::connect(addr).await.expect("connect");
        let head = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n{extra_headers}\r\n");
        // The engine may stop reading before the end; the write may fail.
        let _ = tokio::io::AsyncWriteExt::write_all(&mut socket, head.as_bytes()).await;
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(PATIENCE, socket.read_to_end(&mut answer)).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 431"), "{what}: {answer}");
    }
    seckill
        .get("/healthz", &Auth::None)
        .await
        .assert_status(StatusCode::OK);
}

/// The engine's time limit on sending a request's head: 10 s, and a fifth
/// more at most (`HEADER_READ_TIMEOUT`, `Connections::watch`).
const HEAD_LIMIT: Duration = Duration::from_secs(10);

/// A connection that sends half a head, or nothing, is closed once the
/// time limit on a head has passed, and not before; one that keeps asking
/// stays open past it, and so does one streaming the dashboard's events.
#[tokio::test]
async fn a_connection_without_a_head_is_closed_after_the_time_limit_a_busy_one_is_not() {
    let seckill = Seckill::start().await;
    let addr = seckill.base.strip_prefix("http://").expect("an http base");
    let connect = || async { TcpStream::connect(addr).await.expect("connect") };
    let started = Instant::now();
    let mut half_head = connect().await;
    half_head
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let closed = |mut socket: TcpStream| async move {
        let mut rest = Vec::new();
        tokio::time::timeout(HEAD_LIMIT * 2, socket.read_to_end(&mut rest))
            .await
            .expect("closed in time")
            .expect("read");
        (started.elapsed(), rest)
    };
    let half_head = tokio::spawn(closed(half_head));
    let silent = tokio::spawn(closed(connect().await));
    let mut events = connect().await;
    events
        .write_all(b"GET /dashboard/events HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut asking = connect().await;

    while started.elapsed() < HEAD_LIMIT + HEAD_LIMIT / 2 {
        asking
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("the asking connection is open");
        let answer = read_some(&mut asking, "the asking connection").await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    for (what, closing) in [("half a head", half_head), ("nothing", silent)] {
        let (after, rest) = closing.await.expect("the reader");
        assert!(
            (HEAD_LIMIT..HEAD_LIMIT + HEAD_LIMIT / 2).contains(&after),
            "a connection that sent {what} was closed after {after:?}"
        );
        assert!(
            rest.is_empty(),
            "{what}: {:?}",
            String::from_utf8_lossy(&rest)
        );
    }
    // The events stream sends a snapshot every second, all along.
    let since_start = read_some(&mut events, "the events").await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let latest = read_some(&mut events, "the latest events").await;
    assert!(
        latest.contains("event: snapshot"),
        "{since_start:.300}…{latest:.300}"
    );
}

/// What a socket has to read now (waiting up to a second for something).
async fn read_some(socket: &mut TcpStream, what: &str) -> String {
    let mut buf = vec![0u8; 256 * 1024];
    let n = tokio::time::timeout(Duration::from_secs(1), socket.read(&mut buf))
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing to read"))
        .expect("read");
    assert!(n > 0, "{what}: closed");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}
