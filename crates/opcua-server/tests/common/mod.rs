//! Shared by the integration tests: the demo plant (examples/dairy.toml with simulated
//! devices) served by an `opcua-server` sink, and third-party clients driven as processes
//! (asyncua through tests/peers/opcua_client.py, node-opcua through
//! tests/peers/node_client.js).

#![allow(dead_code)] // each test binary uses a different part

use std::path::{Path, PathBuf};

use backplane_security::Role;
use backplane_security::users::Users;
use serde_json::json;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use backplane_engine::{Engine, Registry};
use backplane_testkit::peers::python;
use backplane_testkit::{dairy, engine as support, net};
use serde_json::Value;

/// The plant namespace of examples/dairy.toml's gateway.
pub const NAMESPACE: &str = "urn:backplane:plant-a-edge:plant";
pub const FILLER1: &str = "acme-dairy/plant-a/packaging/line-1/filler";
pub const PASTEURIZER: &str = "acme-dairy/plant-a/processing/pasteurizer";

/// Every kind examples/dairy.toml names, the server, the alarms stage and the HTTP source
/// (the alarms test's fake device).
pub fn registry() -> Registry {
    let mut registry = backplane_engine::builtins();
    registry.add_stage("production", Arc::new(backplane_production::ProductionStageKind));
    registry.add_stage("alarms", Arc::new(backplane_alarms::AlarmsStageKind));
    registry.add_source("http", backplane_http::HttpKind);
    registry.add_sink("historian", backplane_historian::HistorianKind::new());
    registry.add_sink("opcua-server", backplane_opcua_server::OpcUaServerKind);
    registry.add_source("modbus", backplane_modbus::ModbusKind);
    registry
}

/// The `[[sinks]]` table of a server on `port` with `extra` keys.
pub fn server_table(port: u16, extra: &str) -> String {
    format!(
        "\n[[sinks]]\nname = \"plant-opcua\"\nkind = \"opcua-server\"\nlisten = \"127.0.0.1:{port}\"\n{extra}\n"
    )
}

/// Policy None for anonymous sessions beside the secure endpoints users log in on.
pub const MIXED: &str = "security_policies = [\"None\", \"Basic256Sha256\"]\nsecurity_modes = [\"none\", \"sign-and-encrypt\"]\nanonymous = true";

/// Policy None, anonymous: the plain set-up most tests use.
pub const OPEN: &str = "security_policies = [\"None\"]\nsecurity_modes = [\"none\"]\nanonymous = true";

/// The demo plant (simulated devices) with a server; the engine stops on [`Plant::stop`].
pub struct Plant {
    pub engine: Option<Engine>,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Plant {
    pub async fn start(server: &str) -> Plant {
        Plant::start_with(server, &|c| c).await
    }

    /// [`Plant::start`] with the configuration text edited by `edit` first.
    pub async fn start_with(server: &str, edit: &dyn Fn(String) -> String) -> Plant {
        Plant::start_config(&dairy::simulated(), server, edit).await
    }

    /// A server in another plant than the demo's (`base`, the configuration without it).
    pub async fn start_config(base: &str, server: &str, edit: &dyn Fn(String) -> String) -> Plant {
        let dir = tempfile::tempdir().unwrap();
        let port = net::free_port();
        let config = edit(format!("{base}\n{}", server_table(port, server)));
        let engine = support::start(&config, dir.path(), &registry());
        let up = tokio::task::spawn_blocking(move || net::wait_for_port(port, Duration::from_secs(60)))
            .await
            .unwrap();
        assert!(up, "the OPC UA server listens on {port}");
        Plant {
            engine: Some(engine),
            port,
            dir,
        }
    }

    pub fn url(&self) -> String {
        format!("opc.tcp://127.0.0.1:{}", self.port)
    }

    pub fn pki(&self) -> PathBuf {
        self.dir.path().join("opcua-server/pki")
    }

    pub async fn stop(mut self) {
        if let Some(engine) = self.engine.take() {
            engine.shutdown().await;
        }
    }
}

/// Adds `users = PATH` to the configuration's `[api]` table.
pub fn with_users(config: String, users: &Path) -> String {
    config.replacen("[api]\n", &format!("[api]\nusers = \"{}\"\n", users.display()), 1)
}

/// Options of a client session (security, user).
#[derive(Debug, Default, Clone)]
pub struct Session {
    pub args: Vec<String>,
}

impl Session {
    pub fn user(mut self, user: &str, password: &str) -> Session {
        self.args
            .extend(["--user".into(), user.into(), "--password".into(), password.into()]);
        self
    }

    /// The client checks the server's certificate against the certificates in `dir`.
    pub fn trusting(mut self, dir: &Path) -> Session {
        self.args.extend(["--trusted".into(), dir.display().to_string()]);
        self
    }

    pub fn secure(mut self, policy: &str, mode: &str, cert: &Path, key: &Path, app_uri: &str) -> Session {
        self.args.extend([
            "--policy".into(),
            policy.into(),
            "--mode".into(),
            mode.into(),
            "--cert".into(),
            cert.display().to_string(),
            "--key".into(),
            key.display().to_string(),
            "--app-uri".into(),
            app_uri.into(),
        ]);
        self
    }
}

/// Runs `ops` in one asyncua session: the results, or the connect failure's text.
pub async fn asyncua(url: &str, session: &Session, ops: Value) -> Result<Vec<Value>, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/opcua_client.py");
    let mut command = Command::new(python());
    command
        .arg(script)
        .arg(url)
        .arg(ops.to_string())
        .args(&session.args);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("run the asyncua client");
    let stdout = String::from_utf8_lossy(&output.stdout);
    for line in stdout.lines() {
        if let Some(json) = line.strip_prefix("RESULT ") {
            return Ok(serde_json::from_str(json).unwrap());
        }
        if let Some(reason) = line.strip_prefix("CONNECT_FAILED ") {
            return Err(reason.to_owned());
        }
    }
    panic!(
        "the asyncua client printed no result\nstdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `ns=N;s=ID`.
pub fn node(ns: u64, id: &str) -> String {
    format!("ns={ns};s={id}")
}

/// The namespace index of the plant, read by the client. A set-up step, not a behaviour
/// under test: a session refused on a loaded machine (the client's 30 s timeout) is tried
/// again, twice.
pub async fn namespace(url: &str, session: &Session) -> u64 {
    let mut last = String::new();
    for _ in 0..3 {
        match asyncua(
            url,
            session,
            serde_json::json!([{"op": "namespace", "uri": NAMESPACE}]),
        )
        .await
        {
            Ok(r) => return r[0].as_u64().unwrap(),
            Err(e) => last = e,
        }
    }
    panic!("no session to read the namespace index: {last}");
}

// ── Keys, users and trust ─────────────────────────────────────────────────────────

pub const PASSWORD: &str = "correct horse battery";
pub const CLIENT_URI: &str = "urn:acme:scada";

pub struct Keys {
    pub dir: tempfile::TempDir,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub users: PathBuf,
}

/// A client certificate (as a SCADA would have) and a users file with `anna`, operator,
/// and `victor`, viewer.
pub fn keys() -> Keys {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("scada.der"), dir.path().join("scada-key.der"));
    backplane_opcua::pki::write_self_signed(&cert, &key, CLIENT_URI, "scada", &["localhost"]).unwrap();
    let users = dir.path().join("users.toml");
    let mut file = Users::default();
    file.add_user("anna", Role::Operator, PASSWORD).unwrap();
    file.add_user("victor", Role::Viewer, PASSWORD).unwrap();
    file.save(&users).unwrap();
    Keys {
        dir,
        cert,
        key,
        users,
    }
}

pub fn files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default()
}

pub fn secure(keys: &Keys, policy: &str) -> Session {
    Session::default().secure(policy, "SignAndEncrypt", &keys.cert, &keys.key, CLIENT_URI)
}

/// The first session of an unknown client is refused and its certificate kept in
/// `rejected/`; an engineer moves it to `trusted/`.
pub async fn trust_client(plant: &Plant, session: &Session) {
    let refused = asyncua(&plant.url(), session, json!([])).await;
    assert!(refused.is_err(), "an unknown client certificate is refused");
    let rejected = files(&plant.pki().join("rejected"));
    assert_eq!(rejected.len(), 1, "the refused certificate is kept: {rejected:?}");
    let name = rejected[0].file_name().unwrap();
    std::fs::rename(&rejected[0], plant.pki().join("trusted").join(name)).unwrap();
}

/// Creates and releases work order `id` on line 1 through the production stage, as an MES
/// would; the production handle.
pub async fn released_work_order(plant: &Plant, id: &str) -> Arc<backplane_production::ProductionHandle> {
    use backplane_production::{Command, NewWorkOrder, ProductionHandle};
    let production = plant
        .engine
        .as_ref()
        .unwrap()
        .handle()
        .services()
        .get::<ProductionHandle>()
        .unwrap();
    for command in [
        Command::CreateWorkOrder(NewWorkOrder {
            id: id.into(),
            product: "milk-1l-whole".into(),
            asset: "packaging/line-1".into(),
            planned_quantity: Some(1000.0),
            ideal_rate_per_min: None,
            scheduled_start: None,
            scheduled_end: None,
        }),
        Command::ReleaseWorkOrder { id: id.into() },
    ] {
        production.execute(command, Some("test".into())).await.unwrap();
    }
    production
}
