//! The accept loop: what an outsider opening sockets can hold is bounded. At most
//! `max_connections` connections are served at once (more are closed at accept and
//! counted), and a connection that does not deliver a request's headers within
//! `header_read_timeout` (a half-sent request, an idle keep-alive) is closed. Without
//! these, 20,000 idle sockets exhausted the process's file descriptors.
//!
//! The connections themselves are hyper-util's, as under `axum::serve`.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;

use crate::StreamShutdown;

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

/// Serves until `shutdown` resolves (graceful: in-flight requests finish; open streams are
/// closed).
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: ServeLimits,
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
        // The peer's address, for per-client limits and the audit trail (`ConnectInfo`).
        let connection_router = router.clone();
        let service =
            hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                tower::Service::call(&mut connection_router.clone(), request)
            });
        let builder = builder.clone();
        let mut stop = stop_rx.clone();
        let first_byte = limits.header_read_timeout;
        tokio::spawn(async move {
            // hyper's timer starts once it reads a request head, but the auto builder first
            // waits for bytes to tell HTTP/1 from HTTP/2: a socket that sends nothing
            // would be held forever.
            let mut probe = [0u8; 1];
            match tokio::time::timeout(first_byte, stream.peek(&mut probe)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => {
                    drop(permit);
                    return;
                }
            }
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            tokio::pin!(connection);
            let mut stopping = false;
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
                }
            }
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

fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}
