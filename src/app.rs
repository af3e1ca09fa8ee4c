//! Wires configuration, store, renderer, scheduler and server into a running exporter, and
//! takes them down again on one shutdown path.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::config::Config;
use crate::job::{JobKey, JobSpec};
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
}

/// Builds the HTTP client every provider shares.
pub fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .user_agent(concat!("cdn-usage-exporter/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(60))
        .build()
}

/// Every job of every configured account, and the configured (not polled) samples.
pub fn build_jobs(config: &Config, http: &reqwest::Client, store: &Arc<Store>) -> Result<Vec<JobSpec>, StartError> {
    let mut jobs = Vec::new();
    for account in &config.scaleengine {
        jobs.extend(scaleengine::jobs(account, http, store));
        let key = JobKey::account(scaleengine::PROVIDER, account.name.as_str(), "config");
        store.set_static(&key, &scaleengine::config_samples(account));
    }
    for account in &config.cdnetworks {
        jobs.extend(cdnetworks::jobs(account, http, store).map_err(StartError::Account)?);
    }
    Ok(jobs)
}

/// A running exporter.
pub struct Running {
    /// The address `/metrics` is served on.
    pub addr: SocketAddr,
    /// The shared store (tests read health from it).
    pub store: Arc<Store>,
    stop: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
    renderer: JoinHandle<()>,
    jobs: JoinSet<()>,
}

impl Running {
    /// Stops polling, lets in-flight scrapes finish (up to [`SHUTDOWN_DEADLINE`]) and returns.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        self.jobs.shutdown().await;
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

/// Binds `listen`, starts the renderer, the jobs and the server.
pub async fn start(config: &Config, listen: SocketAddr) -> Result<Running, StartError> {
    let listener = TcpListener::bind(listen).await.map_err(|source| StartError::Bind { addr: listen, source })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind { addr: listen, source })?;
    let http = http_client()?;
    let store = Store::new(VERSION, REVISION);
    let (stop, stop_rx) = watch::channel(false);
    let jobs = build_jobs(config, &http, &store)?;
    let job_count = jobs.len();
    let renderer = tokio::spawn(store.clone().run_renderer(RENDER_MIN_GAP, wait_true(stop_rx.clone())));
    let jobs = crate::scheduler::spawn_all(jobs, &store, &stop_rx);
    let app = crate::server::router(store.clone());
    let server =
        tokio::spawn(async move { axum::serve(listener, app).with_graceful_shutdown(wait_true(stop_rx)).await });
    tracing::info!(%addr, accounts = config.account_count(), jobs = job_count, "Serving /metrics");
    Ok(Running { addr, store, stop, server, renderer, jobs })
}

async fn wait_true(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
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
