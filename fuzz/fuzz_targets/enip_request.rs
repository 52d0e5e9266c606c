//! Request decoding as the EtherNet/IP simulator does it: the frame, its items, and the
//! Message Router request answered against a small tag table (Read/Write Tag, Multiple
//! Service Packet, Unconnected Send, the tag list, Forward Open). No input may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    backplane_ethernetip::server::fuzz_request(data);
});
