//! Backfill end to end: simulator → `cdn-usage-exporter backfill` → `promtool tsdb
//! create-blocks-from openmetrics` → a Prometheus on those blocks answers with the simulator's
//! history; a window that fails is reported with the command that fetches it, and the rest is
//! kept; re-running over an overlapping range gives the same samples.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use cdn_usage_exporter::providers::cdnetworks::simulator::CdnAccount;
use cdn_usage_exporter::providers::cdnetworks::simulator::hourly_value;
use cdn_usage_exporter::providers::scaleengine::simulator::month_factor;
use cdn_usage_exporter::providers::scaleengine::simulator::{SeAccount, VideoAppSpec};
use cdn_usage_exporter::simulator::{Faults, SimState, Simulator};
use cdn_usage_exporter::timeutil::{self, civil_from_days, days_from_civil, format_ymd};
use serde_json::Value;

use crate::support::{cdn_part, se_part};
use crate::support::{loopback, require_tool, wait_for};

const NINE: i64 = 9 * 3600;

async fn sim() -> Simulator {
    Simulator::start(
        loopback(),
        SimState::builder()
            .with(se_part(vec![SeAccount {
                cdn: 5,
                api_key: "BFKEY".into(),
                api_secret: "bf-secret".into(),
                monthly_edge_gb: 2_000.0,
                users: vec![],
                video_apps: vec![VideoAppSpec { name: "vod".into(), urls: 30 }],
            }]))
            .with(cdn_part(vec![CdnAccount {
                username: "bf".into(),
                api_key: "bf-cdn-key".into(),
                access_key: "AK".into(),
                secret_key: "SK".into(),
                domains: vec![("a.example.net".into(), "C-1".into(), 4e9), ("b.example.net".into(), "C-1".into(), 9e9)],
            }]))
            .build(),
    )
    .await
    .unwrap()
}

fn config(sim: &Simulator) -> String {
    format!(
        r#"
[[scaleengine]]
name = "se"
cdn = 5
api_key = "BFKEY"
api_secret = "bf-secret"
base_url = "{}"
video_apps = ["vod"]
video_top_n = 10
timeout = "5s"

[[cdnetworks]]
name = "cn"
base_url = "{}"
username = "bf"
api_key = "bf-cdn-key"
timeout = "5s"
domains = [
  {{ domain = "a.example.net", contract = "C-1" }},
  {{ domain = "b.example.net", contract = "C-1" }},
]
"#,
        sim.scaleengine_url(),
        sim.cdnetworks_url()
    )
}

async fn backfill(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_cdn-usage-exporter"))
            .arg("backfill")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

/// Every sample line of an OpenMetrics file: (series, timestamp) → value; checks the format on
/// the way (families contiguous, each series in time order, `# EOF` last).
/// `--config CFG --from FROM --to TO --out OUT [--only UNIT]`, days since the epoch as dates.
fn range_args(cfg: &Path, from: i64, to: i64, out: &Path, only: Option<&str>) -> Vec<String> {
    let mut a = vec![
        "--config".to_owned(),
        cfg.display().to_string(),
        "--from".into(),
        format_ymd(from),
        "--to".into(),
        format_ymd(to),
        "--out".into(),
        out.display().to_string(),
    ];
    if let Some(o) = only {
        a.extend(["--only".into(), o.into()]);
    }
    a
}

fn samples(text: &str) -> BTreeMap<(String, i64), f64> {
    assert!(text.ends_with("# EOF\n"), "ends with # EOF");
    let mut out = BTreeMap::new();
    let mut families_seen = BTreeSet::new();
    let mut current = String::new();
    let mut last_ts: BTreeMap<String, i64> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            current = rest.split(' ').next().unwrap().to_owned();
            assert!(families_seen.insert(current.clone()), "family {current} appears twice");
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (series, rest) = line.rsplit_once("} ").map(|(s, r)| (format!("{s}}}"), r)).unwrap();
        assert!(series.starts_with(&current), "{series} outside its family {current}");
        let mut parts = rest.split(' ');
        let value: f64 = parts.next().unwrap().parse().unwrap();
        let ts: i64 = parts.next().expect("explicit timestamp").parse().unwrap();
        if let Some(prev) = last_ts.insert(series.clone(), ts) {
            assert!(ts > prev, "{series}: {ts} after {prev}, out of order");
        }
        out.insert((series, ts), value);
    }
    out
}

async fn prom_query(http: &reqwest::Client, base: &str, expr: &str, at: i64) -> Option<f64> {
    let bytes = http
        .post(format!("{base}/api/v1/query"))
        .form(&[("query", expr.to_owned()), ("time", at.to_string())])
        .send()
        .await
        .ok()?
        .bytes()
        .await
        .ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    v["data"]["result"].as_array()?.first()?["value"][1].as_str()?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_through_promtool_into_a_prometheus_that_answers_with_the_history() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    std::fs::write(&cfg, config(&sim)).unwrap();
    let today = timeutil::now_unix().div_euclid(86_400);
    let (from, to) = (today - 60, today - 1);
    let out = dir.path().join("history.om");
    let run = backfill(range_args(&cfg, from, to, &out, None)).await;
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let text = std::fs::read_to_string(&out).unwrap();
    let all = samples(&text);
    assert!(all.len() > 3_000, "{} samples", all.len());
    assert!(
        std::fs::read_dir(dir.path()).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().starts_with('.')),
        "no spool or temp file left"
    );

    // Hourly storage: every complete hour of the range in GMT+9, the simulator's values.
    let a: Vec<(&(String, i64), &f64)> =
        all.iter().filter(|((s, _), _)| s.starts_with("cdn_storage_bytes{") && s.contains("a.example.net")).collect();
    let first_end = from * 86_400 - NINE + 3600;
    let last_end = (to + 1) * 86_400 - NINE;
    assert_eq!(a.len() as i64, (last_end - first_end) / 3600 + 1, "one point per hour");
    for ((_, ts), v) in &a {
        assert_eq!(**v, hourly_value(4e9, *ts), "at {ts}");
    }

    let Some(promtool) = require_tool("promtool") else { return };
    let Some(prometheus) = require_tool("prometheus") else { return };
    let blocks = dir.path().join("data");
    let created = Command::new(promtool)
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&out)
        .arg(&blocks)
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "{}{}",
        String::from_utf8_lossy(&created.stdout),
        String::from_utf8_lossy(&created.stderr)
    );
    std::fs::write(dir.path().join("prometheus.yml"), "global: {}\n").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut prom = Command::new(prometheus)
        .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", blocks.display()))
        .arg("--storage.tsdb.retention.time=10y")
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    wait_for(Duration::from_secs(60), "Prometheus ready", || async {
        http.get(format!("{base}/-/ready")).send().await.ok().filter(|r| r.status().is_success()).map(|_| ())
    })
    .await;

    // Storage, a few hours across the range.
    for ts in [first_end, first_end + 24 * 3600 * 17, last_end - 3600, last_end] {
        let got = prom_query(
            &http,
            &base,
            r#"cdn_storage_bytes{provider="cdnetworks",account="cn",domain="a.example.net"}"#,
            ts,
        )
        .await;
        assert_eq!(got, Some(hourly_value(4e9, ts)), "storage at {ts}");
    }
    // Month-to-date usage and spend at the last second of the last complete month.
    let (y, m, _) = civil_from_days(today);
    let (py, pm) = if m == 1 { (y - 1, 12) } else { (y, m - 1) };
    let month_end = days_from_civil(y, m, 1) * 86_400 - 1;
    let edge =
        prom_query(&http, &base, r#"cdn_month_to_date_bandwidth_bytes{account="se",product="edge"}"#, month_end).await;
    let expected_gb = (2_000.0 * month_factor(py, pm) * 1000.0).round() / 1000.0;
    assert_eq!(edge, Some(expected_gb * 1e9), "edge bandwidth of {py}-{pm:02}");
    let spend = prom_query(&http, &base, r#"cdn_billing_month_to_date_spend_usd{account="se"}"#, month_end)
        .await
        .expect("spend");
    let items = prom_query(&http, &base, r#"sum(cdn_billing_month_to_date_cost_usd{account="se"})"#, month_end)
        .await
        .expect("items");
    assert!(spend > 0.0 && (spend - items).abs() < 0.01 * 16.0, "spend {spend} vs items {items}");
    let estimate = prom_query(&http, &base, r#"cdn_billing_estimated_month_spend_usd{account="se"}"#, month_end).await;
    assert_eq!(estimate, Some(spend), "a finished month's estimate is its total");
    // Video: month-to-date at a day's end, top N with the rest summed.
    let day_end = (to + 1) * 86_400 - 1;
    let top =
        prom_query(&http, &base, r#"count(cdn_video_month_to_date_bytes{account="se",app="vod"})"#, day_end).await;
    assert_eq!(top, Some(11.0), "10 URLs and __other__");
    let _ = prom.kill();
    let _ = prom.wait();
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_window_is_reported_with_its_command_and_the_rest_is_kept() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    std::fs::write(&cfg, config(&sim)).unwrap();
    let today_kst = (timeutil::now_unix() + NINE).div_euclid(86_400);
    let (from, to) = (today_kst - 40, today_kst - 1);
    // The first CDNetworks window, every time: retried, then reported.
    sim.state.set_faults(Faults { fail_window: Some(format_ymd(from)), ..Faults::default() });
    let out = dir.path().join("history.om");
    let args = |from: i64, to: i64, out: &Path, only: Option<&str>| range_args(&cfg, from, to, out, only);
    let run = backfill(args(from, to, &out, None)).await;
    assert_eq!(run.status.code(), Some(3), "{}", String::from_utf8_lossy(&run.stderr));
    let stderr = String::from_utf8_lossy(&run.stderr);
    let window_to = format_ymd(from + 30);
    for unit in ["cdnetworks/cn/a.example.net", "cdnetworks/cn/b.example.net"] {
        let command = format!("--from {} --to {window_to} --only '{unit}'", format_ymd(from));
        assert!(stderr.contains(&command), "the report names the window and the command: {stderr}");
    }
    let all = samples(&std::fs::read_to_string(&out).unwrap());
    let boundary = (from + 31) * 86_400 - NINE;
    let storage: Vec<i64> = all
        .keys()
        .filter(|(s, _)| s.starts_with("cdn_storage_bytes{") && s.contains("domain="))
        .map(|(_, t)| *t)
        .collect();
    assert!(
        !storage.is_empty() && storage.iter().all(|t| *t > boundary),
        "the second window is kept, the first is absent"
    );
    assert!(
        all.keys().any(|(s, _)| s.starts_with("cdn_storage_bytes{") && s.contains("user=")),
        "ScaleEngine disk unaffected"
    );

    // The printed command fetches just the missing window, once the provider is well again.
    sim.state.set_faults(Faults::default());
    let fix = dir.path().join("fix.om");
    let run = backfill(args(from, from + 30, &fix, Some("cdnetworks/cn/a.example.net"))).await;
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let fixed = samples(&std::fs::read_to_string(&fix).unwrap());
    assert!(fixed.keys().all(|(s, _)| s.contains("a.example.net")), "only that unit");
    assert_eq!(fixed.keys().filter(|(s, _)| s.starts_with("cdn_storage_bytes{")).count(), 31 * 24);

    // Idempotent: an overlapping range gives the same samples where they overlap.
    let again = dir.path().join("again.om");
    let run = backfill(args(from + 20, from + 30, &again, Some("cdnetworks/cn/a.example.net"))).await;
    assert!(run.status.success());
    let again = samples(&std::fs::read_to_string(&again).unwrap());
    assert!(!again.is_empty());
    for (k, v) in &again {
        assert_eq!(fixed.get(k), Some(v), "{k:?}");
    }
    sim.stop().await;
}

#[tokio::test]
async fn bad_dates_are_refused_and_stdout_works() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    std::fs::write(&cfg, config(&sim)).unwrap();
    let c = cfg.display().to_string();
    let run = backfill(vec![
        "--config".into(),
        c.clone(),
        "--from".into(),
        "2026-13-01".into(),
        "--to".into(),
        "2026-01-02".into(),
        "--out".into(),
        "-".into(),
    ])
    .await;
    assert_eq!(run.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&run.stderr).contains("--from \"2026-13-01\" is not a date"));
    let today = timeutil::now_unix().div_euclid(86_400);
    let run = backfill(vec![
        "--config".into(),
        c,
        "--from".into(),
        format_ymd(today - 3),
        "--to".into(),
        format_ymd(today - 1),
        "--out".into(),
        "-".into(),
        "--only".into(),
        "scaleengine/se/disk".into(),
    ])
    .await;
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let all = samples(&String::from_utf8(run.stdout).unwrap());
    assert_eq!(all.len(), 3 * 2, "3 days × bytes and timestamp");
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_backfill_writes_the_month_to_date_figures_of_each_day() {
    use cdn_usage_exporter::providers::cdnetworks::simulator::traffic_slice;
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    std::fs::write(&cfg, config(&sim)).unwrap();
    // Days in the account's zone (GMT+9): the two days before today.
    let today = (timeutil::now_unix() + NINE).div_euclid(86_400);
    let (from, to) = (today - 2, today - 1);
    let out = dir.path().join("traffic.om");
    let run = backfill(range_args(&cfg, from, to, &out, Some("cdnetworks/cn/traffic-request"))).await;
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let all = samples(&std::fs::read_to_string(&out).unwrap());
    let get = |family: &str, domain: &str, ts: i64| {
        all.iter()
            .find(|((s, t), _)| {
                *t == ts && s.starts_with(&format!("{family}{{")) && (domain.is_empty() || s.contains(domain))
            })
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("no {family} {domain} at {ts}"))
    };
    for day in from..=to {
        let end = (day + 1) * 86_400 - NINE;
        let (y, m, _) = civil_from_days(day);
        let month_start = days_from_civil(y, m, 1) * 86_400 - NINE;
        // Every slice of the month up to the day's end, computed here from the simulator's data.
        let (mut centi, mut bw) = (0u64, Vec::new());
        let mut slice_end = month_start + 300;
        while slice_end <= end {
            let s = traffic_slice("a.example.net", slice_end, timeutil::now_unix(), &[]).unwrap();
            centi += s.traffic_centi_mb;
            bw.push(s.bandwidth_centi_mbps);
            slice_end += 300;
        }
        bw.sort_unstable();
        let p95 = bw[(bw.len() as f64 * 0.95).ceil() as usize - 1] as f64 * 1250.0;
        assert_eq!(get("cdn_month_to_date_bandwidth_bytes", "a.example.net", end), centi as f64 * 1e4, "{day}");
        assert_eq!(get("cdn_month_to_date_p95_bandwidth_bytes_per_second", "a.example.net", end), p95, "{day}");
        assert_eq!(
            get("cdn_month_to_date_peak_bandwidth_bytes_per_second", "a.example.net", end),
            *bw.last().unwrap() as f64 * 1250.0
        );
        assert!(get("cdn_month_to_date_account_p95_bandwidth_bytes_per_second", "", end) > p95);
        assert!(all.keys().all(|(s, _)| !s.contains("product=")), "domain labels only");
    }
    sim.stop().await;
}

/// A day of an app that needs more `video.usage` pages than `answer_limits.video_pages` is a
/// failed window, named with its retry command, as in live polling; never a silently cut sum.
#[tokio::test]
async fn a_video_day_past_the_page_bound_fails_its_window_instead_of_being_cut() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    let today = timeutil::now_unix().div_euclid(86_400);
    let (from, to) = (today - 3, today - 2);
    let unit = "scaleengine/se/video.usage/vod";
    // 30 URLs at 10 per page: 3 full pages a day, and a 4th that comes back empty (the
    // simulator's pages carry no `count`).
    for (pages, ok) in [(2, false), (4, true)] {
        let limits = format!("\n[answer_limits]\npage_entries = 10\nvideo_pages = {pages}\n");
        std::fs::write(&cfg, config(&sim) + &limits).unwrap();
        let out = dir.path().join(format!("video-{pages}.om"));
        let run = backfill(range_args(&cfg, from, to, &out, Some(unit))).await;
        let stderr = String::from_utf8_lossy(&run.stderr);
        if ok {
            assert!(run.status.success(), "{pages} pages a day are enough: {stderr}");
            let all = samples(&std::fs::read_to_string(&out).unwrap());
            let urls = all.keys().filter(|(s, _)| s.starts_with("cdn_video_month_to_date_bytes{")).count();
            assert!(urls > 0, "the video history is written");
        } else {
            assert_eq!(run.status.code(), Some(3), "{stderr}");
            assert!(stderr.contains("answer_limits.video_pages"), "the bound is named: {stderr}");
            assert!(stderr.contains(&format!("--only '{unit}'")), "with the command to retry: {stderr}");
        }
    }
    sim.stop().await;
}

/// A priced CDNetworks account's history: each day's spend to date as the live pricing job
/// computes it, the month's last day at its whole-month figure, and last month's bill through
/// the month after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdnetworks_spend_history_is_priced_day_by_day_with_last_months_bill() {
    use cdn_usage_exporter::providers::cdnetworks::simulator::hourly_value;
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    let pricing =
        "[cdnetworks.pricing]\ntraffic_usd_per_gb = 0.04\nstorage_usd_per_gb_month = 0.02\nmonthly_fee_usd = 100\n";
    std::fs::write(&cfg, format!("{}{pricing}", config(&sim))).unwrap();
    // The two whole months before this one, in the account's zone (GMT+9).
    let today = (timeutil::now_unix() + NINE).div_euclid(86_400);
    let this_month = timeutil::month_start(today);
    let last_month = timeutil::month_start(this_month - 1);
    let (from, to) = (timeutil::month_start(last_month - 1), this_month - 1);
    let out = dir.path().join("spend.om");
    let run = backfill(range_args(&cfg, from, to, &out, Some("cdnetworks/cn/traffic-request"))).await;
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let all = samples(&std::fs::read_to_string(&out).unwrap());
    let get = |family: &str, label: &str, ts: i64| {
        all.iter()
            .filter(|((s, t), _)| *t == ts && s.starts_with(&format!("{family}{{")) && s.contains(label))
            .map(|(_, v)| *v)
            .sum::<f64>()
    };
    let storage_gb = |day: i64| {
        // The peak of the month's days so far, each the domains' highest hourly points summed.
        let first = timeutil::month_start(day);
        (first..=day)
            .map(|d| {
                [4e9, 9e9]
                    .iter()
                    .map(|base| (1..=24).map(|h| hourly_value(*base, d * 86_400 + h * 3600 - NINE)).fold(0.0, f64::max))
                    .sum::<f64>()
            })
            .fold(0.0, f64::max)
            / 1e9
    };
    let mut final_spend = BTreeMap::new();
    for day in from..=to {
        let end = (day + 1) * 86_400 - NINE;
        let first = timeutil::month_start(day);
        let (y, m, _) = civil_from_days(day);
        let s = (end - (first * 86_400 - NINE)) as f64 / (f64::from(timeutil::days_in_month(y, m)) * 86_400.0);
        let gb = get("cdn_month_to_date_bandwidth_bytes", "domain=", end) / 1e9;
        let want = gb * 0.04 + storage_gb(day) * 0.02 * s + 100.0 * s;
        let got = get("cdn_billing_month_to_date_spend_usd", "account=\"cn\"", end);
        assert!((got - want).abs() < 1e-6 * want, "{day}: spend {got}, want {want}");
        let fee = get("cdn_billing_month_to_date_cost_usd", "item=\"fee\"", end);
        assert!((fee - 100.0 * s).abs() < 1e-9, "{day}: fee {fee}");
        // The month's start, as the forecast rules read it: midnight of its 1st in GMT+9.
        let start = get("cdn_billing_month_start_timestamp_seconds", "account=\"cn\"", end);
        assert_eq!(start, (first * 86_400 - NINE) as f64, "{day}: month start");
        if day == first + i64::from(timeutil::days_in_month(y, m)) - 1 {
            let estimate = get("cdn_billing_estimated_month_spend_usd", "account=\"cn\"", end);
            assert!((got - estimate).abs() < 1e-6 * got, "a month's last day: to date is the whole month");
            final_spend.insert(first, got);
        }
        // Through the month after a walked month, its bill is last month's.
        if first == last_month {
            let bill = get("cdn_billing_last_month_spend_usd", "account=\"cn\"", end);
            assert_eq!(bill, final_spend[&timeutil::month_start(first - 1)], "{day}");
        } else {
            assert!(all.keys().all(|(s, t)| *t != end || !s.starts_with("cdn_billing_last_month")), "{day}");
        }
    }
    sim.stop().await;
}
