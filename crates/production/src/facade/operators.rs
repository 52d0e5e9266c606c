//! Operators signing in and out, and the `operator` context of their assets.

use backplane_model::{AssetPath, ContextField, ContextPatch, Timestamp};

use super::{Outcome, Production, check_id};
use crate::error::CommandError;
use crate::orders::SignIn;

impl Production {
    /// Signs `operator` in at `asset` (moving them if signed in elsewhere) and sets the
    /// `operator` context there.
    pub fn sign_in(
        &mut self,
        operator: &str,
        name: Option<&str>,
        asset: &str,
        time: Timestamp,
        out: &mut Outcome,
    ) -> Result<SignIn, CommandError> {
        let id = check_id("operator", operator)?;
        let name = name.map(|n| check_id("name", n)).transpose()?;
        let asset = self.resolve_asset("asset", asset)?;
        self.seen(time);
        if let Some(pos) = self.st.operators.iter().position(|s| s.operator == id) {
            let old = self.st.operators.remove(pos);
            if old.asset != asset {
                self.restore_operator_context(&old.asset, out);
            }
        }
        let sign_in = SignIn {
            operator: id.clone(),
            name,
            asset: asset.clone(),
            since: time,
        };
        self.st.operators.push(sign_in.clone());
        out.patch(&asset, ContextPatch::default().set(ContextField::Operator, &id));
        Ok(sign_in)
    }

    /// Signs `operator` out; the `operator` context of their asset goes to whoever signed
    /// in there last, or is cleared.
    pub fn sign_out(
        &mut self,
        operator: &str,
        time: Timestamp,
        out: &mut Outcome,
    ) -> Result<SignIn, CommandError> {
        let Some(pos) = self.st.operators.iter().position(|s| &*s.operator == operator) else {
            return Err(CommandError::not_found(
                "operator",
                format!("operator `{operator}` is not signed in"),
            ));
        };
        self.seen(time);
        let old = self.st.operators.remove(pos);
        self.restore_operator_context(&old.asset, out);
        Ok(old)
    }

    fn restore_operator_context(&self, asset: &AssetPath, out: &mut Outcome) {
        let patch = match self.st.operators.iter().rev().find(|s| &s.asset == asset) {
            Some(s) => ContextPatch::default().set(ContextField::Operator, &s.operator),
            None => ContextPatch::default().clear(ContextField::Operator),
        };
        out.patch(asset, patch);
    }
}
