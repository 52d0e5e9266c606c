//! Request planning: which reads one poll cycle sends.
//!
//! [`plan_reads`] is pure: tags (unit, area, first register, length) in, reads out. Tags of
//! one unit and one area, sorted by address, are joined greedily into a read while the
//! read stays within the size limit and no hole between two tags is wider than `max_gap`.
//! For tags that do not overlap this gives the fewest reads (a greedy sweep over sorted
//! intervals with a monotone fit test is optimal); overlapping tags are joined as well.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use backplane_config::AddressError;

use crate::address::{Address, Area};
use crate::config::ModbusSettings;

/// One tag's footprint on the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub unit: u8,
    pub area: Area,
    /// Protocol address of the first register or bit.
    pub start: u16,
    /// Registers or bits, at least 1.
    pub count: u16,
}

impl Span {
    fn end(&self) -> u32 {
        u32::from(self.start) + u32::from(self.count.max(1)) - 1
    }
}

/// How large reads may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_registers: u16,
    pub max_bits: u16,
    pub max_gap: u16,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_registers: crate::frame::MAX_READ_REGISTERS,
            max_bits: crate::frame::MAX_READ_BITS,
            max_gap: 10,
        }
    }
}

/// One read and the tags it serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadBlock {
    pub unit: u8,
    pub area: Area,
    pub start: u16,
    pub count: u16,
    /// Indexes into the spans given to [`plan_reads`], in address order.
    pub members: Vec<usize>,
}

/// Joins `spans` into the fewest reads within `limits`. Blocks come out ordered by unit,
/// area and address; every span is in exactly one block. A span longer than the limit
/// gets a read of its own (the device will refuse it; configuration checks prevent it).
pub fn plan_reads(spans: &[Span], limits: Limits) -> Vec<ReadBlock> {
    let mut order: Vec<usize> = (0..spans.len()).collect();
    order.sort_by_key(|&i| {
        let s = &spans[i];
        (s.unit, s.area, s.start, std::cmp::Reverse(s.count))
    });
    let mut blocks: Vec<ReadBlock> = Vec::new();
    let mut end = 0u32;
    for i in order {
        let span = spans[i];
        let max = u32::from(if span.area.is_bits() {
            limits.max_bits
        } else {
            limits.max_registers
        })
        .max(1);
        if let Some(block) = blocks.last_mut()
            && block.unit == span.unit
            && block.area == span.area
        {
            let gap = u32::from(span.start).saturating_sub(end + 1);
            let new_end = end.max(span.end());
            if gap <= u32::from(limits.max_gap) && new_end - u32::from(block.start) < max {
                end = new_end;
                block.count = (new_end - u32::from(block.start) + 1) as u16;
                block.members.push(i);
                continue;
            }
        }
        end = span.end();
        blocks.push(ReadBlock {
            unit: span.unit,
            area: span.area,
            start: span.start,
            count: span.count.max(1),
            members: vec![i],
        });
    }
    blocks
}

/// Requests one poll cycle takes, per poll group: what `backplane check` prints and the
/// source logs when it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PollSummary {
    pub source: String,
    pub groups: Vec<GroupSummary>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupSummary {
    /// `default` for addresses without `@GROUP`.
    pub name: String,
    pub period: Duration,
    pub tags: usize,
    pub requests: usize,
}

impl PollSummary {
    pub fn tags(&self) -> usize {
        self.groups.iter().map(|g| g.tags).sum()
    }

    pub fn requests(&self) -> usize {
        self.groups.iter().map(|g| g.requests).sum()
    }

    /// Requests per second over all groups.
    pub fn requests_per_second(&self) -> f64 {
        self.groups
            .iter()
            .map(|g| g.requests as f64 / g.period.as_secs_f64().max(1e-3))
            .sum()
    }
}

impl fmt::Display for PollSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n =
            |count: usize, one: &str, many: &str| format!("{count} {}", if count == 1 { one } else { many });
        write!(
            f,
            "modbus source `{}`: {} in {} per cycle (one per tag: {}), {:.1} requests/s",
            self.source,
            n(self.tags(), "tag", "tags"),
            n(self.requests(), "request", "requests"),
            self.tags(),
            self.requests_per_second()
        )?;
        for g in &self.groups {
            write!(
                f,
                "\n  group {} every {:?}: {}, {}",
                g.name,
                g.period,
                n(g.tags, "tag", "tags"),
                n(g.requests, "request", "requests")
            )?;
        }
        Ok(())
    }
}

/// A tag the source polls: its parsed address resolved against the source's settings.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PlannedTag {
    pub index: u32,
    pub address: Address,
    pub span: Span,
}

/// An address a source cannot poll: malformed, or not valid for the source's settings.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("address `{address}`: {source}")]
pub struct PlanError {
    pub address: String,
    #[source]
    pub source: AddressError,
}

/// Parses and resolves every address; the first error is returned with its address.
pub(crate) fn resolve(
    settings: &ModbusSettings,
    addresses: &[Arc<str>],
) -> Result<Vec<PlannedTag>, PlanError> {
    addresses
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let rejected = |source| PlanError {
                address: text.to_string(),
                source,
            };
            let address = Address::parse(text).map_err(rejected)?;
            settings.check(&address).map_err(rejected)?;
            let start = address.protocol_start(settings.address_base).map_err(rejected)?;
            Ok(PlannedTag {
                index: i as u32,
                span: Span {
                    unit: settings.unit_of(&address),
                    area: address.area,
                    start,
                    count: address.count(),
                },
                address,
            })
        })
        .collect()
}

/// Group names with their periods, the default group first.
pub(crate) fn groups(settings: &ModbusSettings) -> Vec<(String, Duration)> {
    std::iter::once(("default".to_owned(), settings.period))
        .chain(settings.groups.iter().map(|(n, p)| (n.clone(), *p)))
        .collect()
}

pub(crate) fn limits(settings: &ModbusSettings) -> Limits {
    Limits {
        max_registers: settings.max_registers,
        max_bits: settings.max_bits,
        max_gap: settings.max_gap,
    }
}

/// How many requests a `modbus` source sends per poll cycle for the addresses its bindings
/// read, without connecting.
pub fn poll_summary(
    source: &str,
    settings: &ModbusSettings,
    addresses: &[&str],
) -> Result<PollSummary, PlanError> {
    let mut unique: Vec<&str> = addresses.to_vec();
    unique.sort_unstable();
    unique.dedup();
    let owned: Vec<Arc<str>> = unique.iter().map(|a| Arc::from(*a)).collect();
    let tags = resolve(settings, &owned)?;
    Ok(summarize(source, settings, &tags))
}

/// [`poll_summary`] of the `modbus` source `source` of a loaded plan, from the addresses
/// its bindings read; what `backplane check` prints.
pub fn plan_summary(
    plan: &backplane_config::Plan,
    source: &str,
    settings: &ModbusSettings,
) -> Result<PollSummary, PlanError> {
    let addresses: Vec<&str> = plan
        .assets
        .iter()
        .flat_map(|a| a.bindings.iter())
        .filter(|b| *b.source == *source)
        .map(|b| &*b.address)
        .collect();
    poll_summary(source, settings, &addresses)
}

pub(crate) fn summarize(source: &str, settings: &ModbusSettings, tags: &[PlannedTag]) -> PollSummary {
    let groups = groups(settings)
        .into_iter()
        .map(|(name, period)| {
            let spans: Vec<Span> = tags
                .iter()
                .filter(|t| t.address.group.as_deref().unwrap_or("default") == name)
                .map(|t| t.span)
                .collect();
            GroupSummary {
                requests: plan_reads(&spans, limits(settings)).len(),
                tags: spans.len(),
                name,
                period,
            }
        })
        .collect();
    PollSummary {
        source: source.to_owned(),
        groups,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use proptest::prelude::*;

    fn hr(start: u16, count: u16) -> Span {
        Span {
            unit: 1,
            area: Area::HoldingRegister,
            start,
            count,
        }
    }

    fn ranges(blocks: &[ReadBlock]) -> Vec<(u16, u16)> {
        blocks.iter().map(|b| (b.start, b.count)).collect()
    }

    #[test]
    fn adjacent_tags_share_one_read_and_wide_holes_split_reads() {
        let spans = [
            hr(100, 1),
            hr(101, 1),
            hr(102, 2),
            hr(104, 1),
            hr(106, 1),
            hr(200, 1),
        ];
        let blocks = plan_reads(
            &spans,
            Limits {
                max_gap: 10,
                ..Limits::default()
            },
        );
        assert_eq!(ranges(&blocks), [(100, 7), (200, 1)]);
        assert_eq!(blocks[0].members, [0, 1, 2, 3, 4]);
        let blocks = plan_reads(
            &spans,
            Limits {
                max_gap: 0,
                ..Limits::default()
            },
        );
        assert_eq!(ranges(&blocks), [(100, 5), (106, 1), (200, 1)]);
    }

    #[test]
    fn reads_respect_the_size_limit_and_never_split_a_tag() {
        let spans = [hr(0, 2), hr(2, 2), hr(4, 2)];
        let limits = Limits {
            max_registers: 5,
            max_gap: 0,
            ..Limits::default()
        };
        assert_eq!(ranges(&plan_reads(&spans, limits)), [(0, 4), (4, 2)]);
        // The protocol ceiling: 250 consecutive registers take two reads of 125.
        let spans: Vec<Span> = (0..250).map(|i| hr(i, 1)).collect();
        assert_eq!(
            ranges(&plan_reads(&spans, Limits::default())),
            [(0, 125), (125, 125)]
        );
    }

    #[test]
    fn units_and_areas_are_never_mixed_and_overlaps_are_joined() {
        let spans = [
            hr(10, 1),
            Span { unit: 2, ..hr(10, 1) },
            Span {
                area: Area::InputRegister,
                ..hr(11, 1)
            },
            hr(10, 2),
            Span {
                area: Area::Coil,
                ..hr(1990, 1)
            },
            Span {
                area: Area::Coil,
                ..hr(0, 1)
            },
        ];
        let blocks = plan_reads(
            &spans,
            Limits {
                max_gap: 2000,
                ..Limits::default()
            },
        );
        assert_eq!(blocks.len(), 4);
        assert_eq!(
            (blocks[0].area, blocks[0].start, blocks[0].count),
            (Area::Coil, 0, 1991)
        );
        let hr1 = blocks
            .iter()
            .find(|b| b.unit == 1 && b.area == Area::HoldingRegister)
            .unwrap();
        assert_eq!((hr1.start, hr1.count, hr1.members.len()), (10, 2, 2));
    }

    /// The fewest reads, by dynamic programming over the sorted tags: an independent
    /// reference for the greedy planner.
    fn minimum_reads(starts: &[u16], limits: Limits) -> usize {
        let mut s: Vec<u32> = starts.iter().map(|&x| u32::from(x)).collect();
        s.sort_unstable();
        s.dedup();
        let n = s.len();
        let mut best = vec![usize::MAX; n + 1];
        best[0] = 0;
        for j in 1..=n {
            for i in (0..j).rev() {
                let fits = s[j - 1] - s[i] < u32::from(limits.max_registers)
                    && s[i..j]
                        .windows(2)
                        .all(|w| w[1] - w[0] - 1 <= u32::from(limits.max_gap));
                if !fits {
                    break;
                }
                best[j] = best[j].min(best[i].saturating_add(1));
            }
        }
        best[n]
    }

    #[test]
    fn scattered_tags_are_read_in_the_minimum_number_of_requests() {
        // 60 single registers scattered over 6 clusters of a vendor map.
        let starts: Vec<u16> = (0..60u16).map(|i| (i / 10) * 1000 + (i % 10) * 7).collect();
        let spans: Vec<Span> = starts.iter().map(|&s| hr(s, 1)).collect();
        let limits = Limits {
            max_gap: 6,
            ..Limits::default()
        };
        let blocks = plan_reads(&spans, limits);
        assert_eq!(blocks.len(), 6);
        assert_eq!(blocks.len(), minimum_reads(&starts, limits));
        assert!(blocks.iter().all(|b| b.count == 64));
    }

    proptest! {
        #[test]
        fn greedy_plan_is_minimal_and_covers_every_tag(
            starts in proptest::collection::vec(0u16..2000, 1..120),
            max_gap in 0u16..40,
            max_registers in 1u16..=125,
        ) {
            let mut starts = starts;
            starts.sort_unstable();
            starts.dedup();
            let spans: Vec<Span> = starts.iter().map(|&s| hr(s, 1)).collect();
            let limits = Limits { max_registers, max_gap, ..Limits::default() };
            let blocks = plan_reads(&spans, limits);
            prop_assert_eq!(blocks.len(), minimum_reads(&starts, limits));
            let mut seen = vec![false; spans.len()];
            for b in &blocks {
                prop_assert!(b.count <= max_registers);
                for &m in &b.members {
                    prop_assert!(!seen[m]);
                    seen[m] = true;
                    prop_assert!(spans[m].start >= b.start && spans[m].end() < u32::from(b.start) + u32::from(b.count));
                }
            }
            prop_assert!(seen.iter().all(|s| *s));
        }
    }
}
