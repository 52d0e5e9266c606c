//! Context rules: a context field set from an attribute's value, and for rules that name
//! a material, the lots it opens and closes and the genealogy between them.

use std::sync::Arc;

use backplane_config::production::ContextRuleSpec;
use backplane_model::sample::{ConsumedLot, EventKind, Genealogy, LotStatus};
use backplane_model::{AssetPath, ContextPatch, Timestamp, Value};

use super::{Outcome, Production, check_id, rule_key};
use crate::genealogy::Link;
use crate::orders::Lot;
use crate::states::value_text;

/// `by` of what context rules record.
const RULE: &str = "context-rule";

impl Production {
    pub(super) fn on_rule(&mut self, r: usize, value: &Value, time: Timestamp, out: &mut Outcome) {
        let (Some(rule), Some(key)) = (self.cfg.rules.get(r), self.cfg.rule_keys.get(r)) else {
            return;
        };
        let Some(text) = value_text(value) else { return };
        let rendered = if text.trim().is_empty() {
            None
        } else {
            Some(rule.render(&text))
        };
        let current = self.st.rules.get(key);
        if current.map(|c| &**c) == rendered.as_deref() {
            return;
        }
        let new: Option<Arc<str>> = match rendered {
            None => None,
            Some(text) => match check_id("value", &text) {
                Ok(v) => Some(v),
                // A value that cannot be context (too long, control characters) is ignored.
                Err(_) => return,
            },
        };
        let current = current.cloned();
        let rule = rule.clone();
        let key = key.clone();
        let patch = match &new {
            Some(v) => ContextPatch::default().set(rule.field, v),
            None => ContextPatch::default().clear(rule.field),
        };
        out.patch(&rule.asset, patch);
        match &new {
            Some(v) => self.st.rules.insert(key, v.clone()),
            None => self.st.rules.remove(&key),
        };
        let Some(material) = &rule.material else { return };
        if let Some(old) = &current
            && let Some(lot) = self.st.lots.get_mut(old)
            && lot.status == LotStatus::Active
        {
            lot.status = LotStatus::Complete;
            lot.updated = time;
            let change = lot.change(Some(LotStatus::Active), Some(RULE));
            out.event(&rule.asset, time, EventKind::Lot(change));
        }
        let Some(new) = new else { return };
        let previous = self.st.lots.get(&new).map(|l| l.status);
        if previous != Some(LotStatus::Active) {
            let lot = self.st.lots.entry(new.clone()).or_insert_with(|| Lot {
                id: new.clone(),
                material: material.as_str().into(),
                quantity: None,
                unit: None,
                status: LotStatus::Active,
                asset: Some(rule.asset.clone()),
                created: time,
                updated: time,
            });
            lot.status = LotStatus::Active;
            lot.updated = time;
            let change = lot.change(previous, Some(RULE));
            out.event(&rule.asset, time, EventKind::Lot(change));
        }
        // What this lot consumes: the lots open now on the assets it consumes from.
        for source in &rule.consumes {
            let open = self.open_rule_lot(source);
            if let Some(src) = open {
                self.link_by_rule(&src, &new, &rule.asset, time, out);
            }
        }
        // What consumes this lot: rules consuming from this asset with a lot open.
        let consumers: Vec<ContextRuleSpec> = self
            .cfg
            .rules
            .iter()
            .filter(|c| c.consumes.contains(&rule.asset))
            .cloned()
            .collect();
        for consumer in consumers {
            let open = self.open_rule_lot(&consumer.asset);
            if let Some(dst) = open {
                self.link_by_rule(&new, &dst, &consumer.asset, time, out);
            }
        }
    }

    /// The lot a lot-opening rule of `asset` has open.
    fn open_rule_lot(&self, asset: &AssetPath) -> Option<Arc<str>> {
        self.cfg
            .rules
            .iter()
            .filter(|r| &r.asset == asset && r.material.is_some())
            .find_map(|r| self.st.rules.get(&rule_key(asset, r.field)).cloned())
    }

    fn link_by_rule(
        &mut self,
        consumed: &Arc<str>,
        produced: &Arc<str>,
        asset: &AssetPath,
        time: Timestamp,
        out: &mut Outcome,
    ) {
        if consumed == produced || self.st.genealogy.has(consumed, produced) {
            return;
        }
        self.st.genealogy.add(Link {
            consumed: consumed.clone(),
            produced: produced.clone(),
            quantity: None,
            unit: None,
            time,
            by: Some(RULE.into()),
        });
        out.event(
            asset,
            time,
            EventKind::Genealogy(Genealogy {
                consumed: vec![ConsumedLot {
                    lot: consumed.clone(),
                    quantity: None,
                    unit: None,
                }],
                produced: produced.clone(),
                by: Some(RULE.into()),
            }),
        );
    }
}
