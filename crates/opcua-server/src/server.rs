//! Building and starting the async-opcua server: endpoints (policy × mode), the
//! application certificate and trust list, the operation limits, the authenticator, the
//! condition methods and the plant's node manager.
//!
//! Trust: a client certificate is accepted only when its file is in `PKI/trusted/`; an
//! unknown one is refused and kept in `PKI/rejected/` for an engineer to move (async-opcua's
//! certificate store does this, `trust_client_certs` stays off).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use backplane_opcua::config::{Mode, Policy};
use backplane_opcua::pki::{OwnCertificate, ensure_application_certificate};
use opcua::server::address_space::AddressSpace;
use opcua::server::diagnostics::DiagnosticsNodeManagerBuilder;
use opcua::server::diagnostics::NamespaceMetadata;
use opcua::server::node_manager::ServerContext;
use opcua::server::node_manager::memory::{CoreNodeManagerBuilder, InMemoryNodeManagerBuilder};
use opcua::server::{ANONYMOUS_USER_TOKEN_ID, ServerBuilder, ServerEndpoint, ServerHandle};
use tokio::net::TcpListener;

use crate::condition_methods::{AlarmDoor, ConditionMethods};
use crate::config::ServerSettings;
use crate::manager::{Doors, PlantManager, PlantManagerImpl};

/// What the sink keeps of a started server.
pub struct Running {
    pub handle: ServerHandle,
    pub manager: Arc<PlantManager>,
    pub address: SocketAddr,
    pub server: tokio::task::JoinHandle<Result<(), String>>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

/// The gateway-side inputs of a server besides its settings.
#[derive(Debug)]
pub struct ServerInputs<'a> {
    pub gateway: &'a str,
    pub data_dir: &'a Path,
    pub doors: Doors,
    pub alarms: AlarmDoor,
}

/// The application URI of a gateway's OPC UA server (its certificate carries it).
pub fn application_uri(gateway: &str) -> String {
    format!("urn:backplane:{gateway}:opcua-server")
}

/// `DATA_DIR/opcua-server/pki`.
pub fn default_pki_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("opcua-server").join("pki")
}

/// The endpoints of every configured policy × mode pair that OPC UA allows (policy None
/// with mode None only, secure policies with sign or sign-and-encrypt).
pub fn endpoints(settings: &ServerSettings) -> Vec<(String, ServerEndpoint)> {
    let users: Vec<String> = if settings.anonymous {
        vec![ANONYMOUS_USER_TOKEN_ID.to_owned()]
    } else {
        Vec::new()
    };
    let mut out = Vec::new();
    for policy in &settings.policies {
        for mode in &settings.modes {
            let allowed = match policy {
                Policy::None => *mode == Mode::None,
                _ => *mode != Mode::None,
            };
            if allowed {
                let id = format!("{}_{}", policy.name(), mode.name()).to_ascii_lowercase();
                out.push((
                    id,
                    ServerEndpoint::new("/", policy.to_opcua(), mode.to_opcua(), &users),
                ));
            }
        }
    }
    out
}

/// Binds, builds and starts the server.
pub async fn start(settings: &ServerSettings, inputs: ServerInputs<'_>) -> Result<Running, String> {
    let listener = TcpListener::bind(settings.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", settings.listen))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let pki_dir = settings
        .pki_dir
        .clone()
        .unwrap_or_else(|| default_pki_dir(inputs.data_dir));
    let app_uri = application_uri(inputs.gateway);
    let app_name = format!("Backplane {} OPC UA server", inputs.gateway);
    // Even with policy None only: async-opcua loads it for every secure channel.
    match ensure_application_certificate(&pki_dir, &app_uri, &app_name).map_err(|e| e.to_string())? {
        OwnCertificate::Created(path) => {
            tracing::info!(certificate = %path.display(), "created the OPC UA server's certificate: give it to clients to trust")
        }
        OwnCertificate::Existing(_) => {}
        OwnCertificate::Mismatch(_, message) => tracing::warn!("{message}"),
    }
    let host = settings.host_name.clone().unwrap_or_else(|| {
        if address.ip().is_unspecified() {
            // Clients connect by name; the machine's name is what its certificate carries.
            std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".to_owned())
        } else {
            address.ip().to_string()
        }
    });
    let namespace_uri = settings.namespace_uri(inputs.gateway);
    let doors = inputs.doors.clone();
    let topology = doors.topology.clone();
    let history = inputs.doors.history.is_some();
    let uri = namespace_uri.clone();
    let alarm_door = inputs.alarms.clone();
    let condition_index = alarm_door.index.clone();
    let node_manager =
        InMemoryNodeManagerBuilder::new(move |context: ServerContext, space: &mut AddressSpace| {
            let index = context.type_tree.write().namespaces_mut().add_namespace(&uri);
            space.add_namespace(&uri, index);
            let plant = crate::space::build(space, index, &topology, history);
            crate::methods::build(space, index);
            crate::events::build(space, index);
            let conditions = Arc::new(crate::conditions::build(space, index, &topology));
            let _ = condition_index.set(conditions.clone());
            PlantManagerImpl::new(
                NamespaceMetadata {
                    namespace_uri: uri,
                    namespace_index: index,
                    ..Default::default()
                },
                plant,
                conditions,
                doors,
            )
        });
    let l = &settings.limits;
    // The condition methods come before the core node manager, which would otherwise
    // answer their calls (crate::condition_methods).
    let mut builder = ServerBuilder::new()
        .without_node_managers()
        .with_node_manager(move |context: ServerContext| ConditionMethods::new(alarm_door, &context))
        .with_node_manager(InMemoryNodeManagerBuilder::new(CoreNodeManagerBuilder))
        .with_node_manager(DiagnosticsNodeManagerBuilder)
        .application_name(app_name)
        .application_uri(app_uri.clone())
        .product_uri("urn:backplane")
        .create_sample_keypair(false)
        .pki_dir(pki_dir)
        .trust_client_certs(false)
        .host(host)
        .port(address.port())
        .discovery_urls(vec!["/".to_owned()])
        .max_sessions(l.max_sessions)
        .max_message_size(l.max_message_size)
        .max_chunk_count(l.max_chunk_count)
        .with_authenticator(inputs.doors.accounts.clone())
        .with_node_manager(node_manager);
    for (id, endpoint) in endpoints(settings) {
        builder = builder.add_endpoint(id, endpoint);
    }
    let limits = builder.limits_mut();
    limits.subscriptions.max_subscriptions_per_session = l.max_subscriptions_per_session;
    limits.subscriptions.max_monitored_items_per_sub = l.max_monitored_items_per_subscription;
    limits.subscriptions.max_monitored_item_queue_size = l.max_queue_size;
    limits.subscriptions.min_sampling_interval_ms = l.min_sampling_interval.as_secs_f64() * 1000.0;
    limits.operational.max_nodes_per_read = l.max_nodes_per_read;
    limits.operational.max_nodes_per_write = l.max_nodes_per_write;
    limits.operational.max_nodes_per_browse = l.max_nodes_per_browse;
    limits.operational.max_nodes_per_method_call = l.max_nodes_per_method_call;
    limits.operational.max_monitored_items_per_call = l.max_monitored_items_per_call;
    limits.operational.max_nodes_per_history_read_data = l.max_nodes_per_history_read;
    limits.operational.max_nodes_per_history_read_events = l.max_nodes_per_history_read;
    let (server, handle) = builder.build()?;
    let manager = handle
        .node_managers()
        .get_of_type::<PlantManager>()
        .ok_or("the plant's node manager is missing (a bug)")?;
    let server = tokio::spawn(server.run_with(listener));
    tracing::info!(url = %format!("opc.tcp://{address}"), namespace = %namespace_uri, "OPC UA server listening");
    Ok(Running {
        handle,
        manager,
        address,
        server,
    })
}
