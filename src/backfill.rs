//! `backfill`: history from the provider APIs as OpenMetrics text with explicit timestamps, for
//! `promtool tsdb create-blocks-from openmetrics`. The same families and labels as `/metrics`,
//! so that dashboards draw history and live data as one line.
//!
//! Each *unit* (a CDNetworks domain, a ScaleEngine account's disk, summary, billing, or one video
//! app) walks its *windows* (the spans each API allows) in time order, through the same clients,
//! rate limits, retries and timeouts as live polling, and streams its samples to spool files,
//! one per family. The output is then assembled family by family, `# EOF` last, in a temporary
//! file renamed into place only when complete. Memory does not grow with the range.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::json;
use tokio::sync::Semaphore;

use crate::config::{CdnetworksAccount, Config, ScaleEngineAccount, VideoApp};
use crate::exposition;
use crate::families::FamilyId;
use crate::job::{PollError, Sample};
use crate::providers::http::{RetryPolicy, Upstream};
use crate::providers::scaleengine::client::Client as SeClient;
use crate::providers::scaleengine::{normalize, wire};
use crate::providers::{cdnetworks, scaleengine};
use crate::store::Store;
use crate::timeutil::{self, civil_from_days, days_from_civil, days_in_month, format_ymd};

/// CDNetworks keeps two years of local-storage history.
pub const CDNETWORKS_HISTORY_DAYS: i64 = 731;
/// Days per CDNetworks window: `dateFrom` and `dateTo` at most 31 days apart.
pub const CDNETWORKS_WINDOW_DAYS: i64 = 31;
/// How far back CDNetworks `traffic-request` serves (183 days).
pub const TRAFFIC_HISTORY_DAYS: i64 = 183;
/// Days per ScaleEngine `disk.usage` answer.
pub const DISK_WINDOW_DAYS: i64 = 30;

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
    /// A client could not be built.
    #[error("{0}")]
    Setup(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackfillError + '_ {
    move |source| BackfillError::Io { path: path.display().to_string(), source }
}

/// One unit's spool: a file per family, appended in time order.
struct Spool {
    dir: PathBuf,
    unit: usize,
    files: HashMap<FamilyId, BufWriter<File>>,
    samples: u64,
    provider: &'static str,
    account: Arc<str>,
}

impl Spool {
    fn path(dir: &Path, unit: usize, family: FamilyId) -> PathBuf {
        dir.join(format!("{unit:06}-{:03}", family.index()))
    }

    fn write(&mut self, samples: &[Sample], timestamp: i64) -> Result<(), BackfillError> {
        let mut line = String::with_capacity(160);
        for s in samples {
            line.clear();
            let labels = [("provider", self.provider), ("account", &*self.account)]
                .into_iter()
                .chain(s.labels.iter().map(|(k, v)| (*k, v.as_str())));
            exposition::write_sample(&mut line, s.family.def().name, labels, s.value);
            // write_sample ends the line; put the timestamp before the newline.
            line.pop();
            line.push(' ');
            line.push_str(&timestamp.to_string());
            line.push('\n');
            let path = Self::path(&self.dir, self.unit, s.family);
            let file = match self.files.entry(s.family) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(BufWriter::new(File::create(&path).map_err(io(&path))?))
                }
            };
            file.write_all(line.as_bytes()).map_err(io(&path))?;
            self.samples += 1;
        }
        Ok(())
    }

    fn close(mut self) -> Result<u64, BackfillError> {
        for (family, mut f) in self.files.drain() {
            f.flush().map_err(io(&Self::path(&self.dir, self.unit, family)))?;
        }
        Ok(self.samples)
    }
}

/// Removes the spool directory however the backfill ends.
struct SpoolDir(PathBuf);

impl Drop for SpoolDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A unit of work.
enum Unit {
    Domain { client: Arc<cdnetworks::Client>, account: CdnetworksAccount, domain: usize },
    Traffic { client: Arc<cdnetworks::Client>, account: CdnetworksAccount },
    Disk(Arc<SeClient>, ScaleEngineAccount),
    Summary(Arc<SeClient>, ScaleEngineAccount),
    Billing(Arc<SeClient>, ScaleEngineAccount),
    Video(Arc<SeClient>, ScaleEngineAccount, VideoApp),
}

impl Unit {
    fn name(&self) -> String {
        match self {
            Unit::Domain { account, domain, .. } => {
                format!("{}/{}/{}", cdnetworks::PROVIDER, account.name, account.domains[*domain].domain)
            }
            Unit::Traffic { account, .. } => {
                format!("{}/{}/{}", cdnetworks::PROVIDER, account.name, cdnetworks::traffic::ENDPOINT)
            }
            Unit::Disk(_, a) => format!("{}/{}/disk.usage", scaleengine::PROVIDER, a.name),
            Unit::Summary(_, a) => format!("{}/{}/usage.summary", scaleengine::PROVIDER, a.name),
            Unit::Billing(_, a) => format!("{}/{}/usage.billing", scaleengine::PROVIDER, a.name),
            Unit::Video(_, a, app) => format!("{}/{}/video.usage/{app}", scaleengine::PROVIDER, a.name),
        }
    }

    fn account(&self) -> (&'static str, Arc<str>) {
        match self {
            Unit::Domain { account, .. } | Unit::Traffic { account, .. } => {
                (cdnetworks::PROVIDER, account.name.as_str().into())
            }
            Unit::Disk(_, a) | Unit::Summary(_, a) | Unit::Billing(_, a) | Unit::Video(_, a, _) => {
                (scaleengine::PROVIDER, a.name.as_str().into())
            }
        }
    }

    /// The unit's windows over `[from, to]`, as (first day, last day), in time order.
    fn windows(&self, from: i64, to: i64, now: i64) -> Vec<(i64, i64)> {
        let today_utc = now.div_euclid(86_400);
        match self {
            Unit::Domain { account, .. } => {
                let today = (now + account.utc_offset).div_euclid(86_400);
                let first = from.max(today - CDNETWORKS_HISTORY_DAYS + 1);
                chunks(first, to.min(today), CDNETWORKS_WINDOW_DAYS)
            }
            // Month by month in the account's zone, from each month's first day (month-to-date
            // figures start there), a request per day; months older than the API's history
            // cannot be summed whole and are left out.
            Unit::Traffic { account, .. } => {
                let today = (now + account.utc_offset).div_euclid(86_400);
                let oldest = today - TRAFFIC_HISTORY_DAYS + 1;
                // Days before today: today belongs to live polling.
                months(from, to.min(today - 1))
                    .into_iter()
                    .filter(|(first, _)| *first >= oldest)
                    .map(|(first, last)| (first, last.min(to).min(today - 1)))
                    .collect()
            }
            Unit::Disk(..) => chunks(from, to.min(today_utc - 1), DISK_WINDOW_DAYS),
            // Whole months that are over, and that meet the range.
            Unit::Summary(..) | Unit::Billing(..) => {
                months(from, to).into_iter().filter(|(_, last)| *last < today_utc).collect()
            }
            // Month by month; a month's cumulative sums start on its first day.
            Unit::Video(..) => months(from, to.min(today_utc - 1))
                .into_iter()
                .map(|(first, last)| (first.max(month_start(from)), last.min(to).min(today_utc - 1)))
                .filter(|(a, b)| a <= b)
                .collect(),
        }
    }
}

/// `[from, to]` in chunks of at most `len` days.
fn chunks(from: i64, to: i64, len: i64) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut start = from;
    while start <= to {
        let end = (start + len - 1).min(to);
        out.push((start, end));
        start = end + 1;
    }
    out
}

fn month_start(day: i64) -> i64 {
    let (y, m, _) = civil_from_days(day);
    days_from_civil(y, m, 1)
}

/// The calendar months meeting `[from, to]`, each as (first day, last day) of the month.
fn months(from: i64, to: i64) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut start = month_start(from);
    while start <= to {
        let (y, m, _) = civil_from_days(start);
        let end = start + i64::from(days_in_month(y, m)) - 1;
        out.push((start, end));
        start = end + 1;
    }
    out
}

/// Runs a backfill. Windows that fail after retries are in the report; everything else is in
/// the output.
pub async fn run(config: &Config, opts: &Options, progress: Arc<dyn Progress>) -> Result<Report, BackfillError> {
    let http = crate::app::http_client().map_err(|e| BackfillError::Setup(e.to_string()))?;
    // Requests count for nothing here, but the clients want a store.
    let store = Store::new(crate::app::VERSION, crate::app::REVISION);
    let global = Arc::new(Semaphore::new(config.limits.max_in_flight));
    let retry = RetryPolicy { attempts: config.limits.retries + 1, ..RetryPolicy::default() };
    let upstream =
        Upstream::new(global, config.limits.max_in_flight_per_provider, retry).with_answers(config.limits.answers);
    let mut units = Vec::new();
    for a in &config.cdnetworks {
        let client =
            Arc::new(cdnetworks::Client::new(a, &http, &store, upstream.clone()).map_err(BackfillError::Setup)?);
        for domain in 0..a.domains.len() {
            units.push(Unit::Domain { client: client.clone(), account: a.clone(), domain });
        }
        if a.traffic {
            units.push(Unit::Traffic { client: client.clone(), account: a.clone() });
        }
    }
    for a in &config.scaleengine {
        let client = Arc::new(SeClient::new(a, &http, &store, upstream.clone()));
        units.push(Unit::Disk(client.clone(), a.clone()));
        units.push(Unit::Summary(client.clone(), a.clone()));
        units.push(Unit::Billing(client.clone(), a.clone()));
        for app in &a.video_apps {
            units.push(Unit::Video(client.clone(), a.clone(), app.clone()));
        }
    }
    units.retain(|u| opts.only.as_deref().is_none_or(|only| u.name().starts_with(only)));

    let spool_dir = match &opts.out {
        Output::File(path) => sibling(path, "spool"),
        Output::Stdout => std::env::temp_dir().join(format!("cdn-usage-exporter-backfill-{}", std::process::id())),
    };
    std::fs::create_dir_all(&spool_dir).map_err(io(&spool_dir))?;
    let _cleanup = SpoolDir(spool_dir.clone());

    let now = timeutil::now_unix();
    let mut tasks = tokio::task::JoinSet::new();
    for (index, unit) in units.into_iter().enumerate() {
        let windows = unit.windows(opts.from, opts.to, now);
        progress.add(&unit.name(), windows.len());
        let (provider, account) = unit.account();
        let spool = Spool { dir: spool_dir.clone(), unit: index, files: HashMap::new(), samples: 0, provider, account };
        let progress = progress.clone();
        let (from, to) = (opts.from, opts.to);
        tasks.spawn(async move { run_unit(unit, windows, spool, from, to, now, progress).await });
    }
    let mut report = Report::default();
    while let Some(joined) = tasks.join_next().await {
        let (samples, ok, failed) =
            joined.map_err(|e| BackfillError::Setup(format!("a backfill task failed: {e}")))??;
        report.samples += samples;
        report.windows += ok;
        report.failed.extend(failed);
    }
    progress.finish();
    report.failed.sort_by(|a, b| (&a.unit, &a.from).cmp(&(&b.unit, &b.from)));
    assemble(&spool_dir, &opts.out)?;
    Ok(report)
}

fn sibling(path: &Path, what: &str) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "backfill".into());
    path.with_file_name(format!(".{name}.{what}-{}", std::process::id()))
}

type UnitResult = Result<(u64, usize, Vec<FailedWindow>), BackfillError>;

async fn run_unit(
    unit: Unit,
    windows: Vec<(i64, i64)>,
    mut spool: Spool,
    from: i64,
    to: i64,
    now: i64,
    progress: Arc<dyn Progress>,
) -> UnitResult {
    let name = unit.name();
    let mut failed = Vec::new();
    let mut ok = 0;
    for (first, last) in windows {
        let result = match &unit {
            Unit::Domain { client, account, domain } => {
                domain_window(client, account, *domain, first, last, now, &mut spool).await
            }
            Unit::Traffic { client, account } => {
                traffic_month(client, account, first, last, from, now, &mut spool).await
            }
            Unit::Disk(client, _) => disk_window(client, first, last, &mut spool).await,
            Unit::Summary(client, _) => month_window(client, "usage.summary", first, last, &mut spool).await,
            Unit::Billing(client, _) => month_window(client, "usage.billing", first, last, &mut spool).await,
            Unit::Video(client, account, app) => video_month(client, account, app, first, last, from, &mut spool).await,
        };
        let succeeded = match result {
            Ok(()) => true,
            Err(WindowError::Fatal(e)) => return Err(e),
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
    Ok((spool.close()?, ok, failed))
}

enum WindowError {
    /// The window could not be fetched from day `from` on.
    Fetch { error: PollError, from: i64 },
    /// Writing failed: the backfill stops.
    Fatal(BackfillError),
}

impl From<BackfillError> for WindowError {
    fn from(e: BackfillError) -> Self {
        WindowError::Fatal(e)
    }
}

async fn domain_window(
    client: &cdnetworks::Client,
    account: &CdnetworksAccount,
    domain: usize,
    first: i64,
    last: i64,
    now: i64,
    spool: &mut Spool,
) -> Result<(), WindowError> {
    let d = &account.domains[domain];
    // dateFrom must be before dateTo: a one-day window asks for the next day too.
    let date_to = if last > first { last } else { last + 1 };
    let path = format!("{}.domains[{domain}]", account.path);
    let points = client
        .domain_usage_between(d, &path, &format_ymd(first), &format_ymd(date_to))
        .await
        .map_err(|error| WindowError::Fetch { error, from: first })?;
    let offset = client.utc_offset();
    let (start, end) = (first * 86_400 - offset, (last + 1) * 86_400 - offset);
    for p in points.iter().filter(|p| p.end > start && p.end <= end && p.end <= now) {
        let samples = [
            Sample::new(FamilyId::StorageBytes, p.bytes).label("domain", d.domain.clone()),
            Sample::new(FamilyId::StorageSampleTimestampSeconds, p.end as f64).label("domain", d.domain.clone()),
        ];
        spool.write(&samples, p.end)?;
    }
    Ok(())
}

/// Days `first..=last` of one month (in the account's zone) of an account's traffic, a request
/// per day per 1,000 domains: the month-to-date figures at each day's end, as live polling
/// computes them. Days before `emit_from` only feed the month.
async fn traffic_month(
    client: &cdnetworks::Client,
    account: &CdnetworksAccount,
    first: i64,
    last: i64,
    emit_from: i64,
    now: i64,
    spool: &mut Spool,
) -> Result<(), WindowError> {
    use cdnetworks::traffic::{self, MAX_DOMAINS_PER_REQUEST, Month};
    let offset = client.utc_offset();
    let domains: Vec<String> = account.domains.iter().map(|d| d.domain.clone()).collect();
    let mut month = Month::new(first, domains.len());
    for day in first..=last {
        for (chunk, asked) in domains.chunks(MAX_DOMAINS_PER_REQUEST).enumerate() {
            let (from, to) = (traffic::local_midnight(day, offset), traffic::local_midnight(day + 1, offset));
            let answer = client
                .traffic_day(asked, &from, &to, &account.path)
                .await
                .map_err(|error| WindowError::Fetch { error, from: day })?;
            month.keep((day - first) as usize, chunk, &answer, offset, now);
        }
        if day >= emit_from {
            // Past days are final (settle 0: fetched after they ended).
            let figures = month.figures(offset, 0);
            let at = (day + 1) * 86_400 - offset;
            spool.write(&traffic::samples(&domains, figures, None), at)?;
        }
    }
    Ok(())
}

async fn disk_window(client: &SeClient, first: i64, last: i64, spool: &mut Spool) -> Result<(), WindowError> {
    let fetch = |error| WindowError::Fetch { error, from: first };
    let limit = scaleengine::body_limit(&client.answers(), "disk.usage");
    let answer = client
        .call("disk.usage", &[("cpu", json!("")), ("starttime", json!(first * 86_400))], limit)
        .await
        .map_err(fetch)?;
    let mut days = wire::parse_disk(&answer, scaleengine::entries_limit(&client.answers())).map_err(fetch)?;
    // The same rules as live polling: a value that is not data fails the window.
    normalize::disk(&days, last + 1).map_err(fetch)?;
    days.retain(|d| d.day >= first && d.day <= last);
    let has_users = days.iter().any(|d| !d.user.trim().is_empty());
    days.retain(|d| !has_users || !d.user.trim().is_empty());
    days.sort_by_key(|d| d.day);
    for d in days {
        let user = if d.user.trim().is_empty() { normalize::ALL_USERS.to_owned() } else { d.user.trim().to_owned() };
        let end = (d.day + 1) * 86_400;
        let samples = [
            Sample::new(FamilyId::StorageBytes, d.bytes.get().unwrap_or_default()).label("user", user.clone()),
            Sample::new(FamilyId::StorageSampleTimestampSeconds, end as f64).label("user", user),
        ];
        spool.write(&samples, end)?;
    }
    Ok(())
}

/// A whole month of `usage.summary` or `usage.billing`, as its totals at the month's last second.
async fn month_window(
    client: &SeClient,
    command: &str,
    first: i64,
    last: i64,
    spool: &mut Spool,
) -> Result<(), WindowError> {
    let fetch = |error| WindowError::Fetch { error, from: first };
    let limit = scaleengine::body_limit(&client.answers(), command);
    let answer = client.call(command, &[("starttime", json!(format_ymd(first)))], limit).await.map_err(fetch)?;
    let table =
        wire::parse_table(&answer, scaleengine::table_limit(&client.answers()), limit.endpoint).map_err(fetch)?;
    let mut samples = if command == "usage.summary" {
        normalize::summary(&table).map_err(fetch)?.0
    } else {
        normalize::billing(&table).map_err(fetch)?
    };
    // A finished month's estimate is its total.
    if command == "usage.billing" {
        let estimates: Vec<Sample> = samples
            .iter()
            .filter_map(|s| {
                let family = match s.family {
                    FamilyId::BillingMonthToDateSpendUsd => FamilyId::BillingEstimatedMonthSpendUsd,
                    FamilyId::BillingMonthToDateCostUsd => FamilyId::BillingEstimatedMonthCostUsd,
                    FamilyId::BillingMonthToDateUsage => FamilyId::BillingEstimatedMonthUsage,
                    _ => return None,
                };
                Some(Sample { family, ..s.clone() })
            })
            .collect();
        samples.retain(|s| {
            !matches!(
                s.family,
                FamilyId::BillingEstimatedMonthSpendUsd
                    | FamilyId::BillingEstimatedMonthCostUsd
                    | FamilyId::BillingEstimatedMonthUsage
            )
        });
        samples.extend(estimates);
    }
    spool.write(&samples, (last + 1) * 86_400 - 1)?;
    Ok(())
}

/// Days `first..=last` of one month for one app: month-to-date sums per URL at each day's last
/// second, top N kept as live polling does. Days before `emit_from` only feed the sums.
#[allow(clippy::too_many_arguments)]
async fn video_month(
    client: &SeClient,
    account: &ScaleEngineAccount,
    app: &VideoApp,
    first: i64,
    last: i64,
    emit_from: i64,
    spool: &mut Spool,
) -> Result<(), WindowError> {
    let app_value = match app {
        VideoApp::Id(id) => json!(id),
        VideoApp::Name(name) => json!(name),
    };
    let mut sums: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for day in first..=last {
        let (y, m, d) = civil_from_days(day);
        let mut offset = 0u64;
        let answers = client.answers();
        let page_limit = scaleengine::VIDEO_PAGE_LIMIT.min(answers.page_entries as u64);
        for _ in 0..answers.video_pages {
            let params = [
                ("app", app_value.clone()),
                ("year", json!(y)),
                ("month", json!(m)),
                ("day", json!(d)),
                ("limit", json!(page_limit)),
                ("offset", json!(offset)),
            ];
            let fetch = |error| WindowError::Fetch { error, from: day };
            let limit = scaleengine::body_limit(&answers, "video.usage");
            let body = client.call("video.usage", &params, limit).await.map_err(fetch)?;
            let page = wire::parse_video(&body, scaleengine::entries_limit(&answers)).map_err(fetch)?;
            // The same rules as live polling: a value that is not data fails the window.
            normalize::video("", &page.entries, 0).map_err(fetch)?;
            let got = page.entries.len() as u64;
            for e in page.entries {
                let Some(url) = e.url.get() else { continue };
                let slot = sums.entry(crate::providers::text::label(url)).or_default();
                slot.0 += e.bytes.get().unwrap_or_default();
                slot.1 += e.requests.get().unwrap_or_default();
            }
            offset += got;
            if got == 0 || page.count.map_or(got < page_limit, |c| offset >= c) {
                break;
            }
        }
        if day >= emit_from {
            let entries: Vec<wire::VideoEntry> = sums
                .iter()
                .map(|(url, (b, r))| wire::VideoEntry {
                    url: wire::Text(Some(url.as_str().into())),
                    bytes: wire::Num::Value(*b),
                    requests: wire::Num::Value(*r),
                })
                .collect();
            let samples = normalize::video(&app.to_string(), &entries, account.video_top_n)
                .map_err(|error| WindowError::Fetch { error, from: day })?;
            spool.write(&samples, (day + 1) * 86_400 - 1)?;
        }
    }
    Ok(())
}

/// Writes `s` as OpenMetrics HELP text: backslash, newline and double quote escaped.
fn help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n").replace('"', "\\\"")
}

/// Concatenates the spool family by family into the output, `# EOF` last; a file output is
/// written under a temporary name, synced, and renamed into place.
fn assemble(dir: &Path, out: &Output) -> Result<(), BackfillError> {
    let mut spools: Vec<PathBuf> =
        std::fs::read_dir(dir).map_err(io(dir))?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    spools.sort();
    let by_family = |family: FamilyId| {
        let suffix = format!("-{:03}", family.index());
        spools.iter().filter(move |p| p.file_name().is_some_and(|n| n.to_string_lossy().ends_with(&suffix)))
    };
    let write_all = |w: &mut dyn std::io::Write, target: &Path| -> Result<(), BackfillError> {
        for &family in FamilyId::ALL {
            let mut files = by_family(family).peekable();
            if files.peek().is_none() {
                continue;
            }
            let def = family.def();
            let mut header = format!("# HELP {} {}\n# TYPE {} gauge\n", def.name, help(def.help), def.name);
            if let Some(unit) = def.unit {
                header.push_str(&format!("# UNIT {} {unit}\n", def.name));
            }
            w.write_all(header.as_bytes()).map_err(io(target))?;
            for path in files {
                let mut f = File::open(path).map_err(io(path))?;
                std::io::copy(&mut f, w).map_err(io(target))?;
            }
        }
        w.write_all(b"# EOF\n").map_err(io(target))?;
        w.flush().map_err(io(target))
    };
    match out {
        Output::Stdout => {
            let stdout = std::io::stdout();
            let mut lock = BufWriter::new(stdout.lock());
            write_all(&mut lock, Path::new("standard output"))
        }
        Output::File(path) => {
            let tmp = sibling(path, "tmp");
            let result = (|| {
                let file = File::create(&tmp).map_err(io(&tmp))?;
                let mut w = BufWriter::new(file);
                write_all(&mut w, &tmp)?;
                let file = w
                    .into_inner()
                    .map_err(|e| BackfillError::Io { path: tmp.display().to_string(), source: e.into_error() })?;
                file.sync_all().map_err(io(&tmp))?;
                std::fs::rename(&tmp, path).map_err(io(path))
            })();
            if result.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            result
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_the_range_without_overlap() {
        assert_eq!(chunks(0, 61, 31), vec![(0, 30), (31, 61)]);
        assert_eq!(chunks(5, 5, 31), vec![(5, 5)]);
        assert!(chunks(6, 5, 31).is_empty());
        let jan = days_from_civil(2026, 1, 15);
        let mar = days_from_civil(2026, 3, 2);
        let m = months(jan, mar);
        assert_eq!(m.len(), 3);
        assert_eq!(m[0], (days_from_civil(2026, 1, 1), days_from_civil(2026, 1, 31)));
        assert_eq!(m[1].1 - m[1].0 + 1, 28);
        let total: i64 = chunks(0, 730, 31).iter().map(|(a, b)| b - a + 1).sum();
        assert_eq!(total, 731);
    }

    #[test]
    fn help_text_is_escaped_for_openmetrics() {
        assert_eq!(help("a \"b\" \\ c\nd"), "a \\\"b\\\" \\\\ c\\nd");
    }
}

/// Progress as one bar per account (windows done / total), for a terminal.
pub struct BarProgress {
    bars: indicatif::MultiProgress,
    accounts: std::sync::Mutex<BTreeMap<String, indicatif::ProgressBar>>,
}

fn account_of(unit: &str) -> String {
    unit.split('/').take(2).collect::<Vec<_>>().join("/")
}

impl BarProgress {
    /// Bars drawn on standard error.
    pub fn new() -> Self {
        BarProgress { bars: indicatif::MultiProgress::new(), accounts: Default::default() }
    }
}

impl Default for BarProgress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress for BarProgress {
    fn add(&self, unit: &str, windows: usize) {
        let account = account_of(unit);
        let mut accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        let bar = accounts.entry(account.clone()).or_insert_with(|| {
            let bar = self.bars.add(indicatif::ProgressBar::new(0));
            let style = indicatif::ProgressStyle::with_template("{prefix:40} [{bar:30}] {pos}/{len} windows {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(account);
            bar
        });
        bar.inc_length(windows as u64);
    }

    fn done(&self, unit: &str, ok: bool) {
        let accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(bar) = accounts.get(&account_of(unit)) {
            bar.inc(1);
            if !ok {
                bar.set_message("(some failed)");
            }
        }
    }

    fn finish(&self) {
        for bar in self.accounts.lock().unwrap_or_else(|e| e.into_inner()).values() {
            bar.finish();
        }
    }
}

/// Progress as log lines, for logs and pipes: one per unit started and finished.
#[derive(Default)]
pub struct LogProgress {
    units: std::sync::Mutex<BTreeMap<String, (usize, usize)>>,
}

impl Progress for LogProgress {
    fn add(&self, unit: &str, windows: usize) {
        self.units.lock().unwrap_or_else(|e| e.into_inner()).insert(unit.to_owned(), (0, windows));
        tracing::info!(unit, windows, "Backfill unit starts");
    }

    fn done(&self, unit: &str, _ok: bool) {
        let mut units = self.units.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((done, total)) = units.get_mut(unit) {
            *done += 1;
            if done == total {
                tracing::info!(unit, windows = *total, "Backfill unit done");
            }
        }
    }

    fn finish(&self) {}
}
