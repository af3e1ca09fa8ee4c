//! The exposition. prometheus-client encodes every sample as OpenMetrics 1.0.0 text: a poll's
//! samples into one fragment per family (kept with the job), each family's HELP/TYPE/UNIT once.
//! This module also derives text format 0.0.4 from an OpenMetrics body, negotiates the format
//! from `Accept`, and compresses bodies.

use std::fmt::{self, Write as _};
use std::ops::Range;
use std::sync::{LazyLock, OnceLock};

use bytes::Bytes;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabel as _, EncodeLabelSet, EncodeMetric as _, LabelSetEncoder, MetricEncoder,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::registry::{Registry, Unit};

use crate::families::{FamilyId, Kind};
use crate::job::Sample;

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

/// What prometheus-client is told about a family: the name without the suffixes it appends,
/// the unit, the type.
struct Descriptor {
    stem: &'static str,
    help: &'static str,
    unit: Option<Unit>,
    kind: Kind,
}

impl Descriptor {
    fn metric_type(&self) -> MetricType {
        match self.kind {
            Kind::Gauge => MetricType::Gauge,
            Kind::Counter => MetricType::Counter,
            Kind::Info => MetricType::Info,
        }
    }

    fn encode<'s>(&'s self, encoder: &'s mut DescriptorEncoder) -> Result<MetricEncoder<'s>, fmt::Error> {
        encoder.encode_descriptor(self.stem, self.help, self.unit.as_ref(), self.metric_type())
    }
}

/// Every family's descriptor, in `FamilyId` order.
static DESCRIPTORS: LazyLock<Vec<Descriptor>> = LazyLock::new(|| {
    FamilyId::ALL
        .iter()
        .map(|id| {
            let def = id.def();
            Descriptor {
                stem: def.stem(),
                help: def.help,
                unit: def.unit.map(|u| match u {
                    "bytes" => Unit::Bytes,
                    "seconds" => Unit::Seconds,
                    other => Unit::Other(other.to_owned()),
                }),
                kind: def.kind,
            }
        })
        .collect()
});

fn descriptor(family: FamilyId) -> &'static Descriptor {
    &DESCRIPTORS[family.index()]
}

/// Each family's HELP, TYPE and UNIT lines, as prometheus-client encodes them.
static HEADERS: LazyLock<Vec<String>> = LazyLock::new(|| {
    #[derive(Debug)]
    struct Headers(FamilyId);
    impl Collector for Headers {
        fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
            descriptor(self.0).encode(&mut encoder).map(drop)
        }
    }
    FamilyId::ALL
        .iter()
        .map(|&id| {
            let mut registry = Registry::default();
            registry.register_collector(Box::new(Headers(id)));
            let mut out = String::new();
            // Writing to a String cannot fail.
            let _ = prometheus_client::encoding::text::encode_registry(&mut out, &registry);
            out
        })
        .collect()
});

/// A family's OpenMetrics header lines (HELP, TYPE, and UNIT when it has one).
pub fn header(family: FamilyId) -> &'static str {
    &HEADERS[family.index()]
}

/// The labels of one series, in the order they are written.
struct Labels<'a> {
    common: [(&'static str, &'a str); 2],
    extra: &'a [(&'static str, String)],
}

impl EncodeLabelSet for Labels<'_> {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), fmt::Error> {
        for (k, v) in &self.common {
            (*k, *v).encode(encoder.encode_label())?;
        }
        for (k, v) in self.extra {
            (*k, v.as_str()).encode(encoder.encode_label())?;
        }
        Ok(())
    }
}

/// Encodes a gauge value. Whole numbers go through the integer encoder, so that a count reads
/// `7` rather than `7.0` (shorter bodies, the same value); everything else through the float one.
pub(crate) fn encode_gauge(encoder: &mut MetricEncoder, value: f64) -> Result<(), fmt::Error> {
    // 2^53: beyond it not every integer is an f64, and below it the conversion is exact.
    if value.fract() == 0.0 && value.abs() < 9_007_199_254_740_992.0 {
        encoder.encode_gauge(&(value as i64))
    } else {
        encoder.encode_gauge(&value)
    }
}

/// Encodes families with `collector` and returns each family's sample lines without its
/// header lines (which a body carries once per family), in the order the collector emitted the
/// families: prometheus-client only encodes through descriptors.
fn encode_fragments(collector: impl Collector, capacity: usize) -> Vec<Box<str>> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(collector));
    let mut out = String::with_capacity(capacity);
    // Writing to a String cannot fail, and the collectors here only fail if the writer does.
    let _ = prometheus_client::encoding::text::encode_registry(&mut out, &registry);
    // Each family is HELP/TYPE(/UNIT) lines, then sample lines; a sample line never starts with
    // `#` (it starts with a metric name, and label values have their newlines escaped).
    let mut fragments = Vec::new();
    let mut rest = out.as_str();
    let line_end = |s: &str, from: usize| s[from..].find('\n').map_or(s.len(), |n| from + n + 1);
    while !rest.is_empty() {
        // The HELP line, then TYPE and UNIT; a family without samples ends at the next HELP.
        let mut start = line_end(rest, 0);
        while rest[start..].starts_with("# TYPE ") || rest[start..].starts_with("# UNIT ") {
            start = line_end(rest, start);
        }
        let end = if rest[start..].starts_with('#') {
            start
        } else {
            rest[start..].find("\n#").map_or(rest.len(), |n| start + n + 1)
        };
        fragments.push(rest[start..end].into());
        rest = &rest[end..];
    }
    fragments
}

/// A job's encoded sample lines, one fragment per family that has samples (no empty ones, so
/// that a job costs only what it exports).
pub type Fragments = Vec<(FamilyId, Box<str>)>;

/// The fragment of `family` in `fragments`, if any.
pub fn fragment(fragments: &Fragments, family: FamilyId) -> Option<&str> {
    fragments.iter().find(|(f, _)| *f == family).map(|(_, s)| &**s)
}

/// A job's samples, handed to prometheus-client.
#[derive(Debug)]
struct JobSamples {
    provider: &'static str,
    account: std::sync::Arc<str>,
    samples: Vec<Sample>,
    /// Indices into `samples` per family, in sample order (cheaper than sorting the samples).
    groups: Vec<(FamilyId, Vec<u32>)>,
}

impl Collector for JobSamples {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        for (id, group) in &self.groups {
            let d = descriptor(*id);
            let mut family = d.encode(&mut encoder)?;
            for s in group.iter().map(|&i| &self.samples[i as usize]) {
                let labels =
                    Labels { common: [("provider", self.provider), ("account", &self.account)], extra: &s.labels };
                let mut m = family.encode_family(&labels)?;
                match d.kind {
                    Kind::Counter => ConstCounter::new(s.value).encode(m)?,
                    Kind::Gauge => encode_gauge(&mut m, s.value)?,
                    // Only the build info is an info metric, and no poll produces it.
                    Kind::Info => {}
                }
            }
        }
        Ok(())
    }
}

/// Encodes the samples a job exports (already checked against the cardinality limit) into one
/// fragment per family. Samples keep their order within a family.
pub fn encode_job(provider: &'static str, account: &std::sync::Arc<str>, samples: Vec<Sample>) -> Fragments {
    let mut groups: Vec<(FamilyId, Vec<u32>)> = Vec::new();
    for (i, s) in samples.iter().enumerate() {
        match groups.iter_mut().find(|(f, _)| *f == s.family) {
            Some((_, g)) => g.push(i as u32),
            None => groups.push((s.family, vec![i as u32])),
        }
    }
    groups.sort_by_key(|(f, _)| *f);
    let families: Vec<FamilyId> = groups.iter().map(|(f, _)| *f).collect();
    let capacity = samples.len() * 128 + families.len() * 512;
    let encoded = encode_fragments(JobSamples { provider, account: account.clone(), samples, groups }, capacity);
    // Boxed: exactly sized, kept until the job's next poll.
    families.into_iter().zip(encoded).collect()
}

/// What the health families show for one job.
#[derive(Debug, Clone)]
pub struct JobHealth {
    /// The job; its labels go on every health sample.
    pub key: crate::job::JobKey,
    /// Whether the last poll succeeded.
    pub up: bool,
    /// Unix time of the last success, in seconds.
    pub last_success: Option<f64>,
    /// The last poll's duration in seconds, once a poll has finished.
    pub last_duration: Option<f64>,
    /// The job's `max_age` in seconds.
    pub max_age: Option<f64>,
    /// Failed polls, by reason in `Reason::ALL` order.
    pub errors: [u64; crate::job::Reason::ALL.len()],
}

/// The health families, in the order [`encode_health`] writes them.
pub const HEALTH_FAMILIES: [FamilyId; 5] = [
    FamilyId::ExporterPollUp,
    FamilyId::ExporterLastSuccessTimestampSeconds,
    FamilyId::ExporterPollDurationSeconds,
    FamilyId::ExporterMaxAgeSeconds,
    FamilyId::ExporterPollErrorsTotal,
];

/// A job's labels, and a `reason` after them for the error counter.
struct KeyLabels<'a> {
    key: &'a crate::job::JobKey,
    reason: Option<&'static str>,
}

impl EncodeLabelSet for KeyLabels<'_> {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), fmt::Error> {
        for pair in self.key.labels().chain(self.reason.map(|r| ("reason", r))) {
            pair.encode(encoder.encode_label())?;
        }
        Ok(())
    }
}

impl Collector for JobHealth {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let labels = KeyLabels { key: &self.key, reason: None };
        for family in HEALTH_FAMILIES {
            // Every family gets its descriptor, so that fragments line up with HEALTH_FAMILIES.
            let mut m = descriptor(family).encode(&mut encoder)?;
            let value = match family {
                FamilyId::ExporterPollUp => Some(if self.up { 1.0 } else { 0.0 }),
                FamilyId::ExporterLastSuccessTimestampSeconds => self.last_success,
                FamilyId::ExporterPollDurationSeconds => self.last_duration,
                FamilyId::ExporterMaxAgeSeconds => self.max_age,
                _ => None,
            };
            if let Some(v) = value {
                encode_gauge(&mut m.encode_family(&labels)?, v)?;
            }
            if family == FamilyId::ExporterPollErrorsTotal {
                // Every reason is written, zeros included, so that rate() works from the first error.
                for (reason, n) in crate::job::Reason::ALL.iter().zip(self.errors) {
                    let labels = KeyLabels { key: &self.key, reason: Some(reason.as_str()) };
                    ConstCounter::new(n).encode(m.encode_family(&labels)?)?;
                }
            }
        }
        Ok(())
    }
}

/// Encodes a job's health samples into fragments.
pub fn encode_health(health: JobHealth) -> Fragments {
    HEALTH_FAMILIES.into_iter().zip(encode_fragments(health, 4096)).filter(|(_, f)| !f.is_empty()).collect()
}

/// The exporter's own figures: build info, series, dropped series, upstream requests.
#[derive(Debug, Clone, Default)]
pub struct SelfMetrics {
    /// `cdn_exporter_build_info` labels.
    pub version: String,
    /// `cdn_exporter_build_info` labels.
    pub revision: String,
    /// Series served from provider data and configuration.
    pub series: u64,
    /// Series dropped by the cardinality guard, all time.
    pub dropped_total: u64,
    /// Upstream requests by (provider, account, code).
    pub upstream: Vec<(&'static str, std::sync::Arc<str>, String, u64)>,
    /// This process's shard.
    pub shard: crate::shard::Shard,
}

impl Collector for SelfMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        use prometheus_client::metrics::gauge::ConstGauge;
        use prometheus_client::metrics::info::Info;
        let info = Info::new(vec![("version", self.version.clone()), ("revision", self.revision.clone())]);
        info.encode(descriptor(FamilyId::ExporterBuildInfo).encode(&mut encoder)?)?;
        ConstGauge::new(self.series as i64).encode(descriptor(FamilyId::ExporterSeries).encode(&mut encoder)?)?;
        ConstCounter::new(self.dropped_total)
            .encode(descriptor(FamilyId::ExporterSeriesDroppedTotal).encode(&mut encoder)?)?;
        let shard =
            Info::new(vec![("shard", self.shard.index().to_string()), ("shards", self.shard.count().to_string())]);
        shard.encode(descriptor(FamilyId::ExporterShardInfo).encode(&mut encoder)?)?;
        if !self.upstream.is_empty() {
            let mut m = descriptor(FamilyId::ExporterUpstreamRequestsTotal).encode(&mut encoder)?;
            for (provider, account, code, n) in &self.upstream {
                let labels = [("provider", *provider), ("account", &**account), ("code", code.as_str())];
                ConstCounter::new(*n).encode(m.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

/// Encodes whole families with a collector, headers included (for small, changing sets).
pub fn encode_collector(collector: impl Collector) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(collector));
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode_registry(&mut out, &registry);
    out
}

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

/// The gzip level of cached bodies: level 1 compresses the exposition about 16–20:1 at about
/// the cost of concatenating it; level 6 gains 15 % for six times the CPU (docs/benchmarks.md).
pub const GZIP_LEVEL: u32 = 1;

/// Gzip-compresses `data` at [`GZIP_LEVEL`].
pub fn gzip(data: &[u8]) -> Bytes {
    use std::io::Write as _;
    let mut encoder =
        flate2::write::GzEncoder::new(Vec::with_capacity(data.len() / 6 + 64), flate2::Compression::new(GZIP_LEVEL));
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(data);
    Bytes::from(encoder.finish().unwrap_or_default())
}

/// One body, plain and gzip-compressed.
#[derive(Debug, Clone, Default)]
pub struct Encoded {
    /// As is.
    pub plain: Bytes,
    /// Gzip-compressed once (for `Accept-Encoding: gzip`).
    pub gzip: Bytes,
}

impl Encoded {
    /// Compresses `plain`.
    pub fn new(plain: Bytes) -> Self {
        let gzip = gzip(&plain);
        Encoded { plain, gzip }
    }
}

/// A stretch of the OpenMetrics body: header lines to rewrite for text 0.0.4, then sample
/// lines that are the same in both formats.
#[derive(Debug)]
struct Piece {
    rewrite: Range<usize>,
    copy: Range<usize>,
}

/// The exposition as served, rendered once per change. The OpenMetrics body leaves out the
/// final `# EOF`, which follows the process metrics; the text 0.0.4 body is derived from it on
/// the first scrape that asks for it, and kept until the next change.
#[derive(Debug, Default)]
pub struct Exposition {
    /// OpenMetrics 1.0.0, without `# EOF`.
    pub openmetrics: Encoded,
    pieces: Vec<Piece>,
    text: OnceLock<Encoded>,
}

impl Exposition {
    /// The body in `format`.
    pub fn get(&self, format: Format) -> &Encoded {
        match format {
            Format::OpenMetrics => &self.openmetrics,
            Format::Text => self.text(),
        }
    }

    /// The text 0.0.4 body, derived now if no scrape has asked for it since the last change.
    pub fn text(&self) -> &Encoded {
        self.text.get_or_init(|| {
            let om = &self.openmetrics.plain;
            let mut out = Vec::with_capacity(om.len());
            let mut headers = String::new();
            for p in &self.pieces {
                headers.clear();
                // Pieces start and end on line boundaries of a body built from Strings.
                openmetrics_to_text(std::str::from_utf8(&om[p.rewrite.clone()]).unwrap_or_default(), &mut headers);
                out.extend_from_slice(headers.as_bytes());
                out.extend_from_slice(&om[p.copy.clone()]);
            }
            Encoded::new(Bytes::from(out))
        })
    }

    /// Whether the text body has been derived (for tests and the bench).
    pub fn has_text(&self) -> bool {
        self.text.get().is_some()
    }
}

/// Builds an [`Exposition`] from headers and fragments.
#[derive(Debug, Default)]
pub struct Builder {
    out: String,
    pieces: Vec<Piece>,
}

impl Builder {
    /// A builder with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        Builder { out: String::with_capacity(capacity), pieces: Vec::new() }
    }

    /// Appends a family: its header, then its fragments; nothing if every fragment is empty.
    pub fn family<'a>(&mut self, family: FamilyId, fragments: impl Iterator<Item = &'a str>) {
        let mut fragments = fragments.filter(|f| !f.is_empty()).peekable();
        if fragments.peek().is_none() {
            return;
        }
        let start = self.out.len();
        self.out.push_str(header(family));
        let samples = self.out.len();
        fragments.for_each(|f| self.out.push_str(f));
        self.pieces.push(Piece { rewrite: start..samples, copy: samples..self.out.len() });
    }

    /// Appends whole encoded families (headers included).
    pub fn families(&mut self, encoded: &str) {
        let start = self.out.len();
        self.out.push_str(encoded);
        self.pieces.push(Piece { rewrite: start..self.out.len(), copy: self.out.len()..self.out.len() });
    }

    /// Compresses the OpenMetrics body; the text body waits for a scrape that asks for it.
    pub fn finish(self) -> Exposition {
        Exposition { openmetrics: Encoded::new(Bytes::from(self.out)), pieces: self.pieces, text: OnceLock::new() }
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
    use crate::job::{JobKey, Reason};

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

    #[test]
    fn job_fragments_are_the_encoders_output_less_the_headers() {
        let account: std::sync::Arc<str> = "a\"b\\c\nd".into();
        let samples = vec![
            Sample::new(FamilyId::VideoMonthToDateBytes, 1.5e12).label("app", "x").label("url", "u\"1"),
            Sample::new(FamilyId::MonthToDateRequests, 7.0).label("product", "edge"),
            Sample::new(FamilyId::VideoMonthToDateBytes, 0.25).label("app", "x").label("url", "u2"),
        ];
        let fragments = encode_job("scaleengine", &account, samples);
        let at = |id| fragment(&fragments, id).unwrap_or_default();
        assert_eq!(
            at(FamilyId::MonthToDateRequests),
            "cdn_month_to_date_requests{provider=\"scaleengine\",account=\"a\\\"b\\\\c\\nd\",product=\"edge\"} 7\n"
        );
        let video = at(FamilyId::VideoMonthToDateBytes);
        assert_eq!(video.lines().count(), 2, "{video}");
        assert!(video.starts_with("cdn_video_month_to_date_bytes{"), "{video}");
        assert!(video.contains("url=\"u\\\"1\"} 1500000000000\n"), "{video}");
        assert!(video.ends_with("url=\"u2\"} 0.25\n"), "{video}");
        assert_eq!(fragments.len(), 2);
        assert_eq!(
            header(FamilyId::VideoMonthToDateBytes),
            format!(
                "# HELP cdn_video_month_to_date_bytes {}\n# TYPE cdn_video_month_to_date_bytes gauge\n# UNIT cdn_video_month_to_date_bytes bytes\n",
                FamilyId::VideoMonthToDateBytes.def().help
            )
        );
    }

    #[test]
    fn health_fragments_line_up_with_their_families() {
        let key = JobKey { domain: Some("d.example".into()), ..JobKey::account("cdnetworks", "a", "domain-usage") };
        let mut errors = [0; Reason::ALL.len()];
        errors[1] = 3;
        let health = encode_health(JobHealth {
            key,
            up: false,
            last_success: None,
            last_duration: Some(0.5),
            max_age: Some(3600.0),
            errors,
        });
        let f = |id| fragment(&health, id).unwrap_or_default().to_owned();
        let labels = "provider=\"cdnetworks\",account=\"a\",endpoint=\"domain-usage\",domain=\"d.example\"";
        assert_eq!(f(FamilyId::ExporterPollUp), format!("cdn_exporter_poll_up{{{labels}}} 0\n"));
        assert_eq!(f(FamilyId::ExporterLastSuccessTimestampSeconds), "");
        assert_eq!(
            f(FamilyId::ExporterPollDurationSeconds),
            format!("cdn_exporter_poll_duration_seconds{{{labels}}} 0.5\n")
        );
        assert_eq!(f(FamilyId::ExporterMaxAgeSeconds), format!("cdn_exporter_max_age_seconds{{{labels}}} 3600\n"));
        let errors = &f(FamilyId::ExporterPollErrorsTotal);
        assert_eq!(errors.lines().count(), Reason::ALL.len());
        assert!(
            errors.contains(&format!("cdn_exporter_poll_errors_total{{{labels},reason=\"clock_skew\"}} 3\n")),
            "{errors}"
        );
    }

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

    #[test]
    fn whole_numbers_have_no_fraction_and_others_round_trip() {
        let samples: Vec<Sample> = [0.0, -0.0, 1.0, 12345678.0, 1e15, 1e21, 0.1, -2.5, f64::NAN]
            .into_iter()
            .enumerate()
            .map(|(i, v)| Sample::new(FamilyId::MonthToDateUsage, v).label("item", i.to_string()))
            .collect();
        let fragments = encode_job("p", &"a".into(), samples);
        let f = fragment(&fragments, FamilyId::MonthToDateUsage).unwrap_or_default();
        let values: Vec<&str> = f.lines().map(|l| l.rsplit(' ').next().unwrap()).collect();
        assert_eq!(&values[..5], ["0", "0", "1", "12345678", "1000000000000000"]);
        assert_eq!(values[5].parse::<f64>().unwrap(), 1e21);
        assert_eq!(values[6].parse::<f64>().unwrap(), 0.1);
        assert_eq!(values[7], "-2.5");
        assert_eq!(values[8], "NaN");
    }
}
