//! What every provider's simulator shares: the fault switches ([`Faults`]), their injection
//! ([`inject`]), and the state one simulator process holds ([`SimState`]): the faults, a count of
//! requests in progress, the clock, and each provider's own part (its accounts and the requests
//! it received), reached by type through [`SimState::part`].

use std::any::Any;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::timeutil::Clock;

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
    /// AWS (CloudFront provider): every request gets its API's throttle answer (Cost Explorer
    /// `LimitExceededException`, CloudWatch `Throttling`, STS and CloudFront XML `Throttling`,
    /// all HTTP 400), as AWS sends when a caller goes over its rate.
    pub aws_throttle: bool,
    /// AWS: the next N requests get the throttle answer, then all is well again (re-armed when
    /// the faults change), so that a test can watch the client back off and retry.
    pub aws_throttle_next: u32,
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
/// `failure` is the provider's own error answer, for chaos to send.
pub async fn inject(
    state: &SimState,
    faults: &Faults,
    failure: fn() -> axum::response::Response,
) -> Option<axum::response::Response> {
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
        0 => Some(failure()),
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

/// How many received requests each provider's part keeps for inspection.
pub const KEEP_REQUESTS: usize = 10_000;

/// Appends `item` to a bounded log of received requests (the oldest goes past
/// [`KEEP_REQUESTS`]).
pub fn keep<T>(log: &Mutex<Vec<T>>, item: T) {
    let mut r = lock(log);
    if r.len() >= KEEP_REQUESTS {
        r.remove(0);
    }
    r.push(item);
}

/// Locks `m`, through a poisoning: the simulator's state stays usable after a panic in a test.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The simulator's shared state.
pub struct SimState {
    /// Each provider's part, found by type.
    parts: Vec<Box<dyn Any + Send + Sync>>,
    faults: Mutex<Faults>,
    /// Requests left to fail (`Faults::flaky`).
    flaky: AtomicU32,
    in_flight: AtomicU32,
    max_in_flight: AtomicU32,
    /// What "now" is for the simulated data (a manual clock in tests that walk a month).
    pub clock: Clock,
}

impl std::fmt::Debug for SimState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimState").field("parts", &self.parts.len()).field("faults", &self.faults()).finish()
    }
}

impl SimState {
    /// State made of these providers' parts, with no faults, answering by `clock`.
    pub fn from_parts(parts: Vec<Box<dyn Any + Send + Sync>>, clock: Clock) -> Arc<Self> {
        Arc::new(SimState {
            parts,
            faults: Mutex::default(),
            flaky: AtomicU32::new(0),
            in_flight: AtomicU32::new(0),
            max_in_flight: AtomicU32::new(0),
            clock,
        })
    }

    /// The part of type `T` (a provider's accounts and request log), if the state has one.
    pub fn part<T: 'static>(&self) -> Option<&T> {
        self.parts.iter().find_map(|p| p.downcast_ref::<T>())
    }

    /// The current faults.
    pub fn faults(&self) -> Faults {
        lock(&self.faults).clone()
    }

    /// Replaces the faults (`flaky` starts counting down anew).
    pub fn set_faults(&self, faults: Faults) {
        self.flaky.store(faults.flaky, Ordering::SeqCst);
        *lock(&self.faults) = faults;
    }

    /// The most requests that were ever in progress at once.
    pub fn max_in_flight(&self) -> u32 {
        self.max_in_flight.load(Ordering::SeqCst)
    }

    /// Counts a request in progress until the guard drops.
    pub fn in_flight(&self) -> InFlight<'_> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(self)
    }
}

/// A request in progress (see [`SimState::max_in_flight`]).
pub struct InFlight<'a>(&'a SimState);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}
