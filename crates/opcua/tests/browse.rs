//! `backplane browse` for OPC UA: the tree of an asyncua server and of the dairy simulator,
//! selection by wildcard and browse path, and TOML that the configuration loader (what
//! `backplane check` runs) accepts as it is.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod common;

use std::path::Path;

use backplane_connector::hooks::Options;
use backplane_opcua::BrowseArgs;
use backplane_testkit::net::free_port;
use common::Peer;

/// As on the command line after `backplane browse`: the URL, then `--name value` pairs.
fn args(list: &[&str]) -> BrowseArgs {
    let mut o = Options::default();
    for pair in list[1..].chunks(2) {
        o.push(pair[0].trim_start_matches("--"), pair[1]);
    }
    BrowseArgs::from_options(list[0], &o).unwrap()
}

/// What `backplane check` does with a file: every key, type and address checked.
fn check(snippet: &str) {
    let text = format!(
        "[namespace]\nenterprise = \"acme\"\nsite = \"lab\"\n[[assets]]\npath = \"area\"\nlevel = \"area\"\n\
         [[assets]]\npath = \"area/line\"\nlevel = \"line\"\n{snippet}"
    );
    let registry = common::registry();
    if let Err(d) = backplane_config::load_str(&text, Path::new("browse.toml"), &registry.catalog()) {
        panic!(
            "{}\n---\n{text}",
            d.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browse_of_asyncua_prints_the_tree_and_emits_bindings_check_accepts() {
    let port = free_port();
    let _peer = Peer::start(port, &["--many".into(), "3".into()]);
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let url = format!("opc.tcp://127.0.0.1:{port}");
    let browse = args(&[
        &url,
        "--security-policy",
        "None",
        "--depth",
        "2",
        "--select",
        "Test/Types.*,Test/Arrays.Int32,Test/Motor,**/V00001",
        "--pki-dir",
        pki.to_str().unwrap(),
    ]);
    let report = backplane_opcua::browse(browse.options().unwrap()).await.unwrap();
    let tree = report.to_string();
    let line = |needle: &str| {
        tree.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle} in\n{tree}"))
            .to_owned()
    };
    let double = line("ns=2;s=Types.Double");
    for part in ["Types.Double", "Variable", "Double", "read", "3.25"] {
        assert!(double.contains(part), "{double}");
    }
    assert!(line("ns=2;s=Arrays.Int32").contains("Int32[]"));
    assert!(line("ns=2;s=Test ").contains("Object"));
    assert!(line("ns=2;s=Many.00001").contains("V00001"));
    // The standard Server object is listed, not descended into.
    assert!(
        tree.contains("i=2253") && !tree.contains("ServerStatus"),
        "{tree}"
    );

    let toml = report.toml();
    assert!(
        toml.contains("bindings.test_types_double = { address = \"ns=2;s=Types.Double\" }"),
        "{toml}"
    );
    assert!(
        toml.contains("test_arrays_int32 = { type = \"int[]\" }"),
        "{toml}"
    );
    assert!(toml.contains("many_v00001 = { type = \"float\" }"), "{toml}");
    assert!(toml.contains("# skipped Test/Motor"), "{toml}");
    assert!(toml.contains("field=NAME"), "{toml}");
    assert!(!toml.contains("Many.00002"), "only the selection: {toml}");
    assert!(toml.contains("security_policy = \"None\""), "{toml}");
    check(&toml);

    // By browse path: one level below Test.
    let by_path = args(&[
        &url,
        "--security-policy",
        "None",
        "--node",
        "/Objects/Test",
        "--depth",
        "1",
        "--pki-dir",
        pki.to_str().unwrap(),
    ]);
    let report = by_path.run().await.unwrap();
    // The same findings as data, for the API's discovery: a typed variable with its binding.
    let counter = report
        .signals
        .iter()
        .find(|s| s.address == "ns=2;s=Counter")
        .unwrap_or_else(|| panic!("{:?}", report.signals));
    assert_eq!(counter.decodings.len(), 1);
    assert!(
        counter.decodings[0]
            .binding
            .ends_with("= { address = \"ns=2;s=Counter\" }"),
        "{counter:?}"
    );
    assert!(
        report.source.contains("security_policy = \"None\""),
        "{}",
        report.source
    );
    let out = report.text;
    assert!(out.contains("below /Objects/Test"), "{out}");
    assert!(
        out.contains("ns=2;s=Counter") && !out.contains("Many.00000"),
        "{out}"
    );
    check(&out[out.find("# From `backplane browse`").unwrap()..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browse_of_the_dairy_simulator_uses_the_strongest_security_and_the_trust_list() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("opcua/pki");
    let (addr, simulator) = backplane_opcua::spawn_dairy_simulator("127.0.0.1:0".parse().unwrap(), &pki)
        .await
        .unwrap();
    let url = format!("opc.tcp://127.0.0.1:{}", addr.port());
    let out = args(&[
        &url,
        "--node",
        "ns=2;s=Filler2",
        "--pki-dir",
        pki.to_str().unwrap(),
    ])
    .run()
    .await
    .unwrap()
    .text;
    assert!(out.contains("Aes256_Sha256_RsaPss/sign-and-encrypt"), "{out}");
    for node in [
        "Filler2.Status",
        "Filler2.Speed",
        "Filler2.GoodCount",
        "Filler2.ProductTemp",
    ] {
        assert!(out.contains(&format!("ns=2;s={node}")), "{node}: {out}");
    }
    assert!(!out.contains("EURange"), "properties stay out of the tree: {out}");
    assert!(out.contains("product_temp = { type = \"float\" }"), "{out}");
    check(&out[out.find("# From `backplane browse`").unwrap()..]);

    // A server nobody trusted: refused, and its certificate parked in rejected/.
    let other = dir.path().join("other-pki");
    let e = args(&[&url, "--pki-dir", other.to_str().unwrap()])
        .run()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("trust it by moving that file"), "{e}");
    assert_eq!(std::fs::read_dir(other.join("rejected")).unwrap().count(), 1);
    simulator.stopped().await;
}
