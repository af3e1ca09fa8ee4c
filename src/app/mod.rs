//! Wires configuration, store, renderer, scheduler and server into a running exporter; reloads
//! its configuration without dropping what did not change; takes it down on one shutdown path.

mod control;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{Config, ConfigError};
use crate::store::Store;

pub use control::{ConfigSource, Control, ReloadSummary};

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
    Account(#[from] crate::providers::SetupError),
    /// The web configuration (TLS, basic auth) is invalid.
    #[error(transparent)]
    Web(#[from] crate::web::WebConfigError),
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
        self.control.shutdown().await;
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
        Some(path) => Some(crate::web::WebConfig::load(path).await?),
        None => None,
    };
    let listener = TcpListener::bind(listen).await.map_err(|source| StartError::Bind { addr: listen, source })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind { addr: listen, source })?;
    let http = crate::providers::common::http::client()?;
    let store = Store::new(VERSION, REVISION);
    let (stop, stop_rx) = watch::channel(false);
    let control = Arc::new(Control::new(source, config, store.clone(), http, stop_rx.clone()));
    control.start_all(config).await?;
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
