//! `backplane_model::wire`, the encoding of the buffer's records and the historian's files:
//! values and every primitive reader over arbitrary bytes (a damaged or hostile file). No
//! input may panic.
#![no_main]

use backplane_model::wire::Cursor;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut cur = Cursor::new(data);
    while !cur.is_empty() {
        if cur.value().is_err() {
            let _ = cur.u8();
        }
    }
    let mut cur = Cursor::new(data);
    let _ = cur.count(usize::MAX, 1);
    let _ = cur.varint_i64();
    let _ = cur.str();
    let _ = cur.u64_le();
});
