//! [`MtConnectKind`], registered as `mtconnect`: reads the source's settings, checks
//! addresses, builds the source, and offers `backplane browse http://...` (the device
//! model as bindings) and `backplane simulate mtconnect-cnc`.
//!
//! The kind keeps each source's sequence cursor across the instances the supervisor
//! builds after a failure, so a reconnect resumes where the last one stopped; the cursor
//! file in the data directory carries it across gateway restarts ([`crate::resume`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use backplane_config::{AddressError, Plan, Table};
use backplane_connector::hooks::{Browser, Options, RunningSimulator, Simulator, SimulatorStart};
use backplane_connector::{ComponentError, Kind, Source, SourceContext, SourceKind};
use futures::FutureExt;

use crate::config::MtConnectSettings;
use crate::source::{AlarmTargets, MtConnectSource, SharedCursor};

/// The kind registered as `mtconnect`.
#[derive(Debug, Clone, Default)]
pub struct MtConnectKind {
    /// Each source's cursor, by source name and agent URL.
    cursors: Arc<Mutex<HashMap<(String, String), SharedCursor>>>,
}

impl Kind for MtConnectKind {
    type Settings = MtConnectSettings;

    fn describe(&self) -> &'static str {
        "MTConnect agents (CNC machines, machine tools) over HTTP: probe, current, sample with sequence tracking and streaming"
    }

    fn parse(&self, table: &mut Table<'_>) -> Option<MtConnectSettings> {
        crate::config::parse_settings(table)
    }

    /// An address is a data item's `id` (or unique `name`) in the agent's device model,
    /// or `machine_state`; the model is only known once connected, so this checks form.
    fn check_address(&self, _settings: &MtConnectSettings, address: &str) -> Result<(), AddressError> {
        if address.is_empty() || address.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(AddressError {
                message: format!("`{address}` is not a data item id"),
                hint: Some(
                    "a data item's id (or name) from the agent's probe, e.g. `Xact`, or `machine_state`; `backplane browse http://AGENT:5000` lists them".into(),
                ),
            });
        }
        Ok(())
    }

    fn summarize(&self, plan: &Plan, name: &str, settings: &MtConnectSettings) -> Vec<String> {
        let addresses = plan
            .assets
            .iter()
            .flat_map(|a| a.bindings.iter())
            .filter(|b| *b.source == *name)
            .count();
        vec![format!(
            "mtconnect `{name}`: {addresses} bindings from {}; {} every {:?}, up to {} observations per answer, answers up to {} bytes",
            settings.endpoint("sample"),
            if settings.streaming {
                "streamed (where the agent streams), else polled"
            } else {
                "polled"
            },
            settings.interval,
            settings.count,
            settings.max_body,
        )]
    }

    fn browser(&self) -> Option<Browser> {
        Some(Browser {
            schemes: &["http", "mtconnect"],
            local_schemes: &[],
            about: "Read an MTConnect agent's device model (probe) and current values as bindings",
            options: crate::browse::OPTIONS,
            run: |url, options: Options| async move { crate::browse::run(&url, &options).await }.boxed(),
        })
    }

    fn simulators(&self) -> Vec<Simulator> {
        vec![Simulator {
            name: "mtconnect-cnc",
            about: "Maintenance shop's CNC mill: an MTConnect agent (probe, current, sample, streaming)",
            default_listen: SocketAddr::from(([127, 0, 0, 1], 5000)),
            start: |start: SimulatorStart| {
                async move {
                    let (address, task) = crate::simulator::spawn_cnc_simulator(start.listen)
                        .await
                        .map_err(|e| format!("cannot start the MTConnect CNC simulator on {}: {e}", start.listen))?;
                    Ok(RunningSimulator::new(
                        address,
                        format!("http://{address}"),
                        format!("MTConnect CNC agent simulator listening on http://{address} (probe, current, sample)"),
                        move || task.abort(),
                    ))
                }
                .boxed()
            },
        }]
    }
}

impl SourceKind for MtConnectKind {
    fn build(&self, ctx: &SourceContext<'_, MtConnectSettings>) -> Result<Box<dyn Source>, ComponentError> {
        let key = (ctx.name.to_owned(), ctx.settings.url.clone());
        let cursor = match self.cursors.lock() {
            Ok(mut all) => all.entry(key).or_default().clone(),
            Err(_) => Arc::default(),
        };
        Ok(Box::new(MtConnectSource {
            name: ctx.name.to_owned(),
            settings: Arc::new(ctx.settings.clone()),
            addresses: ctx.addresses.to_vec(),
            cursor,
            state: Some(crate::resume::path(ctx.data_dir, ctx.name)),
            alarm_targets: alarm_targets(ctx),
        }))
    }
}

/// For each address, the assets whose attributes it feeds.
fn alarm_targets(ctx: &SourceContext<'_, MtConnectSettings>) -> AlarmTargets {
    let topology = ctx.topology;
    let Some(routes) = topology.sources.iter().find(|s| s.name == ctx.name) else {
        return vec![Vec::new(); ctx.addresses.len()];
    };
    (0..ctx.addresses.len())
        .map(|i| {
            let mut assets: Vec<usize> = routes
                .routes
                .get(i)
                .into_iter()
                .flatten()
                .filter_map(|tag| topology.tag(*tag))
                .map(|t| t.asset)
                .collect();
            assets.sort_unstable();
            assets.dedup();
            assets
                .into_iter()
                .filter_map(|a| topology.assets.get(a))
                .map(|a| (a.path.clone(), Arc::new(a.initial_context.clone())))
                .collect()
        })
        .collect()
}
