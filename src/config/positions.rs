//! Where in the file a problem is: the position of every key (`scaleengine[0].cdn` → line 4,
//! column 1), and syntax and figment errors described without the text of the line (which may
//! hold a credential).

use std::collections::BTreeMap;

use crate::validate::{Position, Problem, escape_cut, join};

use super::ENV_PREFIX;

/// A TOML syntax error: where, and what the parser expected. toml's own `Display` prints the
/// offending line, which may hold a credential; its `message()` holds only the grammar's words
/// and key names, and is escaped and cut all the same.
pub(super) fn syntax_problem(text: &str, e: &toml_edit::TomlError) -> Problem {
    let what: String = e.message().lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ");
    Problem {
        path: String::new(),
        message: format!(
            "TOML syntax error: {}. Fix the syntax at this position (the line is not shown here, so that no credential is printed).",
            escape_cut(&what, 200)
        ),
        at: e.span().map(|span| Position::of(text, span.start)),
    }
}

/// A figment error described by its kind and key path only: its `Display` can carry values
/// (`invalid type: found string "…"`).
pub(super) fn figment_problem(e: &figment::Error) -> Problem {
    use figment::error::Kind;
    let what = match &e.kind {
        Kind::Message(_) => "cannot be read",
        Kind::InvalidType(..) => "has the wrong type",
        Kind::InvalidValue(..) => "has an invalid value",
        Kind::InvalidLength(..) => "has the wrong length",
        Kind::UnknownVariant(..) | Kind::UnknownField(..) => "is not known",
        Kind::MissingField(_) => "is missing",
        Kind::DuplicateField(_) => "is given twice",
        Kind::ISizeOutOfRange(_) | Kind::USizeOutOfRange(_) => "is out of range",
        Kind::Unsupported(_) | Kind::UnsupportedKey(..) => "is not supported",
    };
    let path = if e.path.is_empty() { "(file)".to_owned() } else { escape_cut(&e.path.join("."), 200) };
    Problem {
        path,
        message: format!("the configuration {what}. Check the file and the {ENV_PREFIX}* environment variables."),
        at: None,
    }
}

/// The position of every key of the document, under the paths the validator uses
/// (`scaleengine[0].cdn`, `cdnetworks[1].domains[2].contract`).
pub(super) fn key_positions(text: &str, doc: &toml_edit::ImDocument<&str>) -> BTreeMap<String, Position> {
    let mut out = BTreeMap::new();
    let mut spans: Vec<(String, usize)> = Vec::new();
    walk_table(String::new(), doc.as_table().iter().map(|(k, v)| (k, doc.as_table().key(k), v)), &mut spans);
    for (path, offset) in spans {
        out.entry(path).or_insert_with(|| Position::of(text, offset));
    }
    out
}

type Entry<'a> = (&'a str, Option<&'a toml_edit::Key>, &'a toml_edit::Item);

fn walk_table<'a>(prefix: String, entries: impl Iterator<Item = Entry<'a>>, out: &mut Vec<(String, usize)>) {
    for (name, key, item) in entries {
        let path = join(&prefix, name);
        if let Some(start) = key.and_then(toml_edit::Key::span).or_else(|| item.span()).map(|s| s.start) {
            out.push((path.clone(), start));
        }
        walk_item(path, item, out);
    }
}

fn walk_item(path: String, item: &toml_edit::Item, out: &mut Vec<(String, usize)>) {
    match item {
        toml_edit::Item::Table(t) => walk_table(path, t.iter().map(|(k, v)| (k, t.key(k), v)), out),
        toml_edit::Item::ArrayOfTables(a) => {
            for (i, t) in a.iter().enumerate() {
                let at = format!("{path}[{i}]");
                if let Some(span) = t.span() {
                    out.push((at.clone(), span.start));
                }
                walk_table(at, t.iter().map(|(k, v)| (k, t.key(k), v)), out);
            }
        }
        toml_edit::Item::Value(v) => walk_value(path, v, out),
        toml_edit::Item::None => {}
    }
}

fn walk_value(path: String, value: &toml_edit::Value, out: &mut Vec<(String, usize)>) {
    match value {
        toml_edit::Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                let at = format!("{path}[{i}]");
                if let Some(span) = v.span() {
                    out.push((at.clone(), span.start));
                }
                walk_value(at, v, out);
            }
        }
        toml_edit::Value::InlineTable(t) => {
            for (k, v) in t.iter() {
                let at = join(&path, k);
                if let Some(start) = t.key(k).and_then(toml_edit::Key::span).or_else(|| v.span()).map(|s| s.start) {
                    out.push((at.clone(), start));
                }
                walk_value(at, v, out);
            }
        }
        _ => {}
    }
}
