//! Kinds: what a `kind = "..."` in the configuration names. A kind reads its own typed
//! settings ([`Kind`]), builds instances ([`SourceKind`], [`SinkKind`]) and may offer
//! hooks: a browser for discovery, device simulators, a summary for `backplane check`,
//! and services opened before the engine starts (e.g. the historian's stores).
//!
//! The [`Registry`] erases the settings type in one place, so no kind ever downcasts.

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use backplane_config::{AddressError, Catalog, ComponentSpec, KindSpec, Plan, Settings, Table};

use crate::error::ComponentError;
use crate::hooks::{Browser, Simulator};
use crate::services::Services;
use crate::sink::Sink;
use crate::source::Source;
use crate::stage::StageKind;
use crate::topology::Topology;

/// How a kind reads and checks its configuration, without connecting to anything.
pub trait Kind: Send + Sync + 'static {
    /// What `parse` produces and `build` is given.
    type Settings: Any + Send + Sync + fmt::Debug;

    /// One line saying what the kind is, for `backplane check` hints and `--help`.
    fn describe(&self) -> &'static str;

    /// Reads the kind's own keys from one `[[sources]]` / `[[sinks]]` table (the common
    /// keys `name`, `kind`, `enabled` are already read). Problems are reported through
    /// `table`; `None` if the settings are unusable. Keys left unread are reported as
    /// unknown by the caller.
    fn parse(&self, table: &mut Table<'_>) -> Option<Self::Settings>;

    /// Sources: checks one address that a binding reads from this source.
    fn check_address(&self, _settings: &Self::Settings, _address: &str) -> Result<(), AddressError> {
        Ok(())
    }

    /// Sources: whether every reading of a (valid) address is a whole number, known
    /// without connecting; see [`KindSpec::reads_integers`]. `false` when unknown.
    fn reads_integers(&self, _settings: &Self::Settings, _address: &str) -> bool {
        false
    }

    /// Sources: how often an address is read when all is well (its poll period); see
    /// [`KindSpec::read_period`]. `None` for sources that report on change.
    fn read_period(&self, _settings: &Self::Settings, _address: &str) -> Option<std::time::Duration> {
        None
    }

    /// Lines `backplane check` prints for one instance (e.g. Modbus: the request plan).
    fn summarize(&self, _plan: &Plan, _name: &str, _settings: &Self::Settings) -> Vec<String> {
        Vec::new()
    }

    /// Discovery: `backplane browse URL` for the URL schemes it names.
    fn browser(&self) -> Option<Browser> {
        None
    }

    /// Simulated devices `backplane simulate NAME` can run.
    fn simulators(&self) -> Vec<Simulator> {
        Vec::new()
    }

    /// Services opened once per plan before the engine starts, for the API and sinks
    /// (e.g. each historian sink's store, which the API queries by sink name).
    fn prepare(
        &self,
        _plan: &Plan,
        _instances: &[(&str, &Self::Settings)],
    ) -> Result<Services, ComponentError> {
        Ok(Services::default())
    }
}

/// The settings of `spec` if it is an instance of kind `K`, else `None`: the one typed way
/// to read a kind's settings outside the registry (e.g. `backplane export` finding the
/// historian sinks of a plan).
pub fn settings_of<K: Kind>(spec: &ComponentSpec) -> Option<&K::Settings> {
    spec.settings.downcast_ref::<K::Settings>()
}

/// Everything a kind needs to build one source instance.
#[derive(Debug)]
pub struct SourceContext<'a, S = Settings> {
    /// The gateway's name (`[gateway] name`), e.g. for deterministic client ids.
    pub gateway: &'a str,
    pub name: &'a str,
    pub settings: &'a S,
    /// The addresses bindings read from this source; a reading's `address` indexes this.
    pub addresses: &'a [Arc<str>],
    pub data_dir: &'a PathBuf,
    /// The compiled plan, for sources that mirror another gateway's namespace and need
    /// the assets and attributes their addresses feed.
    pub topology: &'a Arc<Topology>,
    /// What [`Kind::prepare`] of every kind opened.
    pub services: &'a Services,
}

/// Everything a kind needs to build one sink instance.
#[derive(Debug)]
pub struct SinkContext<'a, S = Settings> {
    /// The gateway's name (`[gateway] name`), e.g. for deterministic client ids.
    pub gateway: &'a str,
    pub name: &'a str,
    pub settings: &'a S,
    pub data_dir: &'a PathBuf,
    /// What [`Kind::prepare`] of every kind opened.
    pub services: &'a Services,
}

/// A kind of source.
pub trait SourceKind: Kind {
    fn build(&self, ctx: &SourceContext<'_, Self::Settings>) -> Result<Box<dyn Source>, ComponentError>;

    /// Whether an instance reads more of the configuration than its own settings and
    /// addresses (through [`SourceContext::topology`]: asset indices, models, bindings). A
    /// configuration reload keeps a running source whose settings and addresses did not
    /// change; one that reads the asset tree only when the tree did not change either.
    fn reads_asset_tree(&self) -> bool {
        true
    }
}

/// A kind of sink.
pub trait SinkKind: Kind {
    /// Whether the kind sends over a network and so reads through the store-and-forward
    /// log (and accepts a `buffer` table). Local sinks say no.
    fn buffered(&self) -> bool {
        false
    }

    fn build(&self, ctx: &SinkContext<'_, Self::Settings>) -> Result<Box<dyn Sink>, ComponentError>;

    /// Whether an instance with these settings may keep running, connection and all,
    /// across a configuration reload that changes neither its entry nor the asset tree
    /// (assets, models, attributes; bindings may change): it keeps no state of the
    /// configuration but what its settings, [`SinkIo::topology`](crate::SinkIo), the write
    /// gate and the services it uses give it. The default, `false`, restarts it at every
    /// reload.
    fn survives_reload(&self, _settings: &Self::Settings) -> bool {
        false
    }

    /// Whether an instance with these settings uses services the pipeline's stages or
    /// other sinks offer (production commands, alarms, a historian's store): it is then
    /// kept by a reload only when the stages and every sink that [offers
    /// services](Self::offers_services) are kept too.
    fn uses_services(&self, _settings: &Self::Settings) -> bool {
        false
    }

    /// Whether the kind offers other components services of its instances (prepared
    /// before the engine starts, e.g. a historian's store).
    fn offers_services(&self) -> bool {
        false
    }
}

/// A kind with its settings type erased: what the registry keeps. Upcasts to the config
/// crate's [`KindSpec`].
pub trait AnyKind: KindSpec {
    fn summarize(&self, plan: &Plan, name: &str, settings: &Settings) -> Vec<String>;
    fn browser(&self) -> Option<Browser>;
    fn simulators(&self) -> Vec<Simulator>;
    fn prepare(&self, plan: &Plan, instances: &[(&str, &Settings)]) -> Result<Services, ComponentError>;
}

/// A source kind with its settings type erased.
pub trait AnySourceKind: AnyKind {
    fn build(&self, ctx: &SourceContext<'_>) -> Result<Box<dyn Source>, ComponentError>;
    fn reads_asset_tree(&self) -> bool;
}

/// A sink kind with its settings type erased.
pub trait AnySinkKind: AnyKind {
    fn build(&self, ctx: &SinkContext<'_>) -> Result<Box<dyn Sink>, ComponentError>;
    fn survives_reload(&self, settings: &Settings) -> bool;
    fn uses_services(&self, settings: &Settings) -> bool;
    fn offers_services(&self) -> bool;
}

/// Holds a typed kind and erases its settings type.
struct Erased<K> {
    name: String,
    kind: K,
    /// Sinks: whether the kind reads through the store-and-forward log.
    buffered: bool,
}

impl<K: Kind> Erased<K> {
    fn settings<'s>(&self, settings: &'s Settings) -> Result<&'s K::Settings, ComponentError> {
        settings.downcast_ref::<K::Settings>().ok_or_else(|| {
            ComponentError::config(format!(
                "kind `{}` was given the settings of another kind (a registry bug)",
                self.name
            ))
        })
    }
}

impl<K: Kind> KindSpec for Erased<K> {
    fn describe(&self) -> &'static str {
        self.kind.describe()
    }

    fn parse(&self, table: &mut Table<'_>) -> Option<Settings> {
        self.kind.parse(table).map(|s| Arc::new(s) as Settings)
    }

    fn buffered(&self) -> bool {
        self.buffered
    }

    fn check_address(&self, settings: &Settings, address: &str) -> Result<(), AddressError> {
        let settings = self.settings(settings).map_err(|e| AddressError {
            message: e.to_string(),
            hint: None,
        })?;
        self.kind.check_address(settings, address)
    }

    fn reads_integers(&self, settings: &Settings, address: &str) -> bool {
        self.settings(settings)
            .is_ok_and(|settings| self.kind.reads_integers(settings, address))
    }

    fn read_period(&self, settings: &Settings, address: &str) -> Option<std::time::Duration> {
        self.settings(settings)
            .ok()
            .and_then(|settings| self.kind.read_period(settings, address))
    }
}

impl<K: Kind> AnyKind for Erased<K> {
    fn summarize(&self, plan: &Plan, name: &str, settings: &Settings) -> Vec<String> {
        match self.settings(settings) {
            Ok(settings) => self.kind.summarize(plan, name, settings),
            Err(e) => vec![e.to_string()],
        }
    }

    fn browser(&self) -> Option<Browser> {
        self.kind.browser()
    }

    fn simulators(&self) -> Vec<Simulator> {
        self.kind.simulators()
    }

    fn prepare(&self, plan: &Plan, instances: &[(&str, &Settings)]) -> Result<Services, ComponentError> {
        let typed = instances
            .iter()
            .map(|(name, settings)| Ok((*name, self.settings(settings)?)))
            .collect::<Result<Vec<_>, ComponentError>>()?;
        self.kind.prepare(plan, &typed)
    }
}

impl<K: SourceKind> AnySourceKind for Erased<K> {
    fn build(&self, ctx: &SourceContext<'_>) -> Result<Box<dyn Source>, ComponentError> {
        self.kind.build(&SourceContext {
            gateway: ctx.gateway,
            name: ctx.name,
            settings: self.settings(ctx.settings)?,
            addresses: ctx.addresses,
            data_dir: ctx.data_dir,
            topology: ctx.topology,
            services: ctx.services,
        })
    }

    fn reads_asset_tree(&self) -> bool {
        self.kind.reads_asset_tree()
    }
}

impl<K: SinkKind> AnySinkKind for Erased<K> {
    fn build(&self, ctx: &SinkContext<'_>) -> Result<Box<dyn Sink>, ComponentError> {
        self.kind.build(&SinkContext {
            gateway: ctx.gateway,
            name: ctx.name,
            settings: self.settings(ctx.settings)?,
            data_dir: ctx.data_dir,
            services: ctx.services,
        })
    }

    fn survives_reload(&self, settings: &Settings) -> bool {
        self.settings(settings)
            .is_ok_and(|settings| self.kind.survives_reload(settings))
    }

    fn uses_services(&self, settings: &Settings) -> bool {
        // Unreadable settings: assume the worst, it restarts with its users.
        self.settings(settings)
            .map_or(true, |settings| self.kind.uses_services(settings))
    }

    fn offers_services(&self) -> bool {
        self.kind.offers_services()
    }
}

/// The source, sink and stage kinds this binary knows.
#[derive(Default, Clone)]
pub struct Registry {
    sources: BTreeMap<String, Arc<dyn AnySourceKind>>,
    sinks: BTreeMap<String, Arc<dyn AnySinkKind>>,
    stages: Vec<(String, Arc<dyn StageKind>)>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("sources", &self.sources.keys().collect::<Vec<_>>())
            .field("sinks", &self.sinks.keys().collect::<Vec<_>>())
            .field("stages", &self.stages.iter().map(|(n, _)| n).collect::<Vec<_>>())
            .finish()
    }
}

impl Registry {
    pub fn add_source<K: SourceKind>(&mut self, name: &str, kind: K) -> &mut Registry {
        let erased = Erased {
            name: name.to_owned(),
            kind,
            buffered: false,
        };
        self.sources.insert(name.to_owned(), Arc::new(erased));
        self
    }

    pub fn add_sink<K: SinkKind>(&mut self, name: &str, kind: K) -> &mut Registry {
        let buffered = kind.buffered();
        let erased = Erased {
            name: name.to_owned(),
            kind,
            buffered,
        };
        self.sinks.insert(name.to_owned(), Arc::new(erased));
        self
    }

    /// Stages run in the order they are added, after normalize and contextualize.
    pub fn add_stage(&mut self, name: &str, kind: Arc<dyn StageKind>) -> &mut Registry {
        self.stages.retain(|(n, _)| n != name);
        self.stages.push((name.to_owned(), kind));
        self
    }

    pub fn source(&self, kind: &str) -> Option<&Arc<dyn AnySourceKind>> {
        self.sources.get(kind)
    }

    pub fn sink(&self, kind: &str) -> Option<&Arc<dyn AnySinkKind>> {
        self.sinks.get(kind)
    }

    pub fn sources(&self) -> impl Iterator<Item = (&str, &Arc<dyn AnySourceKind>)> {
        self.sources.iter().map(|(n, k)| (n.as_str(), k))
    }

    pub fn sinks(&self) -> impl Iterator<Item = (&str, &Arc<dyn AnySinkKind>)> {
        self.sinks.iter().map(|(n, k)| (n.as_str(), k))
    }

    pub fn stages(&self) -> impl Iterator<Item = (&str, &Arc<dyn StageKind>)> {
        self.stages.iter().map(|(n, k)| (n.as_str(), k))
    }

    /// Every kind, sources then sinks, with its name.
    pub fn kinds(&self) -> impl Iterator<Item = (&str, &dyn AnyKind)> {
        self.sources
            .iter()
            .map(|(n, k)| (n.as_str(), &**k as &dyn AnyKind))
            .chain(self.sinks.iter().map(|(n, k)| (n.as_str(), &**k as &dyn AnyKind)))
    }

    /// The catalog the config crate validates against.
    pub fn catalog(&self) -> Catalog {
        let mut catalog = Catalog::default();
        for (name, kind) in &self.sources {
            catalog.add_source(name, kind.clone());
        }
        for (name, kind) in &self.sinks {
            catalog.add_sink(name, kind.clone());
        }
        if let Some(checker) = self.stages.iter().find_map(|(_, k)| k.expressions()) {
            catalog.set_expressions(checker);
        }
        catalog
    }

    /// Runs every kind's [`Kind::prepare`] for the instances `plan` enables.
    pub fn prepare(&self, plan: &Plan) -> Result<Services, ComponentError> {
        let (mut services, sinks) = self.prepare_parts(plan, &Default::default(), &Default::default())?;
        services.extend(&sinks);
        Ok(services)
    }

    /// [`Self::prepare`], the sources' services apart from the sinks', leaving out the
    /// sources named in `running` and the sinks in `running_sinks` (kept running by a
    /// configuration reload, with the services they were prepared with).
    pub fn prepare_parts(
        &self,
        plan: &Plan,
        running: &std::collections::BTreeSet<String>,
        running_sinks: &std::collections::BTreeSet<String>,
    ) -> Result<(Services, Services), ComponentError> {
        let mut services = Services::default();
        let mut sink_services = Services::default();
        let sources = plan
            .sources
            .iter()
            .filter(|s| !running.contains(&s.name))
            .map(|s| (s.enabled, &s.kind, &s.name, &s.settings));
        let sinks = plan
            .sinks
            .iter()
            .filter(|s| !running_sinks.contains(&s.name))
            .map(|s| (s.enabled, &s.kind, &s.name, &s.settings));
        let mut by_kind: BTreeMap<(bool, &str), Vec<(&str, &Settings)>> = BTreeMap::new();
        for (is_sink, (enabled, kind, name, settings)) in
            sources.map(|s| (false, s)).chain(sinks.map(|s| (true, s)))
        {
            if enabled {
                by_kind
                    .entry((is_sink, kind.as_str()))
                    .or_default()
                    .push((name.as_str(), settings));
            }
        }
        for ((is_sink, kind), instances) in by_kind {
            let prepared = if is_sink {
                self.sinks.get(kind).map(|k| k.prepare(plan, &instances))
            } else {
                self.sources.get(kind).map(|k| k.prepare(plan, &instances))
            };
            if let Some(prepared) = prepared {
                if is_sink {
                    sink_services.extend(&prepared?);
                } else {
                    services.extend(&prepared?);
                }
            }
        }
        Ok((services, sink_services))
    }
}
