//! The OPC UA device: an async-opcua server with N `UInt32` variables under one folder,
//! every one set one higher twice per period, so every read and every publishing interval
//! holds a change for every tag whatever the phase between the device's clock and the
//! gateway's (once per period, two changes could fall into one interval and none into the
//! next: with a queue of 1 the gateway would get one value fewer).
//!
//! Not the gateway's dairy simulator (`backplane_opcua::spawn_simulator`): its load bank
//! changes every 100 ms whatever the period, five times this at 1 s, CPU taken from the
//! gateway on a small machine; and this crate links no gateway crate.
//!
//! Security: one endpoint, policy None, anonymous, and no certificate at all (the server
//! needs one only for secure endpoints): the benchmark measures the path, not the crypto.
//! Address space: namespace [`NAMESPACE_URI`] at index 2, folder `ns=2;s=Bench`, variables
//! `ns=2;i=1` … `ns=2;i=N` ([`node_address`]).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use opcua::server::address_space::{ObjectBuilder, VariableBuilder};
use opcua::server::diagnostics::NamespaceMetadata;
use opcua::server::node_manager::memory::{SimpleNodeManager, simple_node_manager};
use opcua::server::{ServerBuilder, ServerEndpoint, SubscriptionCache};
use opcua::types::{DataTypeId, DataValue, DateTime, NodeId, ObjectId, ObjectTypeId, Variant};

const NAMESPACE_URI: &str = "urn:backplane:bench-path";
/// Not the namespace's URI: the server's own namespace (index 1) is its application URI.
const APPLICATION_URI: &str = "urn:backplane:bench-path:device";
const NAMESPACE_INDEX: u16 = 2;

/// The address of tag `index` (from 0) in the gateway's configuration.
pub fn node_address(index: u32) -> String {
    format!("ns={NAMESPACE_INDEX};i={}", u64::from(index) + 1)
}

fn node_id(index: u32) -> NodeId {
    NodeId::new(NAMESPACE_INDEX, index + 1)
}

/// Serves `tags` variables on `listener` until the process ends, printing `listening PORT`
/// once it accepts connections.
pub fn serve(listener: std::net::TcpListener, tags: u32, period: Duration, dir: &Path) -> Result<(), String> {
    // One thread: the device must not take the gateway's cores.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    runtime.block_on(run(listener, tags, period, dir))
}

async fn run(listener: std::net::TcpListener, tags: u32, period: Duration, dir: &Path) -> Result<(), String> {
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::from_std(listener).map_err(|e| e.to_string())?;
    let bound: SocketAddr = listener.local_addr().map_err(|e| e.to_string())?;
    let mut builder = ServerBuilder::new()
        .application_name("bench-path OPC UA device")
        .application_uri(APPLICATION_URI)
        .product_uri(APPLICATION_URI)
        .create_sample_keypair(false)
        .pki_dir(dir.join("opcua-device-pki"))
        .host(bound.ip().to_string())
        .port(bound.port())
        .discovery_urls(vec!["/".to_owned()])
        .add_endpoint("none", ServerEndpoint::new_none("/", &["ANONYMOUS".to_owned()]))
        .with_node_manager(simple_node_manager(
            NamespaceMetadata {
                namespace_uri: NAMESPACE_URI.to_owned(),
                ..Default::default()
            },
            "bench",
        ));
    // 1 000 items per subscription (the library's default, which the gateway reads from
    // ServerCapabilities) and room for 100 000 tags: at most 10 subscriptions otherwise.
    let limits = builder.limits_mut();
    limits.subscriptions.max_subscriptions_per_session = 1000;
    limits.subscriptions.max_pending_publish_requests = 1000;
    // Reads of at most 1 000 nodes: with the library's default of 10 000, the gateway's one
    // Read of 10 000 nodes was answered BadDecodingError by this same server.
    limits.operational.max_nodes_per_read = 1000;
    let (server, handle) = builder.build()?;
    if handle.get_namespace_index(NAMESPACE_URI) != Some(NAMESPACE_INDEX) {
        return Err(format!(
            "namespace {NAMESPACE_URI} is not at index {NAMESPACE_INDEX}"
        ));
    }
    let manager = handle
        .node_managers()
        .get_of_type::<SimpleNodeManager>()
        .ok_or("no simple node manager")?;
    build(&manager, tags);
    let cache: Arc<SubscriptionCache> = handle.subscriptions().clone();
    let ids: Vec<NodeId> = (0..tags).map(node_id).collect();
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(period / 2);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut tick: u32 = 0;
        loop {
            interval.tick().await;
            tick = tick.wrapping_add(1);
            let now = DateTime::now();
            let values = ids.iter().zip(0u32..).map(|(id, i)| {
                (
                    id,
                    None,
                    DataValue::new_at(Variant::UInt32(i.wrapping_add(tick)), now),
                )
            });
            if let Err(e) = manager.set_values(&cache, values) {
                eprintln!("serve-opcua: cannot set the values: {e}");
            }
        }
    });
    println!("listening {}", bound.port());
    server.run_with(listener).await
}

fn build(manager: &SimpleNodeManager, tags: u32) {
    let space = manager.address_space();
    let mut space = space.write();
    let folder = NodeId::new(NAMESPACE_INDEX, "Bench");
    ObjectBuilder::new(&folder, "Bench", "Bench")
        .organized_by(ObjectId::ObjectsFolder)
        .has_type_definition(ObjectTypeId::FolderType)
        .insert(&mut *space);
    for i in 0..tags {
        let name = format!("v{i:06}");
        VariableBuilder::new(&node_id(i), &name, &name)
            .data_type(DataTypeId::UInt32)
            .value(Variant::UInt32(i))
            .organized_by(folder.clone())
            .insert(&mut *space);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_count_from_one_in_the_benchmark_namespace() {
        assert_eq!(node_address(0), "ns=2;i=1");
        assert_eq!(node_address(9_999), "ns=2;i=10000");
        assert_eq!(node_id(0), NodeId::new(2, 1u32));
    }
}
