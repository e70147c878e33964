//! The accept loop: plain HTTP/1.1 connections served by hyper, with
//! `TCP_NODELAY`, and a graceful drain. Hand-rolled instead of
//! `axum::serve`, which sniffs every connection for HTTP/2, so that each
//! request is placed by the route table once and answered from memory or
//! by its handler. Flash-sale clients and balancers speak HTTP/1.1.

use crate::App;
use crate::client_body::ClientBody;
use crate::connections::{Activity, Connections};
use crate::degrade::Traffic;
use crate::error::canned;
use crate::from_memory::{self, Made};
use crate::rate_limit::Limited;
use crate::requests::Answer;
use crate::route::{self, Route};
use crate::routes::extract::Id;
use crate::routes::{self, purchase};
use crate::sale_views::SaleView;
use crate::{cors, prebuilt, request_scope, shedding};
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures::FutureExt;
use futures::future::{BoxFuture, Either};
use hyper::body::{Body as _, Incoming};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use seckill_core::ErrorCode;
use std::convert::Infallible;
use std::future::Future;
use std::future::{Ready, ready};
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// A client gets this long (and a fifth more at most) to send a request's
/// head; then its connection is closed, so slow or stalled clients cannot
/// pin connections ([`Connections::watch`]).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head (start line and headers) accepted; past it the
/// client gets 431 and the connection closes. Generous for browsers and
/// JWTs, small enough that a crowd of huge heads cannot eat the memory.
const MAX_HEAD_BYTES: usize = 32 * 1024;
/// Most header lines in one request head.
const MAX_HEADERS: usize = 64;
/// At shutdown, how long in-flight requests get to finish.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// One connection's requests. Everything around a request: a CORS
/// preflight is answered at once; a request the degrade level refuses, or
/// one that memory alone answers ([`from_memory`]), is answered in `call`
/// itself, without a future; anything else runs in its scope (id, error
/// code), admitted or shed, as a boxed future. Every answer is counted
/// once ([`Requests`](crate::requests::Requests)) and carries its id and,
/// for a page on another origin, the CORS headers.
#[derive(Clone)]
struct Connection {
    app: App,
    peer: SocketAddr,
    activity: Arc<Activity>,
}

type Answering =
    Either<Ready<Result<Response, Infallible>>, BoxFuture<'static, Result<Response, Infallible>>>;

impl hyper::service::Service<hyper::Request<Incoming>> for Connection {
    type Response = Response;
    type Error = Infallible;
    type Future = Answering;

    fn call(&self, mut request: hyper::Request<Incoming>) -> Answering {
        let started = Instant::now();
        self.activity.head_read();
        let (method, path) = (request.method(), request.uri().path());
        if let Some(preflight) = cors::preflight(method, path, request.headers()) {
            return Either::Left(ready(Ok(preflight)));
        }
        let target = route::find(method, path);
        let route = target.route;
        let about = About {
            route,
            cross_origin: request.headers().contains_key(header::ORIGIN),
            degraded: !self.app.degrade.level().allows(Traffic::of(route)),
            started,
        };
        let id = request_scope::request_id(request.headers());
        let app = &self.app;
        let made = if about.degraded {
            Some(Made::Answer(
                canned::degraded(),
                Some(ErrorCode::Unavailable),
            ))
        } else {
            std::panic::catch_unwind(AssertUnwindSafe(|| {
                from_memory::made(app, target, &request)
            }))
            .unwrap_or_else(|_| {
                let id = String::from_utf8_lossy(id.as_bytes()).into_owned();
                Some(Made::Answer(
                    routes::panicked(Some(id)),
                    Some(ErrorCode::Internal),
                ))
            })
        };
        let purchase_of = match made {
            Some(Made::Answer(response, code)) => {
                return Either::Left(ready(Ok(about.finish(app, response, code, id))));
            }
            Some(Made::Purchase(sale)) => Some(sale),
            None => None,
        };
        // A purchase's id was decoded by triage; any other route's handler
        // finds its id in the request.
        if purchase_of.is_none() {
            match target.decoded_id() {
                Ok(None) => {}
                Ok(Some(decoded)) => {
                    let decoded = Id(decoded.into_owned());
                    request.extensions_mut().insert(decoded);
                }
                Err(error) => {
                    let code = Some(error.code);
                    let response = error.into_response();
                    return Either::Left(ready(Ok(about.finish(app, response, code, id))));
                }
            }
        }
        let (app, peer) = (self.app.clone(), self.peer);
        let activity = Arc::clone(&self.activity);
        activity.set_busy(true);
        Either::Right(Box::pin(async move {
            let handling = within_limits(&app, route, peer, request, purchase_of, &activity);
            let answered = request_scope::run(id, handling).await;
            activity.set_busy(answered.output.body().size_hint().exact().is_none());
            Ok(about.finish(&app, answered.output, answered.code, answered.id))
        }))
    }
}

/// What is known of a request before it is answered.
struct About {
    route: Route,
    cross_origin: bool,
    degraded: bool,
    started: Instant,
}

impl About {
    /// Counts the answer and adds its id and CORS headers.
    fn finish(
        self,
        app: &App,
        mut response: Response,
        code: Option<ErrorCode>,
        id: HeaderValue,
    ) -> Response {
        let answer = if self.degraded {
            Answer::Degraded
        } else {
            Answer::Given(response.status(), code)
        };
        app.requests
            .record(self.route, answer, self.started.elapsed());
        let headers = response.headers_mut();
        prebuilt::set_request_id(headers, id);
        if self.cross_origin && cors::allows(self.route) {
            cors::allow_origin(headers);
        }
        response
    }
}

/// Sheds the request if too many are in flight, cuts it off past the time
/// limit (408 if its handler was waiting for the client's body then, 503
/// otherwise); the operator's routes are exempt from both.
async fn within_limits(
    app: &App,
    route: Route,
    peer: SocketAddr,
    request: hyper::Request<Incoming>,
    purchase_of: Option<Arc<SaleView>>,
    activity: &Arc<Activity>,
) -> Response {
    if shedding::is_exempt(route) {
        let request = request.map(Body::new);
        return handle(app, route, peer, request, purchase_of).await;
    }
    let Some(_admitted) = app.in_flight.admit() else {
        app.metrics.shed_in_flight.increment(1);
        return canned::overloaded();
    };
    let request = request.map(|body| {
        if body.is_end_stream() {
            Body::new(body)
        } else {
            Body::new(ClientBody::new(body, Arc::clone(activity)))
        }
    });
    // Pinned here, so that it is dropped only after the flag it sets on
    // `activity` is read.
    let mut handling = std::pin::pin!(handle(app, route, peer, request, purchase_of));
    match tokio::time::timeout(app.limits.request_timeout, handling.as_mut()).await {
        Ok(response) => response,
        Err(_) if activity.awaits_body() => {
            // What is left of the body cannot be told from a next request.
            let mut response = canned::body_timed_out();
            let close = HeaderValue::from_static("close");
            response.headers_mut().insert(header::CONNECTION, close);
            response
        }
        Err(_) => {
            app.metrics.shed_timeout.increment(1);
            canned::timed_out()
        }
    }
}

/// A purchase that triage left to the market goes to the purchase door;
/// anything else through its rate limits, if its route is limited, to its
/// handler. A panic becomes a JSON 500.
async fn handle(
    app: &App,
    route: Route,
    peer: SocketAddr,
    request: hyper::Request<Body>,
    purchase_of: Option<Arc<SaleView>>,
) -> Response {
    let answering = async move {
        let Some(sale) = purchase_of else {
            if let Err(limited) = admit(app, route, peer, request.headers()).await {
                return limited.into_response();
            }
            return routes::answer(Arc::clone(app), route, request).await;
        };
        purchase::buy(app, &sale, peer.ip(), request).await
    };
    AssertUnwindSafe(answering)
        .catch_unwind()
        .await
        .unwrap_or_else(routes::panic_response)
}

/// One HTTP/1.1 connection over `io` (plain TCP, or TLS once its
/// handshake is done), watched by `connections` from then on.
async fn serve_connection<IO>(connections: &Connections, app: App, peer: SocketAddr, io: IO)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = connections.open();
    let service = Connection {
        app,
        peer,
        activity: Arc::clone(&activity),
    };
    let connection = http1::Builder::new()
        // The time limit on a head is kept by `Connections::watch`.
        .header_read_timeout(None)
        .max_header_size(MAX_HEAD_BYTES)
        .max_headers(MAX_HEADERS)
        .serve_connection(TokioIo::new(io), service);
    connections.serve(&activity, connection).await;
}

/// The rate limits of a route that is not a purchase (purchases apply them
/// between their own steps), all before routing; the user is whoever the
/// bearer token names, if it verifies.
async fn admit(
    app: &App,
    route: Route,
    peer: SocketAddr,
    headers: &HeaderMap,
) -> Result<(), Limited> {
    if route == Route::Purchase || !app.rate_limits.applies_to(route) {
        return Ok(());
    }
    app.rate_limits
        .admit_address(route, peer.ip(), headers)
        .await?;
    let user = app.auth.user(headers).ok();
    app.rate_limits.admit_user(route, user.as_ref()).await
}

/// The next connection on `listener`. A failed accept (out of file
/// descriptors and the like) is logged and retried after a short pause.
pub(crate) async fn accept(listener: &TcpListener) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(accepted) => return accepted,
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Serves `app` until `shutdown` resolves, then stops accepting and
/// waits for every open connection to finish its in-flight request.
pub async fn serve(
    listener: TcpListener,
    app: App,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) {
    let connections = Arc::new(Connections::default());
    let watching = tokio::spawn({
        let connections = Arc::clone(&connections);
        async move { connections.watch(HEADER_READ_TIMEOUT).await }
    });
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = accept(&listener) => accepted,
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let (tls, connections) = (tls.clone(), Arc::clone(&connections));
        tokio::spawn(async move {
            // Resets and half-closed sockets are routine under a crowd.
            let Some(acceptor) = tls else {
                serve_connection(&connections, app, peer, stream).await;
                return;
            };
            // The handshake gets the same time as a request head.
            if let Ok(Ok(stream)) =
                tokio::time::timeout(HEADER_READ_TIMEOUT, acceptor.accept(stream)).await
            {
                serve_connection(&connections, app, peer, stream).await;
            }
        });
    }
    drop(listener);
    if !connections.drain(DRAIN_TIMEOUT).await {
        tracing::warn!("connections still open after the drain timeout; closing them");
    }
    watching.abort();
}
