//! The demo as a user runs it: `cdn-usage-exporter demo`, a full /metrics within 5 seconds, and
//! `promtool check metrics` with nothing to say about it.

use std::time::{Duration, Instant};

use crate::support::{Scrape, assert_promtool_silent, require_tool, start_demo};

/// Families the demo must show, with a label that must be present.
const EXPECTED: &[(&str, (&str, &str))] = &[
    ("cdn_month_to_date_bandwidth_bytes", ("product", "edge")),
    ("cdn_month_to_date_requests", ("product", "edge")),
    ("cdn_month_to_date_cpu_seconds", ("product", "php")),
    ("cdn_storage_bytes", ("account", "demo")),
    ("cdn_video_month_to_date_bytes", ("url", "__other__")),
    ("cdn_billing_month_to_date_spend_usd", ("account", "demo")),
    ("cdn_billing_estimated_month_spend_usd", ("account", "demo")),
    ("cdn_billing_budget_usd", ("account", "demo")),
    ("cdn_storage_bytes", ("domain", "static.demo.example")),
    ("cdn_storage_bytes", ("domain", "video.demo.example")),
    ("cdn_month_to_date_bandwidth_bytes", ("domain", "static.demo.example")),
    ("cdn_month_to_date_requests", ("domain", "video.demo.example")),
    ("cdn_month_to_date_peak_bandwidth_bytes_per_second", ("domain", "static.demo.example")),
    ("cdn_month_to_date_p95_bandwidth_bytes_per_second", ("domain", "video.demo.example")),
    ("cdn_month_to_date_account_p95_bandwidth_bytes_per_second", ("account", "demo")),
    ("cdn_bandwidth_commit_bytes_per_second", ("account", "demo")),
];

#[tokio::test]
async fn demo_shows_a_full_metrics_page_within_5_seconds_and_promtool_is_silent() {
    let started = Instant::now();
    let (_demo, url) = start_demo();
    let http = reqwest::Client::new();
    let mut body = String::new();
    let mut complete = false;
    while started.elapsed() < Duration::from_secs(5) {
        body = http.get(&url).send().await.expect("scrape").text().await.expect("body");
        let s = Scrape::parse(&body);
        if EXPECTED.iter().all(|(name, label)| !s.all(name, &[*label]).is_empty()) {
            complete = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(complete, "demo /metrics incomplete after 5 s:\n{body}");
    let s = Scrape::parse(&body);
    assert!(
        s.value("cdn_billing_estimated_month_spend_usd", &[("provider", "scaleengine")])
            > s.value("cdn_billing_budget_usd", &[("provider", "scaleengine")]),
        "the demo's budget is set below its estimate so that the budget alert fires"
    );
    assert!(
        s.value("cdn_month_to_date_account_p95_bandwidth_bytes_per_second", &[])
            > s.value("cdn_bandwidth_commit_bytes_per_second", &[]),
        "the demo's bandwidth commitment is set below its 95th percentile so that its alert fires"
    );

    let Some(promtool) = require_tool("promtool") else {
        return;
    };
    assert_promtool_silent(&promtool, &body);
}
