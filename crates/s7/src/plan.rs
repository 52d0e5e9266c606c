//! Request planning: which reads one poll cycle sends, sized to the negotiated PDU.
//!
//! [`plan_reads`] is pure: tags (area, first unit, length) in, requests out. Tags sorted by
//! area and address are swept once: a tag joins the current variable when it is in the same
//! area and the hole before it is at most `max_gap` bytes (overlaps always join); else it
//! opens a new variable in the current request; the request is closed when that would
//! break a limit: [`MAX_ITEMS`] variables, the request's ANY
//! pointers, or the answer (header, 4 bytes per variable, data, fill bytes) within the PDU.
//! Every limit only grows as tags are added, and the tag a request stops before is never
//! inside a variable of that request (such a tag joins at no cost), so this greedy sweep
//! sends the fewest requests among plans that read each request's tags as consecutive
//! address runs; the property test below checks it against an exhaustive dynamic program.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use backplane_config::AddressError;

use crate::address::{Address, Area};
use crate::frame::{
    ItemSpec, MAX_ITEMS, READ_ANSWER_FIXED, READ_ANSWER_PER_ITEM, READ_REQUEST_FIXED, READ_REQUEST_PER_ITEM,
};

/// One tag's footprint: area units (bytes, or timers/counters) from `start`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub area: Area,
    pub start: u32,
    pub len: u32,
}

impl Span {
    fn end(&self) -> u32 {
        self.start + self.len.max(1)
    }

    fn bytes(&self) -> usize {
        (self.len.max(1) * self.area.unit_bytes()) as usize
    }
}

/// The sizes a plan must respect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The negotiated PDU size.
    pub pdu: u16,
    /// Unread bytes a variable may span to join two tags.
    pub max_gap: u32,
    pub max_items: usize,
}

impl Limits {
    /// The most data bytes one variable can bring back.
    pub fn max_item_bytes(&self) -> usize {
        usize::from(self.pdu).saturating_sub(READ_ANSWER_FIXED + READ_ANSWER_PER_ITEM)
    }
}

/// One variable of a read and the tags it serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub spec: ItemSpec,
    /// Indexes into the spans given to [`plan_reads`].
    pub members: Vec<usize>,
}

/// One read request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadPlan {
    pub items: Vec<Item>,
}

/// The requests, and the tags too large for any read of this PDU size.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub requests: Vec<ReadPlan>,
    pub oversized: Vec<usize>,
}

/// Sizes of a request and its answer with these variables (lengths in bytes).
pub fn sizes(item_bytes: &[usize]) -> (usize, usize) {
    let n = item_bytes.len();
    let request = READ_REQUEST_FIXED + READ_REQUEST_PER_ITEM * n;
    let answer = READ_ANSWER_FIXED
        + item_bytes
            .iter()
            .enumerate()
            .map(|(i, b)| READ_ANSWER_PER_ITEM + b + usize::from(b % 2 == 1 && i + 1 < n))
            .sum::<usize>();
    (request, answer)
}

fn fits(item_bytes: &[usize], limits: Limits) -> bool {
    let (request, answer) = sizes(item_bytes);
    item_bytes.len() <= limits.max_items.min(MAX_ITEMS)
        && request <= usize::from(limits.pdu)
        && answer <= usize::from(limits.pdu)
}

/// Open variable of the sweep: area, first unit, end (exclusive), members.
struct Open {
    area: Area,
    start: u32,
    end: u32,
    members: Vec<usize>,
}

impl Open {
    fn bytes(&self) -> usize {
        ((self.end - self.start) * self.area.unit_bytes()) as usize
    }

    fn close(self) -> Item {
        Item {
            spec: ItemSpec {
                area: self.area,
                start: self.start,
                count: (self.end - self.start) as u16,
                bit: None,
            },
            members: self.members,
        }
    }
}

/// Plans the reads of `spans`; see the module docs.
pub fn plan_reads(spans: &[Span], limits: Limits) -> Plan {
    let mut order: Vec<usize> = (0..spans.len()).collect();
    order.sort_by_key(|&i| spans.get(i).map(|s| (s.area, s.start, std::cmp::Reverse(s.len))));
    let mut plan = Plan::default();
    let mut done: Vec<Item> = Vec::new();
    let mut open: Option<Open> = None;
    let close_request = |done: &mut Vec<Item>, plan: &mut Plan| {
        if !done.is_empty() {
            plan.requests.push(ReadPlan {
                items: std::mem::take(done),
            });
        }
    };
    for i in order {
        let Some(span) = spans.get(i).copied() else {
            continue;
        };
        if span.bytes() > limits.max_item_bytes() {
            plan.oversized.push(i);
            continue;
        }
        let mut lengths: Vec<usize> = done.iter().map(|it| it.spec.bytes()).collect();
        // Near enough to the open variable: join it, in this request if it still fits.
        if let Some(o) = open.as_mut()
            && o.area == span.area
            && span.start <= o.end.saturating_add(limits.max_gap / o.area.unit_bytes())
        {
            let end = o.end.max(span.end());
            lengths.push(((end - o.start) * o.area.unit_bytes()) as usize);
            if fits(&lengths, limits) {
                o.end = end;
                o.members.push(i);
                continue;
            }
            if let Some(o) = open.take() {
                done.push(o.close());
            }
            close_request(&mut done, &mut plan);
        } else {
            // A new variable, in this request if it fits.
            if let Some(o) = open.take() {
                lengths.push(o.bytes());
                done.push(o.close());
            }
            lengths.push(span.bytes());
            if !fits(&lengths, limits) {
                close_request(&mut done, &mut plan);
            }
        }
        open = Some(Open {
            area: span.area,
            start: span.start,
            end: span.end(),
            members: vec![i],
        });
    }
    if let Some(o) = open.take() {
        done.push(o.close());
    }
    close_request(&mut done, &mut plan);
    plan
}

/// A tag of a source: its address and where it sits.
#[derive(Clone, Debug)]
pub struct PlannedTag {
    pub index: u32,
    pub address: Address,
    pub span: Span,
}

impl From<&Address> for Span {
    fn from(a: &Address) -> Span {
        Span {
            area: a.area,
            start: a.start,
            len: a.units(),
        }
    }
}

/// Parses the source's addresses.
pub fn resolve(addresses: &[Arc<str>]) -> Result<Vec<PlannedTag>, AddressError> {
    addresses
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let address = Address::parse(text)?;
            Ok(PlannedTag {
                index: i as u32,
                span: Span::from(&address),
                address,
            })
        })
        .collect()
}

/// What one poll cycle costs, for `backplane check` and the source's start-up log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PollSummary {
    pub source: String,
    pub tags: usize,
    pub requests: usize,
    pub pdu: u16,
    pub period: Duration,
    pub oversized: usize,
}

impl fmt::Display for PollSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "s7 source `{}`: {} tags in {} read request{} every {:?} at PDU size {}",
            self.source,
            self.tags,
            self.requests,
            if self.requests == 1 { "" } else { "s" },
            self.period,
            self.pdu
        )?;
        if self.oversized > 0 {
            write!(f, "; {} tags larger than one read of this PDU", self.oversized)?;
        }
        Ok(())
    }
}

/// [`PollSummary`] of tags at addresses `addresses` (duplicates read once).
pub fn summarize(
    source: &str,
    addresses: &[&str],
    limits: Limits,
    period: Duration,
) -> Result<PollSummary, AddressError> {
    let mut unique: Vec<&str> = addresses.to_vec();
    unique.sort_unstable();
    unique.dedup();
    let owned: Vec<Arc<str>> = unique.iter().map(|a| Arc::from(*a)).collect();
    let tags = resolve(&owned)?;
    let spans: Vec<Span> = tags.iter().map(|t| t.span).collect();
    let plan = plan_reads(&spans, limits);
    Ok(PollSummary {
        source: source.to_owned(),
        tags: spans.len(),
        requests: plan.requests.len(),
        pdu: limits.pdu,
        period,
        oversized: plan.oversized.len(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use proptest::prelude::*;

    fn db(n: u16, start: u32, len: u32) -> Span {
        Span {
            area: Area::Db(n),
            start,
            len,
        }
    }

    fn limits(pdu: u16, max_gap: u32) -> Limits {
        Limits {
            pdu,
            max_gap,
            max_items: MAX_ITEMS,
        }
    }

    fn shape(plan: &Plan) -> Vec<Vec<(u32, u16)>> {
        plan.requests
            .iter()
            .map(|r| r.items.iter().map(|i| (i.spec.start, i.spec.count)).collect())
            .collect()
    }

    #[test]
    fn near_tags_share_a_variable_and_far_ones_share_the_request() {
        let spans = [
            db(10, 0, 4),
            db(10, 4, 2),
            db(10, 10, 4),
            db(10, 400, 2),
            db(11, 0, 1),
        ];
        let plan = plan_reads(&spans, limits(480, 16));
        assert_eq!(plan.requests.len(), 1);
        assert_eq!(shape(&plan), [vec![(0, 14), (400, 2), (0, 1)]]);
        assert_eq!(plan.requests[0].items[0].members, [0, 1, 2]);
    }

    #[test]
    fn answers_never_exceed_the_pdu_and_twenty_variables() {
        // 30 far-apart words: 20 variables, then the rest.
        let spans: Vec<Span> = (0..30).map(|i| db(1, i * 100, 2)).collect();
        let plan = plan_reads(&spans, limits(960, 0));
        assert_eq!(
            plan.requests.iter().map(|r| r.items.len()).collect::<Vec<_>>(),
            [20, 10]
        );
        // 1000 consecutive bytes at PDU 240: 222 data bytes per answer.
        let spans: Vec<Span> = (0..250).map(|i| db(1, i * 4, 4)).collect();
        let plan = plan_reads(&spans, limits(240, 0));
        for r in &plan.requests {
            let lengths: Vec<usize> = r.items.iter().map(|i| i.spec.bytes()).collect();
            assert!(fits(&lengths, limits(240, 0)));
        }
        assert_eq!(plan.requests.len(), 1000usize.div_ceil(220));
        // A string longer than one answer can carry is reported, not sent.
        let plan = plan_reads(&[db(1, 0, 256), db(1, 300, 2)], limits(240, 0));
        assert_eq!((plan.oversized.as_slice(), plan.requests.len()), (&[0][..], 1));
    }

    #[test]
    fn timers_and_counters_are_their_own_variables() {
        let spans = [
            Span {
                area: Area::Timer,
                start: 1,
                len: 1,
            },
            Span {
                area: Area::Timer,
                start: 2,
                len: 1,
            },
            Span {
                area: Area::Counter,
                start: 1,
                len: 1,
            },
        ];
        let plan = plan_reads(&spans, limits(480, 16));
        assert_eq!(shape(&plan), [vec![(1, 2), (1, 1)]]);
        assert_eq!(plan.requests[0].items[0].spec.bytes(), 4);
    }

    /// Variables of one run of sorted spans, joined by the documented rule: an independent
    /// restatement used by the reference below.
    fn run_lengths(run: &[Span], max_gap: u32) -> Vec<usize> {
        let mut out: Vec<(Area, u32, u32)> = Vec::new();
        for s in run {
            match out.last_mut() {
                Some((area, start, end))
                    if *area == s.area && s.start <= *end + max_gap / s.area.unit_bytes() =>
                {
                    *end = (*end).max(s.end());
                    let _ = start;
                }
                _ => out.push((s.area, s.start, s.end())),
            }
        }
        out.iter()
            .map(|(a, s, e)| ((e - s) * a.unit_bytes()) as usize)
            .collect()
    }

    /// The fewest requests over every split of the sorted spans into consecutive runs.
    fn minimum_requests(spans: &[Span], limits: Limits) -> usize {
        let mut s = spans.to_vec();
        s.sort_by_key(|s| (s.area, s.start, std::cmp::Reverse(s.len)));
        let n = s.len();
        let mut best = vec![usize::MAX; n + 1];
        best[0] = 0;
        for j in 1..=n {
            // Every start, with no early stop: a run that does not fit can fit again once a
            // longer tag in front of it joins its variables into one.
            for i in 0..j {
                if fits(&run_lengths(&s[i..j], limits.max_gap), limits) {
                    best[j] = best[j].min(best[i].saturating_add(1));
                }
            }
        }
        best[n]
    }

    proptest! {
        #[test]
        fn greedy_plan_is_minimal_fits_the_pdu_and_covers_every_tag(
            raw in proptest::collection::vec((0u16..3, 0u32..1500, 1u32..40), 1..80),
            max_gap in 0u32..40,
            pdu in prop_oneof![Just(240u16), Just(480u16), Just(960u16), 240u16..=960],
        ) {
            let spans: Vec<Span> = raw.iter().map(|&(a, start, len)| match a {
                0 => db(1, start, len),
                1 => db(2, start, len),
                _ => Span { area: Area::Marker, start, len },
            }).collect();
            let limits = limits(pdu, max_gap);
            let plan = plan_reads(&spans, limits);
            prop_assert!(plan.oversized.is_empty());
            prop_assert_eq!(plan.requests.len(), minimum_requests(&spans, limits));
            let mut seen = vec![false; spans.len()];
            for r in &plan.requests {
                let lengths: Vec<usize> = r.items.iter().map(|i| i.spec.bytes()).collect();
                prop_assert!(fits(&lengths, limits), "{:?} at PDU {}", lengths, pdu);
                for item in &r.items {
                    for &m in &item.members {
                        prop_assert!(!seen[m]);
                        seen[m] = true;
                        let s = spans[m];
                        prop_assert_eq!(s.area, item.spec.area);
                        prop_assert!(s.start >= item.spec.start && s.end() <= item.spec.start + u32::from(item.spec.count));
                    }
                }
            }
            prop_assert!(seen.iter().all(|s| *s));
        }
    }
}
