//! Lots, their status, the genealogy between them and traces through it.

use std::sync::Arc;

use backplane_model::sample::{ConsumedLot, EventKind, Genealogy, LotStatus};
use backplane_model::{AssetPath, Timestamp};

use super::{Outcome, Production, check_id, check_quantity, check_unit};
use crate::error::CommandError;
use crate::genealogy::{Direction, Link, Trace};
use crate::orders::{Lot, NewLot, check_lot_transition};

impl Production {
    fn lot_asset(&self, lot: &Lot) -> Option<AssetPath> {
        lot.asset.clone().or_else(|| self.cfg.site.clone())
    }

    /// Creates a lot (default status `active`).
    pub fn create_lot(
        &mut self,
        new: NewLot,
        by: Option<&str>,
        time: Timestamp,
        out: &mut Outcome,
    ) -> Result<Lot, CommandError> {
        let id = check_id("id", &new.id)?;
        let material = check_id("material", &new.material)?;
        let quantity = check_quantity("quantity", new.quantity)?;
        let unit = check_unit("unit", new.unit.as_deref())?;
        let asset = match &new.asset {
            Some(text) => Some(self.resolve_asset("asset", text)?),
            None => None,
        };
        if let Some(by) = by {
            check_id("by", by)?;
        }
        if self.st.lots.contains_key(&id) {
            return Err(CommandError::conflict("id", format!("lot `{id}` exists already")));
        }
        self.seen(time);
        let lot = Lot {
            id: id.clone(),
            material,
            quantity,
            unit,
            status: new.status.unwrap_or(LotStatus::Active),
            asset,
            created: time,
            updated: time,
        };
        if let Some(asset) = self.lot_asset(&lot) {
            out.event(&asset, time, EventKind::Lot(lot.change(None, by)));
        }
        self.st.lots.insert(id, lot.clone());
        Ok(lot)
    }

    /// Changes a lot's status (anything but leaving `scrapped`).
    pub fn set_lot_status(
        &mut self,
        id: &str,
        status: LotStatus,
        by: Option<&str>,
        time: Timestamp,
        out: &mut Outcome,
    ) -> Result<Lot, CommandError> {
        let Some(lot) = self.st.lots.get(id) else {
            return Err(CommandError::not_found("id", format!("no lot `{id}`")));
        };
        check_lot_transition(id, lot.status, status)
            .map_err(|e| CommandError::invalid("status", e.to_string()))?;
        if let Some(by) = by {
            check_id("by", by)?;
        }
        let asset = self.lot_asset(lot);
        self.seen(time);
        let Some(lot) = self.st.lots.get_mut(id) else {
            return Err(CommandError::not_found("id", format!("no lot `{id}`")));
        };
        let previous = lot.status;
        lot.status = status;
        lot.updated = time;
        let lot = lot.clone();
        if let Some(asset) = asset {
            out.event(&asset, time, EventKind::Lot(lot.change(Some(previous), by)));
        }
        Ok(lot)
    }

    /// Records that `consumed` lots went into `produced`. Every lot must exist.
    pub fn record_genealogy(
        &mut self,
        consumed: &[ConsumedLot],
        produced: &str,
        by: Option<&str>,
        time: Timestamp,
        out: &mut Outcome,
    ) -> Result<(), CommandError> {
        let Some(target) = self.st.lots.get(produced) else {
            return Err(CommandError::not_found(
                "produced",
                format!("no lot `{produced}`: create it first"),
            ));
        };
        if consumed.is_empty() {
            return Err(CommandError::invalid(
                "consumed",
                "`consumed` is empty: name at least one lot",
            ));
        }
        let mut checked = Vec::with_capacity(consumed.len());
        for (i, c) in consumed.iter().enumerate() {
            let field = format!("consumed[{i}]");
            if !self.st.lots.contains_key(&c.lot) {
                return Err(CommandError::not_found(
                    &format!("{field}.lot"),
                    format!("no lot `{}`: create it first", c.lot),
                ));
            }
            if &*c.lot == produced {
                return Err(CommandError::invalid(
                    &format!("{field}.lot"),
                    format!("lot `{produced}` cannot consume itself"),
                ));
            }
            if consumed[..i].iter().any(|o| o.lot == c.lot) {
                return Err(CommandError::invalid(
                    &format!("{field}.lot"),
                    format!("lot `{}` is listed twice; give its total quantity once", c.lot),
                ));
            }
            let quantity = check_quantity(&format!("{field}.quantity"), c.quantity)?;
            let unit = check_unit(&format!("{field}.unit"), c.unit.as_deref())?;
            checked.push(ConsumedLot {
                lot: c.lot.clone(),
                quantity,
                unit,
            });
        }
        if let Some(by) = by {
            check_id("by", by)?;
        }
        let asset = self.lot_asset(target);
        let produced: Arc<str> = target.id.clone();
        self.seen(time);
        for c in &checked {
            self.st.genealogy.add(Link {
                consumed: c.lot.clone(),
                produced: produced.clone(),
                quantity: c.quantity,
                unit: c.unit.clone(),
                time,
                by: by.map(Into::into),
            });
        }
        if let Some(asset) = asset {
            out.event(
                &asset,
                time,
                EventKind::Genealogy(Genealogy {
                    consumed: checked,
                    produced,
                    by: by.map(Into::into),
                }),
            );
        }
        Ok(())
    }

    fn trace(&self, lot: &str, direction: Direction, depth: u32) -> Result<Trace, CommandError> {
        if !self.st.lots.contains_key(lot) {
            return Err(CommandError::not_found("lot", format!("no lot `{lot}`")));
        }
        Ok(self.st.genealogy.trace(lot, direction, depth))
    }

    /// Where `lot` went: the lots made from it, and from those, `depth` levels deep.
    pub fn trace_forward(&self, lot: &str, depth: u32) -> Result<Trace, CommandError> {
        self.trace(lot, Direction::Forward, depth)
    }

    /// What `lot` is made of, `depth` levels deep.
    pub fn trace_backward(&self, lot: &str, depth: u32) -> Result<Trace, CommandError> {
        self.trace(lot, Direction::Backward, depth)
    }
}
