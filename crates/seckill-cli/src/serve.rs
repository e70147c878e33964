//! `seckill serve`: open the store, rebuild stock, listen, drain on signal.

use crate::config::{FileConfig, LogFormat, Resolved, StoreArgs, Switch};
use crate::node;
use crate::rate_limit::RateLimitArgs;
use crate::secrets::{self, ADMIN_TOKEN_FILE, JWT_SECRET_FILE};
use anyhow::{Context, Result};
use clap::Args;
use seckill_cluster::authority::{AuthorityConfig, Durability};
use seckill_cluster::node::{Cluster, ClusterConfig};
use seckill_engine::breaker::{BreakerRules, DEFAULT_BREAKER_FAILURES, DEFAULT_BREAKER_OPEN_MS};
use seckill_http::auth::{JwtKey, JwtRules};
use seckill_http::dashboard::{DEFAULT_MAX_STREAMS, DashboardRules};
use seckill_http::degrade::AutoRules;
use seckill_http::shedding::{DEFAULT_MAX_IN_FLIGHT, DEFAULT_REQUEST_TIMEOUT_MS, Limits};
use seckill_http::waiting::{self, Waiting};
use seckill_http::{Server, ServerConfig};
use seckill_sqlite::SqliteStore;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
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
    /// Verify user JWTs with this PEM public key (RSA → RS256, EC P-256 →
    /// ES256) instead of the HS256 secret [default: HS256 with the secret].
    #[arg(long, env = "SECKILL_JWT_PUBLIC_KEY")]
    jwt_public_key: Option<PathBuf>,
    /// Require this `iss` claim in user JWTs [default: not checked].
    #[arg(long, env = "SECKILL_JWT_ISSUER")]
    jwt_issuer: Option<String>,
    /// Require this `aud` claim in user JWTs [default: not checked].
    #[arg(long, env = "SECKILL_JWT_AUDIENCE")]
    jwt_audience: Option<String>,
    /// Failed store calls in a row that open its circuit breaker [default: 5].
    #[arg(long, env = "SECKILL_BREAKER_FAILURES")]
    breaker_failures: Option<u32>,
    /// How long an open breaker fails calls at once before a probe, in ms [default: 5000].
    #[arg(long, env = "SECKILL_BREAKER_OPEN_MS")]
    breaker_open_ms: Option<u64>,
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key) [default: plain HTTP].
    #[arg(long, env = "SECKILL_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "SECKILL_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Dashboard event streams open at once; past it, 503 [default: 64].
    #[arg(long, env = "SECKILL_DASHBOARD_MAX_STREAMS")]
    dashboard_max_streams: Option<usize>,
    /// Ask for this token on /dashboard and its events, as a bearer token
    /// or `?token=` [default: the dashboard is open to all].
    #[arg(long, env = "SECKILL_DASHBOARD_TOKEN")]
    dashboard_token: Option<String>,
    /// Log lines as `human` text or `json` objects, on stderr [default: human].
    #[arg(long, env = "SECKILL_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormat>,
    #[command(flatten)]
    degrade: DegradeArgs,
    #[command(flatten)]
    rate_limit: RateLimitArgs,
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// Cluster mode: with `--redis` and `--database` this engine is one node of
/// a cluster (Redis holds the stock, the database the orders).
#[derive(Args)]
struct ClusterArgs {
    /// Redis, the stock authority: `redis://HOST:PORT[/DB]`, or
    /// `redis+sentinel://HOST:PORT[,HOST:PORT…]/SERVICE_NAME` [default: embedded mode].
    #[arg(long, env = "SECKILL_REDIS_URL", requires = "database")]
    redis: Option<String>,
    /// The order database: `postgres://…` or `mysql://…` (needs --redis).
    #[arg(long, env = "SECKILL_DATABASE_URL", requires = "redis")]
    database: Option<String>,
    /// This node's name, unique in the cluster [default: its listen address].
    #[arg(long, env = "SECKILL_NODE_ID")]
    node_id: Option<String>,
    /// Units a node may ask Redis for beyond its even share [default: 10].
    #[arg(long, env = "SECKILL_BUFFER")]
    buffer: Option<u64>,
    /// What a 202 waits for in Redis: `none`, `aof` (fsynced to the
    /// append-only file) or `replicas[:N]` [default: none].
    #[arg(long, env = "SECKILL_REDIS_DURABILITY")]
    redis_durability: Option<String>,
}

/// Units a node may ask Redis for beyond its share, unless configured.
const DEFAULT_BUFFER: u64 = 10;

impl ClusterArgs {
    /// The cluster to join, or `None` in embedded mode.
    fn resolve(
        self,
        file: &FileConfig,
        address: SocketAddr,
        redis_breaker: BreakerRules,
    ) -> Result<Option<ClusterConfig>> {
        let redis = self.redis.or_else(|| file.redis.clone());
        let database = self.database.or_else(|| file.database.clone());
        let (redis, database_url) = match (redis, database) {
            (Some(redis), Some(database)) => (redis, database),
            (None, None) => return Ok(None),
            _ => anyhow::bail!("cluster mode needs both redis and database"),
        };
        let durability: Durability = self
            .redis_durability
            .or_else(|| file.redis_durability.clone())
            .map(|d| d.parse())
            .transpose()
            .map_err(|e| anyhow::anyhow!("redis_durability: {e}"))?
            .unwrap_or_default();
        let mut redis = AuthorityConfig::new(redis);
        redis.durability = durability;
        Ok(Some(ClusterConfig {
            redis,
            database_url,
            node_id: self
                .node_id
                .or_else(|| file.node_id.clone())
                .unwrap_or_else(|| address.to_string()),
            buffer: self.buffer.or(file.buffer).unwrap_or(DEFAULT_BUFFER),
            redis_breaker,
        }))
    }
}

/// Automatic degradation: when a kind of traffic answers too many 5xx or
/// too slowly for a window, step down a level; step back up after a
/// longer healthy spell.
#[derive(Args)]
struct DegradeArgs {
    /// Step the degrade level down and up automatically [default: on].
    #[arg(long, env = "SECKILL_AUTO_DEGRADE")]
    auto_degrade: Option<Switch>,
    /// Share of 5xx answers (0 to 1) that makes a kind of traffic unhealthy [default: 0.2].
    #[arg(long, env = "SECKILL_DEGRADE_ERROR_RATE")]
    degrade_error_rate: Option<f64>,
    /// p99 latency in ms that makes a kind of traffic unhealthy [default: 2000].
    #[arg(long, env = "SECKILL_DEGRADE_P99_MS")]
    degrade_p99_ms: Option<u64>,
    /// Seconds unhealthy in a row before stepping down [default: 5].
    #[arg(long, env = "SECKILL_DEGRADE_WINDOW_SECS")]
    degrade_window_secs: Option<u32>,
    /// Seconds healthy in a row before stepping back up [default: 30].
    #[arg(long, env = "SECKILL_DEGRADE_RECOVER_SECS")]
    degrade_recover_secs: Option<u32>,
    /// Requests per second of a kind below which it is not judged [default: 50].
    #[arg(long, env = "SECKILL_DEGRADE_MIN_REQUESTS")]
    degrade_min_requests: Option<u64>,
}

impl DegradeArgs {
    /// The rules, or `None` when automatic degradation is off.
    fn resolve(self, file: &FileConfig) -> Result<Option<AutoRules>> {
        if self.auto_degrade.or(file.auto_degrade) == Some(Switch::Off) {
            return Ok(None);
        }
        let defaults = AutoRules::default();
        let rules = AutoRules {
            error_rate: self
                .degrade_error_rate
                .or(file.degrade_error_rate)
                .unwrap_or(defaults.error_rate),
            p99: self
                .degrade_p99_ms
                .or(file.degrade_p99_ms)
                .map_or(defaults.p99, Duration::from_millis),
            window_secs: self
                .degrade_window_secs
                .or(file.degrade_window_secs)
                .unwrap_or(defaults.window_secs),
            recover_secs: self
                .degrade_recover_secs
                .or(file.degrade_recover_secs)
                .unwrap_or(defaults.recover_secs),
            min_requests: self
                .degrade_min_requests
                .or(file.degrade_min_requests)
                .unwrap_or(defaults.min_requests),
        };
        anyhow::ensure!(
            (0.0..=1.0).contains(&rules.error_rate),
            "degrade_error_rate must be between 0 and 1"
        );
        anyhow::ensure!(
            rules.window_secs > 0 && rules.recover_secs > 0 && !rules.p99.is_zero(),
            "degrade_window_secs, degrade_recover_secs and degrade_p99_ms must be at least 1"
        );
        Ok(Some(rules))
    }
}

/// The cluster's variables carry the names of the HTTP contract. A node
/// still given the earlier names must not quietly start as an embedded
/// engine of its own.
fn refuse_old_cluster_variables() -> Result<()> {
    for (old, new) in [
        ("SECKILL_REDIS", "SECKILL_REDIS_URL"),
        ("SECKILL_DATABASE", "SECKILL_DATABASE_URL"),
    ] {
        anyhow::ensure!(
            std::env::var_os(old).is_none(),
            "{old} is set, but the variable is {new}: rename it"
        );
    }
    Ok(())
}

pub fn run(args: ServeArgs) -> Result<()> {
    refuse_old_cluster_variables()?;
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
    let store_breaker = BreakerRules {
        failures: args
            .breaker_failures
            .or(resolved.file.breaker_failures)
            .unwrap_or(DEFAULT_BREAKER_FAILURES),
        open_for: Duration::from_millis(
            args.breaker_open_ms
                .or(resolved.file.breaker_open_ms)
                .unwrap_or(DEFAULT_BREAKER_OPEN_MS),
        ),
    };
    anyhow::ensure!(
        store_breaker.failures > 0 && !store_breaker.open_for.is_zero(),
        "breaker_failures and breaker_open_ms must be at least 1"
    );
    let dashboard = DashboardRules {
        max_streams: args
            .dashboard_max_streams
            .or(resolved.file.dashboard_max_streams)
            .unwrap_or(DEFAULT_MAX_STREAMS),
        token: args
            .dashboard_token
            .or_else(|| resolved.file.dashboard_token.clone()),
    };
    anyhow::ensure!(
        dashboard.max_streams > 0,
        "dashboard_max_streams must be at least 1"
    );
    anyhow::ensure!(
        dashboard
            .token
            .as_ref()
            .is_none_or(|token| !token.is_empty()),
        "dashboard_token must not be empty (leave it unset for an open dashboard)"
    );
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let address = listener.local_addr()?;
    let cluster = args
        .cluster
        .resolve(&resolved.file, address, store_breaker)?;
    let auto_degrade = args.degrade.resolve(&resolved.file)?;
    let rate_limits = args.rate_limit.resolve(&resolved.file)?;
    let tls = match (
        args.tls_cert.or(resolved.file.tls_cert),
        args.tls_key.or(resolved.file.tls_key),
    ) {
        (Some(cert), Some(key)) => Some(seckill_http::tls::acceptor(&cert, &key)?),
        (None, None) => None,
        _ => anyhow::bail!("tls_cert and tls_key go together"),
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let jwt_key = match args.jwt_public_key.or(resolved.file.jwt_public_key) {
        Some(path) => JwtKey::PublicKeyPem(
            std::fs::read(&path)
                .with_context(|| format!("reading the JWT public key {}", path.display()))?,
        ),
        None => JwtKey::Secret(jwt_secret.value.as_bytes().to_vec()),
    };
    let config = ServerConfig {
        jwt_secret: jwt_secret.value.as_bytes().to_vec(),
        jwt: JwtRules {
            key: jwt_key,
            issuer: args.jwt_issuer.or(resolved.file.jwt_issuer),
            audience: args.jwt_audience.or(resolved.file.jwt_audience),
        },
        admin_token: admin_token.value.clone(),
        limits,
        auto_degrade,
        store_breaker,
        rate_limits,
        tls,
        dashboard,
    };
    let node_id = cluster.as_ref().map(|cluster| cluster.node_id.clone());
    let started = || {
        println!("listening on {scheme}://{address}");
        if let Some(node_id) = &node_id {
            println!("cluster node {node_id}");
        }
        for (what, secret) in [
            ("JWT secret", &jwt_secret.file),
            ("admin token", &admin_token.file),
        ] {
            if let Some(path) = secret {
                println!("{what} kept in {}", path.display());
            }
        }
        println!("data in {}", data_dir.display());
    };
    let Some(cluster) = cluster else {
        let server = open_server(&data_dir, config).await?;
        started();
        server.serve(listener, shutdown_signal()).await;
        return Ok(());
    };
    // Listening first: the node answers (not ready) while it waits.
    started();
    let Some((server, node)) = join_cluster(&listener, cluster, config).await? else {
        return Ok(());
    };
    let upkeep = node.start(Arc::clone(server.market()));
    server.serve(listener, shutdown_signal()).await;
    upkeep.iter().for_each(tokio::task::JoinHandle::abort);
    node.leave().await;
    Ok(())
}

/// The embedded engine on `data_dir`: the SQLite store opened, memory rebuilt.
pub async fn open_server(data_dir: &Path, config: ServerConfig) -> Result<Server> {
    let store = SqliteStore::open(data_dir)
        .await
        .with_context(|| format!("opening the store in {}", data_dir.display()))?;
    Server::open(config, Arc::new(store), None)
        .await
        .context("opening the engine")
}

/// One node of a cluster: Redis and the database reached, memory loaded.
/// Until then the node answers on `listener` that it is not ready, and
/// waits for them; `None` when stopped meanwhile.
async fn join_cluster(
    listener: &tokio::net::TcpListener,
    cluster: ClusterConfig,
    config: ServerConfig,
) -> Result<Option<(Server, Arc<Cluster>)>> {
    let waiting = Arc::new(Waiting::default());
    let tls = config.tls.clone();
    let opening = node::open_node(config, cluster, &waiting);
    tokio::select! {
        opened = waiting::answer_until(listener, tls, Arc::clone(&waiting), opening) => {
            Ok(Some(opened?))
        }
        () = shutdown_signal() => Ok(None),
    }
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
