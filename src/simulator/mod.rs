//! A provider simulator: serves the provider APIs on loopback the way their docs and
//! PROVIDERS.md describe, with deterministic data and fault switches. Used by `simulate`,
//! `demo`, the integration tests and the benchmarks.
//!
//! Each provider serves its own API (`providers/<p>/simulator.rs`); the registry lists them.
//! This module is the harness: it binds, routes and stops, and adds `/_sim/faults`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::providers::registry;

pub use crate::providers::common::simulator::{Faults, SimState};
pub use registry::demo_state;

/// A running simulator.
pub struct Simulator {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its state, for switching faults and reading requests.
    pub state: Arc<SimState>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Simulator {
    /// Starts on `addr` (port 0 for any free port).
    pub async fn start(addr: SocketAddr, state: Arc<SimState>) -> std::io::Result<Simulator> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let app = router(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Simulator { addr, state, stop: Some(stop), task })
    }

    /// The base URL to configure for `provider` (its `provider` label), if the simulator
    /// serves it.
    pub fn url(&self, provider: &str) -> Option<String> {
        registry::simulator_url(provider, &self.addr.to_string())
    }

    /// The ScaleEngine base URL to configure (a shorthand for tests).
    pub fn scaleengine_url(&self) -> String {
        self.url("scaleengine").unwrap_or_default()
    }

    /// The CDNetworks base URL to configure (a shorthand for tests).
    pub fn cdnetworks_url(&self) -> String {
        self.url("cdnetworks").unwrap_or_default()
    }

    /// What `simulate` prints: where each provider's API is, and its accounts.
    pub fn describe(&self) -> String {
        registry::describe_simulator(&self.state, &self.addr.to_string())
    }

    /// Stops it.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.task).await;
        self.task.abort();
    }
}

/// The simulator's routes: every provider's API, and `/_sim/faults`.
pub fn router(state: Arc<SimState>) -> Router {
    registry::simulator_routes(Router::new()).route("/_sim/faults", get(get_faults).post(set_faults)).with_state(state)
}

async fn get_faults(State(state): State<Arc<SimState>>) -> axum::Json<Faults> {
    axum::Json(state.faults())
}

async fn set_faults(State(state): State<Arc<SimState>>, axum::Json(faults): axum::Json<Faults>) -> axum::Json<Faults> {
    state.set_faults(faults.clone());
    axum::Json(faults)
}
