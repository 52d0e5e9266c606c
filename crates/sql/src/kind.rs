//! [`SqlKind`], registered as `sql`: reads the source's settings, checks that bound
//! addresses are column names, and builds the source with its watermark file under the
//! gateway's data directory.

use std::sync::Arc;

use backplane_config::{AddressError, Plan, Table};
use backplane_connector::{ComponentError, Kind, Source, SourceContext, SourceKind};

use crate::config::{SqlSettings, Target, is_column_name};
use crate::source::SqlSource;

/// The kind registered as `sql`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SqlKind;

impl Kind for SqlKind {
    type Settings = SqlSettings;

    fn describe(&self) -> &'static str {
        "New rows of a PostgreSQL or MariaDB/MySQL table or query, after a persisted watermark (LIMS, ERP, MES tables)"
    }

    fn parse(&self, table: &mut Table<'_>) -> Option<SqlSettings> {
        crate::config::parse_settings(table)
    }

    fn check_address(&self, _settings: &SqlSettings, address: &str) -> Result<(), AddressError> {
        if is_column_name(address) {
            Ok(())
        } else {
            Err(AddressError {
                message: format!("`{address}` is not a column name"),
                hint: Some(
                    "the address of a sql binding is a column of the table or query, e.g. `temperature`"
                        .into(),
                ),
            })
        }
    }

    fn summarize(&self, _plan: &Plan, name: &str, settings: &SqlSettings) -> Vec<String> {
        let what = match &settings.target {
            Target::Table(t) => format!("table {t}"),
            Target::Query(_) => "a query".to_owned(),
        };
        let key = match &settings.tiebreak {
            Some(t) => format!("({}, {t})", settings.watermark),
            None => settings.watermark.clone(),
        };
        vec![format!(
            "sql source `{name}`: {what} of {} ({}), rows after {key}, up to {} rows every {:?}",
            crate::db::target(settings),
            settings.tls.describe(),
            settings.batch,
            settings.period
        )]
    }
}

impl SourceKind for SqlKind {
    fn build(&self, ctx: &SourceContext<'_, SqlSettings>) -> Result<Box<dyn Source>, ComponentError> {
        let topology = ctx.topology;
        let routes = topology.sources.iter().find(|s| s.name == ctx.name);
        let types = ctx
            .addresses
            .iter()
            .enumerate()
            .map(|(i, _)| {
                let tag = routes?.routes.get(i)?.first()?;
                topology.tag(*tag).map(|t| t.attribute.data_type)
            })
            .collect();
        let context_asset = match &ctx.settings.context {
            // Written below the site like in [[assets]]; the full path is taken too.
            Some(c) => Some(
                topology
                    .asset_index(&c.asset)
                    .or_else(|| {
                        let ns = &topology.plan.namespace;
                        topology.asset_index(&format!("{}/{}/{}", ns.enterprise, ns.site, c.asset))
                    })
                    .ok_or_else(|| {
                        ComponentError::config(format!(
                            "sql source `{}`: context_asset `{}` is not a configured asset",
                            ctx.name, c.asset
                        ))
                    })?,
            ),
            None => None,
        };
        Ok(Box::new(SqlSource {
            name: ctx.name.to_owned(),
            settings: Arc::new(ctx.settings.clone()),
            addresses: ctx.addresses.to_vec(),
            types,
            context_asset,
            state: crate::watermark::path(ctx.data_dir, ctx.name),
        }))
    }
}
