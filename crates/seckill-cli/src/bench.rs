//! `seckill bench`: a crowd of distinct users against any seckill URL,
//! measured, then checked; exits non-zero when an invariant fails.

use crate::config::StoreArgs;
use crate::secrets;
use anyhow::{Context, Result, bail};
use clap::Args;
use seckill_bench::crowd::Crowd;
use seckill_bench::run::{Load, Stop};
use seckill_bench::scenario::{Scenario, Target};
use seckill_bench::{Bench, BenchReport};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args)]
pub struct BenchArgs {
    /// The engine to load: http://HOST:PORT (for `get`, the exact URL to GET).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// The sale to rush, browse or buy from.
    #[arg(long)]
    pub sale: Option<String>,
    #[arg(long, value_enum, default_value_t = Scenario::Rush)]
    pub scenario: Scenario,
    /// Distinct users in the crowd.
    #[arg(long, default_value_t = 10_000)]
    pub users: usize,
    /// Keep-alive connections (concurrent clients).
    #[arg(long, default_value_t = 100)]
    pub connections: usize,
    /// Generator threads; one is usually enough and leaves the other cores to the server.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Visits to make [default: every user once; `mixed`: a read and a purchase per user].
    #[arg(long, conflicts_with = "duration")]
    pub requests: Option<u64>,
    /// Run this long instead (e.g. 10s, 1m); visits cycle through the users.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Open model: start this many visits per second whatever the answers
    /// do; latency then counts from when each visit was due.
    #[arg(long)]
    pub rate: Option<f64>,
    /// HS256 secret to mint user tokens with [default: the engine's, from
    /// SECKILL_JWT_SECRET, the config file or the data dir].
    #[arg(long)]
    pub jwt_secret: Option<String>,
    /// Read user tokens (one JWT per line) instead of minting them.
    #[arg(long, conflicts_with = "jwt_secret")]
    pub token_file: Option<PathBuf>,
    /// Minted users are PREFIX-0 … PREFIX-(N-1) [default: a fresh prefix per run].
    #[arg(long)]
    pub user_prefix: Option<String>,
    /// Admin token for the report checks [default: SECKILL_ADMIN_TOKEN, the
    /// config file or the data dir; without one those checks are skipped].
    #[arg(long)]
    pub admin_token: Option<String>,
    /// Lifecycle: percent of buyers who pay; the others let their order expire.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub pay_percent: u8,
    /// Units the run must reserve [default: min(remaining stock, buyers decided by stock)].
    #[arg(long)]
    pub expect_reserved: Option<u64>,
    /// Write the report as JSON to FILE.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write a self-contained HTML report with charts to FILE.
    #[arg(long)]
    pub html: Option<PathBuf>,
    #[command(flatten)]
    pub store: StoreArgs,
}

pub fn run(args: BenchArgs) -> Result<()> {
    let bench = prepare(&args)?;
    let report = bench.run()?;
    print!("{}", report.summary());
    write_outputs(&report, args.json.as_ref(), args.html.as_ref())?;
    verdict(&report)
}

/// Builds the run from the arguments: the crowd's tokens, the target, the load.
fn prepare(args: &BenchArgs) -> Result<Bench> {
    if args.users == 0 || args.connections == 0 || args.threads == 0 {
        bail!("--users, --connections and --threads must be at least 1");
    }
    if let Some(rate) = args.rate
        && !(rate.is_finite() && rate > 0.0)
    {
        bail!("--rate must be a positive number of visits per second");
    }
    let store = args.store.resolve()?.store;
    let crowd = if !args.scenario.buys() {
        None
    } else if let Some(file) = &args.token_file {
        Some(Crowd::read(file)?)
    } else {
        let secret = match &args.jwt_secret {
            Some(secret) => secret.clone(),
            None => secrets::existing_jwt_secret(&store).context(
                "no JWT secret to mint user tokens with (pass --jwt-secret or --token-file)",
            )?,
        };
        let prefix = args.user_prefix.clone().unwrap_or_else(fresh_prefix);
        Some(Crowd::mint(secret.as_bytes(), &prefix, args.users)?)
    };
    let admin_token = args
        .admin_token
        .clone()
        .or_else(|| secrets::existing_admin_token(&store));
    let endpoint = seckill_bench::client::Endpoint::parse(&args.url)?;
    let target = Target::new(
        endpoint,
        args.scenario,
        args.sale.as_deref(),
        crowd,
        args.users,
        args.pay_percent,
    )?;
    let stop = match (args.requests, args.duration) {
        (_, Some(duration)) => Stop::After(duration),
        (Some(requests), None) => Stop::Visits(requests),
        (None, None) => Stop::Visits(args.scenario.default_visits(target.users as u64)),
    };
    Ok(Bench {
        target,
        load: Load {
            connections: args.connections,
            threads: args.threads,
            stop,
            rate: args.rate,
            progress: true,
        },
        admin_token,
        expect_reserved: args.expect_reserved,
    })
}

/// A user prefix no earlier run used, so a second run on the same sale is
/// a new crowd rather than buyers who already hold their limit.
fn fresh_prefix() -> String {
    format!("bench{:08x}", rand::random::<u32>())
}

pub fn write_outputs(
    report: &BenchReport,
    json: Option<&PathBuf>,
    html: Option<&PathBuf>,
) -> Result<()> {
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(report)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = html {
        std::fs::write(path, seckill_bench::html::render(report))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// An error (so a non-zero exit) naming the failed invariants.
pub fn verdict(report: &BenchReport) -> Result<()> {
    if report.invariants.ok {
        return Ok(());
    }
    bail!("invariants failed: {}", report.invariants.failed.join("; "))
}
