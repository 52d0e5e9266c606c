//! ASCII lines as the `ascii` source reads them: any bytes, in chunks of any size, through
//! each framing (terminators, a configured byte, STX/ETX) with a small max_line, a
//! checksum (XOR, sum, LRC; hex or raw) and a pattern with typed captures and a quality
//! flag, all chosen by the first byte. No input may panic or buffer past max_line.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    backplane_ascii::lines::fuzz(data);
});
