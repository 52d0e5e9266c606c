//! Reply decoding as the EtherNet/IP client does it: the encapsulation frame, its CPF items,
//! the Message Router reply, Multiple Service Packet replies, tag values, Forward Open
//! replies and the tag list. No input may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    backplane_ethernetip::cip::fuzz_reply(data);
});
