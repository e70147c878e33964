//! `/dashboard` in a real headless Chromium against an engine under a
//! small rush: the numbers on the page itself must change as the sale
//! sells out. Leaves a screenshot at `target/dashboard.png`.

mod browser;
mod common;

use browser::Browser;
use common::*;
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
