//! The live values of the tag variables, by tag index, kept beside the address space: the
//! sink stores a batch's values under one lock without a look-up by NodeId, and Read and
//! new monitored items read them here ([`crate::manager`]). The address space keeps
//! everything else (attributes, properties, context).

use opcua::types::{DataValue, NumericRange, StatusCode, TimestampsToReturn, Variant};
use parking_lot::RwLock;

/// One value per tag index.
#[derive(Debug)]
pub struct LiveValues {
    values: RwLock<Vec<DataValue>>,
}

/// What a variable reads until its first sample: no value, and a status that says so
/// (never Good). Empty, not `None`: see `value::reading`.
fn waiting() -> DataValue {
    DataValue {
        value: Some(Variant::Empty),
        status: Some(StatusCode::BadWaitingForInitialData),
        ..Default::default()
    }
}

impl LiveValues {
    pub fn new(tags: usize) -> LiveValues {
        LiveValues {
            values: RwLock::new(vec![waiting(); tags]),
        }
    }

    /// Stores values by tag index (indices out of range are ignored).
    pub fn store(&self, values: impl IntoIterator<Item = (usize, DataValue)>) {
        let mut all = self.values.write();
        for (tag, value) in values {
            if let Some(slot) = all.get_mut(tag) {
                *slot = value;
            }
        }
    }

    /// A tag's value as Read answers it: the part `range` selects, the timestamps asked
    /// for (the rules of async-opcua's `Variable::value`, which the address space applies
    /// to its own variables).
    pub fn read(&self, tag: usize, timestamps: TimestampsToReturn, range: &NumericRange) -> DataValue {
        let all = self.values.read();
        let Some(stored) = all.get(tag) else {
            return DataValue {
                status: Some(StatusCode::BadNodeIdUnknown),
                ..Default::default()
            };
        };
        let mut result = DataValue {
            value: None,
            status: None,
            source_timestamp: stored.source_timestamp,
            source_picoseconds: stored.source_picoseconds,
            server_timestamp: stored.server_timestamp,
            server_picoseconds: stored.server_picoseconds,
        };
        if let Some(value) = &stored.value {
            match value.range_of(range) {
                Ok(part) => {
                    result.value = Some(part);
                    result.status = stored.status;
                }
                Err(status) => result.status = Some(status),
            }
        }
        match timestamps {
            TimestampsToReturn::Source => {
                result.server_timestamp = None;
                result.server_picoseconds = None;
            }
            TimestampsToReturn::Server => {
                result.source_timestamp = None;
                result.source_picoseconds = None;
            }
            TimestampsToReturn::Neither | TimestampsToReturn::Invalid => {
                result.source_timestamp = None;
                result.source_picoseconds = None;
                result.server_timestamp = None;
                result.server_picoseconds = None;
            }
            TimestampsToReturn::Both => {}
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use opcua::types::DateTime;

    use super::*;

    fn stored(value: Variant) -> DataValue {
        DataValue {
            value: Some(value),
            status: Some(StatusCode::Good),
            source_timestamp: Some(DateTime::from(1_000)),
            server_timestamp: Some(DateTime::from(2_000)),
            ..Default::default()
        }
    }

    #[test]
    fn a_tag_without_a_sample_reads_waiting_for_initial_data_never_good() {
        let live = LiveValues::new(2);
        let read = live.read(1, TimestampsToReturn::Both, &NumericRange::None);
        assert_eq!(read.status, Some(StatusCode::BadWaitingForInitialData));
        assert_eq!(read.value, Some(Variant::Empty));
        let outside = live.read(2, TimestampsToReturn::Both, &NumericRange::None);
        assert_eq!(outside.status, Some(StatusCode::BadNodeIdUnknown));
    }

    #[test]
    fn a_stored_value_reads_back_with_the_timestamps_asked_for() {
        let live = LiveValues::new(3);
        live.store([
            (1, stored(Variant::Double(4.5))),
            (7, stored(Variant::Double(9.0))),
        ]);
        let both = live.read(1, TimestampsToReturn::Both, &NumericRange::None);
        assert_eq!(both, stored(Variant::Double(4.5)));
        let source = live.read(1, TimestampsToReturn::Source, &NumericRange::None);
        assert_eq!(source.source_timestamp, Some(DateTime::from(1_000)));
        assert_eq!(source.server_timestamp, None);
        let server = live.read(1, TimestampsToReturn::Server, &NumericRange::None);
        assert_eq!(server.source_timestamp, None);
        assert_eq!(server.server_timestamp, Some(DateTime::from(2_000)));
        let neither = live.read(1, TimestampsToReturn::Neither, &NumericRange::None);
        assert_eq!((neither.source_timestamp, neither.server_timestamp), (None, None));
        assert_eq!(neither.value, Some(Variant::Double(4.5)));
    }

    #[test]
    fn an_index_range_reads_its_part_of_an_array_or_says_why_not() {
        let live = LiveValues::new(1);
        live.store([(0, stored(Variant::from(vec![1u64, 2, 3])))]);
        let part = live.read(0, TimestampsToReturn::Both, &NumericRange::Range(1, 2));
        assert_eq!(part.value, Some(Variant::from(vec![2u64, 3])));
        assert_eq!(part.status, Some(StatusCode::Good));
        let outside = live.read(0, TimestampsToReturn::Both, &NumericRange::Index(7));
        assert_eq!(outside.value, None);
        assert!(outside.status.is_some_and(|s| s.is_bad()), "{outside:?}");
    }
}
