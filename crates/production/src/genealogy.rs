//! Lot genealogy: a graph of "lot A went into lot B" links, traced forward (where did
//! this lot go?) and backward (what is this lot made of?) to a depth.
//!
//! Real plants feed lots into each other in any shape: a silo lot into several
//! pasteurizer batches (fan-out), several silo lots into one batch (fan-in), and the data
//! entered by people can be wrong, so the graph may even contain a cycle. Every lot is
//! visited once per trace, so a trace always ends.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use backplane_model::Timestamp;
use serde::{Deserialize, Serialize};

/// One link: `quantity` of `consumed` went into `produced`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Link {
    pub consumed: Arc<str>,
    pub produced: Arc<str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<Arc<str>>,
    pub time: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<Arc<str>>,
}

/// Which way a trace goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// From a lot to the lots made from it.
    Forward,
    /// From a lot to the lots it was made from.
    Backward,
}

/// The result of a trace: every lot reached (each once, at the depth it was first reached)
/// and every link followed.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Trace {
    pub lot: Arc<str>,
    pub direction: Direction,
    /// The depth asked for.
    pub depth: u32,
    /// Lots reached, nearest first; the start lot is not listed.
    pub lots: Vec<TracedLot>,
    /// Links followed, as `(from, to)` in the direction of the trace.
    pub links: Vec<TracedLink>,
    /// True when lots at the depth limit have further links not followed.
    pub truncated: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TracedLot {
    pub lot: Arc<str>,
    /// 1 for lots linked to the start lot directly.
    pub depth: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TracedLink {
    pub from: Arc<str>,
    pub to: Arc<str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantity: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<Arc<str>>,
}

/// The genealogy graph. Only the links are stored (and snapshot); the indexes are rebuilt.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Graph {
    links: Vec<Link>,
    #[serde(skip)]
    forward: HashMap<Arc<str>, Vec<usize>>,
    #[serde(skip)]
    backward: HashMap<Arc<str>, Vec<usize>>,
}

impl PartialEq for Graph {
    fn eq(&self, other: &Graph) -> bool {
        self.links == other.links
    }
}

impl Graph {
    pub fn links(&self) -> &[Link] {
        &self.links
    }

    /// True if `consumed → produced` is recorded already.
    pub fn has(&self, consumed: &str, produced: &str) -> bool {
        self.forward
            .get(consumed)
            .is_some_and(|ids| ids.iter().any(|&i| &*self.links[i].produced == produced))
    }

    pub fn add(&mut self, link: Link) {
        let i = self.links.len();
        self.forward.entry(link.consumed.clone()).or_default().push(i);
        self.backward.entry(link.produced.clone()).or_default().push(i);
        self.links.push(link);
    }

    /// Rebuilds the indexes (after deserializing).
    pub(crate) fn reindex(&mut self) {
        let links = std::mem::take(&mut self.links);
        self.forward.clear();
        self.backward.clear();
        for link in links {
            self.add(link);
        }
    }

    /// Breadth first from `lot`, at most `depth` links away.
    pub fn trace(&self, lot: &str, direction: Direction, depth: u32) -> Trace {
        let (index, next): (_, fn(&Link) -> Arc<str>) = match direction {
            Direction::Forward => (&self.forward, |l| l.produced.clone()),
            Direction::Backward => (&self.backward, |l| l.consumed.clone()),
        };
        let start: Arc<str> = lot.into();
        let mut seen: HashSet<Arc<str>> = HashSet::from([start.clone()]);
        let mut queue = VecDeque::from([(start.clone(), 0u32)]);
        let mut lots = Vec::new();
        let mut links = Vec::new();
        let mut truncated = false;
        while let Some((current, d)) = queue.pop_front() {
            let Some(ids) = index.get(&current) else { continue };
            if d >= depth {
                truncated |= !ids.is_empty();
                continue;
            }
            for &i in ids {
                let link = &self.links[i];
                let to = next(link);
                links.push(TracedLink {
                    from: current.clone(),
                    to: to.clone(),
                    quantity: link.quantity,
                    unit: link.unit.clone(),
                });
                // Each lot once: fan-in reaches it twice, a cycle leads back to it.
                if seen.insert(to.clone()) {
                    lots.push(TracedLot {
                        lot: to.clone(),
                        depth: d + 1,
                    });
                    queue.push_back((to, d + 1));
                }
            }
        }
        Trace {
            lot: start,
            direction,
            depth,
            lots,
            links,
            truncated,
        }
    }
}
