//! The HTTP side: `/metrics` hands out the cached body, `/` links to it, `/healthz` says the
//! process is alive. Nothing here waits on a provider.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;

use crate::expo;
use crate::store::Store;

/// Builds the router over the shared store.
pub fn router(store: Arc<Store>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/", get(landing))
        .with_state(store)
}

async fn metrics(State(store): State<Arc<Store>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, expo::CONTENT_TYPE)], store.body())
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn landing() -> Html<&'static str> {
    Html(concat!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>cdn-usage-exporter</title></head>",
        "<body style=\"font-family:sans-serif;max-width:40em;margin:2em auto\">",
        "<h1>cdn-usage-exporter</h1>",
        "<p>CDN usage and billing for Prometheus.</p>",
        "<ul><li><a href=\"/metrics\">Metrics</a></li><li><a href=\"/healthz\">Health</a></li></ul>",
        "<p>Version ",
        env!("CARGO_PKG_VERSION"),
        "</p></body></html>"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt as _;

    #[tokio::test]
    async fn metrics_serves_the_cached_body_with_its_content_type() {
        let store = Store::new("t", "r");
        let response =
            router(store.clone()).oneshot(Request::get("/metrics").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CONTENT_TYPE], expo::CONTENT_TYPE);
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        assert_eq!(body, store.body());
        assert!(std::str::from_utf8(&body).unwrap().contains("cdn_exporter_build_info"));
    }
}
