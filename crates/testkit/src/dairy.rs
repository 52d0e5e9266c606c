//! examples/dairy.toml for tests that run without the demo's devices: the Modbus, OPC UA,
//! S7, EtherNet/IP and MTConnect sources and the lab's drop folder are swapped for built-in
//! simulators serving the same addresses with values as those sources would deliver them
//! (typed by the address), and every period is shortened.

/// Simulated stand-ins, by source name.
const STAND_INS: [(&str, &str); 7] = [
    (
        "reception-plc",
        r#"sources]]
name = "reception-plc"
kind = "simulator"
seed = 11
period = "20ms"
[sources.signals]
"DB1.DBW0:int" = { signal = "random_walk", start = 18000, step = 40, min = 0, max = 27648, type = "int" }
"DB1.DBD2:real" = { signal = "random_walk", start = 3.8, step = 0.02, min = 2.0, max = 6.0 }
"DB1.DBW10:int" = { signal = "ramp", from = 2000, to = 26000, period = "10m", type = "int" }
"DB1.DBD12:real" = { signal = "random_walk", start = 4.1, step = 0.02, min = 2.0, max = 6.0 }
# A new tanker's milk every 300 readings, numbered by the reception office.
"DB1.DBD6:udint" = { signal = "counter", start = 2301, increment = 1, every = 300, type = "uint" }
"DB1.DBD16:udint" = { signal = "counter", start = 5101, increment = 1, every = 300, type = "uint" }
"#,
    ),
    (
        "reception-lab",
        r#"sources]]
name = "reception-lab"
kind = "simulator"
seed = 13
period = "20ms"
[sources.signals]
"fat_pct[silo=silo-1]" = { signal = "random_walk", start = 3.9, step = 0.03, min = 3.0, max = 5.0 }
"protein_pct[silo=silo-1]" = { signal = "random_walk", start = 3.4, step = 0.02, min = 2.8, max = 3.8 }
"somatic_cells:uint[silo=silo-1]" = { signal = "random_walk", start = 180000, step = 8000, min = 80000, max = 400000, type = "uint" }
"fat_pct[silo=silo-2]" = { signal = "random_walk", start = 4.05, step = 0.03, min = 3.0, max = 5.0 }
"protein_pct[silo=silo-2]" = { signal = "random_walk", start = 3.35, step = 0.02, min = 2.8, max = 3.8 }
"somatic_cells:uint[silo=silo-2]" = { signal = "random_walk", start = 210000, step = 8000, min = 80000, max = 400000, type = "uint" }
"#,
    ),
    (
        "line1-plc",
        r#"sources]]
name = "line1-plc"
kind = "simulator"
seed = 21
period = "20ms"
[sources.signals]
"hr:100" = { signal = "sequence", values = [2], step = "1s", type = "uint" }
"hr:101" = { signal = "random_walk", start = 4000, step = 15, min = 3600, max = 4400, type = "uint" }
"hr:102:u32" = { signal = "counter", start = 4294960000, increment = 3, rollover = 4294967296, type = "uint" }
"hr:104" = { signal = "counter", start = 65500, increment = 1, rollover = 65536, every = 5, type = "uint" }
"hr:106:i16" = { signal = "random_walk", start = 395, step = 2, min = 380, max = 410, type = "int" }
"#,
    ),
    (
        "line2-controller",
        r#"sources]]
name = "line2-controller"
kind = "simulator"
seed = 22
period = "20ms"
[sources.signals]
"ns=2;s=Filler2.Status" = { signal = "sequence", values = [20], step = "1s", type = "uint" }
"ns=2;s=Filler2.Speed" = { signal = "random_walk", start = 22800, step = 60, min = 21000, max = 24600 }
"ns=2;s=Filler2.GoodCount" = { signal = "counter", start = 120000, increment = 3, type = "uint" }
"ns=2;s=Filler2.RejectCount" = { signal = "counter", start = 310, increment = 1, every = 7, type = "uint" }
"ns=2;s=Filler2.ProductTemp" = { signal = "random_walk", start = 4.2, step = 0.05, min = 3.0, max = 6.0 }
"#,
    ),
    (
        "processing-plc",
        r#"sources]]
name = "processing-plc"
kind = "simulator"
seed = 12
period = "20ms"
[sources.signals]
"ns=2;s=HTST.HoldTemp" = { signal = "sine", offset = 72.6, amplitude = 0.4, period = "3s" }
"ns=2;s=HTST.Flow" = { signal = "random_walk", start = 18.0, step = 0.05, min = 15.0, max = 21.0 }
"ns=2;s=HTST.Status" = { signal = "sequence", values = [1, 1, 5, 1], step = "1s", type = "uint" }
"ns=2;s=HTST.BatchNumber" = { signal = "constant", value = 4711, type = "uint" }
"#,
    ),
    (
        "palletizer-plc",
        r#"sources]]
name = "palletizer-plc"
kind = "simulator"
seed = 31
period = "20ms"
[sources.signals]
"Palletizer.State" = { signal = "sequence", values = [2], step = "1s", type = "int" }
"Palletizer.PalletCount" = { signal = "counter", start = 1200, increment = 1, every = 50, type = "int" }
"Palletizer.LayerCount" = { signal = "sequence", values = [0, 1, 2, 3, 4], step = "1s", type = "int" }
"Palletizer.LayersPerPallet" = { signal = "constant", value = 5, type = "int" }
"Palletizer.CasesPerMinute" = { signal = "random_walk", start = 60.0, step = 0.5, min = 56.0, max = 64.0 }
"Palletizer.FaultCode" = { signal = "constant", value = 0, type = "int" }
"Palletizer.Recipe" = { signal = "sequence", values = ["MILK-1L-6x4"], step = "1s", type = "string" }
"#,
    ),
    (
        "shop-cnc",
        r#"sources]]
name = "shop-cnc"
kind = "simulator"
seed = 41
period = "20ms"
[sources.signals]
"machine_state" = { signal = "sequence", values = ["running", "running", "idle", "down"], step = "1s", type = "string" }
"exec" = { signal = "sequence", values = ["ACTIVE", "ACTIVE", "READY", "INTERRUPTED"], step = "1s", type = "string" }
"mode" = { signal = "sequence", values = ["AUTOMATIC"], step = "1s", type = "string" }
"program" = { signal = "sequence", values = ["O1000"], step = "1s", type = "string" }
"Sspeed" = { signal = "random_walk", start = 8000.0, step = 20.0, min = 7800.0, max = 8200.0 }
"Sload" = { signal = "random_walk", start = 42.0, step = 0.5, min = 30.0, max = 55.0 }
"Xact" = { signal = "sine", offset = 0.0, amplitude = 120.0, period = "30s" }
"pcount" = { signal = "counter", start = 0, increment = 1, every = 250, type = "uint" }
"system" = { signal = "sequence", values = ["normal", "normal", "normal", "fault"], step = "1s", type = "string" }
"#,
    ),
];

/// `text` (examples/dairy.toml or a variant) without its OPC UA server sink: tests run in
/// parallel and would all claim its port (the server has tests of its own).
pub fn without_opcua_server(text: &str) -> String {
    without_sinks(text, "kind = \"opcua-server\"")
}

fn without_sinks(text: &str, kind: &str) -> String {
    text.split("\n[[")
        .enumerate()
        .filter(|(_, table)| !(table.starts_with("sinks]]") && table.contains(kind)))
        .map(|(i, table)| {
            if i == 0 {
                table.to_owned()
            } else {
                format!("\n[[{table}")
            }
        })
        .collect()
}

/// The demo configuration with simulated devices and 20 ms periods, without its OPC UA
/// server.
pub fn simulated() -> String {
    let text = without_opcua_server(include_str!("../../../examples/dairy.toml"));
    let swapped: String = text
        .split("\n[[")
        .enumerate()
        .map(|(i, table)| {
            let stand_in = STAND_INS.iter().find(|(name, _)| {
                table.starts_with("sources]]") && table.contains(&format!("name = \"{name}\""))
            });
            let table = stand_in.map_or(table, |(_, block)| *block);
            if i == 0 {
                table.to_owned()
            } else {
                format!("\n[[{table}")
            }
        })
        .collect();
    swapped
        .replace("period = \"500ms\"", "period = \"20ms\"")
        .replace("period = \"1s\"", "period = \"20ms\"")
}

/// [`simulated`] without the demo's own historian sink, for tests that configure their own.
pub fn simulated_without_history() -> String {
    without_sinks(&simulated(), "kind = \"historian\"")
}
