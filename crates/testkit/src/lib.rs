//! Shared setup for Backplane's integration tests; a dev-dependency only (never published).
//! It moves setup, never assertions: each test still says what it checks.
//!
//! Layout:
//! - [`engine`]: a plan from TOML text with the data in the test's own directory, an
//!   engine started on it with a short restart backoff, the latest value of a tag, and a
//!   bounded `eventually` poll.
//! - [`peers`]: the Python interpreter of the third-party protocol peers (pymodbus,
//!   asyncua, …): `BACKPLANE_PYTHON`, else the venv `scripts/install-peers` creates.
//! - [`counter`]: a source kind that counts 0, 1, 2, … as fast as the engine takes it.
//! - [`dairy`]: examples/dairy.toml with its devices swapped for built-in simulators and
//!   its periods shortened.
//! - [`fixtures`]: plan texts several crates' tests share (line 1 of the demo, the lab
//!   probe).
//! - [`probe`]: the lab probe on an engine: start, read, write through the gate; and a
//!   thread's CPU time for benches.
//! - [`net`]: free loopback ports and waiting for a port to listen.
//! - [`names`]: unique names for what tests leave on shared services.
//! - [`pki`]: a CA and the leaf certificates it signs, for TLS tests.
//! - [`dbservers`]: a private PostgreSQL or MariaDB with TLS on a free port.
//! - [`pty`]: a null-modem cable of two pseudo-terminals (socat), for serial tests.
//! - [`sink`]: a sink run alone on a scripted feed (every delivery chosen by the test,
//!   every ack and rewind seen).
//! - [`settings`]: a kind's settings parsed from TOML text, with its diagnostics.
//! - [`process`]: a gateway process started by a test, killed when it ends, and the base
//!   URL it printed.
//! - [`callgrind`]: a benchmark's window counted alone under callgrind.
//!
//! It depends on the engine (and the connector crate it re-exports), config, model and security crates (and Tokio, rcgen for test certificates, tempfile for the null modem's links) only, never on a protocol crate,
//! so every protocol crate's tests can use it.

// Test setup: failing loudly, with a message, is what it is for.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod callgrind;
pub mod counter;
pub mod dairy;
pub mod dbservers;
pub mod engine;
pub mod fixtures;
pub mod names;
pub mod net;
pub mod peers;
pub mod pki;
pub mod probe;
pub mod process;
pub mod pty;
pub mod settings;
pub mod sink;
