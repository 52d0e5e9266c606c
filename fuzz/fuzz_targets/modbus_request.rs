//! The simulator's request guard, then tokio-modbus' request decoder on what the guard
//! lets through: the guard must stop every frame that panics the decoder.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    backplane_modbus::frame::fuzz_request(data);
});
