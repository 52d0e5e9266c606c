//! Framing: a byte stream in, frames (lines) and framing errors out. Pure and I/O-free;
//! the source feeds it whatever a read returned, in any split.
//!
//! Memory is bounded by `max_line`: a frame that grows past it is reported once
//! ([`Framed::TooLong`]) and the rest of it is dropped up to the next terminator, never
//! buffered. Empty frames (e.g. the blank line between two CRLFs in `line` mode) are
//! skipped. The terminator (and STX) is never part of a frame.

use std::fmt;

pub const STX: u8 = 0x02;
pub const ETX: u8 = 0x03;

/// How frames are delimited on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// A frame ends at CR, at LF, or at CRLF (one frame, not two).
    Line,
    /// A frame ends at CR (LF is data).
    Cr,
    /// A frame ends at LF (CR is data).
    Lf,
    /// A frame ends at CR followed by LF; a lone CR is data.
    CrLf,
    /// A frame ends at this byte (ETX is `0x03`).
    Byte(u8),
    /// A frame starts at STX and ends at ETX; bytes between frames are dropped and counted.
    StxEtx,
}

impl Framing {
    /// `line`, `cr`, `lf`, `crlf`, `etx`, `stx-etx`, or one byte as `0xNN`.
    pub fn parse(text: &str) -> Option<Framing> {
        Some(match text.to_ascii_lowercase().as_str() {
            "line" => Framing::Line,
            "cr" => Framing::Cr,
            "lf" => Framing::Lf,
            "crlf" => Framing::CrLf,
            "etx" => Framing::Byte(ETX),
            "stx-etx" => Framing::StxEtx,
            other => {
                let hex = other.strip_prefix("0x")?;
                if hex.len() != 2 {
                    return None;
                }
                Framing::Byte(u8::from_str_radix(hex, 16).ok()?)
            }
        })
    }
}

impl fmt::Display for Framing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Framing::Line => f.write_str("line"),
            Framing::Cr => f.write_str("cr"),
            Framing::Lf => f.write_str("lf"),
            Framing::CrLf => f.write_str("crlf"),
            Framing::Byte(ETX) => f.write_str("etx"),
            Framing::Byte(b) => write!(f, "0x{b:02X}"),
            Framing::StxEtx => f.write_str("stx-etx"),
        }
    }
}

/// What the framer found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Framed {
    /// A complete frame, without its delimiters.
    Frame(Vec<u8>),
    /// A frame grew past `max_line`; `head` is its first bytes (at most [`HEAD`]). The
    /// rest up to the next terminator is dropped.
    TooLong { head: Vec<u8>, max_line: usize },
    /// STX/ETX: a new STX came before the ETX of the frame it interrupts (`head`).
    Unterminated { head: Vec<u8> },
    /// STX/ETX: bytes outside any frame (CR and LF aside), dropped (reported at the next
    /// STX).
    Outside { bytes: usize },
}

/// How many bytes of a broken frame an error keeps to name it.
pub const HEAD: usize = 48;

/// The framer's state between two reads.
#[derive(Debug, Clone)]
pub struct Framer {
    framing: Framing,
    max_line: usize,
    buf: Vec<u8>,
    /// Dropping an over-long frame up to its terminator.
    discarding: bool,
    /// CRLF: a CR was the last byte seen; it ends the frame if LF follows.
    pending_cr: bool,
    /// STX/ETX: between an STX and its ETX.
    in_frame: bool,
    /// STX/ETX: bytes dropped outside frames since the last report.
    outside: usize,
}

impl Framer {
    /// `max_line` is at least 1.
    pub fn new(framing: Framing, max_line: usize) -> Framer {
        let max_line = max_line.max(1);
        Framer {
            framing,
            max_line,
            buf: Vec::with_capacity(max_line.min(4096)),
            discarding: false,
            pending_cr: false,
            in_frame: false,
            outside: 0,
        }
    }

    /// Bytes held for an unfinished frame (never more than `max_line`).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Forgets any partial frame (after a reconnect: a new stream starts afresh).
    pub fn reset(&mut self) {
        self.buf.clear();
        self.discarding = false;
        self.pending_cr = false;
        self.in_frame = false;
        self.outside = 0;
    }

    /// Feeds `data`; what completes is appended to `out` in stream order.
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<Framed>) {
        for &b in data {
            self.byte(b, out);
        }
    }

    fn byte(&mut self, b: u8, out: &mut Vec<Framed>) {
        match self.framing {
            Framing::Line => match b {
                b'\r' | b'\n' => self.end(out),
                _ => self.push(b, out),
            },
            Framing::Cr => match b {
                b'\r' => self.end(out),
                _ => self.push(b, out),
            },
            Framing::Lf => match b {
                b'\n' => self.end(out),
                _ => self.push(b, out),
            },
            Framing::Byte(t) => {
                if b == t {
                    self.end(out)
                } else {
                    self.push(b, out)
                }
            }
            Framing::CrLf => {
                if std::mem::take(&mut self.pending_cr) {
                    if b == b'\n' {
                        return self.end(out);
                    }
                    self.push(b'\r', out);
                }
                if b == b'\r' {
                    self.pending_cr = true;
                } else {
                    self.push(b, out);
                }
            }
            Framing::StxEtx => match b {
                STX => {
                    if self.outside > 0 {
                        out.push(Framed::Outside {
                            bytes: std::mem::take(&mut self.outside),
                        });
                    }
                    if self.in_frame && !self.discarding {
                        out.push(Framed::Unterminated { head: self.head() });
                    }
                    self.buf.clear();
                    self.discarding = false;
                    self.in_frame = true;
                }
                ETX if self.in_frame => {
                    self.end(out);
                    self.in_frame = false;
                }
                _ if self.in_frame => self.push(b, out),
                // Line ends between frames are common and harmless.
                b'\r' | b'\n' => {}
                _ => self.outside = self.outside.saturating_add(1),
            },
        }
    }

    fn head(&self) -> Vec<u8> {
        self.buf[..self.buf.len().min(HEAD)].to_vec()
    }

    fn push(&mut self, b: u8, out: &mut Vec<Framed>) {
        if self.discarding {
            return;
        }
        if self.buf.len() >= self.max_line {
            out.push(Framed::TooLong {
                head: self.head(),
                max_line: self.max_line,
            });
            self.buf.clear();
            self.discarding = true;
            return;
        }
        self.buf.push(b);
    }

    fn end(&mut self, out: &mut Vec<Framed>) {
        if self.discarding {
            self.discarding = false;
        } else if !self.buf.is_empty() {
            out.push(Framed::Frame(self.buf.clone()));
        }
        self.buf.clear();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn frames(framing: Framing, max: usize, chunks: &[&[u8]]) -> Vec<Framed> {
        let mut framer = Framer::new(framing, max);
        let mut out = Vec::new();
        for c in chunks {
            framer.feed(c, &mut out);
        }
        out
    }

    fn frame(text: &str) -> Framed {
        Framed::Frame(text.as_bytes().to_vec())
    }

    #[test]
    fn line_mode_ends_frames_at_cr_lf_or_crlf_and_skips_blank_ones() {
        let out = frames(Framing::Line, 64, &[b"S S 1", b"2.5 g\r", b"\nnext\nlast\r\r\n"]);
        assert_eq!(out, vec![frame("S S 12.5 g"), frame("next"), frame("last")]);
    }

    #[test]
    fn crlf_mode_keeps_a_lone_cr_and_splits_across_reads() {
        let out = frames(Framing::CrLf, 64, &[b"a\rb\r", b"\nc\r\r", b"\n"]);
        assert_eq!(out, vec![frame("a\rb"), frame("c\r")]);
    }

    #[test]
    fn a_configured_byte_ends_frames() {
        let out = frames(Framing::Byte(ETX), 64, &[b"one\x03two\x03\x03"]);
        assert_eq!(out, vec![frame("one"), frame("two")]);
        assert_eq!(Framing::parse("0x1e"), Some(Framing::Byte(0x1E)));
        assert_eq!(Framing::parse("etx"), Some(Framing::Byte(ETX)));
        assert_eq!(Framing::parse("0x1"), None);
        assert_eq!(Framing::parse("tab"), None);
    }

    #[test]
    fn an_over_long_line_is_reported_once_and_dropped_to_its_terminator() {
        let mut framer = Framer::new(Framing::Lf, 8);
        let mut out = Vec::new();
        framer.feed(b"ok\n0123456789", &mut out);
        for _ in 0..1000 {
            framer.feed(b"xxxxxxxxxxxxxxxx", &mut out);
            assert!(framer.buffered() <= 8);
        }
        framer.feed(b"\nafter\n", &mut out);
        assert_eq!(
            out,
            vec![
                frame("ok"),
                Framed::TooLong {
                    head: b"01234567".to_vec(),
                    max_line: 8
                },
                frame("after"),
            ]
        );
    }

    #[test]
    fn a_line_of_exactly_max_line_bytes_is_kept() {
        let out = frames(Framing::Lf, 4, &[b"abcd\nabcde\nz\n"]);
        assert_eq!(out.first(), Some(&frame("abcd")));
        assert!(matches!(out.get(1), Some(Framed::TooLong { .. })));
        assert_eq!(out.get(2), Some(&frame("z")));
    }

    #[test]
    fn stx_etx_drops_and_counts_bytes_between_frames_and_resyncs_on_stx() {
        let out = frames(
            Framing::StxEtx,
            64,
            &[b"noise\x02A1\x03\r\n\x02B", b"2\x02C3\x03?\x02D\x03"],
        );
        assert_eq!(
            out,
            vec![
                Framed::Outside { bytes: 5 },
                frame("A1"),
                Framed::Unterminated { head: b"B2".to_vec() },
                frame("C3"),
                Framed::Outside { bytes: 1 },
                frame("D"),
            ]
        );
    }

    #[test]
    fn stx_etx_over_long_frames_are_dropped_up_to_etx_or_the_next_stx() {
        let out = frames(Framing::StxEtx, 3, &[b"\x02abcdef\x03\x02xyzw\x02ok\x03"]);
        assert_eq!(
            out,
            vec![
                Framed::TooLong {
                    head: b"abc".to_vec(),
                    max_line: 3
                },
                Framed::TooLong {
                    head: b"xyz".to_vec(),
                    max_line: 3
                },
                frame("ok"),
            ]
        );
    }

    proptest::proptest! {
        /// Lines joined by CRLF, cut into reads anywhere, come out as the same lines; the
        /// ones over max_line as one TooLong each; the buffer never outgrows max_line.
        #[test]
        fn any_split_of_a_stream_gives_the_same_frames(
            lines in proptest::collection::vec(proptest::collection::vec(0x20u8..0x7F, 1..40), 0..20),
            cuts in proptest::collection::vec(1usize..16, 1..8),
            max in 1usize..32,
        ) {
            let stream: Vec<u8> = lines.iter().flat_map(|l| l.iter().copied().chain(*b"\r\n")).collect();
            let mut framer = Framer::new(Framing::CrLf, max);
            let mut out = Vec::new();
            let mut rest = stream.as_slice();
            let mut i = 0;
            while !rest.is_empty() {
                let n = cuts[i % cuts.len()].min(rest.len());
                let (chunk, tail) = rest.split_at(n);
                framer.feed(chunk, &mut out);
                proptest::prop_assert!(framer.buffered() <= max);
                rest = tail;
                i += 1;
            }
            let want: Vec<Framed> = lines
                .iter()
                .map(|l| if l.len() > max {
                    Framed::TooLong { head: l[..max.min(HEAD)].to_vec(), max_line: max }
                } else {
                    Framed::Frame(l.clone())
                })
                .collect();
            proptest::prop_assert_eq!(out, want);
        }

        /// Whatever the bytes, the whole path (framing, checksum, pattern) never panics.
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            crate::lines::fuzz(&data);
        }
    }
}
