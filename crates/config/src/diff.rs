//! What changes between two validated configurations (`backplane plan OLD NEW`, and what a
//! reload applies): sources, sinks, models, assets and their bindings, production, the
//! write allowlist, and the gateway's own settings.
//!
//! Component settings are opaque to everyone but their kind, so sources and sinks are
//! compared by their entries' keys as canonical text ([`ComponentSpec::keys`]); a change of
//! comments or layout is no change. Values are never printed, only key names: a key may
//! hold a secret reference, and the diff goes to logs.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use backplane_model::model::Binding;

use crate::plan::{AssetSpec, ComponentSpec, Plan};

/// Which part of the configuration a change is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Part {
    /// `[gateway]`: name, data directory, store-and-forward log.
    Gateway,
    /// `[api]`: listen address, TLS, users, limits.
    Api,
    /// `[namespace]`: enterprise and site (every asset path under it).
    Namespace,
    Model,
    Source,
    Sink,
    Asset,
    /// The production sections: calendar, reasons, states and counts, forms, context rules.
    Production,
    /// The machine-write allowlist.
    Writes,
}

impl Part {
    fn noun(self) -> &'static str {
        match self {
            Part::Gateway => "[gateway]",
            Part::Api => "[api]",
            Part::Namespace => "[namespace]",
            Part::Model => "model",
            Part::Source => "source",
            Part::Sink => "sink",
            Part::Asset => "asset",
            Part::Production => "production",
            Part::Writes => "writes",
        }
    }

    /// Parts the running process cannot take over without a restart: the API's listener
    /// and TLS, the data directory and log the buffers live in.
    pub fn needs_process_restart(self) -> bool {
        matches!(self, Part::Gateway | Part::Api)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Added,
    Removed,
    Changed,
}

/// One change: what, and for a changed item which of its parts (key or attribute names).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub part: Part,
    /// The item's name (a source, a model, an asset path); empty for whole sections.
    pub name: String,
    pub op: Op,
    /// For [`Op::Changed`]: what changed in it, e.g. `poll_interval`, `binding speed`.
    pub details: Vec<String>,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = match self.op {
            Op::Added => '+',
            Op::Removed => '-',
            Op::Changed => '~',
        };
        write!(f, "{sign} {}", self.part.noun())?;
        if !self.name.is_empty() {
            write!(f, " {}", self.name)?;
        }
        if !self.details.is_empty() {
            write!(f, ": {}", self.details.join(", "))?;
        }
        Ok(())
    }
}

/// Every change from `old` to `new`, in the order of [`Part`], then by name.
pub fn diff(old: &Plan, new: &Plan) -> Vec<Change> {
    let mut changes = Vec::new();
    section_into(
        &mut changes,
        Part::Gateway,
        differing(&[
            ("name", old.gateway.name != new.gateway.name),
            ("data_dir", old.gateway.data_dir != new.gateway.data_dir),
            ("buffer", old.gateway.buffer != new.gateway.buffer),
            ("workers", old.gateway.workers != new.gateway.workers),
        ]),
    );
    let (a, b) = (&old.api, &new.api);
    section_into(
        &mut changes,
        Part::Api,
        differing(&[
            ("listen", a.listen != b.listen),
            ("max_body_bytes", a.max_body_bytes != b.max_body_bytes),
            ("token", a.token != b.token),
            ("users", a.users != b.users),
            ("session_idle", a.session_idle != b.session_idle),
            ("session_lifetime", a.session_lifetime != b.session_lifetime),
            ("rate_limit", a.rate_limit != b.rate_limit),
            ("max_connections", a.max_connections != b.max_connections),
            (
                "header_read_timeout",
                a.header_read_timeout != b.header_read_timeout,
            ),
            ("hosts", a.hosts != b.hosts),
            ("tls", a.tls != b.tls),
        ]),
    );
    section_into(
        &mut changes,
        Part::Namespace,
        differing(&[
            ("enterprise", old.namespace.enterprise != new.namespace.enterprise),
            ("site", old.namespace.site != new.namespace.site),
            ("sites", old.namespace.sites != new.namespace.sites),
        ]),
    );
    changes.extend(named(
        Part::Model,
        old.models.iter().map(|m| (m.name.clone(), &**m)),
        new.models.iter().map(|m| (m.name.clone(), &**m)),
        |a, b| {
            let attributes = |m: &backplane_model::Model| -> BTreeMap<String, String> {
                m.attributes
                    .iter()
                    .map(|a| (a.name.clone(), format!("{a:?}")))
                    .collect()
            };
            let mut details = map_changes("attribute", &attributes(a), &attributes(b));
            if a.description != b.description {
                details.push("description".into());
            }
            details
        },
    ));
    for (part, old_specs, new_specs) in [
        (Part::Source, &old.sources, &new.sources),
        (Part::Sink, &old.sinks, &new.sinks),
    ] {
        changes.extend(named(
            part,
            old_specs.iter().map(|s| (s.name.clone(), s)),
            new_specs.iter().map(|s| (s.name.clone(), s)),
            component_changes,
        ));
    }
    changes.extend(named(
        Part::Asset,
        old.assets.iter().map(|a| (a.path.to_string(), a)),
        new.assets.iter().map(|a| (a.path.to_string(), a)),
        asset_changes,
    ));
    let (p, q) = (&old.production, &new.production);
    section_into(
        &mut changes,
        Part::Production,
        differing(&[
            ("calendar", p.calendar != q.calendar),
            ("reasons", p.reasons != q.reasons),
            ("machine states and counts", p.models != q.models),
            ("forms", p.forms != q.forms),
            ("context rules", p.context_rules != q.context_rules),
        ]),
    );
    let rules = |plan: &Plan| -> BTreeMap<String, String> {
        plan.writes
            .iter()
            .map(|r| (format!("{}.{}", r.model, r.attribute), format!("{r:?}")))
            .collect()
    };
    section_into(
        &mut changes,
        Part::Writes,
        map_changes("rule", &rules(old), &rules(new)),
    );
    changes
}

fn section_into(changes: &mut Vec<Change>, part: Part, details: Vec<String>) {
    if !details.is_empty() {
        changes.push(Change {
            part,
            name: String::new(),
            op: Op::Changed,
            details,
        });
    }
}

fn differing(fields: &[(&str, bool)]) -> Vec<String> {
    fields
        .iter()
        .filter(|(_, differs)| *differs)
        .map(|(name, _)| (*name).to_owned())
        .collect()
}

/// Added, removed and changed items between two lists of named items.
fn named<'a, T: 'a>(
    part: Part,
    old: impl Iterator<Item = (String, &'a T)>,
    new: impl Iterator<Item = (String, &'a T)>,
    details: impl Fn(&T, &T) -> Vec<String>,
) -> Vec<Change> {
    let old: BTreeMap<String, &T> = old.collect();
    let new: BTreeMap<String, &T> = new.collect();
    let names: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    names
        .into_iter()
        .filter_map(|name| {
            let (op, details) = match (old.get(name), new.get(name)) {
                (Some(_), None) => (Op::Removed, Vec::new()),
                (None, Some(_)) => (Op::Added, Vec::new()),
                (Some(a), Some(b)) => {
                    let details = details(a, b);
                    if details.is_empty() {
                        return None;
                    }
                    (Op::Changed, details)
                }
                (None, None) => return None,
            };
            Some(Change {
                part,
                name: name.clone(),
                op,
                details,
            })
        })
        .collect()
}

/// `+what name`, `-what name`, `what name` for the keys added, removed or changed.
fn map_changes(what: &str, old: &BTreeMap<String, String>, new: &BTreeMap<String, String>) -> Vec<String> {
    let names: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    names
        .into_iter()
        .filter_map(|name| match (old.get(name), new.get(name)) {
            (Some(_), None) => Some(format!("-{what} {name}")),
            (None, Some(_)) => Some(format!("+{what} {name}")),
            (Some(a), Some(b)) if a != b => Some(format!("{what} {name}")),
            _ => None,
        })
        .collect()
}

/// What differs between two entries of one source or sink, as `plan` names it: the kind,
/// enabled or disabled, or the keys whose values changed (the `buffer` table among them).
pub fn component_changes(a: &ComponentSpec, b: &ComponentSpec) -> Vec<String> {
    let mut details = Vec::new();
    if a.kind != b.kind {
        details.push(format!("kind {} → {}", a.kind, b.kind));
        return details;
    }
    if a.enabled != b.enabled {
        details.push(if b.enabled { "enabled" } else { "disabled" }.to_owned());
    }
    let names: BTreeSet<&String> = a.keys.keys().chain(b.keys.keys()).collect();
    details.extend(
        names
            .into_iter()
            .filter(|k| !matches!(k.as_str(), "name" | "kind" | "enabled"))
            .filter(|k| a.keys.get(*k) != b.keys.get(*k))
            .cloned(),
    );
    details
}

fn asset_changes(a: &AssetSpec, b: &AssetSpec) -> Vec<String> {
    let mut details = Vec::new();
    let model = |s: &AssetSpec| s.model.as_ref().map(|m| m.name.clone());
    if model(a) != model(b) {
        details.push(format!(
            "model {} → {}",
            model(a).as_deref().unwrap_or("none"),
            model(b).as_deref().unwrap_or("none")
        ));
    } else if a.model != b.model {
        details.push("model definition".to_owned());
    }
    let bindings = |s: &AssetSpec| -> BTreeMap<String, String> {
        s.bindings
            .iter()
            .map(|b: &Binding| (b.attribute.to_string(), format!("{b:?}")))
            .collect()
    };
    details.extend(map_changes("binding", &bindings(a), &bindings(b)));
    for (name, differs) in [
        ("level", a.level != b.level),
        ("description", a.description != b.description),
        ("context", a.context != b.context),
        ("writes", a.writes != b.writes),
    ] {
        if differs {
            details.push(name.to_owned());
        }
    }
    details
}
