//! Backplane's configuration: one TOML file (plus included files) read into a validated
//! [`Plan`], or into every error it contains at once, each with file:line:column, the key
//! and a hint, like a compiler.
//!
//! Layout:
//! - [`reader`]: a spanned TOML walker ([`Table`], [`Item`]) that records which keys were
//!   read, so unknown keys are errors, and collects [`Diagnostic`]s instead of stopping.
//! - [`catalog`]: the [`KindSpec`] trait through which the engine's source and sink kinds
//!   read their own keys and check addresses.
//! - [`secret`]: secrets by reference (`env:NAME`, `file:PATH`).
//! - `loader`: the main file and its includes, and the top-level sections; `models`,
//!   `components` (sources and sinks) and `assets` (the tree and its bindings) read one
//!   section each and do the cross-checks between them.
//! - [`production`]: the production sections (calendar, downtime reasons, machine states
//!   and counts per model, operator forms, context rules) as plain spec types.
//! - [`writes`]: the machine-write allowlist (`[models.NAME.writes.ATTRIBUTE]`) and its
//!   interlock comparisons.
//! - [`plan`]: the validated result the engine runs.
//! - [`diff`]: what changes between two plans (`backplane plan`, reloads).

pub mod api_tls;
pub mod archive;
mod assets;
pub mod catalog;
mod components;
pub mod diff;
mod loader;
mod models;
pub mod plan;
pub mod production;
pub mod reader;
pub mod secret;
mod shared;
pub mod writes;

use std::path::Path;

pub use api_tls::{ApiCertificate, ApiTls, ClientCerts};
pub use catalog::{AddressError, Catalog, ExpressionChecker, ExpressionProblem, KindSpec};
pub use plan::{
    ApiSettings, AssetSpec, ComponentSpec, Fsync, Gateway, LogSettings, Namespace, Overflow, Plan,
    RateLimitSettings, Settings, SinkBuffer,
};
pub use reader::{Diagnostic, DurationError, Item, KeyRef, Location, Table, parse_bytes, parse_duration};
pub use secret::{Secret, SecretError};
pub use writes::{CompareOp, Interlock, WriteRule};

/// Reads the configuration file at `path` and every file it includes. On failure returns
/// every problem found in every file, sorted by file (in load order) and position.
pub fn load(path: &Path, catalog: &Catalog) -> Result<Plan, Vec<Diagnostic>> {
    loader::load(path, catalog)
}

/// Like [`load`], for a configuration given as text. `origin` names the text in
/// diagnostics, and its directory is the base for includes and `gateway.data_dir`.
pub fn load_str(text: &str, origin: &Path, catalog: &Catalog) -> Result<Plan, Vec<Diagnostic>> {
    loader::load_str(text, origin, catalog)
}
