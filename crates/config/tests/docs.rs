//! docs/configuration.md stays in step with the code it documents.

use std::collections::BTreeSet;
use std::path::Path;

use backplane_model::Unit;

#[test]
fn units_table_lists_exactly_the_known_symbols() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md");
    let text = std::fs::read_to_string(path).unwrap();
    let start = text.find("<!-- units:begin").unwrap();
    let end = text.find("<!-- units:end -->").unwrap();
    let table = &text[start..end];
    let table = &table[table.find("-->").unwrap()..];
    let documented: BTreeSet<&str> = table
        .lines()
        .filter(|l| l.starts_with('|'))
        .skip(2) // the header and its separator
        .flat_map(|l| l.split('`').skip(1).step_by(2))
        .collect();
    let known: BTreeSet<&str> = Unit::known_symbols().collect();
    assert_eq!(documented, known);
}
