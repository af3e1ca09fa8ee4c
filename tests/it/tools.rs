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
    ("cdn_billing_month_to_date_cost_usd", ("item", "traffic")),
    ("cdn_billing_estimated_month_cost_usd", ("item", "bandwidth")),
    ("cdn_billing_bandwidth_bytes_per_second", ("account", "demo")),
    ("cdn_month_to_date_bandwidth_bytes", ("service_id", "SU1Z0isxPaozGVKXdv0eY")),
    ("cdn_month_to_date_requests", ("area", "other")),
    ("cdn_billing_month_to_date_cost_usd", ("item", "north_america_bandwidth")),
    ("cdn_billing_last_month_spend_usd", ("provider", "fastly")),
    ("cdn_billing_budget_usd", ("provider", "fastly")),
    // The checks below compare these: each provider's must be there, not only one of them.
    ("cdn_billing_estimated_month_spend_usd", ("provider", "scaleengine")),
    ("cdn_billing_estimated_month_spend_usd", ("provider", "cdnetworks")),
    ("cdn_billing_budget_usd", ("provider", "scaleengine")),
    ("cdn_billing_budget_usd", ("provider", "cdnetworks")),
    ("cdn_billing_month_to_date_spend_usd", ("provider", "fastly")),
    // The demo's CDNetworks contract is in euros, served in dollars at its rate.
    ("cdn_billing_currency_info", ("currency", "EUR")),
    ("cdn_billing_exchange_rate", ("currency", "EUR")),
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
    // Both demo accounts: the provider's estimate (ScaleEngine) and the one priced from the
    // contract (CDNetworks) are over their budgets, so that the budget alert fires for each.
    for provider in ["scaleengine", "cdnetworks"] {
        let p = [("provider", provider)];
        assert!(
            s.value("cdn_billing_estimated_month_spend_usd", &p) > s.value("cdn_billing_budget_usd", &p),
            "the demo's {provider} budget is set below its estimate so that the budget alert fires"
        );
    }
    assert_eq!(s.value("cdn_billing_spend_source_info", &[("provider", "cdnetworks"), ("source", "contract")]), 1.0);
    // Fastly gives no estimate: the forecast rule divides the spend to date by the month's
    // elapsed share, which the demo's budget is below.
    let fastly = [("provider", "fastly")];
    let now = cdn_usage_exporter::timeutil::now_unix();
    let month = cdn_usage_exporter::timeutil::month_start(now.div_euclid(86_400));
    let (y, m, _) = cdn_usage_exporter::timeutil::civil_from_days(month);
    let share =
        (now - month * 86_400) as f64 / (f64::from(cdn_usage_exporter::timeutil::days_in_month(y, m)) * 86_400.0);
    // (In a month's first minutes the spend to date still rounds to a few cents.)
    assert!(
        share < 0.001
            || s.value("cdn_billing_month_to_date_spend_usd", &fastly) / share
                > s.value("cdn_billing_budget_usd", &fastly),
        "the demo's Fastly budget is below its forecast so that the forecast alert fires"
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
