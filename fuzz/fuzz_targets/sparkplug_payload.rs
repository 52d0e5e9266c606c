//! Sparkplug B payloads as the host and the edge node decode them: the protobuf decoder,
//! every metric value under every datatype, births/data/deaths into readings, NCMD/DCMD and
//! STATE. No input may panic. `crates/mqtt/tests/decode_never_panics.rs` runs the same
//! function under proptest on stable.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    backplane_mqtt::sparkplug::decode_everything(data);
});
