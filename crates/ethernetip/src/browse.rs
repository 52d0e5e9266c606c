//! Discovery: list the controller's tags (Get Instance Attribute List on the Symbol object
//! 0x6B, page by page) with their types, read the atomic ones once, and emit TOML for a
//! source and its bindings. Controllers without a tag list (cpppo, many non-Logix
//! devices) answer "service not supported"; `--tag` then names the tags to read, and
//! their types come from the read.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use backplane_connector::hooks::{BrowseReport, Decoding, OptionSpec, Options, Signal};

use crate::address::TagPath;
use crate::cip::{self, Symbol};
use crate::client::{CallError, Connection};
use crate::config::{self, Endpoint, EnipSettings, Messaging};
use crate::source::Poller;
use crate::types::CipType;

/// Options of `backplane browse enip://HOST`.
pub const OPTIONS: &[OptionSpec] = &[
    OptionSpec::value(
        "route",
        "PORT/LINK",
        "Route to the controller, e.g. 1/0 (backplane, slot 0); empty for none",
    )
    .default("1/0"),
    OptionSpec::value(
        "tag",
        "PATHS",
        "Tags to read (besides the tag list), e.g. Palletizer.State,Count[0]{10}",
    )
    .repeated(),
    OptionSpec::value("timeout", "DURATION", "How long to wait for each answer").default("2s"),
    OptionSpec::value("max-tags", "N", "Stop listing after this many tags").default("5000"),
];

/// One tag found.
#[derive(Clone, Debug, PartialEq)]
struct Found {
    path: String,
    ty: String,
    attribute_type: Option<&'static str>,
    value: String,
}

fn symbol_type(s: &Symbol) -> String {
    let base = match s.atomic() {
        Some(t) => t.to_string(),
        None if s.is_struct() => format!("structure (template 0x{:03X})", s.type_word & 0x0FFF),
        None => format!("type 0x{:03X}", s.type_word & 0x0FFF),
    };
    let dims: Vec<String> = s.dims.iter().take(s.dimensions()).map(u32::to_string).collect();
    if dims.is_empty() {
        base
    } else {
        format!("{base}[{}]", dims.join(","))
    }
}

/// Lists and reads; the report `backplane browse` prints.
pub async fn browse(url: &str, options: &Options) -> Result<BrowseReport, String> {
    let endpoint = Endpoint::parse(url).map_err(|(m, h)| format!("{m} ({h})"))?;
    let route_text = options.get("route").unwrap_or("1/0").to_owned();
    let route = config::parse_route(&route_text).map_err(|e| format!("--route: {e}"))?;
    let timeout = options.duration_or("timeout", Duration::from_secs(2))?;
    let max_tags: usize = options.parse_or("max-tags", 5000)?;
    let settings = EnipSettings {
        endpoint: endpoint.clone(),
        route,
        route_text: route_text.clone(),
        messaging: Messaging::Auto,
        connection_size: config::SMALL_CONNECTION_SIZE,
        period: Duration::from_secs(1),
        timeout,
        retries: 1,
        max_services: 100,
        writes: false,
    };
    let mut conn = Connection::open(&settings)
        .await
        .map_err(|e| format!("cannot open a session with {endpoint}: {e}"))?;
    let mut text = String::new();
    let (symbols, listed) = list(&mut conn, max_tags).await?;
    let _ = writeln!(text, "{endpoint}: {listed}");
    // Read every atomic (non-structure) symbol, plus the tags asked for.
    let mut paths: Vec<String> = symbols
        .iter()
        .filter(|s| !s.is_system() && s.atomic().is_some())
        .map(|s| {
            if s.dimensions() > 0 {
                format!("{}[0]", s.name)
            } else {
                s.name.clone()
            }
        })
        .collect();
    paths.extend(options.list("tag"));
    for s in symbols.iter().filter(|s| !s.is_system()) {
        let _ = writeln!(text, "  {:<40} {}", s.name, symbol_type(s));
    }
    // Some controllers (cpppo) drop the session after refusing the tag list: read on a
    // fresh one.
    conn.close().await;
    let mut conn = Connection::open(&settings)
        .await
        .map_err(|e| format!("cannot open a session with {endpoint}: {e}"))?;
    let found = read_all(&mut conn, &settings, &paths).await?;
    conn.close().await;
    let mut signals = Vec::new();
    if !found.is_empty() {
        let _ = writeln!(text, "\nValues read:");
    }
    for f in &found {
        let _ = writeln!(text, "  {:<40} {:<14} {}", f.path, f.ty, f.value);
        let name = TagPath::parse(&f.path)
            .map(|p| p.attribute_name())
            .unwrap_or_default();
        if f.attribute_type.is_some() {
            signals.push(Signal {
                address: f.path.clone(),
                name: name.clone(),
                description: format!("{} {}", f.path, f.ty),
                decodings: vec![Decoding {
                    label: f.ty.clone(),
                    attribute_type: f.attribute_type.map(str::to_owned),
                    value: f.value.clone(),
                    binding: format!("bindings.{name} = {{ address = \"{}\" }}", f.path),
                }],
            });
        }
    }
    let source = format!(
        "[[sources]]\nname = \"controller\"\nkind = \"ethernetip\"\nurl = \"{endpoint}\"\nroute = \"{route_text}\"\nperiod = \"1s\"\n"
    );
    if !signals.is_empty() {
        let _ = writeln!(text, "\nTOML (a model, and bindings for an asset of it):\n");
        let _ = writeln!(text, "{source}");
        let _ = writeln!(text, "[models.Controller.attributes]");
        for s in &signals {
            if let Some(d) = s.decodings.first() {
                let _ = writeln!(
                    text,
                    "{} = {{ type = \"{}\" }}",
                    s.name,
                    d.attribute_type.as_deref().unwrap_or("float")
                );
            }
        }
        let _ = writeln!(text);
        for s in &signals {
            if let Some(d) = s.decodings.first() {
                let _ = writeln!(text, "{}", d.binding);
            }
        }
    }
    Ok(BrowseReport {
        text,
        source,
        signals,
    })
}

/// The tag list, and a line saying how it went.
async fn list(conn: &mut Connection, max: usize) -> Result<(Vec<Symbol>, String), String> {
    let mut symbols: Vec<Symbol> = Vec::new();
    let mut next = 0u32;
    loop {
        let bytes = match conn.call_with_retries(&cip::symbol_list(next), 1).await {
            Ok(b) => b,
            Err(e @ CallError::Refused(_)) if symbols.is_empty() => {
                return Ok((
                    symbols,
                    format!("the controller lists no tags ({e}); name tags to read with --tag"),
                ));
            }
            Err(e) => return Err(format!("reading the tag list: {e}")),
        };
        let reply = cip::decode_reply(&bytes).map_err(|e| format!("tag list reply: {e}"))?;
        if !reply.ok() && reply.status != cip::PARTIAL_TRANSFER {
            if symbols.is_empty() {
                return Ok((
                    symbols,
                    format!(
                        "the controller lists no tags ({}); name tags to read with --tag",
                        reply.describe()
                    ),
                ));
            }
            break;
        }
        let page = cip::decode_symbols(reply.data).map_err(|e| format!("tag list reply: {e}"))?;
        let Some(last) = page.last().map(|s| s.instance) else {
            break;
        };
        symbols.extend(page);
        if reply.status != cip::PARTIAL_TRANSFER || symbols.len() >= max || last < next {
            break;
        }
        next = last.saturating_add(1);
    }
    symbols.truncate(max);
    let system = symbols.iter().filter(|s| s.is_system()).count();
    let n = symbols.len() - system;
    Ok((
        symbols,
        format!("{n} tags in the controller's tag list (and {system} system tags, not shown)"),
    ))
}

async fn read_all(
    conn: &mut Connection,
    settings: &EnipSettings,
    paths: &[String],
) -> Result<Vec<Found>, String> {
    let mut valid = Vec::new();
    for p in paths {
        match TagPath::parse(p) {
            Ok(_) => valid.push(Arc::<str>::from(p.as_str())),
            Err(e) => return Err(format!("--tag {p}: {}", e.message)),
        }
    }
    if valid.is_empty() {
        return Ok(Vec::new());
    }
    let mut poller = Poller::new("browse", Arc::new(settings.clone()), &valid)?;
    let readings = poller
        .poll(conn)
        .await
        .map_err(|e| format!("reading tags: {e}"))?;
    let mut found = Vec::new();
    for r in readings {
        let Some(path) = valid.get(r.address as usize) else {
            continue;
        };
        let ty = poller.type_of(r.address as usize);
        found.push(Found {
            path: path.to_string(),
            ty: ty.map_or_else(|| "?".to_owned(), |t| t.to_string()),
            attribute_type: ty.and_then(CipType::attribute_type),
            value: match (&r.value, poller.error_of(r.address as usize)) {
                (Some(v), _) => v.to_string(),
                (None, Some(e)) => format!("({e})"),
                (None, None) => format!("({:?})", r.quality),
            },
        });
    }
    Ok(found)
}
