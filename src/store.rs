//! The samples of every job and the exposition body rendered from them. A poll replaces its
//! job's samples (pre-rendered into text lines, on the poll path); a render concatenates those
//! lines under each family's header once per change; a scrape only clones the cached body.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use bytes::Bytes;
use tokio::sync::Notify;

use crate::expo;
use crate::families::FamilyId;
use crate::job::{JobKey, PollError, Reason, Sample};

/// How a job's polls have gone, for health metrics (and later the status page).
#[derive(Debug, Clone, Default)]
pub struct Health {
    /// Polls finished, successful or not.
    pub polls: u64,
    /// Whether the last finished poll succeeded.
    pub up: bool,
    /// When the last successful poll finished.
    pub last_success: Option<SystemTime>,
    /// How long the last poll took.
    pub last_duration: Duration,
    /// Failed polls by reason.
    pub errors: BTreeMap<Reason, u64>,
    /// The last failure, if the last poll failed.
    pub last_error: Option<PollError>,
}

#[derive(Debug, Default)]
struct JobEntry {
    /// Pre-rendered sample lines per family, indexed by `FamilyId::index`.
    lines: Vec<String>,
    series: usize,
    /// `None` for entries that are not polled (configured values such as the budget).
    health: Option<Health>,
}

#[derive(Debug, Default)]
struct Inner {
    jobs: BTreeMap<JobKey, JobEntry>,
    upstream: BTreeMap<(&'static str, Arc<str>, String), u64>,
}

/// Shared state between the scheduler, the renderer and the HTTP server.
#[derive(Debug)]
pub struct Store {
    inner: Mutex<Inner>,
    body: ArcSwap<Bytes>,
    dirty: Notify,
    version: String,
    revision: String,
}

impl Store {
    /// An empty store; `version` and `revision` go into `cdn_exporter_build_info`.
    pub fn new(version: impl Into<String>, revision: impl Into<String>) -> Arc<Self> {
        let store = Arc::new(Store {
            inner: Mutex::new(Inner::default()),
            body: ArcSwap::from_pointee(Bytes::new()),
            dirty: Notify::new(),
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

    /// Declares a polled job, so that `poll_up 0` shows before its first poll finishes.
    pub fn register_job(&self, key: &JobKey) {
        let mut inner = self.lock();
        let entry = inner.jobs.entry(key.clone()).or_default();
        entry.health.get_or_insert_with(Health::default);
        drop(inner);
        self.mark_dirty();
    }

    /// Forgets a job and its samples.
    pub fn remove_job(&self, key: &JobKey) {
        self.lock().jobs.remove(key);
        self.mark_dirty();
    }

    /// Sets samples that come from configuration rather than a poll (e.g. the budget).
    pub fn set_static(&self, key: &JobKey, samples: &[Sample]) {
        let (lines, series) = prerender(key, samples);
        let mut inner = self.lock();
        let entry = inner.jobs.entry(key.clone()).or_default();
        entry.lines = lines;
        entry.series = series;
        drop(inner);
        self.mark_dirty();
    }

    /// Records a successful poll: its samples replace the job's previous ones.
    pub fn record_success(&self, key: &JobKey, samples: &[Sample], duration: Duration) {
        let (lines, series) = prerender(key, samples);
        let mut inner = self.lock();
        let entry = inner.jobs.entry(key.clone()).or_default();
        entry.lines = lines;
        entry.series = series;
        let health = entry.health.get_or_insert_with(Health::default);
        health.polls += 1;
        health.up = true;
        health.last_success = Some(SystemTime::now());
        health.last_duration = duration;
        health.last_error = None;
        drop(inner);
        self.mark_dirty();
    }

    /// Records a failed poll. The job's last good samples stay.
    pub fn record_failure(&self, key: &JobKey, error: &PollError, duration: Duration) {
        let mut inner = self.lock();
        let entry = inner.jobs.entry(key.clone()).or_default();
        let health = entry.health.get_or_insert_with(Health::default);
        health.polls += 1;
        health.up = false;
        health.last_duration = duration;
        *health.errors.entry(error.reason).or_default() += 1;
        health.last_error = Some(error.clone());
        drop(inner);
        self.mark_dirty();
    }

    /// Counts one upstream HTTP request by status code (`"error"` if no response arrived).
    pub fn count_upstream(&self, provider: &'static str, account: &Arc<str>, code: &str) {
        let mut inner = self.lock();
        *inner.upstream.entry((provider, account.clone(), code.to_owned())).or_default() += 1;
    }

    /// A job's health, if it is a polled job.
    pub fn health(&self, key: &JobKey) -> Option<Health> {
        self.lock().jobs.get(key).and_then(|e| e.health.clone())
    }

    /// Number of series currently exported by provider jobs.
    pub fn series(&self) -> usize {
        self.lock().jobs.values().map(|e| e.series).sum()
    }

    /// Asks the renderer for a new body.
    pub fn mark_dirty(&self) {
        self.dirty.notify_one();
    }

    /// The current exposition body: a reference-counted clone, no copy and no encoding.
    pub fn body(&self) -> Bytes {
        Bytes::clone(&self.body.load())
    }

    /// Renders the body now and publishes it.
    pub fn render_now(&self) -> Bytes {
        let body = Bytes::from(self.render());
        self.body.store(Arc::new(body.clone()));
        body
    }

    /// Waits for changes and renders at most once per `min_gap`, so that a burst of finished
    /// polls costs one render. Returns when `shutdown` resolves.
    pub async fn run_renderer(self: Arc<Self>, min_gap: Duration, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = self.dirty.notified() => {}
            }
            self.render_now();
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(min_gap) => {}
            }
        }
    }

    fn render(&self) -> String {
        let inner = self.lock();
        let capacity = inner.jobs.values().flat_map(|e| e.lines.iter()).map(String::len).sum::<usize>() + 16 * 1024;
        let mut out = String::with_capacity(capacity);
        for &family in FamilyId::ALL {
            let def = family.def();
            match family {
                FamilyId::ExporterBuildInfo => {
                    expo::write_header(&mut out, def);
                    expo::write_sample(
                        &mut out,
                        def.name,
                        [("version", self.version.as_str()), ("revision", self.revision.as_str())],
                        1.0,
                    );
                }
                FamilyId::ExporterPollUp
                | FamilyId::ExporterLastSuccessTimestampSeconds
                | FamilyId::ExporterPollDurationSeconds
                | FamilyId::ExporterPollErrorsTotal => render_health(&mut out, family, &inner.jobs),
                FamilyId::ExporterUpstreamRequestsTotal => {
                    if !inner.upstream.is_empty() {
                        expo::write_header(&mut out, def);
                        for ((provider, account, code), n) in &inner.upstream {
                            expo::write_sample(
                                &mut out,
                                def.name,
                                [("provider", *provider), ("account", &**account), ("code", code.as_str())],
                                *n as f64,
                            );
                        }
                    }
                }
                _ => {
                    let i = family.index();
                    let mut chunks =
                        inner.jobs.values().filter_map(|e| e.lines.get(i)).filter(|l| !l.is_empty()).peekable();
                    if chunks.peek().is_some() {
                        expo::write_header(&mut out, def);
                        chunks.for_each(|l| out.push_str(l));
                    }
                }
            }
        }
        out
    }
}

fn render_health(out: &mut String, family: FamilyId, jobs: &BTreeMap<JobKey, JobEntry>) {
    let def = family.def();
    let mut wrote_header = false;
    for (key, entry) in jobs {
        let Some(h) = &entry.health else { continue };
        let mut header = |out: &mut String| {
            if !wrote_header {
                expo::write_header(out, def);
                wrote_header = true;
            }
        };
        match family {
            FamilyId::ExporterPollUp => {
                header(out);
                expo::write_sample(out, def.name, key.labels(), if h.up { 1.0 } else { 0.0 });
            }
            FamilyId::ExporterLastSuccessTimestampSeconds => {
                if let Some(t) = h.last_success {
                    header(out);
                    let secs = t.duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
                    expo::write_sample(out, def.name, key.labels(), (secs * 1000.0).round() / 1000.0);
                }
            }
            FamilyId::ExporterPollDurationSeconds if h.polls > 0 => {
                header(out);
                expo::write_sample(out, def.name, key.labels(), h.last_duration.as_secs_f64());
            }
            FamilyId::ExporterPollErrorsTotal => {
                header(out);
                // Every reason is written, zeros included, so that rate() works from the first error.
                for reason in Reason::ALL {
                    let n = h.errors.get(&reason).copied().unwrap_or(0);
                    let labels = key.labels().chain([("reason", reason.as_str())]);
                    expo::write_sample(out, def.name, labels, n as f64);
                }
            }
            _ => {}
        }
    }
}

/// Renders a job's samples into per-family text, dropping duplicate series (the first wins).
fn prerender(key: &JobKey, samples: &[Sample]) -> (Vec<String>, usize) {
    let mut lines = vec![String::new(); FamilyId::COUNT];
    let mut seen: HashSet<(FamilyId, &[(&'static str, String)])> = HashSet::with_capacity(samples.len());
    let mut series = 0;
    for s in samples {
        if !seen.insert((s.family, &s.labels)) {
            tracing::debug!(job = %key, family = s.family.def().name, "Dropping a duplicate series");
            continue;
        }
        let labels = [("provider", key.provider), ("account", &*key.account)]
            .into_iter()
            .chain(s.labels.iter().map(|(k, v)| (*k, v.as_str())));
        expo::write_sample(&mut lines[s.family.index()], s.family.def().name, labels, s.value);
        series += 1;
    }
    (lines, series)
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
        store.record_success(&a, &s(1.0), Duration::from_millis(5));
        store.record_success(&b, &s(2.0), Duration::from_millis(5));
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
