//! The validation engine every configuration section reports into: it takes a TOML table's
//! fields one by one (typed, bounded, with the key's path), collects every problem at once with
//! how to fix it, and reports the keys nobody asked for (with a suggestion). The top level
//! ([`crate::config`]) and each provider's section (`providers/<p>/config.rs`) use it.
//!
//! A configuration holds credentials, and its problems reach the log, `check-config` and the
//! answer of `POST /-/reload`. So no problem quotes a line of the file, and none prints the value
//! of a credential, of an unknown key or of a `base_url`; only short values of plain settings
//! (durations, zones, enums) are quoted, escaped and cut (see [`quote`]).

mod fields;

pub use fields::{MAX_SECRET_BYTES, MAX_SECRET_FILE_BYTES, MAX_URL_BYTES};

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

/// The longest account name (128 bytes): it becomes the `account` label of every series.
pub const MAX_NAME_BYTES: usize = 128;
/// The most accounts per provider (1000): beyond it, shard (`--shard`, docs/scaling.md).
pub const MAX_ACCOUNTS: usize = 1000;
/// Values quoted in an error are cut to this many characters.
const QUOTE_CHARS: usize = 32;

/// Where in the file a problem is: 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// The line, from 1.
    pub line: usize,
    /// The column, from 1, in characters.
    pub column: usize,
}

impl Position {
    /// The position of byte `offset` of `text`.
    pub fn of(text: &str, offset: usize) -> Position {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Position { line: before.matches('\n').count() + 1, column: before[line_start..].chars().count() + 1 }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where: `scaleengine[1].api_secret`; empty for a syntax error (see `at`).
    pub path: String,
    /// What is wrong, and how to fix it. Never a line of the file, never a credential.
    pub message: String,
    /// Where in the file, when the problem is in the file (not in the environment).
    pub at: Option<Position>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.at, self.path.is_empty()) {
            (Some(at), true) => write!(f, "{at}: {}", self.message),
            (Some(at), false) => write!(f, "{}: {} (at {at})", self.path, self.message),
            (None, _) => write!(f, "{}: {}", self.path, self.message),
        }
    }
}

/// `s` with control characters escaped and cut to `max` characters (with `…`).
pub fn escape_cut(s: &str, max: usize) -> String {
    let mut out = String::new();
    for (n, c) in s.chars().enumerate() {
        if n == max {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// A plain setting's value (a duration, a zone) for an error message: quoted, escaped, and cut
/// to a few characters so that a huge value cannot flood the log. Never used for credentials,
/// unknown keys, URLs or names.
pub fn quote(s: &str) -> String {
    let mut out: String = format!("{:?}", s.chars().take(QUOTE_CHARS).collect::<String>());
    if s.chars().nth(QUOTE_CHARS).is_some() {
        out.insert(out.len() - 1, '…');
    }
    out
}

/// A problem was reported into the [`Validator`]: the caller has nothing more to say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reported;

/// Collects the problems of one configuration.
#[derive(Debug, Default)]
pub struct Validator {
    /// Every problem found so far, in the order found.
    pub problems: Vec<Problem>,
}

/// A table's fields, taken one by one; whatever is left at the end is unknown.
#[derive(Debug)]
pub struct Table<'a> {
    /// Where the table is (`scaleengine[0]`; empty for the top level).
    pub path: String,
    fields: BTreeMap<&'a str, &'a Value>,
    /// Every key asked for: the known keys, for suggestions.
    known: Vec<String>,
}

impl<'a> Table<'a> {
    /// Takes `key` out of the table (it is known from now on).
    pub fn take(&mut self, key: &str) -> Option<&'a Value> {
        self.known.push(key.to_owned());
        self.fields.remove(key)
    }

    /// Whether `key` is in the table (it is known from now on).
    pub fn has(&mut self, key: &str) -> bool {
        self.known.push(key.to_owned());
        self.fields.contains_key(key)
    }

    /// The path of `key` in this table (`scaleengine[0].cdn`).
    pub fn key_path(&self, key: &str) -> String {
        join(&self.path, key)
    }
}

impl Validator {
    /// Reports a problem at `path`: what is wrong and how to fix it, never a credential.
    pub fn problem(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem { path: path.into(), message: message.into(), at: None });
    }

    /// `value` as a table at `path`, or a problem if it is not one.
    pub fn table<'a>(&mut self, path: String, value: &'a Value) -> Option<Table<'a>> {
        match value {
            Value::Object(map) => {
                Some(Table { path, fields: map.iter().map(|(k, v)| (k.as_str(), v)).collect(), known: Vec::new() })
            }
            _ => {
                self.problem(path, format!("expected a table, found {}. Write it as a TOML table.", kind(value)));
                None
            }
        }
    }

    /// Reports the keys nobody took, with a suggestion among those that were asked for.
    pub fn unknown(&mut self, table: Table<'_>) {
        let mut known: Vec<&str> = Vec::new();
        for k in &table.known {
            if !known.contains(&k.as_str()) {
                known.push(k);
            }
        }
        for key in table.fields.keys() {
            let hint = closest(key, &known)
                .map(|k| format!("Did you mean `{k}`?"))
                .unwrap_or_else(|| format!("Known keys: {}.", known.join(", ")));
            // The key is the file's text: escaped and cut, like any text quoted in an error.
            self.problem(join(&table.path, &escape_cut(key, 64)), format!("unknown key. {hint}"));
        }
    }

    /// An array of account tables under `key`, each validated by `one`; names must be unique.
    pub fn accounts<T>(
        &mut self,
        t: &mut Table<'_>,
        key: &str,
        mut one: impl FnMut(&mut Self, usize, &Value) -> Option<T>,
    ) -> Vec<T> {
        let mut accounts = Vec::new();
        match t.take(key) {
            None => {}
            Some(Value::Array(items)) if items.len() > MAX_ACCOUNTS => self.problem(
                key,
                format!("{} accounts; the limit is {MAX_ACCOUNTS}. Split them across exporters with --shard (docs/scaling.md).", items.len()),
            ),
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    if let Some(a) = one(self, i, item) {
                        accounts.push(a);
                    }
                }
                // Names of invalid accounts count too: a clash is a problem of its own.
                let names = items.iter().map(|a| a.get("name").and_then(Value::as_str).unwrap_or_default());
                self.unique_names(key, names);
            }
            Some(other) => self.problem(
                key,
                format!("expected an array of tables, found {}. Write each account as [[{key}]].", kind(other)),
            ),
        }
        accounts
    }

    /// Reports every account name of `provider` given twice.
    pub fn unique_names<'a>(&mut self, provider: &str, names: impl Iterator<Item = &'a str>) {
        let mut first: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, name) in names.enumerate() {
            if name.is_empty() {
                continue;
            }
            if let Some(j) = first.get(name) {
                self.problem(
                    format!("{provider}[{i}].name"),
                    format!("{} is already the name of {provider}[{j}]. Give every account its own name.", quote(name)),
                );
            } else {
                first.insert(name, i);
            }
        }
    }

    /// Whether a problem was already reported at `path`.
    pub fn reported(&self, path: &str) -> bool {
        self.problems.iter().any(|p| p.path == path)
    }

    /// How many problems were found so far.
    pub fn count(&self) -> usize {
        self.problems.len()
    }
}

/// `path.key`, or `key` at the top level.
pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") }
}

/// What kind of value `v` is, for a message.
pub fn kind(v: &Value) -> &'static str {
    match v {
        // TOML has no null: a NaN or an infinity is what becomes one on the way through figment.
        Value::Null => "nan or inf, which is not a finite number",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "a table",
    }
}

/// A plain setting's value for a message: strings through [`quote`], other kinds by kind.
pub fn show(v: &Value) -> String {
    match v {
        Value::String(s) => quote(s),
        Value::Number(n) => n.to_string(),
        other => kind(other).to_owned(),
    }
}

/// The known key closest to `key`, if it is close enough to be a typo.
fn closest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    known.iter().map(|k| (edit_distance(key, k), *k)).filter(|(d, k)| *d <= 2.max(k.len() / 4)).min().map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb { prev } else { 1 + prev.min(row[j]).min(cur) };
            prev = cur;
        }
    }
    row[b.len()]
}
