//! `backplane demo`: the simulated Acme Dairy. [`run`] starts the plant's devices through
//! the kinds' simulator hooks (real protocol servers on free loopback ports), points the
//! embedded examples/dairy.toml at them and serves it.
//!
//! Besides simulating devices the demo plays the MES ([`script`]). At start it creates and
//! starts a work order on each filling line, and once the pasteurizer has reported its
//! first batch it opens a filler lot on each line fed from that batch and a pallet from
//! line 1's lot, so the API shows a whole genealogy (silo lot → pasteurizer batch → filler
//! lot → pallet). Everything goes through the same commands an MES would send
//! (`backplane_production::Command`, through the production stage's [`ProductionHandle`]),
//! so the demo exercises the real path.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use backplane::{
    DAIRY, DAIRY_CNC_URL, DAIRY_FILLER_URL, DAIRY_LAB_INBOX, DAIRY_OPCUA_URL, DAIRY_PALLETIZER_URL,
    DAIRY_S7_URL,
};
use backplane_connector::{Registry, RunningSimulator, SimulatorStart};
use backplane_engine::EngineHandle;
use backplane_model::sample::LotStatus;
use backplane_production::{Command, ProductionHandle};
use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::json;

use crate::serve;

/// The plant's devices: the simulator, by name, and the URL examples/dairy.toml reaches
/// it at. The vendor-A filler (line 1) over Modbus TCP, and vendor B's OPC UA server
/// (line 2, the pasteurizer), whose certificate goes into the gateway's trust list, the
/// reception silos' Siemens S7 PLC, the palletizer's Logix controller over EtherNet/IP, and
/// the maintenance shop's CNC mill behind its MTConnect agent;
/// the reception's lab analyser dropping CSV files into a folder of the data directory (its
/// "URL" is that folder, which the configuration names already).
const DEVICES: [(&str, &str); 6] = [
    ("modbus-filler", DAIRY_FILLER_URL),
    ("opcua-dairy", DAIRY_OPCUA_URL),
    ("s7-silos", DAIRY_S7_URL),
    ("enip-palletizer", DAIRY_PALLETIZER_URL),
    ("mtconnect-cnc", DAIRY_CNC_URL),
    ("files-lab", DAIRY_LAB_INBOX),
];

/// Starts the devices, runs the demo configuration against them until SIGINT/SIGTERM,
/// then stops them.
pub async fn run(registry: Registry, listen: Option<SocketAddr>, data_dir: PathBuf) -> Result<(), String> {
    let mut devices: Vec<RunningSimulator> = Vec::new();
    let mut text = DAIRY.to_owned();
    for (name, url) in DEVICES {
        let started = match backplane::kinds::simulator(&registry, name) {
            Some(simulator) => {
                let start = SimulatorStart {
                    listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                    data_dir: data_dir.clone(),
                };
                (simulator.start)(start).await
            }
            None => Err("this build has no such simulator".to_owned()),
        };
        match started {
            Ok(device) => {
                text = text.replace(url, &device.url);
                devices.push(device);
            }
            Err(e) => {
                devices.into_iter().for_each(RunningSimulator::stop);
                return Err(format!("cannot start the demo's device `{name}`: {e}"));
            }
        }
    }
    text = serve_opcua_on_a_free_port(&text);
    let urls: Vec<&str> = devices.iter().map(|d| d.url.as_str()).collect();
    tracing::info!(devices = ?urls, "simulated devices started (Modbus filler, OPC UA line 2 and pasteurizer, S7 silos, EtherNet/IP palletizer, MTConnect CNC, lab analyser dropping files)");
    let result = serve_plant(&registry, &text, listen, data_dir).await;
    devices.into_iter().for_each(RunningSimulator::stop);
    result
}

/// Where examples/dairy.toml's OPC UA server listens.
const DAIRY_OPCUA_SERVER: &str = "127.0.0.1:4840";

/// The demo's OPC UA server listens on 4840, the OPC UA port, unless something else holds
/// it: then on a free port. The banner prints the URL either way.
fn serve_opcua_on_a_free_port(text: &str) -> String {
    let address = std::net::TcpListener::bind(DAIRY_OPCUA_SERVER)
        .or_else(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .and_then(|l| l.local_addr());
    match address {
        Ok(address) => {
            serve::set_demo_opcua_url(format!("opc.tcp://{address}"));
            text.replace(
                &format!("listen = \"{DAIRY_OPCUA_SERVER}\""),
                &format!("listen = \"{address}\""),
            )
        }
        Err(_) => text.to_owned(),
    }
}

async fn serve_plant(
    registry: &Registry,
    text: &str,
    listen: Option<SocketAddr>,
    data_dir: PathBuf,
) -> Result<(), String> {
    let origin = std::env::current_dir()
        .unwrap_or_default()
        .join("examples/dairy.toml");
    let mut plan = backplane_config::load_str(text, &origin, &registry.catalog()).map_err(|d| {
        crate::report(&d);
        "the embedded demo configuration is invalid".to_owned()
    })?;
    plan.gateway.data_dir = data_dir;
    serve::run(
        plan,
        registry,
        None,
        listen,
        Some(serve::demo_banner),
        Some(script),
    )
    .await
}

/// Who the demo's commands are attributed to.
const BY: &str = "demo-mes";

/// How long to wait for the pasteurizer's first batch (its OPC UA session is secure and
/// takes a few seconds to open).
const BATCH_WAIT: Duration = Duration::from_secs(120);

/// The MES: runs beside the engine once it started.
pub fn script(engine: EngineHandle) -> BoxFuture<'static, ()> {
    async move {
        let Some(engine) = engine.services().get::<ProductionHandle>() else {
            tracing::warn!("demo: the production stage is not registered; no work orders or lots");
            return;
        };
        for (id, line, product, rate) in [
            ("WO-1001", "packaging/line-1", "milk-1l-whole", 400.0),
            ("WO-1002", "packaging/line-2", "milk-1l-semi", 420.0),
        ] {
            // A restarted demo restores its state: the orders may exist already.
            if engine.view().work_order(id).is_some() {
                continue;
            }
            let create = json!({
                "command": "create_work_order", "id": id, "product": product, "asset": line,
                "planned_quantity": 20000, "ideal_rate_per_min": rate,
            });
            for command in [
                create,
                json!({"command": "release_work_order", "id": id}),
                json!({"command": "start_work_order", "id": id}),
            ] {
                run_command(&engine, command).await;
            }
        }

        let pasteurizer = "processing/pasteurizer";
        let deadline = tokio::time::Instant::now() + BATCH_WAIT;
        let batch = loop {
            let open = engine
                .view()
                .lots()
                .filter(|l| l.status == LotStatus::Active)
                .find(|l| {
                    l.asset
                        .as_ref()
                        .is_some_and(|a| a.as_str().ends_with(pasteurizer))
                })
                .map(|l| l.id.to_string());
            if let Some(batch) = open {
                break batch;
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!("demo: the pasteurizer reported no batch; no filler lots created");
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        };
        let mut filler_lots = Vec::new();
        for (line, prefix) in [
            ("packaging/line-1/filler", "F1"),
            ("packaging/line-2/filler", "F2"),
        ] {
            let lot = format!("{prefix}-{batch}");
            if engine.view().lot(&lot).is_some() {
                continue;
            }
            run_command(
                &engine,
                json!({"command": "create_lot", "id": lot, "material": "milk-1l-bottles",
                       "unit": "bottle", "asset": line, "status": "active"}),
            )
            .await;
            run_command(
                &engine,
                json!({"command": "record_genealogy", "produced": lot,
                       "consumed": [{"lot": batch, "quantity": 8000, "unit": "L"}]}),
            )
            .await;
            filler_lots.push(lot);
        }
        if let Some(first) = filler_lots.first() {
            let pallet = format!("PAL-{first}");
            run_command(
                &engine,
                json!({"command": "create_lot", "id": pallet, "material": "pallet-milk-1l",
                       "quantity": 960, "unit": "bottle", "asset": "packaging/line-1", "status": "complete"}),
            )
            .await;
            run_command(
                &engine,
                json!({"command": "record_genealogy", "produced": pallet,
                       "consumed": [{"lot": first, "quantity": 960, "unit": "bottle"}]}),
            )
            .await;
        }
    }
    .boxed()
}

async fn run_command(engine: &ProductionHandle, command: serde_json::Value) {
    let text = command.to_string();
    let result = match Command::parse(text.as_bytes()) {
        Ok(command) => engine
            .execute(command, Some(BY.to_owned()))
            .await
            .map_err(|e| e.to_string()),
        Err(refusal) => Err(refusal.message()),
    };
    if let Err(e) = result {
        tracing::warn!(command = %text, error = %e, "demo: command refused");
    }
}
