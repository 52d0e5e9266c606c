//! HistoryRead answered from the embedded historian (the store a `historian` sink keeps,
//! the one `/api/v1/history` queries): raw values, and processed values over fixed
//! intervals.
//!
//! Raw: the stored points of `[start, end)` with their source and server timestamps and the
//! StatusCode of their quality, at most `NumValuesPerNode` (0: all) and at most the
//! server's `max_history_values` per answer, then a continuation point. A start after the
//! end reads backwards (newest first, one answer). Modified values and bounds are not kept
//! by the historian: `IsReadModified` is refused, `ReturnBounds` ignored.
//!
//! Processed: one value per interval, computed by the historian itself:
//!
//! | aggregate   | historian function | note                                           |
//! |-------------|--------------------|------------------------------------------------|
//! | Average     | mean               | mean of the interval's good points            |
//! | Minimum     | min                |                                                |
//! | Maximum     | max                |                                                |
//! | Count       | count              | good points in the interval (Int32)            |
//! | TimeAverage | twa                | time-weighted, sample and hold (not the slope interpolation of Part 13) |
//!
//! An interval without a usable point is BadNoData for Average, Minimum and Maximum, 0 for
//! Count; TimeAverage holds the value from before the interval. Other aggregates answer
//! BadAggregateNotSupported.

use std::sync::Arc;
use std::time::Duration;

use backplane_historian::{AggregateQuery, Bucket, ContextFilter, Selector, SeriesInfo, Store};
use backplane_model::{DataType, Timestamp};
use opcua::types::{DataValue, DateTime, NodeId, ObjectId, StatusCode, Variant};

use crate::value::{date_time, reading};

/// Where a raw read continues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawContinuation {
    pub from: Timestamp,
}

/// The aggregates answered, by their historian function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    Average,
    Minimum,
    Maximum,
    Count,
    TimeAverage,
}

impl Aggregate {
    pub fn of(id: &NodeId) -> Option<Aggregate> {
        let all = [
            (ObjectId::AggregateFunction_Average, Aggregate::Average),
            (ObjectId::AggregateFunction_Minimum, Aggregate::Minimum),
            (ObjectId::AggregateFunction_Maximum, Aggregate::Maximum),
            (ObjectId::AggregateFunction_Count, Aggregate::Count),
            (ObjectId::AggregateFunction_TimeAverage, Aggregate::TimeAverage),
        ];
        all.into_iter()
            .find(|(f, _)| id.namespace == 0 && id.identifier == opcua::types::Identifier::Numeric(*f as u32))
            .map(|(_, a)| a)
    }

    /// The historian leaves what does not apply empty: no mean of an empty interval, but
    /// a time-weighted mean held from the value before it.
    fn value(self, bucket: &Bucket) -> Option<Variant> {
        match self {
            Aggregate::Average => bucket.mean.map(Variant::Double),
            Aggregate::Minimum => bucket.min.map(Variant::Double),
            Aggregate::Maximum => bucket.max.map(Variant::Double),
            Aggregate::TimeAverage => bucket.twa.map(Variant::Double),
            Aggregate::Count => Some(Variant::Int32(i32::try_from(bucket.count).unwrap_or(i32::MAX))),
        }
    }
}

/// The historian and how much one answer may hold.
#[derive(Debug, Clone)]
pub struct History {
    pub store: Arc<Store>,
    pub max_values: usize,
}

/// `[from, to)` of a request: a null start is the epoch, a null end is now.
pub fn range(start: &DateTime, end: &DateTime) -> (Timestamp, Timestamp) {
    let t = |d: &DateTime| backplane_opcua::value::timestamp(d);
    (
        t(start).unwrap_or(Timestamp::from_unix_nanos(0)),
        t(end).unwrap_or_else(Timestamp::now),
    )
}

fn series(store: &Store, tag_path: &str) -> Option<Arc<SeriesInfo>> {
    store
        .select(&Selector::Tags(vec![tag_path.to_owned()]))
        .into_iter()
        .next()
}

impl History {
    /// Raw values of one tag; the continuation when more remain.
    pub fn raw(
        &self,
        tag_path: &str,
        data: DataType,
        from: Timestamp,
        to: Timestamp,
        wanted: usize,
    ) -> Result<(Vec<DataValue>, Option<RawContinuation>), StatusCode> {
        let Some(series) = series(&self.store, tag_path) else {
            return Ok((Vec::new(), None));
        };
        let limit = match wanted {
            0 => self.max_values,
            n => n.min(self.max_values),
        };
        let backwards = from > to;
        let (lo, hi) = if backwards { (to, from) } else { (from, to) };
        // Backwards reads need the newest points: read what the answer may hold, newest last.
        let read_limit = if backwards { usize::MAX } else { limit };
        let found = self
            .store
            .raw(&[series], lo, hi, &ContextFilter::default(), read_limit)
            .map_err(|e| {
                tracing::warn!("OPC UA HistoryRead: {e}");
                StatusCode::BadHistoryOperationInvalid
            })?;
        let Some(points) = found.into_iter().next() else {
            return Ok((Vec::new(), None));
        };
        let as_value = |p: &backplane_historian::Point| {
            reading(p.value.as_ref(), p.quality, p.source_time, p.time, data)
        };
        if backwards {
            let values = points.points.iter().rev().take(limit).map(as_value).collect();
            return Ok((values, None));
        }
        let next = match (points.truncated, points.points.last()) {
            (true, Some(last)) => Some(RawContinuation {
                from: last.time.add_nanos(1),
            }),
            _ => None,
        };
        Ok((points.points.iter().map(as_value).collect(), next))
    }

    /// Processed values of one tag, one per interval of `every` from `from`.
    pub fn processed(
        &self,
        tag_path: &str,
        from: Timestamp,
        to: Timestamp,
        every: Duration,
        aggregate: Aggregate,
    ) -> Result<Vec<DataValue>, StatusCode> {
        if every.is_zero() || from >= to {
            return Err(StatusCode::BadInvalidArgument);
        }
        let Some(series) = series(&self.store, tag_path) else {
            return Ok(Vec::new());
        };
        let buckets = self
            .store
            .aggregate(
                &[series],
                &AggregateQuery {
                    from,
                    to,
                    every,
                    context: ContextFilter::default(),
                },
            )
            .map_err(|e| {
                tracing::warn!("OPC UA HistoryRead (processed): {e}");
                StatusCode::BadHistoryOperationInvalid
            })?;
        Ok(buckets
            .into_iter()
            .flat_map(|s| s.buckets)
            .map(|bucket| {
                let time = date_time(bucket.start);
                match aggregate.value(&bucket) {
                    Some(v) => DataValue {
                        value: Some(v),
                        status: Some(StatusCode::Good),
                        source_timestamp: Some(time),
                        server_timestamp: Some(time),
                        ..Default::default()
                    },
                    None => DataValue {
                        value: Some(Variant::Empty),
                        status: Some(StatusCode::BadNoData),
                        source_timestamp: Some(time),
                        server_timestamp: Some(time),
                        ..Default::default()
                    },
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_five_aggregates_map_to_historian_functions() {
        assert_eq!(
            Aggregate::of(&ObjectId::AggregateFunction_Average.into()),
            Some(Aggregate::Average)
        );
        assert_eq!(
            Aggregate::of(&ObjectId::AggregateFunction_TimeAverage.into()),
            Some(Aggregate::TimeAverage)
        );
        assert_eq!(
            Aggregate::of(&ObjectId::AggregateFunction_Interpolative.into()),
            None
        );
        let bucket = Bucket {
            count: 3,
            mean: Some(2.0),
            ..Default::default()
        };
        assert_eq!(Aggregate::Average.value(&bucket), Some(Variant::Double(2.0)));
        assert_eq!(Aggregate::Count.value(&bucket), Some(Variant::Int32(3)));
        assert_eq!(Aggregate::Average.value(&Bucket::default()), None);
        assert_eq!(
            Aggregate::Count.value(&Bucket::default()),
            Some(Variant::Int32(0))
        );
    }
}
