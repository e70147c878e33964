//! `/dashboard/events` against a crowd of real sockets: streams past the
//! cap are refused with 503, streams that never read are dropped without
//! the engine's memory (read from `/proc`) growing with them while a reader
//! that reads still gets every snapshot, and the optional dashboard token.

use futures::{StreamExt, stream};
use seckill_test_support::*;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;

const EVENTS_HEAD: &[u8] = b"GET /dashboard/events HTTP/1.1\r\nHost: x\r\n\r\n";

/// The engine's resident memory, in MiB.
fn rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|kib| kib.trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in {status}"));
    kib / 1024
}

fn address(seckill: &Seckill) -> String {
    seckill
        .base
        .strip_prefix("http://")
        .expect("an http base")
        .to_string()
}

/// `count` open sales with names as long as real ones, so that a snapshot
/// is as large as a busy engine's.
async fn open_sales(seckill: &Seckill, count: usize) {
    stream::iter(0..count)
        .for_each_concurrent(8, |n| async move {
            seckill
                .open_sale_with(json!({
                    "name": format!("G{n:04} Beijing South - Shanghai Hongqiao, 2nd class"),
                    "stock": 1_000 + n,
                    "per_user_limit": 2,
                }))
                .await;
        })
        .await;
}

/// A connection that asks for the events and reads nothing. Its receive
/// buffer is small, so what it does not read stays with the engine rather
/// than in this process's kernel buffers.
async fn silent_stream(addr: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("a socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let mut stream = socket
        .connect(addr.parse().expect("an address"))
        .await
        .expect("connect");
    stream.write_all(EVENTS_HEAD).await.expect("send the head");
    stream
}

/// An answer read off a raw socket: its status, its head, and its body if
/// it has a length.
struct RawAnswer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl RawAnswer {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

async fn read_answer(stream: &mut TcpStream) -> RawAnswer {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut read = async |bytes: &mut Vec<u8>| {
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut chunk))
            .await
            .expect("an answer in time")
            .expect("read the answer");
        assert!(
            n > 0,
            "closed before the answer: {:?}",
            String::from_utf8_lossy(bytes)
        );
        bytes.extend_from_slice(&chunk[..n]);
    };
    let end = loop {
        if let Some(at) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        read(&mut bytes).await;
    };
    let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
    let status = head
        .get(9..12)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("a status line: {head}"));
    let mut answer = RawAnswer {
        status,
        head,
        body: Vec::new(),
    };
    if let Some(length) = answer.header("content-length") {
        let length: usize = length.parse().expect("a length");
        while bytes.len() < end + length {
            read(&mut bytes).await;
        }
        answer.body = bytes[end..end + length].to_vec();
    }
    answer
}

/// A 503 `unavailable` in the API's shape, with `Retry-After`.
fn assert_refused_for_now(answer: &RawAnswer) {
    assert_eq!(answer.status, 503, "{}", answer.head);
    assert!(answer.header("retry-after").is_some(), "{}", answer.head);
    let body: Value = serde_json::from_slice(&answer.body).expect("a JSON body");
    let (code, message) = error_shape(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(code, "unavailable", "{body}");
    assert!(message.contains("dashboard"), "{body}");
}

/// Reads until the engine closes the connection: `false` if it is still
/// open (and sending) after `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut sink = vec![0u8; 64 * 1024];
    tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// Three thousand streams that never read, on an engine with three hundred
/// sales (a snapshot of tens of KB every second): each is dropped once it
/// falls behind, the engine's memory stays small all along, and meanwhile
/// a reader that reads gets a snapshot every second and the API answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_that_never_read_are_dropped_and_the_engine_stays_small() {
    const SALES: usize = 300;
    const SILENT: usize = 3_000;
    const FLOOD_FOR: Duration = Duration::from_secs(10);
    /// Room for the engine and thousands of connections, far below what
    /// streams that queue their snapshots would take.
    const MOST_MIB: u64 = 200;

    let seckill = Seckill::start_with(&["--dashboard-max-streams", "10000"]).await;
    let pid = seckill.pid();
    open_sales(&seckill, SALES).await;
    let sale = seckill.open_sale(10, 1).await;
    let addr = address(&seckill);
    let at_rest = rss_mib(pid);

    let mut silent: Vec<TcpStream> = stream::iter(0..SILENT)
        .map(|_| silent_stream(&addr))
        .buffer_unordered(64)
        .collect()
        .await;
    let flooded = Instant::now();

    let reading = tokio::spawn({
        let url = seckill.url("/dashboard/events");
        async move {
            let mut events = reqwest::get(url).await.expect("the events");
            assert_eq!(events.status(), StatusCode::OK);
            let mut seen = Vec::new();
            while flooded.elapsed() < FLOOD_FOR {
                let left = FLOOD_FOR.saturating_sub(flooded.elapsed());
                match tokio::time::timeout(left, events.chunk()).await {
                    Ok(chunk) => seen.extend(chunk.expect("read").expect("the stream goes on")),
                    Err(_) => break,
                }
            }
            String::from_utf8_lossy(&seen)
                .matches("event: snapshot")
                .count()
        }
    });
    let mut peak = at_rest;
    let mut slowest = Duration::ZERO;
    while flooded.elapsed() < FLOOD_FOR {
        let asked = Instant::now();
        seckill
            .get("/healthz", &Auth::None)
            .await
            .assert_status(StatusCode::OK);
        seckill.stock(&sale).await;
        slowest = slowest.max(asked.elapsed());
        peak = peak.max(rss_mib(pid));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let snapshots = reading.await.expect("the reader");
    println!(
        "{SILENT} silent streams, {SALES} sales: {at_rest} MiB at rest, {peak} MiB at most; \
         reader got {snapshots} snapshots; slowest API answer {slowest:?}"
    );
    assert!(
        peak < MOST_MIB,
        "the engine grew from {at_rest} MiB to {peak} MiB with {SILENT} silent streams"
    );
    assert!(
        snapshots >= FLOOD_FOR.as_secs() as usize - 3,
        "a reading stream got {snapshots} snapshots in {FLOOD_FOR:?}"
    );
    assert!(
        slowest < Duration::from_secs(2),
        "an answer took {slowest:?}"
    );

    // The silent streams were dropped: reading them now finds their end.
    for (n, stream) in silent.iter_mut().step_by(SILENT / 50).enumerate() {
        assert!(
            closed_within(stream, Duration::from_secs(5)).await,
            "silent stream {n} is still open"
        );
    }
}

/// Past `--dashboard-max-streams`, a stream is refused with 503 at once;
/// a stream that closes gives its place back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_past_the_cap_get_503_and_a_closed_stream_frees_its_place() {
    const CAP: usize = 40;
    const ASKING: usize = 300;
    let seckill = Seckill::start_with(&["--dashboard-max-streams", &CAP.to_string()]).await;
    let addr = address(&seckill);
    // Admitted streams are read all along, so none falls behind.
    let ask = async |addr: String| -> (RawAnswer, Option<JoinHandle<()>>) {
        let mut stream = TcpStream::connect(&addr).await.expect("connect");
        stream.write_all(EVENTS_HEAD).await.expect("send the head");
        let answer = read_answer(&mut stream).await;
        let reading = (answer.status == 200).then(|| {
            tokio::spawn(async move {
                let mut sink = vec![0u8; 64 * 1024];
                while stream.read(&mut sink).await.is_ok_and(|n| n > 0) {}
            })
        });
        (answer, reading)
    };
    let answers: Vec<_> = stream::iter(0..ASKING)
        .map(|_| ask(addr.clone()))
        .buffer_unordered(32)
        .collect()
        .await;
    let (admitted, refused): (Vec<_>, Vec<_>) = answers
        .into_iter()
        .partition(|(answer, _)| answer.status == 200);
    assert_eq!(admitted.len(), CAP, "streams admitted");
    for (answer, _) in &refused {
        assert_refused_for_now(answer);
    }
    assert_eq!(
        admitted[0].0.header("content-type"),
        Some("text/event-stream")
    );
    // Still the cap: one more is refused; once one closes, one more gets in.
    assert_refused_for_now(&ask(addr.clone()).await.0);
    let mut readers: Vec<_> = admitted.into_iter().filter_map(|(_, r)| r).collect();
    readers.pop().expect("an admitted stream").abort();
    let (answer, reader) = eventually(Duration::from_secs(5), "a place comes free", || async {
        Some(ask(addr.clone()).await).filter(|(answer, _)| answer.status == 200)
    })
    .await;
    assert_eq!(answer.status, 200);
    readers.extend(reader);
    assert_refused_for_now(&ask(addr.clone()).await.0);
    // Without a token configured, the page is open to all.
    seckill
        .get("/dashboard", &Auth::None)
        .await
        .assert_status(StatusCode::OK);
    readers.iter().for_each(JoinHandle::abort);
}

/// With `--dashboard-token`, the page and its events answer 401 without
/// it or with another, and 200 with it, as `?token=` (what the page passes
/// to its `EventSource`) or as a bearer token; the static assets stay open.
#[tokio::test]
async fn with_a_dashboard_token_the_page_and_its_events_ask_for_it() {
    const TOKEN: &str = "dash board/token+1=";
    const IN_QUERY: &str = "dash%20board%2Ftoken%2B1%3D";
    let seckill = Seckill::start_with(&["--dashboard-token", TOKEN]).await;
    for path in ["/dashboard", "/dashboard/events"] {
        for (auth, query) in [
            (Auth::None, ""),
            (Auth::None, "?token="),
            (Auth::None, "?token=dash%20board"),
            (Auth::Bearer("dash board/token+1".into()), ""),
            (Auth::Admin, ""),
        ] {
            seckill
                .get(&format!("{path}{query}"), &auth)
                .await
                .expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
        }
    }
    for (auth, query) in [
        (Auth::None, format!("?token={IN_QUERY}")),
        (Auth::Bearer(TOKEN.into()), String::new()),
    ] {
        let page = seckill.get(&format!("/dashboard{query}"), &auth).await;
        page.assert_status(StatusCode::OK);
        assert!(page.text().contains("dashboard.js"), "{}", page.text());
        let mut request =
            reqwest::Client::new().get(seckill.url(&format!("/dashboard/events{query}")));
        if let Auth::Bearer(token) = &auth {
            request = request.bearer_auth(token);
        }
        let mut events = request.send().await.expect("the events");
        assert_eq!(events.status(), StatusCode::OK);
        let first = tokio::time::timeout(PATIENCE, events.chunk())
            .await
            .expect("the first event in time")
            .expect("read")
            .expect("an event");
        assert!(
            String::from_utf8_lossy(&first).starts_with("event: history\n"),
            "{first:?}"
        );
    }
    for asset in ["/dashboard/dashboard.js", "/dashboard/dashboard.css"] {
        seckill
            .get(asset, &Auth::None)
            .await
            .assert_status(StatusCode::OK);
    }
}

/// A cap of no stream, or an empty token (which `?token=` would match), is
/// refused at start, from a flag or from the configuration file.
#[tokio::test]
async fn bad_dashboard_settings_are_refused_at_start() {
    let config = tempfile::tempdir().expect("a dir");
    let file = config.path().join("seckill.toml");
    std::fs::write(&file, "dashboard_max_streams = 0\n").expect("write the config");
    let file = file.to_str().expect("a UTF-8 path");
    for (flags, says) in [
        (vec!["--dashboard-max-streams", "0"], "at least 1"),
        (vec!["--config", file], "at least 1"),
        (vec!["--dashboard-token", ""], "must not be empty"),
    ] {
        let (code, stderr) = serve_refusal(&flags);
        assert_eq!(code, Some(1), "{flags:?}: {stderr}");
        assert!(stderr.contains(says), "{flags:?}: {stderr}");
    }
}

/// A setting comes from its flag, else its variable, else the file: the
/// token the dashboard asks for shows which one the engine took.
#[tokio::test]
async fn a_flag_wins_over_its_variable_which_wins_over_the_file() {
    let config = tempfile::tempdir().expect("a dir");
    let file = config.path().join("seckill.toml");
    std::fs::write(&file, "dashboard_token = 'from-file'\n").expect("write the config");
    let file = file.to_str().expect("a UTF-8 path");
    let variable = [("SECKILL_DASHBOARD_TOKEN", "from-variable")];
    for (flags, env, taken) in [
        (vec!["--config", file], &[][..], "from-file"),
        (vec!["--config", file], &variable[..], "from-variable"),
        (
            vec!["--config", file, "--dashboard-token", "from-flag"],
            &variable[..],
            "from-flag",
        ),
    ] {
        let seckill = Seckill::start_in(&flags, env).await;
        for token in ["from-file", "from-variable", "from-flag"] {
            let expected = if token == taken {
                StatusCode::OK
            } else {
                StatusCode::UNAUTHORIZED
            };
            seckill
                .get("/dashboard", &Auth::Bearer(token.into()))
                .await
                .assert_status(expected);
        }
    }
}
