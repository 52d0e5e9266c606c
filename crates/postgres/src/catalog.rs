//! The catalog tables (gateways, models, attributes, assets, tags) brought in line with
//! this gateway's configuration at every start, and the wide `model_<name>` views made
//! from it. Upserts only: what another gateway wrote stays.

use std::collections::HashMap;

use backplane_connector::Topology;
use backplane_model::{DataType, Model, ScalarType};
use tokio_postgres::Client;

/// What the writer needs from the catalog.
#[derive(Clone, Debug)]
pub struct CatalogIds {
    pub gateway_id: i32,
    /// `tags.id` of every tag, indexed by the topology's `TagId`.
    pub tag_ids: Vec<i32>,
}

/// Upserts the gateway, models, attributes, assets and tags in one transaction.
pub async fn sync(client: &mut Client, topology: &Topology) -> Result<CatalogIds, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    let gateway_id: i32 = tx
        .query_one(
            "INSERT INTO gateways (name) VALUES ($1)
             ON CONFLICT (name) DO UPDATE SET last_seen = now() RETURNING id",
            &[&topology.plan.gateway.name],
        )
        .await?
        .get(0);

    let models = &topology.plan.models;
    let names: Vec<&str> = models.iter().map(|m| m.name.as_str()).collect();
    let descriptions: Vec<Option<&str>> = models.iter().map(|m| m.description.as_deref()).collect();
    tx.execute(
        "INSERT INTO models (name, description)
         SELECT * FROM unnest($1::text[], $2::text[])
         ON CONFLICT (name) DO UPDATE SET description = EXCLUDED.description, updated_at = now()",
        &[&names, &descriptions],
    )
    .await?;

    let mut a_model = Vec::new();
    let mut a_name = Vec::new();
    let mut a_type = Vec::new();
    let mut a_unit = Vec::new();
    let mut a_min = Vec::new();
    let mut a_max = Vec::new();
    let mut a_desc = Vec::new();
    for m in models {
        for a in &m.attributes {
            a_model.push(m.name.as_str());
            a_name.push(a.name.as_str());
            a_type.push(a.data_type.to_string());
            a_unit.push(a.unit.as_ref().map(ToString::to_string));
            a_min.push(a.range.map(|r| r[0]));
            a_max.push(a.range.map(|r| r[1]));
            a_desc.push(a.description.as_deref());
        }
    }
    tx.execute(
        "INSERT INTO attributes (model, name, type, unit, range_min, range_max, description)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::float8[], $6::float8[], $7::text[])
         ON CONFLICT (model, name) DO UPDATE SET type = EXCLUDED.type, unit = EXCLUDED.unit,
             range_min = EXCLUDED.range_min, range_max = EXCLUDED.range_max,
             description = EXCLUDED.description",
        &[&a_model, &a_name, &a_type, &a_unit, &a_min, &a_max, &a_desc],
    )
    .await?;

    let mut path = Vec::new();
    let mut enterprise = Vec::new();
    let mut site = Vec::new();
    let mut parent = Vec::new();
    let mut level = Vec::new();
    let mut model = Vec::new();
    let mut description = Vec::new();
    for node in &topology.assets {
        let mut segments = node.path.segments();
        path.push(node.path.as_str().to_owned());
        enterprise.push(segments.next().unwrap_or_default().to_owned());
        site.push(segments.next().map(str::to_owned));
        parent.push(node.path.parent().map(|p| p.as_str().to_owned()));
        level.push(node.level.name());
        model.push(node.model.as_ref().map(|m| m.name.clone()));
        description.push(node.description.clone());
    }
    tx.execute(
        "INSERT INTO assets (path, enterprise, site, parent, level, model, description, gateway_id)
         SELECT p, e, s, pa, l, m, d, $8 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],
             $5::text[], $6::text[], $7::text[]) AS u(p, e, s, pa, l, m, d)
         ON CONFLICT (path) DO UPDATE SET enterprise = EXCLUDED.enterprise, site = EXCLUDED.site,
             parent = EXCLUDED.parent, level = EXCLUDED.level, model = EXCLUDED.model,
             description = EXCLUDED.description, gateway_id = EXCLUDED.gateway_id, updated_at = now()",
        &[
            &path,
            &enterprise,
            &site,
            &parent,
            &level,
            &model,
            &description,
            &gateway_id,
        ],
    )
    .await?;

    let t_path: Vec<String> = topology
        .tags
        .iter()
        .map(|t| topology.path(t).to_string())
        .collect();
    let t_asset: Vec<&str> = topology
        .tags
        .iter()
        .map(|t| topology.assets.get(t.asset).map_or("", |a| a.path.as_str()))
        .collect();
    let t_attribute: Vec<&str> = topology.tags.iter().map(|t| t.attribute.name.as_str()).collect();
    let t_model: Vec<&str> = topology.tags.iter().map(|t| topology.model_name(t)).collect();
    let rows = tx
        .query(
            "INSERT INTO tags (path, asset, attribute, model)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
             ON CONFLICT (path) DO UPDATE SET asset = EXCLUDED.asset, attribute = EXCLUDED.attribute,
                 model = EXCLUDED.model
             RETURNING id, path",
            &[&t_path, &t_asset, &t_attribute, &t_model],
        )
        .await?;
    let by_path: HashMap<String, i32> = rows.iter().map(|r| (r.get::<_, String>(1), r.get(0))).collect();
    let tag_ids = t_path
        .iter()
        .map(|p| by_path.get(p).copied().unwrap_or(-1))
        .collect();
    tx.commit().await?;
    Ok(CatalogIds { gateway_id, tag_ids })
}

/// Drops and creates `model_<name>` for every model of the configuration.
pub async fn model_views(
    client: &mut Client,
    topology: &Topology,
) -> Result<Vec<String>, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    let mut names = Vec::new();
    for model in &topology.plan.models {
        let (name, sql) = model_view(model);
        tx.batch_execute(&format!("DROP VIEW IF EXISTS {}; {sql}", quote_ident(&name)))
            .await?;
        names.push(name);
    }
    tx.commit().await?;
    Ok(names)
}

/// `model_<name>`: the model's name in lower case, anything but letters and digits as `_`.
pub fn model_view_name(model: &str) -> String {
    let slug: String = model
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(56)
        .collect();
    format!("model_{slug}")
}

/// The view's name and its `CREATE VIEW`: one row per asset of the model and gateway
/// time, one column per attribute, typed by the attribute.
pub fn model_view(model: &Model) -> (String, String) {
    let name = model_view_name(&model.name);
    let mut columns = String::new();
    for a in &model.attributes {
        let filter = format!("FILTER (WHERE t.attribute = {})", quote_literal(&a.name));
        let expr = match a.data_type {
            DataType::Array(_) => format!("(array_agg(s.value_json) {filter})[1]"),
            DataType::Scalar(ScalarType::Float) => format!("max(s.value_double) {filter}"),
            DataType::Scalar(ScalarType::Int | ScalarType::UInt) => format!("max(s.value_bigint) {filter}"),
            DataType::Scalar(ScalarType::Bool) => format!("bool_or(s.value_bool) {filter}"),
            DataType::Scalar(ScalarType::String | ScalarType::Timestamp) => {
                format!("max(s.value_text) {filter}")
            }
        };
        columns.push_str(&format!(",\n    {expr} AS {}", quote_ident(&a.name)));
    }
    let sql = format!(
        "CREATE VIEW {} AS\nSELECT s.time, t.asset{columns}\nFROM samples s JOIN tags t ON t.id = s.tag_id\nWHERE t.model = {}\nGROUP BY s.time, t.asset",
        quote_ident(&name),
        quote_literal(&model.name)
    );
    (name, sql)
}

pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_view_has_one_typed_column_per_attribute() {
        let model: Model = Model {
            name: "Filler-X".into(),
            description: None,
            attributes: vec![
                attribute("speed", DataType::Scalar(ScalarType::Float)).into(),
                attribute("state", DataType::Scalar(ScalarType::String)).into(),
                attribute("good_count", DataType::Scalar(ScalarType::UInt)).into(),
            ],
        };
        let (name, sql) = model_view(&model);
        assert_eq!(name, "model_filler_x");
        assert!(
            sql.contains("max(s.value_double) FILTER (WHERE t.attribute = 'speed') AS \"speed\""),
            "{sql}"
        );
        assert!(
            sql.contains("max(s.value_text) FILTER (WHERE t.attribute = 'state') AS \"state\""),
            "{sql}"
        );
        assert!(
            sql.contains("max(s.value_bigint) FILTER (WHERE t.attribute = 'good_count')"),
            "{sql}"
        );
        assert!(sql.contains("WHERE t.model = 'Filler-X'"), "{sql}");
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }

    fn attribute(name: &str, data_type: DataType) -> backplane_model::Attribute {
        backplane_model::Attribute {
            name: name.into(),
            data_type,
            unit: None,
            description: None,
            range: None,
            allowed: None,
            decimals: None,
            expr: None,
            limits: None,
        }
    }
}
