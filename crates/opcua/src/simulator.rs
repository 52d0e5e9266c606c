//! An OPC UA server playing filler line 2 (vendor B) and the pasteurizer of the dairy demo,
//! for demos and benchmarks (conformance is tested against asyncua, not against this).
//!
//! Address space, namespace `urn:backplane:dairy` (index [`NAMESPACE_INDEX`]):
//!
//! | node id                 | type   | meaning                                                     |
//! |-------------------------|--------|-------------------------------------------------------------|
//! | `ns=2;s=Filler2`        | object | line 2 filler, vendor B                                     |
//! | `ns=2;s=Filler2.Status` | UInt16 | 0 stopped, 10 idle, 20 running, 90 fault (15 s steps)       |
//! | `ns=2;s=Filler2.Speed`  | Float  | bottles per hour: about 24 000 while running, else 0        |
//! | `ns=2;s=Filler2.GoodCount`   | UInt32 | good bottles, counts while running                     |
//! | `ns=2;s=Filler2.RejectCount` | UInt32 | rejected bottles, one per 60 good ones                 |
//! | `ns=2;s=Filler2.ProductTemp` | Double | product temperature, °C, about 4.2                     |
//! | `ns=2;s=HTST`           | object | the HTST pasteurizer                                        |
//! | `ns=2;s=HTST.HoldTemp`  | Double | holding tube temperature, °C, about 72.6                    |
//! | `ns=2;s=HTST.Flow`      | Double | product flow, m³/h, 16.5 to 19.5                            |
//! | `ns=2;s=HTST.Status`    | UInt16 | status word: bit 0 running, bit 2 divert valve (20 s steps) |
//! | `ns=2;s=HTST.BatchNumber` | UInt32 | the batch being pasteurized: 4711, then one more every 2 min |
//!
//! [`spawn_simulator`] can add a load bank for benchmarks: `ns=2;s=Load.NNNNN` (UInt32),
//! each `N + tick`, so every variable changes every 100 ms.
//!
//! Analog variables carry `EURange` and `EngineeringUnits` properties (so percent deadbands
//! work). Values change every 100 ms with source timestamps.
//!
//! Security: endpoints None, Basic256Sha256, Aes128_Sha256_RsaOaep and Aes256_Sha256_RsaPss
//! (sign and sign-and-encrypt), anonymous login. The server accepts any client certificate
//! (it is a demo device on loopback), and it writes its own certificate into the gateway's
//! `trusted/` folder, so a gateway using the same PKI directory trusts it without a step
//! by the user; no other server is trusted that way.

use std::f64::consts::TAU;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use opcua::crypto::SecurityPolicy;
use opcua::server::address_space::{ObjectBuilder, VariableBuilder};
use opcua::server::diagnostics::NamespaceMetadata;
use opcua::server::node_manager::memory::{SimpleNodeManager, simple_node_manager};
use opcua::server::{ServerBuilder, ServerEndpoint, ServerHandle, SubscriptionCache};
use opcua::types::{
    DataTypeId, DataValue, DateTime, EUInformation, ExtensionObject, LocalizedText, MessageSecurityMode,
    NodeId, ObjectId, ObjectTypeId, Range, UAString, VariableTypeId, Variant,
};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The simulator's namespace.
pub const NAMESPACE_URI: &str = "urn:backplane:dairy";
/// Its index in the simulator's namespace array.
pub const NAMESPACE_INDEX: u16 = 2;
const APPLICATION_URI: &str = "urn:backplane:dairy-simulator";
const STATES: [u16; 11] = [10, 20, 20, 20, 20, 20, 90, 10, 20, 20, 0];
const STATE_STEP: f64 = 15.0;
const STATUS_WORDS: [u16; 6] = [1, 1, 1, 5, 1, 1];
/// The pasteurizer's first batch number, and how long each batch runs (seconds).
const FIRST_BATCH: u32 = 4711;
const BATCH_STEP: f64 = 120.0;
const STATUS_STEP: f64 = 20.0;
const TICK: Duration = Duration::from_millis(100);

/// A running simulator. Dropping it stops the server.
pub struct DairySimulator {
    handle: ServerHandle,
    server: JoinHandle<()>,
    ticker: JoinHandle<()>,
}

impl std::fmt::Debug for DairySimulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DairySimulator").finish_non_exhaustive()
    }
}

impl DairySimulator {
    /// Stops the server (clients see the connection close).
    pub fn stop(&self) {
        self.handle.cancel();
        self.ticker.abort();
    }

    /// Stops the server at once, like the Modbus simulator's `JoinHandle::abort`.
    pub fn abort(&self) {
        self.stop();
        self.server.abort();
    }

    /// Waits until the server has stopped.
    pub async fn stopped(mut self) {
        self.stop();
        let _ = (&mut self.server).await;
    }
}

impl Drop for DairySimulator {
    fn drop(&mut self) {
        self.abort();
    }
}

/// The model behind the variables, advanced one tick at a time.
#[derive(Debug, Clone, PartialEq)]
struct Dairy {
    tick: u64,
    good: u32,
    rejects: u32,
    since_reject: u32,
    /// Bottles filled but not yet counted (fractions per tick).
    pending: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Snapshot {
    status: u16,
    speed: f32,
    good: u32,
    rejects: u32,
    product_temp: f64,
    hold_temp: f64,
    flow: f64,
    status_word: u16,
    batch: u32,
}

impl Dairy {
    fn new() -> Dairy {
        Dairy {
            tick: 0,
            good: 120_000,
            rejects: 310,
            since_reject: 0,
            pending: 0.0,
        }
    }

    fn step(&mut self) -> Snapshot {
        let t = self.tick as f64 * TICK.as_secs_f64();
        let status = STATES[(t / STATE_STEP) as usize % STATES.len()];
        let running = status == 20;
        let speed = if running {
            24_000.0 + 360.0 * (TAU * t / 45.0).sin()
        } else {
            0.0
        };
        self.pending += speed / 3600.0 * TICK.as_secs_f64();
        let whole = self.pending.floor();
        self.pending -= whole;
        let filled = whole as u32;
        self.good = self.good.wrapping_add(filled);
        self.since_reject += filled;
        if self.since_reject >= 60 {
            self.since_reject -= 60;
            self.rejects = self.rejects.wrapping_add(1);
        }
        self.tick += 1;
        Snapshot {
            status,
            speed: speed as f32,
            good: self.good,
            rejects: self.rejects,
            product_temp: 4.2 + 0.45 * (TAU * t / 120.0).sin() + 0.1 * (TAU * t / 7.0).sin(),
            hold_temp: 72.6 + 0.4 * (TAU * t / 120.0).sin(),
            flow: 18.0 + 1.5 * (TAU * t / 90.0).sin(),
            status_word: STATUS_WORDS[(t / STATUS_STEP) as usize % STATUS_WORDS.len()],
            batch: FIRST_BATCH + (t / BATCH_STEP) as u32,
        }
    }
}

fn node(name: &str) -> NodeId {
    NodeId::new(NAMESPACE_INDEX, name)
}

/// One analog or discrete variable: (node name, display name, data type, initial value,
/// optional (unit, EU range)).
type Spec = (
    &'static str,
    &'static str,
    DataTypeId,
    Variant,
    Option<(&'static str, f64, f64)>,
);

fn specs() -> Vec<(&'static str, &'static str, Vec<Spec>)> {
    vec![
        (
            "Filler2",
            "Line 2 filler (vendor B)",
            vec![
                (
                    "Filler2.Status",
                    "Status",
                    DataTypeId::UInt16,
                    Variant::UInt16(10),
                    None,
                ),
                (
                    "Filler2.Speed",
                    "Speed",
                    DataTypeId::Float,
                    Variant::Float(0.0),
                    Some(("bottle/h", 0.0, 36_000.0)),
                ),
                (
                    "Filler2.GoodCount",
                    "GoodCount",
                    DataTypeId::UInt32,
                    Variant::UInt32(0),
                    None,
                ),
                (
                    "Filler2.RejectCount",
                    "RejectCount",
                    DataTypeId::UInt32,
                    Variant::UInt32(0),
                    None,
                ),
                (
                    "Filler2.ProductTemp",
                    "ProductTemp",
                    DataTypeId::Double,
                    Variant::Double(4.2),
                    Some(("°C", 0.0, 20.0)),
                ),
            ],
        ),
        (
            "HTST",
            "HTST pasteurizer",
            vec![
                (
                    "HTST.HoldTemp",
                    "HoldTemp",
                    DataTypeId::Double,
                    Variant::Double(72.6),
                    Some(("°C", 60.0, 90.0)),
                ),
                (
                    "HTST.Flow",
                    "Flow",
                    DataTypeId::Double,
                    Variant::Double(18.0),
                    Some(("m³/h", 0.0, 30.0)),
                ),
                (
                    "HTST.Status",
                    "Status",
                    DataTypeId::UInt16,
                    Variant::UInt16(1),
                    None,
                ),
                (
                    "HTST.BatchNumber",
                    "BatchNumber",
                    DataTypeId::UInt32,
                    Variant::UInt32(FIRST_BATCH),
                    None,
                ),
            ],
        ),
    ]
}

fn build_address_space(manager: &SimpleNodeManager) {
    let space = manager.address_space();
    let mut space = space.write();
    for (object, display, variables) in specs() {
        let object_id = node(object);
        ObjectBuilder::new(&object_id, object, display)
            .organized_by(ObjectId::ObjectsFolder)
            .has_type_definition(ObjectTypeId::BaseObjectType)
            .insert(&mut *space);
        for (name, browse, data_type, value, analog) in variables {
            let id = node(name);
            VariableBuilder::new(&id, browse, browse)
                .data_type(data_type)
                .value(value)
                .component_of(object_id.clone())
                .has_type_definition(if analog.is_some() {
                    VariableTypeId::AnalogItemType
                } else {
                    VariableTypeId::BaseDataVariableType
                })
                .insert(&mut *space);
            if let Some((unit, low, high)) = analog {
                let range_id = node(&format!("{name}.EURange"));
                VariableBuilder::new(&range_id, "EURange", "EURange")
                    .data_type(DataTypeId::Range)
                    .value(ExtensionObject::from_message(Range { low, high }))
                    .property_of(id.clone())
                    .has_type_definition(VariableTypeId::PropertyType)
                    .insert(&mut *space);
                let units_id = node(&format!("{name}.EngineeringUnits"));
                let units = EUInformation {
                    namespace_uri: UAString::from("http://www.opcfoundation.org/UA/units/un/cefact"),
                    unit_id: -1,
                    display_name: LocalizedText::new("", unit),
                    description: LocalizedText::new("", unit),
                };
                VariableBuilder::new(&units_id, "EngineeringUnits", "EngineeringUnits")
                    .data_type(DataTypeId::EUInformation)
                    .value(ExtensionObject::from_message(units))
                    .property_of(id)
                    .has_type_definition(VariableTypeId::PropertyType)
                    .insert(&mut *space);
            }
        }
    }
}

fn load_node(i: usize) -> NodeId {
    node(&format!("Load.{i:05}"))
}

fn build_load_bank(manager: &SimpleNodeManager, count: usize) {
    if count == 0 {
        return;
    }
    let space = manager.address_space();
    let mut space = space.write();
    let folder = node("Load");
    ObjectBuilder::new(&folder, "Load", "Load bank")
        .organized_by(ObjectId::ObjectsFolder)
        .has_type_definition(ObjectTypeId::FolderType)
        .insert(&mut *space);
    for i in 0..count {
        let name = format!("L{i:05}");
        VariableBuilder::new(&load_node(i), &name, &name)
            .data_type(DataTypeId::UInt32)
            .value(Variant::UInt32(i as u32))
            .organized_by(folder.clone())
            .insert(&mut *space);
    }
}

fn publish_load(manager: &SimpleNodeManager, subscriptions: &SubscriptionCache, ids: &[NodeId], tick: u64) {
    let now = DateTime::now();
    let result = manager.set_values(
        subscriptions,
        ids.iter().enumerate().map(|(i, id)| {
            let v = (i as u64).wrapping_add(tick) as u32;
            (id, None, DataValue::new_at(Variant::UInt32(v), now))
        }),
    );
    if let Err(e) = result {
        tracing::warn!("dairy simulator: cannot update the load bank: {e}");
    }
}

fn publish(manager: &SimpleNodeManager, subscriptions: &SubscriptionCache, s: &Snapshot) {
    let now = DateTime::now();
    let values: [(NodeId, Variant); 9] = [
        (node("Filler2.Status"), Variant::UInt16(s.status)),
        (node("Filler2.Speed"), Variant::Float(s.speed)),
        (node("Filler2.GoodCount"), Variant::UInt32(s.good)),
        (node("Filler2.RejectCount"), Variant::UInt32(s.rejects)),
        (node("Filler2.ProductTemp"), Variant::Double(s.product_temp)),
        (node("HTST.HoldTemp"), Variant::Double(s.hold_temp)),
        (node("HTST.Flow"), Variant::Double(s.flow)),
        (node("HTST.Status"), Variant::UInt16(s.status_word)),
        (node("HTST.BatchNumber"), Variant::UInt32(s.batch)),
    ];
    let result = manager.set_values(
        subscriptions,
        values
            .iter()
            .map(|(id, v)| (id, None, DataValue::new_at(v.clone(), now))),
    );
    if let Err(e) = result {
        tracing::warn!("dairy simulator: cannot update its variables: {e}");
    }
}

fn endpoints() -> Vec<(String, ServerEndpoint)> {
    let users = ["ANONYMOUS".to_owned()];
    let mut out = vec![("none".to_owned(), ServerEndpoint::new_none("/", &users))];
    for policy in [
        SecurityPolicy::Basic256Sha256,
        SecurityPolicy::Aes128Sha256RsaOaep,
        SecurityPolicy::Aes256Sha256RsaPss,
    ] {
        for mode in [MessageSecurityMode::Sign, MessageSecurityMode::SignAndEncrypt] {
            out.push((
                format!("{}_{mode}", policy.to_str()),
                ServerEndpoint::new("/", policy, mode, &users),
            ));
        }
    }
    out
}

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimulatorError {
    /// The address is taken or not local.
    #[error("dairy simulator: cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// The bound socket's address could not be read.
    #[error("dairy simulator: {0}")]
    LocalAddress(#[source] std::io::Error),
    /// The blocking task that creates the simulator's key pair did not finish.
    #[error("dairy simulator: {0}")]
    CertificateTask(#[source] tokio::task::JoinError),
    /// Its key pair, or trusting its certificate in the gateway's PKI directory.
    #[error(transparent)]
    Pki(#[from] crate::pki::PkiError),
    /// async-opcua refused the server configuration; its reason, as it words it.
    #[error("dairy simulator: {0}")]
    Server(String),
    /// Its certificate could not be read back to trust it.
    #[error("dairy simulator: its certificate: {0}")]
    Certificate(#[source] std::io::Error),
    /// The server was built without its node manager (a bug).
    #[error("dairy simulator: no node manager")]
    NoNodeManager,
    /// The addresses in the docs and tests assume the namespace's index (a bug).
    #[error("dairy simulator: namespace {NAMESPACE_URI} is not at index {NAMESPACE_INDEX}")]
    NamespaceIndex,
}

/// Starts the simulator on `addr` (port 0: any free port) and returns the address it
/// listens on. `pki_dir` is the gateway's OPC UA PKI directory (`DATA_DIR/opcua/pki`): the
/// simulator keeps its own key pair in `pki_dir/simulator/` and puts its certificate into
/// `pki_dir/trusted/`.
pub async fn spawn_dairy_simulator(
    addr: SocketAddr,
    pki_dir: &Path,
) -> Result<(SocketAddr, DairySimulator), SimulatorError> {
    spawn_simulator(addr, pki_dir, 0).await
}

/// [`spawn_dairy_simulator`] with a load bank of `load` variables (`ns=2;s=Load.NNNNN`)
/// that all change every 100 ms, for benchmarks.
pub async fn spawn_simulator(
    addr: SocketAddr,
    pki_dir: &Path,
    load: usize,
) -> Result<(SocketAddr, DairySimulator), SimulatorError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| SimulatorError::Listen { addr, source })?;
    let bound = listener.local_addr().map_err(SimulatorError::LocalAddress)?;
    let own_pki = pki_dir.join("simulator");
    // Creating the key pair takes a moment: not on the runtime's threads.
    let dir = own_pki.clone();
    tokio::task::spawn_blocking(move || {
        crate::pki::ensure_application_certificate(&dir, APPLICATION_URI, "Backplane dairy simulator")
    })
    .await
    .map_err(SimulatorError::CertificateTask)??;
    let mut builder = ServerBuilder::new()
        .application_name("Backplane dairy simulator (line 2 filler, pasteurizer)")
        .application_uri(APPLICATION_URI)
        .product_uri(APPLICATION_URI)
        .create_sample_keypair(false)
        .pki_dir(own_pki.clone())
        // A demo device on loopback: it accepts any gateway.
        .trust_client_certs(true)
        .host(bound.ip().to_string())
        .port(bound.port())
        .discovery_urls(vec!["/".to_owned()])
        .with_node_manager(simple_node_manager(
            NamespaceMetadata {
                namespace_uri: NAMESPACE_URI.to_owned(),
                ..Default::default()
            },
            "dairy",
        ));
    for (id, endpoint) in endpoints() {
        builder = builder.add_endpoint(id, endpoint);
    }
    let (server, handle) = builder.build().map_err(SimulatorError::Server)?;
    let cert = std::fs::read(own_pki.join("own").join("cert.der")).map_err(SimulatorError::Certificate)?;
    crate::pki::trust_certificate(pki_dir, &cert)?;
    let manager = handle
        .node_managers()
        .get_of_type::<SimpleNodeManager>()
        .ok_or(SimulatorError::NoNodeManager)?;
    if handle.get_namespace_index(NAMESPACE_URI) != Some(NAMESPACE_INDEX) {
        return Err(SimulatorError::NamespaceIndex);
    }
    build_address_space(&manager);
    build_load_bank(&manager, load);
    let load_ids: Vec<NodeId> = (0..load).map(load_node).collect();
    let subscriptions: Arc<SubscriptionCache> = handle.subscriptions().clone();
    let token = handle.token().clone();
    let ticker = tokio::spawn(async move {
        let mut dairy = Dairy::new();
        let mut interval = tokio::time::interval(TICK);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                () = token.cancelled() => return,
                _ = interval.tick() => {
                    let snapshot = dairy.step();
                    publish(&manager, &subscriptions, &snapshot);
                    if !load_ids.is_empty() {
                        publish_load(&manager, &subscriptions, &load_ids, dairy.tick);
                    }
                }
            }
        }
    });
    let server = tokio::spawn(async move {
        if let Err(e) = server.run_with(listener).await {
            tracing::warn!("dairy simulator stopped: {e}");
        }
    });
    Ok((
        bound,
        DairySimulator {
            handle,
            server,
            ticker,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filler_counts_only_while_running_and_rejects_one_in_sixty() {
        let mut dairy = Dairy::new();
        let mut last = dairy.step();
        let (mut running, mut stopped) = (0, 0);
        for _ in 0..3000 {
            let s = dairy.step();
            if s.status == 20 {
                running += 1;
                assert!((23_000.0..=25_000.0).contains(&s.speed), "{s:?}");
            } else {
                stopped += 1;
                assert_eq!(s.speed, 0.0);
                assert_eq!(s.good, last.good, "no bottles while stopped");
            }
            assert!(s.good >= last.good && s.rejects >= last.rejects);
            assert!((3.5..=4.8).contains(&s.product_temp));
            assert!((16.4..=19.6).contains(&s.flow) && (72.1..=73.1).contains(&s.hold_temp));
            last = s;
        }
        assert!(running > 0 && stopped > 0);
        let good = last.good - 120_000;
        let rejects = last.rejects - 310;
        assert_eq!(rejects, good / 60, "{good} good, {rejects} rejected");
        // The divert valve (bit 2) opens in one of the six 20 s steps.
        let mut dairy = Dairy::new();
        let words: Vec<u16> = (0..1200).map(|_| dairy.step().status_word).collect();
        assert!(words.contains(&5) && words.contains(&1));
    }
}
