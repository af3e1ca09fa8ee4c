//! Wires configuration, store, renderer, scheduler and server into a running exporter; reloads
//! its configuration without dropping what did not change; takes it down on one shutdown path.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Mutex, Semaphore, watch};
use tokio::task::{AbortHandle, JoinHandle, JoinSet};

use crate::config::{CdnetworksAccount, Config, ConfigError, Limits, Problem, ScaleEngineAccount};
use crate::job::{JobKey, JobSpec};
use crate::providers::http::{RetryPolicy, Upstream};
use crate::providers::{cdnetworks, scaleengine};
use crate::shard::Shard;
use crate::store::Store;

/// The exporter's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The source revision it was built from.
pub const REVISION: &str = env!("CDN_EXPORTER_REVISION");

/// Renders happen at most this often; a burst of finished polls costs one render.
pub const RENDER_MIN_GAP: Duration = Duration::from_millis(100);

/// How long shutdown waits for in-flight scrapes (the web server's deadline).
pub use crate::web::SHUTDOWN_DEADLINE;

/// Why the exporter could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}. Choose another --web.listen-address.")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The HTTP client could not be built (TLS roots unavailable).
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    /// An account's client could not be set up.
    #[error("cannot set up {0}")]
    Account(String),
    /// The web configuration (TLS, basic auth) is invalid.
    #[error("{0}")]
    Web(String),
}

/// Builds the HTTP client every provider shares.
pub fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .user_agent(concat!("cdn-usage-exporter/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(60))
        // A signed request goes only where it is configured to: a redirect is a failed poll
        // (providers::http::redirect_error), never followed with the credentials.
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

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

/// One account as configured: what decides whether its jobs survive a reload unchanged.
#[derive(Debug, Clone, PartialEq)]
enum AccountConfig {
    ScaleEngine(ScaleEngineAccount),
    Cdnetworks(CdnetworksAccount),
}

struct RunningAccount {
    config: AccountConfig,
    keys: Vec<JobKey>,
    tasks: Vec<AbortHandle>,
}

struct Jobs {
    limits: Limits,
    /// The cap on requests in flight that every provider's upstream shares.
    global: Arc<Semaphore>,
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

fn account_key(a: &AccountConfig) -> (&'static str, String) {
    match a {
        AccountConfig::ScaleEngine(a) => (scaleengine::PROVIDER, a.name.clone()),
        AccountConfig::Cdnetworks(a) => (cdnetworks::PROVIDER, a.name.clone()),
    }
}

/// The accounts of this process's shard.
fn accounts_of(config: &Config) -> Vec<AccountConfig> {
    config
        .scaleengine
        .iter()
        .cloned()
        .map(AccountConfig::ScaleEngine)
        .chain(config.cdnetworks.iter().cloned().map(AccountConfig::Cdnetworks))
        .filter(|a| config.shard.owns(&account_key(a).1))
        .collect()
}

fn retry_policy(limits: &Limits) -> RetryPolicy {
    RetryPolicy { attempts: limits.retries + 1, ..RetryPolicy::default() }
}

fn upstreams(limits: &Limits, global: &Arc<Semaphore>) -> BTreeMap<&'static str, Upstream> {
    let retry = retry_policy(limits);
    [scaleengine::PROVIDER, cdnetworks::PROVIDER]
        .into_iter()
        .map(|p| {
            (p, Upstream::new(global.clone(), limits.max_in_flight_per_provider, retry).with_answers(limits.answers))
        })
        .collect()
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
    fn new(
        source: ConfigSource,
        config: &Config,
        store: Arc<Store>,
        http: reqwest::Client,
        stop: watch::Receiver<bool>,
    ) -> Self {
        let global = Arc::new(Semaphore::new(config.limits.max_in_flight));
        let jobs = Jobs {
            limits: config.limits,
            upstreams: upstreams(&config.limits, &global),
            global,
            accounts: BTreeMap::new(),
            set: JoinSet::new(),
        };
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
            jobs.global = Arc::new(Semaphore::new(limits.max_in_flight));
        }
        let retry = retry_policy(limits);
        for upstream in jobs.upstreams.values() {
            upstream.set_limits(&jobs.global, limits.max_in_flight_per_provider, retry, limits.answers);
        }
        jobs.limits = *limits;
    }

    /// Starts one account's jobs and sets its configured samples.
    fn start_account(&self, jobs: &mut Jobs, account: AccountConfig) -> Result<(), StartError> {
        let (specs, key): (Vec<JobSpec>, _) = match &account {
            AccountConfig::ScaleEngine(a) => {
                let upstream = &jobs.upstreams[scaleengine::PROVIDER];
                let key = JobKey::account(scaleengine::PROVIDER, a.name.as_str(), "config");
                self.store.set_static(&key, &scaleengine::config_samples(a));
                (scaleengine::jobs(a, &self.http, &self.store, upstream), Some(key))
            }
            AccountConfig::Cdnetworks(a) => {
                let upstream = &jobs.upstreams[cdnetworks::PROVIDER];
                (cdnetworks::jobs(a, &self.http, &self.store, upstream).map_err(StartError::Account)?, None)
            }
        };
        let mut keys: Vec<JobKey> = specs.iter().map(|s| s.key.clone()).collect();
        keys.extend(key);
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
    fn start_all(&self, jobs: &mut Jobs, config: &Config) -> Result<(), StartError> {
        self.store.set_max_series(config.limits.max_series);
        self.store.set_shard(config.shard, config.sharded_account_count(), config.account_count());
        for account in accounts_of(config) {
            self.start_account(jobs, account)?;
        }
        Ok(())
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
        self.store.set_shard(config.shard, config.sharded_account_count(), config.account_count());
        let wanted = accounts_of(&config);
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
                Some(running) if running.config == account => summary.unchanged += 1,
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

    fn start_or_log(&self, jobs: &mut Jobs, account: AccountConfig) {
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

/// A running exporter.
pub struct Running {
    /// The address `/metrics` is served on.
    pub addr: SocketAddr,
    /// The shared store (tests read health from it).
    pub store: Arc<Store>,
    /// Reloads.
    pub control: Arc<Control>,
    stop: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
    renderer: JoinHandle<()>,
}

impl Running {
    /// Reads the configuration again and applies it (what SIGHUP and, with
    /// `--web.enable-lifecycle`, `POST /-/reload` do).
    pub async fn reload(&self) -> Result<ReloadSummary, ConfigError> {
        self.control.reload().await
    }

    /// Stops polling, lets in-flight scrapes finish (up to [`SHUTDOWN_DEADLINE`]) and returns.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        self.control.jobs.lock().await.set.shutdown().await;
        let _ = self.renderer.await;
        match tokio::time::timeout(SHUTDOWN_DEADLINE, &mut self.server).await {
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "HTTP server ended with an error"),
            Ok(_) => {}
            Err(_) => {
                tracing::warn!("Scrapes still in flight after the shutdown deadline; closing them");
                self.server.abort();
            }
        }
    }
}

/// Options of the HTTP side.
#[derive(Debug, Clone, Default)]
pub struct WebOptions {
    /// An exporter-toolkit web configuration file (TLS, basic auth).
    pub config_file: Option<PathBuf>,
    /// `--web.enable-lifecycle`: serve `POST /-/reload` (without it, 403 as in Prometheus).
    pub enable_lifecycle: bool,
    /// `--web.max-connections`; `None` for [`crate::web::DEFAULT_MAX_CONNECTIONS`].
    pub max_connections: Option<usize>,
}

/// Binds `listen`, starts the renderer, the jobs and the server, for a configuration read from
/// `source`.
pub async fn start_from(
    source: ConfigSource,
    config: &Config,
    listen: SocketAddr,
    web: &WebOptions,
) -> Result<Running, StartError> {
    let web_config = match &web.config_file {
        Some(path) => Some(crate::web::WebConfig::load(path).await.map_err(StartError::Web)?),
        None => None,
    };
    let listener = TcpListener::bind(listen).await.map_err(|source| StartError::Bind { addr: listen, source })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind { addr: listen, source })?;
    let http = http_client()?;
    let store = Store::new(VERSION, REVISION);
    let (stop, stop_rx) = watch::channel(false);
    let control = Arc::new(Control::new(source, config, store.clone(), http, stop_rx.clone()));
    {
        let mut jobs = control.jobs.lock().await;
        control.start_all(&mut jobs, config)?;
    }
    let renderer = tokio::spawn(store.clone().run_renderer(RENDER_MIN_GAP, wait_true(stop_rx.clone())));
    let lifecycle = web.enable_lifecycle.then(|| control.clone() as Arc<dyn crate::server::Lifecycle>);
    let app = crate::server::router(crate::server::AppState { store: store.clone(), control: lifecycle });
    let limits = crate::web::Limits {
        max_connections: web.max_connections.unwrap_or(crate::web::DEFAULT_MAX_CONNECTIONS),
        other_fds: config.limits.max_in_flight,
    };
    let server = tokio::spawn(crate::web::serve(listener, app, web_config, limits, wait_true(stop_rx)));
    tracing::info!(
        %addr,
        accounts = config.sharded_account_count(),
        configured = config.account_count(),
        shard = %config.shard,
        "Serving /metrics"
    );
    Ok(Running { addr, store, control, stop, server, renderer })
}

/// [`start_from`] for a configuration given as TOML text (tests, demo).
pub async fn start(config: &Config, listen: SocketAddr) -> Result<Running, StartError> {
    start_from(ConfigSource::Fixed(Box::new(config.clone())), config, listen, &WebOptions::default()).await
}

async fn wait_true(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// What the process was asked to do by a signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT or SIGTERM.
    Shutdown,
    /// SIGHUP.
    Reload,
}

/// Serves signals until SIGINT or SIGTERM: SIGHUP reloads `running`'s configuration. The
/// shutdown signal is one future for the whole run, and a reload in progress gives way to it.
pub async fn run_until_shutdown(running: &Running) {
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        #[cfg(unix)]
        let reload = async {
            match hup.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let reload = std::future::pending::<()>();
        tokio::select! {
            _ = &mut shutdown => return,
            _ = reload => {}
        }
        tracing::info!("SIGHUP: reloading the configuration");
        tokio::select! {
            _ = &mut shutdown => {
                tracing::warn!("Reload given up: shutting down");
                return;
            }
            _ = running.reload() => {}
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("Shutting down");
}
