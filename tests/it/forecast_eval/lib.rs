//! Forecast evaluation against a real Prometheus (issue 24): synthetic billing history of
//! several kinds of accounts is backfilled into a TSDB, the forecast recording rules of a rules
//! file are backfilled over it, and the forecasts are compared with each month's final bill.
//! Shared by the integration test `forecast_eval` (short form) and `benches/forecast_eval.rs`.

#[path = "analysis.rs"]
pub mod analysis;
#[path = "history.rs"]
pub mod history;
#[path = "prom.rs"]
pub mod prom;
#[path = "rules.rs"]
pub mod rules;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use analysis::{Readings, Summary};
use history::{Calendar, PROVIDER};

/// What to evaluate.
#[derive(Debug, Clone)]
pub struct Options {
    /// Whole months of history (the first one only feeds the rules).
    pub months: usize,
    /// Kind names; empty for all.
    pub kinds: Vec<String>,
    /// The rules YAML.
    pub rules: PathBuf,
    /// Varies every kind's randomness.
    pub seed: u64,
    /// The history ends before this instant's month (Unix seconds).
    pub now: i64,
}

impl Options {
    /// `months` months of the given kinds (empty: all), the repository's rules, seed 1, now.
    pub fn new(months: usize, kinds: &[&str]) -> Options {
        Options {
            months,
            kinds: kinds.iter().map(|k| k.to_string()).collect(),
            rules: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus/rules.yml"),
            seed: 1,
            now: cdn_usage_exporter::timeutil::now_unix(),
        }
    }
}

/// Where promtool and prometheus are.
#[derive(Debug, Clone)]
pub struct Tools {
    pub prometheus: PathBuf,
    pub promtool: PathBuf,
}

/// A finished evaluation.
#[derive(Debug)]
pub struct Evaluation {
    pub summary: Summary,
    /// The Markdown report.
    pub report: String,
    /// Seconds spent per phase, in order.
    pub timings: Vec<(&'static str, f64)>,
}

/// Runs the whole evaluation in a temporary directory, removed afterwards.
pub async fn run(opts: &Options, tools: &Tools) -> Result<Evaluation, String> {
    if opts.months < 2 {
        return Err("at least 2 months: the first one has no last month".into());
    }
    let mut timings = Vec::new();
    let mut clock = Instant::now();
    let mut lap = |name: &'static str, timings: &mut Vec<(&'static str, f64)>| {
        timings.push((name, clock.elapsed().as_secs_f64()));
        clock = Instant::now();
    };
    let cal = Calendar::ending_before(opts.now, opts.months);
    let all = history::all_kinds(opts.months);
    if let Some(unknown) = opts.kinds.iter().find(|k| !all.iter().any(|a| a.name == k.as_str())) {
        let names: Vec<&str> = all.iter().map(|k| k.name).collect();
        return Err(format!("unknown kind {unknown:?}; kinds: {}", names.join(", ")));
    }
    let kinds: Vec<_> =
        all.into_iter().filter(|k| opts.kinds.is_empty() || opts.kinds.iter().any(|n| n == k.name)).collect();
    let accounts: Vec<_> = kinds.iter().map(|k| history::generate(k, &cal, opts.seed)).collect();
    let yaml = std::fs::read_to_string(&opts.rules).map_err(|e| format!("rules file {}: {e}", opts.rules.display()))?;
    let plan = rules::plan(&yaml)?;

    let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let openmetrics = dir.path().join("history.om");
    std::fs::write(&openmetrics, history::openmetrics(&accounts)).map_err(|e| format!("history: {e}"))?;
    lap("generate", &mut timings);
    prom::create_blocks(&tools.promtool, &openmetrics, &dir.path().join("data"))?;
    lap("promtool openmetrics", &mut timings);
    let mut prometheus = prom::Prometheus::start(&tools.prometheus, dir.path()).await?;
    lap("start prometheus", &mut timings);

    // From the second month: before it there is no last month's bill for the rules to use.
    let start = cal.months[1].0;
    let end = cal.end() - 3_600;
    for (i, level) in plan.levels.iter().enumerate() {
        prometheus.backfill_rules(&tools.promtool, &rules::rules_file(level)?, i, start, end).await?;
    }
    lap("promtool rules + restarts", &mut timings);

    let sel = |name: &str| format!("{name}{{provider=\"{PROVIDER}\"}}");
    let (noon, last_noon) = (start + 43_200, cal.end() - 43_200);
    let readings = Readings {
        forecast: prometheus.range(&sel(rules::FORECAST), noon, last_noon, 86_400).await?,
        low: prometheus.range(&sel(rules::FORECAST_LOW), noon, last_noon, 86_400).await?,
        high: prometheus.range(&sel(rules::FORECAST_HIGH), noon, last_noon, 86_400).await?,
        linear: prometheus.range(&sel(rules::LINEAR), noon, last_noon, 86_400).await?,
        alert: prometheus.range(&sel(rules::ALERT_CONDITION), start, end, 3_600).await?,
    };
    let offset = prometheus.rule_offset(rules::LINEAR, start + 86_400).await?;
    drop(prometheus);
    lap("queries", &mut timings);
    if std::env::var_os("CDN_FORECAST_EVAL_KEEP").is_some() {
        // For looking into the TSDB, the rules files and prometheus.log after a surprise.
        eprintln!("Kept {}", dir.keep().display());
    }

    let summary = analysis::summarize(&accounts, &readings, plan.alert_for, &plan.missing);
    let held_out: Vec<&str> = kinds.iter().filter(|k| k.held_out).map(|k| k.name).collect();
    let mut report = format!(
        "### Forecast evaluation: {} months ({} to {}, the first feeds the rules only), kinds {}, rules {}\n\n",
        opts.months,
        cdn_usage_exporter::timeutil::format_ymd(cal.start() / 86_400),
        cdn_usage_exporter::timeutil::format_ymd(end / 86_400),
        kinds.iter().map(|k| k.name).collect::<Vec<_>>().join(", "),
        opts.rules.display()
    );
    if let Some(o) = offset {
        let _ = writeln!(
            report,
            "promtool evaluated the rules {}m{:02}s past each hour (its group offset) on the samples of the hour.\n",
            o / 60,
            o % 60
        );
    }
    report.push_str(&analysis::report(&summary, &held_out));
    Ok(Evaluation { summary, report, timings })
}
