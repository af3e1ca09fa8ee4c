//! Both exposition formats, checked by parsers that are not ours: Python's prometheus_client
//! (its strict OpenMetrics parser and its text parser, in a venv under the target dir),
//! `promtool tsdb create-blocks-from openmetrics` and `promtool check metrics`; and the same
//! series with the same values in both formats, from the demo.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::support::{Scrape, assert_promtool_silent, require_tool, start_demo};

/// What Prometheus 3 sends (scrape/scrape.go `acceptHeader` over config.DefaultScrapeProtocols).
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";

/// Parses stdin with prometheus_client (argv[1]: `openmetrics` or `text`) and prints one JSON
/// line per sample: name, labels, value (as text, so that NaN survives).
const PARSE: &str = r#"
import json, sys
if sys.argv[1] == "openmetrics":
    from prometheus_client.openmetrics.parser import text_string_to_metric_families
else:
    from prometheus_client.parser import text_string_to_metric_families
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        print(json.dumps([family.type, s.name, s.labels, repr(float(s.value))]))
"#;

/// The venv's python with prometheus_client installed, made once per test run (and kept in the
/// target dir between runs). `None` (after a notice) where python3, venv or pip are missing,
/// unless `CDN_EXPORTER_REQUIRE_TOOLS=1`.
fn python() -> Option<PathBuf> {
    static VENV: Mutex<Option<Option<PathBuf>>> = Mutex::new(None);
    let mut venv = VENV.lock().unwrap_or_else(|e| e.into_inner());
    venv.get_or_insert_with(make_venv).clone()
}

fn make_venv() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("python-openmetrics");
    let python = dir.join("bin/python");
    let has_client = |python: &PathBuf| {
        Command::new(python)
            .args(["-c", "import prometheus_client.openmetrics.parser"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if has_client(&python) {
        return Some(python);
    }
    let required = std::env::var("CDN_EXPORTER_REQUIRE_TOOLS").is_ok_and(|v| v == "1");
    let skip = |why: String| {
        assert!(!required, "{why} and CDN_EXPORTER_REQUIRE_TOOLS=1");
        eprintln!("SKIPPED: {why} (CI installs python3-venv; see .ci/run)");
        None
    };
    require_tool("python3")?;
    let made = Command::new("python3").args(["-m", "venv", "--clear"]).arg(&dir).output();
    match made {
        Ok(o) if o.status.success() => {}
        Ok(o) => return skip(format!("python3 -m venv failed: {}", String::from_utf8_lossy(&o.stderr).trim())),
        Err(e) => return skip(format!("python3 -m venv did not run: {e}")),
    }
    let pip = Command::new(dir.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check", "prometheus-client"])
        .output();
    match pip {
        Ok(o) if o.status.success() && has_client(&python) => Some(python),
        Ok(o) => skip(format!("pip install prometheus-client failed: {}", String::from_utf8_lossy(&o.stderr).trim())),
        Err(e) => skip(format!("pip did not run: {e}")),
    }
}

/// Parses `body` with prometheus_client; panics with the parser's message if it refuses it.
/// Returns (type, sample name, labels, value) per sample.
fn python_parse(python: &PathBuf, format: &str, body: &str) -> BTreeSet<String> {
    use std::io::Write as _;
    let mut child = Command::new(python)
        .args(["-c", PARSE, format])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python runs");
    child.stdin.take().expect("stdin").write_all(body.as_bytes()).expect("python reads");
    let out = child.wait_with_output().expect("python ends");
    assert!(
        out.status.success(),
        "prometheus_client's {format} parser refused the body: {}\n{body}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8").lines().map(str::to_owned).collect()
}

async fn get(url: &str, accept: Option<&str>) -> (String, String) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    let response = request.send().await.expect("scrape answers");
    let content_type =
        response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    (content_type, response.text().await.expect("body"))
}

/// The exporter's own sample lines (process metrics are read anew every second).
fn own_lines(body: &str) -> Vec<&str> {
    body.lines().filter(|l| l.starts_with("cdn_")).collect()
}

/// The demo's bodies in both formats, from the same render: OpenMetrics, text, OpenMetrics
/// again, until the two OpenMetrics scrapes agree (a poll may finish in between).
async fn both_formats(url: &str) -> (String, String) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (om_type, om) = get(url, Some(PROMETHEUS_ACCEPT)).await;
        let (text_type, text) = get(url, None).await;
        let (_, again) = get(url, Some(PROMETHEUS_ACCEPT)).await;
        assert_eq!(om_type, "application/openmetrics-text; version=1.0.0; charset=utf-8");
        assert_eq!(text_type, "text/plain; version=0.0.4; charset=utf-8");
        let complete = om.contains("cdn_video_month_to_date_bytes{") && om.contains("cdn_storage_bytes{");
        if complete && own_lines(&om) == own_lines(&again) {
            return (om, text);
        }
        assert!(Instant::now() < deadline, "the demo's exposition did not settle within 20 s:\n{om}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn both_formats_carry_the_same_series_and_values() {
    let (_demo, url) = start_demo();
    let (om, text) = both_formats(&url).await;
    assert!(om.ends_with("# EOF\n") && om.matches("# EOF").count() == 1, "{om}");
    assert!(!text.contains("# EOF") && !text.contains("# UNIT"));
    assert_eq!(own_lines(&om), own_lines(&text), "the same sample lines, in the same order");
    let (om_scrape, text_scrape) = (Scrape::parse(&om), Scrape::parse(&text));
    let own = |s: &Scrape| {
        s.series.iter().filter(|x| x.name.starts_with("cdn_")).map(|x| format!("{x:?}")).collect::<BTreeSet<_>>()
    };
    let ours = own(&om_scrape).len();
    assert!(ours > 50, "{om}");
    assert_eq!(own(&om_scrape), own(&text_scrape));
    // Types as each format names them.
    assert_eq!(om_scrape.types["cdn_exporter_poll_errors"], "counter");
    assert_eq!(text_scrape.types["cdn_exporter_poll_errors_total"], "counter");
    assert_eq!(om_scrape.types["cdn_exporter_build"], "info");
    assert_eq!(text_scrape.types["cdn_exporter_build_info"], "gauge");
    assert!(om.contains("# UNIT cdn_video_month_to_date_bytes bytes\n"));
    assert!(om.contains("# UNIT cdn_billing_budget_usd usd\n"));
    assert!(om.contains("# TYPE process_cpu_seconds counter\n") && om.contains("\nprocess_cpu_seconds_total "));
    assert!(text.contains("# TYPE process_cpu_seconds_total counter\n"));

    let Some(python) = python() else { return };
    let om_samples = python_parse(&python, "openmetrics", &om);
    let text_samples = python_parse(&python, "text", &text);
    let own = |set: &BTreeSet<String>| set.iter().filter(|l| l.contains("\"cdn_")).cloned().collect::<BTreeSet<_>>();
    // Both parsers see the same samples; the family types differ only where the formats do.
    let untyped = |set: BTreeSet<String>| {
        set.into_iter()
            .map(|l| l.replacen("[\"info\", ", "[\"gauge\", ", 1))
            .map(|l| l.split_once(", ").map(|(_, rest)| rest.to_owned()).unwrap_or(l))
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(untyped(own(&om_samples)), untyped(own(&text_samples)));
    assert_eq!(own(&om_samples).len(), ours, "python saw every sample our parser saw");
    assert!(om_samples.iter().any(|l| l.starts_with("[\"info\", \"cdn_exporter_build_info\"")), "{om_samples:?}");
    assert!(om_samples.iter().any(|l| l.starts_with("[\"counter\", \"cdn_exporter_poll_errors_total\"")));
}

#[tokio::test]
async fn promtool_reads_the_openmetrics_body_into_blocks_and_lints_the_text_body() {
    let (_demo, url) = start_demo();
    let (om, text) = both_formats(&url).await;
    let Some(promtool) = require_tool("promtool") else { return };
    assert_promtool_silent(&promtool, &text);
    // create-blocks-from wants a timestamp on every sample: an hour ago, in seconds.
    let ts = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() - 3600;
    let stamped: String =
        om.lines().map(|l| if l.starts_with('#') { format!("{l}\n") } else { format!("{l} {ts}\n") }).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("metrics.om");
    std::fs::write(&input, &stamped).expect("write");
    let out = Command::new(&promtool)
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&input)
        .arg(dir.path().join("data"))
        .output()
        .expect("promtool runs");
    assert!(
        out.status.success(),
        "promtool tsdb create-blocks-from openmetrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let blocks = std::fs::read_dir(dir.path().join("data")).expect("blocks written").count();
    assert!(blocks >= 1, "no block written");
}

#[test]
fn python_strict_parser_refuses_what_openmetrics_forbids() {
    // The check can fail: a body without # EOF, and one whose unit is not the name's suffix.
    let Some(python) = python() else { return };
    for bad in ["# TYPE a gauge\na 1\n", "# TYPE a_seconds gauge\n# UNIT a_seconds bytes\na_seconds 1\n# EOF\n"] {
        let ok = Command::new(&python)
            .args(["-c", PARSE, "openmetrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write as _;
                c.stdin.take().expect("stdin").write_all(bad.as_bytes())?;
                c.wait()
            })
            .expect("python runs");
        assert!(!ok.success(), "the strict parser accepted {bad:?}");
    }
}
