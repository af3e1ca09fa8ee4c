//! The samples of every job and the exposition body rendered from them. A poll replaces its
//! job's fragments (its samples encoded by prometheus-client, one per family, on the poll
//! path); a render re-encodes only the health of jobs that polled since, concatenates every
//! fragment under its family's header, once per change; a scrape only clones the cached body.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use bytes::Bytes;
use tokio::sync::Notify;

use crate::expo::{self, Exposition, Fragments};
use crate::families::FamilyId;
use crate::job::{JobKey, PollError, Reason, Sample};
use crate::shard::Shard;
use crate::spend::AccountSpend;

/// How many poll outcomes each job keeps for the status page.
pub const RECENT_POLLS: usize = 10;

/// A failed poll as kept for health and the status page: the message is shared, so a job
/// keeps each distinct message once however many recent polls ended in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The `reason` label value.
    pub reason: Reason,
    /// What went wrong (bounded and inert: see [`PollError::new`]).
    pub message: Arc<str>,
}

/// One finished poll, for the status page.
#[derive(Debug, Clone)]
pub struct PollLog {
    /// When it finished.
    pub at: SystemTime,
    /// How long it took.
    pub duration: Duration,
    /// Series exported, or the error.
    pub outcome: Result<usize, Failure>,
}

/// How a job's polls have gone, for health metrics and the status page.
#[derive(Debug, Clone, Default)]
pub struct Health {
    /// Polls finished, successful or not.
    pub polls: u64,
    /// Whether the last finished poll succeeded.
    pub up: bool,
    /// When the last successful poll finished.
    pub last_success: Option<SystemTime>,
    /// When the last poll finished.
    pub last_poll: Option<SystemTime>,
    /// When the next poll is due.
    pub next_poll: Option<SystemTime>,
    /// How long the last poll took.
    pub last_duration: Duration,
    /// Failed polls by reason.
    pub errors: BTreeMap<Reason, u64>,
    /// The last failure, if the last poll failed.
    pub last_error: Option<Failure>,
    /// The last [`RECENT_POLLS`] outcomes, oldest first.
    pub recent: VecDeque<PollLog>,
    /// Series of this job's last poll that the cardinality guard dropped.
    pub dropped: usize,
    /// Whether the job's samples were removed for being older than its `max_age`.
    pub stale: bool,
}

impl Health {
    /// `error` as kept: its message shared with the same message of a recent poll, if any.
    fn failure(&self, error: &PollError) -> Failure {
        let known = self
            .recent
            .iter()
            .rev()
            .filter_map(|l| l.outcome.as_ref().err())
            .find(|f| *f.message == *error.message)
            .map(|f| f.message.clone());
        Failure { reason: error.reason, message: known.unwrap_or_else(|| error.message.as_str().into()) }
    }

    fn log(&mut self, log: PollLog) {
        if self.recent.len() == RECENT_POLLS {
            self.recent.pop_front();
        }
        self.recent.push_back(log);
    }
}

#[derive(Debug, Default)]
struct JobEntry {
    /// The samples of the last poll, encoded, per family.
    fragments: Fragments,
    /// The health samples, encoded, per family; empty for entries that are not polled.
    health_fragments: Fragments,
    /// What `health_fragments` were encoded from: (polls, max_age). Health changes only with
    /// a poll or a new `max_age`, so a render re-encodes only the jobs where this moved.
    health_encoded: Option<(u64, Option<Duration>)>,
    /// Hashes of the series in `fragments`, for the cardinality guard.
    ids: HashSet<u64>,
    /// When `fragments` were produced (for `max_age`).
    fresh_at: Option<Instant>,
    /// Samples older than this leave `/metrics`; `None` for configured samples.
    max_age: Option<Duration>,
    /// `None` for entries that are not polled (configured values such as the budget).
    health: Option<Health>,
    /// Whether the cardinality guard has logged for this job.
    drop_logged: bool,
    /// The job's values of the [`HEADLINE`] families, for the status page.
    headline: Vec<(FamilyId, f64)>,
}

/// Families the status page summarises per account: label-less billing totals and budget, and
/// the account's billable bandwidth and commitment.
const HEADLINE: [FamilyId; 6] = [
    FamilyId::BillingMonthToDateSpendUsd,
    FamilyId::BillingEstimatedMonthSpendUsd,
    FamilyId::BillingBudgetUsd,
    FamilyId::MonthToDateAccountP95BandwidthBytesPerSecond,
    FamilyId::MonthToDateAccountPeakBandwidthBytesPerSecond,
    FamilyId::BandwidthCommitBytesPerSecond,
];

#[derive(Debug, Default)]
struct Inner {
    jobs: BTreeMap<JobKey, JobEntry>,
    upstream: BTreeMap<(&'static str, Arc<str>, String), u64>,
    /// Series exported, all jobs together.
    series: usize,
    dropped_total: u64,
    /// This process's shard, and the accounts it keeps of those configured.
    shard: (Shard, usize, usize),
}

/// How often freed memory is handed back to the OS when nothing renders.
const IDLE_TRIM: Duration = Duration::from_secs(60);

/// Shared state between the scheduler, the renderer and the HTTP server.
#[derive(Debug)]
pub struct Store {
    inner: Mutex<Inner>,
    body: ArcSwap<Exposition>,
    dirty: Notify,
    max_series: AtomicUsize,
    ready: AtomicBool,
    version: String,
    revision: String,
}

/// Samples handed to the store: moved when passed by value (the poll path), cloned when
/// borrowed.
pub trait IntoSamples {
    /// The samples, owned.
    fn into_samples(self) -> Vec<Sample>;
}

impl IntoSamples for Vec<Sample> {
    fn into_samples(self) -> Vec<Sample> {
        self
    }
}

impl IntoSamples for &Vec<Sample> {
    fn into_samples(self) -> Vec<Sample> {
        self.clone()
    }
}

impl IntoSamples for &[Sample] {
    fn into_samples(self) -> Vec<Sample> {
        self.to_vec()
    }
}

impl<const N: usize> IntoSamples for &[Sample; N] {
    fn into_samples(self) -> Vec<Sample> {
        self.to_vec()
    }
}

/// The default of `max_series`.
pub const DEFAULT_MAX_SERIES: usize = 50_000;

impl Store {
    /// An empty store; `version` and `revision` go into `cdn_exporter_build_info`.
    pub fn new(version: impl Into<String>, revision: impl Into<String>) -> Arc<Self> {
        let store = Arc::new(Store {
            inner: Mutex::new(Inner::default()),
            body: ArcSwap::from_pointee(Exposition::default()),
            dirty: Notify::new(),
            max_series: AtomicUsize::new(DEFAULT_MAX_SERIES),
            ready: AtomicBool::new(false),
            version: version.into(),
            revision: revision.into(),
        });
        store.render_now();
        store
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The exporter's version, for the status page.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The source revision, for the status page.
    pub fn revision(&self) -> &str {
        &self.revision
    }

    /// Sets the global cardinality limit (applies from the next poll on).
    pub fn set_max_series(&self, max: usize) {
        self.max_series.store(max, Ordering::Relaxed);
    }

    /// Declares a polled job, so that `poll_up 0` shows before its first poll finishes.
    pub fn register_job(&self, key: &JobKey, max_age: Duration) {
        let mut inner = self.lock();
        let entry = inner.jobs.entry(key.clone()).or_default();
        entry.health.get_or_insert_with(Health::default);
        entry.max_age = Some(max_age);
        drop(inner);
        self.mark_dirty();
    }

    /// Forgets a job and its samples.
    pub fn remove_job(&self, key: &JobKey) {
        let mut inner = self.lock();
        if let Some(entry) = inner.jobs.remove(key) {
            inner.series -= entry.ids.len();
        }
        drop(inner);
        self.mark_dirty();
    }

    /// Forgets an account's upstream request counters (when the account is removed).
    pub fn forget_account(&self, provider: &str, account: &str) {
        self.lock().upstream.retain(|(p, a, _), _| !(*p == provider && &**a == account));
        self.mark_dirty();
    }

    /// Sets samples that come from configuration rather than a poll (e.g. the budget).
    pub fn set_static(&self, key: &JobKey, samples: &[Sample]) {
        let mut inner = self.lock();
        let budget = self.max_series.load(Ordering::Relaxed);
        let (fragments, ids, _, headline) =
            prerender(key, samples.to_vec(), inner.jobs.get(key).map(|e| &e.ids), inner.series, budget);
        replace_fragments(&mut inner, key, fragments, ids, headline);
        drop(inner);
        self.mark_dirty();
    }

    /// Notes this process's shard and how many of the configured accounts it keeps.
    pub fn set_shard(&self, shard: Shard, kept: usize, configured: usize) {
        self.lock().shard = (shard, kept, configured);
        self.mark_dirty();
    }

    /// This process's shard, the accounts it keeps, and the accounts configured.
    pub fn shard(&self) -> (Shard, usize, usize) {
        self.lock().shard
    }

    /// Per account, the billing totals and budget it serves now (for the status page).
    pub fn spend(&self) -> Vec<AccountSpend> {
        let inner = self.lock();
        let mut accounts: BTreeMap<(&str, &str), AccountSpend> = BTreeMap::new();
        for (key, entry) in &inner.jobs {
            for &(family, value) in &entry.headline {
                let a = accounts.entry((key.provider, &key.account)).or_insert_with(|| AccountSpend {
                    provider: key.provider.to_owned(),
                    account: key.account.to_string(),
                    ..AccountSpend::default()
                });
                let slot = match family {
                    FamilyId::BillingMonthToDateSpendUsd => &mut a.spend,
                    FamilyId::BillingEstimatedMonthSpendUsd => &mut a.estimate,
                    FamilyId::BillingBudgetUsd => &mut a.budget,
                    FamilyId::MonthToDateAccountP95BandwidthBytesPerSecond => &mut a.p95,
                    FamilyId::MonthToDateAccountPeakBandwidthBytesPerSecond => &mut a.peak,
                    _ => &mut a.commit,
                };
                *slot = Some(value);
            }
        }
        accounts.into_values().collect()
    }

    /// Notes when a job's next poll is due (for the status page).
    pub fn set_next_poll(&self, key: &JobKey, at: SystemTime) {
        if let Some(h) = self.lock().jobs.get_mut(key).and_then(|e| e.health.as_mut()) {
            h.next_poll = Some(at);
        }
    }

    /// Records a successful poll: its samples replace the job's previous ones, less any new
    /// series past the cardinality limit. Samples passed by value are encoded without a copy.
    pub fn record_success(&self, key: &JobKey, samples: impl IntoSamples, duration: Duration) {
        let mut inner = self.lock();
        let budget = self.max_series.load(Ordering::Relaxed);
        let (fragments, ids, dropped, headline) =
            prerender(key, samples.into_samples(), inner.jobs.get(key).map(|e| &e.ids), inner.series, budget);
        let exported = ids.len();
        replace_fragments(&mut inner, key, fragments, ids, headline);
        inner.dropped_total += dropped as u64;
        let entry = inner.jobs.entry(key.clone()).or_default();
        entry.fresh_at = Some(Instant::now());
        if dropped > 0 && !entry.drop_logged {
            entry.drop_logged = true;
            tracing::warn!(job = %key, dropped, max_series = budget, "Series limit reached; new series of this job are dropped (logged once per job)");
        }
        let health = entry.health.get_or_insert_with(Health::default);
        let now = SystemTime::now();
        health.polls += 1;
        health.up = true;
        health.last_success = Some(now);
        health.last_poll = Some(now);
        health.last_duration = duration;
        health.last_error = None;
        health.dropped = dropped;
        health.stale = false;
        health.log(PollLog { at: now, duration, outcome: Ok(exported) });
        drop(inner);
        self.mark_dirty();
    }

    /// Records a failed poll. The job's last good samples stay (until its `max_age`).
    pub fn record_failure(&self, key: &JobKey, error: &PollError, duration: Duration) {
        let mut inner = self.lock();
        let entry = inner.jobs.entry(key.clone()).or_default();
        let health = entry.health.get_or_insert_with(Health::default);
        let now = SystemTime::now();
        health.polls += 1;
        health.up = false;
        health.last_poll = Some(now);
        health.last_duration = duration;
        *health.errors.entry(error.reason).or_default() += 1;
        let failure = health.failure(error);
        health.last_error = Some(failure.clone());
        health.log(PollLog { at: now, duration, outcome: Err(failure) });
        drop(inner);
        self.mark_dirty();
    }

    /// Removes the samples of jobs whose last success is older than their `max_age`. Returns
    /// whether anything was removed.
    pub fn expire_stale(&self) -> bool {
        let mut inner = self.lock();
        let now = Instant::now();
        let stale: Vec<JobKey> = inner
            .jobs
            .iter()
            .filter(|(_, e)| {
                !e.ids.is_empty()
                    && matches!((e.fresh_at, e.max_age), (Some(at), Some(max)) if now.duration_since(at) > max)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in &stale {
            replace_fragments(&mut inner, key, Vec::new(), HashSet::new(), Vec::new());
            if let Some(entry) = inner.jobs.get_mut(key) {
                if let Some(h) = entry.health.as_mut() {
                    h.stale = true;
                }
                tracing::warn!(job = %key, max_age = ?entry.max_age, "Samples older than max_age removed from /metrics");
            }
        }
        drop(inner);
        if !stale.is_empty() {
            self.mark_dirty();
        }
        !stale.is_empty()
    }

    /// Counts one upstream HTTP request by status code (`"error"` if no response arrived).
    pub fn count_upstream(&self, provider: &'static str, account: &Arc<str>, code: &str) {
        let mut inner = self.lock();
        *inner.upstream.entry((provider, account.clone(), code.to_owned())).or_default() += 1;
    }

    /// Every polled job with its health, in key order.
    pub fn jobs(&self) -> Vec<(JobKey, Health)> {
        self.lock().jobs.iter().filter_map(|(k, e)| e.health.clone().map(|h| (k.clone(), h))).collect()
    }

    /// Whether every polled job has finished a poll. Once true it stays true (a reload that
    /// adds jobs does not take a running exporter out of service).
    pub fn ready(&self) -> bool {
        if self.ready.load(Ordering::Relaxed) {
            return true;
        }
        let ready = self.lock().jobs.values().filter_map(|e| e.health.as_ref()).all(|h| h.polls > 0);
        if ready {
            self.ready.store(true, Ordering::Relaxed);
        }
        ready
    }

    /// A job's health, if it is a polled job.
    pub fn health(&self, key: &JobKey) -> Option<Health> {
        self.lock().jobs.get(key).and_then(|e| e.health.clone())
    }

    /// Number of series currently exported by provider jobs and configured entries.
    pub fn series(&self) -> usize {
        self.lock().series
    }

    /// Asks the renderer for a new body.
    pub fn mark_dirty(&self) {
        self.dirty.notify_one();
    }

    /// The current OpenMetrics body (without `# EOF`): a reference-counted clone, no copy
    /// and no encoding.
    pub fn body(&self) -> Bytes {
        self.body.load().openmetrics.plain.clone()
    }

    /// The current exposition, both formats, plain and gzip.
    pub fn exposition(&self) -> Arc<Exposition> {
        self.body.load_full()
    }

    /// Renders the body now, compresses it, and publishes it; the previous exposition (and
    /// its text body, if a scrape derived one) is freed when the last scrape holding it
    /// finishes. Returns the OpenMetrics body.
    pub fn render_now(&self) -> Bytes {
        let exposition = self.render();
        let plain = exposition.openmetrics.plain.clone();
        self.body.store(Arc::new(exposition));
        plain
    }

    /// Waits for changes and renders at most once per `min_gap`, so that a burst of finished
    /// polls costs one render. Returns when `shutdown` resolves.
    pub async fn run_renderer(self: Arc<Self>, min_gap: Duration, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut sweep = tokio::time::interval(Duration::from_secs(1));
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut trimmed = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = self.dirty.notified() => {}
                _ = sweep.tick() => {
                    if !self.expire_stale() {
                        // Between renders (an hour apart with hourly polls), still hand back
                        // what closed connections freed.
                        if trimmed.elapsed() >= IDLE_TRIM {
                            crate::memory::release_free();
                            trimmed = tokio::time::Instant::now();
                        }
                        continue;
                    }
                }
            }
            self.render_now();
            crate::memory::release_free();
            trimmed = tokio::time::Instant::now();
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(min_gap) => {}
            }
        }
    }

    fn render(&self) -> Exposition {
        let mut inner = self.lock();
        // Health is re-encoded only for jobs that polled (or got a new max_age) since.
        for (key, entry) in inner.jobs.iter_mut() {
            let Some(h) = &entry.health else { continue };
            let current = Some((h.polls, entry.max_age));
            if entry.health_encoded != current {
                entry.health_fragments = expo::encode_health(job_health(key, h, entry.max_age));
                entry.health_encoded = current;
            }
        }
        let capacity = inner
            .jobs
            .values()
            .flat_map(|e| e.fragments.iter().chain(&e.health_fragments))
            .map(|(_, f)| f.len())
            .sum::<usize>()
            + 16 * 1024;
        let mut body = expo::Builder::with_capacity(capacity);
        for &family in FamilyId::ALL {
            match family {
                FamilyId::ExporterBuildInfo
                | FamilyId::ExporterShardInfo
                | FamilyId::ExporterSeries
                | FamilyId::ExporterSeriesDroppedTotal
                | FamilyId::ExporterUpstreamRequestsTotal => {}
                _ if expo::HEALTH_FAMILIES.contains(&family) => {
                    body.family(family, inner.jobs.values().filter_map(|e| expo::fragment(&e.health_fragments, family)))
                }
                _ => body.family(family, inner.jobs.values().filter_map(|e| expo::fragment(&e.fragments, family))),
            }
        }
        let own = expo::SelfMetrics {
            version: self.version.clone(),
            revision: self.revision.clone(),
            series: inner.series as u64,
            dropped_total: inner.dropped_total,
            upstream: inner.upstream.iter().map(|((p, a, c), n)| (*p, a.clone(), c.clone(), *n)).collect(),
            shard: inner.shard.0,
        };
        drop(inner);
        body.families(&expo::encode_collector(own));
        body.finish()
    }
}

/// Providers count their upstream requests into the store through their upstream.
impl crate::job::RequestSink for Store {
    fn count(&self, provider: &'static str, account: &Arc<str>, status: &str) {
        self.count_upstream(provider, account, status);
    }
}

/// What the health families show for a job.
fn job_health(key: &JobKey, h: &Health, max_age: Option<Duration>) -> expo::JobHealth {
    let mut errors = [0; Reason::ALL.len()];
    for (n, reason) in errors.iter_mut().zip(Reason::ALL) {
        *n = h.errors.get(&reason).copied().unwrap_or(0);
    }
    expo::JobHealth {
        key: key.clone(),
        up: h.up,
        last_success: h.last_success.map(|t| {
            let secs = t.duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
            (secs * 1000.0).round() / 1000.0
        }),
        last_duration: (h.polls > 0).then_some(h.last_duration.as_secs_f64()),
        max_age: max_age.map(|d| d.as_secs_f64()),
        errors,
    }
}

/// Replaces a job's fragments and series ids, keeping the global series count right.
fn replace_fragments(
    inner: &mut Inner,
    key: &JobKey,
    fragments: Fragments,
    ids: HashSet<u64>,
    headline: Vec<(FamilyId, f64)>,
) {
    let entry = inner.jobs.entry(key.clone()).or_default();
    entry.headline = headline;
    let old = std::mem::replace(&mut entry.ids, ids).len();
    let new = entry.ids.len();
    entry.fragments = fragments;
    inner.series = inner.series - old + new;
}

fn series_id(family: FamilyId, labels: &[(&'static str, String)]) -> u64 {
    let mut h = DefaultHasher::new();
    family.hash(&mut h);
    labels.hash(&mut h);
    h.finish()
}

/// Encodes a job's samples into per-family fragments. Duplicate series are written once (the first
/// wins). A series the job did not export before is dropped when the total would pass
/// `max_series`; series it already exported are kept. Returns the fragments, the ids of the series
/// kept, and how many were dropped.
fn prerender(
    key: &JobKey,
    samples: Vec<Sample>,
    previous: Option<&HashSet<u64>>,
    total: usize,
    max_series: usize,
) -> (Fragments, HashSet<u64>, usize, Vec<(FamilyId, f64)>) {
    let known = |id: &u64| previous.is_some_and(|p| p.contains(id));
    let mut room = max_series.saturating_sub(total - previous.map_or(0, HashSet::len));
    let series: Vec<u64> = samples.iter().map(|s| series_id(s.family, &s.labels)).collect();
    let mut keep = vec![false; samples.len()];
    let mut ids = HashSet::with_capacity(samples.len());
    let mut dropped = 0;
    // Series the job already exports go first, so that a full store drops only new ones.
    for pass_known in [true, false] {
        for (i, id) in series.iter().enumerate() {
            if known(id) != pass_known {
                continue;
            }
            if ids.contains(id) {
                tracing::debug!(job = %key, family = samples[i].family.def().name, "Dropping a duplicate series");
            } else if room == 0 {
                dropped += 1;
            } else {
                room -= 1;
                ids.insert(*id);
                keep[i] = true;
            }
        }
    }
    let kept: Vec<Sample> = samples.into_iter().zip(keep).filter_map(|(s, k)| k.then_some(s)).collect();
    let headline = kept
        .iter()
        .filter(|s| s.labels.is_empty() && HEADLINE.contains(&s.family))
        .map(|s| (s.family, s.value))
        .collect();
    let fragments = if kept.is_empty() { Vec::new() } else { expo::encode_job(key.provider, &key.account, kept) };
    // Kept until the job's next poll: no growth slack.
    ids.shrink_to_fit();
    (fragments, ids, dropped, headline)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(account: &str, endpoint: &'static str) -> JobKey {
        JobKey::account("scaleengine", account, endpoint)
    }

    #[test]
    fn families_are_grouped_across_jobs_under_one_header() {
        let store = Store::new("1.0", "abc");
        let a = key("a", "usage.summary");
        let b = key("b", "usage.summary");
        let s = |v| vec![Sample::new(FamilyId::MonthToDateRequests, v).label("product", "edge")];
        store.record_success(&a, s(1.0), Duration::from_millis(5));
        store.record_success(&b, s(2.0), Duration::from_millis(5));
        let body = String::from_utf8(store.render_now().to_vec()).unwrap();
        assert_eq!(body.matches("# TYPE cdn_month_to_date_requests gauge").count(), 1);
        assert!(
            body.contains("cdn_month_to_date_requests{provider=\"scaleengine\",account=\"a\",product=\"edge\"} 1\n")
        );
        assert!(
            body.contains("cdn_month_to_date_requests{provider=\"scaleengine\",account=\"b\",product=\"edge\"} 2\n")
        );
        assert!(body.contains("cdn_exporter_build_info{version=\"1.0\",revision=\"abc\"} 1\n"));
    }

    #[test]
    fn failure_keeps_the_last_good_samples() {
        let store = Store::new("1.0", "abc");
        let a = key("a", "usage.summary");
        store.record_success(&a, &[Sample::new(FamilyId::OriginProcesses, 7.0)], Duration::ZERO);
        store.record_failure(&a, &PollError::new(Reason::Auth, "nope"), Duration::ZERO);
        let body = String::from_utf8(store.render_now().to_vec()).unwrap();
        assert!(body.contains("cdn_origin_processes{provider=\"scaleengine\",account=\"a\"} 7\n"));
        assert!(
            body.contains(
                "cdn_exporter_poll_up{provider=\"scaleengine\",account=\"a\",endpoint=\"usage.summary\"} 0\n"
            )
        );
        assert!(body.contains("reason=\"auth\"} 1\n"));
    }

    #[test]
    fn a_repeated_message_is_kept_once() {
        let store = Store::new("t", "r");
        let a = key("a", "usage.summary");
        store.register_job(&a, Duration::from_secs(60));
        let long = "x".repeat(crate::text::ERROR_BYTES);
        for _ in 0..3 * RECENT_POLLS {
            store.record_failure(&a, &PollError::new(Reason::Provider, long.as_str()), Duration::ZERO);
        }
        let h = store.health(&a).unwrap();
        assert_eq!(h.recent.len(), RECENT_POLLS);
        let first = h.last_error.as_ref().unwrap().message.clone();
        for log in &h.recent {
            let kept = &log.outcome.as_ref().unwrap_err().message;
            assert!(Arc::ptr_eq(kept, &first), "one allocation for one message");
        }
        // Shared by the store's recent polls and last error, the copy handed out, and `first`.
        assert_eq!(Arc::strong_count(&first), 2 * (RECENT_POLLS + 1) + 1);
    }

    #[test]
    fn duplicate_series_are_written_once() {
        let store = Store::new("1.0", "abc");
        let a = key("a", "usage.summary");
        let s = Sample::new(FamilyId::OriginProcesses, 7.0);
        store.record_success(&a, &[s.clone(), s], Duration::ZERO);
        let body = String::from_utf8(store.render_now().to_vec()).unwrap();
        assert_eq!(body.matches("cdn_origin_processes{").count(), 1);
        assert_eq!(store.series(), 1);
    }
}
