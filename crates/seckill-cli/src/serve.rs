//! `seckill serve`: open the store, rebuild stock, listen, drain on signal.

use crate::config::{DEFAULT_LISTEN, Layered, LogFormat, StoreArgs, Switch};
use crate::node;
use crate::rate_limit::RateLimitSettings;
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
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    settings: Layered<ServeSettings>,
    #[command(flatten)]
    degrade: Layered<DegradeSettings>,
    #[command(flatten)]
    rate_limit: Layered<RateLimitSettings>,
    #[command(flatten)]
    cluster: Layered<ClusterSettings>,
}

/// The engine's address, limits, authentication, TLS, dashboard and logs.
#[derive(Args, Serialize, Deserialize)]
#[serde(default = "crate::config::defaults")]
pub struct ServeSettings {
    /// Address to serve on; port 0 picks a free one.
    #[arg(long, env = "SECKILL_LISTEN", default_value = DEFAULT_LISTEN)]
    listen: String,
    /// Requests handled at once; past it, 503 at once instead of queueing.
    #[arg(long, env = "SECKILL_MAX_IN_FLIGHT", default_value_t = DEFAULT_MAX_IN_FLIGHT)]
    max_in_flight: usize,
    /// Time limit per request in milliseconds; past it, 503.
    #[arg(long, env = "SECKILL_REQUEST_TIMEOUT_MS", default_value_t = DEFAULT_REQUEST_TIMEOUT_MS)]
    request_timeout_ms: u64,
    /// Verify user JWTs with this PEM public key (RSA → RS256, EC P-256 →
    /// ES256) instead of HS256 with the secret.
    #[arg(long, env = "SECKILL_JWT_PUBLIC_KEY")]
    jwt_public_key: Option<PathBuf>,
    /// Require this `iss` claim in user JWTs (unset: not checked).
    #[arg(long, env = "SECKILL_JWT_ISSUER")]
    jwt_issuer: Option<String>,
    /// Require this `aud` claim in user JWTs (unset: not checked).
    #[arg(long, env = "SECKILL_JWT_AUDIENCE")]
    jwt_audience: Option<String>,
    /// Failed store calls in a row that open its circuit breaker.
    #[arg(long, env = "SECKILL_BREAKER_FAILURES", default_value_t = DEFAULT_BREAKER_FAILURES)]
    breaker_failures: u32,
    /// How long an open breaker fails calls at once before a probe, in ms.
    #[arg(long, env = "SECKILL_BREAKER_OPEN_MS", default_value_t = DEFAULT_BREAKER_OPEN_MS)]
    breaker_open_ms: u64,
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key;
    /// unset: plain HTTP).
    #[arg(long, env = "SECKILL_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "SECKILL_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Dashboard event streams open at once; past it, 503.
    #[arg(long, env = "SECKILL_DASHBOARD_MAX_STREAMS", default_value_t = DEFAULT_MAX_STREAMS)]
    dashboard_max_streams: usize,
    /// Ask for this token on /dashboard and its events, as a bearer token
    /// or `?token=` (unset: the dashboard is open to all).
    #[arg(long, env = "SECKILL_DASHBOARD_TOKEN")]
    dashboard_token: Option<String>,
    /// Log lines as `human` text or `json` objects, on stderr.
    #[arg(long, env = "SECKILL_LOG_FORMAT", value_enum, default_value_t = LogFormat::default())]
    log_format: LogFormat,
}

impl ServeSettings {
    fn listen(&self) -> Result<SocketAddr> {
        self.listen
            .parse()
            .with_context(|| format!("listen address {:?} is not HOST:PORT", self.listen))
    }

    fn limits(&self) -> Result<Limits> {
        let limits = Limits {
            max_in_flight: self.max_in_flight,
            request_timeout: Duration::from_millis(self.request_timeout_ms),
        };
        anyhow::ensure!(
            limits.max_in_flight > 0 && !limits.request_timeout.is_zero(),
            "max_in_flight and request_timeout_ms must be at least 1"
        );
        Ok(limits)
    }

    fn store_breaker(&self) -> Result<BreakerRules> {
        let rules = BreakerRules {
            failures: self.breaker_failures,
            open_for: Duration::from_millis(self.breaker_open_ms),
        };
        anyhow::ensure!(
            rules.failures > 0 && !rules.open_for.is_zero(),
            "breaker_failures and breaker_open_ms must be at least 1"
        );
        Ok(rules)
    }

    fn dashboard(&self) -> Result<DashboardRules> {
        anyhow::ensure!(
            self.dashboard_max_streams > 0,
            "dashboard_max_streams must be at least 1"
        );
        anyhow::ensure!(
            self.dashboard_token
                .as_ref()
                .is_none_or(|token| !token.is_empty()),
            "dashboard_token must not be empty (leave it unset for an open dashboard)"
        );
        Ok(DashboardRules {
            max_streams: self.dashboard_max_streams,
            token: self.dashboard_token.clone(),
        })
    }

    fn tls(&self) -> Result<Option<tokio_rustls::TlsAcceptor>> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Ok(Some(seckill_http::tls::acceptor(cert, key)?)),
            (None, None) => Ok(None),
            _ => anyhow::bail!("tls_cert and tls_key go together"),
        }
    }

    /// How user JWTs are checked; `secret` is the HS256 key unless a
    /// public key is configured.
    fn jwt(&self, secret: &str) -> Result<JwtRules> {
        let key = match &self.jwt_public_key {
            Some(path) => JwtKey::PublicKeyPem(
                std::fs::read(path)
                    .with_context(|| format!("reading the JWT public key {}", path.display()))?,
            ),
            None => JwtKey::Secret(secret.as_bytes().to_vec()),
        };
        Ok(JwtRules {
            key,
            issuer: self.jwt_issuer.clone(),
            audience: self.jwt_audience.clone(),
        })
    }
}

/// Cluster mode: with `--redis` and `--database` this engine is one node of
/// a cluster (Redis holds the stock, the database the orders).
#[derive(Args, Serialize, Deserialize)]
#[serde(default = "crate::config::defaults")]
pub struct ClusterSettings {
    /// Redis, the stock authority: `redis://HOST:PORT[/DB]`, or
    /// `redis+sentinel://HOST:PORT[,HOST:PORT…]/SERVICE_NAME` (unset:
    /// embedded mode).
    #[arg(long, env = "SECKILL_REDIS_URL", requires = "database")]
    redis: Option<String>,
    /// The order database: `postgres://…` or `mysql://…` (needs --redis).
    #[arg(long, env = "SECKILL_DATABASE_URL", requires = "redis")]
    database: Option<String>,
    /// This node's name, unique in the cluster (unset: its listen address).
    #[arg(long, env = "SECKILL_NODE_ID")]
    node_id: Option<String>,
    /// Units a node may ask Redis for beyond its even share.
    #[arg(long, env = "SECKILL_BUFFER", default_value_t = DEFAULT_BUFFER)]
    buffer: u64,
    /// What a 202 waits for in Redis: `none`, `aof` (fsynced to the
    /// append-only file) or `replicas[:N]`.
    #[arg(long, env = "SECKILL_REDIS_DURABILITY", default_value_t = Durability::default().to_string())]
    redis_durability: String,
}

/// Units a node may ask Redis for beyond its share, unless configured.
const DEFAULT_BUFFER: u64 = 10;

impl ClusterSettings {
    /// The cluster to join, or `None` in embedded mode.
    fn config(
        self,
        address: SocketAddr,
        redis_breaker: BreakerRules,
    ) -> Result<Option<ClusterConfig>> {
        let (redis, database_url) = match (self.redis, self.database) {
            (Some(redis), Some(database)) => (redis, database),
            (None, None) => return Ok(None),
            _ => anyhow::bail!("cluster mode needs both redis and database"),
        };
        let mut redis = AuthorityConfig::new(redis);
        redis.durability = self
            .redis_durability
            .parse()
            .map_err(|e| anyhow::anyhow!("redis_durability: {e}"))?;
        Ok(Some(ClusterConfig {
            redis,
            database_url,
            node_id: self.node_id.unwrap_or_else(|| address.to_string()),
            buffer: self.buffer,
            redis_breaker,
        }))
    }
}

/// Automatic degradation: when a kind of traffic answers too many 5xx or
/// too slowly for a window, step down a level; step back up after a
/// longer healthy spell.
#[derive(Args, Serialize, Deserialize)]
#[serde(default = "crate::config::defaults")]
pub struct DegradeSettings {
    /// Step the degrade level down and up automatically.
    #[arg(long, env = "SECKILL_AUTO_DEGRADE", value_enum, default_value_t = Switch::On)]
    auto_degrade: Switch,
    /// Share of 5xx answers (0 to 1) that makes a kind of traffic unhealthy.
    #[arg(long, env = "SECKILL_DEGRADE_ERROR_RATE", default_value_t = AutoRules::default().error_rate)]
    degrade_error_rate: f64,
    /// p99 latency in ms that makes a kind of traffic unhealthy.
    #[arg(long, env = "SECKILL_DEGRADE_P99_MS", default_value_t = millis(AutoRules::default().p99))]
    degrade_p99_ms: u64,
    /// Seconds unhealthy in a row before stepping down.
    #[arg(long, env = "SECKILL_DEGRADE_WINDOW_SECS", default_value_t = AutoRules::default().window_secs)]
    degrade_window_secs: u32,
    /// Seconds healthy in a row before stepping back up.
    #[arg(long, env = "SECKILL_DEGRADE_RECOVER_SECS", default_value_t = AutoRules::default().recover_secs)]
    degrade_recover_secs: u32,
    /// Requests per second of a kind below which it is not judged.
    #[arg(long, env = "SECKILL_DEGRADE_MIN_REQUESTS", default_value_t = AutoRules::default().min_requests)]
    degrade_min_requests: u64,
}

/// A default duration as the whole milliseconds a setting states it in.
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl DegradeSettings {
    /// The rules, or `None` when automatic degradation is off.
    fn rules(&self) -> Result<Option<AutoRules>> {
        if self.auto_degrade == Switch::Off {
            return Ok(None);
        }
        let rules = AutoRules {
            error_rate: self.degrade_error_rate,
            p99: Duration::from_millis(self.degrade_p99_ms),
            window_secs: self.degrade_window_secs,
            recover_secs: self.degrade_recover_secs,
            min_requests: self.degrade_min_requests,
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
    let settings = args.settings.resolve(&resolved.file)?;
    let auto_degrade = args.degrade.resolve(&resolved.file)?.rules()?;
    let rate_limits = args.rate_limit.resolve(&resolved.file)?.config()?;
    let cluster = args.cluster.resolve(&resolved.file)?;
    init_logging("info", settings.log_format);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?
        .block_on(serve(
            settings,
            resolved.store,
            cluster,
            auto_degrade,
            rate_limits,
        ))
}

async fn serve(
    settings: ServeSettings,
    store: crate::config::StoreSettings,
    cluster: ClusterSettings,
    auto_degrade: Option<AutoRules>,
    rate_limits: seckill_http::rate_limit::RateLimitConfig,
) -> Result<()> {
    let listen = settings.listen()?;
    let limits = settings.limits()?;
    let store_breaker = settings.store_breaker()?;
    let dashboard = settings.dashboard()?;
    let tls = settings.tls()?;
    let data_dir = store.data_dir;
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating data dir {}", data_dir.display()))?;
    let jwt_secret = secrets::load_or_generate(
        &data_dir,
        JWT_SECRET_FILE,
        secrets::given(store.jwt_secret.as_ref(), "SECKILL_JWT_SECRET"),
    )?;
    let admin_token = secrets::load_or_generate(
        &data_dir,
        ADMIN_TOKEN_FILE,
        secrets::given(store.admin_token.as_ref(), "SECKILL_ADMIN_TOKEN"),
    )?;
    let jwt = settings.jwt(&jwt_secret.value)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let address = listener.local_addr()?;
    let cluster = cluster.config(address, store_breaker)?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let config = ServerConfig {
        jwt_secret: jwt_secret.value.as_bytes().to_vec(),
        jwt,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigFile;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        settings: Layered<ServeSettings>,
        #[command(flatten)]
        degrade: Layered<DegradeSettings>,
        #[command(flatten)]
        cluster: Layered<ClusterSettings>,
    }

    fn resolve(flags: &[&str], file: &str) -> (ServeSettings, DegradeSettings, ClusterSettings) {
        let cli = Cli::try_parse_from(std::iter::once("serve").chain(flags.iter().copied()))
            .expect("the flags parse");
        let file = ConfigFile::from_text(file).expect("the file reads");
        (
            cli.settings.resolve(&file).expect("the settings resolve"),
            cli.degrade.resolve(&file).expect("the settings resolve"),
            cli.cluster.resolve(&file).expect("the settings resolve"),
        )
    }

    #[test]
    fn flags_win_over_the_file_which_wins_over_the_defaults() {
        let file = "listen = '127.0.0.1:9000'\nmax_in_flight = 5\nrequest_timeout_ms = 9\n\
                    jwt_issuer = 'file'\nlog_format = 'json'\nauto_degrade = 'off'\n\
                    degrade_window_secs = 7\nbuffer = 3";
        let flags = ["--listen", "127.0.0.1:9100", "--max-in-flight", "7"];
        let (settings, degrade, cluster) = resolve(&flags, file);
        assert_eq!(settings.listen().unwrap().port(), 9100);
        assert_eq!(settings.max_in_flight, 7);
        assert_eq!(settings.request_timeout_ms, 9);
        assert_eq!(settings.jwt_issuer.as_deref(), Some("file"));
        assert_eq!(settings.log_format, LogFormat::Json);
        assert_eq!(settings.breaker_failures, DEFAULT_BREAKER_FAILURES);
        assert_eq!(settings.jwt_audience, None);
        assert!(degrade.rules().unwrap().is_none());
        assert_eq!(degrade.degrade_window_secs, 7);
        assert_eq!(cluster.buffer, 3);
        let (settings, degrade, _) = resolve(&["--auto-degrade", "on"], file);
        assert_eq!(settings.listen().unwrap().port(), 9000);
        assert_eq!(degrade.rules().unwrap().unwrap().window_secs, 7);
    }

    /// With neither flags nor a file, `serve` builds what the engine's
    /// own defaults are.
    #[test]
    fn the_defaults_are_the_engines() {
        let (settings, degrade, cluster) = resolve(&[], "");
        assert_eq!(settings.listen().unwrap().to_string(), DEFAULT_LISTEN);
        let limits = settings.limits().unwrap();
        assert_eq!(limits.max_in_flight, Limits::default().max_in_flight);
        assert_eq!(limits.request_timeout, Limits::default().request_timeout);
        let breaker = settings.store_breaker().unwrap();
        assert_eq!(breaker.failures, BreakerRules::default().failures);
        assert_eq!(breaker.open_for, BreakerRules::default().open_for);
        let dashboard = settings.dashboard().unwrap();
        assert_eq!(dashboard.max_streams, DashboardRules::default().max_streams);
        assert_eq!(dashboard.token, None);
        assert!(settings.tls().unwrap().is_none());
        assert_eq!(settings.log_format, LogFormat::Human);
        let rules = degrade.rules().unwrap().expect("on by default");
        let engine = AutoRules::default();
        assert_eq!(
            (rules.error_rate, rules.p99, rules.window_secs),
            (engine.error_rate, engine.p99, engine.window_secs)
        );
        assert_eq!(
            (rules.recover_secs, rules.min_requests),
            (engine.recover_secs, engine.min_requests)
        );
        let address: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert!(
            cluster
                .config(address, BreakerRules::default())
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn bad_settings_are_refused_by_name() {
        fn error<T>(result: Result<T>) -> String {
            format!("{:#}", result.err().expect("refused"))
        }
        let file = |text: &str| resolve(&[], text);
        let address: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let breaker = BreakerRules::default();
        assert!(error(file("listen = 'nonsense'").0.listen()).contains("HOST:PORT"));
        assert!(error(file("tls_cert = 'cert.pem'").0.tls()).contains("go together"));
        assert!(error(file("degrade_error_rate = 2.0").1.rules()).contains("between 0 and 1"));
        let cluster = file("redis = 'redis://127.0.0.1'").2;
        assert!(error(cluster.config(address, breaker)).contains("both"));
        let cluster = file("redis = 'r'\ndatabase = 'd'\nredis_durability = 'never'").2;
        assert!(error(cluster.config(address, breaker)).contains("redis_durability"));
        for text in [
            "log_format = 'xml'",
            "max_in_flight = -1",
            "auto_degrade = 'maybe'",
        ] {
            assert!(error(ConfigFile::from_text(text)).contains(text), "{text}");
        }
    }
}
