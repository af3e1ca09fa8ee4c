//! The exposition: what `/metrics` serves and how. prometheus-client encodes every sample as
//! OpenMetrics 1.0.0 text ([`encode`]: a poll's samples into one fragment per family, kept with
//! the job; each family's HELP/TYPE/UNIT once); [`body`] assembles and compresses a body;
//! [`text`] derives text format 0.0.4 from it; this file names the formats and negotiates one
//! from `Accept`; [`renderer`] re-renders when the samples change.

pub mod body;
pub mod encode;
pub mod renderer;
pub mod text;

pub use body::{Builder, Encoded, Exposition, GZIP_LEVEL, gzip};
pub(crate) use encode::encode_gauge;
pub use encode::{
    Fragments, HEALTH_FAMILIES, JobHealth, SelfMetrics, encode_collector, encode_health, encode_job, fragment, header,
};
pub use text::{openmetrics_to_text, write_sample};

/// The content type of an OpenMetrics body.
pub const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The content type of a text format 0.0.4 body.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The last line of every OpenMetrics body.
pub const EOF: &str = "# EOF\n";

/// The format a scrape is answered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0.0 text: what Prometheus asks for first.
    OpenMetrics,
    /// Prometheus text format 0.0.4: the default, and what `promtool check metrics` reads.
    Text,
}

impl Format {
    /// The `Content-Type` of a body in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
            Format::Text => TEXT_CONTENT_TYPE,
        }
    }
}

/// How well one `Accept` media range matches a format: (specificity, q). A more specific range
/// decides over a less specific one (RFC 9110 §12.5.1), whatever their q-values.
type Match = Option<(u8, f32)>;

/// Picks the format for an `Accept` header: OpenMetrics 1.0.0 when the client prefers it
/// (a higher q-value than text 0.0.4's), text 0.0.4 otherwise: on a tie (`*/*`), without a
/// header, or when neither is acceptable. Media types and parameter names are compared without
/// regard to case; parameters other than `version` and `q` (such as `escaping`, `charset`) do
/// not matter, since every name served is a legacy Prometheus name.
pub fn negotiate(accept: Option<&str>) -> Format {
    let Some(accept) = accept else { return Format::Text };
    let (mut om, mut text): (Match, Match) = (None, None);
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let Some((kind, sub)) = parts.next().and_then(|m| m.split_once('/')) else { continue };
        let (kind, sub) = (kind.trim(), sub.trim());
        let (mut q, mut version) = (Some(1.0f32), None);
        for param in parts {
            let Some((name, value)) = param.split_once('=') else { continue };
            let (name, value) = (name.trim(), value.trim().trim_matches('"'));
            if name.eq_ignore_ascii_case("q") {
                q = value.parse::<f32>().ok().filter(|q| (0.0..=1.0).contains(q));
            } else if name.eq_ignore_ascii_case("version") {
                version = Some(value);
            }
        }
        // A range with a q-value that does not parse is ignored rather than guessed at.
        let Some(q) = q else { continue };
        // No allocation: this runs on every scrape.
        let specificity = |exact: (&str, &str), version_wanted: &str| -> Option<u8> {
            if kind == "*" && sub == "*" {
                Some(0)
            } else if !kind.eq_ignore_ascii_case(exact.0) {
                None
            } else if sub == "*" {
                Some(1)
            } else if !sub.eq_ignore_ascii_case(exact.1) {
                None
            } else {
                match version {
                    None => Some(2),
                    Some(v) if v == version_wanted => Some(3),
                    // Another version of the format (OpenMetrics 0.0.1, text 1.0.0) is not served.
                    Some(_) => None,
                }
            }
        };
        let better = |current: Match, found: Option<u8>| match (current, found) {
            (_, None) => current,
            (None, Some(s)) => Some((s, q)),
            (Some((cs, cq)), Some(s)) if s > cs || (s == cs && q > cq) => Some((s, q)),
            (Some(c), Some(_)) => Some(c),
        };
        om = better(om, specificity(("application", "openmetrics-text"), "1.0.0"));
        text = better(text, specificity(("text", "plain"), "0.0.4"));
    }
    let q = |m: Match| m.map_or(0.0, |(_, q)| q);
    if q(om) > q(text) { Format::OpenMetrics } else { Format::Text }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_with_the_headers_clients_send() {
        for (accept, want) in [
            // Prometheus 2.42 (scrape/scrape.go, acceptHeader before scrape_protocols).
            (
                Some(
                    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
                ),
                Format::OpenMetrics,
            ),
            // Prometheus 3.x defaults (config.DefaultScrapeProtocols, acceptHeader with escaping).
            (
                Some(
                    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
                ),
                Format::OpenMetrics,
            ),
            // Prometheus 2.49–2.55 defaults, without escaping.
            (
                Some(
                    "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
                ),
                Format::OpenMetrics,
            ),
            // curl, browsers' last resort: a tie goes to text.
            (Some("*/*"), Format::Text),
            (None, Format::Text),
            (Some("text/plain"), Format::Text),
            (Some("text/plain;version=0.0.4"), Format::Text),
            (Some("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"), Format::Text),
            // Case and spacing do not matter.
            (Some("Application/OpenMetrics-Text; Version=1.0.0; Q=1"), Format::OpenMetrics),
            (Some("application/openmetrics-text"), Format::OpenMetrics),
            // q-values decide...
            (Some("text/plain;q=0.9, application/openmetrics-text;q=0.8"), Format::Text),
            (Some("text/plain;q=0.5, application/openmetrics-text"), Format::OpenMetrics),
            // ...and a specific range overrides a wildcard.
            (Some("*/*, application/openmetrics-text;q=0"), Format::Text),
            (Some("application/openmetrics-text;q=0.1, */*;q=0.05"), Format::OpenMetrics),
            // Versions not served do not match.
            (Some("application/openmetrics-text;version=0.0.1"), Format::Text),
            (Some("application/openmetrics-text;version=2.0.0, text/plain;q=0.1"), Format::Text),
            // Garbage is ignored rather than guessed at.
            (Some("application/openmetrics-text;q=abc, text/plain;q=0.1"), Format::Text),
            (Some(";;,,/"), Format::Text),
            (Some(""), Format::Text),
        ] {
            assert_eq!(negotiate(accept), want, "{accept:?}");
        }
    }

    #[test]
    fn a_hostile_accept_header_costs_one_linear_pass() {
        // hyper bounds the header's size; within it, any number of ranges, parameters and
        // malformed parts are read once, left to right, without allocating.
        let noise = "x/y;q=0.1;a=b;;=;q==,*/;/*,;q=2,".repeat(5_000);
        assert_eq!(negotiate(Some(&format!("{noise}application/openmetrics-text"))), Format::OpenMetrics);
        assert_eq!(negotiate(Some(&noise)), Format::Text);
        assert_eq!(negotiate(Some(&"\u{e9}/\u{e8};q=\u{ff}".repeat(1_000))), Format::Text);
    }
}
