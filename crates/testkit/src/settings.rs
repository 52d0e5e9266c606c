//! A kind's settings parsed from TOML text the way the config crate parses one table, for
//! the kinds' unit tests: the settings (if usable) and every diagnostic as one line
//! (`key message hint`).

use std::path::Path;

use backplane_config::Table;

/// Runs `parse` over `text` as one table, then reports unread keys.
pub fn parse<T>(text: &str, parse: impl FnOnce(&mut Table<'_>) -> Option<T>) -> (Option<T>, Vec<String>) {
    let (result, diagnostics) = backplane_config::reader::with_table(text, Path::new("t.toml"), |mut t| {
        let s = parse(&mut t);
        t.finish();
        s
    });
    (
        result.flatten(),
        diagnostics
            .iter()
            .map(|d| format!("{} {} {}", d.key, d.message, d.hint.clone().unwrap_or_default()))
            .collect(),
    )
}
