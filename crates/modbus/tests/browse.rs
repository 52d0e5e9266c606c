//! `browse` against the filler simulator: answering addresses with their readings, refused
//! ones isolated by halving, and a TOML snippet that the config loader accepts.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::path::Path;

use backplane_connector::Kind;
use backplane_connector::hooks::Options;
use backplane_modbus::browse::Cell;
use backplane_modbus::{BrowseArgs, ModbusKind, browse, spawn_filler_simulator};
use backplane_testkit::net::free_port;

/// The options as `backplane browse URL --name value ...` hands them to the hook.
fn options(pairs: &[(&str, &str)]) -> Options {
    let mut o = Options::default();
    for (name, value) in pairs {
        o.push(name, *value);
    }
    o
}

#[tokio::test]
async fn browse_shows_answering_registers_and_isolates_refused_ones() {
    let (addr, sim) = spawn_filler_simulator("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let url = format!("modbus://{addr}");
    let args = BrowseArgs::from_options(
        &url,
        &options(&[
            ("range", "hr:101-210"),
            ("address-base", "1"),
            ("emit-toml", "hr:101,hr:103:u32:CDAB,hr:107:i16"),
        ]),
    )
    .unwrap();
    let report = browse(args.options().unwrap()).await.unwrap();
    // hr:101..=200 (1-based) exist: protocol 100..=199.
    assert_eq!(report.values.len(), 100);
    assert_eq!(report.values[0].0, 100);
    assert!(matches!(report.values[0].1, Cell::Word(0..=3)));
    assert_eq!(report.refused.len(), 1);
    let (first, last, why) = &report.refused[0];
    assert_eq!((*first, *last), (200, 209));
    assert!(why.contains("illegal data address (exception 2)"), "{why}");
    // Halving isolates the ten refused addresses in far fewer requests than one per address.
    assert!(report.requests < 40, "{} requests", report.requests);

    let table = report.to_string();
    assert!(
        table.contains("refused hr:201..=hr:210: illegal data address"),
        "{table}"
    );
    assert!(table.contains("| CDAB"), "{table}");
    let toml = report.toml().unwrap();
    assert!(
        toml.contains("bindings.hr_103_u32_cdab = { address = \"hr:103:u32:CDAB\" }   # now "),
        "{toml}"
    );

    // The snippet is a valid source for the loader once an asset binds it.
    let model = "[namespace]\nenterprise = \"e\"\nsite = \"s\"\n[models.M.attributes]\nhr_101 = { type = \"uint\" }\n\
                 hr_103_u32_cdab = { type = \"uint\" }\nhr_107_i16 = { type = \"int\" }\n";
    let (sources, bindings): (Vec<&str>, Vec<&str>) = toml
        .lines()
        .filter(|l| !l.starts_with('#'))
        .partition(|l| !l.starts_with("bindings."));
    let text = format!(
        "{model}[[assets]]\npath = \"a\"\nlevel = \"area\"\n[[assets]]\npath = \"a/x\"\nmodel = \"M\"\nsource = \"device\"\n{}\n{}\n",
        bindings.join("\n"),
        sources.join("\n")
    );
    let mut registry = backplane_engine::builtins();
    registry.add_source("modbus", ModbusKind);
    if let Err(d) = backplane_config::load_str(&text, Path::new("t.toml"), &registry.catalog()) {
        panic!(
            "{text}\n{}",
            d.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n")
        );
    }
    println!("{table}\n{toml}");
    sim.abort();
}

#[tokio::test]
async fn browse_reports_a_device_that_is_not_there() {
    let port = free_port();
    // Through the kind's browse hook, as `backplane browse` runs it.
    let browser = ModbusKind.browser().unwrap();
    assert!(browser.schemes.contains(&"tcp"));
    let e = (browser.run)(format!("tcp://127.0.0.1:{port}"), Options::default())
        .await
        .unwrap_err();
    assert!(e.contains("cannot connect to tcp://127.0.0.1"), "{e}");
}
