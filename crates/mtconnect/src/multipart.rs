//! `multipart/x-mixed-replace`, the framing of an agent's stream (`sample?interval=`),
//! split into parts without I/O: bytes go in as they arrive, whole parts come out.
//! Each part is bounded by `max_part` bytes, so a stream that never delimits a part
//! cannot grow the buffer without end.
//!
//! A part is `--BOUNDARY`, header lines, an empty line, then the body: `Content-length`
//! bytes when the part says how long it is (cppagent does), else everything up to the
//! next `--BOUNDARY` line.

/// Why the stream cannot be split.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    #[error("a stream part is larger than {limit} bytes (max_body)")]
    TooLarge { limit: u64 },
    #[error("malformed stream part header: {0}")]
    Header(String),
}

/// The boundary of a `multipart/x-mixed-replace` content type, if it is one.
pub fn boundary(content_type: &str) -> Option<String> {
    let (kind, params) = content_type.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("multipart/x-mixed-replace") {
        return None;
    }
    params.split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_owned())
            .filter(|b| !b.is_empty())
    })
}

/// The splitter.
#[derive(Debug)]
pub struct Splitter {
    delimiter: Vec<u8>,
    buffer: Vec<u8>,
    max_part: u64,
}

/// Room for a part's header lines beside its body.
const HEADER_ROOM: u64 = 4096;

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

impl Splitter {
    pub fn new(boundary: &str, max_part: u64) -> Splitter {
        Splitter {
            delimiter: format!("--{boundary}").into_bytes(),
            buffer: Vec::new(),
            max_part,
        }
    }

    /// Adds bytes received and returns the parts they complete, in order.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Vec<u8>>, SplitError> {
        self.buffer.extend_from_slice(bytes);
        let mut parts = Vec::new();
        while let Some(part) = self.next_part()? {
            parts.push(part);
        }
        if self.buffer.len() as u64 > self.max_part + HEADER_ROOM {
            return Err(SplitError::TooLarge { limit: self.max_part });
        }
        Ok(parts)
    }

    fn next_part(&mut self) -> Result<Option<Vec<u8>>, SplitError> {
        let Some(start) = find(&self.buffer, &self.delimiter) else {
            return Ok(None);
        };
        let after = start + self.delimiter.len();
        let Some(head_len) = self.buffer.get(after..).and_then(|b| find(b, b"\r\n\r\n")) else {
            return Ok(None);
        };
        let head = self.buffer.get(after..after + head_len).unwrap_or_default();
        let body_start = after + head_len + 4;
        let mut length = None;
        for line in String::from_utf8_lossy(head).lines() {
            if let Some((k, v)) = line.split_once(':')
                && k.trim().eq_ignore_ascii_case("content-length")
            {
                let n: u64 = v
                    .trim()
                    .parse()
                    .map_err(|_| SplitError::Header(format!("Content-length `{}`", v.trim())))?;
                if n > self.max_part {
                    return Err(SplitError::TooLarge { limit: self.max_part });
                }
                length = Some(n as usize);
            }
        }
        let (body_end, consumed) = match length {
            Some(n) => {
                if self.buffer.len() < body_start + n {
                    return Ok(None);
                }
                (body_start + n, body_start + n)
            }
            None => {
                let rest = self.buffer.get(body_start..).unwrap_or_default();
                let Some(end) = find(rest, &self.delimiter) else {
                    return Ok(None);
                };
                (body_start + end, body_start + end)
            }
        };
        let body = self.buffer.get(body_start..body_end).unwrap_or_default().to_vec();
        self.buffer.drain(..consumed);
        Ok(Some(body))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_boundary_comes_from_the_content_type() {
        assert_eq!(
            boundary("multipart/x-mixed-replace;boundary=abc123").as_deref(),
            Some("abc123")
        );
        assert_eq!(
            boundary("multipart/x-mixed-replace; boundary=\"q\"").as_deref(),
            Some("q")
        );
        assert_eq!(boundary("text/xml"), None);
    }

    #[test]
    fn parts_come_out_whole_however_the_bytes_are_cut() {
        let stream = b"--B\r\nContent-type: text/xml\r\nContent-length: 5\r\n\r\n<a/>\n\r\n--B\r\nContent-type: text/xml\r\n\r\n<bb/>\r\n--B\r\n";
        for cut in 1..stream.len() {
            let mut s = Splitter::new("B", 1000);
            let mut parts = s.push(&stream[..cut]).unwrap();
            parts.extend(s.push(&stream[cut..]).unwrap());
            assert_eq!(parts.len(), 2, "cut at {cut}");
            assert_eq!(parts[0], b"<a/>\n");
            assert_eq!(String::from_utf8_lossy(&parts[1]).trim(), "<bb/>");
        }
    }

    #[test]
    fn an_endless_part_is_refused_at_the_limit() {
        let mut s = Splitter::new("B", 10);
        assert_eq!(
            s.push(b"--B\r\nContent-length: 11\r\n\r\n"),
            Err(SplitError::TooLarge { limit: 10 })
        );
        let mut s = Splitter::new("B", 10);
        s.push(b"--B\r\n\r\n").unwrap();
        assert!(s.push(&[b'x'; 5000]).is_err());
    }
}
