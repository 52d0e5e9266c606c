//! `backplane browse nats://HOST:PORT --stream NAME`: reads the latest definitions every
//! gateway published on the stream and prints the hub's asset tree as TOML, each attribute
//! bound to its tag path (what a `nats` source mirrors). [`render`] is pure; [`browse`]
//! fetches the messages.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use backplane_connector::{Definitions, OptionSpec, Options};
use futures::StreamExt;

use crate::subjects::validate_prefix;

pub const OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        name: "stream",
        value: Some("NAME"),
        help: "the JetStream stream the gateways publish to (required)",
        default: None,
        repeated: false,
        local: false,
    },
    OptionSpec {
        name: "prefix",
        value: Some("PREFIX"),
        help: "the gateways' subject prefix",
        default: Some("uns"),
        repeated: false,
        local: false,
    },
    OptionSpec {
        name: "source",
        value: Some("NAME"),
        help: "the hub's nats source the bindings name",
        default: Some("plants"),
        repeated: false,
        local: false,
    },
    OptionSpec {
        name: "creds",
        value: Some("FILE"),
        help: "a NATS credentials file",
        default: None,
        repeated: false,
        local: true,
    },
    OptionSpec {
        name: "timeout",
        value: Some("DURATION"),
        help: "how long to wait for the server",
        default: Some("5s"),
        repeated: false,
        local: false,
    },
];

/// Most definitions messages read (one per gateway and site): bounds what a stream full of
/// gateways can make the command hold.
const MAX_SITES: usize = 1000;

pub async fn browse(url: String, options: Options) -> Result<String, String> {
    let stream_name = options
        .get("stream")
        .ok_or("--stream NAME is required (the stream the gateways publish to)")?
        .to_owned();
    let prefix = options.get("prefix").unwrap_or("uns").to_owned();
    validate_prefix(&prefix).map_err(|e| format!("--prefix {prefix:?}: {e}"))?;
    let source = options.get("source").unwrap_or("plants").to_owned();
    let timeout = options.duration_or("timeout", Duration::from_secs(5))?;

    let mut connect = async_nats::ConnectOptions::new()
        .name("backplane-browse")
        .connection_timeout(timeout)
        .max_reconnects(Some(1));
    if let Some(creds) = options.get("creds") {
        connect = connect
            .credentials_file(creds)
            .await
            .map_err(|e| format!("--creds {creds}: {e}"))?;
    }
    let client = connect
        .connect(url.as_str())
        .await
        .map_err(|e| format!("cannot connect to {url}: {e}"))?;
    let js = jetstream::new(client);
    let stream = tokio::time::timeout(timeout, js.get_stream(&stream_name))
        .await
        .map_err(|_| format!("{url}: no answer within {timeout:?}"))?
        .map_err(|e| format!("stream `{stream_name}`: {e}"))?;
    // An ephemeral consumer of the last definitions message of every site.
    let consumer = stream
        .create_consumer(consumer::pull::Config {
            filter_subject: format!("{prefix}.*.*._definitions"),
            deliver_policy: consumer::DeliverPolicy::LastPerSubject,
            ack_policy: consumer::AckPolicy::None,
            inactive_threshold: Duration::from_secs(30),
            ..Default::default()
        })
        .await
        .map_err(|e| format!("stream `{stream_name}`: cannot read definitions: {e}"))?;
    let mut found = Vec::new();
    let mut unreadable = 0usize;
    loop {
        let mut batch = consumer
            .fetch()
            .max_messages(100)
            .expires(timeout)
            .messages()
            .await
            .map_err(|e| format!("stream `{stream_name}`: {e}"))?;
        let mut got = 0;
        while let Some(message) = batch.next().await {
            let message = message.map_err(|e| format!("stream `{stream_name}`: {e}"))?;
            got += 1;
            match serde_json::from_slice::<Definitions>(&message.payload) {
                Ok(d) if d.kind == "definitions" => found.push(d),
                _ => unreadable += 1,
            }
        }
        if got == 0 || found.len() + unreadable >= MAX_SITES {
            break;
        }
    }
    if found.is_empty() {
        return Err(format!(
            "no definitions on `{prefix}.*.*._definitions` in stream `{stream_name}`: is a gateway's nats sink publishing to it with prefix `{prefix}`?"
        ));
    }
    let mut text = render(&found, &source);
    if unreadable > 0 {
        let _ = writeln!(
            text,
            "# {unreadable} definitions message(s) could not be read and were left out"
        );
    }
    Ok(text)
}

/// The hub's `[[assets]]` for the sites' definitions: sites in name order, assets in each
/// site's own order, paths below the enterprise (a hub's assets start with their site), the
/// site levels left out (the hub's `[namespace] sites` declares them).
pub fn render(definitions: &[Definitions], source: &str) -> String {
    let mut by_site: BTreeMap<(&str, &str), &Definitions> = BTreeMap::new();
    for d in definitions {
        by_site.insert((&d.enterprise, &d.site), d);
    }
    let mut text = String::new();
    let enterprises: Vec<&str> = {
        let mut e: Vec<&str> = by_site.keys().map(|(e, _)| *e).collect();
        e.dedup();
        e
    };
    let _ = writeln!(
        text,
        "# The sites' asset trees as published in their definitions, each attribute bound to its tag path.\n# [namespace] enterprise = {:?}, sites = [{}]",
        enterprises.join(", "),
        by_site
            .keys()
            .map(|(_, s)| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for ((enterprise, site), defs) in &by_site {
        let _ = writeln!(
            text,
            "\n# site {site}: gateway {}, configuration {}",
            defs.gateway,
            short(&defs.config_version)
        );
        let root = format!("{enterprise}/");
        for asset in &defs.assets {
            let Some(path) = asset.path.strip_prefix(&root) else {
                continue;
            };
            if matches!(asset.level.as_str(), "enterprise" | "site") {
                continue;
            }
            let _ = write!(text, "\n[[assets]]\npath = {}\n", quote(path));
            match asset.model.as_deref().and_then(|m| defs.model(m)) {
                Some(model) => {
                    let _ = writeln!(text, "model = {}\nsource = {}", quote(&model.name), quote(source));
                    for attribute in &model.attributes {
                        let _ = writeln!(
                            text,
                            "bindings.{} = {{ address = {} }}",
                            attribute.name,
                            quote(&format!("{}/{}", asset.path, attribute.name))
                        );
                    }
                }
                None => {
                    let _ = writeln!(text, "level = {}", quote(&asset.level));
                }
            }
        }
    }
    text
}

fn short(version: &str) -> &str {
    version.get(..12).unwrap_or(version)
}

/// A TOML basic string.
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use backplane_connector::definitions::{AssetDef, AttributeDef, ModelDef};

    use super::*;

    fn site(site: &str, line: &str) -> Definitions {
        Definitions {
            kind: "definitions".into(),
            gateway: format!("{site}-edge"),
            enterprise: "acme".into(),
            site: site.into(),
            config_version: "0123456789abcdef".into(),
            models: vec![ModelDef {
                name: "Filler".into(),
                attributes: vec![AttributeDef {
                    name: "speed".into(),
                    data_type: "float".into(),
                    unit: Some("bottle/min".into()),
                    range: None,
                }],
            }],
            assets: [
                ("acme", "enterprise", None),
                (&*format!("acme/{site}"), "site", None),
                (&*format!("acme/{site}/{line}"), "line", None),
                (
                    &*format!("acme/{site}/{line}/filler"),
                    "equipment",
                    Some("Filler"),
                ),
            ]
            .into_iter()
            .map(|(path, level, model)| AssetDef {
                path: path.into(),
                level: level.into(),
                model: model.map(Into::into),
                description: None,
            })
            .collect(),
        }
    }

    #[test]
    fn renders_every_sites_equipment_bound_to_its_tag_paths_in_site_order() {
        let text = render(&[site("plant-b", "line-7"), site("plant-a", "line-1")], "plants");
        let a = text.find("path = \"plant-a/line-1\"\nlevel = \"line\"").unwrap();
        let b = text.find("path = \"plant-b/line-7\"").unwrap();
        assert!(a < b, "{text}");
        assert!(text.contains(
            "path = \"plant-a/line-1/filler\"\nmodel = \"Filler\"\nsource = \"plants\"\nbindings.speed = { address = \"acme/plant-a/line-1/filler/speed\" }\n"
        ), "{text}");
        assert!(!text.contains("path = \"plant-a\"\n"), "{text}");
        assert!(!text.contains("path = \"acme\""), "{text}");
        let parsed: toml::Table = text.parse().unwrap();
        assert_eq!(parsed["assets"].as_array().unwrap().len(), 4);
    }

    #[test]
    fn quotes_what_toml_needs_quoted() {
        assert_eq!(quote("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000A\"");
    }
}
