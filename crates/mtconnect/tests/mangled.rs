//! Every recorded document, cut short at every length and with bytes flipped, through
//! everything the source does with an answer (`fuzz_document`, the fuzz target's body):
//! nothing may panic. The fuzzer (fuzz/fuzz_targets/mtconnect_document.rs) goes further.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

#[test]
fn truncated_and_corrupted_documents_never_panic() {
    let names = [
        "v1.3/probe.xml",
        "v1.3/current.xml",
        "v1.3/sample.xml",
        "v1.3/error_out_of_range.xml",
        "v2.0/probe.xml",
        "v2.0/current.xml",
        "v2.0/sample.xml",
        "v2.0/error_out_of_range.xml",
        "v2.0/error_no_device.xml",
    ];
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for name in names {
        let doc = common::fixture(name).into_bytes();
        backplane_mtconnect::fuzz_document(&doc);
        for len in (0..doc.len()).step_by(7) {
            backplane_mtconnect::fuzz_document(&doc[..len]);
        }
        for _ in 0..300 {
            let mut mangled = doc.clone();
            for _ in 0..4 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let at = (state % mangled.len() as u64) as usize;
                mangled[at] = (state >> 32) as u8;
            }
            backplane_mtconnect::fuzz_document(&mangled);
        }
    }
    // Sequence numbers at the edge of u64.
    let edge = common::fixture("v1.3/sample.xml")
        .replace("sequence=\"108\"", "sequence=\"18446744073709551615\"")
        .replace("nextSequence=\"109\"", "nextSequence=\"18446744073709551615\"")
        .replace("firstSequence=\"1\"", "firstSequence=\"18446744073709551615\"");
    backplane_mtconnect::fuzz_document(edge.as_bytes());
}
