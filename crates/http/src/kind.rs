//! [`HttpKind`], registered as `http`: reads the source's settings, checks addresses
//! (JSONPaths), opens each webhook source's route for the API before the engine starts,
//! and builds the source.

use std::sync::Arc;

use backplane_config::{AddressError, Plan, Table};
use backplane_connector::{ComponentError, Inbound, Kind, Services, Source, SourceContext, SourceKind};

use crate::config::{HttpSettings, Mode, selector_hint};
use crate::schema::Schema;
use crate::select::Selector;
use crate::source::HttpSource;

/// The kind registered as `http`.
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpKind;

impl Kind for HttpKind {
    type Settings = HttpSettings;

    fn describe(&self) -> &'static str {
        "JSON over HTTP: poll an endpoint (JSONPath fields, ETag/Last-Modified) or take documents POSTed to /api/v1/webhooks/{name}"
    }

    fn parse(&self, table: &mut Table<'_>) -> Option<HttpSettings> {
        crate::config::parse_settings(table)
    }

    fn check_address(&self, settings: &HttpSettings, address: &str) -> Result<(), AddressError> {
        let selector = Selector::parse(address).map_err(|message| AddressError {
            message,
            hint: Some(selector_hint()),
        })?;
        // A webhook's documents have the declared top-level fields only.
        if let Mode::Webhook(w) = &settings.mode {
            let first = top_level(selector.text());
            if let Some(first) = first
                && !w.fields.iter().any(|f| f.name == first)
            {
                let names: Vec<&str> = w.fields.iter().map(|f| f.name.as_str()).collect();
                return Err(AddressError {
                    message: format!("`{address}` reads `{first}`, which is not a field of this webhook"),
                    hint: Some(format!(
                        "declare it in `fields`; the fields are {}",
                        names.join(", ")
                    )),
                });
            }
        }
        Ok(())
    }

    fn summarize(&self, _plan: &Plan, name: &str, settings: &HttpSettings) -> Vec<String> {
        vec![match &settings.mode {
            Mode::Poll(p) => format!(
                "http source `{name}`: GET {} every {:?} (timeout {:?}, at most {} bytes), conditional on ETag/Last-Modified",
                p.url, p.period, p.timeout, settings.max_body_bytes
            ),
            Mode::Webhook(w) => format!(
                "http source `{name}`: POST /api/v1/webhooks/{name}, {} field(s), at most {} bytes",
                w.fields.len(),
                settings.max_body_bytes
            ),
        }]
    }

    /// Each webhook source's route, under the source's name, for the API.
    fn prepare(&self, _plan: &Plan, instances: &[(&str, &HttpSettings)]) -> Result<Services, ComponentError> {
        let mut services = Services::default();
        for (name, settings) in instances {
            if let Mode::Webhook(w) = &settings.mode {
                let schema = Schema {
                    fields: w.fields.clone(),
                    timestamp_unit: settings.timestamp_unit,
                };
                services.insert(
                    name,
                    Arc::new(Inbound::new(name, settings.max_body_bytes, Arc::new(schema))),
                );
            }
        }
        Ok(services)
    }
}

/// The first member name of a path written `$.name…` or `$['name']…`, if it starts so.
fn top_level(path: &str) -> Option<String> {
    let rest = path.strip_prefix('$')?;
    if let Some(dotted) = rest.strip_prefix('.') {
        let end = dotted.find(['.', '[']).unwrap_or(dotted.len());
        return Some(dotted[..end].to_owned()).filter(|n| !n.is_empty() && n != "*");
    }
    let quoted = rest.strip_prefix("['").or_else(|| rest.strip_prefix("[\""))?;
    let end = quoted.find(['\'', '"'])?;
    Some(quoted[..end].to_owned())
}

impl SourceKind for HttpKind {
    /// Reads its own settings and addresses only: a reload keeps it running when those stay.
    fn reads_asset_tree(&self) -> bool {
        false
    }

    fn build(&self, ctx: &SourceContext<'_, HttpSettings>) -> Result<Box<dyn Source>, ComponentError> {
        let selectors = ctx
            .addresses
            .iter()
            .map(|a| Selector::parse(a))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ComponentError::config(format!("http source `{}`: {e}", ctx.name)))?;
        let inbound = match ctx.settings.mode {
            Mode::Webhook(_) => Some(ctx.services.named::<Inbound>(ctx.name).ok_or_else(|| {
                ComponentError::config(format!(
                    "http source `{}`: its webhook route was not opened",
                    ctx.name
                ))
            })?),
            Mode::Poll(_) => None,
        };
        Ok(Box::new(HttpSource {
            name: ctx.name.to_owned(),
            settings: Arc::new(ctx.settings.clone()),
            selectors,
            inbound,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_top_level_member_of_a_path_is_found() {
        assert_eq!(top_level("$.fat").as_deref(), Some("fat"));
        assert_eq!(top_level("$.lab.fat").as_deref(), Some("lab"));
        assert_eq!(top_level("$['a b'][0]").as_deref(), Some("a b"));
        assert_eq!(top_level("$[0]"), None);
        assert_eq!(top_level("$.*"), None);
    }
}
