//! The derive stage: keeps the latest value of every tag a derived attribute reads,
//! and when one changes, evaluates the attributes that read it, in dependency order (a
//! derived attribute may read another, and a line's total its machines' derived values),
//! and hands the results to the pipeline as samples with their derivation.

use std::sync::Arc;
use std::time::{Duration, Instant};

use backplane_connector::{Derivation, Derived, Stage, Topology};
use backplane_model::{Attribute, Quality, Sample, TagId, Timestamp, Value};
use prometheus_client::metrics::counter::Counter;

use crate::check::Compiled;
use crate::eval::{Env, Memory, Reading, evaluate, finish};

/// One derived attribute of one asset.
#[derive(Debug)]
struct DerivedTag {
    tag: TagId,
    /// The tag's path, for the log.
    path: Arc<str>,
    attribute: Arc<Attribute>,
    compiled: Arc<Compiled>,
    /// Per compiled input: the asset's tag for it.
    inputs: Vec<TagId>,
    /// Per compiled children name: each child that has the attribute, with its tag.
    children: Vec<Vec<(Arc<str>, TagId)>>,
    memory: Memory,
    /// The last value computed, kept (with a bad quality) when a computation fails.
    last_value: Option<Value>,
}

/// A failure is logged at most this often (with the count of the ones not logged).
const LOG_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub struct DeriveStage {
    /// In dependency order: what a derived attribute reads comes before it.
    derived: Vec<DerivedTag>,
    /// Per tag: its slot, the index in `readings`, `dependents` and `paths` (`u32::MAX`:
    /// no derived attribute reads it). Empty when nothing is derived: the per-tag memory
    /// is then four bytes only where something is (docs/performance.md, "Memory").
    watched: Vec<u32>,
    /// Per slot: the latest reading of the tag.
    readings: Vec<Option<Reading>>,
    /// Per slot: the positions in `derived` of the attributes whose evaluation it triggers.
    dependents: Vec<Vec<u32>>,
    /// Per slot: the tag's path.
    paths: Vec<Arc<str>>,
    /// Per position in `derived`: whether it is to be evaluated.
    dirty: Vec<bool>,
    evaluation_errors: Counter,
    bad_inputs: Counter,
    last_log: Option<Instant>,
    unlogged: u64,
}

impl DeriveStage {
    /// Builds the stage for `topology`, with the compiled expression of each derived
    /// attribute of each model (`compiled(model, attribute index)`).
    pub fn new(
        topology: &Topology,
        compiled: &dyn Fn(&str, usize) -> Option<Arc<Compiled>>,
        evaluation_errors: Counter,
        bad_inputs: Counter,
    ) -> DeriveStage {
        let mut derived = Vec::new();
        for asset in &topology.assets {
            let Some(model) = &asset.model else { continue };
            for (index, attribute) in model.attributes.iter().enumerate() {
                let Some(c) = compiled(&model.name, index) else {
                    continue;
                };
                let Some(&tag) = asset.tags.get(index) else {
                    continue;
                };
                let inputs = c
                    .inputs
                    .iter()
                    .filter_map(|&i| asset.tags.get(i).copied())
                    .collect();
                let children = c
                    .children
                    .iter()
                    .map(|name| {
                        asset
                            .children
                            .iter()
                            .filter_map(|&child| {
                                let node = &topology.assets[child];
                                let i = node
                                    .model
                                    .as_ref()?
                                    .attributes
                                    .iter()
                                    .position(|a| a.name == **name)?;
                                let tag = *node.tags.get(i)?;
                                Some((
                                    Arc::from(topology.path(&topology.tags[tag.index()]).to_string()),
                                    tag,
                                ))
                            })
                            .collect()
                    })
                    .collect();
                derived.push(DerivedTag {
                    tag,
                    path: Arc::from(topology.path(&topology.tags[tag.index()]).to_string()),
                    attribute: attribute.clone(),
                    memory: Memory::new(&c),
                    compiled: c,
                    inputs,
                    children,
                    last_value: None,
                });
            }
        }
        let derived = dependency_order(derived, topology.tags.len());
        let per_tag = if derived.is_empty() {
            0
        } else {
            topology.tags.len()
        };
        let mut watched = vec![u32::MAX; per_tag];
        let mut dependents: Vec<Vec<u32>> = Vec::new();
        let mut paths: Vec<Arc<str>> = Vec::new();
        // The slot of a tag a derived attribute reads, assigned on first sight.
        let mut watch = |tag: TagId, dependents: &mut Vec<Vec<u32>>| -> usize {
            let slot = &mut watched[tag.index()];
            if *slot == u32::MAX {
                *slot = paths.len() as u32;
                paths.push(Arc::from(topology.path(&topology.tags[tag.index()]).to_string()));
                dependents.push(Vec::new());
            }
            *slot as usize
        };
        for (pos, d) in derived.iter().enumerate() {
            for &tag in d.inputs.iter().chain(d.children.iter().flatten().map(|(_, t)| t)) {
                watch(tag, &mut dependents);
            }
            let triggers = d
                .compiled
                .triggers
                .iter()
                .filter_map(|&i| d.compiled.inputs.iter().position(|&x| x == i))
                .filter_map(|p| d.inputs.get(p).copied())
                .chain(d.children.iter().flatten().map(|(_, t)| *t));
            for tag in triggers {
                let slot = watch(tag, &mut dependents);
                if !dependents[slot].contains(&(pos as u32)) {
                    dependents[slot].push(pos as u32);
                }
            }
        }
        DeriveStage {
            dirty: vec![false; derived.len()],
            derived,
            watched,
            readings: vec![None; paths.len()],
            dependents,
            paths,
            evaluation_errors,
            bad_inputs,
            last_log: None,
            unlogged: 0,
        }
    }

    /// How many derived attributes of assets the stage computes.
    pub fn len(&self) -> usize {
        self.derived.len()
    }

    pub fn is_empty(&self) -> bool {
        self.derived.is_empty()
    }

    fn record(&mut self, tag: TagId, value: Option<Value>, quality: Quality, time: Timestamp) {
        let slot = self.watched.get(tag.index()).copied().unwrap_or(u32::MAX) as usize;
        let (Some(reading), Some(path)) = (self.readings.get_mut(slot), self.paths.get(slot)) else {
            return;
        };
        *reading = Some(Reading {
            path: path.clone(),
            value,
            quality,
            time,
        });
        for &d in self.dependents.get(slot).into_iter().flatten() {
            self.dirty[d as usize] = true;
        }
    }

    fn reading(&self, tag: TagId) -> Option<&Reading> {
        let slot = *self.watched.get(tag.index())?;
        self.readings.get(slot as usize)?.as_ref()
    }

    fn evaluate_at(&mut self, pos: usize, now: Timestamp, out: &mut Derived) {
        // Moved out (not copied: windows are kilobytes) while the readings are borrowed.
        let mut memory = std::mem::take(&mut self.derived[pos].memory);
        let d = &self.derived[pos];
        let inputs: Vec<Option<&Reading>> = d.inputs.iter().map(|&t| self.reading(t)).collect();
        let children: Vec<Vec<(Arc<str>, Option<&Reading>)>> = d
            .children
            .iter()
            .map(|c| c.iter().map(|(p, t)| (p.clone(), self.reading(*t))).collect())
            .collect();
        let env = Env {
            now,
            inputs: &inputs,
            children: &children,
        };
        let outcome = evaluate(&d.compiled, &mut memory, &env);
        let result = outcome
            .result
            .and_then(|v| finish(&v, outcome.quality, &d.attribute));
        let (tag, path, expression) = (d.tag, d.path.clone(), d.compiled.text.clone());
        let d = &mut self.derived[pos];
        d.memory = memory;
        let (value, quality, error) = match result {
            Ok((value, quality)) => {
                d.last_value = Some(value.clone());
                (Some(value), quality, None)
            }
            Err(fail) => {
                if fail.computation {
                    self.evaluation_errors.inc();
                    let now = Instant::now();
                    if self
                        .last_log
                        .is_none_or(|t| now.duration_since(t) >= LOG_INTERVAL)
                    {
                        tracing::warn!(
                            tag = %path,
                            expression = %expression,
                            not_logged_since_last = self.unlogged,
                            "derived attribute: {} (see backplane_component_events_total{{component=\"stage\",event=\"evaluation_errors\"}})",
                            fail.message
                        );
                        self.last_log = Some(now);
                        self.unlogged = 0;
                    } else {
                        self.unlogged += 1;
                    }
                } else {
                    self.bad_inputs.inc();
                }
                (
                    d.last_value.clone(),
                    Quality::Bad(fail.reason),
                    Some(fail.message),
                )
            }
        };
        self.record(tag, value.clone(), quality, now);
        out.samples.push((
            Sample {
                tag,
                value,
                quality,
                source_time: None,
                gateway_time: now,
                context: Default::default(),
            },
            Arc::new(Derivation {
                expression,
                inputs: outcome.trace,
                error,
            }),
        ));
    }
}

impl Stage for DeriveStage {
    fn observe(&mut self, samples: &[Sample], out: &mut Derived) {
        if self.derived.is_empty() {
            return;
        }
        let mut now = None;
        for s in samples {
            if self.watched.get(s.tag.index()).is_some_and(|&w| w != u32::MAX) {
                self.record(s.tag, s.value.clone(), s.quality, s.gateway_time);
                now = Some(now.map_or(s.gateway_time, |t: Timestamp| t.max(s.gateway_time)));
            }
        }
        let Some(now) = now else { return };
        // Dependency order: an evaluation marks only later positions dirty.
        for pos in 0..self.derived.len() {
            if std::mem::take(&mut self.dirty[pos]) {
                self.evaluate_at(pos, now, out);
            }
        }
    }
}

/// Orders derived attributes so that each comes after the derived attributes it reads
/// (a depth-first topological sort; the checker rejects cycles within a model, and the
/// asset tree has none between assets).
fn dependency_order(derived: Vec<DerivedTag>, tags: usize) -> Vec<DerivedTag> {
    let mut by_tag = vec![u32::MAX; tags];
    for (i, d) in derived.iter().enumerate() {
        by_tag[d.tag.index()] = i as u32;
    }
    let reads = |d: &DerivedTag| -> Vec<usize> {
        d.inputs
            .iter()
            .chain(d.children.iter().flatten().map(|(_, t)| t))
            .filter(|t| **t != d.tag)
            .map(|t| by_tag[t.index()])
            .filter(|&i| i != u32::MAX)
            .map(|i| i as usize)
            .collect()
    };
    // 0: not visited, 1: on the path, 2: done.
    let mut mark = vec![0u8; derived.len()];
    let mut order = Vec::with_capacity(derived.len());
    for start in 0..derived.len() {
        if mark[start] != 0 {
            continue;
        }
        let mut stack = vec![(start, reads(&derived[start]), 0usize)];
        mark[start] = 1;
        while let Some((node, next, i)) = stack.last_mut() {
            if let Some(&n) = next.get(*i) {
                *i += 1;
                if mark[n] == 0 {
                    mark[n] = 1;
                    let r = reads(&derived[n]);
                    stack.push((n, r, 0));
                }
            } else {
                mark[*node] = 2;
                order.push(*node);
                stack.pop();
            }
        }
    }
    let mut slots: Vec<Option<DerivedTag>> = derived.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}
