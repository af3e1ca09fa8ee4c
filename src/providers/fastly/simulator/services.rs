//! The simulator's `GET /service`: a bare array of services paged by the `Link` header, each
//! with its `versions` (every version of the service, as Fastly lists them) unless the request
//! says `filter[include_versions]=false`, and `type` `wasm` for Compute services.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use crate::providers::common::simulator::SimState;
use crate::providers::fastly::SERVICES_PATH;

use super::{FastlySim, admit, reply};

/// One service entry as `/service` lists it (the fields of go-fastly's recorded list).
fn entry(account: &FastlySim, i: usize, id: &str, versions: bool) -> Value {
    let kind = if account.is_compute(id) { "wasm" } else { "vcl" };
    let n = account.versions.max(1);
    let mut e = json!({
        "id": id, "name": format!("service-{i}"), "version": n, "type": kind,
        "customer_id": account.customer_id, "comment": "", "created_at": "2024-01-10T12:00:00Z",
        "updated_at": "2025-09-01T09:30:00Z", "deleted_at": null, "paused": false,
    });
    if versions {
        e["versions"] = (1..=n)
            .map(|v| {
                json!({
                    "number": v, "active": v == n, "locked": v < n, "deployed": v == n, "staging": false,
                    "testing": false, "comment": format!("version {v}: managed by Terraform"),
                    "service_id": id, "created_at": "2024-01-10T12:00:00Z",
                    "updated_at": "2025-09-01T09:30:00Z", "deleted_at": null,
                })
            })
            .collect();
    }
    e
}

/// `GET /service`: a bare array, paged by the `Link` header.
pub async fn handle_services(
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let _in_flight = state.in_flight();
    let account = match admit(&state, "service", SERVICES_PATH, &headers, &query).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let page = query.get("page").and_then(|p| p.parse::<usize>().ok()).unwrap_or(1).max(1);
    let per_page = query.get("per_page").and_then(|p| p.parse::<usize>().ok()).unwrap_or(20).clamp(1, 1000);
    let versions = query.get("filter[include_versions]").map(String::as_str) != Some("false");
    let size = per_page.min(account.page_size.max(1));
    let entries: Vec<Value> = account
        .services
        .iter()
        .enumerate()
        .skip((page - 1) * size)
        .take(size)
        .map(|(i, id)| entry(account, i, id, versions))
        .collect();
    let pages = account.services.len().div_ceil(size).max(1);
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
    let host = if state.fastly_faults().link_elsewhere { "elsewhere.example" } else { host };
    let link = |p: usize, rel: &str| format!("<http://{host}{SERVICES_PATH}?page={p}&per_page={size}>; rel=\"{rel}\"");
    let mut links = vec![link(1, "first")];
    if page > 1 {
        links.push(link(page - 1, "prev"));
    }
    if page < pages {
        links.push(link(page + 1, "next"));
    }
    links.push(link(pages, "last"));
    reply(&state, StatusCode::OK, Value::Array(entries), vec![(header::LINK, links.join(", "))])
}
