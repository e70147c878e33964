//! `seckill nginx-conf`: a complete nginx.conf that spreads the API over N
//! `seckill serve` nodes. The arguments become a small typed model
//! ([`NginxConf`]), checked once, then rendered to text; the file explains
//! its own choices in comments, because an operator reads it, not this.
//!
//! nginx's own refusals (rate limits, no node reachable) answer in the API's
//! error shape, so a client cannot tell whether nginx or a node said no.

use crate::config::Switch;
use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use seckill_core::ErrorCode;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Highest `--node ADDR=WEIGHT` weight: enough for any real ratio, small
/// enough that a typo (`=1000000`) is caught.
const MAX_WEIGHT: u32 = 1000;

/// The name of the upstream block and its shared-memory zone.
const UPSTREAM: &str = "seckill";

/// The purchase route; the only one `limit_req` applies to.
const PURCHASE_LOCATION: &str = "~ ^/api/v1/sales/[^/]+/purchase$";

#[derive(Args)]
pub struct NginxConfArgs {
    /// Address nginx listens on, e.g. 0.0.0.0:80.
    #[arg(long)]
    listen: SocketAddr,
    /// A `seckill serve` node as HOST:PORT, optionally with a weight
    /// (HOST:PORT=WEIGHT, 1 to 1000); repeat for each node.
    #[arg(long = "node", value_name = "ADDR[=WEIGHT]", required = true, value_parser = parse_node)]
    nodes: Vec<Node>,
    /// How nginx picks a node for a request.
    #[arg(long, value_enum, default_value_t = Strategy::RoundRobin)]
    strategy: Strategy,
    /// Purchases per second allowed from one client address (limit_req)
    /// [default: no limit].
    #[arg(long, allow_negative_numbers = true, value_parser = clap::value_parser!(u32).range(1..))]
    rate: Option<u32>,
    /// Purchases from one client address allowed beyond --rate at once;
    /// past it, 429.
    #[arg(
        long,
        default_value_t = 0,
        requires = "rate",
        allow_negative_numbers = true
    )]
    burst: u32,
    /// Open connections allowed from one client address (limit_conn); past
    /// it, 429 [default: no limit].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    limit_conn: Option<u32>,
    /// Passive health: failed attempts (connection refused, reset, timeout)
    /// within --fail-timeout that take a node out for --fail-timeout; 0 never does.
    #[arg(long, default_value_t = 3)]
    max_fails: u32,
    /// Passive health: the window for --max-fails, and how long a failed
    /// node is left out, in seconds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    fail_timeout: u32,
    /// Idle keep-alive connections to the nodes kept by each nginx worker; 0 keeps none.
    #[arg(long, default_value_t = 32)]
    keepalive: u32,
    /// Directory for nginx's pid file, logs and temporary files (it must
    /// exist) [default: relative paths, resolved by `nginx -p DIR`].
    #[arg(long, value_name = "DIR")]
    prefix: Option<PathBuf>,
    /// `off` keeps nginx in the foreground (for a supervisor or a test).
    #[arg(long, value_enum, default_value_t = Switch::On)]
    daemon: Switch,
    /// Write the config to FILE instead of standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// nginx's load-balancing methods, by the names scripts use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum Strategy {
    /// Each node in turn, weights ignored.
    RoundRobin,
    /// Round robin in proportion to the weights (`--node ADDR=WEIGHT`).
    Weighted,
    /// One client address (IPv4: its /24) always to the same node.
    IpHash,
    /// One URL always to the same node (consistent hashing: adding a node
    /// moves only its share of the URLs).
    UriHash,
    /// The node with the fewest requests in progress.
    LeastConn,
    /// Two nodes at random, the less busy one wins (power of two choices).
    Random,
}

impl Strategy {
    /// The upstream directive that selects it; round robin is nginx's default.
    fn directive(self) -> Option<&'static str> {
        match self {
            Self::RoundRobin | Self::Weighted => None,
            Self::IpHash => Some("ip_hash"),
            Self::UriHash => Some("hash $request_uri consistent"),
            Self::LeastConn => Some("least_conn"),
            Self::Random => Some("random two least_conn"),
        }
    }

    /// Every method but plain round robin honours `server … weight=N`.
    fn uses_weights(self) -> bool {
        self != Self::RoundRobin
    }
}

/// One upstream node: `HOST:PORT` as nginx will read it, and its weight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    address: String,
    weight: u32,
}

/// `HOST:PORT[=WEIGHT]`: an IP address (IPv6 in brackets) or a host name,
/// a port from 1 to 65535, a weight from 1 to [`MAX_WEIGHT`] (default 1).
fn parse_node(text: &str) -> Result<Node, String> {
    let (address, weight) = match text.rsplit_once('=') {
        Some((address, weight)) => {
            let weight = weight
                .parse::<u32>()
                .ok()
                .filter(|w| (1..=MAX_WEIGHT).contains(w))
                .ok_or_else(|| {
                    format!("weight {weight:?} is not a whole number from 1 to {MAX_WEIGHT}")
                })?;
            (address, weight)
        }
        None => (text, 1),
    };
    Ok(Node {
        address: parse_address(address)?,
        weight,
    })
}

fn parse_address(text: &str) -> Result<String, String> {
    let not_host_port = || format!("{text:?} is not HOST:PORT (e.g. 10.0.0.5:8080)");
    if let Ok(address) = text.parse::<SocketAddr>() {
        if address.port() == 0 {
            return Err(format!("{text:?}: port 0 is not a port a node listens on"));
        }
        return Ok(address.to_string());
    }
    let (host, port) = text.rsplit_once(':').ok_or_else(not_host_port)?;
    match port.parse::<u16>() {
        Ok(1..) => {}
        _ => return Err(format!("{text:?}: {port:?} is not a port from 1 to 65535")),
    }
    if !host.is_empty() && host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(format!("{text:?}: {host:?} is not an IPv4 address"));
    }
    if !is_host_name(host) {
        return Err(not_host_port());
    }
    Ok(text.to_string())
}

/// RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens.
fn is_host_name(host: &str) -> bool {
    host.len() <= 253
        && host.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

pub fn run(args: NginxConfArgs) -> Result<()> {
    let out = args.out.clone();
    let conf = NginxConf::from_args(args)?;
    let text = conf.render();
    match out {
        Some(path) => {
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?
        }
        None => print!("{text}"),
    }
    Ok(())
}

/// The whole config, checked: rendering it cannot fail.
struct NginxConf {
    listen: SocketAddr,
    strategy: Strategy,
    nodes: Vec<Node>,
    max_fails: u32,
    fail_timeout_secs: u32,
    keepalive: u32,
    purchase_rate: Option<PurchaseRate>,
    limit_conn: Option<u32>,
    paths: Paths,
    daemon: Switch,
}

struct PurchaseRate {
    per_second: u32,
    burst: u32,
}

/// Where nginx writes: absolute under `--prefix`, else relative names that
/// nginx resolves against its `-p` prefix.
struct Paths {
    prefix: Option<String>,
}

impl Paths {
    fn new(prefix: Option<&Path>) -> Result<Self> {
        let Some(prefix) = prefix else {
            return Ok(Self { prefix: None });
        };
        let absolute = std::path::absolute(prefix)
            .with_context(|| format!("--prefix {}", prefix.display()))?;
        let Some(text) = absolute.to_str() else {
            bail!("--prefix {} is not valid UTF-8", absolute.display());
        };
        // Paths are written in double quotes; `$` would start a variable
        // in access_log's path.
        if let Some(bad) = text
            .chars()
            .find(|c| matches!(c, '"' | '\\' | '$') || c.is_control())
        {
            bail!("--prefix {text:?}: the character {bad:?} cannot be written into an nginx path");
        }
        Ok(Self {
            prefix: Some(text.trim_end_matches('/').to_string()),
        })
    }

    /// `name` under the prefix, quoted for nginx.
    fn file(&self, name: &str) -> String {
        match &self.prefix {
            Some(prefix) => format!("\"{prefix}/{name}\""),
            None => name.to_string(),
        }
    }
}

impl NginxConf {
    fn from_args(args: NginxConfArgs) -> Result<Self> {
        for (i, node) in args.nodes.iter().enumerate() {
            if args.nodes[..i].iter().any(|n| n.address == node.address) {
                bail!("--node {} is given twice", node.address);
            }
        }
        let mut nodes = args.nodes;
        if !args.strategy.uses_weights() && nodes.iter().any(|n| n.weight != 1) {
            eprintln!(
                "seckill: note: --strategy round_robin ignores node weights; use --strategy weighted"
            );
            nodes.iter_mut().for_each(|node| node.weight = 1);
        }
        Ok(Self {
            listen: args.listen,
            strategy: args.strategy,
            nodes,
            max_fails: args.max_fails,
            fail_timeout_secs: args.fail_timeout,
            keepalive: args.keepalive,
            purchase_rate: args.rate.map(|per_second| PurchaseRate {
                per_second,
                burst: args.burst,
            }),
            limit_conn: args.limit_conn,
            paths: Paths::new(args.prefix.as_deref())?,
            daemon: args.daemon,
        })
    }

    fn render(&self) -> String {
        let mut out = String::new();
        self.render_main(&mut out);
        out.push_str("\nhttp {\n");
        self.render_http_settings(&mut out);
        self.render_upstream(&mut out);
        self.render_server(&mut out);
        out.push_str("}\n");
        out
    }

    fn render_main(&self, out: &mut String) {
        let run = match &self.paths.prefix {
            Some(prefix) => format!("nginx -p {prefix} -c THIS_FILE"),
            None => "nginx -p PREFIX -c THIS_FILE".to_string(),
        };
        let daemon = match self.daemon {
            Switch::On => "on",
            Switch::Off => "off",
        };
        let _ = write!(
            out,
            "\
# nginx in front of {nodes} seckill node(s), written by `seckill nginx-conf`.
# Run it with `{run}`.
# Everything nginx writes (pid, logs, temporary files) is under the prefix,
# so it runs without root. Started as root, its workers run as nginx's
# default unprivileged user, which must be able to enter the prefix.

daemon {daemon};
worker_processes auto;
# A proxied request holds two descriptors: the client's and the node's.
worker_rlimit_nofile 8192;
pid {pid};
error_log {error_log} warn;

events {{
    worker_connections 4096;
}}
",
            nodes = self.nodes.len(),
            pid = self.paths.file("nginx.pid"),
            error_log = self.paths.file("error.log"),
        );
    }

    fn render_http_settings(&self, out: &mut String) {
        let paths = &self.paths;
        let _ = write!(
            out,
            "    client_body_temp_path {client_body};
    proxy_temp_path {proxy};
    fastcgi_temp_path {fastcgi};
    uwsgi_temp_path {uwsgi};
    scgi_temp_path {scgi};

    # $upstream_addr: the node(s) that were tried for the request, in order.
    log_format seckill '$remote_addr [$time_local] \"$request\" $status '
                       'upstream=$upstream_addr upstream_status=$upstream_status '
                       'request_time=$request_time upstream_time=$upstream_response_time';
    access_log {access_log} seckill buffer=64k flush=1s;

    server_tokens off;
    # The nodes enforce the API's 1 MiB body limit and answer 413 in its
    # error shape; nginx lets a little more through so that they can.
    client_max_body_size 2m;
",
            client_body = paths.file("client_body_temp"),
            proxy = paths.file("proxy_temp"),
            fastcgi = paths.file("fastcgi_temp"),
            uwsgi = paths.file("uwsgi_temp"),
            scgi = paths.file("scgi_temp"),
            access_log = paths.file("access.log"),
        );
        if let Some(rate) = &self.purchase_rate {
            let _ = write!(
                out,
                "
    # Purchases per client address, leaky bucket (applied to the purchase
    # location only).
    limit_req_zone $binary_remote_addr zone=purchase_rate:10m rate={}r/s;
",
                rate.per_second
            );
        }
        if self.limit_conn.is_some() {
            out.push_str(
                "
    # Open connections per client address.
    limit_conn_zone $binary_remote_addr zone=conn_per_client:10m;
",
            );
        }
    }

    fn render_upstream(&self, out: &mut String) {
        let _ = write!(
            out,
            "
    # Passive health: max_fails failed attempts (refused, reset, timed out;
    # a node's own 5xx answers do not count) within fail_timeout take a node
    # out for fail_timeout. The zone shares weights and health among workers.
    upstream {UPSTREAM} {{
        zone {UPSTREAM} 64k;
"
        );
        if let Some(directive) = self.strategy.directive() {
            let _ = writeln!(out, "        {directive};");
        }
        for node in &self.nodes {
            let weight = if self.strategy.uses_weights() {
                format!(" weight={}", node.weight)
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "        server {}{weight} max_fails={} fail_timeout={}s;",
                node.address, self.max_fails, self.fail_timeout_secs
            );
        }
        if self.keepalive > 0 {
            // After the balancing method: nginx requires that order.
            let _ = writeln!(out, "        keepalive {};", self.keepalive);
        }
        out.push_str("    }\n");
    }

    fn render_server(&self, out: &mut String) {
        let _ = write!(
            out,
            "
    server {{
        listen {listen};
",
            listen = self.listen
        );
        if let Some(limit) = self.limit_conn {
            let _ = writeln!(out, "        limit_conn conn_per_client {limit};");
        }
        out.push_str(
            "        limit_req_status 429;
        limit_conn_status 429;

        # HTTP/1.1 with an empty Connection header keeps connections to the
        # nodes open (upstream keepalive).
        proxy_http_version 1.1;
        proxy_set_header Connection \"\";
        proxy_set_header Host $host;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;

        # A node's own request time limit is 10 s; nginx waits longer, so the
        # node answers first with its 503.
        proxy_connect_timeout 2s;
        proxy_send_timeout 15s;
        proxy_read_timeout 15s;

        # Another node is tried only when the request could not be delivered
        # (error: refused, reset; timeout) and, for a POST, only if nothing
        # was sent yet: `non_idempotent` is deliberately absent. A purchase
        # that reached a node may already be reserved there; sent again to
        # another node it could reserve twice, and an Idempotency-Key only
        # prevents that if the client sent one. Such a purchase fails with
        # 502 instead, and the client decides whether to retry.
        proxy_next_upstream error timeout;

        # nginx's own refusals, in the API's error shape. The nodes' 429 and
        # 503 answers pass through untouched (proxy_intercept_errors is off).
",
        );
        for answer in OWN_ERRORS {
            let _ = writeln!(
                out,
                "        error_page {status} @error_{status};",
                status = answer.status
            );
        }
        let _ = write!(
            out,
            "
        location / {{
            proxy_pass http://{UPSTREAM};
        }}

        location {PURCHASE_LOCATION} {{
"
        );
        match &self.purchase_rate {
            // nginx refuses `burst=0`: no burst is written as none.
            Some(PurchaseRate { burst: 0, .. }) => {
                out.push_str("            limit_req zone=purchase_rate;\n");
            }
            Some(PurchaseRate { burst, .. }) => {
                let _ = writeln!(
                    out,
                    "            limit_req zone=purchase_rate burst={burst} nodelay;"
                );
            }
            None => {}
        }
        let _ = write!(
            out,
            "            proxy_pass http://{UPSTREAM};
        }}
"
        );
        for answer in OWN_ERRORS {
            answer.render(out);
        }
        out.push_str("    }\n");
    }
}

/// An answer nginx gives itself, as the API would have said it.
struct OwnError {
    status: u16,
    code: ErrorCode,
    message: &'static str,
}

/// 429 from limit_req/limit_conn; 502/504 when no node could answer; 503
/// from nginx itself (nodes' 503s are passed through, not replaced).
const OWN_ERRORS: [OwnError; 4] = [
    OwnError {
        status: 429,
        code: ErrorCode::RateLimited,
        message: "too many requests from this address; retry after the time in Retry-After",
    },
    OwnError {
        status: 502,
        code: ErrorCode::Unavailable,
        message: "no node could answer; retry after the time in Retry-After",
    },
    OwnError {
        status: 503,
        code: ErrorCode::Unavailable,
        message: "the service is unavailable; retry after the time in Retry-After",
    },
    OwnError {
        status: 504,
        code: ErrorCode::Unavailable,
        message: "no node answered in time; retry after the time in Retry-After",
    },
];

impl OwnError {
    fn render(&self, out: &mut String) {
        let body = serde_json::json!({
            "error": { "code": self.code.as_str(), "message": self.message }
        });
        let _ = write!(
            out,
            "
        location @error_{status} {{
            default_type application/json;
            add_header Retry-After 1 always;
            return {status} '{body}\\n';
        }}
",
            status = self.status,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_parse_with_and_without_weights() {
        let node = |address: &str, weight| Node {
            address: address.to_string(),
            weight,
        };
        assert_eq!(parse_node("10.0.0.5:8080"), Ok(node("10.0.0.5:8080", 1)));
        assert_eq!(parse_node("10.0.0.5:8080=3"), Ok(node("10.0.0.5:8080", 3)));
        assert_eq!(parse_node("[::1]:9000=2"), Ok(node("[::1]:9000", 2)));
        assert_eq!(
            parse_node("node-1.local:80"),
            Ok(node("node-1.local:80", 1))
        );
    }

    #[test]
    fn bad_nodes_are_refused_with_the_reason() {
        for (text, reason) in [
            ("10.0.0.5", "not HOST:PORT"),
            ("10.0.0.5:0", "port 0"),
            ("10.0.0.5:70000", "not a port"),
            ("10.0.0.5:80=0", "weight"),
            ("10.0.0.5:80=1001", "weight"),
            ("10.0.0.5:80=x", "weight"),
            ("300.1.1.1:80", "not an IPv4 address"),
            ("bad host:80", "not HOST:PORT"),
            ("-x:80", "not HOST:PORT"),
            ("a;b:80", "not HOST:PORT"),
            (":80", "not HOST:PORT"),
        ] {
            let error = parse_node(text).expect_err(text);
            assert!(error.contains(reason), "{text}: {error}");
        }
    }

    #[test]
    fn the_error_bodies_are_the_api_shape() {
        let mut out = String::new();
        OWN_ERRORS[0].render(&mut out);
        let body = out
            .split_once("return 429 '")
            .and_then(|(_, rest)| rest.split_once("\\n'"))
            .map(|(body, _)| body)
            .expect("a return with a body");
        let value: serde_json::Value = serde_json::from_str(body).expect("JSON");
        assert_eq!(value["error"]["code"], "rate_limited");
    }

    #[test]
    fn prefix_characters_nginx_cannot_take_are_refused() {
        for bad in ["/tmp/a\"b", "/tmp/a$b", "/tmp/a\\b", "/tmp/a\nb"] {
            assert!(Paths::new(Some(Path::new(bad))).is_err(), "{bad:?}");
        }
        let paths = Paths::new(Some(Path::new("/srv/nginx/"))).expect("a plain path");
        assert_eq!(paths.file("nginx.pid"), "\"/srv/nginx/nginx.pid\"");
        assert_eq!(
            Paths::new(None).expect("none").file("nginx.pid"),
            "nginx.pid"
        );
    }
}
