//! The exporter against the simulator over real loopback HTTP: values on /metrics, failures,
//! and what a failure leaves in place.

use std::time::Duration;

use cdn_usage_exporter::app;
use cdn_usage_exporter::config::Config;
use cdn_usage_exporter::simulator::{Faults, SimState, Simulator};
use cdn_usage_exporter::timeutil;

use crate::support::se_part;
use crate::support::{Harness, Scrape, account_toml, loopback, sim_account, wait_for};

const MAIN: (&str, &str) = ("account", "main");

#[tokio::test]
async fn serves_every_family_with_values_that_agree() {
    let h = Harness::start("1h").await;
    let s = h.wait_all_up().await;
    let item = |i| [MAIN, ("item", i)];

    // The configured budget and the provider's totals.
    assert_eq!(s.value("cdn_billing_budget_usd", &[MAIN]), 123.5);
    let items: f64 = s.all("cdn_billing_estimated_month_cost_usd", &[MAIN]).iter().map(|x| x.value).sum();
    let total = s.value("cdn_billing_estimated_month_spend_usd", &[MAIN]);
    assert!((items - total).abs() < 0.01 * 16.0, "items {items} vs total {total}");
    assert!(s.value("cdn_billing_month_to_date_spend_usd", &[MAIN]) <= total);
    // The simulator's account bills 1000 GB of edge a month at $0.03/GB.
    assert_eq!(s.value("cdn_billing_estimated_month_usage", &item("edge_bandwidth")), 1000.0);
    assert_eq!(s.value("cdn_billing_estimated_month_cost_usd", &item("edge_bandwidth")), 30.0);
    assert_eq!(s.get("cdn_billing_month_to_date_cost_usd", &item("totals")), None, "totals row is not an item");
    // Last month's bill (usage.billing for the previous month, whole): its items add up to its
    // total, which is not this month's.
    let last: f64 = s.all("cdn_billing_last_month_cost_usd", &[MAIN]).iter().map(|x| x.value).sum();
    let last_total = s.value("cdn_billing_last_month_spend_usd", &[MAIN]);
    assert!(last_total > 0.0 && (last - last_total).abs() < 0.01 * 16.0, "items {last} vs total {last_total}");
    assert!(s.get("cdn_billing_last_month_cost_usd", &item("edge_bandwidth")).is_some_and(|v| v > 0.0));
    assert_eq!(s.value("cdn_billing_spend_source_info", &[MAIN, ("source", "provider")]), 1.0);

    // usage.summary: GB → bytes, hours → seconds, totals not exported.
    let edge_bytes = s.value("cdn_month_to_date_bandwidth_bytes", &[MAIN, ("product", "edge")]);
    let edge_gb = s.value("cdn_billing_month_to_date_usage", &item("edge_bandwidth"));
    assert!((edge_bytes - edge_gb * 1e9).abs() <= 1e-3 * edge_bytes.max(1.0), "{edge_bytes} vs {edge_gb} GB");
    let php = s.value("cdn_month_to_date_cpu_seconds", &[MAIN, ("product", "php")]);
    let php_hours = s.value("cdn_billing_month_to_date_usage", &item("php_cpu_hours"));
    assert!((php - php_hours * 3600.0).abs() <= 1e-3 * php.max(1.0), "{php} s vs {php_hours} h");
    assert_eq!(
        s.all("cdn_month_to_date_bandwidth_bytes", &[MAIN]).len(),
        5,
        "edge, cdn, origin, videocdn, sql_replication"
    );
    assert_eq!(s.all("cdn_month_to_date_requests", &[MAIN]).len(), 4);
    assert_eq!(s.all("cdn_month_to_date_sql_queries", &[MAIN]).len(), 3);
    assert_eq!(s.value("cdn_origin_processes", &[MAIN]), 6.0);
    assert!(s.get("cdn_month_to_date_origin_io_transactions", &[MAIN]).is_some());
    assert!(s.get("cdn_month_to_date_origin_memory_seconds", &[MAIN]).is_some());
    // "Origin Disk:" has no mapping: kept under its slug, not dropped.
    assert_eq!(s.value("cdn_month_to_date_usage", &[MAIN, ("item", "origin_disk")]), 0.0);
    assert!(s.all("cdn_month_to_date_usage", &[MAIN]).iter().all(|x| !x.labels["item"].contains("total")));

    // disk.usage: the newest complete day (yesterday) for the whole account.
    let yesterday = timeutil::now_unix().div_euclid(86_400) - 1;
    let user = [MAIN, ("user", "__all__")];
    assert_eq!(s.value("cdn_storage_bytes", &user), 800e9 + 2e9 * (yesterday % 1000) as f64);
    assert_eq!(s.value("cdn_storage_sample_timestamp_seconds", &user), ((yesterday + 1) * 86_400) as f64);

    // video.usage: top 5 per app plus __other__; duplicates of a URL summed.
    let live = s.all("cdn_video_month_to_date_bytes", &[MAIN, ("app", "live")]);
    assert_eq!(live.len(), 3, "3 URLs, no __other__ needed");
    let vod = s.all("cdn_video_month_to_date_bytes", &[MAIN, ("app", "vod/è")]);
    assert_eq!(vod.len(), 6);
    let top =
        s.value("cdn_video_month_to_date_bytes", &[MAIN, ("app", "vod/è"), ("url", "sestore/vod/è/clip-0000.mp4")]);
    let second =
        s.value("cdn_video_month_to_date_bytes", &[MAIN, ("app", "vod/è"), ("url", "sestore/vod/è/clip-0001.mp4")]);
    assert!(top > second, "the two rows of clip-0000 are summed");
    let other = s.value("cdn_video_month_to_date_bytes", &[MAIN, ("app", "vod/è"), ("url", "__other__")]);
    assert!(other > top, "2,340 URLs outweigh one");
    assert!(s.value("cdn_video_month_to_date_requests", &[MAIN, ("app", "vod/è"), ("url", "__other__")]) >= 2340.0);

    // Health.
    for endpoint in ["usage.summary", "usage.billing.live", "usage.billing", "disk.usage", "video.usage"] {
        let l = [MAIN, ("endpoint", endpoint)];
        assert_eq!(s.value("cdn_exporter_poll_up", &l), 1.0);
        assert!(s.value("cdn_exporter_last_success_timestamp_seconds", &l) > 1.7e9);
        assert_eq!(s.value("cdn_exporter_poll_errors_total", &[MAIN, ("endpoint", endpoint), ("reason", "auth")]), 0.0);
    }
    // 4 single-request endpoints + live (1 page) + vod (3 pages of 1000).
    assert_eq!(s.value("cdn_exporter_upstream_requests_total", &[MAIN, ("code", "200")]), 8.0);
    h.stop().await;
}

#[tokio::test]
async fn requests_are_signed_paged_and_typed_as_documented() {
    let h = Harness::start("1h").await;
    h.wait_all_up().await;
    let requests = h.sim.state.requests();
    assert_eq!(requests.len(), 8);
    let mut offsets = Vec::new();
    for raw in &requests {
        let v: serde_json::Value = serde_json::from_str(raw).unwrap();
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys.first().map(|k| k.as_str()), Some("command"), "{raw}");
        assert_eq!(keys.last().map(|k| k.as_str()), Some("signature"), "signature goes last: {raw}");
        assert!(v["cdn"].is_i64(), "cdn is an integer: {raw}");
        assert!((v["timestamp"].as_i64().unwrap() - timeutil::now_unix()).abs() < 60);
        let unescaped_slash = raw.match_indices('/').any(|(i, _)| !raw[..i].ends_with('\\'));
        assert!(!unescaped_slash, "slashes are escaped as PHP does: {raw}");
        if v["command"] == "usage.billing" {
            // Last month, as a date of its first day.
            let today = timeutil::now_unix().div_euclid(86_400);
            let last = timeutil::month_start(timeutil::month_start(today) - 1);
            assert_eq!(v["starttime"], timeutil::format_ymd(last), "{raw}");
        }
        if v["command"] == "video.usage" {
            if v["app"] == "vod/è" {
                assert!(raw.contains(r#""app":"vod\/\u00e8""#), "{raw}");
                offsets.push(v["offset"].as_u64().unwrap());
            }
            assert_eq!(v["limit"], 1000);
        }
    }
    offsets.sort();
    assert_eq!(offsets, [0, 1000, 2000]);
    h.stop().await;
}

async fn errors(h: &Harness, endpoint: &str, reason: &str) -> f64 {
    h.scrape()
        .await
        .get("cdn_exporter_poll_errors_total", &[MAIN, ("endpoint", endpoint), ("reason", reason)])
        .unwrap_or(0.0)
}

async fn wait_error(h: &Harness, endpoint: &str, reason: &str, before: f64) -> Scrape {
    wait_for(Duration::from_secs(10), &format!("a {reason} error on {endpoint}"), || async {
        let s = h.scrape().await;
        let n = s.get("cdn_exporter_poll_errors_total", &[MAIN, ("endpoint", endpoint), ("reason", reason)])?;
        (n > before).then_some(s)
    })
    .await
}

#[tokio::test]
async fn a_failed_poll_keeps_the_last_good_values() {
    // Samples outlive a slow failure: with the default (3 intervals, 3 s) a loaded machine could
    // let them expire before the failure shows, which is expiry, not this test's subject.
    let h = Harness::start_with("1s", "max_age = \"1h\"\n").await;
    let good = h.wait_all_up().await;
    let spend = good.value("cdn_billing_estimated_month_spend_usd", &[MAIN]);
    h.sim.state.set_faults(Faults {
        http_500: true,
        only_command: Some("usage.billing.live".into()),
        ..Faults::default()
    });
    let bad = wait_error(&h, "usage.billing.live", "http", 0.0).await;
    assert_eq!(bad.value("cdn_exporter_poll_up", &[MAIN, ("endpoint", "usage.billing.live")]), 0.0);
    assert_eq!(bad.value("cdn_billing_estimated_month_spend_usd", &[MAIN]), spend, "last good value kept");
    assert_eq!(bad.value("cdn_exporter_poll_up", &[MAIN, ("endpoint", "usage.summary")]), 1.0, "other jobs unaffected");
    let health = h
        .exporter
        .store
        .health(&cdn_usage_exporter::job::JobKey::account("scaleengine", "main", "usage.billing.live"))
        .unwrap();
    let message = health.last_error.unwrap().message;
    assert!(message.contains("HTTP 500") && message.contains("Internal Server Error"), "{message}");

    // Recovery once the fault is gone.
    h.sim.state.set_faults(Faults::default());
    wait_for(Duration::from_secs(10), "billing back up", || async {
        let s = h.scrape().await;
        (s.get("cdn_exporter_poll_up", &[MAIN, ("endpoint", "usage.billing.live")])? == 1.0).then_some(())
    })
    .await;
    h.stop().await;
}

#[tokio::test]
async fn provider_failures_are_classified_by_reason() {
    let h = Harness::start("1s").await;
    h.wait_all_up().await;
    let cases =
        [("0002", "clock_skew"), ("0003", "auth"), ("0001", "auth"), ("1000", "throttled"), ("0004", "provider")];
    for (code, reason) in cases {
        let before = errors(&h, "usage.summary", reason).await;
        h.sim.state.set_faults(Faults {
            failure_code: Some(code.into()),
            only_command: Some("usage.summary".into()),
            ..Faults::default()
        });
        wait_error(&h, "usage.summary", reason, before).await;
    }
    h.sim.state.set_faults(Faults { latency_ms: 2_500, only_command: None, ..Faults::default() });
    wait_error(&h, "usage.summary", "timeout", 0.0).await;
    h.sim.state.set_faults(Faults::default());
    h.stop().await;
}

#[tokio::test]
async fn numbers_as_strings_give_the_same_values() {
    let h = Harness::start("1s").await;
    let before = h.wait_all_up().await;
    let requests = h.sim.state.requests().len();
    h.sim.state.set_faults(Faults { numbers_as_strings: true, ..Faults::default() });
    // Wait for a full round of polls made after the switch.
    wait_for(Duration::from_secs(10), "a round of polls with string numbers", || async {
        (h.sim.state.requests().len() >= requests + 14).then_some(())
    })
    .await;
    let after = h.wait_all_up().await;
    let edge = [MAIN, ("item", "edge_bandwidth")];
    assert_eq!(
        after.value("cdn_billing_estimated_month_usage", &edge),
        before.value("cdn_billing_estimated_month_usage", &edge)
    );
    assert_eq!(after.value("cdn_origin_processes", &[MAIN]), 6.0);
    assert_eq!(after.all("cdn_video_month_to_date_bytes", &[MAIN]).len(), 9);
    h.stop().await;
}

#[tokio::test]
async fn a_wrong_secret_is_an_auth_error_naming_the_code() {
    let sim =
        Simulator::start(loopback(), SimState::builder().with(se_part(vec![sim_account()])).build()).await.unwrap();
    let toml = account_toml("main", &sim.scaleengine_url(), "1h").replace(crate::support::SECRET, "wrong");
    let config = Config::from_toml_str(&toml, "test").unwrap();
    let exporter = app::start(&config, loopback()).await.unwrap();
    let key = cdn_usage_exporter::job::JobKey::account("scaleengine", "main", "usage.summary");
    let health = wait_for(Duration::from_secs(10), "first poll", || async {
        exporter.store.health(&key).filter(|h| h.polls > 0)
    })
    .await;
    let error = health.last_error.expect("failed");
    assert_eq!(error.reason.as_str(), "auth");
    assert!(error.message.contains("0003"), "{}", error.message);
    assert!(!error.message.contains("wrong"), "no secret in messages");
    exporter.stop().await;
    sim.stop().await;
}

#[tokio::test]
async fn prometheus_gets_openmetrics_with_the_same_samples_as_the_text_format() {
    let h = Harness::start("1h").await;
    let text = h.wait_all_up().await;
    let url = format!("http://{}/metrics", h.exporter.addr);
    let accept = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
    let response = h.http.get(&url).header("accept", accept).header("accept-encoding", "gzip").send().await.unwrap();
    assert_eq!(response.headers()["content-type"], "application/openmetrics-text; version=1.0.0; charset=utf-8");
    assert_eq!(response.headers()["vary"], "Accept, Accept-Encoding");
    // reqwest is built without gzip: decompress by hand, both members.
    let compressed = response.bytes().await.unwrap();
    let mut body = String::new();
    std::io::Read::read_to_string(&mut flate2::read::MultiGzDecoder::new(&compressed[..]), &mut body).unwrap();
    assert!(body.ends_with("# EOF\n"), "{body}");
    let om = Scrape::parse(&body);
    // Labels with non-ASCII text and slashes (the simulator's `vod/è` app) come through alike.
    let vod = [MAIN, ("app", "vod/è")];
    assert!(!om.all("cdn_video_month_to_date_bytes", &vod).is_empty(), "{body}");
    let own = |s: &Scrape| {
        s.series
            .iter()
            .filter(|x| x.name.starts_with("cdn_") && !x.name.starts_with("cdn_exporter_"))
            .map(|x| format!("{x:?}"))
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(own(&om), own(&text), "polls are an hour apart: the same provider samples in both formats");
    assert_eq!(om.types["cdn_exporter_poll_errors"], "counter");
    assert_eq!(om.types["cdn_month_to_date_bandwidth_bytes"], "gauge");
    h.stop().await;
}
