//! ISA-95 production objects: work orders (with their status life cycle), material lots
//! and batches, and operators signed in at an asset.

use std::sync::Arc;

use backplane_model::sample::{LotChange, LotStatus, WorkOrderChange, WorkOrderStatus};
use backplane_model::{AssetPath, Timestamp};
use serde::{Deserialize, Serialize};

/// A work order: make `planned_quantity` of `product` on `asset` (a line, usually).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkOrder {
    pub id: Arc<str>,
    pub product: Arc<str>,
    /// Where it runs; its context (`work_order`, `product`) is set here while it runs and
    /// inherited by every asset below.
    pub asset: AssetPath,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned_quantity: Option<f64>,
    /// Pieces per minute at ideal speed; the OEE performance reference of every machine
    /// below `asset` while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ideal_rate_per_min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_start: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_end: Option<Timestamp>,
    /// When it first started running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual_start: Option<Timestamp>,
    /// When it was completed or cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual_end: Option<Timestamp>,
    pub status: WorkOrderStatus,
    pub created: Timestamp,
    /// Every status it had, oldest first.
    pub history: Vec<StatusChange>,
}

/// One entry of a work order's history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusChange {
    pub status: WorkOrderStatus,
    pub time: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<Arc<str>>,
}

/// The fields of a new work order, as the API and the MQTT command topic receive them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewWorkOrder {
    pub id: String,
    pub product: String,
    /// The asset path, in full (`acme-dairy/plant-a/packaging/line-1`) or below the site
    /// (`packaging/line-1`).
    pub asset: String,
    #[serde(default)]
    pub planned_quantity: Option<f64>,
    #[serde(default)]
    pub ideal_rate_per_min: Option<f64>,
    #[serde(default)]
    pub scheduled_start: Option<Timestamp>,
    #[serde(default)]
    pub scheduled_end: Option<Timestamp>,
}

impl WorkOrder {
    pub(crate) fn change(&self, previous: Option<WorkOrderStatus>, by: Option<&str>) -> WorkOrderChange {
        WorkOrderChange {
            id: self.id.clone(),
            status: self.status,
            previous,
            product: self.product.clone(),
            planned_quantity: self.planned_quantity,
            ideal_rate_per_min: self.ideal_rate_per_min,
            scheduled_start: self.scheduled_start,
            scheduled_end: self.scheduled_end,
            actual_start: self.actual_start,
            actual_end: self.actual_end,
            by: by.map(Into::into),
        }
    }
}

/// Checks a status change: `Ok` if allowed, else why not, in words for the person who
/// asked.
///
/// ```text
/// created  → released, cancelled
/// released → running, cancelled
/// running  → held, completed, cancelled
/// held     → running, completed, cancelled
/// completed, cancelled: final
/// ```
pub fn check_transition(id: &str, from: WorkOrderStatus, to: WorkOrderStatus) -> Result<(), String> {
    use WorkOrderStatus::*;
    let allowed = match from {
        Created => &[Released, Cancelled][..],
        Released => &[Running, Cancelled],
        Running => &[Held, Completed, Cancelled],
        Held => &[Running, Completed, Cancelled],
        Completed | Cancelled => &[],
    };
    if allowed.contains(&to) {
        return Ok(());
    }
    let advice = match (from, to) {
        (_, _) if from == to => format!("it is already {from}"),
        (Completed | Cancelled, _) => format!("it is {from}, which is final"),
        (Created, Running) => "release it first".to_owned(),
        (Created, Held) | (Released, Held) => "only a running work order can be held".to_owned(),
        (Created, Completed) | (Released, Completed) => "it never ran; cancel it instead".to_owned(),
        _ => format!(
            "from {from} it can go to {}",
            allowed.iter().map(|s| s.name()).collect::<Vec<_>>().join(" or ")
        ),
    };
    Err(format!(
        "work order `{id}` cannot go from {from} to {to}: {advice}"
    ))
}

/// A material lot or batch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Lot {
    pub id: Arc<str>,
    pub material: Arc<str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<Arc<str>>,
    pub status: LotStatus,
    /// Where it was produced or is kept, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset: Option<AssetPath>,
    pub created: Timestamp,
    pub updated: Timestamp,
}

/// The fields of a new lot, as the API and the MQTT command topic receive them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewLot {
    pub id: String,
    pub material: String,
    #[serde(default)]
    pub quantity: Option<f64>,
    /// A unit of `docs/configuration.md`, "Units" (`L`, `kg`), or a count word (`bottle`).
    #[serde(default)]
    pub unit: Option<String>,
    /// In full or below the site, like [`NewWorkOrder::asset`].
    #[serde(default)]
    pub asset: Option<String>,
    /// Default `active`.
    #[serde(default)]
    pub status: Option<LotStatus>,
}

impl Lot {
    pub(crate) fn change(&self, previous: Option<LotStatus>, by: Option<&str>) -> LotChange {
        LotChange {
            id: self.id.clone(),
            material: self.material.clone(),
            quantity: self.quantity,
            unit: self.unit.clone(),
            status: self.status,
            previous,
            by: by.map(Into::into),
        }
    }
}

/// Checks a lot status change: anything but leaving `scrapped` or staying put.
pub fn check_lot_transition(id: &str, from: LotStatus, to: LotStatus) -> Result<(), String> {
    if from == to {
        Err(format!("lot `{id}` is already {from}"))
    } else if from == LotStatus::Scrapped {
        Err(format!("lot `{id}` is scrapped, which is final"))
    } else {
        Ok(())
    }
}

/// An operator signed in at an asset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SignIn {
    pub operator: Arc<str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Arc<str>>,
    pub asset: AssetPath,
    pub since: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;
    use WorkOrderStatus::*;

    #[test]
    fn every_allowed_transition_is_listed_and_nothing_leaves_a_final_status() {
        let allowed = [
            (Created, Released),
            (Created, Cancelled),
            (Released, Running),
            (Released, Cancelled),
            (Running, Held),
            (Running, Completed),
            (Running, Cancelled),
            (Held, Running),
            (Held, Completed),
            (Held, Cancelled),
        ];
        for from in WorkOrderStatus::ALL {
            for to in WorkOrderStatus::ALL {
                assert_eq!(
                    check_transition("WO", from, to).is_ok(),
                    allowed.contains(&(from, to)),
                    "{from} → {to}"
                );
            }
        }
    }

    #[test]
    fn refusals_say_what_to_do_instead() {
        let e = check_transition("WO-1", Created, Running).unwrap_err();
        assert_eq!(
            e,
            "work order `WO-1` cannot go from created to running: release it first"
        );
        let e = check_transition("WO-1", Completed, Running).unwrap_err();
        assert!(e.ends_with("it is completed, which is final"), "{e}");
        let e = check_transition("WO-1", Running, Running).unwrap_err();
        assert!(e.ends_with("it is already running"), "{e}");
        let e = check_transition("WO-1", Running, Released).unwrap_err();
        assert!(
            e.ends_with("from running it can go to held or completed or cancelled"),
            "{e}"
        );
    }
}
