//! The running jobs and what changes them: a reload reads the configuration again (on a thread
//! of its own), applies new limits in place, stops the jobs of accounts that went or changed,
//! and starts those of accounts that came or changed; the rest keep running with their state.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{Mutex, watch};
use tokio::task::{AbortHandle, JoinSet};

use crate::config::{Config, ConfigError, Limits, Problem};
use crate::job::{JobKey, RequestSink};
use crate::providers::common::http::{Upstream, upstreams};
use crate::providers::{AccountRef, Context, SetupError, registry};
use crate::shard::Shard;
use crate::store::Store;

use super::StartError;

/// Where the configuration comes from, so that a reload can read it again.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    /// A TOML file (with environment overrides).
    File(PathBuf),
    /// TOML text (the demo's embedded configuration), and a name for messages.
    Text(String, String),
    /// A configuration built in memory (tests): a reload finds it unchanged.
    Fixed(Box<Config>),
    /// Another source with its shard set from the command line (`--shard`, `CDN_EXPORTER_SHARD`),
    /// which wins over the file's `shard` at every reload too.
    Sharded(Box<ConfigSource>, Shard),
}

impl ConfigSource {
    /// The name messages give the source.
    fn name(&self) -> String {
        match self {
            ConfigSource::File(path) => path.display().to_string(),
            ConfigSource::Text(_, name) => name.clone(),
            ConfigSource::Fixed(_) => "(memory)".into(),
            ConfigSource::Sharded(source, _) => source.name(),
        }
    }

    /// Reads and validates the configuration.
    pub fn load(&self) -> Result<Config, ConfigError> {
        match self {
            ConfigSource::File(path) => Config::load(path),
            ConfigSource::Text(toml, name) => Config::from_toml_str(toml, name),
            ConfigSource::Fixed(config) => Ok((**config).clone()),
            ConfigSource::Sharded(source, shard) => source.load().map(|c| Config { shard: *shard, ..c }),
        }
    }
}

struct RunningAccount {
    /// The account as configured: whether its jobs survive a reload unchanged.
    config: AccountRef,
    keys: Vec<JobKey>,
    tasks: Vec<AbortHandle>,
}

struct Jobs {
    limits: Limits,
    /// The cap on requests in flight that every provider's upstream shares.
    global: Arc<tokio::sync::Semaphore>,
    upstreams: BTreeMap<&'static str, Upstream>,
    accounts: BTreeMap<(&'static str, String), RunningAccount>,
    set: JoinSet<()>,
}

/// What a reload changed (the server's type: `POST /-/reload` reports it).
pub use crate::server::ReloadSummary;

/// The running jobs and what it takes to change them.
pub struct Control {
    source: ConfigSource,
    store: Arc<Store>,
    http: reqwest::Client,
    stop: watch::Receiver<bool>,
    jobs: Mutex<Jobs>,
    /// One reload at a time; the next one waits here.
    reloading: Mutex<()>,
    /// A thread is reading the configuration (it may block on a FIFO or a slow disk, and
    /// outlive a reload that was given up).
    reading: Arc<AtomicBool>,
}

fn account_key(a: &AccountRef) -> (&'static str, String) {
    (a.provider(), a.name().to_owned())
}

/// Collects the tasks that ended (aborted by a reload, or failed) so that the set does not grow
/// with every reload.
fn reap(set: &mut JoinSet<()>) {
    while let Some(done) = set.try_join_next() {
        if done.as_ref().is_err_and(tokio::task::JoinError::is_panic) {
            tracing::error!("A job's task panicked; its series stay until the account is reloaded");
        }
    }
}

/// The problem reported when the configuration cannot be read at all.
fn unreadable(source: &ConfigSource, message: &str) -> ConfigError {
    let source_name = source.name();
    ConfigError { source_name, problems: vec![Problem { path: "--config".into(), message: message.into(), at: None }] }
}

impl Control {
    pub(super) fn new(
        source: ConfigSource,
        config: &Config,
        store: Arc<Store>,
        http: reqwest::Client,
        stop: watch::Receiver<bool>,
    ) -> Self {
        let sink: Arc<dyn RequestSink> = store.clone();
        let (global, upstreams) = upstreams(registry::NAMES.iter().copied(), &config.limits.requests(), sink);
        let jobs = Jobs { limits: config.limits, upstreams, global, accounts: BTreeMap::new(), set: JoinSet::new() };
        Control {
            source,
            store,
            http,
            stop,
            jobs: Mutex::new(jobs),
            reloading: Mutex::new(()),
            reading: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Tasks in the job set, finished ones reaped first (tests check that reloads do not pile
    /// them up).
    pub async fn task_count(&self) -> usize {
        let mut jobs = self.jobs.lock().await;
        reap(&mut jobs.set);
        jobs.set.len()
    }

    /// Reads the configuration on a thread of its own: a `*_file` credential on a FIFO or a
    /// hung network file system blocks that thread, not the runtime, so a shutdown still
    /// gets through. At most one such thread runs.
    async fn read_config(&self) -> Result<Config, ConfigError> {
        if self.reading.swap(true, Ordering::AcqRel) {
            return Err(unreadable(
                &self.source,
                "an earlier reload is still reading the configuration (a credential file that does not \
                 answer, e.g. a FIFO?). Fix that file; reload again once it is read.",
            ));
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (source, reading) = (self.source.clone(), self.reading.clone());
        let spawned = std::thread::Builder::new().name("config-reload".into()).spawn(move || {
            // Cleared however the thread ends, a panic included.
            struct Done(Arc<AtomicBool>);
            impl Drop for Done {
                fn drop(&mut self) {
                    self.0.store(false, Ordering::Release);
                }
            }
            let done = Done(reading);
            let loaded = source.load();
            drop(done);
            let _ = tx.send(loaded);
        });
        if let Err(e) = spawned {
            self.reading.store(false, Ordering::Release);
            return Err(unreadable(&self.source, &format!("cannot start a thread to read it: {e}. Try again.")));
        }
        rx.await.unwrap_or_else(|_| Err(unreadable(&self.source, "reading it failed unexpectedly. Try again.")))
    }

    /// Changes the limits under the running jobs: new caps for the upstreams, the new series
    /// limit for the store; no job restarts, none loses its samples or health.
    fn set_limits(&self, jobs: &mut Jobs, limits: &Limits) {
        if jobs.limits.max_in_flight != limits.max_in_flight {
            jobs.global = Arc::new(tokio::sync::Semaphore::new(limits.max_in_flight));
        }
        for upstream in jobs.upstreams.values() {
            upstream.set_limits(&jobs.global, &limits.requests());
        }
        jobs.limits = *limits;
    }

    /// Starts one account's jobs and sets its configured samples.
    fn start_account(&self, jobs: &mut Jobs, account: AccountRef) -> Result<(), StartError> {
        let Some(upstream) = jobs.upstreams.get(account.provider()) else {
            return Err(StartError::Account(SetupError {
                path: account.name().to_owned(),
                message: format!("no upstream for provider {}", account.provider()),
            }));
        };
        let specs = account.jobs(&Context { http: &self.http, upstream })?;
        let mut keys: Vec<JobKey> = specs.iter().map(|s| s.key.clone()).collect();
        keys.push(crate::scheduler::currency_key(&JobKey::account(account.provider(), account.name(), "config")));
        let config_samples = account.config_samples();
        if !config_samples.is_empty() {
            let key = JobKey::account(account.provider(), account.name(), "config");
            self.store.set_static(&key, &config_samples);
            keys.push(key);
        }
        let tasks = specs
            .into_iter()
            .map(|spec| crate::scheduler::spawn(&mut jobs.set, spec, &self.store, &self.stop))
            .collect();
        jobs.accounts.insert(account_key(&account), RunningAccount { config: account, keys, tasks });
        Ok(())
    }

    fn stop_account(&self, running: RunningAccount) {
        for task in running.tasks {
            task.abort();
        }
        for key in &running.keys {
            self.store.remove_job(key);
        }
    }

    /// Starts the jobs of `config`.
    pub(super) async fn start_all(&self, config: &Config) -> Result<(), StartError> {
        let mut jobs = self.jobs.lock().await;
        self.store.set_max_series(config.limits.max_series);
        self.store.set_rates(config.rates.clone());
        self.store.set_focus_accounts(crate::focus::collect::accounts(config));
        self.store.set_shard(config.shard, config.sharded_account_count(), config.account_count());
        for account in config.sharded_accounts() {
            self.start_account(&mut jobs, account.clone())?;
        }
        Ok(())
    }

    /// Stops every job and waits for their tasks to end.
    pub(super) async fn shutdown(&self) {
        self.jobs.lock().await.set.shutdown().await;
    }

    /// Reads the configuration again and applies it. A bad configuration changes nothing and
    /// comes back as the error; jobs of accounts whose configuration did not change keep
    /// running, with their state, whatever the global limits became.
    ///
    /// Cancelling it (a shutdown, a client that hangs up) is safe: after the configuration is
    /// read, it is applied without waiting on anything but the jobs' lock.
    pub async fn reload(&self) -> Result<ReloadSummary, ConfigError> {
        let _one_at_a_time = self.reloading.lock().await;
        let config = match self.read_config().await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e.one_line(), "Reload refused; the running configuration stays");
                return Err(e);
            }
        };
        let mut jobs = self.jobs.lock().await;
        reap(&mut jobs.set);
        let mut summary = ReloadSummary::default();
        if jobs.limits != config.limits {
            self.set_limits(&mut jobs, &config.limits);
        }
        self.store.set_max_series(config.limits.max_series);
        self.store.set_rates(config.rates.clone());
        self.store.set_focus_accounts(crate::focus::collect::accounts(&config));
        self.store.set_shard(config.shard, config.sharded_account_count(), config.account_count());
        let wanted: Vec<AccountRef> = config.sharded_accounts().cloned().collect();
        let wanted_keys: Vec<_> = wanted.iter().map(account_key).collect();
        let gone: Vec<_> = jobs.accounts.keys().filter(|k| !wanted_keys.contains(k)).cloned().collect();
        for key in gone {
            if let Some(a) = jobs.accounts.remove(&key) {
                summary.removed += 1;
                self.stop_account(a);
                self.store.forget_account(key.0, &key.1);
            }
        }
        for account in wanted {
            let key = account_key(&account);
            match jobs.accounts.get(&key) {
                Some(running) if running.config.same(&*account) => summary.unchanged += 1,
                Some(_) => {
                    if let Some(old) = jobs.accounts.remove(&key) {
                        self.stop_account(old);
                    }
                    summary.changed += 1;
                    self.start_or_log(&mut jobs, account);
                }
                None => {
                    summary.added += 1;
                    self.start_or_log(&mut jobs, account);
                }
            }
        }
        tracing::info!(
            added = summary.added,
            removed = summary.removed,
            changed = summary.changed,
            unchanged = summary.unchanged,
            "Configuration reloaded"
        );
        reap(&mut jobs.set);
        Ok(summary)
    }

    fn start_or_log(&self, jobs: &mut Jobs, account: AccountRef) {
        let key = account_key(&account);
        if let Err(e) = self.start_account(jobs, account) {
            tracing::error!(provider = key.0, account = %key.1, error = %e, "Cannot start the account's jobs");
        }
    }
}

impl crate::server::Lifecycle for Control {
    fn reload(&self) -> crate::server::BoxFuture<'_, Result<ReloadSummary, ConfigError>> {
        Box::pin(Control::reload(self))
    }
}
