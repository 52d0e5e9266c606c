//! Reading the main file and its includes, then the top-level sections of every file into
//! one [`Plan`].
//!
//! Each file is read and parsed once, main first, includes depth first in order. Its
//! parsed document borrows its text, so the walk recurses once per file: every file read
//! so far stays alive in the frames above, and the deepest frame builds the plan from
//! all of them. (Parsing each file a second time for its sections, as before, doubled the
//! start-up work and left the second parse's token vectors resident in the heap.)

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use backplane_model::asset::validate_slug;
use sha2::{Digest, Sha256};
use toml::Spanned;
use toml::de::DeTable;

use crate::Catalog;
use crate::assets::{self, Env};
use crate::components;
use crate::models;
use crate::plan::{ApiSettings, Fsync, Gateway, LogSettings, Namespace, Plan};
use crate::production;
use crate::reader::{Ctx, Diagnostic, Item, Location, Sink, SourceFile, Table, parse_document, with_article};
use crate::writes;

/// Sections only the main file may contain.
const MAIN_ONLY: [&str; 3] = ["gateway", "api", "namespace"];

pub(crate) fn load(path: &Path, catalog: &Catalog) -> Result<Plan, Vec<Diagnostic>> {
    match std::fs::read_to_string(path) {
        Ok(text) => load_source(SourceFile::new(path.to_owned(), text), catalog),
        Err(e) => Err(vec![Diagnostic {
            location: Location {
                file: path.to_owned(),
                line: 1,
                column: 1,
            },
            key: String::new(),
            message: format!("cannot read configuration file: {e}"),
            hint: None,
        }]),
    }
}

pub(crate) fn load_str(text: &str, origin: &Path, catalog: &Catalog) -> Result<Plan, Vec<Diagnostic>> {
    load_source(SourceFile::new(origin.to_owned(), text.to_owned()), catalog)
}

fn load_source(main: SourceFile, catalog: &Catalog) -> Result<Plan, Vec<Diagnostic>> {
    let sink = Sink::default();
    let mut walk = Walk {
        sink: &sink,
        catalog,
        queue: Vec::new(),
        seen: Vec::new(),
    };
    let canonical = canonical(&main.path);
    let (plan, paths) = walk.enter(main, canonical, Vec::new(), Vec::new());
    let mut diagnostics = sink.into_inner();
    match plan {
        Some(plan) if diagnostics.is_empty() => Ok(plan),
        _ => {
            if diagnostics.is_empty() {
                // Every path that yields no plan reports why; this guards against a gap.
                diagnostics.push(Diagnostic {
                    location: Location {
                        file: paths.first().cloned().unwrap_or_default(),
                        line: 1,
                        column: 1,
                    },
                    key: String::new(),
                    message: "configuration could not be loaded".to_owned(),
                    hint: None,
                });
            }
            let order = |d: &Diagnostic| {
                paths
                    .iter()
                    .position(|p| *p == d.location.file)
                    .unwrap_or(usize::MAX)
            };
            diagnostics.sort_by_key(|d| (order(d), d.location.line, d.location.column));
            Err(diagnostics)
        }
    }
}

/// The identity of a file for cycle detection; falls back to the path as given for texts
/// that do not exist on disk (`load_str`).
fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path)
        .or_else(|_| std::path::absolute(path))
        .unwrap_or_else(|_| path.to_owned())
}

/// A file read and its document (`None` after a syntax error, reported once).
type Parsed<'a> = (&'a SourceFile, Option<Spanned<DeTable<'a>>>);

/// The walk over the main file and its includes.
struct Walk<'s> {
    sink: &'s Sink,
    catalog: &'s Catalog,
    /// Include entries still to follow, the next one last.
    queue: Vec<Pending>,
    /// Canonical paths of every file read.
    seen: Vec<PathBuf>,
}

/// One entry of an `include` array.
struct Include {
    text: String,
    location: Location,
    key: String,
}

/// An include entry to follow, with where it was written.
struct Pending {
    include: Include,
    /// The directory of the including file.
    dir: PathBuf,
    /// Canonical paths of the including file and the files including it, outermost
    /// first, for cycles.
    ancestors: Rc<Vec<PathBuf>>,
}

impl Walk<'_> {
    /// Parses `file`, queues its includes and goes on with the next file; the last frame
    /// builds the plan from every file read (`done`, then this one). Returns the plan and
    /// the paths of the files read, in load order.
    fn enter<'a>(
        &mut self,
        file: SourceFile,
        canonical: PathBuf,
        mut ancestors: Vec<PathBuf>,
        done: Vec<Parsed<'a>>,
    ) -> (Option<Plan>, Vec<PathBuf>) {
        let doc = match parse_document(&file) {
            Ok(doc) => Some(doc),
            Err(diagnostic) => {
                self.sink.push(diagnostic);
                None
            }
        };
        let includes = doc
            .as_ref()
            .map_or_else(Vec::new, |doc| self.includes(&file, doc));
        self.seen.push(canonical.clone());
        ancestors.push(canonical);
        let ancestors = Rc::new(ancestors);
        let dir = file.dir();
        self.queue
            .extend(includes.into_iter().rev().map(|include| Pending {
                include,
                dir: dir.to_owned(),
                ancestors: ancestors.clone(),
            }));
        // The files above live in the callers' frames, this one in this frame.
        let mut done: Vec<Parsed<'_>> = done;
        done.push((&file, doc));
        while let Some(pending) = self.queue.pop() {
            if let Some((next, canonical)) = self.follow(&pending) {
                return self.enter(next, canonical, pending.ancestors.to_vec(), done);
            }
        }
        let plan = build(&done, self.catalog, self.sink);
        (plan, done.iter().map(|(f, _)| f.path.clone()).collect())
    }

    /// Reads the file an include entry names, or reports why it cannot be included.
    fn follow(&self, pending: &Pending) -> Option<(SourceFile, PathBuf)> {
        let include = &pending.include;
        let path = pending.dir.join(&include.text);
        let report = |message: String, hint: Option<String>| {
            self.sink.push(Diagnostic {
                location: include.location.clone(),
                key: include.key.clone(),
                message,
                hint,
            })
        };
        let target = match std::fs::canonicalize(&path) {
            Ok(target) => target,
            Err(e) => {
                report(
                    format!("cannot read included file `{}`: {e}", path.display()),
                    None,
                );
                return None;
            }
        };
        if let Some(start) = pending.ancestors.iter().position(|p| *p == target) {
            let chain: Vec<String> = pending.ancestors[start..]
                .iter()
                .chain(std::iter::once(&target))
                .map(|p| {
                    p.file_name()
                        .map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into_owned())
                })
                .collect();
            report(
                format!("include cycle: {}", chain.join(" → ")),
                Some(
                    "remove this include; a file cannot include itself, directly or through others"
                        .to_owned(),
                ),
            );
            return None;
        }
        if self.seen.contains(&target) {
            report(
                format!("`{}` is included more than once", include.text),
                Some("include each file once; its sections would be loaded twice".to_owned()),
            );
            return None;
        }
        match std::fs::read_to_string(&path) {
            Ok(text) => Some((SourceFile::new(path, text), target)),
            Err(e) => {
                report(
                    format!("cannot read included file `{}`: {e}", path.display()),
                    None,
                );
                None
            }
        }
    }

    /// The `include` entries of a parsed file.
    fn includes(&self, file: &SourceFile, doc: &Spanned<DeTable<'_>>) -> Vec<Include> {
        let mut root = Table::root(
            Ctx {
                file,
                sink: self.sink,
            },
            doc,
        );
        let Some(items) = root.optional_item("include").and_then(|item| item.expect_array()) else {
            return Vec::new();
        };
        items
            .iter()
            .filter_map(|item| {
                let text = item.expect_str()?;
                Some(Include {
                    text: text.to_owned(),
                    location: item.location(),
                    key: item.key_path().to_owned(),
                })
            })
            .collect()
    }
}

/// Every section of every file, cross-checked, into a plan. Returns `None` when something
/// needed is missing; the reason is always in `sink`.
fn build(files: &[Parsed<'_>], catalog: &Catalog, sink: &Sink) -> Option<Plan> {
    // Syntax errors were reported when the files were read; files with one are skipped.
    let (main, _) = files.first()?;
    let mut gateway = None;
    let mut api = None;
    let mut namespace = None;
    let mut model_entries = Vec::new();
    let mut asset_tables = Vec::new();
    let mut source_tables = Vec::new();
    let mut sink_tables = Vec::new();
    let mut production_sections = production::Sections::default();
    for (i, (file, doc)) in files.iter().enumerate() {
        let Some(doc) = doc else { continue };
        let mut root = Table::root(Ctx { file, sink }, doc);
        root.skip("include");
        if i == 0 {
            gateway = Some(read_gateway(root.optional_table("gateway"), file.dir()));
            api = Some(read_api(root.optional_table("api"), file.dir()));
            namespace = root.required_table("namespace").and_then(read_namespace);
        } else {
            for key in MAIN_ONLY {
                if let Some(item) = root.optional_item(key) {
                    item.error(
                        format!("`{key}` is only allowed in the main file"),
                        Some(format!("move it to {}", main.path.display())),
                    );
                }
            }
        }
        if let Some(mut models) = root.optional_table("models") {
            model_entries.extend(models.take_remaining());
            models.finish();
        }
        asset_tables.extend(array_of_tables(&mut root, "assets"));
        source_tables.extend(array_of_tables(&mut root, "sources"));
        sink_tables.extend(array_of_tables(&mut root, "sinks"));
        production_sections.take(&mut root);
        root.finish();
    }

    let mut write_tables = Vec::new();
    let models = models::read_models(
        model_entries,
        &mut production_sections.models,
        &mut write_tables,
        catalog.expressions(),
    );
    let write_rules = writes::read_write_rules(write_tables, &models);
    let sources = components::read_components(source_tables, catalog, components::Role::Source);
    let sinks = components::read_components(sink_tables, catalog, components::Role::Sink);
    let env = Env {
        models: &models,
        sources: &sources.registry,
        writes: &write_rules,
        hub: namespace.as_ref().is_some_and(Namespace::is_hub),
        chains: Default::default(),
        names: Default::default(),
    };
    let declared = assets::read_assets(asset_tables, &env);
    // The checks across assets run even without a namespace, to report everything at once.
    let assets = assets::arrange(declared, namespace.as_ref());
    let production = production::read(production_sections, &models, assets.as_deref());
    if !sink.is_empty() {
        return None;
    }

    let version = version_of(files.iter().map(|(file, _)| file.text.as_str()));
    Some(Plan {
        version,
        files: files.iter().map(|(f, _)| f.path.clone()).collect(),
        gateway: gateway?,
        api: api?,
        namespace: namespace?,
        models: models.into_iter().map(|m| m.model).collect(),
        assets: assets?,
        sources: sources.specs,
        sinks: sinks.specs,
        production,
        writes: write_rules,
    })
}

/// The configuration version of files with these texts, in load order: hex SHA-256 over
/// their bytes. Also what the archive of past versions checks a file read back against.
pub(crate) fn version_of<'a>(texts: impl IntoIterator<Item = &'a str>) -> String {
    let mut hasher = Sha256::new();
    for text in texts {
        hasher.update(text.as_bytes());
    }
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The tables of a `[[key]]` array.
fn array_of_tables<'a>(root: &mut Table<'a>, key: &str) -> Vec<Table<'a>> {
    let Some(item) = root.optional_item(key) else {
        return Vec::new();
    };
    let Some(items) = item.as_array() else {
        item.error(
            format!(
                "expected an array of tables, found {}",
                with_article(item.type_name())
            ),
            Some(format!("write each entry as `[[{key}]]`, with two brackets")),
        );
        return Vec::new();
    };
    items.iter().filter_map(Item::expect_table).collect()
}

fn read_gateway(table: Option<Table<'_>>, dir: &Path) -> Gateway {
    let mut gateway = Gateway {
        name: "backplane".to_owned(),
        data_dir: dir.join("data"),
        buffer: LogSettings::default(),
        workers: None,
    };
    let Some(mut t) = table else { return gateway };
    if let Some(buffer) = t.optional_table("buffer") {
        gateway.buffer = read_log_settings(buffer);
    }
    if let Some(name) = t.optional_str("name") {
        match validate_slug(name) {
            Ok(()) => gateway.name = name.to_owned(),
            Err(e) => t.error("name", format!("invalid gateway name: {e}"), None),
        }
    }
    if let Some(data_dir) = t.optional_str("data_dir") {
        if data_dir.is_empty() {
            t.error(
                "data_dir",
                "`data_dir` is empty",
                Some("write a directory, e.g. \"data\"".to_owned()),
            );
        } else {
            // `join` keeps an absolute `data_dir` as it is.
            gateway.data_dir = dir.join(data_dir);
        }
    }
    if let Some(workers) = t.optional_u64("workers") {
        match usize::try_from(workers) {
            Ok(n) if (1..=MAX_WORKERS).contains(&n) => gateway.workers = Some(n),
            _ => t.error(
                "workers",
                format!("`workers` must be from 1 to {MAX_WORKERS}, found {workers}"),
                Some("leave it out for one per CPU; 1 suits a small box with a few thousand tags".to_owned()),
            ),
        }
    }
    t.finish();
    gateway
}

/// The most runtime threads `[gateway] workers` may ask for.
const MAX_WORKERS: usize = 256;

/// `[gateway.buffer]`: `fsync = "always" | "100ms"`, `segment_size = "64MiB"`.
fn read_log_settings(mut t: Table<'_>) -> LogSettings {
    let mut settings = LogSettings::default();
    if let Some(item) = t.optional_item("fsync") {
        let hint = Some("write \"always\" or an interval such as \"100ms\" (at most \"10s\")".to_owned());
        match item.as_str() {
            Some("always") => settings.fsync = Fsync::Always,
            Some(text) => match crate::reader::parse_duration(text) {
                Ok(d) if !d.is_zero() && d <= std::time::Duration::from_secs(10) => {
                    settings.fsync = Fsync::Every(d)
                }
                Ok(_) => item.error("the fsync interval must be above zero and at most 10 s", hint),
                Err(reason) => item.error(format!("invalid fsync setting `{text}`: {reason}"), hint),
            },
            None => item.error("`fsync` must be a string", hint),
        }
    }
    if let Some(size) = t.optional_bytes("segment_size") {
        if (1024 * 1024..=1024 * 1024 * 1024).contains(&size) {
            settings.segment_bytes = size;
        } else {
            t.error(
                "segment_size",
                "`segment_size` must be between 1 MiB and 1 GiB",
                Some("the default, \"64MiB\", suits most gateways".to_owned()),
            );
        }
    }
    t.finish();
    settings
}

/// The largest `max_body_bytes` accepted: each request may buffer this much.
const MAX_BODY_BYTES: u64 = 16 * 1024 * 1024;

/// The smallest `max_body_bytes` accepted: below this even a small config apply fails.
const MIN_BODY_BYTES: u64 = 1024;

fn read_api(table: Option<Table<'_>>, dir: &Path) -> ApiSettings {
    let mut api = ApiSettings::default();
    let Some(mut t) = table else { return api };
    if let Some(listen) = t.optional_str("listen") {
        match listen.parse::<SocketAddr>() {
            Ok(addr) => api.listen = addr,
            Err(_) => t.error(
                "listen",
                format!("invalid listen address `{listen}`"),
                Some("write an IP address and a port, e.g. \"127.0.0.1:8080\", \"0.0.0.0:8080\" or \"[::1]:8080\"".to_owned()),
            ),
        }
    }
    if let Some(max) = t.optional_u64("max_body_bytes") {
        match usize::try_from(max) {
            Ok(max) if (MIN_BODY_BYTES..=MAX_BODY_BYTES).contains(&(max as u64)) => api.max_body_bytes = max,
            _ => t.error(
                "max_body_bytes",
                format!("`max_body_bytes` must be from {MIN_BODY_BYTES} to {MAX_BODY_BYTES}, found {max}"),
                None,
            ),
        }
    }
    if let Some(max) = t.optional_u64("max_connections") {
        match usize::try_from(max) {
            Ok(max) if (1..=65_536).contains(&max) => api.max_connections = max,
            _ => t.error(
                "max_connections",
                format!("`max_connections` must be from 1 to 65536, found {max}"),
                None,
            ),
        }
    }
    if let Some(timeout) = t.optional_duration("header_read_timeout") {
        if (std::time::Duration::from_millis(100)..=std::time::Duration::from_secs(300)).contains(&timeout) {
            api.header_read_timeout = timeout;
        } else {
            t.error(
                "header_read_timeout",
                "`header_read_timeout` must be from 100ms to 5m",
                None,
            );
        }
    }
    if let Some(item) = t.optional_item("hosts") {
        match item.as_array() {
            Some(items) => {
                for i in items {
                    match i.as_str() {
                        Some(h)
                            if !h.is_empty()
                                && h.len() <= 253
                                && h.chars()
                                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-') =>
                        {
                            api.hosts.push(h.to_ascii_lowercase());
                        }
                        _ => i.error(
                            "`hosts` lists host names (letters, digits, `.` and `-`), without ports",
                            Some("hosts = [\"gateway.plant.example\"]".to_owned()),
                        ),
                    }
                }
            }
            None => item.error("`hosts` must be a list of host names", None),
        }
    }
    api.token = t.optional_secret("token");
    if let Some(users) = t.optional_str("users") {
        if users.trim().is_empty() {
            t.error(
                "users",
                "`users` is empty",
                Some("name the users file, e.g. \"users.toml\" (made with `backplane users`)".to_owned()),
            );
        } else {
            // `join` keeps an absolute path as it is.
            api.users = Some(dir.join(users));
        }
    }
    let hour = std::time::Duration::from_secs(3600);
    let session_range = std::time::Duration::from_secs(60)..=30 * 24 * hour;
    for (key, slot) in [
        ("session_idle", &mut api.session_idle),
        ("session_lifetime", &mut api.session_lifetime),
    ] {
        if let Some(d) = t.optional_duration(key) {
            if session_range.contains(&d) {
                *slot = d;
            } else {
                t.error(key, format!("`{key}` must be from 1m to 30d"), None);
            }
        }
    }
    if let Some(mut limit) = t.optional_table("rate_limit") {
        let mut read = |key: &str, slot: &mut u32| {
            if let Some(n) = limit.optional_u64(key) {
                match u32::try_from(n) {
                    Ok(n) if n <= 1_000_000 => *slot = n,
                    _ => limit.error(key, format!("`{key}` must be from 0 to 1000000"), None),
                }
            }
        };
        read("requests_per_second", &mut api.rate_limit.requests_per_second);
        read("burst", &mut api.rate_limit.burst);
        if api.rate_limit.requests_per_second > 0 && api.rate_limit.burst == 0 {
            limit.error(
                "burst",
                "`burst` must be at least 1 when `requests_per_second` is above 0",
                Some("`requests_per_second = 0` disables the limit".to_owned()),
            );
        }
        limit.finish();
    }
    api.tls = t
        .optional_table("tls")
        .and_then(|tls| crate::api_tls::read_api_tls(tls, dir));
    // The API changes production context (and will write to machines): open only on loopback.
    if !api.listen.ip().is_loopback() && api.token.is_none() && api.users.is_none() {
        t.error(
            "listen",
            format!(
                "the API would listen on {} with no `token` and no `users`: anyone on the network could change context",
                api.listen
            ),
            Some(
                "set `users = \"users.toml\"` (see `backplane users`) or `token = \"env:BACKPLANE_API_TOKEN\"`, or listen on 127.0.0.1"
                    .to_owned(),
            ),
        );
    }
    t.finish();
    api
}

fn read_namespace(mut t: Table<'_>) -> Option<Namespace> {
    let enterprise = required_slug(&mut t, "enterprise");
    let site = required_slug(&mut t, "site");
    let mut sites = Vec::new();
    if let Some(items) = t.optional_item("sites").and_then(|item| item.expect_array()) {
        for item in items {
            let Some(name) = item.expect_str() else { continue };
            if let Err(e) = validate_slug(name) {
                item.error(format!("invalid site name: {e}"), None);
            } else if Some(name) == site.as_deref() || sites.iter().any(|s| s == name) {
                item.error(
                    format!("site `{name}` is listed twice"),
                    Some(
                        "`site` is this gateway's own site; `sites` lists the other sites it mirrors"
                            .to_owned(),
                    ),
                );
            } else {
                sites.push(name.to_owned());
            }
        }
    }
    t.finish();
    Some(Namespace {
        enterprise: enterprise?,
        site: site?,
        sites,
    })
}

fn required_slug(t: &mut Table<'_>, key: &str) -> Option<String> {
    let value = t.required_str(key)?;
    match validate_slug(value) {
        Ok(()) => Some(value.to_owned()),
        Err(e) => {
            t.error(key, format!("invalid {key} name: {e}"), None);
            None
        }
    }
}
