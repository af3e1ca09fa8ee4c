//! The HTTP side: `/metrics` hands out the cached body in the negotiated format (plus the
//! process metrics, refreshed at most once a second), `/` is the status page, `/healthz` and
//! `/readyz` are the probes, `POST /-/reload` re-reads the configuration (only with
//! `--web.enable-lifecycle`, else 403 as in Prometheus). Nothing here waits on a provider.

use std::collections::BTreeMap;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRef, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use http_body::Frame;

use crate::config::ConfigError;
use crate::exposition;
use crate::store::Store;

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

/// A boxed future that can cross threads, as an object-safe trait returns one.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the lifecycle API (`POST /-/reload`) asks of the running exporter. The app's
/// `Control` implements it, so that the server needs nothing of the app.
pub trait Lifecycle: Send + Sync {
    /// Reads the configuration again and applies it; a bad configuration changes nothing and
    /// comes back as the error.
    fn reload(&self) -> BoxFuture<'_, Result<ReloadSummary, ConfigError>>;
}

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// Samples, health and the cached body.
    pub store: Arc<Store>,
    /// Reloads; `None` unless the lifecycle API is enabled (`--web.enable-lifecycle`).
    pub control: Option<Arc<dyn Lifecycle>>,
}

/// How long the process metrics are reused between scrapes.
const PROCESS_REFRESH: Duration = Duration::from_secs(1);

/// The tail of a body: the process metrics, and in OpenMetrics the closing `# EOF`.
struct ProcessTail {
    at: Instant,
    openmetrics: exposition::Encoded,
    text: exposition::Encoded,
}

/// The process metrics as last read, owned by one router (two servers in one process, as
/// in tests, keep their own).
#[derive(Default)]
struct ProcessCache(Mutex<Option<ProcessTail>>);

impl ProcessCache {
    /// The process metrics in `format`, plain and gzip, refreshed at most once per
    /// [`PROCESS_REFRESH`] (both formats at once: they are about a kilobyte).
    fn get(&self, format: exposition::Format) -> exposition::Encoded {
        let mut cached = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let tail = match &*cached {
            Some(tail) if tail.at.elapsed() < PROCESS_REFRESH => tail,
            _ => {
                let mut om = crate::process::render_openmetrics();
                let mut text = String::with_capacity(om.len());
                exposition::openmetrics_to_text(&om, &mut text);
                om.push_str(exposition::EOF);
                cached.insert(ProcessTail {
                    at: Instant::now(),
                    openmetrics: exposition::Encoded::new(Bytes::from(om)),
                    text: exposition::Encoded::new(Bytes::from(text)),
                })
            }
        };
        match format {
            exposition::Format::OpenMetrics => tail.openmetrics.clone(),
            exposition::Format::Text => tail.text.clone(),
        }
    }
}

/// How long a `GET /focus` answer is reused: bills change with billing polls, which are
/// minutes apart.
pub const FOCUS_REFRESH: Duration = Duration::from_secs(60);

/// The largest `GET /focus` answer served (16 MiB); a bigger one is refused with 503 (the
/// `focus` command writes any size).
pub const MAX_FOCUS_BYTES: usize = 16 << 20;

/// The last `GET /focus` answer of each month asked, with when it was made.
#[derive(Default)]
struct FocusCache(Mutex<BTreeMap<i64, (Instant, Bytes)>>);

/// The router's state: what the caller gave, and what the router keeps for itself.
#[derive(Clone)]
struct RouterState {
    app: AppState,
    process: Arc<ProcessCache>,
    focus: Arc<FocusCache>,
}

impl FromRef<RouterState> for Arc<FocusCache> {
    fn from_ref(state: &RouterState) -> Self {
        state.focus.clone()
    }
}

impl FromRef<RouterState> for AppState {
    fn from_ref(state: &RouterState) -> Self {
        state.app.clone()
    }
}

impl FromRef<RouterState> for Arc<ProcessCache> {
    fn from_ref(state: &RouterState) -> Self {
        state.process.clone()
    }
}

/// Whether an `Accept-Encoding` header accepts gzip (`gzip` or `*`, with a q-value above 0).
pub fn accepts_gzip(header: &str) -> bool {
    header.split(',').any(|part| {
        let mut params = part.split(';').map(str::trim);
        let coding = params.next().unwrap_or_default();
        let q = params.find_map(|p| p.strip_prefix("q=")).and_then(|q| q.parse::<f32>().ok()).unwrap_or(1.0);
        (coding.eq_ignore_ascii_case("gzip") || coding == "*") && q > 0.0
    })
}

/// Builds the router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/-/reload", post(reload).put(reload))
        .route("/", get(status_page))
        .route("/focus", get(focus))
        .with_state(RouterState { app: state, process: Arc::default(), focus: Arc::default() })
}

/// A body made of a few shared chunks, sent without copying them into one buffer.
struct Chunks(VecDeque<Bytes>);

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_empty()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.0.iter().map(|b| b.len() as u64).sum())
    }
}

/// The cached exposition in the format `Accept` prefers (OpenMetrics for Prometheus, text
/// 0.0.4 otherwise, see [`exposition::negotiate`]), gzip-compressed when the scraper accepts it
/// (Prometheus always does). The process metrics (and OpenMetrics' `# EOF`) follow as a second
/// chunk; compressed, as a second gzip member, which gzip readers (Go's included) read as one
/// stream.
async fn metrics(
    State(state): State<AppState>,
    State(process): State<Arc<ProcessCache>>,
    headers: HeaderMap,
) -> Response {
    let format = exposition::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let exposition = state.store.exposition();
    let body = exposition.get(format);
    let process = process.get(format);
    let gzip = headers.get(header::ACCEPT_ENCODING).and_then(|v| v.to_str().ok()).is_some_and(accepts_gzip);
    let chunks = if gzip { [body.gzip.clone(), process.gzip] } else { [body.plain.clone(), process.plain] };
    let body = Body::new(Chunks(chunks.into_iter().filter(|b| !b.is_empty()).collect()));
    let mut response =
        ([(header::CONTENT_TYPE, format.content_type()), (header::VARY, "Accept, Accept-Encoding")], body)
            .into_response();
    if gzip {
        response.headers_mut().insert(header::CONTENT_ENCODING, header::HeaderValue::from_static("gzip"));
    }
    response
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.store.ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        let jobs = state.store.jobs();
        let done = jobs.iter().filter(|(_, h)| h.polls > 0).count();
        (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {done} of {} jobs have finished a poll\n", jobs.len()))
            .into_response()
    }
}

async fn reload(State(state): State<AppState>) -> Response {
    let Some(control) = state.control else {
        // Prometheus's answer, word for word: state changes over HTTP are opt-in.
        return (StatusCode::FORBIDDEN, "Lifecycle API is not enabled.").into_response();
    };
    match control.reload().await {
        Ok(s) => (
            StatusCode::OK,
            format!(
                "reloaded: {} added, {} removed, {} changed, {} unchanged\n",
                s.added, s.removed, s.changed, s.unchanged
            ),
        )
            .into_response(),
        Err(e) => {
            (StatusCode::BAD_REQUEST, format!("reload refused, the running configuration stays: {e}\n")).into_response()
        }
    }
}

/// `GET /focus?month=YYYY-MM`: the FOCUS 1.2 CSV of the bills the exporter holds (each
/// account's month under way and last month; default last month), made from the billing
/// samples of the last polls (never a request to a provider), cached [`FOCUS_REFRESH`].
async fn focus(
    State(state): State<AppState>,
    State(cache): State<Arc<FocusCache>>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    let now = crate::timeutil::now_unix();
    let this_month = crate::timeutil::month_start(now.div_euclid(86_400));
    let last_month = crate::timeutil::month_start(this_month - 1);
    let asked = serde_urlencoded::from_str::<BTreeMap<String, String>>(query.as_deref().unwrap_or_default())
        .ok()
        .and_then(|q| q.get("month").cloned());
    let month = match asked {
        None => last_month,
        Some(m) => match crate::focus::parse_month(&m) {
            Some(month) => month,
            None => {
                return (StatusCode::BAD_REQUEST, "month is not a month: write it as month=YYYY-MM\n").into_response();
            }
        },
    };
    if month != this_month && month != last_month {
        return (
            StatusCode::NOT_FOUND,
            "the exporter holds this month's and last month's bills; for another month run `cdn-usage-exporter focus --month YYYY-MM`\n",
        )
            .into_response();
    }
    let body = {
        let mut cached = cache.0.lock().unwrap_or_else(|e| e.into_inner());
        // Only the two months held are ever cached: at most two answers.
        cached.retain(|m, _| *m == this_month || *m == last_month);
        match cached.get(&month) {
            Some((at, body)) if at.elapsed() < FOCUS_REFRESH => body.clone(),
            _ => {
                let report = crate::focus::collect::from_store(&state.store, month, now);
                let body = Bytes::from(crate::focus::csv(&report.bills));
                cached.insert(month, (Instant::now(), body.clone()));
                body
            }
        }
    };
    if body.len() > MAX_FOCUS_BYTES {
        return (StatusCode::SERVICE_UNAVAILABLE, "the bills are larger than 16 MiB: use `cdn-usage-exporter focus`\n")
            .into_response();
    }
    ([(axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8")], body).into_response()
}

async fn status_page(State(state): State<AppState>) -> Html<String> {
    Html(crate::status::render(&state.store))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;
    use tower::ServiceExt as _;

    fn app(store: &Arc<Store>) -> Router {
        router(AppState { store: store.clone(), control: None })
    }

    #[tokio::test]
    async fn metrics_serves_the_cached_body_and_process_metrics() {
        let store = Store::new("t", "r");
        let response = app(&store).oneshot(Request::get("/metrics").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CONTENT_TYPE], exposition::TEXT_CONTENT_TYPE);
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        assert!(body.starts_with(&store.exposition().text().plain), "the cached body comes first, unchanged");
        let text = std::str::from_utf8(&body).unwrap();
        assert!(text.contains("cdn_exporter_build_info"));
        #[cfg(target_os = "linux")]
        assert!(text.contains("\nprocess_resident_memory_bytes "), "{text}");
    }

    #[tokio::test]
    async fn gzip_when_asked_and_the_same_text_after_decompression() {
        let store = Store::new("t", "r");
        let request = Request::get("/metrics")
            .header(header::ACCEPT_ENCODING, "deflate, gzip;q=0.9")
            .body(Body::empty())
            .unwrap();
        let response = app(&store).oneshot(request).await.unwrap();
        assert_eq!(response.headers()[header::CONTENT_ENCODING], "gzip");
        assert_eq!(response.headers()[header::VARY], "Accept, Accept-Encoding");
        let compressed = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        let mut text = String::new();
        use std::io::Read as _;
        // Two gzip members: a multi-member reader returns both.
        flate2::read::MultiGzDecoder::new(&compressed[..]).read_to_string(&mut text).unwrap();
        assert!(text.starts_with(std::str::from_utf8(&store.exposition().text().plain).unwrap()));
        #[cfg(target_os = "linux")]
        assert!(text.contains("\nprocess_resident_memory_bytes "), "{text}");
        let plain = app(&store).oneshot(Request::get("/metrics").body(Body::empty()).unwrap()).await.unwrap();
        assert!(plain.headers().get(header::CONTENT_ENCODING).is_none());
    }

    async fn get(store: &Arc<Store>, accept: Option<&str>, gzip: bool) -> (Response, String) {
        let mut request = Request::get("/metrics");
        if let Some(accept) = accept {
            request = request.header(header::ACCEPT, accept);
        }
        if gzip {
            request = request.header(header::ACCEPT_ENCODING, "gzip");
        }
        let response = app(store).oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        let mut text = String::new();
        if gzip {
            use std::io::Read as _;
            flate2::read::MultiGzDecoder::new(&bytes[..]).read_to_string(&mut text).unwrap();
        } else {
            text = String::from_utf8(bytes.to_vec()).unwrap();
        }
        (Response::from_parts(parts, Body::empty()), text)
    }

    #[tokio::test]
    async fn openmetrics_when_prometheus_asks_text_otherwise() {
        let store = Store::new("t", "r");
        let key = crate::job::JobKey::account("scaleengine", "a", "usage.summary");
        store.register_job(&key, Duration::from_secs(60));
        store.record_failure(&key, &crate::job::PollError::new(crate::job::Reason::Auth, "no"), Duration::ZERO);
        store.render_now();
        assert!(!store.exposition().has_text(), "the text body waits for a scrape that asks for it");
        let prometheus = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
        for gzip in [false, true] {
            let (response, om) = get(&store, Some(prometheus), gzip).await;
            assert_eq!(response.headers()[header::CONTENT_TYPE], exposition::OPENMETRICS_CONTENT_TYPE);
            assert_eq!(response.headers()[header::VARY], "Accept, Accept-Encoding");
            assert!(om.ends_with("# EOF\n"), "{om}");
            assert_eq!(om.matches("# EOF").count(), 1);
            assert!(om.contains("# TYPE cdn_exporter_poll_errors counter\n"), "{om}");
            assert!(om.contains("# TYPE cdn_exporter_build info\n"), "{om}");
            #[cfg(target_os = "linux")]
            assert!(om.contains("# UNIT process_resident_memory_bytes bytes\n"), "{om}");
            assert_eq!(store.exposition().has_text(), gzip, "an OpenMetrics scrape does not build the text body");
            let (response, text) = get(&store, None, gzip).await;
            assert_eq!(response.headers()[header::CONTENT_TYPE], exposition::TEXT_CONTENT_TYPE);
            assert!(!text.contains("# EOF") && !text.contains("# UNIT"), "{text}");
            assert!(text.contains("# TYPE cdn_exporter_poll_errors_total counter\n"), "{text}");
            assert!(text.contains("# TYPE cdn_exporter_build_info gauge\n"), "{text}");
            // The same sample lines in both.
            let samples =
                |body: &str| body.lines().filter(|l| !l.starts_with('#')).map(str::to_owned).collect::<Vec<_>>();
            let (om_samples, text_samples) = (samples(&om), samples(&text));
            // Process metrics are read anew each second; compare the exporter's own lines.
            let own = |v: Vec<String>| v.into_iter().filter(|l| l.starts_with("cdn_")).collect::<Vec<_>>();
            assert_eq!(own(om_samples), own(text_samples));
        }
        assert!(store.exposition().has_text());
    }

    #[test]
    fn accept_encoding_is_parsed_with_q_values() {
        for (h, yes) in [
            ("gzip", true),
            ("gzip, deflate", true),
            ("br;q=1.0, gzip;q=0.5", true),
            ("*", true),
            ("gzip;q=0", false),
            ("identity", false),
            ("deflate, br", false),
            ("GZIP", true),
        ] {
            assert_eq!(accepts_gzip(h), yes, "{h}");
        }
    }

    #[tokio::test]
    async fn readyz_waits_for_every_first_poll() {
        let store = Store::new("t", "r");
        let key = crate::job::JobKey::account("scaleengine", "a", "usage.summary");
        store.register_job(&key, Duration::from_secs(60));
        let status = |store: &Arc<Store>| {
            let app = app(store);
            async move { app.oneshot(Request::get("/readyz").body(Body::empty()).unwrap()).await.unwrap().status() }
        };
        assert_eq!(status(&store).await, StatusCode::SERVICE_UNAVAILABLE);
        store.record_failure(&key, &crate::job::PollError::new(crate::job::Reason::Auth, "no"), Duration::ZERO);
        assert_eq!(status(&store).await, StatusCode::OK, "a failed first poll counts as finished");
        store.register_job(&crate::job::JobKey::account("scaleengine", "b", "usage.summary"), Duration::from_secs(60));
        assert_eq!(status(&store).await, StatusCode::OK, "once ready, a reload does not take it out of service");
    }

    #[tokio::test]
    async fn reload_is_forbidden_without_the_lifecycle_api() {
        let store = Store::new("t", "r");
        for request in [Request::post("/-/reload"), Request::put("/-/reload")] {
            let response = app(&store).oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
            assert_eq!(response.status(), StatusCode::FORBIDDEN);
            let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
            assert_eq!(&body[..], b"Lifecycle API is not enabled.");
        }
    }
}
