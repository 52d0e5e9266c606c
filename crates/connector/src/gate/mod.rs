//! The write gate: the one door through which anything writes to a machine. The API and
//! sinks that take commands (Sparkplug DCMD) get a [`WriteGate`], never the raw
//! [`WritePath`]. For each attempt it checks, in this order, and refuses with the rule it
//! broke:
//!
//! 1. the tag exists;
//! 2. the identity is authenticated (never anonymous);
//! 3. the attribute is allowlisted (`[models.NAME.writes.ATTRIBUTE]`), and the asset does
//!    not narrow it away (`writes` in `[[assets]]`);
//! 4. the identity's role is at least the rule's;
//! 5. the value has the attribute's type;
//! 6. it is within the attribute's range;
//! 7. it is at most `max_step` from the latest good value;
//! 8. `min_interval` has passed since the last accepted write;
//! 9. every interlock holds on a good, fresh value;
//! 10. the binding's transforms can be inverted into a raw value.
//!
//! A dry run stops there and says what raw value would go to which source and address.
//! Otherwise the acceptance is recorded in the audit trail *before* the write (a trail that
//! cannot be written refuses the write), the raw value goes through the [`WritePath`], and
//! the value read back, transformed forward, must equal the value asked for within one raw
//! step. Every attempt ends in one audit record (`action = "write"`) with its outcome.
//!
//! Layout: `checks` (the pure checks), `report` (what an attempt answers).

mod checks;
mod report;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use backplane_config::WriteRule;
use backplane_model::inverse::matches_requested;
use backplane_model::transform::apply_chain;
use backplane_model::{Sample, TagId, Timestamp, Value};
use backplane_security::{AuditEvent, AuditTrail, AuthMethod, Identity};

use crate::topology::{TagInfo, Topology};
use crate::writes::{WriteError, WritePath};

pub use report::{Failure, Rule, Status, WriteReport};

/// The latest sample of each tag and the raw reading behind it; the engine's cache.
pub trait LatestReadings: Send + Sync + fmt::Debug {
    fn latest(&self, tag: TagId) -> Option<(Sample, Option<Value>)>;
}

/// For gates with no pipeline behind them (sink test harnesses): nothing has a value, so
/// every rule that needs one refuses.
#[derive(Debug)]
pub struct NoReadings;

impl LatestReadings for NoReadings {
    fn latest(&self, _tag: TagId) -> Option<(Sample, Option<Value>)> {
        None
    }
}

/// One write attempt.
#[derive(Clone, Debug)]
pub struct MachineWrite {
    /// `asset/attribute`, the tag's path.
    pub tag: String,
    /// In engineering terms (the attribute's type and unit).
    pub value: Value,
    /// Check everything, write nothing.
    pub dry_run: bool,
    /// Who asks: an authenticated identity (the API's caller, a sink's configured one).
    pub who: Identity,
    /// Where from, for the audit record: `http 10.0.0.7:51234`, `sparkplug sink spb`.
    pub from: String,
}

/// The gate; cheap to clone. A configuration reload points it at the next engine's
/// topology, write path and latest values ([`WriteGate::retarget`]), so a component that
/// keeps running across the reload keeps writing through the same gate.
#[derive(Clone, Debug)]
pub struct WriteGate {
    door: Arc<std::sync::RwLock<Door>>,
}

/// The gate for one engine.
#[derive(Clone, Debug)]
struct Door {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    topology: Arc<Topology>,
    path: WritePath,
    latest: Arc<dyn LatestReadings>,
    audit: Option<AuditTrail>,
    /// When each tag's last write was accepted, for `min_interval`. Only allowlisted tags
    /// that passed every check get an entry, so it is bounded by the allowlist.
    accepted: Mutex<HashMap<TagId, Instant>>,
}

/// What the checks settled for an accepted write.
struct Accepted<'t> {
    info: &'t TagInfo,
    rule: &'t WriteRule,
    raw: Value,
    resolution: f64,
}

impl WriteGate {
    /// `audit`: the gateway's trail (`None`: attempts are only logged).
    pub fn new(
        topology: Arc<Topology>,
        path: WritePath,
        latest: Arc<dyn LatestReadings>,
        audit: Option<AuditTrail>,
    ) -> WriteGate {
        WriteGate {
            door: Arc::new(std::sync::RwLock::new(Door::new(topology, path, latest, audit))),
        }
    }

    /// For the engine, at a configuration reload: writes from now on are checked against
    /// `topology` and go through `path`; a write already under way finishes where it
    /// started. The audit trail stays; `min_interval` counts afresh.
    pub fn retarget(&self, topology: Arc<Topology>, path: WritePath, latest: Arc<dyn LatestReadings>) {
        let mut door = self
            .door
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let audit = door.inner.audit.clone();
        *door = Door::new(topology, path, latest, audit);
    }

    /// Checks, and unless it is a dry run writes, one value. Never panics; every attempt
    /// is logged and recorded in the audit trail.
    pub async fn write(&self, request: MachineWrite) -> WriteReport {
        // A poisoned lock only means a panic elsewhere while swapping one field.
        let door = self
            .door
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        door.write(request).await
    }
}

impl Door {
    fn new(
        topology: Arc<Topology>,
        path: WritePath,
        latest: Arc<dyn LatestReadings>,
        audit: Option<AuditTrail>,
    ) -> Door {
        Door {
            inner: Arc::new(Inner {
                topology,
                path,
                latest,
                audit,
                accepted: Mutex::new(HashMap::new()),
            }),
        }
    }

    async fn write(&self, request: MachineWrite) -> WriteReport {
        let inner = &self.inner;
        let info = inner.topology.tag_by_path(&request.tag);
        let latest = info.and_then(|i| inner.latest.latest(i.id));
        let mut report = WriteReport {
            // An unknown path is whatever the caller sent: bounded before it is recorded.
            tag: bounded(&request.tag),
            status: Status::DryRun,
            old: latest.as_ref().and_then(|(s, _)| s.value.clone()),
            new: request.value.clone(),
            raw: None,
            source: None,
            address: None,
            read_back: None,
            audit: None,
        };
        let accepted = match self.check(&request, info, latest.as_ref(), &mut report) {
            Ok(a) => a,
            Err((rule, reason)) => {
                report.status = Status::Refused { rule, reason };
                self.finish(&request, &mut report);
                return report;
            }
        };
        report.raw = Some(accepted.raw.clone());
        if request.dry_run {
            self.finish(&request, &mut report);
            return report;
        }
        let previous = match self.reserve(accepted.info.id, accepted.rule) {
            Ok(previous) => previous,
            Err((rule, reason)) => {
                report.status = Status::Refused { rule, reason };
                self.finish(&request, &mut report);
                return report;
            }
        };
        // The record of an accepted write exists before the machine is touched.
        report.status = Status::Done;
        if let Err(e) = self.record(&request, "write.accepted", &report) {
            self.release(accepted.info.id, previous);
            report.status = Status::Refused {
                rule: Rule::Audit,
                reason: e,
            };
            self.finish(&request, &mut report);
            return report;
        }
        report.status = self.carry_out(&accepted, &mut report).await;
        self.finish(&request, &mut report);
        report
    }

    fn check<'t>(
        &'t self,
        request: &MachineWrite,
        info: Option<&'t TagInfo>,
        latest: Option<&(Sample, Option<Value>)>,
        report: &mut WriteReport,
    ) -> Result<Accepted<'t>, checks::Refusal> {
        let topology = &self.inner.topology;
        let info = info.ok_or_else(|| (Rule::UnknownTag, format!("no tag `{}`", report.tag)))?;
        if request.who.method == AuthMethod::Anonymous {
            return Err((
                Rule::Anonymous,
                "machine writes need an authenticated identity".to_owned(),
            ));
        }
        let attribute = &info.attribute;
        let model = topology.model_name(info);
        let rule = topology.plan.write_rule(model, &attribute.name).ok_or_else(|| {
            (
                Rule::NotAllowlisted,
                format!(
                    "`{}` of model `{}` is not in the write allowlist ([models.{}.writes.{}])",
                    attribute.name, model, model, attribute.name
                ),
            )
        })?;
        let asset = &topology.assets[info.asset];
        if let Some(allowed) = &asset.writes
            && !allowed.contains(&attribute.name)
        {
            return Err((
                Rule::NotAllowlisted,
                format!(
                    "asset `{}` allows writes to {} only (`writes` in its [[assets]] entry)",
                    asset.path,
                    if allowed.is_empty() {
                        "nothing".to_owned()
                    } else {
                        allowed.join(", ")
                    }
                ),
            ));
        }
        if !request.who.role.allows(rule.role) {
            return Err((
                Rule::Role,
                format!(
                    "{} may not write `{}`: it needs the {} role",
                    request.who, attribute.name, rule.role
                ),
            ));
        }
        let value = checks::typed(attribute, &request.value)?;
        report.new = value.clone();
        checks::in_range(attribute, &value)?;
        checks::step(rule, latest.map(|(s, _)| s), &value)?;
        checks::interval(rule, self.since_accepted(info.id))?;
        checks::interlocks(rule, Timestamp::now(), |name| {
            let tag = topology.tag_by_path(&format!("{}/{name}", asset.path))?;
            self.inner.latest.latest(tag.id).map(|(s, _)| s)
        })?;
        let (Some(binding), Some(source)) = (&info.binding, info.source) else {
            return Err((
                Rule::NoInverse,
                format!("`{}` is not bound to a source address", request.tag),
            ));
        };
        report.source = topology.sources.get(source as usize).map(|s| s.name.clone());
        report.address = Some(binding.address.to_string());
        let raw = checks::inverse(
            &binding.transforms,
            &value,
            latest.and_then(|(_, raw)| raw.as_ref()),
        )?;
        Ok(Accepted {
            info,
            rule,
            raw: raw.raw,
            resolution: raw.resolution,
        })
    }

    /// The raw write, then the read-back check.
    async fn carry_out(&self, accepted: &Accepted<'_>, report: &mut WriteReport) -> Status {
        let read_back = match self
            .inner
            .path
            .write_raw(accepted.info.id, accepted.raw.clone())
            .await
        {
            Ok(r) => r,
            Err(e) => {
                let failure = match e {
                    WriteError::Timeout(_) => Failure::Timeout,
                    _ => Failure::Device,
                };
                return Status::Failed {
                    failure,
                    reason: e.to_string(),
                };
            }
        };
        let transforms = accepted
            .info
            .binding
            .as_ref()
            .map_or(&[][..], |b| &b.transforms[..]);
        let forward = read_back.as_ref().map(|raw| apply_chain(transforms, raw));
        if let Some(Ok(v)) = &forward {
            report.read_back = Some(v.clone());
        }
        if !accepted.rule.verify {
            return Status::Done;
        }
        let mismatch = |reason: String| Status::Failed {
            failure: Failure::ReadBack,
            reason,
        };
        match forward {
            None => mismatch("written, but nothing could be read back to verify it".to_owned()),
            Some(Err(e)) => mismatch(format!("the value read back does not transform: {e}")),
            Some(Ok(v)) if matches_requested(&report.new, &v, accepted.resolution) => Status::Done,
            Some(Ok(v)) => mismatch(format!(
                "read back {v} (raw {}), asked for {}",
                read_back.map_or_else(String::new, |r| r.to_string()),
                report.new
            )),
        }
    }

    fn since_accepted(&self, tag: TagId) -> Option<std::time::Duration> {
        let accepted = self.inner.accepted.lock().unwrap_or_else(|p| p.into_inner());
        accepted.get(&tag).map(Instant::elapsed)
    }

    /// Checks `min_interval` again and claims the slot in one step, so two concurrent
    /// writes cannot both pass it. Returns the previous claim, to give back on refusal.
    fn reserve(&self, tag: TagId, rule: &WriteRule) -> Result<Option<Instant>, checks::Refusal> {
        let mut accepted = self.inner.accepted.lock().unwrap_or_else(|p| p.into_inner());
        checks::interval(rule, accepted.get(&tag).map(Instant::elapsed))?;
        Ok(accepted.insert(tag, Instant::now()))
    }

    fn release(&self, tag: TagId, previous: Option<Instant>) {
        let mut accepted = self.inner.accepted.lock().unwrap_or_else(|p| p.into_inner());
        match previous {
            Some(p) => accepted.insert(tag, p),
            None => accepted.remove(&tag),
        };
    }

    /// The final record and log line of an attempt.
    fn finish(&self, request: &MachineWrite, report: &mut WriteReport) {
        match self.record(request, "write", report) {
            Ok(seq) => report.audit = seq,
            Err(e) => {
                tracing::error!(tag = %report.tag, who = %request.who, error = %e, "write gate: the outcome could not be recorded");
                // A dry run answers as the real write would: refused by the audit rule.
                if report.status == Status::DryRun {
                    report.status = Status::Refused {
                        rule: Rule::Audit,
                        reason: e,
                    };
                }
            }
        }
        let who = &request.who;
        let from = &request.from;
        match &report.status {
            Status::Done => {
                tracing::info!(tag = %report.tag, %who, %from, new = %report.new, raw = ?report.raw, read_back = ?report.read_back, "write gate: written")
            }
            Status::DryRun => {
                tracing::info!(tag = %report.tag, %who, %from, new = %report.new, raw = ?report.raw, "write gate: dry run")
            }
            Status::Refused { rule, reason } => {
                tracing::warn!(tag = %report.tag, %who, %from, new = %report.new, %rule, %reason, "write gate: refused")
            }
            Status::Failed { reason, .. } => {
                tracing::warn!(tag = %report.tag, %who, %from, new = %report.new, %reason, "write gate: failed")
            }
        }
    }

    /// One audit record; `Ok(None)` when no trail is configured.
    fn record(
        &self,
        request: &MachineWrite,
        action: &str,
        report: &WriteReport,
    ) -> Result<Option<u64>, String> {
        let Some(trail) = &self.inner.audit else {
            return Ok(None);
        };
        let json = |v: &Value| serde_json::to_value(v).ok();
        let event = AuditEvent {
            who: Some(request.who.clone()),
            from: request.from.clone(),
            action: action.to_owned(),
            target: report.tag.clone(),
            old: report.old.as_ref().and_then(json),
            new: json(&report.new),
            outcome: report.status.outcome(),
        };
        trail.0.record(event).map(Some).map_err(|e| e.to_string())
    }
}

/// Longest tag text kept in a report and the audit trail; real tag paths are far shorter.
const MAX_TAG_TEXT: usize = 512;

fn bounded(text: &str) -> String {
    if text.len() <= MAX_TAG_TEXT {
        return text.to_owned();
    }
    let mut end = MAX_TAG_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}
