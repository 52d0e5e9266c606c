//! Response decoding as the Modbus client does it: a request derived from the first five
//! bytes, the rest through TCP and RTU framing and the PDU decoder (tokio-modbus' plus our
//! checks against the request). No input may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    backplane_modbus::frame::fuzz_response(data);
});
