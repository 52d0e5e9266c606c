//! JSON text as `serde_json` writes it, piece by piece, into a caller's buffer: strings
//! (escaped only when they need it), values, contexts, timestamps. The building blocks of
//! [`SampleEncoder`](super::SampleEncoder); every function here is byte for byte what
//! `serde_json::to_writer` makes of the same data (tested in `tests/payload_encoder.rs`).

use backplane_model::{Context, Timestamp, Value};
use bytes::BufMut;

/// Whether `s` has a byte JSON must escape: `"`, `\` or a control character below 0x20
/// (`serde_json` leaves everything else, DEL and non-ASCII included, as it is). Without an
/// early exit so it vectorizes: identifiers are short and almost never need escaping.
pub fn needs_escape(s: &str) -> bool {
    s.bytes()
        .fold(false, |found, b| found | (b < 0x20) | (b == b'"') | (b == b'\\'))
}

/// `s` as a JSON string, quoted, escaped as `serde_json` escapes.
pub fn string<B: BufMut>(out: &mut B, s: &str) {
    out.put_u8(b'"');
    if needs_escape(s) {
        escaped(out, s.as_bytes());
    } else {
        out.put_slice(s.as_bytes());
    }
    out.put_u8(b'"');
}

/// `s` quoted as it is: the caller knows it needs no escaping ([`needs_escape`] is false).
pub fn clean_string<B: BufMut>(out: &mut B, s: &str) {
    out.put_u8(b'"');
    out.put_slice(s.as_bytes());
    out.put_u8(b'"');
}

/// The escaped contents of a string: runs copied, `\"`, `\\`, the five short escapes and
/// `\u00xx` (lower-case hex) for other control characters, as `serde_json` does.
fn escaped<B: BufMut>(out: &mut B, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let short = match b {
            b'"' => b'"',
            b'\\' => b'\\',
            0x08 => b'b',
            0x09 => b't',
            0x0A => b'n',
            0x0C => b'f',
            0x0D => b'r',
            0x00..=0x1F => b'u',
            _ => continue,
        };
        out.put_slice(&bytes[run..i]);
        run = i + 1;
        if short == b'u' {
            out.put_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xF)],
            ]);
        } else {
            out.put_slice(&[b'\\', short]);
        }
    }
    out.put_slice(&bytes[run..]);
}

/// A timestamp as a JSON string (RFC 3339, see [`Timestamp::rfc3339`]).
pub fn timestamp<B: BufMut>(out: &mut B, t: Timestamp) {
    out.put_u8(b'"');
    out.put_slice(t.rfc3339().as_bytes());
    out.put_u8(b'"');
}

/// A value as `Value`'s `Serialize` writes it: floats as `serde_json` writes finite ones
/// (its own formatter, `zmij`), NaN and the infinities as the strings `"NaN"`, `"inf"`,
/// `"-inf"`; `null` for `None`.
pub fn value<B: BufMut>(out: &mut B, value: &Option<Value>) {
    match value {
        Some(v) => scalar_or_array(out, v),
        None => out.put_slice(b"null"),
    }
}

fn scalar_or_array<B: BufMut>(out: &mut B, value: &Value) {
    match value {
        Value::Bool(true) => out.put_slice(b"true"),
        Value::Bool(false) => out.put_slice(b"false"),
        Value::Int(i) => out.put_slice(itoa::Buffer::new().format(*i).as_bytes()),
        Value::UInt(u) => out.put_slice(itoa::Buffer::new().format(*u).as_bytes()),
        Value::Float(x) if x.is_nan() => out.put_slice(b"\"NaN\""),
        Value::Float(x) if x.is_infinite() => {
            out.put_slice(if *x > 0.0 { b"\"inf\"" } else { b"\"-inf\"" });
        }
        Value::Float(x) => out.put_slice(zmij::Buffer::new().format_finite(*x).as_bytes()),
        Value::String(s) => string(out, s),
        Value::Timestamp(t) => timestamp(out, *t),
        Value::Array(items) => {
            out.put_u8(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.put_u8(b',');
                }
                scalar_or_array(out, item);
            }
            out.put_u8(b']');
        }
    }
}

/// Whether no field of the context is set (most assets, most of the time).
pub fn is_empty(context: &Context) -> bool {
    *context == EMPTY
}

const EMPTY: Context = Context {
    work_order: None,
    product: None,
    batch: None,
    lot: None,
    shift: None,
    operator: None,
    machine_state: None,
};

/// A context as its derived `Serialize` writes it: the set fields in declaration order.
pub fn context<B: BufMut>(out: &mut B, context: &Context) {
    if is_empty(context) {
        out.put_slice(b"{}");
        return;
    }
    let fields = [
        (&b"\"work_order\":"[..], &context.work_order),
        (b"\"product\":", &context.product),
        (b"\"batch\":", &context.batch),
        (b"\"lot\":", &context.lot),
        (b"\"shift\":", &context.shift),
        (b"\"operator\":", &context.operator),
        (b"\"machine_state\":", &context.machine_state),
    ];
    out.put_u8(b'{');
    let mut first = true;
    for (key, field) in fields {
        if let Some(text) = field {
            if !first {
                out.put_u8(b',');
            }
            first = false;
            out.put_slice(key);
            string(out, text);
        }
    }
    out.put_u8(b'}');
}
