//! `/dashboard` in a real headless Chromium: against an engine under a
//! small rush, the numbers on the page itself must change as the sale
//! sells out; against a quiet one behind a dashboard token, the page must
//! still read right. Leaves screenshots at `target/dashboard.png` and
//! `target/dashboard-quiet.png`.

use seckill_test_support::browser::Browser;
use seckill_test_support::*;
use std::time::Duration;

/// `buyers` distinct users, `workers` at a time, each paced so the rush
/// spans a few of the dashboard's one-second samples.
fn rush(api: &Api, sale: &str, buyers: usize, workers: usize) -> tokio::task::JoinHandle<()> {
    let (api, sale) = (api.clone(), sale.to_string());
    tokio::spawn(async move {
        let tasks: Vec<_> = (0..workers)
            .map(|worker| {
                let (api, sale) = (api.clone(), sale.clone());
                tokio::spawn(async move {
                    for buyer in (worker..buyers).step_by(workers) {
                        let answer = api.purchase(&format!("rusher-{buyer}"), &sale).await;
                        if answer.status != StatusCode::ACCEPTED {
                            answer.expect_error(StatusCode::CONFLICT, "sold_out");
                        }
                        api.stock(&sale).await;
                        tokio::time::sleep(Duration::from_millis(15)).await;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("a rush worker");
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_a_rush_as_it_happens() {
    let test = "the_dashboard_shows_a_rush_as_it_happens";
    let Some(chromium) = browser::chromium(test) else {
        return;
    };
    let seckill = Seckill::start().await;
    let sale = seckill
        .open_sale_with(json!({
            "name": "G1234 Beijing-Shanghai 2nd class", "stock": 400, "per_user_limit": 1
        }))
        .await;
    let mut browser = Browser::launch(&chromium).await;
    let page = browser.open(&seckill.url("/dashboard")).await;
    let sale_row = format!("document.querySelector('[data-sale-id=\"{sale}\"]')");
    let remaining = format!("{sale_row}?.querySelector('.remaining').textContent");
    assert_eq!(browser.wait_for(&page, &remaining).await, "400");
    let snapshots_before = browser
        .eval(&page, "Number(document.body.dataset.snapshots)")
        .await;

    let rushing = rush(&seckill, &sale, 2_400, 8);
    // While it runs, the page shows requests per second and sold-out answers.
    let rps = browser
        .wait_for(
            &page,
            "(t => t !== '0' && t !== '—' && t)(document.getElementById('rps-total').textContent)",
        )
        .await;
    assert!(rps.is_string(), "{rps}");
    browser
        .wait_for(
            &page,
            "document.getElementById('rps-sold_out').textContent !== '0' \
             && document.getElementById('rps-sold_out').textContent !== '—'",
        )
        .await;
    // Then, while the late crowd is still refused, the sale shows sold out
    // with every unit held, on the page.
    browser
        .wait_for(&page, &format!("{remaining} === '0'"))
        .await;
    let state = browser
        .eval(
            &page,
            &format!("{sale_row}.querySelector('.state').textContent"),
        )
        .await;
    assert_eq!(state, "sold out");
    browser
        .wait_for(
            &page,
            "document.getElementById('orders-reserved').textContent === '400'",
        )
        .await;
    let snapshots_after = browser
        .eval(&page, "Number(document.body.dataset.snapshots)")
        .await;
    assert!(
        snapshots_after.as_u64() > snapshots_before.as_u64(),
        "{snapshots_before} → {snapshots_after}"
    );
    // The line charts have drawn something: non-transparent pixels.
    let drawn = browser
        .eval(
            &page,
            "(c => c.getContext('2d').getImageData(0, 0, c.width, c.height).data.some((v, i) => i % 4 === 3 && v > 0))(document.getElementById('rps-chart'))",
        )
        .await;
    assert_eq!(drawn, json!(true));
    let shot = browser.screenshot(&page, "dashboard.png").await;
    rushing.await.expect("the rush");
    println!("screenshot: {}", shot.display());
}

/// Records what the charts write on each canvas since it was last
/// cleared, in `window.labels[canvas id]`.
const RECORD_LABELS: &str = r#"(() => {
  window.labels = {};
  const proto = CanvasRenderingContext2D.prototype;
  const clear = proto.clearRect, fill = proto.fillText;
  proto.clearRect = function (...args) { window.labels[this.canvas.id] = []; return clear.apply(this, args); };
  proto.fillText = function (text, ...rest) {
    (window.labels[this.canvas.id] ||= []).push(String(text));
    return fill.call(this, text, ...rest);
  };
  return true;
})()"#;

/// Bright pixels (a sale's line) right of the y labels of the
/// remaining-units chart; grid lines and labels are dim.
const STOCK_LINE_PIXELS: &str = r#"(c => {
  const data = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  let bright = 0;
  for (let y = 0; y < c.height; y++) {
    for (let x = Math.ceil(64 * devicePixelRatio); x < c.width; x++) {
      const i = (y * c.width + x) * 4;
      if (data[i] > 180 && data[i + 1] > 180 && data[i + 2] > 180 && data[i + 3] > 200) bright++;
    }
  }
  return bright;
})(document.getElementById("stock-chart"))"#;

/// The page's own tiles and charts drawn from half a minute of a quiet
/// engine (one request a second, answered in a few µs): the y labels the
/// charts write, and the latency tiles and legend.
const QUIET_MINUTE: &str = r#"(() => {
  const now = Date.now();
  points = Array.from({ length: 30 }, (_, i) => ({
    at: now - (29 - i) * 1000,
    nodes: [{
      id: "quiet", requests_total: i, in_flight: 0, degrade: "normal", unconfirmed: 0,
      rps: { reserved: 0, sold_out: i % 2, refused: 0, unavailable: 0, error: 0, ok: 1 },
      latency_ms: { p50: 0.004, p99: 0.009, max: 0.02 },
    }],
  }));
  drawCharts();
  renderSnapshot({ ...points[29], sales: lastSales, orders: { reserved: 0, paid: 0, expired: 0, cancelled: 0 } });
  const text = (id) => document.getElementById(id).textContent;
  const yLabels = (id) => window.labels[id].filter((text) => !/^(now|−)/.test(text));
  return {
    rps: yLabels("rps-chart"),
    latency: yLabels("latency-chart"),
    legend: text("latency-legend"),
    tiles: [text("p50"), text("p99"), text("max")],
  };
})()"#;

/// A quiet engine whose dashboard asks for a token: opened with it in its
/// address, the page streams; a sale that sold out before the page opened
/// is drawn on the remaining-units chart (a line at zero); latency of a
/// few µs reads in µs, not "0.00 ms"; at one request a second, the rate
/// chart's y labels are distinct whole numbers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_engine_reads_right_on_a_dashboard_opened_with_its_token() {
    let test = "a_quiet_engine_reads_right_on_a_dashboard_opened_with_its_token";
    let Some(chromium) = browser::chromium(test) else {
        return;
    };
    let seckill = Seckill::start_with(&["--dashboard-token", "wall screen"]).await;
    let sale = seckill
        .open_sale_with(json!({ "name": "sold out early", "stock": 2, "per_user_limit": 1 }))
        .await;
    for buyer in ["early-1", "early-2"] {
        seckill.buy(buyer, &sale).await;
    }
    let trickle = tokio::spawn({
        let (api, sale) = (seckill.api(), sale.clone());
        async move {
            loop {
                api.stock(&sale).await;
                tokio::time::sleep(Duration::from_millis(400)).await;
            }
        }
    });
    let mut browser = Browser::launch(&chromium).await;
    let page = browser
        .open(&seckill.url("/dashboard?token=wall%20screen"))
        .await;
    browser.eval(&page, RECORD_LABELS).await;
    let remaining = format!(
        "document.querySelector('[data-sale-id=\"{sale}\"]')?.querySelector('.remaining').textContent"
    );
    assert_eq!(browser.wait_for(&page, &remaining).await, "0");
    browser
        .wait_for(&page, "Number(document.body.dataset.snapshots) >= 3")
        .await;

    let bright = browser.eval(&page, STOCK_LINE_PIXELS).await;
    assert!(
        bright.as_u64().is_some_and(|n| n > 10),
        "the remaining-units chart draws nothing for the sold-out sale ({bright} bright pixels)"
    );
    let shot = browser.screenshot(&page, "dashboard-quiet.png").await;

    let quiet = browser.eval(&page, QUIET_MINUTE).await;
    let labels = |chart: &str| -> Vec<String> {
        quiet[chart]
            .as_array()
            .unwrap_or_else(|| panic!("{chart} labels: {quiet}"))
            .iter()
            .map(|label| label.as_str().expect("a label").to_string())
            .collect()
    };
    let distinct = |labels: &[String]| {
        labels.len() >= 2
            && labels
                .iter()
                .collect::<std::collections::BTreeSet<_>>()
                .len()
                == labels.len()
    };
    let rps = labels("rps");
    assert!(distinct(&rps), "rate ticks: {rps:?}");
    assert!(
        rps.iter().all(|label| label.parse::<u64>().is_ok()),
        "rate ticks are whole numbers: {rps:?}"
    );
    let latency = labels("latency");
    assert!(distinct(&latency), "latency ticks: {latency:?}");
    assert!(
        latency[1..].iter().all(|label| label.ends_with(" µs")),
        "latency ticks of a few µs: {latency:?}"
    );
    let legend = quiet["legend"].as_str().unwrap_or_default();
    assert!(
        legend.contains("4 µs") && legend.contains("9 µs"),
        "{legend}"
    );
    assert_eq!(quiet["tiles"], json!(["4µs", "9µs", "max 20 µs"]));
    trickle.abort();
    println!(
        "rate ticks {rps:?}, latency ticks {latency:?}; screenshot: {}",
        shot.display()
    );
}
