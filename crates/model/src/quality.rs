//! Data quality, carried with every sample to every sink.
//!
//! The three classes and their reasons map onto OPC UA StatusCodes (Part 4, 7.39 and Part 6
//! Annex A) in both directions, so an OPC UA server or client on either side of Backplane
//! sees the status it would see talking to the device directly.

use std::fmt;

use serde::{Serialize, Serializer};

/// Good, uncertain or bad, with the reason for anything not good.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Quality {
    #[default]
    Good,
    Uncertain(UncertainReason),
    Bad(BadReason),
}

/// Why a value is uncertain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UncertainReason {
    /// No more specific reason.
    Unspecified,
    /// The source stopped updating; this is the last value it delivered (stale).
    LastUsableValue,
    /// The sensor reports itself as not accurate.
    SensorNotAccurate,
    /// The value is outside the attribute's engineering range.
    EngineeringUnitsExceeded,
    /// Derived from fewer good inputs than required.
    SubNormal,
    /// An initial value set before the first read.
    InitialValue,
    /// The device sent a time that cannot be read or is out of range; the gateway's time
    /// stands in for it. OPC UA has no code for this: 0x40230000 is the Uncertain severity
    /// with the sub-code of BadInvalidTimestamp, so OPC UA clients see an uncertain value.
    SourceTimeInvalid,
}

/// Why a value is bad.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BadReason {
    /// No more specific reason.
    Unspecified,
    /// The connection to the device failed or was lost.
    CommFailure,
    /// The device has not been reached since the source started.
    NotConnected,
    /// The device did not answer in time.
    Timeout,
    /// The configuration of this value is wrong (e.g. a raw value the enum map lacks).
    ConfigError,
    /// The raw value could not be converted to the attribute's type.
    TypeMismatch,
    /// The raw value is outside what the transform chain accepts.
    OutOfRange,
    /// The device reports a fault of its own (e.g. a Modbus exception response).
    DeviceFailure,
    /// The device reports a failed sensor.
    SensorFailure,
    /// The source or the device is disabled / out of service.
    OutOfService,
    /// Nothing has been read yet.
    WaitingForInitialData,
}

const UNCERTAIN_CODES: [(UncertainReason, u32, &str); 7] = [
    (UncertainReason::Unspecified, 0x4000_0000, "uncertain"),
    (UncertainReason::LastUsableValue, 0x4090_0000, "last_usable_value"),
    (
        UncertainReason::SensorNotAccurate,
        0x4093_0000,
        "sensor_not_accurate",
    ),
    (
        UncertainReason::EngineeringUnitsExceeded,
        0x4094_0000,
        "engineering_units_exceeded",
    ),
    (UncertainReason::SubNormal, 0x4095_0000, "sub_normal"),
    (UncertainReason::InitialValue, 0x4092_0000, "initial_value"),
    (
        UncertainReason::SourceTimeInvalid,
        0x4023_0000,
        "source_time_invalid",
    ),
];

const BAD_CODES: [(BadReason, u32, &str); 11] = [
    (BadReason::Unspecified, 0x8000_0000, "bad"),
    (BadReason::CommFailure, 0x8005_0000, "comm_failure"),
    (BadReason::NotConnected, 0x808A_0000, "not_connected"),
    (BadReason::Timeout, 0x800A_0000, "timeout"),
    (BadReason::ConfigError, 0x8089_0000, "config_error"),
    (BadReason::TypeMismatch, 0x8074_0000, "type_mismatch"),
    (BadReason::OutOfRange, 0x803C_0000, "out_of_range"),
    (BadReason::DeviceFailure, 0x808B_0000, "device_failure"),
    (BadReason::SensorFailure, 0x808C_0000, "sensor_failure"),
    (BadReason::OutOfService, 0x808D_0000, "out_of_service"),
    (
        BadReason::WaitingForInitialData,
        0x8032_0000,
        "waiting_for_initial_data",
    ),
];

impl Quality {
    pub fn is_good(self) -> bool {
        matches!(self, Quality::Good)
    }

    pub fn is_bad(self) -> bool {
        matches!(self, Quality::Bad(_))
    }

    /// `good`, `uncertain` or `bad`.
    pub fn class(self) -> &'static str {
        match self {
            Quality::Good => "good",
            Quality::Uncertain(_) => "uncertain",
            Quality::Bad(_) => "bad",
        }
    }

    /// The reason in snake_case, `None` for good.
    pub fn reason(self) -> Option<&'static str> {
        match self {
            Quality::Good => None,
            Quality::Uncertain(r) => UNCERTAIN_CODES.iter().find(|c| c.0 == r).map(|c| c.2),
            Quality::Bad(r) => BAD_CODES.iter().find(|c| c.0 == r).map(|c| c.2),
        }
    }

    /// The quality named by its JSON form: the class (`good`, `uncertain`, `bad`) and the
    /// reason in snake_case as [`reason`](Self::reason) gives it. An unknown or absent
    /// reason is the class's unspecified one; `None` for an unknown class.
    pub fn from_names(class: &str, reason: Option<&str>) -> Option<Quality> {
        match class {
            "good" => Some(Quality::Good),
            "uncertain" => Some(Quality::Uncertain(
                reason
                    .and_then(|r| UNCERTAIN_CODES.iter().find(|c| c.2 == r))
                    .map_or(UncertainReason::Unspecified, |c| c.0),
            )),
            "bad" => Some(Quality::Bad(
                reason
                    .and_then(|r| BAD_CODES.iter().find(|c| c.2 == r))
                    .map_or(BadReason::Unspecified, |c| c.0),
            )),
            _ => None,
        }
    }

    /// The OPC UA StatusCode (severity and sub-code; info bits zero).
    pub fn to_status_code(self) -> u32 {
        match self {
            Quality::Good => 0,
            Quality::Uncertain(r) => UNCERTAIN_CODES
                .iter()
                .find(|c| c.0 == r)
                .map_or(0x4000_0000, |c| c.1),
            Quality::Bad(r) => BAD_CODES.iter().find(|c| c.0 == r).map_or(0x8000_0000, |c| c.1),
        }
    }

    /// Maps an OPC UA StatusCode to a quality. Info bits are ignored; sub-codes Backplane has
    /// no reason for map to the unspecified reason of their severity class, so the class is
    /// never lost.
    pub fn from_status_code(code: u32) -> Quality {
        let sub = code & 0xFFFF_0000;
        match code >> 30 {
            0 => Quality::Good,
            1 => Quality::Uncertain(
                UNCERTAIN_CODES
                    .iter()
                    .find(|c| c.1 == sub)
                    .map_or(UncertainReason::Unspecified, |c| c.0),
            ),
            _ => Quality::Bad(
                BAD_CODES
                    .iter()
                    .find(|c| c.1 == sub)
                    .map_or(BadReason::Unspecified, |c| c.0),
            ),
        }
    }
}

impl fmt::Display for Quality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason() {
            Some(reason) => write!(f, "{} ({reason})", self.class()),
            None => f.write_str(self.class()),
        }
    }
}

/// JSON form: the class alone (`"good"`, `"uncertain"`, `"bad"`), so consumers can filter on
/// it; payloads carry the reason in a separate `quality_reason` field (see `docs/payloads.md`).
impl Serialize for Quality {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.class())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_round_trips_through_its_status_code() {
        let all = std::iter::once(Quality::Good)
            .chain(UNCERTAIN_CODES.iter().map(|c| Quality::Uncertain(c.0)))
            .chain(BAD_CODES.iter().map(|c| Quality::Bad(c.0)));
        for q in all {
            assert_eq!(Quality::from_status_code(q.to_status_code()), q, "{q}");
        }
    }

    #[test]
    fn every_quality_round_trips_through_its_names() {
        let all = std::iter::once(Quality::Good)
            .chain(UNCERTAIN_CODES.iter().map(|c| Quality::Uncertain(c.0)))
            .chain(BAD_CODES.iter().map(|c| Quality::Bad(c.0)));
        for q in all {
            assert_eq!(Quality::from_names(q.class(), q.reason()), Some(q), "{q}");
        }
        assert_eq!(
            Quality::from_names("bad", Some("nonsense")),
            Some(Quality::Bad(BadReason::Unspecified))
        );
        assert_eq!(Quality::from_names("fine", None), None);
    }

    #[test]
    fn unknown_status_codes_keep_their_severity_class() {
        // BadNodeIdUnknown has no Backplane reason of its own.
        assert_eq!(
            Quality::from_status_code(0x8034_0000),
            Quality::Bad(BadReason::Unspecified)
        );
        // UncertainDataSubNormal with info bits set.
        assert_eq!(
            Quality::from_status_code(0x4095_0400),
            Quality::Uncertain(UncertainReason::SubNormal)
        );
        // GoodClamped (0x00300000) is still good.
        assert_eq!(Quality::from_status_code(0x0030_0000), Quality::Good);
    }

    #[test]
    fn comm_failure_maps_to_bad_communication_error() {
        assert_eq!(Quality::Bad(BadReason::CommFailure).to_status_code(), 0x8005_0000);
    }
}
