//! A provider simulator: serves the provider APIs on loopback the way their docs and
//! PROVIDERS.md describe, with deterministic data and fault switches. Used by `simulate`,
//! `demo`, the integration tests and the benchmarks.

pub mod cdnetworks;
pub mod scaleengine;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use cdnetworks::{CdnAccount, CdnRequest};
pub use scaleengine::{SeAccount, VideoAppSpec};

/// Faults a test (or `POST /_sim/faults`) switches on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Answer with this failure code: a ScaleEngine code (`"0003"`, `"1000"`) to every
    /// ScaleEngine command, a CDNetworks code of the doc's table (`"24102500"`) to domain-usage.
    pub failure_code: Option<String>,
    /// Limit `failure_code` and `http_500` to this command (e.g. `"usage.billing.live"`).
    pub only_command: Option<String>,
    /// Answer HTTP 500 with an HTML error page.
    pub http_500: bool,
    /// Added latency per request, in milliseconds.
    pub latency_ms: u64,
    /// Send every number as a string, Google-table cells included.
    pub numbers_as_strings: bool,
    /// CDNetworks: answer HTTP 446 (`WPLUS_AccountApiTooFrequence`), the throttle signal.
    pub http_446: bool,
    /// CDNetworks: answer with the bare `{domain, usage}` envelope.
    pub bare_envelope: bool,
}

/// The simulator's shared state.
#[derive(Debug)]
pub struct SimState {
    /// ScaleEngine accounts it knows.
    pub scaleengine: Vec<SeAccount>,
    /// CDNetworks accounts it knows.
    pub cdnetworks: Vec<CdnAccount>,
    faults: Mutex<Faults>,
    requests: Mutex<Vec<String>>,
    cdn_requests: Mutex<Vec<CdnRequest>>,
}

/// How many received request bodies are kept for inspection.
const KEEP_REQUESTS: usize = 10_000;

impl SimState {
    /// State with these ScaleEngine accounts and no faults.
    pub fn new(scaleengine: Vec<SeAccount>) -> Arc<Self> {
        Self::with(scaleengine, Vec::new())
    }

    /// State with accounts of both providers and no faults.
    pub fn with(scaleengine: Vec<SeAccount>, cdnetworks: Vec<CdnAccount>) -> Arc<Self> {
        Arc::new(SimState {
            scaleengine,
            cdnetworks,
            faults: Mutex::default(),
            requests: Mutex::default(),
            cdn_requests: Mutex::default(),
        })
    }

    fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
        m.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current faults.
    pub fn faults(&self) -> Faults {
        Self::lock(&self.faults).clone()
    }

    /// Replaces the faults.
    pub fn set_faults(&self, faults: Faults) {
        *Self::lock(&self.faults) = faults;
    }

    /// The `json` form fields received so far (the most recent [`KEEP_REQUESTS`]).
    pub fn requests(&self) -> Vec<String> {
        Self::lock(&self.requests).clone()
    }

    /// The CDNetworks requests received so far (the most recent [`KEEP_REQUESTS`]).
    pub fn cdn_requests(&self) -> Vec<CdnRequest> {
        Self::lock(&self.cdn_requests).clone()
    }

    fn record_cdn(&self, request: CdnRequest) {
        let mut r = Self::lock(&self.cdn_requests);
        if r.len() >= KEEP_REQUESTS {
            r.remove(0);
        }
        r.push(request);
    }

    fn record(&self, json: &str) {
        let mut r = Self::lock(&self.requests);
        if r.len() >= KEEP_REQUESTS {
            r.remove(0);
        }
        r.push(json.to_owned());
    }
}

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

    /// The ScaleEngine base URL to configure.
    pub fn scaleengine_url(&self) -> String {
        format!("http://{}/stable/", self.addr)
    }

    /// The CDNetworks base URL to configure.
    pub fn cdnetworks_url(&self) -> String {
        format!("http://{}", self.addr)
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

/// The simulator's routes.
pub fn router(state: Arc<SimState>) -> Router {
    Router::new()
        .route("/stable/", post(scaleengine::handle))
        .route("/stable", post(scaleengine::handle))
        .route(crate::providers::cdnetworks::PATH, post(cdnetworks::handle))
        .route("/_sim/faults", get(get_faults).post(set_faults))
        .with_state(state)
}

async fn get_faults(State(state): State<Arc<SimState>>) -> axum::Json<Faults> {
    axum::Json(state.faults())
}

async fn set_faults(State(state): State<Arc<SimState>>, axum::Json(faults): axum::Json<Faults>) -> axum::Json<Faults> {
    state.set_faults(faults.clone());
    axum::Json(faults)
}

/// The CDNetworks accounts `demo` and `simulate` serve.
pub fn demo_cdn_accounts() -> Vec<CdnAccount> {
    vec![CdnAccount {
        username: "demo-user".into(),
        api_key: "demo-cdn-api-key".into(),
        access_key: "DEMOACCESSKEY".into(),
        secret_key: "demo-cdn-secret-key".into(),
        domains: vec![
            ("static.demo.example".into(), "CT-1001".into(), 3.2e12),
            ("video.demo.example".into(), "CT-1001".into(), 18.5e12),
        ],
    }]
}

/// The simulator state `demo` and `simulate` use: the demo accounts of every provider.
pub fn demo_state() -> Arc<SimState> {
    SimState::with(demo_accounts(), demo_cdn_accounts())
}

/// The ScaleEngine accounts `demo` and `simulate` serve.
pub fn demo_accounts() -> Vec<SeAccount> {
    vec![SeAccount {
        cdn: 158,
        api_key: "DEMOKEY0RKQLSP2FBO1ROPKSSW47DZE".into(),
        api_secret: "demo-secret-8fc8c48da81e6a2a06a9556379bf798a".into(),
        monthly_edge_gb: 9_000.0,
        users: vec![],
        video_apps: vec![
            VideoAppSpec { name: "live".into(), urls: 12 },
            VideoAppSpec { name: "vod/archive".into(), urls: 2_500 },
        ],
    }]
}
