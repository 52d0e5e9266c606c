//! What [`Production`] remembers across a restart, and resuming from it.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use backplane_config::Plan;
use backplane_model::sample::WorkOrderStatus;
use backplane_model::{AssetPath, Timestamp};
use serde::{Deserialize, Serialize};

use super::{EntryRecord, Machine, Production};
use crate::downtime::DowntimeLog;
use crate::error::SnapshotError;
use crate::genealogy::Graph;
use crate::orders::{Lot, SignIn, WorkOrder};

/// The snapshot format this build writes and reads.
const SNAPSHOT_VERSION: u32 = 1;

/// Everything [`Production`] must remember across a restart: work orders, lots,
/// genealogy, downtimes, counter baselines, states, open periods. Serialize it with serde
/// (JSON works) and hand it back to [`Production::restore`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub(super) version: u32,
    /// The latest time seen.
    pub(super) time: Option<Timestamp>,
    pub(super) machines: BTreeMap<AssetPath, Machine>,
    pub(super) downtimes: DowntimeLog,
    pub(super) work_orders: BTreeMap<Arc<str>, WorkOrder>,
    /// Asset → the work order running there.
    pub(super) running: BTreeMap<AssetPath, Arc<str>>,
    pub(super) lots: BTreeMap<Arc<str>, Lot>,
    pub(super) genealogy: Graph,
    /// `asset#field` → the value a context rule set last.
    pub(super) rules: BTreeMap<String, Arc<str>>,
    pub(super) operators: Vec<SignIn>,
    pub(super) entries: VecDeque<EntryRecord>,
    pub(super) next_entry: u64,
    /// The shift on, and when it started.
    pub(super) shift: Option<(Arc<str>, Timestamp)>,
}

impl Default for Snapshot {
    fn default() -> Snapshot {
        Snapshot {
            version: SNAPSHOT_VERSION,
            time: None,
            machines: BTreeMap::new(),
            downtimes: DowntimeLog::default(),
            work_orders: BTreeMap::new(),
            running: BTreeMap::new(),
            lots: BTreeMap::new(),
            genealogy: Graph::default(),
            rules: BTreeMap::new(),
            operators: Vec::new(),
            entries: VecDeque::new(),
            next_entry: 0,
            shift: None,
        }
    }
}

impl Production {
    /// Everything to persist across a restart (or a configuration reload).
    pub fn snapshot(&self) -> Snapshot {
        self.st.clone()
    }

    /// Builds the core for `plan` and resumes from `snapshot`. What no longer fits the
    /// configuration is dropped: assets no longer tracked, states no longer in their
    /// asset's state set (the asset waits for its next state). Time between the snapshot
    /// and the next sample or tick is accounted to the state the asset was in.
    pub fn restore(plan: &Plan, snapshot: Snapshot) -> Result<Production, SnapshotError> {
        if snapshot.version != SNAPSHOT_VERSION {
            return Err(SnapshotError::Version {
                found: snapshot.version,
                supported: SNAPSHOT_VERSION,
            });
        }
        let mut p = Production::new(plan);
        let mut st = snapshot;
        st.genealogy.reindex();
        let cfg = &p.cfg;
        st.machines
            .retain(|asset, _| cfg.machine_index.contains_key(asset));
        st.downtimes
            .retain_assets(|asset| cfg.machine_index.contains_key(asset));
        for m in &cfg.machines {
            let machine = st.machines.entry(m.asset.clone()).or_default();
            let known = machine
                .tracker
                .current()
                .is_some_and(|c| m.state.as_ref().is_some_and(|s| s.known(&c.state).is_some()));
            if !known {
                machine.tracker.clear();
                machine.cursor = None;
                if let (Some(id), Some(time)) = (machine.downtime.take(), st.time) {
                    st.downtimes.close(id, time);
                }
            }
        }
        st.running.retain(|_, id| {
            st.work_orders
                .get(id)
                .is_some_and(|w| w.status == WorkOrderStatus::Running)
        });
        p.st = st;
        for i in 0..p.cfg.machines.len() {
            p.refresh_order(i);
        }
        Ok(p)
    }
}
