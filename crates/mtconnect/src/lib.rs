//! Backplane's MTConnect connector: the `mtconnect` source kind (an MTConnect agent's
//! REST interface: `probe`, `current`, `sample` with sequence tracking, and multipart
//! streaming where the agent offers it), conditions as alarm events, the derived machine
//! state for OEE, `backplane browse http://agent:5000` and the demo's CNC simulator. The
//! user's guide is docs/connectors/mtconnect.md.
//!
//! Layout:
//! - [`config`]: the source's configuration keys ([`MtConnectSettings`]).
//! - [`document`]: XML response documents (1.x, 2.x) → plain data; the fuzzed part.
//! - [`sequence`]: the I/O-free [`Tracker`]: which request next, what is new, gaps.
//! - [`multipart`]: the framing of a stream, split without I/O.
//! - [`client`]: HTTP GETs with bounded bodies, and streams of parts.
//! - [`observe`]: observations → readings, machine state and alarms.
//! - [`state`]: execution, mode, conditions → a reduced machine state.
//! - [`alarms`]: condition observations → alarm events.
//! - [`resume`]: the cursor file, where a gateway restart resumes.
//! - [`throttle`]: rate-limited warnings.
//! - [`source`]: the running source.
//! - [`kind`]: [`MtConnectKind`] (registered as `mtconnect`) and its hooks.
//! - [`browse`]: `backplane browse http://...`: the device model as bindings.
//! - [`simulator`]: [`spawn_cnc_simulator`], the demo's machining cell.

pub mod alarms;
pub mod browse;
pub mod client;
pub mod config;
pub mod document;
pub mod kind;
pub mod multipart;
pub mod observe;
pub mod resume;
pub mod sequence;
pub mod simulator;
pub mod source;
pub mod state;
pub mod throttle;

pub use config::MtConnectSettings;
pub use document::{Document, parse};
pub use kind::MtConnectKind;
pub use sequence::{Cursor, Request, Tracker};
pub use simulator::spawn_cnc_simulator;

/// Reads `data` every way the source does, for the fuzzer: as a response document, then
/// what was read through the sequence tracker, the decoder (readings, machine state,
/// alarms) and the browse report; and as a multipart stream. No input may panic.
pub fn fuzz_document(data: &[u8]) {
    let mut splitter = multipart::Splitter::new("b", 4096);
    let _ = splitter.push(data);
    let Ok(document) = document::parse(data) else {
        return;
    };
    match document {
        Document::Devices(model) => {
            let _ = browse::report("http://agent:5000", None, &model, None);
            let _ = observe::Decoder::resolve("fuzz", &every_address(&model), &model);
        }
        Document::Streams(streams) => {
            let model = document::Devices {
                header: streams.header.clone(),
                devices: vec![document::Device {
                    data_items: streams
                        .observations
                        .iter()
                        .map(|o| document::DataItem {
                            id: o.data_item_id.clone(),
                            ..document::DataItem::default()
                        })
                        .collect(),
                    ..document::Device::default()
                }],
            };
            let _ = browse::report("http://agent:5000", None, &model, Some(&streams));
            let mut decoder = observe::Decoder::resolve("fuzz", &every_address(&model), &model);
            let header = streams.header.clone();
            let mut tracker = Tracker::new(
                Some(Cursor {
                    instance_id: header.instance_id,
                    next: header.first_sequence.unwrap_or(0),
                }),
                100,
            );
            let accepted = tracker.on_sample(streams.clone());
            let _ = decoder.decode(&accepted.observations, false);
            let accepted = tracker.on_current(streams);
            let _ = decoder.decode(&accepted.observations, true);
            let _ = tracker.on_out_of_range(&header);
            let _ = tracker.on_unreadable();
        }
        Document::Error(errors) => {
            let mut tracker = Tracker::new(None, 10);
            let _ = tracker.on_out_of_range(&errors.header);
            let _ = errors.to_string();
        }
    }
}

/// Every data item of `model` as an address, and `machine_state`.
fn every_address(model: &document::Devices) -> Vec<std::sync::Arc<str>> {
    model
        .devices
        .iter()
        .flat_map(|d| d.data_items.iter())
        .map(|i| std::sync::Arc::from(i.id.as_str()))
        .chain([std::sync::Arc::from(state::MACHINE_STATE)])
        .collect()
}
