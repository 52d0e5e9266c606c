//! A dropped file mapped as the `files` source does: CSV, JSON or NDJSON (chosen by the
//! first byte, with the delimiter, decimal comma and time format), all or nothing. No input
//! may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    backplane_files::map::fuzz_map(data);
});
