//! `seckill render`: a sale's item page as one self-contained HTML file,
//! to be served from a CDN. What never changes (name, price, times, limit)
//! is written into the page; the live stock and the buy button are small
//! calls from the browser to the engine at `--url`, cross-origin (the
//! engine answers CORS for the buyer's routes, see the server's `cors`).

use anyhow::{Context, Result, bail};
use clap::Args;
use seckill_bench::api::Api;
use seckill_bench::client::{Endpoint, Request};
use serde::Deserialize;
use std::path::PathBuf;

const TEMPLATE: &str = include_str!("render/item.html");

#[derive(Args)]
pub struct RenderArgs {
    /// The sale to render.
    #[arg(long)]
    sale: String,
    /// Folder to write `SALE_ID.html` into (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// The engine, as the buyers' browsers reach it.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
}

/// The fields of the sale object that the page shows.
#[derive(Deserialize)]
struct Sale {
    id: String,
    name: String,
    stock: u64,
    price_cents: u64,
    starts_at: String,
    ends_at: Option<String>,
    per_user_limit: u64,
    payment_timeout_secs: u64,
}

pub fn run(args: RenderArgs) -> Result<()> {
    let endpoint = Endpoint::parse(&args.url)?;
    let path = format!("/api/v1/sales/{}", args.sale);
    let answer = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?
        .block_on(async {
            Api::new(&endpoint, None)
                .send(&Request::get(&path, None))
                .await
        })
        .with_context(|| format!("reading the sale from {}", args.url))?;
    if answer.status != 200 {
        bail!(
            "GET {path} answered {}: {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        );
    }
    let sale: Sale = serde_json::from_slice(&answer.body).context("parsing the sale")?;
    let page = render(&sale, args.url.trim_end_matches('/'));
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let file = args.out.join(format!("{}.html", file_name(&sale.id)?));
    std::fs::write(&file, page).with_context(|| format!("writing {}", file.display()))?;
    println!("wrote {}", file.display());
    Ok(())
}

fn render(sale: &Sale, api: &str) -> String {
    let config = serde_json::json!({"api": api, "sale_id": sale.id});
    let closes = sale
        .ends_at
        .as_deref()
        .map(|ends| format!(" to {}", when(ends)))
        .unwrap_or_default();
    [
        ("{{name}}", escape(&sale.name)),
        (
            "{{price}}",
            format!("{}.{:02}", sale.price_cents / 100, sale.price_cents % 100),
        ),
        ("{{opens}}", escape(&when(&sale.starts_at))),
        ("{{closes}}", escape(&closes)),
        ("{{limit}}", sale.per_user_limit.to_string()),
        (
            "{{payment_minutes}}",
            sale.payment_timeout_secs.div_ceil(60).to_string(),
        ),
        ("{{stock}}", sale.stock.to_string()),
        // Inside a <script>: `</` must not close it.
        ("{{config}}", config.to_string().replace("</", "<\\/")),
    ]
    .into_iter()
    .fold(TEMPLATE.to_string(), |page, (slot, value)| {
        page.replace(slot, &value)
    })
}

/// `2026-12-01T08:00:00Z` as `2026-12-01 08:00 UTC`.
fn when(rfc3339: &str) -> String {
    match rfc3339.split_once('T') {
        Some((date, time)) if time.len() >= 5 => format!("{date} {} UTC", &time[..5]),
        _ => rfc3339.to_string(),
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The sale id as a file name: ids are ours, but the file system is not
/// the place to trust that.
fn file_name(id: &str) -> Result<&str> {
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        bail!("sale id {id:?} is not a plain file name");
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_holds_the_sale_escaped_and_nothing_from_elsewhere() {
        let sale = Sale {
            id: "s-1".into(),
            name: "<script>alert(1)</script> & co".into(),
            stock: 10,
            price_cents: 55300,
            starts_at: "2026-12-01T08:00:00Z".into(),
            ends_at: None,
            per_user_limit: 1,
            payment_timeout_secs: 600,
        };
        let page = render(&sale, "http://engine:8080");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; co"));
        assert!(page.contains("553.00"));
        assert!(page.contains("2026-12-01 08:00 UTC"));
        assert!(page.contains(r#"{"api":"http://engine:8080","sale_id":"s-1"}"#));
        assert!(!page.contains("{{"), "every slot is filled");
        assert!(!page.contains("src=\"http") && !page.contains("href=\"http"));
        assert!(file_name("../etc").is_err());
    }
}
