//! What a gateway tells other gateways about its namespace: its models (attributes with
//! type, unit and range) and its asset tree ([`Definitions`]), and how a hub that joins
//! several plants keeps them apart when they disagree ([`SiteBoard`]).
//!
//! An edge publishes its definitions when its sink connects; a hub records each site's
//! latest and compares every model it knows by name: its own configured model and every
//! site's. The same model name with a different attribute set, type or unit in two places
//! is *model drift*: the hub reports it (health warning, API) and a mirroring source
//! refuses values whose type or unit disagree with what the hub's binding expects, rather
//! than mixing litres with gallons.

use std::collections::BTreeMap;
use std::sync::Mutex;

use backplane_model::{Timestamp, Unit};
use serde::{Deserialize, Serialize};

use crate::topology::Topology;

/// One gateway's namespace, as published to others (`docs/hub.md`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Definitions {
    /// Always `"definitions"`.
    pub kind: String,
    pub gateway: String,
    pub enterprise: String,
    pub site: String,
    /// The configuration version in force at the gateway (hex SHA-256).
    pub config_version: String,
    pub models: Vec<ModelDef>,
    /// Every asset below the site, parents before children.
    pub assets: Vec<AssetDef>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelDef {
    pub name: String,
    pub attributes: Vec<AttributeDef>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttributeDef {
    pub name: String,
    #[serde(rename = "type")]
    pub data_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<[f64; 2]>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AssetDef {
    /// The full path, from the enterprise down.
    pub path: String,
    pub level: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl ModelDef {
    pub fn of(model: &backplane_model::Model) -> ModelDef {
        ModelDef {
            name: model.name.clone(),
            attributes: model
                .attributes
                .iter()
                .map(|a| AttributeDef {
                    name: a.name.clone(),
                    data_type: a.data_type.to_string(),
                    unit: a.unit.as_ref().map(|u| u.symbol().to_owned()),
                    range: a.range,
                })
                .collect(),
        }
    }

    pub fn attribute(&self, name: &str) -> Option<&AttributeDef> {
        self.attributes.iter().find(|a| a.name == name)
    }
}

impl Definitions {
    /// This gateway's definitions: every model an asset uses, every asset below the site.
    pub fn of(topology: &Topology, gateway: &str) -> Definitions {
        let plan = &topology.plan;
        Definitions {
            kind: "definitions".to_owned(),
            gateway: gateway.to_owned(),
            enterprise: plan.namespace.enterprise.clone(),
            site: plan.namespace.site.clone(),
            config_version: plan.version.clone(),
            models: plan.models.iter().map(|m| ModelDef::of(m)).collect(),
            assets: topology
                .assets
                .iter()
                .filter(|a| a.path.depth() > 2)
                .map(|a| AssetDef {
                    path: a.path.as_str().to_owned(),
                    level: a.level.name().to_owned(),
                    model: a.model.as_ref().map(|m| m.name.clone()),
                    description: a.description.clone(),
                })
                .collect(),
        }
    }

    pub fn model(&self, name: &str) -> Option<&ModelDef> {
        self.models.iter().find(|m| m.name == name)
    }
}

/// One way an attribute is defined, and where.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Variant {
    /// `hub` for the hub's own configuration, else the site names.
    pub defined_by: Vec<String>,
    /// `None`: the model there has no such attribute.
    #[serde(rename = "type")]
    pub data_type: Option<String>,
    pub unit: Option<String>,
}

/// One attribute of one model that is not defined the same way everywhere.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelDrift {
    pub model: String,
    pub attribute: String,
    /// `type`, `unit` (convertible: values are converted where a binding says so),
    /// `unit_incompatible`, or `missing` (some define the attribute, some do not).
    pub difference: &'static str,
    pub variants: Vec<Variant>,
}

/// What a hub knows of one site.
#[derive(Clone, Debug, Serialize)]
pub struct SiteSummary {
    pub site: String,
    pub gateway: String,
    pub config_version: String,
    pub received: Timestamp,
    pub models: usize,
    pub assets: usize,
}

/// The latest definitions of every site a hub mirrors, shared between the mirroring
/// sources (which record) and the API (which answers). A service: kinds that mirror
/// offer it from `prepare`.
#[derive(Debug)]
pub struct SiteBoard {
    /// The hub's own models, by name.
    local: Vec<ModelDef>,
    sites: Mutex<BTreeMap<String, (Definitions, Timestamp)>>,
}

impl SiteBoard {
    pub fn new(local: &[std::sync::Arc<backplane_model::Model>]) -> SiteBoard {
        SiteBoard {
            local: local.iter().map(|m| ModelDef::of(m)).collect(),
            sites: Mutex::new(BTreeMap::new()),
        }
    }

    /// Records `definitions` as the latest of its site. Returns the drift that concerns
    /// this site (for the caller to report once), empty when it agrees with everyone.
    pub fn record(&self, definitions: Definitions, received: Timestamp) -> Vec<ModelDrift> {
        let site = definitions.site.clone();
        {
            let mut sites = self.sites.lock().unwrap_or_else(|p| p.into_inner());
            sites.insert(site.clone(), (definitions, received));
        }
        self.drift()
            .into_iter()
            .filter(|d| d.variants.iter().any(|v| v.defined_by.contains(&site)))
            .collect()
    }

    pub fn sites(&self) -> Vec<SiteSummary> {
        let sites = self.sites.lock().unwrap_or_else(|p| p.into_inner());
        sites
            .values()
            .map(|(d, received)| SiteSummary {
                site: d.site.clone(),
                gateway: d.gateway.clone(),
                config_version: d.config_version.clone(),
                received: *received,
                models: d.models.len(),
                assets: d.assets.len(),
            })
            .collect()
    }

    /// The latest definitions of `site`.
    pub fn definitions(&self, site: &str) -> Option<Definitions> {
        let sites = self.sites.lock().unwrap_or_else(|p| p.into_inner());
        sites.get(site).map(|(d, _)| d.clone())
    }

    /// Every attribute defined differently by the hub and the sites, by model then
    /// attribute. Only models defined in more than one place are compared.
    pub fn drift(&self) -> Vec<ModelDrift> {
        let sites = self.sites.lock().unwrap_or_else(|p| p.into_inner());
        let mut by_model: BTreeMap<&str, Vec<(&str, &ModelDef)>> = BTreeMap::new();
        for model in &self.local {
            by_model.entry(&model.name).or_default().push(("hub", model));
        }
        for (site, (defs, _)) in sites.iter() {
            for model in &defs.models {
                by_model.entry(&model.name).or_default().push((site, model));
            }
        }
        let mut out = Vec::new();
        for (model, places) in by_model {
            if places.len() < 2 {
                continue;
            }
            let mut attributes: Vec<&str> = places
                .iter()
                .flat_map(|(_, m)| m.attributes.iter().map(|a| a.name.as_str()))
                .collect();
            attributes.sort_unstable();
            attributes.dedup();
            for attribute in attributes {
                if let Some(drift) = compare(model, attribute, &places) {
                    out.push(drift);
                }
            }
        }
        out
    }
}

fn compare(model: &str, attribute: &str, places: &[(&str, &ModelDef)]) -> Option<ModelDrift> {
    let mut variants: Vec<Variant> = Vec::new();
    for (place, def) in places {
        let found = def.attribute(attribute);
        let data_type = found.map(|a| a.data_type.clone());
        let unit = found.and_then(|a| a.unit.clone());
        match variants
            .iter_mut()
            .find(|v| v.data_type == data_type && v.unit == unit)
        {
            Some(v) => v.defined_by.push((*place).to_owned()),
            None => variants.push(Variant {
                defined_by: vec![(*place).to_owned()],
                data_type,
                unit,
            }),
        }
    }
    if variants.len() < 2 {
        return None;
    }
    let difference = if variants.iter().any(|v| v.data_type.is_none()) {
        "missing"
    } else if variants.windows(2).any(|w| w[0].data_type != w[1].data_type) {
        "type"
    } else if units_convertible(&variants) {
        "unit"
    } else {
        "unit_incompatible"
    };
    Some(ModelDrift {
        model: model.to_owned(),
        attribute: attribute.to_owned(),
        difference,
        variants,
    })
}

/// Whether every variant's unit converts into every other's.
fn units_convertible(variants: &[Variant]) -> bool {
    let units: Vec<Option<Unit>> = variants
        .iter()
        .map(|v| v.unit.as_deref().and_then(Unit::parse))
        .collect();
    let Some(Some(first)) = units.first() else {
        return false;
    };
    units
        .iter()
        .all(|u| u.as_ref().is_some_and(|u| u.conversion_to(first).is_some()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(name: &str, attributes: &[(&str, &str, Option<&str>)]) -> ModelDef {
        ModelDef {
            name: name.to_owned(),
            attributes: attributes
                .iter()
                .map(|(n, t, u)| AttributeDef {
                    name: (*n).to_owned(),
                    data_type: (*t).to_owned(),
                    unit: u.map(str::to_owned),
                    range: None,
                })
                .collect(),
        }
    }

    fn site(name: &str, models: Vec<ModelDef>) -> Definitions {
        Definitions {
            kind: "definitions".to_owned(),
            gateway: format!("{name}-edge"),
            enterprise: "acme".to_owned(),
            site: name.to_owned(),
            config_version: "v".to_owned(),
            models,
            assets: Vec::new(),
        }
    }

    fn board() -> SiteBoard {
        SiteBoard {
            local: vec![model(
                "Filler",
                &[("speed", "float", Some("bottle/min")), ("good", "int", None)],
            )],
            sites: Mutex::new(BTreeMap::new()),
        }
    }

    #[test]
    fn sites_that_agree_with_the_hub_show_no_drift() {
        let board = board();
        let same = model(
            "Filler",
            &[("speed", "float", Some("bottle/min")), ("good", "int", None)],
        );
        assert!(
            board
                .record(site("plant-a", vec![same.clone()]), Timestamp::now())
                .is_empty()
        );
        assert!(
            board
                .record(site("plant-b", vec![same]), Timestamp::now())
                .is_empty()
        );
        assert_eq!(board.sites().len(), 2);
    }

    #[test]
    fn a_different_unit_type_or_attribute_set_is_drift_naming_every_variant() {
        let board = board();
        let b = model(
            "Filler",
            &[("speed", "float", Some("bottle/h")), ("good", "float", None)],
        );
        let drift = board.record(site("plant-b", vec![b]), Timestamp::now());
        assert_eq!(drift.len(), 2, "{drift:?}");
        let good = drift.iter().find(|d| d.attribute == "good").unwrap();
        assert_eq!(good.difference, "type");
        let speed = drift.iter().find(|d| d.attribute == "speed").unwrap();
        assert_eq!(speed.difference, "unit");
        assert_eq!(speed.variants[0].defined_by, vec!["hub"]);
        assert_eq!(speed.variants[1].defined_by, vec!["plant-b"]);

        let c = model("Filler", &[("speed", "float", Some("degC"))]);
        let drift = board.record(site("plant-c", vec![c]), Timestamp::now());
        let speed = drift.iter().find(|d| d.attribute == "speed").unwrap();
        assert_eq!(speed.difference, "unit_incompatible");
        let good = drift.iter().find(|d| d.attribute == "good").unwrap();
        assert_eq!(good.difference, "missing");
    }

    #[test]
    fn a_model_only_one_place_defines_is_not_drift() {
        let board = board();
        let other = model("Pasteurizer", &[("temp", "float", Some("degC"))]);
        assert!(
            board
                .record(site("plant-a", vec![other]), Timestamp::now())
                .is_empty()
        );
    }
}
