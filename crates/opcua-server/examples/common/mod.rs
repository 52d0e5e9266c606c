//! What the OPC UA server's benchmark and its instruction-count driver share: the
//! gateway's configuration (N tags in blocks of 100) and the asyncua client sessions.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub const PER_BLOCK: usize = 100;

/// The server's endpoint: security policy None, or Basic256Sha256 with mode Sign or
/// SignAndEncrypt (the client's certificate then has to be trusted, [`trust_clients`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    None,
    Sign,
    SignAndEncrypt,
}

impl Security {
    pub fn parse(s: &str) -> Security {
        match s {
            "none" => Security::None,
            "sign" => Security::Sign,
            "sign_and_encrypt" => Security::SignAndEncrypt,
            _ => panic!("security: none, sign or sign_and_encrypt, not `{s}`"),
        }
    }

    /// The sink's `security_policies` and `security_modes`.
    fn keys(self) -> (&'static str, &'static str) {
        match self {
            Security::None => ("None", "none"),
            Security::Sign => ("Basic256Sha256", "sign"),
            Security::SignAndEncrypt => ("Basic256Sha256", "sign_and_encrypt"),
        }
    }

    /// asyncua's policy and mode.
    fn client(self) -> Option<(&'static str, &'static str)> {
        match self {
            Security::None => None,
            Security::Sign => Some(("Basic256Sha256", "Sign")),
            Security::SignAndEncrypt => Some(("Basic256Sha256", "SignAndEncrypt")),
        }
    }
}

/// The benchmark client's certificate and key (made on first use).
pub const CLIENT_URI: &str = "urn:backplane:bench-client";

pub fn config(tags: usize, server_port: Option<u16>) -> String {
    config_with(tags, server_port, Security::None)
}

pub fn config_with(tags: usize, server_port: Option<u16>, security: Security) -> String {
    let mut c = String::from(
        "[gateway]\nname = \"bench\"\n[api]\nlisten = \"127.0.0.1:0\"\n[namespace]\nenterprise = \"bench\"\nsite = \"plant\"\n\n[models.Block.attributes]\n",
    );
    for a in 0..PER_BLOCK {
        writeln!(c, "v{a:03} = {{ type = \"uint\" }}").unwrap();
    }
    c.push_str("\n[[assets]]\npath = \"line\"\nlevel = \"line\"\n");
    for b in 0..tags.div_ceil(PER_BLOCK) {
        write!(
            c,
            "\n[[assets]]\npath = \"line/block-{b}\"\nmodel = \"Block\"\nsource = \"sim\"\n"
        )
        .unwrap();
        for a in 0..PER_BLOCK.min(tags - b * PER_BLOCK) {
            writeln!(c, "bindings.v{a:03} = {{ address = \"s{}\" }}", b * PER_BLOCK + a).unwrap();
        }
    }
    c.push_str("\n[[sources]]\nname = \"sim\"\nkind = \"simulator\"\nperiod = \"1s\"\n[sources.signals]\n");
    for t in 0..tags {
        writeln!(
            c,
            "s{t} = {{ signal = \"counter\", start = {t}, increment = 1, type = \"uint\" }}"
        )
        .unwrap();
    }
    if let Some(port) = server_port {
        let (policy, mode) = security.keys();
        write!(
            c,
            "\n[[sinks]]\nname = \"opcua\"\nkind = \"opcua-server\"\nlisten = \"127.0.0.1:{port}\"\n\
             security_policies = [\"{policy}\"]\nsecurity_modes = [\"{mode}\"]\nanonymous = true\n"
        )
        .unwrap();
    }
    c
}

pub struct Client {
    child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

/// Starts S asyncua sessions (tests/peers/bench_client.py) that each monitor `tags / S` of
/// the tags for `seconds` once told to count; returns once every one has subscribed.
pub fn subscribe(python: &str, url: &str, tags: usize, sessions: usize, seconds: u64) -> Vec<Client> {
    subscribe_with(python, url, tags, sessions, seconds, &[])
}

/// [`subscribe`] with the clients' security arguments ([`client_security`]).
pub fn subscribe_with(
    python: &str,
    url: &str,
    tags: usize,
    sessions: usize,
    seconds: u64,
    security: &[String],
) -> Vec<Client> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/bench_client.py");
    let per = tags.checked_div(sessions).unwrap_or(0);
    let mut clients: Vec<Client> = (0..sessions)
        .map(|s| {
            let mut child = Command::new(python)
                .arg(&script)
                .args([
                    url.to_owned(),
                    "2".into(),
                    (s * per).to_string(),
                    per.to_string(),
                    seconds.to_string(),
                ])
                .args(security)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap();
            let lines = BufReader::new(child.stdout.take().unwrap()).lines();
            Client { child, lines }
        })
        .collect();
    for c in &mut clients {
        c.wait_for("SUBSCRIBED");
    }
    clients
}

/// The clients' security arguments (policy, mode, certificate, key, application URI): a
/// client certificate made in `dir`.
pub fn client_security(security: Security, dir: &Path) -> Vec<String> {
    let Some((policy, mode)) = security.client() else {
        return Vec::new();
    };
    let (cert, key) = (dir.join("bench-client.der"), dir.join("bench-client-key.der"));
    backplane_opcua::pki::write_self_signed(&cert, &key, CLIENT_URI, "bench-client", &["localhost"]).unwrap();
    vec![
        policy.into(),
        mode.into(),
        cert.display().to_string(),
        key.display().to_string(),
        CLIENT_URI.into(),
    ]
}

/// Has the server trust the clients' certificate: one session is refused and its
/// certificate kept in `PKI/rejected/`, which is moved to `PKI/trusted/` (as an engineer
/// would).
pub fn trust_clients(python: &str, url: &str, pki: &Path, security: &[String]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/bench_client.py");
    let refused = Command::new(python)
        .arg(&script)
        .args([url, "2", "0", "1", "0"])
        .args(security)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!refused.success(), "an unknown client certificate is refused");
    let rejected = pki.join("rejected");
    for file in std::fs::read_dir(&rejected).unwrap() {
        let file = file.unwrap();
        std::fs::rename(file.path(), pki.join("trusted").join(file.file_name())).unwrap();
    }
}

impl Client {
    fn wait_for(&mut self, prefix: &str) -> String {
        for line in self.lines.by_ref() {
            let line = line.unwrap();
            if line.starts_with(prefix) {
                return line;
            }
        }
        panic!("a client ended before `{prefix}`");
    }
}

/// Tells every client to start counting.
pub fn start_counting(clients: &mut [Client]) {
    for c in clients {
        let stdin = c.child.stdin.as_mut().unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    }
}

/// The data changes all clients received while counting; waits for them to end.
pub fn received(clients: &mut [Client]) -> u64 {
    let n = clients
        .iter_mut()
        .map(|c| {
            c.wait_for("COUNT")
                .trim_start_matches("COUNT ")
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    for c in clients {
        let _ = c.child.wait();
    }
    n
}
