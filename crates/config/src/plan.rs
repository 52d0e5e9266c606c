//! The validated result of loading a configuration: everything the engine needs to run,
//! with every name resolved and every transform compiled.

use std::any::Any;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use backplane_model::model::Binding;
use backplane_model::{AssetPath, Context, Level, Model};

use crate::secret::Secret;

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
}

#[derive(Debug, Clone, PartialEq)]
pub struct Gateway {
    /// Name of this gateway instance (a slug); used in status topics and metrics.
    pub name: String,
    /// Where durable state lives; relative paths are relative to the main config file.
    pub data_dir: PathBuf,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApiSettings {
    /// Where the HTTP API listens. Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// Largest request body accepted, in bytes. Default 65536.
    pub max_body_bytes: usize,
    /// When set, mutating API calls need `Authorization: Bearer <token>`.
    pub token: Option<Secret>,
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: 65536,
            token: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Namespace {
    pub enterprise: String,
    pub site: String,
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
    pub bindings: Vec<Binding>,
    /// Context set on this asset at start (its own fields; children inherit them).
    pub context: Context,
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
}

impl fmt::Debug for ComponentSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ComponentSpec")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("enabled", &self.enabled)
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
}
