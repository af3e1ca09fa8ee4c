//! Prometheus text exposition (format 0.0.4): escaping, number formatting and sample lines.
//! Kept free of state so that the store can pre-render lines at poll time.

use std::fmt::Write as _;

use crate::families::Family;

/// The content type of the body served on `/metrics`.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Appends `value` escaped for a label value: backslash, double quote and newline.
pub fn escape_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Appends a sample value the way Prometheus parses it (`+Inf`, `-Inf`, `NaN`, shortest decimal).
pub fn write_value(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("NaN");
    } else if value.is_infinite() {
        out.push_str(if value > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        // Display of f64 is the shortest text that round-trips, and never uses an exponent.
        let _ = write!(out, "{value}");
    }
}

/// Appends one sample line: `name{k="v",...} value\n`.
pub fn write_sample<'k, 'v>(
    out: &mut String,
    name: &str,
    labels: impl IntoIterator<Item = (&'k str, &'v str)>,
    value: f64,
) {
    out.push_str(name);
    let mut first = true;
    for (k, v) in labels {
        out.push(if first { '{' } else { ',' });
        first = false;
        out.push_str(k);
        out.push_str("=\"");
        escape_label_value(out, v);
        out.push('"');
    }
    if !first {
        out.push('}');
    }
    out.push(' ');
    write_value(out, value);
    out.push('\n');
}

/// Appends the `# HELP` and `# TYPE` lines of a family.
pub fn write_header(out: &mut String, family: &Family) {
    out.push_str("# HELP ");
    out.push_str(family.name);
    out.push(' ');
    for c in family.help.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push_str("\n# TYPE ");
    out.push_str(family.name);
    out.push(' ');
    out.push_str(family.kind.as_str());
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_label_values() {
        let mut s = String::new();
        write_sample(&mut s, "m", [("a", "x\"y\\z\nw"), ("b", "é/")], 1.5);
        assert_eq!(s, "m{a=\"x\\\"y\\\\z\\nw\",b=\"é/\"} 1.5\n");
    }

    #[test]
    fn formats_special_values() {
        let mut s = String::new();
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.0, 1e21, 12345678.0, 0.25] {
            write_value(&mut s, v);
            s.push(' ');
        }
        assert_eq!(s, "NaN +Inf -Inf 0 1000000000000000000000 12345678 0.25 ");
    }

    #[test]
    fn no_braces_without_labels() {
        let mut s = String::new();
        write_sample(&mut s, "m", std::iter::empty(), 3.0);
        assert_eq!(s, "m 3\n");
    }
}
