//! `seckill serve`: open the store, rebuild stock, listen, drain on signal.

use crate::config::{LogFormat, Resolved, StoreArgs};
use crate::secrets::{self, ADMIN_TOKEN_FILE, JWT_SECRET_FILE};
use anyhow::{Context, Result};
use clap::Args;
use seckill_server::shedding::{DEFAULT_MAX_IN_FLIGHT, DEFAULT_REQUEST_TIMEOUT_MS, Limits};
use seckill_server::{Server, ServerConfig};
use seckill_store::SqliteStore;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Address to serve on; port 0 picks a free one [default: 127.0.0.1:8080].
    #[arg(long, env = "SECKILL_LISTEN")]
    listen: Option<String>,
    /// Requests handled at once; past it, 503 at once instead of queueing
    /// [default: 10000].
    #[arg(long, env = "SECKILL_MAX_IN_FLIGHT")]
    max_in_flight: Option<usize>,
    /// Time limit per request in milliseconds; past it, 503 [default: 10000].
    #[arg(long, env = "SECKILL_REQUEST_TIMEOUT_MS")]
    request_timeout_ms: Option<u64>,
    /// Log lines as `human` text or `json` objects, on stderr [default: human].
    #[arg(long, env = "SECKILL_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormat>,
}

pub fn run(args: ServeArgs) -> Result<()> {
    let resolved = args.store.resolve()?;
    init_logging(
        "info",
        args.log_format
            .or(resolved.file.log_format)
            .unwrap_or_default(),
    );
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?
        .block_on(serve(args, resolved))
}

async fn serve(args: ServeArgs, resolved: Resolved) -> Result<()> {
    let listen = crate::config::listen_address(args.listen.as_deref(), &resolved.file)?;
    let data_dir = resolved.data_dir;
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating data dir {}", data_dir.display()))?;
    let jwt_secret = secrets::load_or_generate(
        &data_dir,
        JWT_SECRET_FILE,
        secrets::given(resolved.file.jwt_secret.as_ref(), "SECKILL_JWT_SECRET"),
    )?;
    let admin_token = secrets::load_or_generate(
        &data_dir,
        ADMIN_TOKEN_FILE,
        secrets::given(resolved.file.admin_token.as_ref(), "SECKILL_ADMIN_TOKEN"),
    )?;

    let limits = Limits {
        max_in_flight: args
            .max_in_flight
            .or(resolved.file.max_in_flight)
            .unwrap_or(DEFAULT_MAX_IN_FLIGHT),
        request_timeout: Duration::from_millis(
            args.request_timeout_ms
                .or(resolved.file.request_timeout_ms)
                .unwrap_or(DEFAULT_REQUEST_TIMEOUT_MS),
        ),
    };
    anyhow::ensure!(
        limits.max_in_flight > 0 && !limits.request_timeout.is_zero(),
        "max_in_flight and request_timeout_ms must be at least 1"
    );
    let server = open_server(&data_dir, &jwt_secret.value, &admin_token.value, limits).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let address = listener.local_addr()?;
    println!("listening on http://{address}");
    for (what, secret) in [
        ("JWT secret", &jwt_secret.file),
        ("admin token", &admin_token.file),
    ] {
        if let Some(path) = secret {
            println!("{what} kept in {}", path.display());
        }
    }
    println!("data in {}", data_dir.display());
    server.serve(listener, shutdown_signal()).await;
    Ok(())
}

/// The embedded engine on `data_dir`: the SQLite store opened, memory rebuilt.
pub async fn open_server(
    data_dir: &Path,
    jwt_secret: &str,
    admin_token: &str,
    limits: Limits,
) -> Result<Server> {
    let store = SqliteStore::open(data_dir)
        .await
        .with_context(|| format!("opening the store in {}", data_dir.display()))?;
    Server::open(
        ServerConfig {
            jwt_secret: jwt_secret.as_bytes().to_vec(),
            admin_token: admin_token.to_string(),
            limits,
        },
        Arc::new(store),
    )
    .await
    .context("loading the store")
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

/// Logs on stderr in `format`; `RUST_LOG` filters (default `level`).
pub fn init_logging(level: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => logs.init(),
        LogFormat::Json => logs.json().with_current_span(false).init(),
    }
}
