//! Drops redeliveries: per sending gateway, a high-water mark of the `seq` numbers seen
//! and a bitset of the last [`WINDOW`] below it. A seq older than the window is let
//! through (at-least-once: a possible duplicate rather than a possible loss).

use std::collections::HashMap;

/// How many seqs below the highest one each gateway's window remembers.
pub const WINDOW: u64 = 65_536;
const WORDS: usize = (WINDOW / 64) as usize;

#[derive(Debug)]
struct Window {
    high: u64,
    bits: Box<[u64; WORDS]>,
}

impl Window {
    fn bit(seq: u64) -> (usize, u64) {
        let i = seq % WINDOW;
        ((i / 64) as usize, 1u64 << (i % 64))
    }
}

/// Seq windows by gateway.
#[derive(Debug, Default)]
pub struct Dedup {
    gateways: HashMap<String, Window>,
}

/// Most gateways remembered; more is a misconfiguration (or an attack), not a plant.
const MAX_GATEWAYS: usize = 4096;

impl Dedup {
    /// Whether `seq` from `gateway` was seen before (and so must be dropped); records it.
    pub fn is_duplicate(&mut self, gateway: &str, seq: u64) -> bool {
        if !self.gateways.contains_key(gateway) {
            if self.gateways.len() >= MAX_GATEWAYS {
                return false;
            }
            self.gateways.insert(
                gateway.to_owned(),
                Window {
                    high: 0,
                    bits: Box::new([0; WORDS]),
                },
            );
        }
        let Some(w) = self.gateways.get_mut(gateway) else {
            return false;
        };
        if seq > w.high {
            if seq - w.high >= WINDOW {
                w.bits.fill(0);
            } else {
                for s in w.high + 1..seq {
                    let (word, mask) = Window::bit(s);
                    w.bits[word] &= !mask;
                }
            }
            let (word, mask) = Window::bit(seq);
            w.bits[word] |= mask;
            w.high = seq;
            return false;
        }
        if w.high - seq >= WINDOW {
            return false;
        }
        let (word, mask) = Window::bit(seq);
        let seen = w.bits[word] & mask != 0;
        w.bits[word] |= mask;
        seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_are_duplicates_and_late_firsts_are_not() {
        let mut d = Dedup::default();
        assert!(!d.is_duplicate("a", 1));
        assert!(!d.is_duplicate("a", 2));
        assert!(d.is_duplicate("a", 1));
        assert!(!d.is_duplicate("b", 1), "per gateway");
        assert!(!d.is_duplicate("a", 10));
        assert!(!d.is_duplicate("a", 5), "a replay behind live data, never seen");
        assert!(d.is_duplicate("a", 5));
        assert!(d.is_duplicate("a", 10));
        assert!(!d.is_duplicate("a", 10 + WINDOW + 1));
        assert!(!d.is_duplicate("a", 10), "older than the window: let through");
    }
}
