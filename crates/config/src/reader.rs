//! A spanned TOML walker. [`Table`] and [`Item`] hand out values together with their place
//! in the file, record which keys were read (so [`Table::finish`] can call every other key
//! unknown) and report problems into one shared list instead of stopping at the first.

use std::cell::RefCell;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::secret::Secret;

/// 1-based position in a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    /// Counted in characters, not bytes.
    pub column: usize,
}

/// One problem found in the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub location: Location,
    /// Dotted key path, e.g. `sources[1].period` or `assets[3].bindings.speed.scale`; empty
    /// for problems that belong to no key (syntax errors, unreadable files).
    pub key: String,
    pub message: String,
    pub hint: Option<String>,
}

impl Diagnostic {
    /// Renders the diagnostic like a compiler, quoting the source line from `source` (the
    /// text of `location.file`) when given.
    pub fn render(&self, source: Option<&str>) -> String {
        let Location { file, line, column } = &self.location;
        let mut out = format!("{}:{line}:{column}: error: {}\n", file.display(), self.message);
        if let Some(text) = source.and_then(|s| s.lines().nth(line.saturating_sub(1))) {
            let text = &redact_secrets(text);
            let gutter = line.to_string().len() + 3;
            // Keep tabs so the carets line up with the quoted text.
            let pad: String = text
                .chars()
                .take(column.saturating_sub(1))
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            let width = token_width(text.chars().skip(column.saturating_sub(1)));
            out.push_str(&format!("{line:>gutter$} | {text}\n"));
            out.push_str(&format!("{:gutter$} | {pad}{}\n", "", "^".repeat(width)));
        }
        if !self.key.is_empty() {
            out.push_str(&format!("   = key: {}\n", self.key));
        }
        if let Some(hint) = &self.hint {
            out.push_str(&format!("   = hint: {hint}\n"));
        }
        out
    }
}

/// Keys whose string values are secrets. A diagnostic quoting its line must not print a
/// secret someone wrote inline by mistake (the error is about exactly that).
const SECRET_KEYS: &[&str] = &[
    "password",
    "token",
    "secret",
    "credentials",
    "nkey",
    "seed",
    "passphrase",
    "key",
    "api_key",
];

/// `line` with the quoted value of every secret key masked character by character (so the
/// carets below still line up), unless it is a reference (`env:`, `file:`).
pub(crate) fn redact_secrets(line: &str) -> String {
    let chars: Vec<char> = line.chars().collect();
    let mut out = chars.clone();
    let mut i = 0;
    while i < chars.len() {
        let at_word_start = i == 0 || !(chars[i - 1].is_ascii_alphanumeric() || chars[i - 1] == '_');
        if !(at_word_start && (chars[i].is_ascii_alphabetic() || chars[i] == '"')) {
            i += 1;
            continue;
        }
        // A bare or quoted key, then `=`, then a quoted value.
        let quoted = chars[i] == '"';
        let start = if quoted { i + 1 } else { i };
        let mut end = start;
        while end < chars.len()
            && (chars[end].is_ascii_alphanumeric() || chars[end] == '_' || chars[end] == '-')
        {
            end += 1;
        }
        let key: String = chars[start..end].iter().collect::<String>().to_ascii_lowercase();
        let mut j = if quoted && chars.get(end) == Some(&'"') {
            end + 1
        } else {
            end
        };
        while chars.get(j).is_some_and(|c| *c == ' ' || *c == '\t') {
            j += 1;
        }
        let is_secret =
            SECRET_KEYS.contains(&key.as_str()) || key.ends_with("_password") || key.ends_with("_token");
        if end == start || chars.get(j) != Some(&'=') || !is_secret {
            i = end.max(i + 1);
            continue;
        }
        j += 1;
        while chars.get(j).is_some_and(|c| *c == ' ' || *c == '\t') {
            j += 1;
        }
        let Some(&q) = chars.get(j).filter(|c| **c == '"' || **c == '\'') else {
            i = j;
            continue;
        };
        let value_start = j + 1;
        let mut k = value_start;
        while k < chars.len() && chars[k] != q {
            k += if chars[k] == '\\' && q == '"' { 2 } else { 1 };
        }
        let k = k.min(chars.len());
        let value: String = chars[value_start..k].iter().collect();
        if !(value.starts_with("env:") || value.starts_with("file:")) {
            for c in &mut out[value_start..k] {
                *c = '*';
            }
        }
        i = k + 1;
    }
    out.into_iter().collect()
}

/// How many characters the token starting here spans: a quoted string up to its closing
/// quote, an array, inline table or table header up to its closing bracket (or the end of
/// the line), otherwise up to the next space or TOML punctuation; at least one.
fn token_width(chars: impl Iterator<Item = char>) -> usize {
    let chars: Vec<char> = chars.collect();
    if chars.is_empty() {
        return 1;
    }
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, &c) in chars.iter().enumerate() {
        match quote {
            Some(q) => {
                if c == q && !escaped {
                    quote = None;
                    if depth == 0 {
                        return i + 1;
                    }
                }
                escaped = q == '"' && c == '\\' && !escaped;
            }
            None => match c {
                '"' | '\'' => quote = Some(c),
                '[' | '{' => depth += 1,
                ']' | '}' if depth > 0 => {
                    depth -= 1;
                    if depth == 0 {
                        return i + 1;
                    }
                }
                _ if depth == 0
                    && i > 0
                    && (c.is_whitespace() || matches!(c, '=' | ',' | ']' | '}' | '#')) =>
                {
                    return i;
                }
                _ => {}
            },
        }
    }
    chars.len().max(1)
}

impl fmt::Display for Diagnostic {
    /// Quotes the source line when `location.file` can be read; diagnostics are rare and
    /// printed once, so reading the file here keeps [`Diagnostic`] a plain value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = std::fs::read_to_string(&self.location.file).ok();
        let text = self.render(source.as_deref());
        f.write_str(text.trim_end())
    }
}

/// One configuration file: its path as given and its text, indexed by line.
#[derive(Debug)]
pub(crate) struct SourceFile {
    pub path: PathBuf,
    pub text: String,
    line_starts: Vec<usize>,
}

impl SourceFile {
    pub fn new(path: PathBuf, text: String) -> SourceFile {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        SourceFile {
            path,
            text,
            line_starts,
        }
    }

    /// The directory that relative paths in this file are relative to.
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new(""))
    }

    pub fn location(&self, offset: usize) -> Location {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&start| start <= offset).max(1);
        let start = self.line_starts.get(line - 1).copied().unwrap_or(0);
        let column = self
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count())
            + 1;
        Location {
            file: self.path.clone(),
            line,
            column,
        }
    }
}

/// Where diagnostics are collected while reading.
#[derive(Debug, Default)]
pub(crate) struct Sink(RefCell<Vec<Diagnostic>>);

impl Sink {
    pub fn push(&self, diagnostic: Diagnostic) {
        self.0.borrow_mut().push(diagnostic);
    }

    pub fn is_empty(&self) -> bool {
        self.0.borrow().is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.borrow().len()
    }

    pub fn into_inner(self) -> Vec<Diagnostic> {
        self.0.into_inner()
    }
}

/// What every [`Table`], [`Item`] and [`KeyRef`] carries: the file it came from and where
/// to report.
#[derive(Clone, Copy)]
pub(crate) struct Ctx<'a> {
    pub file: &'a SourceFile,
    pub sink: &'a Sink,
}

impl Ctx<'_> {
    fn report(&self, offset: usize, key: &str, message: String, hint: Option<String>) {
        self.sink.push(Diagnostic {
            location: self.file.location(offset),
            key: key.to_owned(),
            message,
            hint,
        });
    }
}

/// Joins a key path and one more key, quoting keys that are not bare TOML keys.
fn join(path: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-');
    let key = if bare { key.to_owned() } else { format!("{key:?}") };
    if path.is_empty() {
        key
    } else {
        format!("{path}.{key}")
    }
}

/// "a string", "an integer", ...: the article makes messages read as sentences.
pub(crate) fn with_article(type_name: &str) -> String {
    let article = if type_name.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {type_name}")
}

/// A TOML table being read. Records every key asked for, so `finish` can report keys
/// never read.
pub struct Table<'a> {
    ctx: Ctx<'a>,
    entries: &'a DeTable<'a>,
    /// Start of the table header (`[name]`, `{`, or the first key of a dotted table).
    offset: usize,
    path: String,
    asked: Vec<String>,
}

impl fmt::Debug for Table<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Table")
            .field("path", &self.path)
            .field("asked", &self.asked)
            .finish_non_exhaustive()
    }
}

/// A value as canonical text: integers and floats by value, table keys sorted, no spans,
/// comments or layout, so two files that say the same thing give the same text.
fn canonical(value: &DeValue<'_>, out: &mut String) {
    use fmt::Write as _;
    match value {
        DeValue::String(s) => {
            let _ = write!(out, "{:?}", s.as_ref());
        }
        DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
            Ok(n) => {
                let _ = write!(out, "{n}");
            }
            Err(_) => out.push_str(i.as_str()),
        },
        DeValue::Float(f) => match f.as_str().parse::<f64>() {
            Ok(x) => {
                let _ = write!(out, "{x:?}");
            }
            Err(_) => out.push_str(f.as_str()),
        },
        DeValue::Boolean(b) => {
            let _ = write!(out, "{b}");
        }
        DeValue::Datetime(d) => {
            let _ = write!(out, "{d}");
        }
        DeValue::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item.get_ref(), out);
            }
            out.push(']');
        }
        DeValue::Table(entries) => {
            out.push('{');
            for (i, (key, value)) in canonical_entries(entries).into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{key:?}={value}");
            }
            out.push('}');
        }
    }
}

fn canonical_entries(entries: &DeTable<'_>) -> std::collections::BTreeMap<String, String> {
    entries
        .iter()
        .map(|(key, value)| {
            let mut text = String::new();
            canonical(value.get_ref(), &mut text);
            (key.get_ref().to_string(), text)
        })
        .collect()
}

impl<'a> Table<'a> {
    pub(crate) fn root(ctx: Ctx<'a>, doc: &'a Spanned<DeTable<'a>>) -> Table<'a> {
        Table {
            ctx,
            entries: doc.get_ref(),
            offset: doc.span().start,
            path: String::new(),
            asked: Vec::new(),
        }
    }

    /// Every key of this table with its value as canonical text (see `canonical`), for
    /// comparing two configurations (`backplane plan`); nothing is marked as read.
    pub fn canonical_keys(&self) -> std::collections::BTreeMap<String, String> {
        canonical_entries(self.entries)
    }

    /// Dotted key path of this table (empty for the top level).
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn has(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    /// Marks `key` as read and returns its value, if present.
    fn take(&mut self, key: &str) -> Option<Item<'a>> {
        if !self.asked.iter().any(|k| k == key) {
            self.asked.push(key.to_owned());
        }
        let value = self.entries.get(key)?;
        Some(Item {
            ctx: self.ctx,
            value,
            path: join(&self.path, key),
        })
    }

    /// Marks `key` as read without reading it (for keys handled elsewhere).
    pub(crate) fn skip(&mut self, key: &str) {
        self.take(key);
    }

    /// How many diagnostics have been reported so far, by any table.
    pub(crate) fn reported(&self) -> usize {
        self.ctx.sink.len()
    }

    fn missing(&self, key: &str) {
        let message = format!("missing required key `{key}`");
        self.ctx
            .report(self.offset, &join(&self.path, key), message, None);
    }

    pub fn optional_str(&mut self, key: &str) -> Option<&'a str> {
        self.take(key)?.expect_str()
    }

    pub fn required_str(&mut self, key: &str) -> Option<&'a str> {
        self.required(key)?.expect_str()
    }

    /// A required string read by `parse`, whose `(message, hint)` error is reported at
    /// the key (e.g. a source's `url`).
    pub fn required_parsed<T>(
        &mut self,
        key: &str,
        parse: impl FnOnce(&str) -> Result<T, (String, String)>,
    ) -> Option<T> {
        match parse(self.required_str(key)?) {
            Ok(value) => Some(value),
            Err((message, hint)) => {
                self.error(key, message, Some(hint));
                None
            }
        }
    }

    pub fn optional_bool(&mut self, key: &str) -> Option<bool> {
        let item = self.take(key)?;
        let value = item.as_bool();
        if value.is_none() {
            item.type_error("a boolean (true or false)");
        }
        value
    }

    pub fn optional_i64(&mut self, key: &str) -> Option<i64> {
        self.take(key)?.expect_i64()
    }

    pub fn required_i64(&mut self, key: &str) -> Option<i64> {
        self.required(key)?.expect_i64()
    }

    /// Negative numbers are reported.
    pub fn optional_u64(&mut self, key: &str) -> Option<u64> {
        self.take(key)?.expect_u64()
    }

    pub fn required_u64(&mut self, key: &str) -> Option<u64> {
        self.required(key)?.expect_u64()
    }

    /// Integers are accepted; infinities and NaN are not.
    pub fn optional_f64(&mut self, key: &str) -> Option<f64> {
        self.take(key)?.expect_f64()
    }

    pub fn required_f64(&mut self, key: &str) -> Option<f64> {
        self.required(key)?.expect_f64()
    }

    /// A duration written as `"250ms"`, `"5s"`, `"1m30s"`, ... (see [`parse_duration`]).
    pub fn optional_duration(&mut self, key: &str) -> Option<Duration> {
        self.take(key)?.expect_duration()
    }

    /// An optional duration of at least `min`, `default` when absent; `None` (reported
    /// with the minimum) when shorter.
    pub fn duration_at_least(&mut self, key: &str, default: Duration, min: Duration) -> Option<Duration> {
        let d = self.optional_duration(key).unwrap_or(default);
        if d < min {
            self.error(key, format!("`{key}` must be at least {min:?}"), None);
            return None;
        }
        Some(d)
    }

    pub fn required_duration(&mut self, key: &str) -> Option<Duration> {
        self.required(key)?.expect_duration()
    }

    /// A size: a number of bytes, or a string such as `"500MB"` or `"2GiB"` (see
    /// [`parse_bytes`]); `"unlimited"` is refused here.
    pub fn optional_bytes(&mut self, key: &str) -> Option<u64> {
        let item = self.take(key)?;
        let hint = Some("write a number of bytes or a size such as \"500MB\" or \"2GiB\"".to_owned());
        match (item.as_i64(), item.as_str()) {
            (Some(n), _) => match u64::try_from(n) {
                Ok(n) => Some(n),
                Err(_) => {
                    item.error("a size cannot be negative", hint);
                    None
                }
            },
            (None, Some(text)) => match parse_bytes(text) {
                Ok(Some(n)) => Some(n),
                Ok(None) => {
                    item.error("this size cannot be unlimited", hint);
                    None
                }
                Err(reason) => {
                    item.error(reason, hint);
                    None
                }
            },
            _ => {
                item.error(
                    format!("expected a size, found {}", with_article(item.type_name())),
                    hint,
                );
                None
            }
        }
    }

    pub fn optional_table(&mut self, key: &str) -> Option<Table<'a>> {
        self.take(key)?.expect_table()
    }

    pub fn required_table(&mut self, key: &str) -> Option<Table<'a>> {
        self.required(key)?.expect_table()
    }

    /// Any type, for the caller to inspect.
    pub fn optional_item(&mut self, key: &str) -> Option<Item<'a>> {
        self.take(key)
    }

    pub fn required_item(&mut self, key: &str) -> Option<Item<'a>> {
        self.required(key)
    }

    fn required(&mut self, key: &str) -> Option<Item<'a>> {
        let item = self.take(key);
        if item.is_none() {
            self.missing(key);
        }
        item
    }

    /// A secret reference, `env:NAME` or `file:PATH`; a relative file path is relative to
    /// this file's directory.
    pub fn optional_secret(&mut self, key: &str) -> Option<Secret> {
        let item = self.take(key)?;
        let text = item.expect_str()?;
        match Secret::parse(text, self.ctx.file.dir()) {
            Ok(secret) => Some(secret),
            Err(_) => {
                item.error(
                    "a secret must be a reference (`env:NAME` or `file:PATH`), not the secret itself",
                    Some(
                        "write `env:NAME` to read it from an environment variable, or `file:PATH` to read it from a file"
                            .to_owned(),
                    ),
                );
                None
            }
        }
    }

    /// For map-like tables whose keys are user names (signals, attributes, bindings): all
    /// remaining entries, marked read.
    pub fn take_remaining(&mut self) -> Vec<(KeyRef<'a>, Item<'a>)> {
        let mut out = Vec::new();
        for (key, value) in self.entries.iter() {
            let name: &'a str = key.get_ref();
            if self.asked.iter().any(|k| k == name) {
                continue;
            }
            self.asked.push(name.to_owned());
            let path = join(&self.path, name);
            out.push((
                KeyRef {
                    name,
                    ctx: self.ctx,
                    offset: key.span().start,
                    path: path.clone(),
                },
                Item {
                    ctx: self.ctx,
                    value,
                    path,
                },
            ));
        }
        out
    }

    /// Reports a problem at `key`'s value (at the table itself when the key is absent).
    pub fn error(&self, key: &str, message: impl Into<String>, hint: Option<String>) {
        let offset = self.entries.get(key).map_or(self.offset, |v| v.span().start);
        self.ctx
            .report(offset, &join(&self.path, key), message.into(), hint);
    }

    /// Reports every key never read, with the closest read key as a suggestion.
    pub fn finish(self) {
        for (key, _) in self.entries.iter() {
            let name: &str = key.get_ref();
            if self.asked.iter().any(|k| k == name) {
                continue;
            }
            let message = if self.path.is_empty() {
                format!("unknown top-level key `{name}`")
            } else {
                format!("unknown key `{name}` in {}", self.path)
            };
            let hint = match closest(name, self.asked.iter().map(String::as_str)) {
                Some(best) => format!("did you mean `{best}`?"),
                None if self.asked.is_empty() => "this table accepts no keys".to_owned(),
                None => format!("accepted keys: {}", self.asked.join(", ")),
            };
            self.ctx
                .report(key.span().start, &join(&self.path, name), message, Some(hint));
        }
    }
}

/// One value with its location.
#[derive(Clone)]
pub struct Item<'a> {
    ctx: Ctx<'a>,
    value: &'a Spanned<DeValue<'a>>,
    path: String,
}

impl fmt::Debug for Item<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Item")
            .field("path", &self.path)
            .field("type", &self.type_name())
            .finish()
    }
}

impl<'a> Item<'a> {
    pub fn key_path(&self) -> &str {
        &self.path
    }

    /// "string", "integer", "float", "boolean", "datetime", "array" or "table".
    pub fn type_name(&self) -> &'static str {
        self.value.get_ref().type_str()
    }

    pub fn as_str(&self) -> Option<&'a str> {
        match self.value.get_ref() {
            DeValue::String(s) => Some(s.as_ref()),
            _ => None,
        }
    }

    /// `None` for non-integers and integers outside `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match self.value.get_ref() {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix()).ok(),
            _ => None,
        }
    }

    /// Floats and integers.
    pub fn as_f64(&self) -> Option<f64> {
        match self.value.get_ref() {
            DeValue::Float(f) => f.as_str().parse().ok(),
            DeValue::Integer(_) => self.as_i64().map(|i| i as f64),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        self.value.get_ref().as_bool()
    }

    pub fn as_table(&self) -> Option<Table<'a>> {
        match self.value.get_ref() {
            DeValue::Table(entries) => Some(Table {
                ctx: self.ctx,
                entries,
                offset: self.value.span().start,
                path: self.path.clone(),
                asked: Vec::new(),
            }),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<Vec<Item<'a>>> {
        match self.value.get_ref() {
            DeValue::Array(items) => Some(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, value)| Item {
                        ctx: self.ctx,
                        value,
                        path: format!("{}[{i}]", self.path),
                    })
                    .collect(),
            ),
            _ => None,
        }
    }

    /// Reports a problem at this value.
    pub fn error(&self, message: impl Into<String>, hint: Option<String>) {
        self.ctx
            .report(self.value.span().start, &self.path, message.into(), hint);
    }

    pub(crate) fn location(&self) -> Location {
        self.ctx.file.location(self.value.span().start)
    }

    /// Reports a problem at character `at` of this string value (e.g. inside an
    /// expression), mapping the decoded text back to the file through quotes and escapes.
    pub(crate) fn error_in_str(&self, at: usize, message: impl Into<String>, hint: Option<String>) {
        let span = self.value.span();
        let raw = self.ctx.file.text.get(span.clone()).unwrap_or("");
        let offset = span.start + raw_offset(raw, at);
        self.ctx.report(offset, &self.path, message.into(), hint);
    }

    /// Reports "expected `expected`, found a ...".
    pub(crate) fn type_error(&self, expected: &str) {
        self.error(
            format!("expected {expected}, found {}", with_article(self.type_name())),
            None,
        );
    }

    pub(crate) fn expect_str(&self) -> Option<&'a str> {
        let value = self.as_str();
        if value.is_none() {
            self.type_error("a string");
        }
        value
    }

    pub(crate) fn expect_table(&self) -> Option<Table<'a>> {
        let value = self.as_table();
        if value.is_none() {
            self.type_error("a table");
        }
        value
    }

    pub(crate) fn expect_array(&self) -> Option<Vec<Item<'a>>> {
        let value = self.as_array();
        if value.is_none() {
            self.type_error("an array");
        }
        value
    }

    pub(crate) fn expect_i64(&self) -> Option<i64> {
        match self.value.get_ref() {
            DeValue::Integer(_) => {
                let value = self.as_i64();
                if value.is_none() {
                    self.error("integer out of range (-2^63 ..= 2^63-1)", None);
                }
                value
            }
            _ => {
                self.type_error("an integer");
                None
            }
        }
    }

    pub(crate) fn expect_u64(&self) -> Option<u64> {
        match self.value.get_ref() {
            DeValue::Integer(i) => {
                let value = u64::from_str_radix(i.as_str(), i.radix()).ok();
                if value.is_none() {
                    match self.as_i64() {
                        Some(n) if n < 0 => {
                            self.error(format!("expected a non-negative integer, found {n}"), None)
                        }
                        _ => self.error("integer out of range (0 ..= 2^64-1)", None),
                    }
                }
                value
            }
            _ => {
                self.type_error("a non-negative integer");
                None
            }
        }
    }

    pub(crate) fn expect_f64(&self) -> Option<f64> {
        let value = self.as_f64();
        match value {
            Some(v) if v.is_finite() => Some(v),
            Some(_) => {
                self.error("expected a finite number", None);
                None
            }
            None if matches!(self.value.get_ref(), DeValue::Integer(_)) => {
                self.expect_i64().map(|i| i as f64)
            }
            None => {
                self.type_error("a number");
                None
            }
        }
    }

    pub(crate) fn expect_duration(&self) -> Option<Duration> {
        let hint = Some(DURATION_HINT.to_owned());
        let Some(text) = self.as_str() else {
            self.error(
                format!(
                    "expected a duration string, found {}",
                    with_article(self.type_name())
                ),
                hint,
            );
            return None;
        };
        match parse_duration(text) {
            Ok(d) => Some(d),
            Err(reason) => {
                self.error(format!("invalid duration `{text}`: {reason}"), hint);
                None
            }
        }
    }
}

const DURATION_HINT: &str = "write \"5s\" or \"500ms\"";

/// The byte offset in `raw` (a TOML string as written, quotes included) of decoded
/// character `at`: quotes are skipped, an escape sequence is one character, and a
/// multi-line string's first newline is trimmed as TOML does.
fn raw_offset(raw: &str, at: usize) -> usize {
    let (open, literal) = if raw.starts_with("\"\"\"") {
        (3, false)
    } else if raw.starts_with("'''") {
        (3, true)
    } else {
        (1, raw.starts_with('\''))
    };
    let mut i = open.min(raw.len());
    if open == 3 {
        if raw[i..].starts_with("\r\n") {
            i += 2;
        } else if raw[i..].starts_with('\n') {
            i += 1;
        }
    }
    let mut chars = raw[i..].char_indices().peekable();
    let mut decoded = 0;
    while let Some((j, c)) = chars.next() {
        if decoded == at {
            return i + j;
        }
        if c == '\\' && !literal {
            let skip = match chars.peek().map(|&(_, n)| n) {
                Some('u') => 5,
                Some('U') => 9,
                _ => 1,
            };
            for _ in 0..skip {
                chars.next();
            }
        }
        decoded += 1;
    }
    raw.len().saturating_sub(open)
}

/// A key of a map-like table (user-chosen names: attributes, bindings, signals).
#[derive(Clone)]
pub struct KeyRef<'a> {
    pub name: &'a str,
    ctx: Ctx<'a>,
    offset: usize,
    path: String,
}

impl fmt::Debug for KeyRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRef")
            .field("name", &self.name)
            .field("path", &self.path)
            .finish()
    }
}

impl KeyRef<'_> {
    /// Dotted key path of this key.
    pub fn key_path(&self) -> &str {
        &self.path
    }

    /// Reports a problem at the key itself.
    pub fn error(&self, message: impl Into<String>, hint: Option<String>) {
        self.ctx.report(self.offset, &self.path, message.into(), hint);
    }

    pub(crate) fn location(&self) -> Location {
        self.ctx.file.location(self.offset)
    }
}

/// Why a duration such as `"5s"` could not be read (see [`parse_duration`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Nothing was written.
    #[error("empty")]
    Empty,
    /// Digits (and dots) only, such as `"5"`: the unit is missing.
    #[error("a bare number has no unit")]
    BareNumber,
    /// Something other than digits where a number must start; `at` is the rest of the text.
    #[error("expected a number at `{at}`")]
    ExpectedNumber { at: String },
    /// A number inside a compound (`"1m30"`) without a unit.
    #[error("`{number}` has no unit (ms, s, m, h, d)")]
    NoUnit { number: String },
    /// A unit other than ms, s, m, h and d.
    #[error("unknown unit `{unit}` (use ms, s, m, h or d)")]
    UnknownUnit { unit: String },
    /// More milliseconds than a `u64` holds.
    #[error("too large")]
    TooLarge,
}

/// Parses `"250ms"`, `"5s"`, `"2m"`, `"1h"`, `"1d"` and compounds such as `"1m30s"`.
/// Zero is accepted; callers check ranges.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    if text.bytes().all(|c| c.is_ascii_digit() || c == b'.') {
        return Err(DurationError::BareNumber);
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return Err(DurationError::ExpectedNumber { at: rest.to_owned() });
        }
        let (number, tail) = rest.split_at(digits);
        let letters = tail.len() - tail.trim_start_matches(|c: char| c.is_ascii_alphabetic()).len();
        let (unit, tail) = tail.split_at(letters);
        let millis_per_unit: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" => {
                return Err(DurationError::NoUnit {
                    number: number.to_owned(),
                });
            }
            other => {
                return Err(DurationError::UnknownUnit {
                    unit: other.to_owned(),
                });
            }
        };
        let part = number
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(millis_per_unit))
            .ok_or(DurationError::TooLarge)?;
        total = total
            .checked_add(Duration::from_millis(part))
            .ok_or(DurationError::TooLarge)?;
        rest = tail;
    }
    Ok(total)
}

/// `"500MB"`, `"1.5GiB"`, `"10 GB"` or `"unlimited"`; decimal (kB, MB, GB, TB) and binary
/// (KiB, MiB, GiB, TiB) units.
pub fn parse_bytes(text: &str) -> Result<Option<u64>, String> {
    let text = text.trim();
    if text == "unlimited" {
        return Ok(None);
    }
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size: write e.g. \"500MB\" or \"2GiB\""))?;
    let factor: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "kB" | "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        "TiB" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "unknown size unit `{other}` (use B, kB, MB, GB, TB, KiB, MiB, GiB, TiB)"
            ));
        }
    };
    let bytes = number * factor;
    if !bytes.is_finite() || bytes >= 1.8e19 {
        return Err(format!("`{text}` is too large"));
    }
    Ok(Some(bytes as u64))
}

/// Levenshtein distance in characters (for "did you mean" hints).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1).min(row[j] + 1).min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// The candidate closest to `word` within edit distance 2 (and closer than the word is
/// long, so `x` does not suggest `id`).
pub(crate) fn closest<'s>(word: &str, candidates: impl IntoIterator<Item = &'s str>) -> Option<&'s str> {
    let len = word.chars().count();
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= 2 && *d < len)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// "did you mean `x`?" when one candidate is close, else "{what}: a, b, c".
pub(crate) fn suggest<'s>(
    word: &str,
    candidates: impl IntoIterator<Item = &'s str>,
    what: &str,
) -> Option<String> {
    let all: Vec<&str> = candidates.into_iter().collect();
    if let Some(best) = closest(word, all.iter().copied()) {
        return Some(format!("did you mean `{best}`?"));
    }
    if all.is_empty() {
        return None;
    }
    const MAX: usize = 12;
    let mut list = all.iter().take(MAX).copied().collect::<Vec<_>>().join(", ");
    if all.len() > MAX {
        list.push_str(", ...");
    }
    Some(format!("{what}: {list}"))
}

/// Reads `text` as a TOML document and hands its top-level table to `f`; for tests of
/// [`crate::KindSpec`] implementations. Returns `f`'s result (`None` on a syntax error) and
/// every diagnostic reported.
pub fn with_table<R>(
    text: &str,
    origin: &Path,
    f: impl FnOnce(Table<'_>) -> R,
) -> (Option<R>, Vec<Diagnostic>) {
    let file = SourceFile::new(origin.to_owned(), text.to_owned());
    let sink = Sink::default();
    let result = match parse_document(&file) {
        Ok(doc) => Some(f(Table::root(
            Ctx {
                file: &file,
                sink: &sink,
            },
            &doc,
        ))),
        Err(diagnostic) => {
            sink.push(diagnostic);
            None
        }
    };
    (result, sink.into_inner())
}

/// Parses a whole file; a syntax error becomes one diagnostic at its position.
pub(crate) fn parse_document(file: &SourceFile) -> Result<Spanned<DeTable<'_>>, Diagnostic> {
    DeTable::parse(&file.text).map_err(|e| Diagnostic {
        location: file.location(e.span().map_or(0, |s| s.start)),
        key: String::new(),
        message: format!("TOML syntax error: {}", e.message()),
        hint: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_lines_mask_inline_secrets_but_keep_references_and_other_values() {
        assert_eq!(
            redact_secrets(r#"password = "hunter2""#),
            r#"password = "*******""#
        );
        assert_eq!(
            redact_secrets(r#"tls = { key = "file:c.key" }, token = 'abc', name = "x""#),
            r#"tls = { key = "file:c.key" }, token = '***', name = "x""#
        );
        assert_eq!(
            redact_secrets(r#"mqtt_password="p\"w" # note"#),
            r#"mqtt_password="****" # note"#
        );
        assert_eq!(redact_secrets(r#"monkey = "banana""#), r#"monkey = "banana""#);
        assert_eq!(
            redact_secrets(r#"password = "unterminated"#),
            r#"password = "************"#
        );
        assert_eq!(redact_secrets("token ="), "token =");
    }

    #[test]
    fn durations_accept_units_and_compounds() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn durations_reject_bare_numbers_and_unknown_units() {
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("1.5s").is_err());
        assert!(parse_duration("5sec").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
    }

    #[test]
    fn edit_distance_counts_characters() {
        assert_eq!(edit_distance("perod", "period"), 1);
        assert_eq!(edit_distance("°C", "C"), 1);
        assert_eq!(closest("x", ["id"]), None);
        assert_eq!(closest("adress", ["address", "source"]), Some("address"));
    }

    #[test]
    fn locations_count_columns_in_characters() {
        let file = SourceFile::new("t.toml".into(), "a = 1\nb = \"é\" # x\n".into());
        assert_eq!(
            file.location(0),
            Location {
                file: "t.toml".into(),
                line: 1,
                column: 1
            }
        );
        let hash = file.text.find('#').unwrap();
        assert_eq!(file.location(hash).line, 2);
        assert_eq!(file.location(hash).column, 9);
    }

    #[test]
    fn carets_cover_strings_brackets_and_bare_keys() {
        let width = |s: &str| token_width(s.chars());
        assert_eq!(width("perod = 1"), 5);
        assert_eq!(width("\"a \\\" b\" # x"), 8);
        assert_eq!(width("[[assets]] # x"), 10);
        assert_eq!(width("{ 0 = \"}\" }, x"), 11);
        assert_eq!(width("[20, 0]"), 7);
        assert_eq!(width("{ a = 1"), 7);
        assert_eq!(width(""), 1);
    }

    #[test]
    fn render_quotes_the_line_and_underlines_the_token() {
        let d = Diagnostic {
            location: Location {
                file: "b.toml".into(),
                line: 2,
                column: 1,
            },
            key: "sources[0].perod".into(),
            message: "unknown key `perod` in sources[0]".into(),
            hint: Some("did you mean `period`?".into()),
        };
        let text = d.render(Some("[[sources]]\nperod = \"1s\"\n"));
        assert_eq!(
            text,
            "b.toml:2:1: error: unknown key `perod` in sources[0]\n   2 | perod = \"1s\"\n     | ^^^^^\n   = key: sources[0].perod\n   = hint: did you mean `period`?\n"
        );
    }
}
