//! S7comm decoding as the S7 client and the silo simulator do it: TPKT/COTP framing, the
//! S7 header, read/write/setup answers checked against the variables asked for (chosen
//! by the first byte), and jobs. No input may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    backplane_s7::frame::fuzz_response(data);
});
