//! Backplane's production core: what turns raw machine signals into production facts.
//! Machine states and downtime with reasons, production counts, OEE per hour, shift and
//! work order, work orders and lots, lot genealogy, operators, operator forms and context
//! derived from tags.
//!
//! The core is pure logic, like a protocol state machine: time is always passed in as a
//! [`Timestamp`](backplane_model::Timestamp), nothing does I/O, nothing spawns. The
//! [`stage`] feeds [`Production`] from the pipeline with samples
//! ([`Production::observe`]), time ([`Production::tick`]) and commands (from the HTTP API
//! and the MQTT command topic, through [`ProductionHandle`]), and the pipeline routes what
//! comes back in an [`Outcome`]: events to publish and store like any other,
//! and context patches to apply to assets (a started work order sets `work_order` and
//! `product` on its line; a state change sets `machine_state`; a shift boundary sets
//! `shift` on the site; a context rule sets `batch`). [`Production::snapshot`] and
//! [`Production::restore`] carry the state across restarts.
//!
//! Layout, one module per concern:
//! - [`states`]: mapping raw values to PackML (or reduced) states and their OEE category;
//!   a tracker that yields state changes with exact durations.
//! - [`downtime`]: downtime records, opened and closed by state, with reasons assigned
//!   by the machine or by people, also after the fact.
//! - [`reasons`]: the downtime reason tree.
//! - [`counters`]: raw counters to increments, with rollover, reset and baseline.
//! - [`calendar`]: shifts, planned stops, hour and shift boundaries in local time.
//! - [`oee`]: per-period accumulators and the exact OEE formulas.
//! - [`orders`]: work orders and their status life cycle, lots, operators.
//! - [`genealogy`]: the lot graph and forward / backward traces.
//! - [`forms`]: validation of operator entries against their form.
//! - [`commands`]: commands as JSON messages (MQTT command topic, HTTP API) and
//!   [`Production::execute`].
//! - [`error`]: why a command was refused.
//! - `facade`: [`Production`], which owns all of the above, with one `impl` block per
//!   concern in a file of its own: samples and time, OEE periods, context rules, downtime
//!   reasons, work orders, lots and genealogy, operators, operator entries, snapshots and
//!   queries.
//! - [`stage`]: the pipeline's derive stage over [`Production`] and the
//!   [`ProductionHandle`] service (commands, views); [`persist`]: the saved state.
//!
//! The configuration (`[calendar]`, `[downtime_reasons]`, `[models.NAME.production]`,
//! `[forms.NAME]`, `[[context_rules]]`) is read by `backplane-config` into
//! [`backplane_config::production::ProductionSpec`]; `docs/context.md` explains the
//! behaviour and the formulas.

pub mod calendar;
pub mod commands;
pub mod counters;
pub mod downtime;
pub mod error;
mod facade;
pub mod forms;
pub mod genealogy;
pub mod oee;
pub mod orders;
pub mod persist;
pub mod reasons;
pub mod stage;
pub mod states;

pub use commands::{Command, Refusal};
pub use downtime::DowntimeRecord;
pub use error::{CommandError, ErrorKind, SnapshotError};
pub use facade::{
    EntryRecord, MAX_ENTRY_AGE_SECS, MAX_ENTRY_AHEAD_SECS, MAX_ENTRY_ID_LEN, OeeReport, Outcome, Production,
    RECENT_ENTRIES, Snapshot, StateView, Submission, Submitted, Watch,
};
pub use forms::FieldError;
pub use genealogy::{Direction, Trace};
pub use orders::{Lot, NewLot, NewWorkOrder, SignIn, WorkOrder};
pub use stage::{CommandFailed, ProductionHandle, ProductionStageKind};
pub use states::Category;
