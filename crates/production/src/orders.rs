//! ISA-95 production objects: work orders (with their status life cycle), material lots
//! and batches, and operators signed in at an asset.

use std::fmt;
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

/// A work order status change that is not allowed, with what to do instead.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("work order `{id}` cannot go from {from} to {to}: {advice}")]
pub struct TransitionError {
    pub id: String,
    pub from: WorkOrderStatus,
    pub to: WorkOrderStatus,
    pub advice: TransitionAdvice,
}

/// What to do instead of a refused work order status change, in words for the person who
/// asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransitionAdvice {
    /// The work order already has the status.
    Already(WorkOrderStatus),
    /// Completed and cancelled work orders never change.
    Final(WorkOrderStatus),
    /// A created work order must be released before it runs.
    ReleaseFirst,
    /// Only a running work order can be held.
    HoldWhenRunning,
    /// A work order that never ran cannot complete.
    CancelInstead,
    /// Any other refusal: the statuses it can go to from `from`.
    Allowed {
        from: WorkOrderStatus,
        to: &'static [WorkOrderStatus],
    },
}

impl fmt::Display for TransitionAdvice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransitionAdvice::Already(status) => write!(f, "it is already {status}"),
            TransitionAdvice::Final(status) => write!(f, "it is {status}, which is final"),
            TransitionAdvice::ReleaseFirst => f.write_str("release it first"),
            TransitionAdvice::HoldWhenRunning => f.write_str("only a running work order can be held"),
            TransitionAdvice::CancelInstead => f.write_str("it never ran; cancel it instead"),
            TransitionAdvice::Allowed { from, to } => write!(
                f,
                "from {from} it can go to {}",
                to.iter().map(|s| s.name()).collect::<Vec<_>>().join(" or ")
            ),
        }
    }
}

/// Checks a status change: `Ok` if allowed, else why not and what to do instead.
///
/// ```text
/// created  → released, cancelled
/// released → running, cancelled
/// running  → held, completed, cancelled
/// held     → running, completed, cancelled
/// completed, cancelled: final
/// ```
pub fn check_transition(id: &str, from: WorkOrderStatus, to: WorkOrderStatus) -> Result<(), TransitionError> {
    use WorkOrderStatus::*;
    let allowed: &'static [WorkOrderStatus] = match from {
        Created => &[Released, Cancelled],
        Released => &[Running, Cancelled],
        Running => &[Held, Completed, Cancelled],
        Held => &[Running, Completed, Cancelled],
        Completed | Cancelled => &[],
    };
    if allowed.contains(&to) {
        return Ok(());
    }
    let advice = match (from, to) {
        (_, _) if from == to => TransitionAdvice::Already(from),
        (Completed | Cancelled, _) => TransitionAdvice::Final(from),
        (Created, Running) => TransitionAdvice::ReleaseFirst,
        (Created, Held) | (Released, Held) => TransitionAdvice::HoldWhenRunning,
        (Created, Completed) | (Released, Completed) => TransitionAdvice::CancelInstead,
        _ => TransitionAdvice::Allowed { from, to: allowed },
    };
    Err(TransitionError {
        id: id.to_owned(),
        from,
        to,
        advice,
    })
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

/// A lot status change that is not allowed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LotTransitionError {
    /// The lot already has the status.
    #[error("lot `{id}` is already {status}")]
    Already { id: String, status: LotStatus },
    /// A scrapped lot never changes.
    #[error("lot `{id}` is scrapped, which is final")]
    Scrapped { id: String },
}

/// Checks a lot status change: anything but leaving `scrapped` or staying put.
pub fn check_lot_transition(id: &str, from: LotStatus, to: LotStatus) -> Result<(), LotTransitionError> {
    if from == to {
        Err(LotTransitionError::Already {
            id: id.to_owned(),
            status: from,
        })
    } else if from == LotStatus::Scrapped {
        Err(LotTransitionError::Scrapped { id: id.to_owned() })
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
        let e = check_transition("WO-1", Created, Running)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "work order `WO-1` cannot go from created to running: release it first"
        );
        let e = check_transition("WO-1", Completed, Running)
            .unwrap_err()
            .to_string();
        assert!(e.ends_with("it is completed, which is final"), "{e}");
        let e = check_transition("WO-1", Running, Running)
            .unwrap_err()
            .to_string();
        assert!(e.ends_with("it is already running"), "{e}");
        let e = check_transition("WO-1", Running, Released)
            .unwrap_err()
            .to_string();
        assert!(
            e.ends_with("from running it can go to held or completed or cancelled"),
            "{e}"
        );
    }
}
