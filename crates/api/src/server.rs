//! The accept loop: what an outsider opening sockets can hold is bounded. At most
//! `max_connections` connections are served at once (more are closed at accept and
//! counted), and a connection that does not deliver a request's headers within
//! `header_read_timeout` (a half-sent request, an idle keep-alive) is closed. Without
//! these, 20,000 idle sockets exhausted the process's file descriptors.
//!
//! With TLS ([`crate::tls`]) the handshake is part of the connection, under the same
//! permit and deadline.
//!
//! The connections themselves are hyper-util's, as under `axum::serve`.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::Request;
use backplane_security::Identity;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tower::util::MapRequest;

use crate::StreamShutdown;
use crate::tls::{Tls, TlsServer};

/// Bounds on what clients can hold open.
#[derive(Clone, Copy, Debug)]
pub struct ServeLimits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
}

impl Default for ServeLimits {
    fn default() -> ServeLimits {
        ServeLimits {
            max_connections: 512,
            header_read_timeout: Duration::from_secs(10),
        }
    }
}

/// Connections refused at accept because `max_connections` were open.
static REFUSED: AtomicU64 = AtomicU64::new(0);

/// How many connections were closed at accept for the connection cap, since start.
pub fn refused_connections() -> u64 {
    REFUSED.load(Ordering::Relaxed)
}

/// Serves plain HTTP until `shutdown` resolves (graceful: in-flight requests finish; open
/// streams are closed).
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_tls(listener, router, limits, None, shutdown).await
}

/// Serves HTTPS when `tls` is given, plain HTTP otherwise, until `shutdown` resolves.
///
/// The TLS handshake runs in the connection's own task, holding a connection permit and
/// bounded by `header_read_timeout` like a plain request's headers: a client that opens
/// sockets and never finishes a handshake holds no more than a plain one could. Requests
/// over TLS carry the [`Tls`] extension; a verified client certificate listed in
/// `[api.tls.clients]` makes the request carry its [`Identity`].
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: ServeLimits,
    tls: Option<Arc<TlsServer>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let streams = CancellationToken::new();
    let router = router.layer(axum::Extension(StreamShutdown(streams.clone())));
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    // Dropped at shutdown: every connection task sees it and shuts down gracefully.
    let (stop_tx, stop_rx) = watch::channel(());
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    // CONNECT protocol, for WebSockets over HTTP/2.
    builder.http2().enable_connect_protocol();
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    let mut warned = false;
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // Out of file descriptors and the like: wait for some to close.
                    tracing::error!(error = %e, "API: accept failed");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            REFUSED.fetch_add(1, Ordering::Relaxed);
            if !warned {
                warned = true;
                tracing::warn!(%peer, max = limits.max_connections, "API: connection cap reached; closing new connections until some end (counted, logged once)");
            }
            drop(stream);
            continue;
        };
        warned = false;
        let router = router.clone();
        let builder = builder.clone();
        let stop = stop_rx.clone();
        let first_byte = limits.header_read_timeout;
        let tls = tls.clone();
        tokio::spawn(async move {
            let Some(tls) = tls else {
                // hyper's timer starts once it reads a request head, but the auto builder
                // first waits for bytes to tell HTTP/1 from HTTP/2: a socket that sends
                // nothing would be held forever.
                let mut probe = [0u8; 1];
                match tokio::time::timeout(first_byte, stream.peek(&mut probe)).await {
                    Ok(Ok(n)) if n > 0 => {}
                    _ => {
                        drop(permit);
                        return;
                    }
                }
                let service = with_extensions(router, peer, false, None, None);
                drive(&builder, TokioIo::new(stream), service, stop, peer, None).await;
                drop(permit);
                return;
            };
            let deadline = tokio::time::Instant::now() + first_byte;
            let stream = match tokio::time::timeout_at(deadline, tls.acceptor().accept(stream)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    crate::tls::count_handshake_failure();
                    tracing::debug!(%peer, error = %e, "API: TLS handshake failed");
                    drop(permit);
                    return;
                }
                Err(_) => {
                    crate::tls::count_handshake_failure();
                    tracing::debug!(%peer, "API: TLS handshake timed out");
                    drop(permit);
                    return;
                }
            };
            let identity = tls.identity(stream.get_ref().1.peer_certificates());
            // After the handshake there is no peek: the first request must arrive by the
            // same deadline, or the connection is closed.
            let started = Arc::new(AtomicBool::new(false));
            let service = with_extensions(router, peer, true, identity, Some(started.clone()));
            drive(
                &builder,
                TokioIo::new(stream),
                service,
                stop,
                peer,
                Some((deadline, started)),
            )
            .await;
            drop(permit);
        });
    }
    streams.cancel();
    drop(stop_rx);
    drop(stop_tx);
    // In-flight requests finish; every task holds a permit until its connection is done.
    let all = u32::try_from(limits.max_connections.max(1)).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(Duration::from_secs(10), permits.acquire_many(all)).await;
    Ok(())
}

type Service<F> = TowerToHyperService<MapRequest<Router, F>>;

/// The router, with what the connection tells about every request on it: over TLS or not,
/// and the client certificate's identity. `started` is set at the first request.
fn with_extensions(
    router: Router,
    peer: std::net::SocketAddr,
    over_tls: bool,
    identity: Option<Identity>,
    started: Option<Arc<AtomicBool>>,
) -> Service<impl Fn(Request<Incoming>) -> Request<Incoming> + Clone + Send + Sync + 'static> {
    let mark = move |mut request: Request<Incoming>| {
        if let Some(started) = &started {
            started.store(true, Ordering::Relaxed);
        }
        // The peer's address, for per-client limits and the audit trail.
        request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
        if over_tls {
            request.extensions_mut().insert(Tls);
        }
        if let Some(identity) = &identity {
            request.extensions_mut().insert(identity.clone());
        }
        request
    };
    TowerToHyperService::new(MapRequest::new(router, mark))
}

/// Serves one connection until it ends or the server stops. `first_request`: close the
/// connection if no request has started by this deadline.
async fn drive<I, F>(
    builder: &Builder<TokioExecutor>,
    io: TokioIo<I>,
    service: Service<F>,
    mut stop: watch::Receiver<()>,
    peer: std::net::SocketAddr,
    first_request: Option<(tokio::time::Instant, Arc<AtomicBool>)>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    F: Fn(Request<Incoming>) -> Request<Incoming> + Clone + Send + Sync + 'static,
{
    let connection = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(connection);
    let mut stopping = false;
    let (deadline, started) = match first_request {
        Some((deadline, started)) => (Some(deadline), Some(started)),
        None => (None, None),
    };
    let mut waiting = deadline.is_some();
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::trace!(%peer, error = %e, "API connection ended with an error");
                }
                break;
            }
            _ = stop.changed(), if !stopping => {
                stopping = true;
                connection.as_mut().graceful_shutdown();
            }
            () = sleep_until(deadline), if waiting => {
                waiting = false;
                if !started.as_ref().is_some_and(|s| s.load(Ordering::Relaxed)) {
                    tracing::trace!(%peer, "API: no request after the TLS handshake; closing");
                    break;
                }
            }
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}
