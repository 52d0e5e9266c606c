//! Both decoders driven with random bytes on stable Rust (the cargo-fuzz targets
//! fuzz/fuzz_targets/enip_reply.rs and enip_request.rs do the same, longer, on nightly):
//! the client's decoding of replies and the simulator's decoding of requests never panic,
//! on raw bytes and on well-framed packets with random contents.

#![allow(clippy::unwrap_used)]

use backplane_ethernetip::frame::{self, Encap};
use backplane_ethernetip::{cip, server};
use proptest::prelude::*;

/// A frame that passes the encapsulation and item layers, so the random part reaches the
/// CIP decoders behind them.
fn framed(message: &[u8], connected: bool) -> Vec<u8> {
    let data = if connected {
        frame::encode_cpf(
            0,
            &[
                (frame::ITEM_CONNECTED_ADDRESS, &[1, 2, 3, 4]),
                (frame::ITEM_CONNECTED_DATA, message),
            ],
        )
    } else {
        frame::encode_cpf(
            0,
            &[
                (frame::ITEM_NULL_ADDRESS, &[]),
                (frame::ITEM_UNCONNECTED_DATA, message),
            ],
        )
    };
    Encap {
        command: frame::SEND_RR_DATA,
        session: 1,
        status: 0,
        context: [0; 8],
        data,
    }
    .encode()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn reply_decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600), connected in any::<bool>()) {
        cip::fuzz_reply(&bytes);
        cip::fuzz_reply(&framed(&bytes, connected));
    }

    #[test]
    fn reply_decoding_never_panics_on_near_valid_replies(
        service in prop_oneof![Just(0xCCu8), Just(0x8A), Just(0xD4), Just(0xD5)],
        status in any::<u8>(),
        tail in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut reply = vec![service, 0, status, (tail.len() % 4) as u8];
        reply.extend_from_slice(&tail);
        cip::fuzz_reply(&reply);
        cip::fuzz_reply(&framed(&reply, false));
    }

    #[test]
    fn request_decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600), connected in any::<bool>()) {
        server::fuzz_request(&bytes);
        server::fuzz_request(&framed(&bytes, connected));
    }

    #[test]
    fn request_decoding_never_panics_on_near_valid_requests(
        service in prop_oneof![Just(0x4Cu8), Just(0x4D), Just(0x0A), Just(0x52), Just(0x55), Just(0x5B)],
        tail in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut request = vec![service, (tail.len() / 4) as u8];
        request.extend_from_slice(&tail);
        server::fuzz_request(&request);
        server::fuzz_request(&framed(&request, false));
    }
}
