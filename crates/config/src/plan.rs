//! The validated result of loading a configuration: everything the engine needs to run,
//! with every name resolved and every transform compiled.

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use backplane_model::model::Binding;
use backplane_model::{AssetPath, Context, Level, Model};

use crate::production::ProductionSpec;
use crate::secret::Secret;
use crate::writes::WriteRule;

/// A loaded, validated configuration.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Hex SHA-256 over every loaded file's bytes, in load order; the "config version"
    /// shown by lineage and health.
    pub version: String,
    /// Every file read, the main file first, then includes in load order.
    pub files: Vec<PathBuf>,
    pub gateway: Gateway,
    pub api: ApiSettings,
    /// The enterprise and site every asset path starts with.
    pub namespace: Namespace,
    /// Models by name, in configuration order.
    pub models: Vec<Arc<Model>>,
    /// Every asset, parents before children: the enterprise, the site, then every declared
    /// asset (each parent must be declared; none is implied).
    pub assets: Vec<AssetSpec>,
    pub sources: Vec<ComponentSpec>,
    pub sinks: Vec<ComponentSpec>,
    /// Shifts, downtime reasons, machine states and counts, forms and context rules
    /// (`[calendar]`, `[downtime_reasons]`, `[models.NAME.production]`, `[forms.NAME]`,
    /// `[[context_rules]]`); empty when none are configured.
    pub production: ProductionSpec,
    /// The machine-write allowlist (`[models.NAME.writes.ATTRIBUTE]`); empty: nothing is
    /// ever written to a machine.
    pub writes: Vec<WriteRule>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Gateway {
    /// Name of this gateway instance (a slug); used in status topics and metrics.
    pub name: String,
    /// Where durable state lives; relative paths are relative to the main config file.
    pub data_dir: PathBuf,
    /// The store-and-forward log in front of network sinks (`[gateway.buffer]`).
    pub buffer: LogSettings,
    /// Threads of the async runtime that runs connectors, pipeline and API; `None`: one
    /// per CPU. Taken at start only.
    pub workers: Option<usize>,
}

/// When the store-and-forward log forces its writes to disk (`docs/reliability.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// Before an append returns: nothing accepted is lost on power loss; slowest.
    Always,
    /// In the background at this interval: a power loss loses at most this much.
    Every(Duration),
}

/// `[gateway.buffer]`: the shared log every buffered sink reads through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogSettings {
    /// Default: every 100 ms.
    pub fsync: Fsync,
    /// Size at which a new segment file starts. Default 64 MiB.
    pub segment_bytes: u64,
}

impl Default for LogSettings {
    fn default() -> LogSettings {
        LogSettings {
            fsync: Fsync::Every(Duration::from_millis(100)),
            segment_bytes: 64 * 1024 * 1024,
        }
    }
}

/// What a buffered sink's backlog does when it reaches its quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// The oldest data of this sink is discarded (counted and logged as data loss); the
    /// machines and every other sink are unaffected. The default.
    DropOldest,
    /// Appends wait, which slows the pipeline and the sources: the machines' data is held
    /// back rather than lost, for every sink.
    Block,
}

/// A sink's `buffer = { ... }`: its share of the store-and-forward log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SinkBuffer {
    /// Most bytes of backlog kept for this sink. Default 1 GiB.
    pub quota_bytes: u64,
    pub overflow: Overflow,
    /// Data older than this when the sink gets to it is replayed beside live data rather
    /// than in front of it. Default 2 s.
    pub live_lag: Duration,
}

impl Default for SinkBuffer {
    fn default() -> SinkBuffer {
        SinkBuffer {
            quota_bytes: 1024 * 1024 * 1024,
            overflow: Overflow::DropOldest,
            live_lag: Duration::from_secs(2),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApiSettings {
    /// Where the HTTP API listens. Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// Largest request body accepted, in bytes. Default 65536.
    pub max_body_bytes: usize,
    /// An admin machine token named `token` (`Authorization: Bearer <token>`).
    pub token: Option<Secret>,
    /// The users file (people and machine tokens with roles), resolved against the main
    /// file's directory. With neither `token` nor users the API is open (loopback only).
    pub users: Option<std::path::PathBuf>,
    /// A UI session ends after this long without a request. Default 8 h.
    pub session_idle: std::time::Duration,
    /// A UI session ends this long after login. Default 12 h.
    pub session_lifetime: std::time::Duration,
    /// Per-client request rate limit.
    pub rate_limit: RateLimitSettings,
    /// Open connections served at once; more are closed at accept. Default 512.
    pub max_connections: usize,
    /// Longest wait for a request's headers (also idle keep-alive). Default 10 s.
    pub header_read_timeout: std::time::Duration,
    /// Host names the API answers to besides IP addresses and `localhost` (DNS rebinding).
    pub hosts: Vec<String>,
    /// `[api.tls]`: HTTPS, and client certificates as identities.
    pub tls: Option<crate::api_tls::ApiTls>,
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: 65536,
            token: None,
            users: None,
            session_idle: std::time::Duration::from_secs(8 * 3600),
            session_lifetime: std::time::Duration::from_secs(12 * 3600),
            rate_limit: RateLimitSettings::default(),
            max_connections: 512,
            header_read_timeout: std::time::Duration::from_secs(10),
            hosts: Vec::new(),
            tls: None,
        }
    }
}

/// `[api] rate_limit`: a token bucket per client IP; `requests_per_second = 0` disables it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitSettings {
    pub requests_per_second: u32,
    pub burst: u32,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        RateLimitSettings {
            requests_per_second: 50,
            burst: 200,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Namespace {
    pub enterprise: String,
    /// This gateway's own site.
    pub site: String,
    /// A hub's other sites, whose asset trees it mirrors (`docs/hub.md`); empty on an
    /// edge. When set, every asset path starts with a site name (`site` or one of these).
    pub sites: Vec<String>,
}

impl Namespace {
    /// Whether this gateway serves several sites (a hub).
    pub fn is_hub(&self) -> bool {
        !self.sites.is_empty()
    }

    /// The own site first, then the mirrored ones.
    pub fn all_sites(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.site.as_str()).chain(self.sites.iter().map(String::as_str))
    }
}

/// One asset of the ISA-95 tree.
#[derive(Debug, Clone)]
pub struct AssetSpec {
    /// Full path, from the enterprise down.
    pub path: AssetPath,
    pub level: Level,
    pub description: Option<String>,
    /// The model this asset instantiates, if any.
    pub model: Option<Arc<Model>>,
    /// One binding per bound attribute of the model (attributes may be left unbound).
    /// The engine's topology moves them out into its tags rather than copy them.
    pub bindings: Vec<Binding>,
    /// Context set on this asset at start (its own fields; children inherit them).
    pub context: Context,
    /// `writes`: `None`, the model's write allowlist applies; `Some(list)`, only these of its
    /// allowlisted attributes may be written on this asset (empty: none).
    pub writes: Option<Vec<String>>,
}

/// Kind-specific settings parsed by a [`crate::KindSpec`]; the kind downcasts them back.
pub type Settings = Arc<dyn Any + Send + Sync>;

/// One `[[sources]]` or `[[sinks]]` entry.
#[derive(Clone)]
pub struct ComponentSpec {
    /// Unique among sources (resp. sinks); a slug.
    pub name: String,
    /// The registered kind, e.g. `simulator`, `jsonl`.
    pub kind: String,
    /// False when the entry says `enabled = false`: validated, but not started.
    pub enabled: bool,
    pub settings: Settings,
    /// Sinks of a buffered kind (network sinks): their store-and-forward settings.
    /// `None` for sources and for sinks that write locally.
    pub buffer: Option<SinkBuffer>,
    /// The entry's keys with their values as canonical text (layout and comments aside):
    /// what `backplane plan` compares, since `settings` are opaque to all but the kind.
    pub keys: Arc<BTreeMap<String, String>>,
}

impl fmt::Debug for ComponentSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ComponentSpec")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("enabled", &self.enabled)
            .field("buffer", &self.buffer)
            .finish_non_exhaustive()
    }
}

impl Plan {
    pub fn asset(&self, path: &str) -> Option<&AssetSpec> {
        self.assets.iter().find(|a| a.path.as_str() == path)
    }

    pub fn model(&self, name: &str) -> Option<&Arc<Model>> {
        self.models.iter().find(|m| m.name == name)
    }

    /// The write rule of `attribute` of `model`, if it is allowlisted.
    pub fn write_rule(&self, model: &str, attribute: &str) -> Option<&WriteRule> {
        self.writes
            .iter()
            .find(|r| r.model == model && r.attribute == attribute)
    }
}
