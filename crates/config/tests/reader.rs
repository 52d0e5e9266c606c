//! The `Table` / `Item` API that source and sink kinds read their keys with.

use std::path::Path;
use std::time::Duration;

use backplane_config::reader::with_table;
use backplane_config::{Diagnostic, Table};

/// Runs `f` on the top-level table of `text` and returns its result and the diagnostics.
fn read<R>(text: &str, f: impl FnOnce(Table<'_>) -> R) -> (R, Vec<Diagnostic>) {
    match with_table(text, Path::new("kind.toml"), f) {
        (Some(result), diagnostics) => (result, diagnostics),
        (None, diagnostics) => unreachable!("invalid TOML: {diagnostics:?}"),
    }
}

fn messages(diagnostics: &[Diagnostic]) -> Vec<String> {
    diagnostics
        .iter()
        .map(|d| {
            format!(
                "{}:{} {}: {}",
                d.location.line, d.location.column, d.key, d.message
            )
        })
        .collect()
}

#[test]
fn wrong_type_is_reported_and_reading_goes_on() {
    let (values, diagnostics) = read("host = 5\nport = \"502\"\nunit_id = 1\n", |mut t| {
        let values = (
            t.optional_str("host").map(str::to_owned),
            t.optional_u64("port"),
            t.optional_u64("unit_id"),
        );
        t.finish();
        values
    });
    assert_eq!(values, (None, None, Some(1)));
    assert_eq!(
        messages(&diagnostics),
        [
            "1:8 host: expected a string, found an integer",
            "2:8 port: expected a non-negative integer, found a string"
        ]
    );
}

#[test]
fn negative_unsigned_and_non_finite_numbers_are_rejected() {
    let (values, diagnostics) = read("a = -3\nb = 7\nc = nan\nd = 2.5\n", |mut t| {
        (
            t.optional_u64("a"),
            t.optional_f64("b"),
            t.optional_f64("c"),
            t.optional_i64("d"),
        )
    });
    assert_eq!(values, (None, Some(7.0), None, None));
    assert_eq!(
        messages(&diagnostics),
        [
            "1:5 a: expected a non-negative integer, found -3",
            "3:5 c: expected a finite number",
            "4:5 d: expected an integer, found a float",
        ]
    );
}

#[test]
fn integers_in_other_bases_are_read() {
    let (values, diagnostics) = read("a = 0x1F\nb = 0o17\nc = 0b101\nd = 1_000\n", |mut t| {
        (
            t.optional_i64("a"),
            t.optional_u64("b"),
            t.optional_i64("c"),
            t.optional_f64("d"),
        )
    });
    assert!(diagnostics.is_empty());
    assert_eq!(values, (Some(31), Some(15), Some(5), Some(1000.0)));
}

#[test]
fn missing_required_key_points_at_the_table() {
    let (_, diagnostics) = read("[device]\nport = 502\n", |mut t| {
        let mut device = t.required_table("device").unwrap();
        let host = device.required_str("host").map(str::to_owned);
        let _ = device.optional_u64("port");
        device.finish();
        t.finish();
        host
    });
    assert_eq!(
        messages(&diagnostics),
        ["1:1 device.host: missing required key `host`"]
    );
}

#[test]
fn durations_are_read_from_strings() {
    let (values, diagnostics) = read("a = \"1m30s\"\nb = \"250ms\"\nc = 3\n", |mut t| {
        (
            t.optional_duration("a"),
            t.optional_duration("b"),
            t.optional_duration("c"),
        )
    });
    assert_eq!(
        values,
        (
            Some(Duration::from_secs(90)),
            Some(Duration::from_millis(250)),
            None
        )
    );
    assert_eq!(
        messages(&diagnostics),
        ["3:5 c: expected a duration string, found an integer"]
    );
    assert_eq!(diagnostics[0].hint.as_deref(), Some("write \"5s\" or \"500ms\""));
}

#[test]
fn take_remaining_marks_user_named_keys_read() {
    let (names, diagnostics) = read(
        "[signals]\nmode = \"fast\"\n\"hr:1\" = {}\n\"hr:2\" = 4\n",
        |mut t| {
            let mut signals = t.required_table("signals").unwrap();
            let _ = signals.optional_str("mode");
            let entries = signals.take_remaining();
            let names: Vec<(String, String, &str)> = entries
                .iter()
                .map(|(k, item)| (k.name.to_owned(), k.key_path().to_owned(), item.type_name()))
                .collect();
            entries[1].0.error("not a signal table", None);
            signals.finish();
            t.finish();
            names
        },
    );
    assert_eq!(
        names,
        [
            ("hr:1".to_owned(), "signals.\"hr:1\"".to_owned(), "table"),
            ("hr:2".to_owned(), "signals.\"hr:2\"".to_owned(), "integer"),
        ]
    );
    assert_eq!(
        messages(&diagnostics),
        ["4:1 signals.\"hr:2\": not a signal table"]
    );
}

#[test]
fn finish_lists_accepted_keys_when_none_is_close() {
    let (_, diagnostics) = read("host = \"a\"\nbaudrate = 9600\n", |mut t| {
        let _ = (t.optional_str("host"), t.optional_u64("port"));
        t.finish();
    });
    assert_eq!(
        messages(&diagnostics),
        ["2:1 baudrate: unknown top-level key `baudrate`"]
    );
    assert_eq!(diagnostics[0].hint.as_deref(), Some("accepted keys: host, port"));
}

#[test]
fn arrays_give_indexed_items() {
    let (values, diagnostics) = read("hosts = [\"a\", 2]\n", |mut t| {
        let items = t.required_item("hosts").unwrap().as_array().unwrap();
        let paths: Vec<String> = items.iter().map(|i| i.key_path().to_owned()).collect();
        items[1].error("expected a host name", None);
        (paths, items[0].as_str().map(str::to_owned))
    });
    assert_eq!(
        values,
        (
            vec!["hosts[0]".to_owned(), "hosts[1]".to_owned()],
            Some("a".to_owned())
        )
    );
    assert_eq!(messages(&diagnostics), ["1:15 hosts[1]: expected a host name"]);
}

#[test]
fn secrets_must_be_references() {
    let (values, diagnostics) = read(
        "a = \"env:TOKEN\"\nb = \"file:/run/secrets/x\"\nc = \"plain\"\n",
        |mut t| {
            (
                t.optional_secret("a").is_some(),
                t.optional_secret("b").is_some(),
                t.optional_secret("c").is_some(),
            )
        },
    );
    assert_eq!(values, (true, true, false));
    assert_eq!(diagnostics.len(), 1);
    assert_eq!(diagnostics[0].key, "c");
}

#[test]
fn syntax_error_yields_no_table() {
    let (result, diagnostics) = with_table("a = [1,\n", Path::new("kind.toml"), |_| ());
    assert!(result.is_none());
    assert_eq!(diagnostics.len(), 1);
    // At the end of the line where the array should have been closed.
    let at = &diagnostics[0].location;
    assert_eq!((at.line, at.column), (1, 8), "{}", diagnostics[0].render(None));
}
