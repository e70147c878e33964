//! `seckill render` writes a self-contained item page; loaded from a file
//! (another origin than the engine's, as from a CDN) in a real headless
//! Chromium, it shows the live stock and buys through the engine's CORS.

use seckill_test_support::browser::Browser;
use seckill_test_support::*;
use std::process::Command;

fn render(api: &Api, sale: &str, out: &std::path::Path) -> std::process::Output {
    Command::new(seckill_binary())
        .args(["render", "--sale", sale, "--url", &api.base, "--out"])
        .arg(out)
        .output()
        .expect("run seckill render")
}

#[tokio::test]
async fn the_rendered_page_is_self_contained_and_unknown_sales_are_refused() {
    let seckill = Seckill::start().await;
    let sale = seckill
        .open_sale_with(json!({"name": "Concert <front row>", "stock": 5, "price_cents": 12345}))
        .await;
    let out = tempfile::tempdir().expect("an output dir");
    let rendered = render(&seckill, &sale, out.path());
    assert!(rendered.status.success(), "{rendered:?}");
    let page = std::fs::read_to_string(out.path().join(format!("{sale}.html")))
        .expect("the page is written as SALE_ID.html");
    assert!(page.contains("Concert &lt;front row&gt;"));
    assert!(page.contains("123.45"));
    for external in ["src=\"http", "href=\"http", "@import", "url(http"] {
        assert!(!page.contains(external), "the page loads {external}…");
    }

    let unknown = render(&seckill, "no-such-sale", out.path());
    assert_eq!(unknown.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(stderr.contains("404"), "{stderr}");
}

#[tokio::test]
async fn cross_origin_calls_are_answered_for_buyers_routes_only() {
    let seckill = Seckill::start().await;
    let sale = seckill.open_sale(5, 1).await;
    let preflight = |path: String, method: &'static str| {
        let api = seckill.api();
        async move {
            api.call(
                Method::OPTIONS,
                &path,
                &Auth::None,
                Body::Empty,
                &[
                    ("origin", "https://cdn.example"),
                    ("access-control-request-method", method),
                    (
                        "access-control-request-headers",
                        "authorization, idempotency-key",
                    ),
                ],
            )
            .await
        }
    };
    let buy = preflight(format!("/api/v1/sales/{sale}/purchase"), "POST").await;
    buy.assert_status(StatusCode::NO_CONTENT);
    assert_eq!(buy.header("access-control-allow-origin"), Some("*"));
    let allowed = buy
        .header("access-control-allow-headers")
        .unwrap_or_default();
    assert!(allowed.contains("authorization") && allowed.contains("idempotency-key"));

    let admin = preflight(format!("/api/v1/sales/{sale}/report"), "GET").await;
    assert!(admin.header("access-control-allow-origin").is_none());

    let stock = seckill
        .call(
            Method::GET,
            &format!("/api/v1/sales/{sale}/stock"),
            &Auth::None,
            Body::Empty,
            &[("origin", "https://cdn.example")],
        )
        .await;
    stock.expect(StatusCode::OK);
    assert_eq!(stock.header("access-control-allow-origin"), Some("*"));
    let without_origin = seckill
        .get(&format!("/api/v1/sales/{sale}/stock"), &Auth::None)
        .await;
    assert!(
        without_origin
            .header("access-control-allow-origin")
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rendered_page_shows_live_stock_and_buys_in_a_browser() {
    let test = "the_rendered_page_shows_live_stock_and_buys_in_a_browser";
    let Some(chromium) = browser::chromium(test) else {
        return;
    };
    let seckill = Seckill::start().await;
    let sale = seckill
        .open_sale_with(
            json!({"name": "G1234 Beijing-Shanghai 2nd class", "stock": 5, "price_cents": 55300}),
        )
        .await;
    let out = tempfile::tempdir().expect("an output dir");
    assert!(render(&seckill, &sale, out.path()).status.success());
    let file = out.path().join(format!("{sale}.html"));

    let mut browser = Browser::launch(&chromium).await;
    let page = browser.open(&format!("file://{}", file.display())).await;
    let remaining = "document.getElementById('remaining').textContent";
    browser
        .wait_for(&page, &format!("{remaining} === '5'"))
        .await;
    // Someone else buys: the page follows within a second or so.
    seckill.buy("someone-else", &sale).await;
    browser
        .wait_for(&page, &format!("{remaining} === '4'"))
        .await;

    // The buyer pastes a token and clicks: a cross-origin POST with a preflight.
    let token = seckill.user_token("page-buyer");
    browser
        .eval(
            &page,
            &format!(
                "document.getElementById('token').value = {}; document.getElementById('buy').click()",
                json!(token)
            ),
        )
        .await;
    let result = browser
        .wait_for(
            &page,
            "(t => t.startsWith('Reserved') && t)(document.getElementById('result').textContent)",
        )
        .await;
    assert!(
        result.as_str().is_some_and(|r| r.contains("order")),
        "{result}"
    );
    browser
        .wait_for(&page, &format!("{remaining} === '3'"))
        .await;
    let orders = seckill.my_orders("page-buyer", &sale).await;
    assert_eq!(orders.len(), 1, "the page's purchase is the buyer's order");
    browser.screenshot(&page, "item-page.png").await;
}
