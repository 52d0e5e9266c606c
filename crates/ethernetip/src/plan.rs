//! Request planning: which Multiple Service Packets one poll cycle sends.
//!
//! [`plan_packets`] is pure: each tag's Read Tag request size and expected reply size in,
//! packets out. Tags keep their order and are packed greedily: a packet takes the next
//! tag while both the packet's request and its expected reply stay within the connection
//! size (and under the service limit). Because fitting is monotone (a packet that fits
//! still fits with a tag fewer), this greedy sweep gives the fewest packets any in-order
//! packing can (the property test compares it with an exhaustive minimum). A packet of
//! one tag is sent as a plain Read Tag, without the Multiple Service Packet around it.
//!
//! A reply's size is known from the tag's type once it was read (or from the tag list);
//! before, it is estimated as 4-byte elements, and the source plans again when a reply
//! turns out larger.

use crate::cip::{MSP_PER_SERVICE, MSP_REPLY_OVERHEAD, MSP_REQUEST_OVERHEAD};
use crate::types::CipType;

/// Sizes of one tag's Read Tag request and its reply, in bytes of CIP message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Footprint {
    pub request: usize,
    pub reply: usize,
}

/// Limits of one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest request (the connection size, less what wraps the message).
    pub max_request: usize,
    /// Largest reply.
    pub max_reply: usize,
    /// Services one Multiple Service Packet may carry; 1 disables Multiple Service Packets.
    pub max_services: usize,
}

/// One packet: indexes into the footprints given to [`plan_packets`], in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    pub members: Vec<usize>,
}

/// Request and reply bytes of a packet of `items`.
pub fn packet_size(items: impl IntoIterator<Item = Footprint>) -> Footprint {
    let mut n = 0;
    let mut total = Footprint { request: 0, reply: 0 };
    for f in items {
        n += 1;
        total.request += f.request;
        total.reply += f.reply;
    }
    if n > 1 {
        total.request += MSP_REQUEST_OVERHEAD + MSP_PER_SERVICE * n;
        total.reply += MSP_REPLY_OVERHEAD + MSP_PER_SERVICE * n;
    }
    total
}

fn fits(size: Footprint, n: usize, limits: Limits) -> bool {
    n <= limits.max_services.max(1) && size.request <= limits.max_request && size.reply <= limits.max_reply
}

/// Packs `tags` into the fewest in-order packets within `limits`. A tag too large for any
/// packet gets one of its own (the device will answer it with an error, or in part).
pub fn plan_packets(tags: &[Footprint], limits: Limits) -> Vec<Packet> {
    let mut packets: Vec<Packet> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut sum = Footprint { request: 0, reply: 0 };
    for (i, tag) in tags.iter().enumerate() {
        let n = current.len() + 1;
        let with = Footprint {
            request: sum.request + tag.request,
            reply: sum.reply + tag.reply,
        };
        let overhead = if n > 1 {
            Footprint {
                request: MSP_REQUEST_OVERHEAD + MSP_PER_SERVICE * n,
                reply: MSP_REPLY_OVERHEAD + MSP_PER_SERVICE * n,
            }
        } else {
            Footprint { request: 0, reply: 0 }
        };
        let total = Footprint {
            request: with.request + overhead.request,
            reply: with.reply + overhead.reply,
        };
        if current.is_empty() || fits(total, n, limits) {
            current.push(i);
            sum = with;
        } else {
            packets.push(Packet {
                members: std::mem::take(&mut current),
            });
            current.push(i);
            sum = *tag;
        }
    }
    if !current.is_empty() {
        packets.push(Packet { members: current });
    }
    packets
}

/// Bytes of a Read Tag reply of `count` elements of `ty` (`None`: not yet known, assumed
/// to be 4-byte elements).
pub fn reply_estimate(ty: Option<CipType>, count: u16) -> usize {
    let count = usize::from(count.max(1));
    let header = 4;
    match ty {
        Some(t) => {
            let element = t.size().unwrap_or(2 + 82);
            header + t.field_len() + element * count
        }
        None => header + 2 + 4 * count,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use proptest::prelude::*;

    use super::*;

    fn limits(size: usize) -> Limits {
        Limits {
            max_request: size,
            max_reply: size,
            max_services: 200,
        }
    }

    /// The fewest in-order packets, by dynamic programming over every split.
    fn minimum(tags: &[Footprint], limits: Limits) -> usize {
        let n = tags.len();
        let mut best = vec![usize::MAX; n + 1];
        best[0] = 0;
        for end in 1..=n {
            for start in (0..end).rev() {
                let size = packet_size(tags[start..end].iter().copied());
                let single = end - start == 1;
                if !single && !fits(size, end - start, limits) {
                    continue;
                }
                if best[start] != usize::MAX {
                    best[end] = best[end].min(best[start] + 1);
                }
            }
        }
        best[n]
    }

    #[test]
    fn small_tags_share_a_packet_until_the_reply_would_outgrow_the_connection() {
        let tag = Footprint {
            request: 10,
            reply: 10,
        };
        let packets = plan_packets(&[tag; 10], limits(504));
        assert_eq!(packets.len(), 1);
        // 10 tags × (10 + 2) + 6 = 126 reply bytes; a 60-byte connection takes 4 per packet.
        let packets = plan_packets(&[tag; 10], limits(60));
        assert_eq!(
            packets.iter().map(|p| p.members.len()).collect::<Vec<_>>(),
            vec![4, 4, 2]
        );
        let big = Footprint {
            request: 10,
            reply: 1000,
        };
        let packets = plan_packets(&[tag, big, tag], limits(504));
        assert_eq!(packets.len(), 3, "an oversized tag gets a packet of its own");
        // Exactly at the limit still fits: 4 replies of 10 bytes in a packet take
        // 6 + 4 × (10 + 2) = 54 bytes.
        let small = Footprint {
            request: 6,
            reply: 10,
        };
        assert_eq!(plan_packets(&[small; 4], limits(54)).len(), 1);
        assert_eq!(plan_packets(&[small; 4], limits(53)).len(), 2);
        let one_at_a_time = Limits {
            max_services: 1,
            ..limits(504)
        };
        assert_eq!(plan_packets(&[tag; 3], one_at_a_time).len(), 3);
    }

    #[test]
    fn estimates_follow_the_type() {
        assert_eq!(reply_estimate(Some(CipType::Real), 1), 4 + 2 + 4);
        assert_eq!(reply_estimate(Some(CipType::Dint), 10), 4 + 2 + 40);
        assert_eq!(reply_estimate(Some(CipType::LogixString), 1), 4 + 4 + 88);
        assert_eq!(reply_estimate(None, 2), 4 + 2 + 8);
    }

    proptest! {
        #[test]
        fn greedy_plan_is_minimal_in_order_and_every_packet_fits(
            sizes in proptest::collection::vec((6usize..80, 6usize..300), 1..60),
            size in 100usize..600,
            max_services in 1usize..40,
        ) {
            let tags: Vec<Footprint> = sizes.iter().map(|&(request, reply)| Footprint { request, reply }).collect();
            let limits = Limits { max_request: size, max_reply: size, max_services };
            let packets = plan_packets(&tags, limits);
            prop_assert_eq!(packets.len(), minimum(&tags, limits));
            let mut next = 0;
            for p in &packets {
                for &m in &p.members {
                    prop_assert_eq!(m, next, "every tag once, in order");
                    next += 1;
                }
                let total = packet_size(p.members.iter().map(|&m| tags[m]));
                prop_assert!(
                    p.members.len() == 1
                        || (total.request <= size && total.reply <= size && p.members.len() <= max_services)
                );
            }
            prop_assert_eq!(next, tags.len());
        }
    }
}
