//! Discovery: show a server's address space as a tree (node class, data type, access
//! level, current value, node id) and emit TOML (a source, a model and bindings) for the
//! variables an engineer selects by browse path or wildcard.
//!
//! Browsing follows hierarchical references (Organizes, HasComponent, ...) but not
//! HasProperty, so metadata such as EURange does not clutter the tree; it does not descend
//! into the standard `Server` object unless asked to start there.

use std::collections::BTreeSet;
use std::fmt::{self, Write as _};
use std::path::PathBuf;
use std::time::Duration;

use backplane_connector::hooks::{self, Decoding, OptionSpec, Options, Signal};
use opcua::client::Session;
use opcua::types::{
    AttributeId, BrowseDescription, BrowseDirection, BrowseResult, ByteString, DataTypeId, DataValue,
    NodeClass, NodeId, ObjectId, ReadValueId, ReferenceTypeId, StatusCode, TimestampsToReturn, Variant,
};

use crate::address::{Address, node_id_text};
use crate::config::{Identity, Mode, Policy, Security, check_url};
use crate::session::{self, ConnectOptions, Connection, SessionError, SessionEvent};
use crate::value;

/// Where browsing starts.
#[derive(Clone, Debug, PartialEq)]
pub enum Start {
    /// The Objects folder.
    Objects,
    /// A node id (`ns=2;s=Line2`).
    Node(Address),
    /// Browse names from the Objects folder (`Filler2/Motor`).
    Path(Vec<String>),
}

/// What to browse and select.
#[derive(Clone, Debug)]
pub struct BrowseOptions {
    pub connect: ConnectOptions,
    pub start: Start,
    /// Levels below the start node.
    pub depth: usize,
    /// Browse-path patterns (relative to the start node) of the variables to emit TOML
    /// for; every variable shown when empty.
    pub select: Vec<String>,
    /// Source name in the emitted TOML.
    pub source_name: String,
    /// For the emitted TOML: where the password comes from.
    pub password_env: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum BrowseError {
    #[error("{0}")]
    Options(String),
    /// No session could be started.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The session started but never connected; the text says how it ended.
    #[error("{0}")]
    Connect(String),
    /// Browsing stopped part way.
    #[error("browsing {url} failed: {source}")]
    Browse { url: String, source: WalkError },
}

/// Why browsing stopped part way.
#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    /// The Browse or BrowseNext service failed.
    #[error(transparent)]
    Service(#[from] opcua::types::Error),
    /// The server would not browse this node.
    #[error("{node}: {status}")]
    Node { node: String, status: StatusCode },
    /// The start node's namespace URI needed the namespace array.
    #[error(transparent)]
    Namespaces(#[from] SessionError),
    /// The start node's namespace URI is not in the server's namespace array.
    #[error("the server has no namespace for `{address}`")]
    NoNamespace { address: String },
    /// A name of the start path that no child has (as browse or display name).
    #[error("no node `{name}` below {parent}")]
    NoNode { name: String, parent: String },
}

/// One node found.
#[derive(Clone, Debug, PartialEq)]
pub struct Found {
    pub depth: usize,
    /// Browse names from the start node, joined with `/`.
    pub path: String,
    pub name: String,
    pub node: NodeId,
    pub class: NodeClass,
    /// Variables: the data type's name, the value rank, readable/writable, current value.
    pub data_type: Option<String>,
    pub value_rank: Option<i32>,
    pub access: Option<u8>,
    pub value: Option<Variant>,
}

impl Found {
    fn is_variable(&self) -> bool {
        self.class == NodeClass::Variable
    }

    /// By the value rank, or by the value where the rank is open (-2, -3).
    fn is_array(&self) -> bool {
        self.value_rank.is_some_and(|r| r >= 1) || matches!(self.value, Some(Variant::Array(_)))
    }

    fn access_text(&self) -> &'static str {
        match self.access.map(|a| (a & 1 != 0, a & 2 != 0)) {
            Some((true, true)) => "read/write",
            Some((true, false)) => "read",
            Some((false, true)) => "write",
            Some((false, false)) => "none",
            None => "",
        }
    }

    /// The model attribute type for this variable, if Backplane can represent it.
    pub fn attribute_type(&self) -> Option<String> {
        let array = self.is_array();
        let scalar = match self.data_type.as_deref()? {
            "Boolean" => "bool",
            "SByte" | "Int16" | "Int32" | "Int64" | "Integer" => "int",
            "Byte" | "UInt16" | "UInt32" | "UInt64" | "UInteger" | "StatusCode" => "uint",
            "Float" | "Double" | "Duration" => "float",
            "String" | "LocalizedText" | "QualifiedName" | "Guid" | "NodeId" | "LocaleId" => "string",
            "DateTime" | "UtcTime" => "timestamp",
            "ByteString" if !array => return Some("uint[]".into()),
            _ => match self.value.as_ref() {
                // Abstract types (Number, BaseDataType) and enumerations: go by the value.
                Some(v) => match value::convert(v, None).ok().flatten()? {
                    backplane_model::Value::Bool(_) => "bool",
                    backplane_model::Value::Int(_) => "int",
                    backplane_model::Value::UInt(_) => "uint",
                    backplane_model::Value::Float(_) => "float",
                    backplane_model::Value::String(_) => "string",
                    backplane_model::Value::Timestamp(_) => "timestamp",
                    backplane_model::Value::Array(_) => return None,
                },
                None => return None,
            },
        };
        Some(if array {
            format!("{scalar}[]")
        } else {
            scalar.to_owned()
        })
    }
}

/// What a browse found.
#[derive(Clone, Debug)]
pub struct BrowseReport {
    pub url: String,
    /// "Basic256Sha256/sign-and-encrypt".
    pub security: String,
    pub policy: Policy,
    pub mode: Mode,
    pub user: Option<String>,
    pub start: String,
    pub nodes: Vec<Found>,
    pub select: Vec<String>,
    pub source_name: String,
    pub password_env: Option<String>,
    /// Nodes whose children were not shown because of `depth`.
    pub truncated: usize,
}

fn data_type_name(id: &NodeId) -> String {
    if id.namespace == 0
        && let opcua::types::Identifier::Numeric(n) = id.identifier
        && let Ok(t) = DataTypeId::try_from(n)
    {
        return format!("{t:?}");
    }
    node_id_text(id)
}

/// Does `path` (a/b/c) match `pattern`: `*` is any part of one name, `**` any number of
/// levels.
pub fn matches(pattern: &str, path: &str) -> bool {
    let pattern: Vec<&str> = pattern.trim_matches('/').split('/').collect();
    let path: Vec<&str> = path.split('/').collect();
    fn segment(p: &str, s: &str) -> bool {
        let parts: Vec<&str> = p.split('*').collect();
        if parts.len() == 1 {
            return p == s;
        }
        let mut rest = s;
        for (i, part) in parts.iter().enumerate() {
            if i == 0 {
                let Some(r) = rest.strip_prefix(part) else {
                    return false;
                };
                rest = r;
            } else if i == parts.len() - 1 {
                return rest.ends_with(part);
            } else {
                let Some(at) = rest.find(part) else { return false };
                rest = &rest[at + part.len()..];
            }
        }
        true
    }
    fn walk(p: &[&str], s: &[&str]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(&"**"), _) => walk(&p[1..], s) || (!s.is_empty() && walk(p, &s[1..])),
            (Some(a), Some(b)) => segment(a, b) && walk(&p[1..], &s[1..]),
            _ => false,
        }
    }
    walk(&pattern, &path)
}

/// `filler2_speed` from `Filler2/Speed`: a valid, unique attribute name.
fn attribute_name(path: &str, taken: &mut BTreeSet<String>) -> String {
    let mut name = String::new();
    let mut previous: Option<char> = None;
    for c in path.chars() {
        // CamelCase to snake_case: `GoodCount` → `good_count`.
        if c.is_ascii_uppercase() && previous.is_some_and(|p| p.is_ascii_lowercase() || p.is_ascii_digit()) {
            name.push('_');
        }
        previous = Some(c);
        let c = if c.is_ascii_alphanumeric() {
            c.to_ascii_lowercase()
        } else {
            '_'
        };
        if c == '_' && (name.is_empty() || name.ends_with('_')) {
            continue;
        }
        name.push(c);
    }
    let mut name = name.trim_end_matches('_').to_owned();
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        name.insert_str(0, "v_");
    }
    name.truncate(56);
    let mut unique = name.clone();
    let mut n = 2;
    while !taken.insert(unique.clone()) {
        unique = format!("{name}_{n}");
        n += 1;
    }
    unique
}

fn toml_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn short(v: &Variant) -> String {
    let text = match value::convert(v, None) {
        Ok(Some(v)) => v.to_string(),
        Ok(None) => "(empty)".to_owned(),
        Err(_) => format!("({})", value::kind(v)),
    };
    if text.chars().count() > 40 {
        format!("{}…", text.chars().take(39).collect::<String>())
    } else {
        text
    }
}

impl BrowseReport {
    /// The variables `select` picks (all when it is empty).
    pub fn selected(&self) -> Vec<&Found> {
        self.nodes
            .iter()
            .filter(|n| n.is_variable())
            .filter(|n| self.select.is_empty() || self.select.iter().any(|p| matches(p, &n.path)))
            .collect()
    }

    /// TOML for a source reading this server, with the security it was browsed with.
    pub fn source_toml(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "[[sources]]");
        let _ = writeln!(out, "name = {}   # choose a name", toml_string(&self.source_name));
        let _ = writeln!(out, "kind = \"opcua\"");
        let _ = writeln!(out, "url = {}", toml_string(&self.url));
        let _ = writeln!(out, "security_policy = \"{}\"", self.policy.name());
        let _ = writeln!(out, "security_mode = \"{}\"", self.mode.name());
        if let Some(user) = &self.user {
            let _ = writeln!(out, "username = {}", toml_string(user));
            let env = self.password_env.as_deref().unwrap_or("OPCUA_PASSWORD");
            let _ = writeln!(out, "password = \"env:{env}\"");
        }
        let _ = writeln!(out, "period = \"1s\"");
        out
    }

    /// Every variable shown that Backplane has a type for, as a signal with one reading.
    pub fn signals(&self) -> Vec<Signal> {
        let mut taken = BTreeSet::new();
        self.nodes
            .iter()
            .filter(|n| n.is_variable())
            .filter_map(|found| {
                let t = found.attribute_type()?;
                let name = attribute_name(&found.path, &mut taken);
                let address = node_id_text(&found.node);
                let data_type = found.data_type.clone().unwrap_or_default();
                Some(Signal {
                    description: format!("{} ({data_type}, {})", found.path, found.access_text()),
                    decodings: vec![Decoding {
                        label: if found.is_array() {
                            format!("{data_type}[]")
                        } else {
                            data_type
                        },
                        attribute_type: Some(t),
                        value: found.value.as_ref().map(short).unwrap_or_default(),
                        binding: format!("bindings.{name} = {{ address = {} }}", toml_string(&address)),
                    }],
                    address,
                    name,
                })
            })
            .collect()
    }

    /// A source, a model and an asset with one binding per selected variable, each with
    /// its type and current value as a comment, ready to paste.
    pub fn toml(&self) -> String {
        let mut out = String::new();
        let selected = self.selected();
        let _ = writeln!(
            out,
            "# From `backplane browse` of {} ({}): {} variables.",
            self.url,
            self.security,
            selected.len()
        );
        out.push_str(&self.source_toml());
        let _ = writeln!(out);
        let mut taken = BTreeSet::new();
        let mut attributes = Vec::new();
        let mut skipped = Vec::new();
        for found in &selected {
            match found.attribute_type() {
                Some(t) => attributes.push((attribute_name(&found.path, &mut taken), t, *found)),
                None => skipped.push(*found),
            }
        }
        let _ = writeln!(
            out,
            "# Rename the model and its attributes; the types follow the server's data types."
        );
        let _ = writeln!(out, "[models.Device.attributes]");
        for (name, t, _) in &attributes {
            let _ = writeln!(out, "{name} = {{ type = \"{t}\" }}");
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "[[assets]]");
        let _ = writeln!(
            out,
            "path = \"area/line/device\"   # where the device sits in your asset tree"
        );
        let _ = writeln!(out, "model = \"Device\"");
        let _ = writeln!(out, "source = {}", toml_string(&self.source_name));
        for (name, _, found) in &attributes {
            let now = found.value.as_ref().map(short).unwrap_or_default();
            let _ = writeln!(
                out,
                "bindings.{name} = {{ address = {} }}   # {}, now {now}",
                toml_string(&node_id_text(&found.node)),
                found.data_type.as_deref().unwrap_or("?")
            );
        }
        for found in skipped {
            let _ = writeln!(
                out,
                "# skipped {} ({}): a {} has no Backplane type{}",
                found.path,
                node_id_text(&found.node),
                found.data_type.as_deref().unwrap_or("value"),
                if found
                    .value
                    .as_ref()
                    .is_some_and(|v| matches!(v, Variant::ExtensionObject(_)))
                {
                    "; bind one of its fields with address = \"field=NAME;...\""
                } else {
                    ""
                }
            );
        }
        out
    }
}

impl fmt::Display for BrowseReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} ({}, {}): {} nodes below {}",
            self.url,
            self.security,
            self.user
                .as_deref()
                .map_or("anonymous".to_owned(), |u| format!("user {u}")),
            self.nodes.len(),
            self.start
        )?;
        let width = self
            .nodes
            .iter()
            .map(|n| n.depth * 2 + n.name.chars().count())
            .max()
            .unwrap_or(10)
            .clamp(10, 48);
        writeln!(
            f,
            "{:<width$}  {:<8}  {:<12}  {:<10}  {:<40}  value",
            "name", "class", "data type", "access", "node id"
        )?;
        for n in &self.nodes {
            let label = format!("{}{}", "  ".repeat(n.depth), n.name);
            let class = match n.class {
                NodeClass::Object => "Object",
                NodeClass::Variable => "Variable",
                NodeClass::Method => "Method",
                _ => "other",
            };
            let mut data_type = n.data_type.clone().unwrap_or_default();
            if n.is_array() {
                data_type.push_str("[]");
            }
            let value = n.value.as_ref().map(short).unwrap_or_default();
            writeln!(
                f,
                "{label:<width$}  {class:<8}  {data_type:<12}  {:<10}  {:<40}  {value}",
                n.access_text(),
                node_id_text(&n.node)
            )?;
        }
        if self.truncated > 0 {
            writeln!(
                f,
                "({} nodes have children below --depth {})",
                self.truncated,
                self.nodes.iter().map(|n| n.depth).max().unwrap_or(0)
            )?;
        }
        Ok(())
    }
}

/// Waits for the session's first connection.
async fn wait_connected(conn: &mut Connection, options: &ConnectOptions) -> Result<(), BrowseError> {
    let wait = async {
        while let Some(event) = conn.events.recv().await {
            match event {
                SessionEvent::Connected(_) => return Ok(()),
                SessionEvent::Failed(status) => {
                    let hint = session::fatal_hint(status, options).unwrap_or_else(|| status.to_string());
                    return Err(BrowseError::Connect(format!("{}: {hint}", options.url)));
                }
                SessionEvent::Lost(_) => {}
                SessionEvent::Ended(s) => {
                    return Err(BrowseError::Connect(format!(
                        "{}: the session ended{}",
                        options.url,
                        s.map(|s| format!(" ({s})")).unwrap_or_default()
                    )));
                }
            }
        }
        Err(BrowseError::Connect(format!(
            "{}: the session stopped",
            options.url
        )))
    };
    tokio::time::timeout(options.request_timeout * 3, wait)
        .await
        .map_err(|_| {
            BrowseError::Connect(format!(
                "{}: no session within {:?}",
                options.url,
                options.request_timeout * 3
            ))
        })?
}

/// Browses the children of `node` (following continuation points).
async fn children(
    session: &Session,
    node: &NodeId,
) -> Result<Vec<opcua::types::ReferenceDescription>, WalkError> {
    let description = BrowseDescription {
        node_id: node.clone(),
        browse_direction: BrowseDirection::Forward,
        reference_type_id: ReferenceTypeId::HierarchicalReferences.into(),
        include_subtypes: true,
        node_class_mask: (NodeClass::Object as u32) | (NodeClass::Variable as u32),
        result_mask: 0x3F,
    };
    let mut out = Vec::new();
    let mut results: Vec<BrowseResult> = session.browse(&[description], 1000, None).await?;
    while let Some(result) = results.pop() {
        if result.status_code.is_bad() {
            return Err(WalkError::Node {
                node: node_id_text(node),
                status: result.status_code,
            });
        }
        out.extend(result.references.unwrap_or_default());
        let point: ByteString = result.continuation_point;
        if point.is_null_or_empty() {
            break;
        }
        results = session.browse_next(false, &[point]).await?;
    }
    let property: NodeId = ReferenceTypeId::HasProperty.into();
    out.retain(|r| r.reference_type_id != property && r.node_id.server_index == 0);
    Ok(out)
}

async fn resolve_start(session: &Session, start: &Start) -> Result<(NodeId, String), WalkError> {
    match start {
        Start::Objects => Ok((ObjectId::ObjectsFolder.into(), "Objects".to_owned())),
        Start::Node(address) => {
            let namespaces = match &address.namespace {
                crate::address::Namespace::Uri(_) => Some(session::read_namespaces(session).await?),
                crate::address::Namespace::Index(_) => None,
            };
            let node = address
                .node_id(|uri| namespaces.as_ref().and_then(|n| n.get_index(uri)))
                .ok_or_else(|| WalkError::NoNamespace {
                    address: address.to_string(),
                })?;
            Ok((node, address.node_text()))
        }
        Start::Path(names) => {
            let mut node: NodeId = ObjectId::ObjectsFolder.into();
            for name in names {
                let found = children(session, &node)
                    .await?
                    .into_iter()
                    .find(|r| r.browse_name.name.as_ref() == name || r.display_name.text.as_ref() == name);
                let Some(found) = found else {
                    return Err(WalkError::NoNode {
                        name: name.clone(),
                        parent: node_id_text(&node),
                    });
                };
                node = found.node_id.node_id;
            }
            Ok((node, format!("/Objects/{}", names.join("/"))))
        }
    }
}

/// Reads DataType, ValueRank, UserAccessLevel and Value of the variables, in calls of at
/// most MaxNodesPerRead.
async fn describe_variables(session: &Session, nodes: &mut [Found]) {
    let limits = session::read_limits(session).await;
    let per_read = crate::plan::Limits::new(limits, Default::default())
        .nodes_per_read
        .max(4)
        / 4;
    let variables: Vec<usize> = (0..nodes.len()).filter(|&i| nodes[i].is_variable()).collect();
    for chunk in variables.chunks(per_read.max(1)) {
        let mut reads = Vec::with_capacity(chunk.len() * 4);
        for &i in chunk {
            for attribute in [
                AttributeId::DataType,
                AttributeId::ValueRank,
                AttributeId::UserAccessLevel,
                AttributeId::Value,
            ] {
                reads.push(ReadValueId {
                    node_id: nodes[i].node.clone(),
                    attribute_id: attribute as u32,
                    ..Default::default()
                });
            }
        }
        let Ok(values) = session.read(&reads, TimestampsToReturn::Neither, 0.0).await else {
            continue;
        };
        let good = |dv: Option<&DataValue>| {
            dv.filter(|d| !d.status.is_some_and(|s| s.is_bad()))
                .and_then(|d| d.value.clone())
        };
        for (k, &i) in chunk.iter().enumerate() {
            let at = |j: usize| values.get(k * 4 + j);
            if let Some(Variant::NodeId(t)) = good(at(0)) {
                nodes[i].data_type = Some(data_type_name(&t));
            }
            nodes[i].value_rank = good(at(1)).and_then(|v| v.try_cast_to::<i32>().ok());
            nodes[i].access = good(at(2)).and_then(|v| v.try_cast_to::<u8>().ok());
            nodes[i].value = good(at(3));
        }
    }
}

/// Connects, browses and closes the session.
pub async fn browse(options: BrowseOptions) -> Result<BrowseReport, BrowseError> {
    let mut conn = options.connect.connect().await?;
    let result = async {
        wait_connected(&mut conn, &options.connect).await?;
        let session = conn.session.clone();
        let failed = |source: WalkError| BrowseError::Browse {
            url: options.connect.url.clone(),
            source,
        };
        let (root, start) = resolve_start(&session, &options.start).await.map_err(failed)?;
        let server: NodeId = ObjectId::Server.into();
        let mut nodes = Vec::new();
        let mut truncated = 0;
        // Depth-first, so the tree prints in order.
        let mut stack: Vec<(NodeId, usize, String)> = vec![(root.clone(), 0, String::new())];
        let mut seen: BTreeSet<String> = BTreeSet::new();
        while let Some((node, depth, path)) = stack.pop() {
            if !seen.insert(node_id_text(&node)) || (node == server && node != root) {
                continue;
            }
            if depth >= options.depth {
                truncated += 1;
                continue;
            }
            let kids = children(&session, &node).await.map_err(failed)?;
            let mut entries = Vec::new();
            for r in kids {
                let name = r.browse_name.name.as_ref().to_owned();
                let child_path = if path.is_empty() {
                    name.clone()
                } else {
                    format!("{path}/{name}")
                };
                entries.push((
                    Found {
                        depth,
                        path: child_path.clone(),
                        name,
                        node: r.node_id.node_id.clone(),
                        class: r.node_class,
                        data_type: None,
                        value_rank: None,
                        access: None,
                        value: None,
                    },
                    child_path,
                ));
            }
            // Push in reverse so the first child is browsed next; record in order.
            let mut insert_at = nodes.len();
            if let Some(parent) = nodes.iter().position(|n: &Found| n.node == node) {
                insert_at = parent + 1;
                // After the parent's already-listed descendants (none yet: depth-first).
            }
            for (offset, (found, _)) in entries.iter().enumerate() {
                nodes.insert(insert_at + offset, found.clone());
            }
            for (found, child_path) in entries.into_iter().rev() {
                stack.push((found.node, depth + 1, child_path));
            }
        }
        describe_variables(&session, &mut nodes).await;
        let policy = Policy::from_uri(conn.endpoint.security_policy_uri.as_ref()).unwrap_or(Policy::None);
        let mode = Mode::from_opcua(conn.endpoint.security_mode).unwrap_or(Mode::None);
        Ok(BrowseReport {
            url: options.connect.url.clone(),
            security: conn.security(),
            policy,
            mode,
            user: match &options.connect.identity {
                Identity::UserName { user, .. } => Some(user.clone()),
                _ => None,
            },
            start,
            nodes,
            select: options.select.clone(),
            source_name: options.source_name.clone(),
            password_env: options.password_env.clone(),
            truncated,
        })
    }
    .await;
    conn.close().await;
    result
}

/// The options of `backplane browse opc.tcp://...`, as the binary shows and parses them.
pub const OPTIONS: &[OptionSpec] = &[
    OptionSpec::value(
        "node",
        "NODE",
        "Where to start: a node id (ns=2;s=Line2, i=85) or a browse path from the Objects folder (/Objects/Filler2 or Filler2). Default: the Objects folder",
    ),
    OptionSpec::value("depth", "N", "Levels to show below the start node").default("3"),
    OptionSpec::value(
        "security-policy",
        "POLICY",
        "Basic256Sha256, Aes128_Sha256_RsaOaep, Aes256_Sha256_RsaPss, or None (no security, only when asked for). Default: the strongest the server offers",
    ),
    OptionSpec::value(
        "security-mode",
        "MODE",
        "none, sign or sign-and-encrypt. Default: sign-and-encrypt if offered, else sign",
    ),
    OptionSpec::value("user", "NAME", "Log in as this user; the password is read from --password-env").local(),
    OptionSpec::value("password-env", "VAR", "The environment variable holding the password")
        .default("OPCUA_PASSWORD")
        .local(),
    OptionSpec::value(
        "select",
        "PATTERNS",
        "Variables to emit TOML for, by browse path below the start node, `*` matching any part of a name and `**` any levels, e.g. 'Filler2/*' or '**/Speed'. Default: every variable shown",
    )
    .repeated(),
    OptionSpec::value(
        "pki-dir",
        "DIR",
        "The gateway's OPC UA PKI directory (its certificate; trusted/ and rejected/ server certificates): DATA_DIR/opcua/pki of the gateway that will read the server",
    )
    .default("data/opcua/pki")
    .local(),
    OptionSpec::value("gateway", "NAME", "The gateway's name ([gateway] name): its certificate's application URI")
        .default("backplane")
        .local(),
    OptionSpec::value("name", "SOURCE", "The source name in the emitted TOML").default("device"),
    OptionSpec::value("timeout", "DURATION", "How long to wait for each answer").default("10s"),
];

/// What `backplane browse opc.tcp://...` was asked for (see [`OPTIONS`]).
#[derive(Debug, Clone)]
pub struct BrowseArgs {
    /// The server: opc.tcp://HOST:PORT
    pub url: String,
    pub node: Option<String>,
    pub depth: usize,
    pub security_policy: Option<String>,
    pub security_mode: Option<String>,
    pub user: Option<String>,
    pub password_env: String,
    pub select: Vec<String>,
    pub pki_dir: PathBuf,
    pub gateway: String,
    pub name: String,
    pub timeout: Duration,
}

impl BrowseArgs {
    /// Reads the command-line options (names as in [`OPTIONS`]); defaults where absent.
    pub fn from_options(url: &str, o: &Options) -> Result<BrowseArgs, BrowseError> {
        let timeout = o
            .duration_or("timeout", Duration::from_secs(10))
            .map_err(BrowseError::Options)?;
        let text = |name: &str, default: &str| o.get(name).unwrap_or(default).to_owned();
        Ok(BrowseArgs {
            url: url.to_owned(),
            node: o.get("node").map(str::to_owned),
            depth: o.parse_or("depth", 3).map_err(BrowseError::Options)?,
            security_policy: o.get("security-policy").map(str::to_owned),
            security_mode: o.get("security-mode").map(str::to_owned),
            user: o.get("user").map(str::to_owned),
            password_env: text("password-env", "OPCUA_PASSWORD"),
            select: o.list("select"),
            pki_dir: PathBuf::from(text("pki-dir", "data/opcua/pki")),
            gateway: text("gateway", "backplane"),
            name: text("name", "device"),
            timeout,
        })
    }

    /// Checks the arguments and turns them into [`BrowseOptions`].
    pub fn options(&self) -> Result<BrowseOptions, BrowseError> {
        check_url(&self.url).map_err(|(m, h)| BrowseError::Options(format!("{m} ({h})")))?;
        let policy = match self.security_policy.as_deref() {
            None | Some("auto") => None,
            Some(p) => Some(Policy::parse(p).ok_or_else(|| {
                BrowseError::Options(format!(
                    "--security-policy {p}: one of Basic256Sha256, Aes128_Sha256_RsaOaep, Aes256_Sha256_RsaPss, None"
                ))
            })?),
        };
        let mode = match self.security_mode.as_deref() {
            None | Some("auto") => None,
            Some(m) => Some(Mode::parse(m).ok_or_else(|| {
                BrowseError::Options(format!(
                    "--security-mode {m}: one of none, sign, sign-and-encrypt"
                ))
            })?),
        };
        let mode = match (policy, mode) {
            (Some(Policy::None), None | Some(Mode::None)) => Some(Mode::None),
            (Some(Policy::None), Some(_)) => {
                return Err(BrowseError::Options(
                    "--security-policy None cannot sign or encrypt: use --security-mode none".into(),
                ));
            }
            (p, Some(Mode::None)) if p != Some(Policy::None) => {
                return Err(BrowseError::Options(
                    "--security-mode none needs --security-policy None, given explicitly".into(),
                ));
            }
            (_, m) => m,
        };
        let identity = match &self.user {
            None => Identity::Anonymous,
            Some(user) => Identity::UserName {
                user: user.clone(),
                password: backplane_config::Secret::parse(
                    &format!("env:{}", self.password_env),
                    std::path::Path::new("."),
                )
                .map_err(|_| {
                    BrowseError::Options(format!(
                        "--password-env {}: not a variable name",
                        self.password_env
                    ))
                })?,
            },
        };
        let start = match self.node.as_deref() {
            None => Start::Objects,
            Some(text) if text.contains('=') => Start::Node(Address::parse(text).map_err(|e| {
                BrowseError::Options(format!(
                    "--node {text}: {}{}",
                    e.message,
                    e.hint.map(|h| format!(" ({h})")).unwrap_or_default()
                ))
            })?),
            Some(text) => {
                let names: Vec<String> = text
                    .trim_start_matches('/')
                    .trim_start_matches("Objects")
                    .split('/')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect();
                if names.is_empty() {
                    Start::Objects
                } else {
                    Start::Path(names)
                }
            }
        };
        let base_dir = self
            .pki_dir
            .parent()
            .and_then(|p| p.parent())
            .map_or_else(|| PathBuf::from("."), PathBuf::from);
        Ok(BrowseOptions {
            connect: ConnectOptions {
                url: self.url.trim_end_matches('/').to_owned(),
                security: Security { policy, mode },
                identity,
                pki_dir: self.pki_dir.clone(),
                application_uri: crate::pki::application_uri(&self.gateway),
                application_name: format!("Backplane {}", self.gateway),
                session_name: format!("Backplane {} browse", self.gateway),
                verify_server_certificate: true,
                base_dir,
                request_timeout: self.timeout,
                session_timeout: Duration::from_secs(60),
                keep_alive: Duration::from_secs(10),
                reconnect_initial: Duration::from_millis(500),
                reconnect_max: Duration::from_secs(5),
            },
            start,
            depth: self.depth,
            select: self.select.clone(),
            source_name: self.name.clone(),
            password_env: self.user.as_ref().map(|_| self.password_env.clone()),
        })
    }

    /// Browses and returns what to print (the tree, then the TOML), the source's TOML and
    /// every typed variable as a signal.
    pub async fn run(&self) -> Result<hooks::BrowseReport, BrowseError> {
        let report = browse(self.options()?).await?;
        Ok(hooks::BrowseReport {
            text: format!("{report}\n{}", report.toml()),
            source: report.source_toml(),
            signals: report.signals(),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// `args` as on the command line after `backplane browse`: the URL, then
    /// `--name value` pairs.
    fn options(args: &[&str]) -> Result<BrowseOptions, BrowseError> {
        let mut o = Options::default();
        for pair in args[1..].chunks(2) {
            o.push(pair[0].trim_start_matches("--"), pair[1]);
        }
        BrowseArgs::from_options(args[0], &o)?.options()
    }

    #[test]
    fn arguments_parse_like_the_documented_command_line() {
        let o = options(&[
            "opc.tcp://127.0.0.1:4840",
            "--node",
            "ns=2;s=Filler2",
            "--depth",
            "2",
            "--security-policy",
            "Basic256Sha256",
            "--security-mode",
            "sign-and-encrypt",
            "--user",
            "operator",
            "--select",
            "Filler2/*,**/Flow",
        ])
        .unwrap();
        assert_eq!(o.depth, 2);
        assert_eq!(
            o.connect.security,
            Security {
                policy: Some(Policy::Basic256Sha256),
                mode: Some(Mode::SignAndEncrypt)
            }
        );
        assert!(matches!(&o.start, Start::Node(a) if a.node_text() == "ns=2;s=Filler2"));
        assert!(matches!(&o.connect.identity, Identity::UserName { user, .. } if user == "operator"));
        assert_eq!(o.select, ["Filler2/*", "**/Flow"]);
        let o = options(&["opc.tcp://h:4840", "--node", "/Objects/Filler2/Motor"]).unwrap();
        assert_eq!(o.start, Start::Path(vec!["Filler2".into(), "Motor".into()]));
        let none = options(&["opc.tcp://h:4840", "--security-policy", "None"]).unwrap();
        assert_eq!(none.connect.security.mode, Some(Mode::None));
        let e = options(&["opc.tcp://h:4840", "--security-mode", "none"]).unwrap_err();
        assert!(e.to_string().contains("--security-policy None"), "{e}");
        assert!(options(&["http://h"]).is_err());
    }

    #[test]
    fn wildcards_match_browse_paths() {
        assert!(matches("Filler2/*", "Filler2/Speed"));
        assert!(!matches("Filler2/*", "Filler2/Motor/Current"));
        assert!(matches("**/Speed", "Line/Filler2/Speed"));
        assert!(matches("**/Speed", "Speed"));
        assert!(matches("Filler*/Sp*d", "Filler2/Speed"));
        assert!(matches("/Filler2/**", "Filler2/Motor/Current"));
        assert!(!matches("HTST/*", "Filler2/Speed"));
    }

    #[test]
    fn attribute_names_are_valid_and_unique() {
        let mut taken = BTreeSet::new();
        assert_eq!(attribute_name("Filler2/Speed", &mut taken), "filler2_speed");
        assert_eq!(attribute_name("Filler2/Speed", &mut taken), "filler2_speed_2");
        assert_eq!(attribute_name("HTST/GoodCount", &mut taken), "htst_good_count");
        assert_eq!(
            attribute_name("2nd Line/Temp (°C)", &mut taken),
            "v_2nd_line_temp_c"
        );
    }
}
