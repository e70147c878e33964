//! The accept loop: plain HTTP/1.1 connections served by hyper, with
//! `TCP_NODELAY`, and a graceful drain. Hand-rolled instead of
//! `axum::serve` for two measured reasons: that one sniffs every connection
//! for HTTP/2 (0.93× the requests/s of plain hyper on the same handler),
//! and purchases — the crowd's request — are handed to their handler here
//! without going through the router (sold-out answers went from 0.76× to
//! 1.0× of the ceiling server with `bench/run.sh`). Flash-sale clients and
//! balancers speak HTTP/1.1.

use crate::App;
use crate::degrade::Traffic;
use crate::error::canned;
use crate::route::Route;
use crate::routes::{self, purchase};
use crate::{cors, request_scope, shedding};
use axum::Router;
use axum::body::Body;
use axum::http::header;
use axum::response::Response;
use futures::FutureExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tower::ServiceExt;

/// A client gets this long to send a request's head; then its connection
/// is closed, so slow or stalled clients cannot pin connections.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// At shutdown, how long in-flight requests get to finish.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// One request: refused if the degrade level says so; a purchase straight
/// to its handler (a panic becomes a JSON 500), anything else through the
/// router.
async fn handle(
    app: &App,
    router: Router,
    route: Route,
    request: hyper::Request<Incoming>,
) -> Response {
    if !app.degrade.level().allows(Traffic::of(route)) {
        return canned::degraded();
    }
    let Some(sale_id) = purchase::plain_purchase_sale_id(&request).map(str::to_owned) else {
        return match router.oneshot(request.map(Body::new)).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
    };
    let buying = purchase::buy(app, &sale_id, request.map(Body::new));
    AssertUnwindSafe(buying)
        .catch_unwind()
        .await
        .unwrap_or_else(routes::panic_response)
}

/// Sheds the request if too many are in flight, and bounds its time;
/// the operator's routes are exempt from both.
async fn admit(
    app: &App,
    router: Router,
    route: Route,
    request: hyper::Request<Incoming>,
) -> Response {
    if shedding::is_exempt(route) {
        return handle(app, router, route, request).await;
    }
    let Some(_admitted) = app.in_flight.admit() else {
        app.metrics.shed_in_flight.increment(1);
        return canned::overloaded();
    };
    let limit = app.limits.request_timeout;
    match tokio::time::timeout(limit, handle(app, router, route, request)).await {
        Ok(response) => response,
        Err(_) => {
            app.metrics.shed_timeout.increment(1);
            canned::timed_out()
        }
    }
}

/// Everything around one request: a CORS preflight is answered at once;
/// otherwise the request runs in its scope (id, error code), admitted or
/// shed, and is counted; its answer carries its id and, for a page on
/// another origin, the CORS headers.
async fn answer(app: &App, router: Router, request: hyper::Request<Incoming>) -> Response {
    let started = Instant::now();
    let (method, path) = (request.method(), request.uri().path());
    if let Some(preflight) = cors::preflight(method, path, request.headers()) {
        return preflight;
    }
    let route = Route::of(method, path);
    let cross_origin = request.headers().contains_key(header::ORIGIN);
    let id = request_scope::request_id(request.headers());
    let answered = request_scope::run(id, admit(app, router, route, request)).await;
    let mut response = answered.output;
    app.metrics
        .request(route, response.status(), answered.code, started.elapsed());
    let headers = response.headers_mut();
    headers.insert(request_scope::REQUEST_ID_HEADER, answered.id);
    if cross_origin && cors::allows(route) {
        cors::allow_origin(headers);
    }
    response
}

/// Serves `router` until `shutdown` resolves, then stops accepting and
/// waits for every open connection to finish its in-flight request.
/// Purchases go straight to their handler; everything else through the
/// router.
pub async fn serve(
    listener: TcpListener,
    app: App,
    router: Router,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors and the like: back off, go on.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let (app, router) = (app.clone(), router.clone());
        let service = service_fn(move |request: hyper::Request<Incoming>| {
            let (app, router) = (app.clone(), router.clone());
            async move { Ok::<_, Infallible>(answer(&app, router, request).await) }
        });
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // Resets and half-closed sockets are routine under a crowd.
            let _ = connection.await;
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the drain timeout; closing them");
    }
}
