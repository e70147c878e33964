//! A TCP relay that can be cut, to make a database unreachable without
//! stopping it.

use std::net::SocketAddr;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A TCP relay to a database that can be cut: while cut, it drops every
/// connection, open or new — the database as seen through a dead network.
pub struct Relay {
    /// Where it listens.
    pub addr: SocketAddr,
    /// `false` cuts it, `true` lets connections through again.
    pub open: watch::Sender<bool>,
}

impl Relay {
    /// A relay to `target` (HOST:PORT) on a free loopback port, open.
    pub async fn start(target: String) -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap(), target).await
    }

    /// [`Relay::start`] on `addr`: until then a database behind it refuses
    /// connections, as a stopped server does.
    pub async fn start_on(addr: SocketAddr, target: String) -> Self {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (open, watching) = watch::channel(true);
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                let mut open = watching.clone();
                if !*open.borrow() {
                    continue; // dropped: the client sees the connection close
                }
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = open.wait_for(|open| !open) => {}
                    }
                });
            }
        });
        Self { addr, open }
    }

    /// `url` (scheme://[user@]host:port/db) and its host:port, with this
    /// relay in place of the host and port.
    pub fn route(url: &str) -> (String, String) {
        let (scheme, rest) = url.split_once("://").unwrap();
        let (user, rest) = rest.rsplit_once('@').map_or(("", rest), |(u, r)| (u, r));
        let (target, path) = rest.split_once('/').unwrap_or((rest, ""));
        let at = if user.is_empty() { "" } else { "@" };
        (
            format!("{scheme}://{user}{at}RELAY/{path}"),
            target.to_string(),
        )
    }
}
