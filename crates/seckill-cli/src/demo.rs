//! `seckill demo`: the whole story in one command. An embedded engine on a
//! temporary data dir, a sale of `--stock` tickets, a rush of `--users`
//! distinct people, the outcome and the invariant checks — then the engine
//! keeps serving until Ctrl-C, so the sale can be looked at (the dashboard's
//! URL is printed first, to watch the rush live).

use crate::bench::{verdict, write_outputs};
use crate::config::{DEFAULT_LISTEN, LogFormat};
use crate::secrets::{self, ADMIN_TOKEN_FILE, JWT_SECRET_FILE};
use crate::serve::{init_logging, open_server, shutdown_signal};
use anyhow::{Context, Result};
use clap::Args;
use seckill_bench::api::Api;
use seckill_bench::client::Endpoint;
use seckill_bench::crowd::Crowd;
use seckill_bench::report::thousands;
use seckill_bench::run::{Load, Stop};
use seckill_bench::scenario::{Scenario, Target};
use seckill_bench::{Bench, BenchReport};
use seckill_engine::breaker::BreakerRules;
use seckill_http::ServerConfig;
use seckill_http::auth::{JwtKey, JwtRules};
use seckill_http::dashboard::DashboardRules;
use seckill_http::degrade::AutoRules;
use seckill_http::rate_limit::RateLimitConfig;
use seckill_http::shedding::Limits;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args)]
pub struct DemoArgs {
    /// Distinct people in the crowd, each trying once.
    #[arg(long, default_value_t = 1_000_000)]
    users: usize,
    /// Tickets on sale.
    #[arg(long, default_value_t = 10_000)]
    stock: u64,
    /// Keep-alive connections of the crowd.
    #[arg(long, default_value_t = 100)]
    connections: usize,
    /// Address to serve on; port 0 picks a free one.
    #[arg(long, default_value = DEFAULT_LISTEN)]
    listen: String,
    /// Also write the run's report as JSON to FILE.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Also write a self-contained HTML report with charts to FILE.
    #[arg(long)]
    html: Option<PathBuf>,
}

pub fn run(args: DemoArgs) -> Result<()> {
    init_logging("warn", LogFormat::Human);
    let data = tempfile::Builder::new()
        .prefix("seckill-demo-")
        .tempdir()
        .context("creating a temporary data dir")?;
    let jwt_secret = secrets::load_or_generate(data.path(), JWT_SECRET_FILE, None)?.value;
    let admin_token = secrets::load_or_generate(data.path(), ADMIN_TOKEN_FILE, None)?.value;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let (server, listener) = runtime.block_on(async {
        let config = ServerConfig {
            jwt_secret: jwt_secret.as_bytes().to_vec(),
            jwt: JwtRules {
                key: JwtKey::Secret(jwt_secret.as_bytes().to_vec()),
                issuer: None,
                audience: None,
            },
            admin_token: admin_token.clone(),
            limits: Limits::default(),
            auto_degrade: Some(AutoRules::default()),
            store_breaker: BreakerRules::default(),
            rate_limits: RateLimitConfig::default(),
            tls: None,
            dashboard: DashboardRules::default(),
        };
        let server = open_server(data.path(), config).await?;
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .with_context(|| format!("binding {}", args.listen))?;
        anyhow::Ok((server, listener))
    })?;
    let url = format!("http://{}", listener.local_addr()?);
    let serving = runtime.spawn(server.serve(listener, shutdown_signal()));
    println!(
        "engine on {url}, data in {} (removed on exit)",
        data.path().display()
    );
    println!("watch it live: {url}/dashboard");

    let endpoint = Endpoint::parse(&url)?;
    let sale = runtime
        .block_on(async {
            let mut api = Api::new(&endpoint, Some(&admin_token));
            api.create_sale(&serde_json::json!({
                "name": format!("demo: {} tickets", thousands(args.stock)),
                "stock": args.stock,
                "price_cents": 55300,
            }))
            .await
        })
        .context("creating the demo sale")?;
    println!(
        "sale {} with {} tickets; minting {} user tokens...",
        sale.id,
        thousands(sale.stock),
        thousands(args.users as u64)
    );
    let crowd = Crowd::mint(jwt_secret.as_bytes(), "demo", args.users)?;
    println!(
        "rushing: {} people, {} connections",
        thousands(args.users as u64),
        args.connections
    );
    let started = Instant::now();
    let bench = Bench {
        target: Target::new(
            endpoint,
            Scenario::Rush,
            Some(&sale.id),
            Some(crowd),
            args.users,
            0,
        )?,
        load: Load {
            connections: args.connections,
            threads: 1,
            stop: Stop::Visits(args.users as u64),
            rate: None,
            progress: true,
        },
        admin_token: Some(admin_token.clone()),
        expect_reserved: None,
    };
    let report = bench.run()?;
    println!();
    println!(
        "{}",
        headline(&report, sale.stock, started.elapsed().as_secs_f64())
    );
    print!("{}", report.summary());
    write_outputs(&report, args.json.as_ref(), args.html.as_ref())?;
    let outcome = verdict(&report);

    println!();
    println!("serving on {url} until Ctrl-C; try:");
    println!("  open {url}/dashboard");
    println!("  curl {url}/api/v1/sales/{}/stock", sale.id);
    println!(
        "  curl -H 'Authorization: Bearer {admin_token}' {url}/api/v1/sales/{}/report",
        sale.id
    );
    println!("  curl {url}/metrics");
    runtime
        .block_on(serving)
        .context("the engine stopped abnormally")?;
    outcome
}

/// The one line a newcomer reads first.
fn headline(report: &BenchReport, stock: u64, wall_s: f64) -> String {
    let sold = report.outcomes.reserved;
    let exactly = if sold == stock { "exactly " } else { "" };
    let lasted = report
        .stock_lasted_s
        .map(|s| format!("; the tickets lasted {s:.2}s"))
        .unwrap_or_default();
    format!(
        "sold {exactly}{} of {} tickets to a crowd of {} in {wall_s:.1}s: {} req/s, p99 {:.2}ms{lasted}",
        thousands(sold),
        thousands(stock),
        thousands(report.users),
        thousands(report.rps.round() as u64),
        report.latency_ms.p99,
    )
}
