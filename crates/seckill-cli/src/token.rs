//! `seckill token`: user tokens signed with the engine's JWT secret, one per
//! line, for trying the API with curl and for load tests with many users.

use crate::config::StoreArgs;
use crate::secrets::{self, JWT_SECRET_FILE};
use anyhow::Result;
use clap::Args;
use jsonwebtoken::{EncodingKey, Header};
use serde::Serialize;
use std::io::Write;

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

#[derive(Serialize)]
struct Claims<'a> {
    sub: &'a str,
    exp: u64,
}

pub fn run(args: TokenArgs) -> Result<()> {
    let resolved = args.store.resolve()?;
    let secret = match std::env::var("SECKILL_JWT_SECRET")
        .ok()
        .or(resolved.file.jwt_secret)
    {
        Some(secret) if !secret.is_empty() => secret,
        _ => secrets::read_existing(&resolved.data_dir.join(JWT_SECRET_FILE))?.value,
    };
    let key = EncodingKey::from_secret(secret.as_bytes());
    let header = Header::default();
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs()
        + args.ttl_secs;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut print = |sub: &str| -> Result<()> {
        let token = jsonwebtoken::encode(&header, &Claims { sub, exp }, &key)?;
        writeln!(out, "{token}")?;
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
