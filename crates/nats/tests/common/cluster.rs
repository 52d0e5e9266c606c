//! A private three-node nats-server cluster with JetStream, on free loopback ports and in
//! a temporary directory, for tests that kill a node (`kill -9`). Dropping it kills every
//! node and removes their stores.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use backplane_testkit::net::{free_port, wait_for_port};

pub struct Node {
    pub name: String,
    pub port: u16,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Node {
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

pub struct Cluster {
    pub nodes: Vec<Node>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts nodes `n1`..`n3`, each with its own store directory and a config file
    /// routing to the other two.
    pub fn start() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let mut free = Vec::new();
        while free.len() < 6 {
            let port = free_port();
            if !free.contains(&port) {
                free.push(port);
            }
        }
        let ports: Vec<(u16, u16)> = free.chunks(2).map(|p| (p[0], p[1])).collect();
        let mut nodes = Vec::new();
        for (i, (port, cluster_port)) in ports.iter().enumerate() {
            let name = format!("n{}", i + 1);
            let routes: Vec<String> = ports
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, (_, c))| format!("\"nats-route://127.0.0.1:{c}\""))
                .collect();
            let store = dir.path().join(&name);
            let config = format!(
                "server_name: {name}\nlisten: \"127.0.0.1:{port}\"\n\
                 jetstream {{ store_dir: \"{}\" }}\n\
                 cluster {{ name: \"backplane-test\"\n listen: \"127.0.0.1:{cluster_port}\"\n routes: [{}] }}\n",
                store.display(),
                routes.join(", ")
            );
            let file = dir.path().join(format!("{name}.conf"));
            std::fs::write(&file, config).unwrap();
            let log = dir.path().join(format!("{name}.log"));
            let child = spawn(&file, &log);
            nodes.push(Node {
                name,
                port: *port,
                config: file,
                log,
                child: Some(child),
            });
        }
        let cluster = Cluster { nodes, _dir: dir };
        for node in &cluster.nodes {
            assert!(
                wait_for_port(node.port, Duration::from_secs(10)),
                "{} listens on {}",
                node.name,
                node.port
            );
        }
        cluster
    }

    /// Every node's URL, for a client's `servers`.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(Node::url).collect()
    }

    /// `kill -9` of the node named `name`: no goodbye, no flush.
    pub fn kill(&mut self, name: &str) {
        let node = self
            .nodes
            .iter_mut()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"));
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Cluster {
    /// Starts a killed node again on its store.
    pub fn restart(&mut self, name: &str) {
        let node = self
            .nodes
            .iter_mut()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"));
        assert!(node.child.is_none(), "{name} is running");
        node.child = Some(spawn(&node.config, &node.log));
        assert!(
            wait_for_port(node.port, Duration::from_secs(10)),
            "{name} listens again"
        );
    }
}

fn spawn(config: &Path, log: &Path) -> Child {
    Command::new(std::env::var("NATS_SERVER").unwrap_or_else(|_| "nats-server".into()))
        .arg("-c")
        .arg(config)
        .arg("-l")
        .arg(log)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nats-server is installed (apt-get install nats-server)")
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
