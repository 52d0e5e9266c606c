//! Live streams over a real socket: WebSocket and Server-Sent Events, prefix filtering,
//! and graceful shutdown closing open streams.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use backplane_model::AssetPath;
use common::*;
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

/// Generous guard against a hang; not a performance assertion.
const HANG_GUARD: Duration = Duration::from_secs(15);

struct Server {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

async fn serve(app: &Running) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(backplane_api::serve(
        listener,
        app.router.clone(),
        Default::default(),
        async move {
            let _ = stopped.await;
        },
    ));
    Server { addr, stop, task }
}

/// Reads one Server-Sent Events stream over HTTP/1.0, so the body is not chunked.
struct SseClient {
    socket: TcpStream,
    buffer: String,
    pub status_line: String,
}

impl SseClient {
    async fn connect(addr: SocketAddr, uri: &str) -> SseClient {
        let mut socket = TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {uri} HTTP/1.0\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n");
        socket.write_all(request.as_bytes()).await.unwrap();
        let mut client = SseClient {
            socket,
            buffer: String::new(),
            status_line: String::new(),
        };
        let head = client.until("\r\n\r\n").await.expect("response head");
        client.status_line = head.lines().next().unwrap_or_default().to_owned();
        client
    }

    /// Text up to `delimiter` (consumed), or `None` at end of stream.
    async fn until(&mut self, delimiter: &str) -> Option<String> {
        loop {
            if let Some(at) = self.buffer.find(delimiter) {
                let text = self.buffer[..at].to_owned();
                self.buffer.drain(..at + delimiter.len());
                return Some(text);
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(HANG_GUARD, self.socket.read(&mut chunk))
                .await
                .ok()?
                .ok()?;
            if n == 0 {
                return None;
            }
            self.buffer.push_str(std::str::from_utf8(&chunk[..n]).unwrap());
        }
    }

    /// The next `(event, data)` record, skipping keep-alive comments.
    async fn next(&mut self) -> Option<(String, serde_json::Value)> {
        loop {
            let block = self.until("\n\n").await?;
            let mut event = None;
            let mut data = String::new();
            for line in block.lines() {
                if let Some(e) = line.strip_prefix("event: ") {
                    event = Some(e.to_owned());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push_str(d);
                }
            }
            if let Some(event) = event {
                return Some((event, serde_json::from_str(&data).unwrap()));
            }
        }
    }
}

fn under(record: &serde_json::Value, prefix: &str) -> bool {
    AssetPath::parse(record["asset"].as_str().unwrap())
        .unwrap()
        .is_under_prefix(prefix)
}

#[tokio::test]
async fn sse_delivers_samples_under_the_prefix_and_none_outside_it() {
    let app = start();
    let server = serve(&app).await;
    let mut client = SseClient::connect(server.addr, &format!("/api/v1/stream/sse?prefix={LINE_1}")).await;
    assert!(client.status_line.contains("200"), "{}", client.status_line);
    let mut samples = 0;
    // 60 records span many batches of both sources (each ticks every 20 ms).
    for _ in 0..60 {
        let (event, record) = client.next().await.expect("stream ended early");
        assert_eq!(event, record["kind"].as_str().unwrap());
        assert!(under(&record, LINE_1), "outside the prefix: {record}");
        if event == "sample" {
            samples += 1;
            assert_eq!(record["model"], "Filler");
        }
    }
    assert!(samples > 0);
    let _ = server.stop.send(());
    server.task.await.unwrap().unwrap();
    app.stop().await;
}

#[tokio::test]
async fn sse_carries_context_events_for_assets_under_the_prefix() {
    let app = start();
    let server = serve(&app).await;
    let mut client =
        SseClient::connect(server.addr, "/api/v1/stream/sse?prefix=acme/plant-a/packaging").await;
    let reply = call(
        &app.router,
        put_json(&format!("/api/v1/context/{LINE_1}"), r#"{"lot": "L-7"}"#),
    )
    .await;
    assert_eq!(reply.status, 200);
    let event = loop {
        let (event, record) = client.next().await.expect("stream ended before the event");
        if event == "event" {
            break record;
        }
    };
    assert_eq!(event["event"], "context_changed");
    assert_eq!(event["asset"], LINE_1);
    assert_eq!(event["new"], "L-7");
    let _ = server.stop.send(());
    server.task.await.unwrap().unwrap();
    app.stop().await;
}

#[tokio::test]
async fn websocket_delivers_samples_under_the_prefix_and_none_outside_it() {
    let app = start();
    let server = serve(&app).await;
    let url = format!("ws://{}/api/v1/stream/ws?prefix={LINE_1}", server.addr);
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let mut samples = 0;
    for _ in 0..60 {
        let message = tokio::time::timeout(HANG_GUARD, socket.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let Message::Text(text) = message else {
            panic!("expected text, got {message:?}")
        };
        let record: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
        assert!(under(&record, LINE_1), "outside the prefix: {record}");
        if record["kind"] == "sample" {
            samples += 1;
        }
    }
    assert!(samples > 0);

    // A wider prefix includes line 10, so the filter above did real work.
    let url = format!(
        "ws://{}/api/v1/stream/ws?prefix=acme/plant-a/packaging",
        server.addr
    );
    let (mut wide, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    eventually_ws_sees(&mut wide, LINE_10_FILLER).await;

    let _ = server.stop.send(());
    server.task.await.unwrap().unwrap();
    app.stop().await;
}

async fn eventually_ws_sees(
    socket: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>,
    asset: &str,
) {
    for _ in 0..500 {
        let message = tokio::time::timeout(HANG_GUARD, socket.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Message::Text(text) = message {
            let record: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
            if record["asset"] == asset {
                return;
            }
        }
    }
    panic!("no record of {asset}");
}

#[tokio::test]
async fn streams_reject_invalid_or_unknown_prefixes() {
    let app = start();
    let reply = get(&app.router, "/api/v1/stream/sse?prefix=Line%201").await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.error(), ("invalid_prefix".into(), Some("prefix".into())));
    let reply = get(&app.router, "/api/v1/stream/sse?prefix=acme/plant-b").await;
    assert_eq!(reply.status, 404);

    let server = serve(&app).await;
    let url = format!("ws://{}/api/v1/stream/ws?prefix=NOT_A_SLUG", server.addr);
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 400),
        other => panic!("expected an HTTP 400, got {other:?}"),
    }
    // A plain GET on the WebSocket endpoint is told to use a WebSocket client.
    let reply = get(&app.router, "/api/v1/stream/ws").await;
    assert!(reply.status.is_client_error());
    assert_eq!(reply.error().0, "websocket_required");
    let _ = server.stop.send(());
    server.task.await.unwrap().unwrap();
    app.stop().await;
}

#[tokio::test]
async fn shutdown_closes_open_streams_and_serve_returns() {
    let app = start();
    let server = serve(&app).await;
    let mut sse = SseClient::connect(server.addr, "/api/v1/stream/sse").await;
    assert!(sse.next().await.is_some());
    let url = format!("ws://{}/api/v1/stream/ws", server.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    assert!(ws.next().await.is_some());

    let _ = server.stop.send(());
    let served = tokio::time::timeout(HANG_GUARD, server.task)
        .await
        .expect("serve did not return");
    served.unwrap().unwrap();

    // The SSE body ends, and the WebSocket gets a close frame ("going away").
    while sse.next().await.is_some() {}
    let close = loop {
        match tokio::time::timeout(HANG_GUARD, ws.next()).await.unwrap() {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(u16::from(close.unwrap().code), 1001);
    app.stop().await;
}
