//! A provider simulator: serves the provider APIs on loopback the way their docs and
//! PROVIDERS.md describe, with deterministic data and fault switches. Used by `simulate`,
//! `demo`, the integration tests and the benchmarks.

pub mod cdnetworks;
pub mod scaleengine;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
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
    /// CDNetworks traffic-request: the first result names a domain that was not asked for.
    pub traffic_extra_domain: bool,
    /// The next N requests (any provider) get HTTP 500, then all is well again.
    pub flaky: u32,
    /// Requests for the window starting on this date (`yyyy-MM-dd`: CDNetworks `dateFrom`,
    /// ScaleEngine `starttime`) get HTTP 500, every time: a history window that cannot be had.
    pub fail_window: Option<String>,
    /// Probability (0 to 1) that a request meets a random fault: a failure envelope, HTTP 500
    /// with HTML, HTTP 502 with nothing, truncated JSON, a connection reset mid-answer, or a
    /// delay of up to 2.5 s.
    pub chaos: f64,
}

/// Which provider an injected fault should look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Api {
    ScaleEngine,
    Cdnetworks,
}

/// A body that fails after the headers went out: the client sees the connection drop mid-answer.
struct Broken;

impl http_body::Body for Broken {
    type Data = axum::body::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::task::Poll::Ready(Some(Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "simulated reset"))))
    }
}

/// Applies latency, `flaky` and `chaos`; returns the answer to send instead of the real one.
pub(crate) async fn inject(state: &SimState, faults: &Faults, api: Api) -> Option<axum::response::Response> {
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    let html = || {
        (StatusCode::INTERNAL_SERVER_ERROR, [(header::CONTENT_TYPE, "text/html")], "<!DOCTYPE html><html><head><title>500 Internal Server Error</title></head><body><h1>Internal Server Error</h1></body></html>")
            .into_response()
    };
    if state.flaky.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
        return Some(html());
    }
    if faults.chaos <= 0.0 || fastrand::f64() >= faults.chaos {
        return None;
    }
    match fastrand::u8(0..6) {
        0 => Some(match api {
            Api::ScaleEngine => {
                let code = ["0001", "0002", "0003", "0004", "1000"][fastrand::usize(0..5)];
                axum::Json(serde_json::json!({"status": "failure", "code": code, "message": "Simulated failure"}))
                    .into_response()
            }
            Api::Cdnetworks => {
                let (status, code) = [(500, "24102500"), (400, "24102023"), (446, "WPLUS_AccountApiTooFrequence")]
                    [fastrand::usize(0..3)];
                (
                    StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
                    axum::Json(serde_json::json!({"code": code, "message": "Simulated failure"})),
                )
                    .into_response()
            }
        }),
        1 => Some(html()),
        2 => Some((StatusCode::BAD_GATEWAY, "").into_response()),
        3 => Some(
            ([(header::CONTENT_TYPE, "application/json")], "{\"status\":\"success\",\"data\":{\"vals\":[[\"Edge")
                .into_response(),
        ),
        4 => Some(axum::response::Response::new(axum::body::Body::new(Broken))),
        _ => {
            tokio::time::sleep(Duration::from_millis(fastrand::u64(500..2500))).await;
            None
        }
    }
}

/// The simulator's shared state.
#[derive(Debug)]
pub struct SimState {
    /// ScaleEngine accounts it knows.
    pub scaleengine: Vec<SeAccount>,
    /// CDNetworks accounts it knows.
    pub cdnetworks: Vec<CdnAccount>,
    faults: Mutex<Faults>,
    flaky: AtomicU32,
    in_flight: AtomicU32,
    max_in_flight: AtomicU32,
    requests: Mutex<Vec<String>>,
    cdn_requests: Mutex<Vec<CdnRequest>>,
    traffic_requests: Mutex<Vec<CdnRequest>>,
    /// Per CDNetworks account (username): when each authenticated request arrived, both endpoints.
    cdn_arrivals: Mutex<std::collections::HashMap<String, Vec<std::time::Instant>>>,
    /// When recent traffic slices were revised (see [`cdnetworks::traffic_slice`]).
    revisions: Mutex<Vec<i64>>,
    /// Where "now" comes from: the system clock unless a test sets a manual one.
    pub clock: crate::timeutil::Clock,
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
        Self::with_clock(scaleengine, cdnetworks, crate::timeutil::Clock::system())
    }

    /// State with accounts of both providers, no faults, and CDNetworks answering by `clock`.
    pub fn with_clock(
        scaleengine: Vec<SeAccount>,
        cdnetworks: Vec<CdnAccount>,
        clock: crate::timeutil::Clock,
    ) -> Arc<Self> {
        Arc::new(SimState {
            traffic_requests: Mutex::default(),
            cdn_arrivals: Mutex::default(),
            revisions: Mutex::default(),
            clock,
            scaleengine,
            cdnetworks,
            faults: Mutex::default(),
            flaky: AtomicU32::new(0),
            in_flight: AtomicU32::new(0),
            max_in_flight: AtomicU32::new(0),
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

    /// Replaces the faults (`flaky` starts counting down anew).
    pub fn set_faults(&self, faults: Faults) {
        self.flaky.store(faults.flaky, Ordering::SeqCst);
        *Self::lock(&self.faults) = faults;
    }

    /// The most requests that were ever in progress at once.
    pub fn max_in_flight(&self) -> u32 {
        self.max_in_flight.load(Ordering::SeqCst)
    }

    /// Counts a request in progress until the guard drops.
    pub(crate) fn in_flight(&self) -> InFlight<'_> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(self)
    }

    /// The `json` form fields received so far (the most recent [`KEEP_REQUESTS`]).
    pub fn requests(&self) -> Vec<String> {
        Self::lock(&self.requests).clone()
    }

    /// The CDNetworks requests received so far (the most recent [`KEEP_REQUESTS`]).
    pub fn cdn_requests(&self) -> Vec<CdnRequest> {
        Self::lock(&self.cdn_requests).clone()
    }

    /// The CDNetworks traffic-request requests received so far (the most recent [`KEEP_REQUESTS`]).
    pub fn traffic_requests(&self) -> Vec<CdnRequest> {
        Self::lock(&self.traffic_requests).clone()
    }

    /// Authenticated CDNetworks requests (both endpoints) of the account with this username.
    pub fn cdn_requests_of(&self, username: &str) -> usize {
        Self::lock(&self.cdn_arrivals).get(username).map_or(0, Vec::len)
    }

    /// The most authenticated CDNetworks requests of one account that arrived within any `window`
    /// (real time): what the provider's rate limit counts.
    pub fn cdn_max_in_window(&self, username: &str, window: Duration) -> usize {
        let arrivals = Self::lock(&self.cdn_arrivals);
        let Some(times) = arrivals.get(username) else { return 0 };
        (0..times.len()).map(|i| times[i..].iter().take_while(|t| **t < times[i] + window).count()).max().unwrap_or(0)
    }

    fn count_cdn(&self, username: &str) {
        let mut arrivals = Self::lock(&self.cdn_arrivals);
        let times = arrivals.entry(username.to_owned()).or_default();
        if times.len() < KEEP_REQUESTS {
            times.push(std::time::Instant::now());
        }
    }

    /// Revises the traffic slices of the last [`cdnetworks::REVISED_SECS`] (by the state's clock):
    /// later answers carry higher values for them, as CDN logs arriving late do.
    pub fn revise_traffic(&self) {
        Self::lock(&self.revisions).push(self.clock.now());
    }

    /// When slices were revised.
    pub fn traffic_revisions(&self) -> Vec<i64> {
        Self::lock(&self.revisions).clone()
    }

    fn record_traffic(&self, request: CdnRequest) {
        let mut r = Self::lock(&self.traffic_requests);
        if r.len() >= KEEP_REQUESTS {
            r.remove(0);
        }
        r.push(request);
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

/// A request in progress (see [`SimState::max_in_flight`]).
pub(crate) struct InFlight<'a>(&'a SimState);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
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
        .route(crate::providers::cdnetworks::traffic::PATH, post(cdnetworks::handle_traffic))
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
