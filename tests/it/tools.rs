//! The demo as a user runs it: `cdn-usage-exporter demo`, a full /metrics within 5 seconds, and
//! `promtool check metrics` with nothing to say about it.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Scrape, require_tool};

struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the demo binary on a free port and returns it with its /metrics URL.
fn start_demo() -> (Demo, String, Instant) {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cdn-usage-exporter"))
        .args(["demo", "--web.listen-address", "127.0.0.1:0", "--log.level", "warn"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("demo starts");
    let stdout = child.stdout.take().expect("stdout");
    let demo = Demo(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("demo prints its URL");
    let url = line
        .split_whitespace()
        .find(|w| w.ends_with("/metrics"))
        .unwrap_or_else(|| panic!("no /metrics URL in {line:?}"))
        .to_owned();
    (demo, url, started)
}

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
];

#[tokio::test]
async fn demo_shows_a_full_metrics_page_within_5_seconds_and_promtool_is_silent() {
    let (_demo, url, started) = start_demo();
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
        s.value("cdn_billing_estimated_month_spend_usd", &[]) > s.value("cdn_billing_budget_usd", &[]),
        "the demo's budget is set below its estimate so that the budget alert fires"
    );

    let Some(promtool) = require_tool("promtool") else {
        return;
    };
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    use std::io::Write as _;
    child.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "promtool check metrics: {said}");
}
