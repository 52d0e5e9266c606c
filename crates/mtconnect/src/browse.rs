//! `backplane browse http://AGENT:5000`: reads the agent's device model (`probe`) and
//! its current values, and writes a source, a model and an asset with one binding per
//! data item (its component path, type, units and value as a comment), plus the derived
//! `machine_state`. [`report`] is pure, so the TOML is tested from recorded documents.

use std::collections::BTreeSet;
use std::collections::HashMap;
use std::fmt::Write as _;

use backplane_connector::hooks::{BrowseReport, Decoding, OptionSpec, Options, Signal};

use crate::client::Client;
use crate::config::{MtConnectSettings, check_url};
use crate::document::{self, DataItem, Devices, Document, Streams};
use crate::state::MACHINE_STATE;

pub const OPTIONS: &[OptionSpec] = &[
    OptionSpec::value("device", "NAME", "Read one device of the agent"),
    OptionSpec::value("timeout", "DURATION", "How long to wait for each answer").default("5s"),
];

/// Backplane's unit for an MTConnect `units` value, where it has one.
pub fn unit(units: &str) -> Option<&'static str> {
    Some(match units {
        "MILLIMETER" => "mm",
        "METER" => "m",
        "METER/SECOND" => "m/s",
        "REVOLUTION/MINUTE" => "rpm",
        "CELSIUS" => "degC",
        "FAHRENHEIT" => "degF",
        "PERCENT" => "%",
        "SECOND" => "s",
        "MINUTE" => "min",
        "HOUR" => "h",
        "PASCAL" => "Pa",
        "BAR" => "bar",
        "KILOGRAM" => "kg",
        "GRAM" => "g",
        "LITER" => "L",
        "LITER/SECOND" => "L/s",
        "VOLT" => "V",
        "AMPERE" => "A",
        "WATT" => "W",
        "KILOWATT" => "kW",
        "HERTZ" => "Hz",
        _ => return None,
    })
}

/// The attribute type a data item reads as.
fn attribute_type(item: &DataItem) -> &'static str {
    match (item.category.as_str(), item.kind.as_str()) {
        ("SAMPLE", _) => "float",
        ("EVENT", "PART_COUNT" | "LINE" | "LINE_NUMBER") => "uint",
        _ => "string",
    }
}

/// A lower-case attribute name from a data item, unique among `taken`.
fn attribute_name(item: &DataItem, taken: &mut BTreeSet<String>) -> String {
    let base = item.name.as_deref().unwrap_or(&item.id);
    let mut name: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        name.insert_str(0, "item_");
    }
    let mut candidate = name.clone();
    let mut n = 2;
    while !taken.insert(candidate.clone()) {
        candidate = format!("{name}_{n}");
        n += 1;
    }
    candidate
}

fn toml_string(s: &str) -> String {
    format!("{s:?}")
}

/// The report of a probe and a current snapshot of agent `url`.
pub fn report(url: &str, device: Option<&str>, model: &Devices, current: Option<&Streams>) -> BrowseReport {
    let values: HashMap<&str, String> = current
        .map(|c| {
            c.observations
                .iter()
                .map(|o| {
                    let v = match (&o.level, &o.value) {
                        (Some(l), Some(_)) => l.name().to_owned(),
                        (_, Some(v)) => v.clone(),
                        (_, None) => "UNAVAILABLE".to_owned(),
                    };
                    (o.data_item_id.as_str(), v)
                })
                .collect()
        })
        .unwrap_or_default();
    let mut source = String::new();
    let _ = writeln!(source, "[[sources]]");
    let _ = writeln!(source, "name = \"cnc-agent\"   # choose a name");
    let _ = writeln!(source, "kind = \"mtconnect\"");
    let _ = writeln!(source, "url = {}", toml_string(url));
    if let Some(d) = device {
        let _ = writeln!(source, "device = {}", toml_string(d));
    }
    let _ = writeln!(source, "interval = \"500ms\"");

    let mut text = String::new();
    let items: Vec<&DataItem> = model.devices.iter().flat_map(|d| d.data_items.iter()).collect();
    let _ = writeln!(
        text,
        "# From `backplane browse` of {url}: {} device(s), {} data items (MTConnect {}).",
        model.devices.len(),
        items.len(),
        model.header.version
    );
    text.push_str(&source);
    let _ = writeln!(text);
    let _ = writeln!(
        text,
        "# Rename the model and its attributes; units are converted to the ones you set here."
    );
    let _ = writeln!(text, "[models.Machine.attributes]");
    let mut taken = BTreeSet::new();
    let named: Vec<(String, &DataItem)> = items
        .iter()
        .map(|i| (attribute_name(i, &mut taken), *i))
        .collect();
    let state_name = if taken.contains("machine_state") {
        "derived_state"
    } else {
        MACHINE_STATE
    };
    let _ = writeln!(
        text,
        "{state_name} = {{ type = \"string\", enum = [\"running\", \"idle\", \"starved\", \"setup\", \"down\"] }}"
    );
    for (name, item) in &named {
        let t = attribute_type(item);
        match item.units.as_deref().and_then(unit) {
            Some(u) => {
                let _ = writeln!(text, "{name} = {{ type = \"{t}\", unit = \"{u}\" }}");
            }
            None => {
                let _ = writeln!(text, "{name} = {{ type = \"{t}\" }}");
            }
        }
    }
    let _ = writeln!(text);
    let _ = writeln!(text, "[[assets]]");
    let _ = writeln!(
        text,
        "path = \"area/cell/machine\"   # where the machine sits in your asset tree"
    );
    let _ = writeln!(text, "model = \"Machine\"");
    let _ = writeln!(text, "source = \"cnc-agent\"");
    let _ = writeln!(
        text,
        "bindings.{state_name} = {{ address = \"{MACHINE_STATE}\" }}   # derived: execution, mode, faults"
    );
    let mut signals = Vec::new();
    for (name, item) in &named {
        let units = item.units.as_deref();
        let binding = match units.and_then(unit) {
            Some(u) => format!(
                "bindings.{name} = {{ address = {}, unit = \"{u}\" }}",
                toml_string(&item.id)
            ),
            None => format!("bindings.{name} = {{ address = {} }}", toml_string(&item.id)),
        };
        let value = values.get(item.id.as_str()).cloned().unwrap_or_default();
        let mut what = format!("{} {}", item.category, item.kind);
        if let Some(s) = &item.sub_type {
            let _ = write!(what, ":{s}");
        }
        if let Some(u) = units {
            let _ = write!(what, " [{u}]");
        }
        let _ = writeln!(text, "{binding}   # {}: {what} = {value}", item.component);
        signals.push(Signal {
            address: item.id.clone(),
            name: name.clone(),
            description: format!("{}: {what}", item.component),
            decodings: vec![Decoding {
                label: item.kind.clone(),
                attribute_type: Some(attribute_type(item).to_owned()),
                value,
                binding,
            }],
        });
    }
    BrowseReport {
        text,
        source,
        signals,
    }
}

/// Browses agent `url` (`http://HOST:PORT` or `mtconnect://HOST:PORT`).
pub async fn run(url: &str, options: &Options) -> Result<BrowseReport, String> {
    let url = match url.strip_prefix("mtconnect://") {
        Some(rest) => format!("http://{rest}"),
        None => url.to_owned(),
    };
    let url = check_url(&url).map_err(|(m, h)| format!("{m} ({h})"))?;
    let mut settings = MtConnectSettings::defaults(&url);
    settings.device = options.get("device").map(str::to_owned);
    settings.timeout = options.duration_or("timeout", settings.timeout)?;
    let client = Client::new(&settings)?;
    let fetch = |request: &'static str| {
        let client = client.clone();
        let endpoint = settings.endpoint(request);
        async move {
            let answer = client
                .get(&endpoint, &[])
                .await
                .map_err(|e| format!("{endpoint}: {e}"))?;
            document::parse(&answer.body).map_err(|e| format!("{endpoint}: {e}"))
        }
    };
    let model = match fetch("probe").await? {
        Document::Devices(d) => d,
        Document::Error(e) => return Err(format!("the agent answered {e}")),
        Document::Streams(_) => return Err("the probe answered a streams document".into()),
    };
    let current = match fetch("current").await {
        Ok(Document::Streams(s)) => Some(s),
        _ => None,
    };
    Ok(report(&url, settings.device.as_deref(), &model, current.as_ref()))
}
