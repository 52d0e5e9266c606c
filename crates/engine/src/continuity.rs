//! What a configuration reload keeps running and what it restarts, decided from the running
//! topology and the next one: [`Engine::reload`](crate::Engine::reload) acts on it and
//! `backplane plan` prints it.
//!
//! A source keeps running, connection and all, when its entry (kind, settings) and the
//! addresses it reads are the same in both; a kind that reads the asset tree beyond its
//! addresses ([`SourceKind::reads_asset_tree`](backplane_connector::SourceKind::reads_asset_tree))
//! only when the tree (assets, models, bindings) is the same too.
//!
//! A sink keeps running when its entry is the same, the assets and their attributes are
//! the same (bindings may differ: a sink sees tags, not addresses), its kind says an
//! instance with its settings can
//! ([`SinkKind::survives_reload`](backplane_connector::SinkKind::survives_reload)), and, for
//! a buffered sink, every buffered sink of both configurations is kept (they read one
//! store-and-forward log, which is reopened when its set of readers changes). The pipeline
//! and its stages always restart.

use std::collections::BTreeSet;
use std::fmt;

use backplane_config::ComponentSpec;
use backplane_config::diff::component_changes;
use backplane_connector::{Registry, Topology};

/// What happens to one source or sink at a reload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Runs on untouched: its connection stays.
    Kept,
    /// Stops and starts again with the new configuration, for the reason given.
    Restarted(String),
    /// New, or enabled by the new configuration.
    Started,
    /// Removed, or disabled by the new configuration.
    Stopped,
}

/// One component's fate, as `plan` prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Effect {
    pub component: &'static str,
    pub name: String,
    pub fate: Fate,
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (component, name) = (self.component, &self.name);
        match &self.fate {
            Fate::Kept => write!(f, "{component} {name} keeps running (its connection stays)"),
            Fate::Restarted(why) => write!(f, "{component} {name} restarts: {why}"),
            Fate::Started => write!(f, "{component} {name} starts"),
            Fate::Stopped => write!(f, "{component} {name} stops"),
        }
    }
}

/// Each configured source's and sink's fate going from `old` to `new`, sources first, in
/// the new configuration's order, then what `new` no longer has.
pub fn effects(old: &Topology, new: &Topology, registry: &Registry) -> Vec<Effect> {
    let tree_same = same_tree(old, new);
    let assets_same = same_assets(old, new);
    let mut out = Vec::new();
    for (component, olds, news) in [
        ("source", &old.plan.sources, &new.plan.sources),
        ("sink", &old.plan.sinks, &new.plan.sinks),
    ] {
        for (j, spec) in news.iter().enumerate() {
            let before = olds.iter().position(|s| s.name == spec.name);
            let fate = match before.map(|i| (i, &olds[i])) {
                _ if !spec.enabled => match before {
                    Some(i) if olds[i].enabled => Fate::Stopped,
                    _ => continue,
                },
                None => Fate::Started,
                Some((_, was)) if !was.enabled => Fate::Started,
                Some((i, was)) => match settings_change(was, spec) {
                    Some(why) => Fate::Restarted(why),
                    None if component == "sink" => match registry.sink(&spec.kind) {
                        Some(kind) if !kind.survives_reload(&spec.settings) => Fate::Restarted(format!(
                            "a reload restarts every `{}` sink with these settings",
                            spec.kind
                        )),
                        None => Fate::Restarted(format!("unknown kind `{}`", spec.kind)),
                        Some(_) if !assets_same => Fate::Restarted("the asset tree changed".to_owned()),
                        Some(_) => Fate::Kept,
                    },
                    None if old.sources[i].addresses != new.sources[j].addresses => Fate::Restarted(
                        addresses_change(&old.sources[i].addresses, &new.sources[j].addresses),
                    ),
                    None if !tree_same
                        && registry.source(&spec.kind).is_none_or(|k| k.reads_asset_tree()) =>
                    {
                        Fate::Restarted("it reads the asset tree, which changed".to_owned())
                    }
                    None => Fate::Kept,
                },
            };
            out.push(Effect {
                component,
                name: spec.name.clone(),
                fate,
            });
        }
        for was in olds.iter().filter(|s| s.enabled) {
            if !news.iter().any(|s| s.name == was.name) {
                out.push(Effect {
                    component,
                    name: was.name.clone(),
                    fate: Fate::Stopped,
                });
            }
        }
    }
    // A sink using what the stages or other sinks offer keeps running only when they do.
    let stages = stages_kept(old, new);
    let offering_restarts = [&old.plan, &new.plan].iter().any(|plan| {
        plan.sinks.iter().filter(|s| s.enabled).any(|s| {
            registry.sink(&s.kind).is_some_and(|k| k.offers_services())
                && !out
                    .iter()
                    .any(|e| e.component == "sink" && e.name == s.name && e.fate == Fate::Kept)
        })
    });
    for e in out
        .iter_mut()
        .filter(|e| e.component == "sink" && e.fate == Fate::Kept)
    {
        let uses = new
            .plan
            .sinks
            .iter()
            .find(|s| s.name == e.name)
            .is_some_and(|spec| {
                registry
                    .sink(&spec.kind)
                    .is_some_and(|k| k.uses_services(&spec.settings))
            });
        if !uses {
            continue;
        }
        if !stages {
            e.fate = Fate::Restarted(
                "it uses the pipeline's stages, which restart (the production settings changed)".to_owned(),
            );
        } else if old.plan.writes != new.plan.writes {
            // What it shows as writable was read from the allowlist when it started.
            e.fate = Fate::Restarted("the write allowlist changed".to_owned());
        } else if offering_restarts {
            e.fate =
                Fate::Restarted("a sink whose services it uses (a historian's store) restarts".to_owned());
        }
    }
    // Buffered sinks share one log: all are kept, or all restart.
    let buffered = |plan: &backplane_config::Plan| -> Vec<String> {
        plan.sinks
            .iter()
            .filter(|s| s.enabled && s.buffer.is_some())
            .map(|s| s.name.clone())
            .collect()
    };
    let all_kept = buffered(&old.plan)
        .iter()
        .chain(&buffered(&new.plan))
        .all(|name| {
            out.iter()
                .any(|e| e.component == "sink" && &e.name == name && e.fate == Fate::Kept)
        });
    if !all_kept {
        let names = buffered(&new.plan);
        for e in &mut out {
            if e.component == "sink" && e.fate == Fate::Kept && names.contains(&e.name) {
                e.fate = Fate::Restarted(
                    "another buffered sink restarts, starts or stops (they read one log)".to_owned(),
                );
            }
        }
    }
    out
}

/// The names of the `component`s (`source` or `sink`) that `effects` keep running.
pub fn kept(effects: &[Effect], component: &str) -> BTreeSet<String> {
    effects
        .iter()
        .filter(|e| e.component == component && e.fate == Fate::Kept)
        .map(|e| e.name.clone())
        .collect()
}

/// Whether a reload from `old` to `new` keeps the pipeline's stages (production, alarms,
/// derived values) running with their state in memory: they are built from the assets,
/// their attributes and the production settings, so when none of those changed the
/// stages the next configuration would build are these.
pub fn stages_kept(old: &Topology, new: &Topology) -> bool {
    same_assets(old, new) && old.plan.production == new.plan.production
}

/// Why an entry present and enabled in both configurations restarts, if its entry changed.
fn settings_change(was: &ComponentSpec, is: &ComponentSpec) -> Option<String> {
    let changed = component_changes(was, is);
    (!changed.is_empty()).then(|| format!("its settings changed ({})", changed.join(", ")))
}

fn addresses_change(was: &[std::sync::Arc<str>], is: &[std::sync::Arc<str>]) -> String {
    let added = is.iter().filter(|a| !was.contains(a)).count();
    let removed = was.iter().filter(|a| !is.contains(a)).count();
    if added == 0 && removed == 0 {
        "the order of its addresses changed".to_owned()
    } else {
        format!("the addresses it reads changed (+{added}, -{removed})")
    }
}

/// Whether the asset tree a source may read is the same: the assets and tags of
/// [`same_assets`] and every tag's binding and source.
fn same_tree(old: &Topology, new: &Topology) -> bool {
    same_assets(old, new)
        && old.tags.iter().zip(&new.tags).all(|(a, b)| {
            a.binding == b.binding
                && a.source.map(|s| &old.sources[s as usize].name)
                    == b.source.map(|s| &new.sources[s as usize].name)
        })
}

/// Whether what a sink sees of the configuration is the same: the namespace, every asset
/// (path, level, description, model, parent, start context, write narrowing) and every tag
/// (path, model, attribute), in order, so each tag keeps its id.
fn same_assets(old: &Topology, new: &Topology) -> bool {
    old.plan.namespace == new.plan.namespace
        && old.assets.len() == new.assets.len()
        && old.tags.len() == new.tags.len()
        && old.assets.iter().zip(&new.assets).all(|(a, b)| {
            a.path == b.path
                && a.level == b.level
                && a.description == b.description
                && a.model.as_deref() == b.model.as_deref()
                && a.parent == b.parent
                && a.initial_context == b.initial_context
                && a.writes == b.writes
        })
        && old
            .tags
            .iter()
            .zip(&new.tags)
            // A tag's path and model are its asset's, compared above.
            .all(|(a, b)| a.asset == b.asset && a.attribute == b.attribute)
}
