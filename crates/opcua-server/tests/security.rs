//! Security of the server, seen by asyncua: the three secure policies, users of the users
//! file, no anonymous or unsecured sessions unless configured, and trust both ways (the
//! server keeps unknown client certificates in `rejected/` until an engineer moves them to
//! `trusted/`; the client trusts the server only with its certificate).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::json;

async fn start(keys: &Keys) -> Plant {
    let users = keys.users.clone();
    Plant::start_with("", &move |c| with_users(c, &users)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_client_certificates_are_refused_until_an_engineer_trusts_them() {
    let keys = keys();
    let plant = start(&keys).await;
    let session = secure(&keys, "Basic256Sha256").user("anna", PASSWORD);
    trust_client(&plant, &session).await;
    let ns = asyncua(
        &plant.url(),
        &session,
        json!([{"op": "namespace", "uri": NAMESPACE}]),
    )
    .await
    .unwrap();
    assert!(ns[0].as_u64().unwrap() >= 2);
    plant.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_checks_certificates_trusts_the_server_by_its_certificate() {
    let keys = keys();
    let plant = start(&keys).await;
    let client_trust = keys.dir.path().join("client-trusted");
    // asyncua refuses an empty trust list: it holds another server's certificate.
    backplane_opcua::pki::write_self_signed(
        &client_trust.join("other-server.der"),
        &keys.dir.path().join("other-server-key.der"),
        "urn:acme:other",
        "other",
        &["localhost"],
    )
    .unwrap();
    let session = secure(&keys, "Basic256Sha256")
        .user("anna", PASSWORD)
        .trusting(&client_trust);
    trust_client(&plant, &session).await;
    let refused = asyncua(&plant.url(), &session, json!([])).await;
    assert!(refused.is_err(), "the client does not trust the server yet");
    std::fs::copy(plant.pki().join("own/cert.der"), client_trust.join("gateway.der")).unwrap();
    asyncua(&plant.url(), &session, json!([])).await.unwrap();
    plant.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_secure_policy_admits_users_of_the_users_file_and_nobody_else() {
    let keys = keys();
    let plant = start(&keys).await;
    trust_client(&plant, &secure(&keys, "Basic256Sha256").user("anna", PASSWORD)).await;
    for policy in ["Basic256Sha256", "Aes128Sha256RsaOaep", "Aes256Sha256RsaPss"] {
        let r = asyncua(
            &plant.url(),
            &secure(&keys, policy).user("anna", PASSWORD),
            json!([{"op": "namespace", "uri": NAMESPACE}]),
        )
        .await;
        assert!(r.is_ok(), "{policy}: {r:?}");
    }
    let wrong = asyncua(
        &plant.url(),
        &secure(&keys, "Basic256Sha256").user("anna", "not her password"),
        json!([]),
    )
    .await;
    assert!(wrong.is_err(), "a wrong password is refused");
    let stranger = asyncua(
        &plant.url(),
        &secure(&keys, "Basic256Sha256").user("mallory", PASSWORD),
        json!([]),
    )
    .await;
    assert!(stranger.is_err(), "an unknown user is refused");
    let anonymous = asyncua(&plant.url(), &secure(&keys, "Basic256Sha256"), json!([])).await;
    assert!(
        anonymous.is_err(),
        "anonymous sessions are refused unless configured"
    );
    let unsecured = asyncua(&plant.url(), &Session::default(), json!([])).await;
    assert!(
        unsecured.is_err(),
        "no endpoint without security unless configured"
    );
    plant.stop().await;
}
