//! Who the client is, as far as an address says: the TCP peer, unless the
//! peer is one of our own proxies (a configured CIDR), whose word is then
//! taken for the address it received the request from: the right-most
//! address of `X-Forwarded-For` that is not itself a trusted proxy, or
//! `X-Real-IP`. Headers from anyone else are ignored, since a client can
//! write whatever it likes into them.

use axum::http::HeaderMap;
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};

const X_FORWARDED_FOR: &str = "x-forwarded-for";
const X_REAL_IP: &str = "x-real-ip";

/// The networks whose proxies' forwarding headers are believed.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Each entry a CIDR (`10.0.0.0/8`, `fd00::/8`) or a single address.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        entries
            .iter()
            .map(|entry| {
                let entry = entry.as_ref().trim();
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        format!(
                            "trusted proxy {entry:?} is not a CIDR (e.g. 10.0.0.0/8) or an IP address"
                        )
                    })
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address for a request from `peer`.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        // Right to left: each proxy appends the address it was called from.
        // If every hop is trusted, the left-most is the client (as nginx's
        // `real_ip_recursive`); something that is no address ends the walk.
        let mut leftmost_trusted = None;
        let hops = headers
            .get_all(X_FORWARDED_FOR)
            .iter()
            .rev()
            .flat_map(|value| value.to_str().unwrap_or("?").rsplit(','));
        for hop in hops {
            match parse_hop(hop) {
                Some(ip) if self.trusts(ip) => leftmost_trusted = Some(ip),
                Some(ip) => return ip,
                None => break,
            }
        }
        leftmost_trusted
            .or_else(|| {
                headers
                    .get(X_REAL_IP)
                    .and_then(|value| parse_hop(value.to_str().ok()?))
            })
            .unwrap_or(peer)
    }
}

/// `1.2.3.4`, `::1`, or with a port: `1.2.3.4:80`, `[::1]:80`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|address| address.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_static(value));
        }
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_its_headers_say() {
        let proxies = TrustedProxies::parse(&["10.0.0.0/8"]).unwrap();
        let spoofed = headers(&[("x-forwarded-for", "1.1.1.1"), ("x-real-ip", "2.2.2.2")]);
        assert_eq!(
            proxies.client_ip(ip("203.0.113.9"), &spoofed),
            ip("203.0.113.9")
        );
        assert_eq!(
            TrustedProxies::default().client_ip(ip("10.0.0.1"), &spoofed),
            ip("10.0.0.1"),
            "no proxy is trusted by default"
        );
    }

    #[test]
    fn behind_trusted_proxies_the_right_most_untrusted_hop_is_the_client() {
        let proxies = TrustedProxies::parse(&["10.0.0.0/8", "192.0.2.7"]).unwrap();
        let peer = ip("10.1.2.3");
        // The client forged the first entry; our proxies appended the rest.
        let forwarded = headers(&[
            ("x-forwarded-for", "6.6.6.6, 198.51.100.4"),
            ("x-forwarded-for", "192.0.2.7:4711, 10.9.9.9"),
        ]);
        assert_eq!(proxies.client_ip(peer, &forwarded), ip("198.51.100.4"));
        let all_ours = headers(&[("x-forwarded-for", "10.0.0.5, 10.0.0.6")]);
        assert_eq!(proxies.client_ip(peer, &all_ours), ip("10.0.0.5"));
        let real_ip = headers(&[("x-real-ip", "[2001:db8::1]:443")]);
        assert_eq!(proxies.client_ip(peer, &real_ip), ip("2001:db8::1"));
        let garbage = headers(&[("x-forwarded-for", "not-an-address")]);
        assert_eq!(proxies.client_ip(peer, &garbage), peer);
        assert_eq!(proxies.client_ip(peer, &HeaderMap::new()), peer);
    }

    #[test]
    fn mapped_ipv4_peers_match_ipv4_networks() {
        let proxies = TrustedProxies::parse(&["127.0.0.0/8"]).unwrap();
        let forwarded = headers(&[("x-forwarded-for", "198.51.100.4")]);
        assert_eq!(
            proxies.client_ip(ip("::ffff:127.0.0.1"), &forwarded),
            ip("198.51.100.4")
        );
    }

    #[test]
    fn bad_entries_are_named() {
        let error = TrustedProxies::parse(&["10.0.0.0/8", "10.0.0.0/33"]).unwrap_err();
        assert!(error.contains("\"10.0.0.0/33\""), "{error}");
        assert!(TrustedProxies::parse(&["proxy.internal"]).is_err());
    }
}
