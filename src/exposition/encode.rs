//! Encoding through prometheus-client: each family's descriptor and header lines, a job's
//! samples and health as per-family fragments (sample lines without headers), and whole
//! families for the exporter's own figures.

use std::fmt;
use std::sync::LazyLock;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabel as _, EncodeLabelSet, EncodeMetric as _, LabelSetEncoder, MetricEncoder,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::registry::{Registry, Unit};

use crate::families::{FamilyId, Kind};
use crate::job::Sample;

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
                // An info metric's labels are its own, not a family's: it is always 1.
                if d.kind == Kind::Info {
                    family.encode_info(&labels)?;
                    continue;
                }
                let mut m = family.encode_family(&labels)?;
                match d.kind {
                    Kind::Counter => ConstCounter::new(s.value).encode(m)?,
                    Kind::Gauge | Kind::Info => encode_gauge(&mut m, s.value)?,
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
    /// What requests to pay-per-request APIs may have cost: provider, account, api, US dollars.
    pub upstream_cost: Vec<(&'static str, std::sync::Arc<str>, &'static str, f64)>,
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
        if !self.upstream_cost.is_empty() {
            let mut m = descriptor(FamilyId::ExporterUpstreamCostUsdTotal).encode(&mut encoder)?;
            for (provider, account, api, usd) in &self.upstream_cost {
                let labels = [("provider", *provider), ("account", &**account), ("api", *api)];
                ConstCounter::new(*usd).encode(m.encode_family(&labels)?)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{JobKey, Reason};

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
    fn a_job_info_sample_carries_its_labels_and_is_1() {
        let samples = vec![Sample::new(FamilyId::BillingSpendSourceInfo, 1.0).label("source", "contract")];
        let fragments = encode_job("cdnetworks", &"m".into(), samples);
        assert_eq!(
            fragment(&fragments, FamilyId::BillingSpendSourceInfo),
            Some("cdn_billing_spend_source_info{provider=\"cdnetworks\",account=\"m\",source=\"contract\"} 1\n")
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
