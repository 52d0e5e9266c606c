//! What a client opening sockets can hold (issue 18, hole 2): half-sent requests and idle
//! sockets are closed after the header-read timeout, connections past the cap are closed
//! at accept and counted, and health answers again as soon as the holders are gone.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use backplane_api::ServeLimits;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Generous guard against a hang; not a performance assertion.
const HANG_GUARD: Duration = Duration::from_secs(15);

async fn serve(app: &Running, limits: ServeLimits) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(backplane_api::serve(
        listener,
        app.router.clone(),
        limits,
        async move {
            let _ = stopped.await;
        },
    ));
    (addr, stop)
}

/// Reads until the server closes the socket; what it sent before closing.
async fn until_closed(socket: &mut TcpStream) -> String {
    let mut got = Vec::new();
    tokio::time::timeout(HANG_GUARD, socket.read_to_end(&mut got))
        .await
        .expect("the server closes the socket")
        .ok();
    String::from_utf8_lossy(&got).into_owned()
}

async fn get_over_tcp(addr: SocketAddr, path: &str) -> String {
    let mut socket = TcpStream::connect(addr).await.unwrap();
    socket
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    until_closed(&mut socket).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_requests_and_idle_sockets_are_closed_and_connections_past_the_cap_refused() {
    let app = start();
    let (addr, _stop) = serve(
        &app,
        ServeLimits {
            max_connections: 4,
            header_read_timeout: Duration::from_millis(500),
        },
    )
    .await;
    assert!(
        get_over_tcp(addr, "/api/v1/health")
            .await
            .starts_with("HTTP/1.1 200")
    );

    // Two half-sent requests and two idle sockets hold every connection.
    let mut holders = Vec::new();
    for i in 0..4 {
        let mut socket = TcpStream::connect(addr).await.unwrap();
        if i % 2 == 0 {
            socket
                .write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: localhost\r\n")
                .await
                .unwrap();
        }
        holders.push(socket);
    }
    // One more is closed at once, without an answer, once the server has accepted the
    // holders (on a loaded machine that can take a while: a request answered meanwhile
    // only shows a holder was not accepted yet).
    let mut answer = String::from("never tried");
    for _ in 0..100 {
        let mut extra = TcpStream::connect(addr).await.unwrap();
        let _ = extra
            .write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await;
        answer = until_closed(&mut extra).await;
        if answer.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(answer, "", "closed at accept");

    // The holders are closed after the header-read timeout...
    for socket in &mut holders {
        let answer = until_closed(socket).await;
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
            "{answer}"
        );
    }
    // ...and health answers again, counting the refused connection.
    let metrics = get_over_tcp(addr, "/metrics").await;
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    let refused: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("backplane_api_connections_refused_total "))
        .expect("the refused counter")
        .trim()
        .parse()
        .unwrap();
    assert!(refused >= 1, "{metrics}");
    app.stop().await;
}
