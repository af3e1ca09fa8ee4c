//! `backfill`: history from the provider APIs as OpenMetrics text with explicit timestamps, for
//! `promtool tsdb create-blocks-from openmetrics`. The same families and labels as `/metrics`,
//! so that dashboards draw history and live data as one line.
//!
//! Each provider's account hands out its history as *units* ([`crate::providers::History`]: a
//! CDNetworks domain, a ScaleEngine account's disk, summary, billing, or one video app). Each
//! unit walks its *windows* (the spans its API allows) in time order, through the same clients,
//! rate limits, retries and timeouts as live polling, and streams its samples to spool files,
//! one per family ([`spool`]). The output is then assembled family by family, `# EOF` last, in a
//! temporary file renamed into place only when complete. Memory does not grow with the range.

mod progress;
mod spool;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::Config;
use crate::families::FamilyId;
use crate::job::{NoSink, PollError, Sample};
use crate::providers::common::http::{self, upstreams};
use crate::providers::{Context, History, SampleSink, SetupError, SinkError, Window, WindowError, registry};
use crate::timeutil::{self, format_ymd};

pub use progress::{BarProgress, LogProgress};
use spool::{Spool, SpoolDir};

/// Where the output goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// A file, written to a temporary name and renamed when complete.
    File(PathBuf),
    /// Standard output.
    Stdout,
}

/// What to fetch.
#[derive(Debug, Clone)]
pub struct Options {
    /// First day (day number, UTC; for CDNetworks, in the account's zone).
    pub from: i64,
    /// Last day, inclusive.
    pub to: i64,
    /// Where to write.
    pub out: Output,
    /// Only units whose name starts with this (`provider/account[/part]`).
    pub only: Option<String>,
    /// The configuration file, for the commands that fetch a failed window again.
    pub config_path: PathBuf,
}

/// A window that could not be fetched, with what it takes to try again.
#[derive(Debug, Clone)]
pub struct FailedWindow {
    /// The unit, e.g. `cdnetworks/main/static.example.com`.
    pub unit: String,
    /// First day of the window.
    pub from: String,
    /// Last day of the window.
    pub to: String,
    /// Why.
    pub error: PollError,
}

/// What a backfill did.
#[derive(Debug, Default)]
pub struct Report {
    /// Samples written.
    pub samples: u64,
    /// Windows fetched successfully.
    pub windows: usize,
    /// Windows that failed after retries.
    pub failed: Vec<FailedWindow>,
}

impl FailedWindow {
    /// The command that fetches just this window.
    pub fn command(&self, config: &Path) -> String {
        let file = format!("backfill-{}-{}.om", self.unit.replace(['/', ' '], "_"), self.from);
        format!(
            "cdn-usage-exporter backfill --config {} --from {} --to {} --only '{}' --out {file}",
            config.display(),
            self.from,
            self.to,
            self.unit
        )
    }
}

/// Reports progress: a bar per account on a terminal, log lines otherwise.
pub trait Progress: Send + Sync {
    /// A unit with `windows` windows is about to start.
    fn add(&self, unit: &str, windows: usize);
    /// One window of `unit` finished.
    fn done(&self, unit: &str, ok: bool);
    /// Everything finished.
    fn finish(&self);
}

/// Why a backfill could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    /// Writing the spool or the output failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// What was written.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The HTTP client could not be built (TLS roots unavailable).
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    /// An account's client could not be set up.
    #[error("cannot set up an account: {0}")]
    Setup(#[from] SetupError),
    /// A unit's task ended abnormally.
    #[error("a backfill task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackfillError + '_ {
    move |source| BackfillError::Io { path: path.display().to_string(), source }
}

/// Runs a backfill. Windows that fail after retries are in the report; everything else is in
/// the output.
pub async fn run(config: &Config, opts: &Options, progress: Arc<dyn Progress>) -> Result<Report, BackfillError> {
    let mut units = history_units(config)?;
    units.retain(|(_, _, u)| opts.only.as_deref().is_none_or(|only| u.name().starts_with(only)));

    let spool_dir = match &opts.out {
        Output::File(path) => spool::sibling(path, "spool"),
        Output::Stdout => std::env::temp_dir().join(format!("cdn-usage-exporter-backfill-{}", std::process::id())),
    };
    std::fs::create_dir_all(&spool_dir).map_err(io(&spool_dir))?;
    let _cleanup = SpoolDir(spool_dir.clone());

    let now = timeutil::now_unix();
    let rates = Arc::new(config.rates.clone());
    let mut tasks = tokio::task::JoinSet::new();
    for (index, (provider, account, unit)) in units.into_iter().enumerate() {
        let windows = unit.windows(opts.from, opts.to, now);
        progress.add(&unit.name(), windows.len());
        let label = format!("{provider}/{account}");
        let spool = Spool::new(spool_dir.clone(), index, provider, account);
        let sink = Converting { spool, rates: rates.clone(), account: label, error: None };
        let progress = progress.clone();
        let range = (opts.from, opts.to);
        tasks.spawn(async move { run_unit(unit, windows, sink, range, now, progress).await });
    }
    let mut report = Report::default();
    while let Some(joined) = tasks.join_next().await {
        let (samples, ok, failed) = joined??;
        report.samples += samples;
        report.windows += ok;
        report.failed.extend(failed);
    }
    progress.finish();
    report.failed.sort_by(|a, b| (&a.unit, &a.from).cmp(&(&b.unit, &b.from)));
    spool::assemble(&spool_dir, &opts.out)?;
    Ok(report)
}

/// A history unit with the `provider` and `account` labels of its account.
pub type Unit = (&'static str, Arc<str>, Box<dyn History>);

/// Every account's history units, with clients built as live polling builds them (one upstream
/// per provider, one global cap; requests count for nothing here).
pub fn history_units(config: &Config) -> Result<Vec<Unit>, BackfillError> {
    let client = http::client()?;
    let (_, upstreams) = upstreams(registry::NAMES.iter().copied(), &config.limits.requests(), Arc::new(NoSink));
    let mut units: Vec<Unit> = Vec::new();
    for account in &config.accounts {
        let ctx = Context { http: &client, upstream: &upstreams[account.provider()] };
        let name: Arc<str> = account.name().into();
        units.extend(account.history(&ctx)?.into_iter().map(|u| (account.provider(), name.clone(), u)));
    }
    Ok(units)
}

type UnitResult = Result<(u64, usize, Vec<FailedWindow>), BackfillError>;

/// The spool behind the currency conversion of live polling ([`crate::currency::convert`]):
/// amounts in US dollars at today's configured rates; amounts in a currency with no rate left
/// out, the window then reported as failed with the key to add, its usage written.
struct Converting {
    spool: Spool,
    rates: Arc<crate::currency::Rates>,
    account: String,
    error: Option<PollError>,
}

impl SampleSink for Converting {
    fn write(&mut self, samples: &[Sample], timestamp: i64) -> Result<(), SinkError> {
        let money =
            samples.iter().any(|s| s.family == FamilyId::BillingCurrencyInfo || crate::currency::is_money(s.family));
        if !money {
            return self.spool.write(samples, timestamp);
        }
        let converted = crate::currency::convert(samples.to_vec(), &self.rates, &self.account);
        if let Some(e) = converted.error.clone() {
            self.error.get_or_insert(e);
        }
        // The account's currency series are live only: several units of one account would
        // write them, out of order for one series.
        self.spool.write(&converted.samples, timestamp)
    }
}

async fn run_unit(
    unit: Box<dyn History>,
    windows: Vec<(i64, i64)>,
    mut spool: Converting,
    (from, to): (i64, i64),
    now: i64,
    progress: Arc<dyn Progress>,
) -> UnitResult {
    let name = unit.name();
    let mut failed = Vec::new();
    let mut ok = 0;
    for (first, last) in windows {
        let window = Window { first, last, emit_from: from, now };
        let succeeded = match unit.fetch(window, &mut spool).await {
            Ok(()) => match spool.error.take() {
                None => true,
                Some(error) => {
                    let (f, l) = (first.max(from), last.min(to));
                    tracing::warn!(unit = %name, error = %error.message, "Backfill window's amounts left out; the rest goes on");
                    failed.push(FailedWindow { unit: name.clone(), from: format_ymd(f), to: format_ymd(l), error });
                    false
                }
            },
            Err(WindowError::Sink(e)) => {
                return Err(match e.0.downcast::<BackfillError>() {
                    Ok(e) => *e,
                    Err(other) => BackfillError::Io { path: name, source: std::io::Error::other(other) },
                });
            }
            Err(WindowError::Fetch { error, from: f }) => {
                // Only the part of the window inside the asked range is worth asking again.
                let (f, l) = (f.max(first).max(from), last.min(to));
                tracing::warn!(unit = %name, from = %format_ymd(f), to = %format_ymd(l), error = %error.message, "Backfill window failed; the rest goes on");
                failed.push(FailedWindow { unit: name.clone(), from: format_ymd(f), to: format_ymd(l), error });
                false
            }
        };
        ok += usize::from(succeeded);
        progress.done(&name, succeeded);
    }
    Ok((spool.spool.close()?, ok, failed))
}
