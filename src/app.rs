//! Wires configuration, store, renderer, scheduler and server into a running exporter; reloads
//! its configuration without dropping what did not change; takes it down on one shutdown path.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Mutex, Semaphore, watch};
use tokio::task::{AbortHandle, JoinHandle, JoinSet};

use crate::config::{CdnetworksAccount, Config, ConfigError, Limits, ScaleEngineAccount};
use crate::job::{JobKey, JobSpec};
use crate::providers::http::{RetryPolicy, Upstream};
use crate::providers::{cdnetworks, scaleengine};
use crate::store::Store;

/// The exporter's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The source revision it was built from.
pub const REVISION: &str = env!("CDN_EXPORTER_REVISION");

/// Renders happen at most this often; a burst of finished polls costs one render.
pub const RENDER_MIN_GAP: Duration = Duration::from_millis(100);

/// How long shutdown waits for in-flight scrapes.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);

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
}

impl ConfigSource {
    /// Reads and validates the configuration.
    pub fn load(&self) -> Result<Config, ConfigError> {
        match self {
            ConfigSource::File(path) => Config::load(path),
            ConfigSource::Text(toml, name) => Config::from_toml_str(toml, name),
            ConfigSource::Fixed(config) => Ok((**config).clone()),
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
    upstreams: BTreeMap<&'static str, Upstream>,
    accounts: BTreeMap<(&'static str, String), RunningAccount>,
    set: JoinSet<()>,
}

/// What a reload changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReloadSummary {
    /// Accounts whose jobs started.
    pub added: usize,
    /// Accounts whose jobs stopped and whose series left.
    pub removed: usize,
    /// Accounts whose configuration changed: restarted.
    pub changed: usize,
    /// Accounts left running as they were.
    pub unchanged: usize,
}

/// The running jobs and what it takes to change them.
pub struct Control {
    source: ConfigSource,
    store: Arc<Store>,
    http: reqwest::Client,
    stop: watch::Receiver<bool>,
    jobs: Mutex<Jobs>,
}

fn account_key(a: &AccountConfig) -> (&'static str, String) {
    match a {
        AccountConfig::ScaleEngine(a) => (scaleengine::PROVIDER, a.name.clone()),
        AccountConfig::Cdnetworks(a) => (cdnetworks::PROVIDER, a.name.clone()),
    }
}

fn accounts_of(config: &Config) -> Vec<AccountConfig> {
    config
        .scaleengine
        .iter()
        .cloned()
        .map(AccountConfig::ScaleEngine)
        .chain(config.cdnetworks.iter().cloned().map(AccountConfig::Cdnetworks))
        .collect()
}

fn upstreams(limits: &Limits) -> BTreeMap<&'static str, Upstream> {
    let global = Arc::new(Semaphore::new(limits.max_in_flight));
    let retry = RetryPolicy { attempts: limits.retries + 1, ..RetryPolicy::default() };
    [scaleengine::PROVIDER, cdnetworks::PROVIDER]
        .into_iter()
        .map(|p| {
            (p, Upstream::new(global.clone(), limits.max_in_flight_per_provider, retry).with_answers(limits.answers))
        })
        .collect()
}

impl Control {
    fn new(
        source: ConfigSource,
        config: &Config,
        store: Arc<Store>,
        http: reqwest::Client,
        stop: watch::Receiver<bool>,
    ) -> Self {
        let jobs = Jobs {
            limits: config.limits,
            upstreams: upstreams(&config.limits),
            accounts: BTreeMap::new(),
            set: JoinSet::new(),
        };
        Control { source, store, http, stop, jobs: Mutex::new(jobs) }
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
        for account in accounts_of(config) {
            self.start_account(jobs, account)?;
        }
        Ok(())
    }

    /// Reads the configuration again and applies it. A bad configuration changes nothing and
    /// comes back as the error; jobs of accounts whose configuration did not change keep
    /// running, with their state.
    pub async fn reload(&self) -> Result<ReloadSummary, ConfigError> {
        let config = match self.source.load() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "Reload refused; the running configuration stays");
                return Err(e);
            }
        };
        let mut jobs = self.jobs.lock().await;
        let mut summary = ReloadSummary::default();
        if jobs.limits != config.limits {
            // New limits mean new semaphores: every account restarts under them.
            jobs.limits = config.limits;
            jobs.upstreams = upstreams(&config.limits);
            let all: Vec<_> = std::mem::take(&mut jobs.accounts).into_values().collect();
            summary.changed += all.len();
            all.into_iter().for_each(|a| self.stop_account(a));
        }
        self.store.set_max_series(config.limits.max_series);
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
        Ok(summary)
    }

    fn start_or_log(&self, jobs: &mut Jobs, account: AccountConfig) {
        let key = account_key(&account);
        if let Err(e) = self.start_account(jobs, account) {
            tracing::error!(provider = key.0, account = %key.1, error = %e, "Cannot start the account's jobs");
        }
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
    /// Reads the configuration again and applies it (what SIGHUP and `POST /-/reload` do).
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
    let app = crate::server::router(crate::server::AppState { store: store.clone(), control: Some(control.clone()) });
    let server = tokio::spawn(crate::web::serve(listener, app, web_config, wait_true(stop_rx)));
    tracing::info!(%addr, accounts = config.account_count(), "Serving /metrics");
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

/// Serves signals until SIGINT or SIGTERM: SIGHUP reloads `running`'s configuration.
pub async fn run_until_shutdown(running: &Running) {
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
            _ = shutdown_signal() => return,
            _ = reload => {
                tracing::info!("SIGHUP: reloading the configuration");
                let _ = running.reload().await;
            }
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
