//! The HTTP side: `/metrics` hands out the cached body (plus the process metrics, refreshed at
//! most once a second), `/` is the status page, `/healthz` and `/readyz` are the probes,
//! `POST /-/reload` re-reads the configuration. Nothing here waits on a provider.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use http_body::Frame;

use crate::app::Control;
use crate::expo;
use crate::store::Store;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// Samples, health and the cached body.
    pub store: Arc<Store>,
    /// Reloads; `None` where the configuration cannot be re-read.
    pub control: Option<Arc<Control>>,
}

/// How long the process metrics are reused between scrapes.
const PROCESS_REFRESH: Duration = Duration::from_secs(1);

static PROCESS: Mutex<Option<(Instant, Bytes)>> = Mutex::new(None);

fn process_metrics() -> Bytes {
    let mut cached = PROCESS.lock().unwrap_or_else(|e| e.into_inner());
    match &*cached {
        Some((at, bytes)) if at.elapsed() < PROCESS_REFRESH => bytes.clone(),
        _ => {
            let bytes = Bytes::from(crate::process::render());
            *cached = Some((Instant::now(), bytes.clone()));
            bytes
        }
    }
}

/// Builds the router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/-/reload", post(reload).put(reload))
        .route("/", get(status_page))
        .with_state(state)
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

async fn metrics(State(state): State<AppState>) -> Response {
    let body = Chunks([state.store.body(), process_metrics()].into_iter().filter(|b| !b.is_empty()).collect());
    ([(header::CONTENT_TYPE, expo::CONTENT_TYPE)], Body::new(body)).into_response()
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
        return (StatusCode::NOT_IMPLEMENTED, "reload is not available here\n").into_response();
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
        assert_eq!(response.headers()[header::CONTENT_TYPE], expo::CONTENT_TYPE);
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        assert!(body.starts_with(&store.body()), "the cached body comes first, unchanged");
        let text = std::str::from_utf8(&body).unwrap();
        assert!(text.contains("cdn_exporter_build_info"));
        #[cfg(target_os = "linux")]
        assert!(text.contains("\nprocess_resident_memory_bytes "), "{text}");
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
    async fn reload_without_a_source_says_so() {
        let store = Store::new("t", "r");
        let response = app(&store).oneshot(Request::post("/-/reload").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_IMPLEMENTED);
    }
}
