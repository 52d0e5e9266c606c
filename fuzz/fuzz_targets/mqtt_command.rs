//! Messages on the MQTT command topic, as the `mqtt` sink reads them: the envelope
//! (`request_id`, `by`), the production command, and the reply to a refused one. Any
//! client that can publish to the topic controls these bytes. No input may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = backplane_mqtt::commands::envelope_of(data);
    if let Err(rejected) = backplane_mqtt::commands::parse(data) {
        let _ = rejected.reply().to_bytes();
    }
});
