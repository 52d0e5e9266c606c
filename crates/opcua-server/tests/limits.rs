//! Operation limits against asyncua: a request larger than the largest message, more
//! nodes in a Read than allowed, and more sessions than allowed are refused, and the
//! server keeps serving.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::json;

const LIMITS: &str = "limits = { max_sessions = 3, max_nodes_per_read = 50, max_message_size = 65536 }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_overlong_requests_are_refused_and_the_server_stays_up() {
    let plant = Plant::start(&format!("{OPEN}\n{LIMITS}")).await;
    let ns = namespace(&plant.url(), &Session::default()).await;
    let speed = node(ns, &format!("{FILLER1}/speed"));
    let too_many: Vec<String> = (0..51).map(|_| speed.clone()).collect();
    let r = asyncua(
        &plant.url(),
        &Session::default(),
        json!([{"op": "read", "nodes": too_many}]),
    )
    .await
    .unwrap();
    assert_eq!(r[0]["error"], "BadTooManyOperations", "{}", r[0]);
    let r = asyncua(
        &plant.url(),
        &Session::default(), // 2 000 node ids of 96 characters: about 200 kB, over the 64 kB limit.
        json!([{"op": "read_generated", "ns": ns, "count": 2000, "length": 96}]),
    )
    .await;
    let refused = match &r {
        Ok(r) => r[0]["error"].is_string(),
        Err(_) => true,
    };
    assert!(refused, "a 200 kB request is refused: {r:?}");
    let after = asyncua(
        &plant.url(),
        &Session::default(),
        json!([{"op": "read", "nodes": [speed]}]),
    )
    .await
    .unwrap();
    assert_eq!(
        after[0][0]["variant_type"], "Double",
        "the server still serves: {}",
        after[0]
    );
    plant.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_beyond_the_limit_are_refused_and_the_server_stays_up() {
    let plant = Plant::start(&format!("{OPEN}\n{LIMITS}")).await;
    let url = plant.url();
    let clients: Vec<_> = (0..6)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                asyncua(&url, &Session::default(), json!([{"op": "sleep", "seconds": 6}])).await
            })
        })
        .collect();
    let mut admitted = 0;
    let mut refused = Vec::new();
    for client in clients {
        match client.await.unwrap() {
            Ok(_) => admitted += 1,
            Err(reason) => refused.push(reason),
        }
    }
    assert!(
        (1..=3).contains(&admitted),
        "{admitted} sessions admitted, refused: {refused:?}"
    );
    assert!(refused.len() >= 3, "{refused:?}");
    assert!(
        refused.iter().any(|r| r.contains("BadTooManySessions")),
        "{refused:?}"
    );
    // Once they are gone, a new session is served.
    namespace(&plant.url(), &Session::default()).await;
    plant.stop().await;
}
