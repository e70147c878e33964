//! The rate-limit settings of `seckill serve`: a flag or its `SECKILL_*`
//! variable, else the config file, else the default.

use crate::config::FileConfig;
use anyhow::{Result, anyhow};
use clap::Args;
use seckill_http::rate_limit::{
    self, Algorithm, DEFAULT_GLOBAL_RATE, DEFAULT_IP_BURST, DEFAULT_IP_RATE, DEFAULT_USER_BURST,
    DEFAULT_USER_RATE, Rate, RateLimitConfig, TrustedProxies,
};
use std::num::NonZeroU32;

#[derive(Args, Debug)]
pub struct RateLimitArgs {
    /// token_bucket (GCRA: the burst at once, then the rate), leaky_bucket
    /// (requests spaced at the rate; up to the burst wait for their slot)
    /// or fixed_window (the burst per window of burst/rate seconds)
    /// [default: token_bucket].
    #[arg(long, env = "SECKILL_RATE_ALGORITHM", value_name = "ALGORITHM")]
    rate_algorithm: Option<String>,
    /// Requests per second per user on the limited routes; 0 turns the
    /// limit off [default: 10].
    #[arg(long, env = "SECKILL_USER_RATE", value_name = "PER_SECOND")]
    user_rate: Option<u32>,
    /// Requests a user may make at once [default: 20].
    #[arg(long, env = "SECKILL_USER_BURST", value_name = "N")]
    user_burst: Option<u32>,
    /// Requests per second per client address; 0 turns the limit off
    /// [default: 0, since a benchmark or a NAT puts many users behind one
    /// address].
    #[arg(long, env = "SECKILL_IP_RATE", value_name = "PER_SECOND")]
    ip_rate: Option<u32>,
    /// Requests a client address may make at once [default: 100].
    #[arg(long, env = "SECKILL_IP_BURST", value_name = "N")]
    ip_burst: Option<u32>,
    /// Requests per second for the whole engine on the limited routes; 0
    /// turns the limit off [default: 0].
    #[arg(long, env = "SECKILL_GLOBAL_RATE", value_name = "PER_SECOND")]
    global_rate: Option<u32>,
    /// A proxy (CIDR or address) whose X-Forwarded-For or X-Real-IP names
    /// the client; repeatable [default: none, the TCP peer is the client].
    #[arg(
        long = "trusted-proxy",
        env = "SECKILL_TRUSTED_PROXIES",
        value_name = "CIDR",
        value_delimiter = ','
    )]
    trusted_proxies: Option<Vec<String>>,
    /// The routes limited, by name: purchase, purchase_token, pay, cancel,
    /// get_order, list_orders, get_sale, stock, … [default: purchase].
    #[arg(
        long,
        env = "SECKILL_RATE_LIMITED_ROUTES",
        value_name = "ROUTE,…",
        value_delimiter = ','
    )]
    rate_limited_routes: Option<Vec<String>>,
}

impl RateLimitArgs {
    pub fn resolve(&self, file: &FileConfig) -> Result<RateLimitConfig> {
        let algorithm = match self
            .rate_algorithm
            .as_ref()
            .or(file.rate_algorithm.as_ref())
        {
            Some(name) => name.parse::<Algorithm>().map_err(|e| anyhow!(e))?,
            None => Algorithm::default(),
        };
        let setting =
            |flag: Option<u32>, key: Option<u32>, default| flag.or(key).unwrap_or(default);
        let user = Rate::new(
            "user",
            setting(self.user_rate, file.user_rate, DEFAULT_USER_RATE),
            setting(self.user_burst, file.user_burst, DEFAULT_USER_BURST),
        );
        let ip = Rate::new(
            "ip",
            setting(self.ip_rate, file.ip_rate, DEFAULT_IP_RATE),
            setting(self.ip_burst, file.ip_burst, DEFAULT_IP_BURST),
        );
        let global = NonZeroU32::new(setting(
            self.global_rate,
            file.global_rate,
            DEFAULT_GLOBAL_RATE,
        ));
        let proxies = self
            .trusted_proxies
            .as_ref()
            .or(file.trusted_proxies.as_ref());
        let routes = match self
            .rate_limited_routes
            .as_ref()
            .or(file.rate_limited_routes.as_ref())
        {
            Some(names) => names
                .iter()
                .map(|name| rate_limit::route_named(name.trim()))
                .collect::<Result<_, _>>()
                .map_err(|e| anyhow!(e))?,
            None => RateLimitConfig::default().routes,
        };
        Ok(RateLimitConfig {
            algorithm,
            user: user.map_err(|e| anyhow!(e))?,
            ip: ip.map_err(|e| anyhow!(e))?,
            global,
            trusted_proxies: TrustedProxies::parse(proxies.map_or(&[][..], Vec::as_slice))
                .map_err(|e| anyhow!(e))?,
            routes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use seckill_http::route::Route;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        rate_limit: RateLimitArgs,
    }

    fn resolve(flags: &[&str], file: &str) -> Result<RateLimitConfig> {
        let cli = Cli::try_parse_from(std::iter::once("serve").chain(flags.iter().copied()))?;
        cli.rate_limit.resolve(&toml::from_str(file)?)
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
