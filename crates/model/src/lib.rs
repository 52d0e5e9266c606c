//! Backplane's core data types. Everything that flows through the gateway is described here,
//! and nothing here does I/O, so every other crate can depend on it.
//!
//! Layout:
//! - [`value`]: [`Value`] and [`DataType`], with explicit, checked conversions.
//! - [`quality`]: [`Quality`] (good / uncertain / bad with a reason) and its lossless mapping
//!   to OPC UA StatusCodes.
//! - [`timestamp`]: [`Timestamp`], UTC nanoseconds, RFC 3339 on the wire.
//! - [`asset`]: ISA-95 [`Level`]s, [`AssetPath`] and slug / attribute-name validation.
//! - [`units`]: the documented set of engineering units and conversions between them.
//! - [`model`]: [`Model`]s (typed templates of equipment) and their [`Attribute`]s.
//! - [`transform`]: the transforms an instance binding applies to a raw reading.
//! - [`fnv`]: FNV-1a, a hash that stays the same across runs and versions.
//! - [`decimal`]: decimal rounding of floats (the `round` transform) and decimal places.
//! - [`inverse`]: the inverse of a transform chain, for writes back to a device.
//! - [`context`]: production [`Context`] (work order, batch, ...) and patches to it.
//! - [`sample`]: interned [`TagId`]s, [`Sample`]s and [`Event`]s.
//! - [`wire`]: the binary encoding of Backplane's own files (varints, a bounds-checked
//!   [`wire::Cursor`], the [`Value`] codec), shared by the engine's buffer and the historian.

pub mod asset;
pub mod context;
pub mod decimal;
pub mod fnv;
pub mod inverse;
pub mod limits;
pub mod model;
pub mod quality;
pub mod sample;
pub mod timestamp;
pub mod transform;
pub mod units;
pub mod value;
pub mod wire;

pub use asset::{AssetPath, Level, NameError};
pub use context::{Context, ContextField, ContextPatch};
pub use limits::{LimitLevel, Limits};
pub use model::{Attribute, Model};
pub use quality::{BadReason, Quality, UncertainReason};
pub use sample::{Event, EventKind, Sample, TagId};
pub use timestamp::Timestamp;
pub use transform::{Deadband, DecodeType, Transform, WordOrder};
pub use units::Unit;
pub use value::{ConversionError, DataType, ScalarType, Value};
