//! Deciding a configuration reload (SIGHUP, or `POST /api/v1/admin/reload`): the new file is
//! loaded and checked like `backplane check`; a configuration with errors, or one that
//! changes what the running process cannot take over (`[gateway]`, `[api]`), is refused and
//! the running one stays; otherwise the changes are what `backplane plan` prints.

use std::path::Path;

use backplane_config::Plan;
use backplane_config::diff::{Change, diff};
use backplane_engine::Registry;

/// What a reload decided.
#[derive(Debug)]
pub enum Decision {
    /// The file says what is running: nothing to do.
    Unchanged,
    /// The new configuration has errors (each one): not applied, the running one stays.
    Invalid(Vec<String>),
    /// Valid, but some of its changes only a restart applies ([`refusals`] says which):
    /// not applied, the running configuration stays. Every change, for `plan` to show.
    Refused(Vec<Change>),
    /// Apply: the new plan and what changes.
    Apply(Box<Plan>, Vec<Change>),
}

/// Loads `path` and compares it with `running` (bindings included, see
/// `Topology::bound_plan`).
pub fn decide(path: &Path, registry: &Registry, running: &Plan) -> Decision {
    let new = match backplane_config::load(path, &registry.catalog()) {
        Ok(plan) => plan,
        Err(diagnostics) => return Decision::Invalid(diagnostics.iter().map(ToString::to_string).collect()),
    };
    // The users file is read with the configuration at start: a broken one refuses the
    // reload rather than leave the API with different users than the file says.
    if let Some(users) = &new.api.users
        && let Err(e) = backplane_api::users::Users::load(users)
    {
        return Decision::Invalid(vec![format!("[api] users: {e}")]);
    }
    let changes = diff(running, &new);
    if changes.is_empty() {
        return Decision::Unchanged;
    }
    if changes.iter().any(|c| c.part.needs_process_restart()) {
        return Decision::Refused(changes);
    }
    Decision::Apply(Box::new(new), changes)
}

/// What reloading from `running` to `next` does to each source and sink, one line each, as
/// `plan` and the reload answer print it.
pub fn components(running: &backplane_connector::Topology, next: Plan, registry: &Registry) -> Vec<String> {
    let next = backplane_connector::Topology::new(next);
    backplane_engine::continuity::effects(running, &next, registry)
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// Why a reload refuses `changes`: one line per change only a restart applies.
pub fn refusals(changes: &[Change]) -> Vec<String> {
    changes
        .iter()
        .filter(|c| c.part.needs_process_restart())
        .map(|c| format!("{c} — takes effect when the gateway restarts, not on a reload"))
        .collect()
}
