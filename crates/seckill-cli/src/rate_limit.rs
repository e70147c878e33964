//! The rate-limit settings of `seckill serve`.

use anyhow::{Result, anyhow};
use clap::Args;
use seckill_http::rate_limit::{
    self, Algorithm, DEFAULT_GLOBAL_RATE, DEFAULT_IP_BURST, DEFAULT_IP_RATE, DEFAULT_USER_BURST,
    DEFAULT_USER_RATE, Rate, RateLimitConfig, TrustedProxies,
};
use serde::{Deserialize, Serialize};
use std::num::NonZeroU32;

#[derive(Args, Serialize, Deserialize)]
#[serde(default = "crate::config::defaults")]
pub struct RateLimitSettings {
    /// token_bucket (GCRA: the burst at once, then the rate), leaky_bucket
    /// (requests spaced at the rate; up to the burst wait for their slot)
    /// or fixed_window (the burst per window of burst/rate seconds).
    #[arg(
        long,
        env = "SECKILL_RATE_ALGORITHM",
        value_name = "ALGORITHM",
        default_value = Algorithm::default().as_str()
    )]
    rate_algorithm: String,
    /// Requests per second per user on the limited routes; 0 turns the
    /// limit off.
    #[arg(long, env = "SECKILL_USER_RATE", value_name = "PER_SECOND", default_value_t = DEFAULT_USER_RATE)]
    user_rate: u32,
    /// Requests a user may make at once.
    #[arg(long, env = "SECKILL_USER_BURST", value_name = "N", default_value_t = DEFAULT_USER_BURST)]
    user_burst: u32,
    /// Requests per second per client address; 0 turns the limit off (off
    /// by default, since a benchmark or a NAT puts many users behind one
    /// address).
    #[arg(long, env = "SECKILL_IP_RATE", value_name = "PER_SECOND", default_value_t = DEFAULT_IP_RATE)]
    ip_rate: u32,
    /// Requests a client address may make at once.
    #[arg(long, env = "SECKILL_IP_BURST", value_name = "N", default_value_t = DEFAULT_IP_BURST)]
    ip_burst: u32,
    /// Requests per second for the whole engine on the limited routes; 0
    /// turns the limit off.
    #[arg(long, env = "SECKILL_GLOBAL_RATE", value_name = "PER_SECOND", default_value_t = DEFAULT_GLOBAL_RATE)]
    global_rate: u32,
    /// A proxy (CIDR or address) whose X-Forwarded-For or X-Real-IP names
    /// the client; repeatable (none: the TCP peer is the client).
    #[arg(
        long = "trusted-proxy",
        env = "SECKILL_TRUSTED_PROXIES",
        value_name = "CIDR",
        value_delimiter = ','
    )]
    trusted_proxies: Vec<String>,
    /// The routes limited, by name: purchase, purchase_token, pay, cancel,
    /// get_order, list_orders, get_sale, stock, …
    #[arg(
        long,
        env = "SECKILL_RATE_LIMITED_ROUTES",
        value_name = "ROUTE,…",
        value_delimiter = ',',
        default_values_t = default_routes()
    )]
    rate_limited_routes: Vec<String>,
}

/// The routes limited unless configured, by name.
fn default_routes() -> Vec<String> {
    RateLimitConfig::default()
        .routes
        .iter()
        .map(|route| route.label().to_owned())
        .collect()
}

impl RateLimitSettings {
    pub fn config(&self) -> Result<RateLimitConfig> {
        let algorithm = self
            .rate_algorithm
            .parse::<Algorithm>()
            .map_err(|e| anyhow!(e))?;
        let routes = self
            .rate_limited_routes
            .iter()
            .map(|name| rate_limit::route_named(name.trim()))
            .collect::<Result<_, _>>()
            .map_err(|e| anyhow!(e))?;
        Ok(RateLimitConfig {
            algorithm,
            user: Rate::new("user", self.user_rate, self.user_burst).map_err(|e| anyhow!(e))?,
            ip: Rate::new("ip", self.ip_rate, self.ip_burst).map_err(|e| anyhow!(e))?,
            global: NonZeroU32::new(self.global_rate),
            trusted_proxies: TrustedProxies::parse(&self.trusted_proxies)
                .map_err(|e| anyhow!(e))?,
            routes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ConfigFile, Layered};
    use clap::Parser;
    use seckill_http::route::Route;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        rate_limit: Layered<RateLimitSettings>,
    }

    fn resolve(flags: &[&str], file: &str) -> Result<RateLimitConfig> {
        let cli = Cli::try_parse_from(std::iter::once("serve").chain(flags.iter().copied()))?;
        cli.rate_limit
            .resolve(&ConfigFile::from_text(file)?)?
            .config()
    }

    #[test]
    fn defaults_limit_users_on_purchases_only() {
        let config = resolve(&[], "").unwrap();
        assert_eq!(config.algorithm, Algorithm::TokenBucket);
        assert_eq!(config.user, Rate::new("user", 10, 20).unwrap());
        assert_eq!((config.ip, config.global), (None, None));
        assert_eq!(config.routes, [Route::Purchase]);
        assert!(config.trusted_proxies.is_empty());
    }

    #[test]
    fn flags_win_over_the_file() {
        let file = "rate_algorithm = 'fixed_window'\nip_rate = 5\nip_burst = 7\n\
                    rate_limited_routes = ['purchase', 'purchase_token']\n\
                    trusted_proxies = ['10.0.0.0/8']";
        let config = resolve(
            &[
                "--ip-burst",
                "9",
                "--trusted-proxy",
                "127.0.0.1",
                "--trusted-proxy",
                "::1",
            ],
            file,
        )
        .unwrap();
        assert_eq!(config.algorithm, Algorithm::FixedWindow);
        assert_eq!(config.ip, Rate::new("ip", 5, 9).unwrap());
        assert_eq!(config.routes, [Route::Purchase, Route::PurchaseToken]);
        let from_file = resolve(&[], file).unwrap();
        assert_eq!(from_file.ip, Rate::new("ip", 5, 7).unwrap());
    }

    #[test]
    fn bad_settings_are_named() {
        for (flags, file, expected) in [
            (&["--rate-algorithm", "gcra"][..], "", "gcra"),
            (&["--trusted-proxy", "10.0.0.0/99"], "", "10.0.0.0/99"),
            (&[], "trusted_proxies = ['nope']", "nope"),
            (&["--rate-limited-routes", "purchase,buy"], "", "buy"),
            (&["--user-burst", "0"], "", "user_burst"),
        ] {
            let error = resolve(flags, file).unwrap_err().to_string();
            assert!(error.contains(expected), "{flags:?} {file:?}: {error}");
        }
    }
}
