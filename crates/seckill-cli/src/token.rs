//! `seckill token`: user tokens signed with the engine's JWT secret, one per
//! line, for trying the API with curl and for load tests with many users.

use crate::config::StoreArgs;
use crate::secrets;
use anyhow::{Context, Result};
use clap::Args;
use jsonwebtoken::EncodingKey;
use std::io::Write;
use std::time::Duration;

#[derive(Args)]
pub struct TokenArgs {
    /// The user id (the token's `sub`).
    user: String,
    /// Print this many tokens, for users USER-0 … USER-(N-1).
    #[arg(long)]
    count: Option<u64>,
    /// Seconds until the tokens expire.
    #[arg(long, default_value_t = 24 * 3600)]
    ttl_secs: u64,
    #[command(flatten)]
    store: StoreArgs,
}

pub fn run(args: TokenArgs) -> Result<()> {
    let secret = secrets::existing_jwt_secret(&args.store.resolve()?.store)?;
    let key = EncodingKey::from_secret(secret.as_bytes()).context("the JWT secret is empty")?;
    let ttl = Duration::from_secs(args.ttl_secs);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut print = |sub: &str| -> Result<()> {
        writeln!(out, "{}", seckill_bench::crowd::mint(&key, sub, ttl)?)?;
        Ok(())
    };
    match args.count {
        None => print(&args.user)?,
        Some(count) => {
            for i in 0..count {
                print(&format!("{}-{i}", args.user))?;
            }
        }
    }
    out.flush()?;
    Ok(())
}
