//! Text format 0.0.4: derived from an OpenMetrics body by rewriting its header lines (the
//! sample lines are the same in both), and single sample lines for the backfill's files.

use std::fmt::Write as _;

use super::EOF;

/// Rewrites OpenMetrics text as text format 0.0.4 with the same sample lines: a counter's
/// HELP and TYPE name the `_total` samples, an info metric becomes a gauge named like its
/// `_info` sample, `# UNIT` and `# EOF` lines go. HELP text passes through unchanged (the
/// families' HELP needs no escaping in either format).
pub fn openmetrics_to_text(om: &str, out: &mut String) {
    let mut rest = om;
    while !rest.is_empty() {
        let (line, after) = rest.split_at(rest.find('\n').map_or(rest.len(), |i| i + 1));
        rest = after;
        if let Some(help) = line.strip_prefix("# HELP ") {
            let name = help.split(' ').next().unwrap_or_default();
            // The TYPE line of the same family follows among the comment lines.
            let kind = after
                .lines()
                .take_while(|l| l.starts_with('#'))
                .find_map(|l| l.strip_prefix("# TYPE ")?.strip_prefix(name)?.strip_prefix(' '));
            out.push_str("# HELP ");
            out.push_str(name);
            out.push_str(text_suffix(kind));
            out.push_str(&help[name.len()..]);
        } else if let Some(ty) = line.strip_prefix("# TYPE ") {
            let (name, kind) = ty.trim_end().split_once(' ').unwrap_or((ty.trim_end(), "unknown"));
            let _ = match kind {
                "counter" => writeln!(out, "# TYPE {name}_total counter"),
                "info" => writeln!(out, "# TYPE {name}_info gauge"),
                "unknown" => writeln!(out, "# TYPE {name} untyped"),
                kind => writeln!(out, "# TYPE {name} {kind}"),
            };
        } else if line.starts_with("# UNIT ") || line.trim_end() == EOF.trim_end() {
            continue;
        } else {
            out.push_str(line);
        }
    }
}

fn text_suffix(kind: Option<&str>) -> &'static str {
    match kind {
        Some("counter") => "_total",
        Some("info") => "_info",
        _ => "",
    }
}

/// Appends one text-format sample line, `name{k="v",...} value\n`, with its own escaping and
/// number formatting. Only the backfill's files use it; `/metrics` bodies are encoded by
/// prometheus-client.
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
        for c in v.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    if !first {
        out.push('}');
    }
    out.push(' ');
    if value.is_nan() {
        out.push_str("NaN");
    } else if value.is_infinite() {
        out.push_str(if value > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        // Display of f64 is the shortest text that round-trips, and never uses an exponent.
        let _ = write!(out, "{value}");
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_format_renames_counters_and_info_and_drops_unit_and_eof() {
        let om = "# HELP c_seconds Spent.\n# TYPE c_seconds counter\n# UNIT c_seconds seconds\nc_seconds_total{a=\"1\"} 2\n\
                  # HELP b Build.\n# TYPE b info\nb_info{v=\"x\"} 1\n# HELP g G.\n# TYPE g gauge\ng 1.5\n# EOF\n";
        let mut text = String::new();
        openmetrics_to_text(om, &mut text);
        assert_eq!(
            text,
            "# HELP c_seconds_total Spent.\n# TYPE c_seconds_total counter\nc_seconds_total{a=\"1\"} 2\n\
             # HELP b_info Build.\n# TYPE b_info gauge\nb_info{v=\"x\"} 1\n# HELP g G.\n# TYPE g gauge\ng 1.5\n"
        );
    }
}
