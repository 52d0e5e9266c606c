//! MTConnect response documents (probe, current/sample streams, errors; 1.x and 2.x XML)
//! as the mtconnect source reads them, then the sequence tracker fed with what was read.
//! No input may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    backplane_mtconnect::fuzz_document(data);
});
