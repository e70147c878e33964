//! Configuration: a TOML file (`--config`), then `SECKILL_*` environment
//! variables, then flags; the later wins. The names are an interface:
//! operators' scripts and files depend on them.

use anyhow::{Context, Result};
use clap::Args;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "./data";

/// Where the engine keeps its state, shared by every subcommand that needs it.
#[derive(Args, Debug, Clone)]
pub struct StoreArgs {
    /// TOML configuration file (keys: listen, data_dir, jwt_secret,
    /// admin_token, max_in_flight, request_timeout_ms, jwt_public_key,
    /// jwt_issuer, jwt_audience, breaker_failures, breaker_open_ms,
    /// tls_cert, tls_key, auto_degrade, degrade_error_rate,
    /// degrade_p99_ms, degrade_window_secs, degrade_recover_secs,
    /// degrade_min_requests, rate_algorithm, user_rate, user_burst, ip_rate,
    /// ip_burst, global_rate, trusted_proxies, rate_limited_routes, redis,
    /// database, node_id, buffer, redis_durability, log_format,
    /// dashboard_max_streams, dashboard_token).
    #[arg(long, env = "SECKILL_CONFIG")]
    pub config: Option<PathBuf>,
    /// Embedded store folder [default: ./data].
    #[arg(long, env = "SECKILL_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

/// The keys of the configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub jwt_secret: Option<String>,
    pub admin_token: Option<String>,
    pub max_in_flight: Option<usize>,
    pub request_timeout_ms: Option<u64>,
    pub jwt_public_key: Option<PathBuf>,
    pub jwt_issuer: Option<String>,
    pub jwt_audience: Option<String>,
    pub breaker_failures: Option<u32>,
    pub breaker_open_ms: Option<u64>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub auto_degrade: Option<Switch>,
    pub degrade_error_rate: Option<f64>,
    pub degrade_p99_ms: Option<u64>,
    pub degrade_window_secs: Option<u32>,
    pub degrade_recover_secs: Option<u32>,
    pub degrade_min_requests: Option<u64>,
    pub rate_algorithm: Option<String>,
    pub user_rate: Option<u32>,
    pub user_burst: Option<u32>,
    pub ip_rate: Option<u32>,
    pub ip_burst: Option<u32>,
    pub global_rate: Option<u32>,
    pub trusted_proxies: Option<Vec<String>>,
    pub rate_limited_routes: Option<Vec<String>>,
    pub log_format: Option<LogFormat>,
    pub redis: Option<String>,
    pub database: Option<String>,
    pub node_id: Option<String>,
    pub buffer: Option<u64>,
    pub redis_durability: Option<String>,
    pub dashboard_max_streams: Option<usize>,
    pub dashboard_token: Option<String>,
}

/// A feature turned on or off, in flags and in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Switch {
    On,
    Off,
}

/// How log lines are written to stderr.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One readable line per event.
    #[default]
    Human,
    /// One JSON object per event, for log collectors.
    Json,
}

impl FileConfig {
    pub fn read(path: Option<&Path>) -> Result<Self> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing config {}", path.display()))
    }
}

/// Settings shared by `serve` and `token`, resolved from all three sources.
pub struct Resolved {
    pub file: FileConfig,
    pub data_dir: PathBuf,
}

impl StoreArgs {
    pub fn resolve(&self) -> Result<Resolved> {
        let file = FileConfig::read(self.config.as_deref())?;
        let data_dir = self
            .data_dir
            .clone()
            .or_else(|| file.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        Ok(Resolved { file, data_dir })
    }
}

/// The listen address: flag or `SECKILL_LISTEN`, else the file, else the default.
pub fn listen_address(flag_or_env: Option<&str>, file: &FileConfig) -> Result<SocketAddr> {
    let text = flag_or_env
        .or(file.listen.as_deref())
        .unwrap_or(DEFAULT_LISTEN);
    text.parse()
        .with_context(|| format!("listen address {text:?} is not HOST:PORT"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_env_win_over_the_file_which_wins_over_defaults() {
        let file: FileConfig = toml::from_str("listen = '127.0.0.1:9000'").unwrap();
        assert_eq!(
            listen_address(Some("127.0.0.1:9100"), &file)
                .unwrap()
                .port(),
            9100
        );
        assert_eq!(listen_address(None, &file).unwrap().port(), 9000);
        assert_eq!(
            listen_address(None, &FileConfig::default()).unwrap().port(),
            8080
        );
        assert!(listen_address(Some("nonsense"), &file).is_err());
    }

    #[test]
    fn the_log_format_is_read_from_the_file() {
        let file: FileConfig = toml::from_str("log_format = 'json'").unwrap();
        assert_eq!(file.log_format, Some(LogFormat::Json));
        assert!(toml::from_str::<FileConfig>("log_format = 'xml'").is_err());
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        assert!(toml::from_str::<FileConfig>("listne = 'x'").is_err());
    }
}
