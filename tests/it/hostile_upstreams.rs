//! Adversarial providers (issue 10): a fake ScaleEngine in the test process serves good data,
//! then turns hostile (huge tables, endless pages, huge or forging messages, redirects,
//! non-finite cells). The real binary, with the default answer limits, must keep serving, keep
//! the last good values, show the failure in `cdn_exporter_poll_up` and
//! `cdn_exporter_poll_errors_total{reason}`, and stay under 100 MiB peak RSS.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use crate::support::{Binary, Launch, Scrape, wait_for};

/// These tests push megabytes through a spawned binary: one at a time, so that together they do
/// not load a small CI machine more than one of them does.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The acceptance bound on peak RSS against any hostile provider.
const MAX_PEAK_RSS_KIB: u64 = 100 * 1024;

/// What the fake answers to one request: the command and its `offset` (video pages).
type Answer = Arc<dyn Fn(u64) -> Response + Send + Sync>;

/// A fake ScaleEngine command API on loopback: one answer function per command.
struct Fake {
    addr: std::net::SocketAddr,
    answers: Arc<Mutex<HashMap<String, Answer>>>,
    requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn json(body: impl Into<Bytes>) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(Body::from(body.into()))
        .expect("a valid response")
}

/// A body sent in pieces with no `Content-Length` (chunked), so only reading can bound it.
struct Chunks(VecDeque<Bytes>);

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        Poll::Ready(self.0.pop_front().map(|b| Ok(http_body::Frame::data(b))))
    }
}

fn chunked(pieces: Vec<Bytes>) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(Body::new(Chunks(pieces.into())))
        .expect("a valid response")
}

fn good_summary() -> Response {
    json(
        r#"{"status":"success","data":{"cols":[["string","Name"],["number","Total"]],"vals":[["Edge Bandwidth:",{"v":2.5,"f":"2.5 "}],["Edge Requests:","1000"],["Total Bandwidth:",{"v":2.5,"f":"2.5"}]]}}"#,
    )
}

fn good_billing() -> Response {
    json(
        r#"{"status":"success","data":{"cols":[["string","Item"],["number","Usage To Date:"],["number","Estimated Price:"],["number","Estimated Usage:"],["number","Estimated Total:"]],"vals":[["Edge Bandwidth:",1,2,3,4],["Totals:",0,42.5,0,120]]}}"#,
    )
}

fn good_disk() -> Response {
    json(r#"{"status":"success","usage":[{"summary_date":"2026-01-10","cpu_user":"","bytes_total":"1024"}]}"#)
}

fn good_video() -> Response {
    json(
        r#"{"status":"success","usage":[{"video_url":"good.mp4","bytes_total":"100","requests_total":"2"}],"count":1}"#,
    )
}

/// Two days ago in GMT+9: a complete daily point inside the polling window.
fn good_domain_usage() -> Response {
    let day = cdn_usage_exporter::timeutil::format_ymd(cdn_usage_exporter::timeutil::now_unix() / 86_400 - 2);
    json(format!(r#"{{"code":"0","message":"success","data":[{{"timestamp":"{day}","usage":"2135"}}]}}"#))
}

impl Fake {
    async fn start() -> Fake {
        let answers: Arc<Mutex<HashMap<String, Answer>>> = Arc::new(Mutex::new(HashMap::new()));
        let requests = Arc::new(AtomicUsize::new(0));
        {
            let mut a = answers.lock().unwrap();
            a.insert("usage.summary".into(), Arc::new(|_| good_summary()));
            a.insert("usage.billing.live".into(), Arc::new(|_| good_billing()));
            a.insert("usage.billing".into(), Arc::new(|_| good_billing()));
            a.insert("disk.usage".into(), Arc::new(|_| good_disk()));
            a.insert("video.usage".into(), Arc::new(|_| good_video()));
        }
        let (table, count) = (answers.clone(), requests.clone());
        let handler = move |uri: axum::http::Uri, body: Bytes| {
            let (table, count) = (table.clone(), count.clone());
            async move {
                count.fetch_add(1, Ordering::SeqCst);
                if uri.path().ends_with("/api/domain-usage") {
                    let answer = table.lock().unwrap().get("domain-usage").cloned();
                    return answer.map_or_else(good_domain_usage, |f| f(0));
                }
                let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
                let request: serde_json::Value = form
                    .iter()
                    .find(|(k, _)| k == "json")
                    .and_then(|(_, v)| serde_json::from_str(v).ok())
                    .unwrap_or_default();
                let command = request["command"].as_str().unwrap_or_default().to_owned();
                let offset = request["offset"].as_u64().unwrap_or(0);
                let answer = table.lock().unwrap().get(&command).cloned();
                match answer {
                    Some(f) => f(offset),
                    None => json(r#"{"status":"failure","code":"0000","message":"unrecognized command"}"#),
                }
            }
        };
        let app = axum::Router::new().fallback(handler);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Fake { addr, answers, requests, task }
    }

    fn url(&self) -> String {
        format!("http://{}/stable/", self.addr)
    }

    fn cdn_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn answer(&self, command: &str, f: impl Fn(u64) -> Response + Send + Sync + 'static) {
        self.answers.lock().unwrap().insert(command.into(), Arc::new(f));
    }
}

/// The real binary, its stderr collected line by line.
struct Exporter {
    bin: Binary,
    base: String,
    http: reqwest::Client,
}

fn config(base_url: &str, video_interval: &str, timeout: &str) -> String {
    format!(
        r#"
[[scaleengine]]
name = "se"
cdn = 7
api_key = "hostile-test-key"
api_secret = "hostile-test-secret"
base_url = "{base_url}"
summary_interval = "1s"
billing_interval = "1s"
disk_interval = "1s"
video_interval = "{video_interval}"
timeout = "{timeout}"
max_age = "1h"
video_apps = ["live"]
video_top_n = 5
"#
    )
}

impl Exporter {
    fn start(dir: &tempfile::TempDir, config: &str) -> Exporter {
        let path = dir.path().join("config.toml");
        std::fs::write(&path, config).unwrap();
        let bin = Binary::start(&path, Launch { args: vec!["--log.level", "info"], ..Launch::default() });
        let base = format!("http://{}", bin.addr());
        Exporter { bin, base, http: reqwest::Client::new() }
    }

    async fn get(&self, path: &str) -> String {
        let answer = self.http.get(format!("{}{path}", self.base)).timeout(Duration::from_secs(10)).send().await;
        answer.expect("the exporter answers").text().await.expect("a text body")
    }

    async fn scrape(&self) -> Scrape {
        Scrape::parse(&self.get("/metrics").await)
    }

    /// Peak resident memory so far (VmHWM), in KiB.
    fn peak_rss_kib(&self) -> u64 {
        self.bin.status_field("VmHWM:")
    }

    fn log_lines(&self) -> Vec<String> {
        self.bin.log_lines()
    }

    /// The whole log once it contains every one of `needles` (a failure is logged just after it
    /// shows on /metrics, and the log is read by another thread).
    async fn log_with(&self, needles: &[&str]) -> String {
        wait_for(Duration::from_secs(10), &format!("{needles:?} in the log"), || async {
            let log = self.log_lines().join("\n");
            needles.iter().all(|n| log.contains(n)).then_some(log)
        })
        .await
    }

    /// Waits until every job has succeeded, and returns the scrape.
    async fn wait_all_up(&self) -> Scrape {
        wait_for(Duration::from_secs(30), "every job up with good data", || async {
            let s = self.scrape().await;
            let up = s.all("cdn_exporter_poll_up", &[]);
            (up.len() == crate::support::SE_JOBS && up.iter().all(|x| x.value == 1.0)).then_some(s)
        })
        .await
    }

    /// Waits until `endpoint` has failed with `reason` more often than `before` and is down.
    async fn wait_failed(&self, endpoint: &str, reason: &str, before: f64, timeout: Duration) -> Scrape {
        wait_for(timeout, &format!("{endpoint} to fail with reason {reason}"), || async {
            let s = self.scrape().await;
            let errors = s.get("cdn_exporter_poll_errors_total", &[("endpoint", endpoint), ("reason", reason)]);
            let up = s.get("cdn_exporter_poll_up", &[("endpoint", endpoint)]);
            (errors.unwrap_or(0.0) > before && up == Some(0.0)).then_some(s)
        })
        .await
    }
}

fn errors(s: &Scrape, endpoint: &str, reason: &str) -> f64 {
    s.get("cdn_exporter_poll_errors_total", &[("endpoint", endpoint), ("reason", reason)]).unwrap_or(0.0)
}

const EDGE: (&str, &str) = ("product", "edge");

/// The good values every test starts from, still there after the hostile answers.
fn assert_good_values_kept(s: &Scrape) {
    assert_eq!(s.get("cdn_month_to_date_bandwidth_bytes", &[EDGE]), Some(2.5e9), "summary's last good value");
    assert_eq!(s.get("cdn_month_to_date_requests", &[EDGE]), Some(1000.0));
    assert_eq!(s.get("cdn_billing_estimated_month_spend_usd", &[]), Some(120.0), "billing's last good value");
    assert_eq!(s.get("cdn_video_month_to_date_bytes", &[("url", "good.mp4")]), Some(100.0), "video's");
}

fn assert_rss(exporter: &Exporter, case: &str) -> u64 {
    let peak = exporter.peak_rss_kib();
    eprintln!("{case}: peak RSS {} KiB ({:.1} MiB)", peak, peak as f64 / 1024.0);
    assert!(peak < MAX_PEAK_RSS_KIB, "{case}: peak RSS {peak} KiB is over {MAX_PEAK_RSS_KIB} KiB");
    peak
}

/// `["r0000001",1],` rows of a summary table: `rows` of them, in pieces of about 1 MB.
fn tiny_rows(rows: usize) -> Vec<Bytes> {
    let mut pieces = vec![Bytes::from_static(br#"{"status":"success","data":{"cols":[],"vals":["#)];
    let mut piece = Vec::with_capacity(1 << 20);
    for i in 0..rows {
        if i > 0 {
            piece.push(b',');
        }
        piece.extend_from_slice(format!(r#"["r{i:07}",1]"#).as_bytes());
        if piece.len() >= 1 << 20 {
            pieces.push(Bytes::from(std::mem::take(&mut piece)));
        }
    }
    pieces.push(Bytes::from(piece));
    pieces.push(Bytes::from_static(b"]}}"));
    pieces
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_summary_of_a_million_tiny_rows_is_refused_within_bounded_memory() {
    let _one = ONE_AT_A_TIME.lock().await;
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let exporter = Exporter::start(&dir, &config(&fake.url(), "1s", "5s"));
    exporter.wait_all_up().await;

    // 1. A valid 9 MB answer with a Content-Length: refused before it is read.
    let million = tiny_rows(1_000_000);
    let whole: Bytes = million.concat().into();
    assert!(whole.len() > 9_000_000, "{}", whole.len());
    let body = whole.clone();
    fake.answer("usage.summary", move |_| json(body.clone()));
    let before = errors(&exporter.scrape().await, "usage.summary", "parse");
    let s = exporter.wait_failed("usage.summary", "parse", before, Duration::from_secs(30)).await;
    assert_good_values_kept(&s);
    assert!(s.all("cdn_month_to_date_usage", &[]).is_empty(), "no row of the hostile table exported");

    // 2. The same without a Content-Length: refused while reading.
    fake.answer("usage.summary", move |_| chunked(million.clone()));
    let before = errors(&s, "usage.summary", "parse");
    let s = exporter.wait_failed("usage.summary", "parse", before, Duration::from_secs(30)).await;
    assert_good_values_kept(&s);

    // 3. Under the byte bound but past the row bound (65,000 rows in about 980 KB).
    let rows: Bytes = tiny_rows(65_000).concat().into();
    assert!(rows.len() < 1 << 20, "{}", rows.len());
    fake.answer("usage.summary", move |_| json(rows.clone()));
    let before = errors(&s, "usage.summary", "parse");
    let s = exporter.wait_failed("usage.summary", "parse", before, Duration::from_secs(30)).await;
    assert_good_values_kept(&s);
    let page = exporter.get("/").await;
    assert!(page.contains("answer_limits.table_rows"), "the status page says which bound and how to raise it");
    // The log names the byte bound's key and the row bound's key.
    exporter.log_with(&["answer_limits.summary_bytes", "answer_limits.table_rows"]).await;
    assert_rss(&exporter, "million tiny rows");

    // The good answer comes back: so does the job.
    fake.answer("usage.summary", |_| good_summary());
    wait_for(Duration::from_secs(30), "summary up again", || async {
        (exporter.scrape().await.get("cdn_exporter_poll_up", &[("endpoint", "usage.summary")]) == Some(1.0))
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn video_pages_that_never_end_are_folded_then_cut_off() {
    let _one = ONE_AT_A_TIME.lock().await;
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    // A poll may take 60 s here: the cut-off is the page bound, not the deadline.
    let exporter = Exporter::start(&dir, &config(&fake.url(), "3s", "60s"));
    exporter.wait_all_up().await;

    // Pages of 1,000 distinct URLs of about 1 KB each, and a count that never ends.
    let served = Arc::new(AtomicUsize::new(0));
    let pages = served.clone();
    fake.answer("video.usage", move |offset| {
        pages.fetch_add(1, Ordering::SeqCst);
        let pad = "p".repeat(1000);
        let entries: Vec<String> = (0..1000)
            .map(|i| {
                format!(r#"{{"video_url":"v/{}/{pad}","bytes_total":"{}","requests_total":"1"}}"#, offset + i, i + 1)
            })
            .collect();
        json(format!(r#"{{"status":"success","usage":[{}],"count":999999999999}}"#, entries.join(",")))
    });
    let before = errors(&exporter.scrape().await, "video.usage", "parse");
    let s = exporter.wait_failed("video.usage", "parse", before, Duration::from_secs(120)).await;
    assert_good_values_kept(&s);
    assert_eq!(s.all("cdn_video_month_to_date_bytes", &[]).len(), 1, "the hostile URLs never replace good ones");
    let n = served.load(Ordering::SeqCst);
    assert!((100..=2 * 100 + 1).contains(&n), "the default bound stops paging after 100 pages: {n} served");
    // The error names the bound's key.
    exporter.log_with(&["answer_limits.video_pages"]).await;
    assert_rss(&exporter, "endless video pages");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_provider_messages_are_refused_or_cut() {
    let _one = ONE_AT_A_TIME.lock().await;
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let exporter = Exporter::start(&dir, &config(&fake.url(), "1s", "5s"));
    exporter.wait_all_up().await;
    let lines_before = exporter.log_lines().len();

    // 5 MB: past the answer bound, refused unread.
    let huge: Bytes =
        format!(r#"{{"status":"failure","code":"0004","message":"{}"}}"#, "m".repeat(5_000_000)).into_bytes().into();
    fake.answer("usage.summary", move |_| json(huge.clone()));
    let before = errors(&exporter.scrape().await, "usage.summary", "parse");
    exporter.wait_failed("usage.summary", "parse", before, Duration::from_secs(30)).await;

    // 900 KB: within the bound, so the message itself is cut to about 1 KiB.
    let big: Bytes =
        format!(r#"{{"status":"failure","code":"0004","message":"{}"}}"#, "M".repeat(900_000)).into_bytes().into();
    fake.answer("usage.summary", move |_| json(big.clone()));
    let s = exporter.wait_failed("usage.summary", "provider", 0.0, Duration::from_secs(30)).await;
    assert_good_values_kept(&s);
    // Let several polls fail with it: the store keeps it once, the page shows it bounded.
    wait_for(Duration::from_secs(30), "more failed polls", || async {
        (errors(&exporter.scrape().await, "usage.summary", "provider") >= 4.0).then_some(())
    })
    .await;
    let page = exporter.get("/").await;
    assert!(page.len() < 200_000, "status page of {} bytes", page.len());
    assert!(page.contains("bytes cut]"), "the page shows the message was cut");
    exporter.log_with(&["MMMM"]).await;
    let new_lines = &exporter.log_lines()[lines_before..];
    let longest = new_lines.iter().map(String::len).max().unwrap_or(0);
    assert!(longest < 4096, "a log line of {longest} bytes");
    assert!(new_lines.iter().any(|l| l.contains("MMMM") && l.contains("bytes cut]")), "the log shows the cut message");
    assert_rss(&exporter, "huge provider message");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_characters_in_a_provider_message_forge_no_log_line() {
    let _one = ONE_AT_A_TIME.lock().await;
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let exporter = Exporter::start(&dir, &config(&fake.url(), "1s", "5s"));
    exporter.wait_all_up().await;
    let forged = "2026-01-01T00:00:00.000000Z ERROR cdn_usage_exporter: FORGED-LINE";
    let message = format!("busy\n{forged}\r\n\u{1b}[2J\u{1b}[31mred\u{2028}FORGED-SEPARATOR");
    let body: Bytes =
        serde_json::json!({"status": "failure", "code": "0004", "message": message}).to_string().into_bytes().into();
    fake.answer("usage.summary", move |_| json(body.clone()));
    let s = exporter.wait_failed("usage.summary", "provider", 0.0, Duration::from_secs(30)).await;
    assert_good_values_kept(&s);
    let lines = wait_for(Duration::from_secs(10), "the failure logged", || async {
        let lines = exporter.log_lines();
        lines.iter().any(|l| l.contains("FORGED-LINE")).then_some(lines)
    })
    .await;
    for line in lines.iter().filter(|l| l.contains("FORGED")) {
        eprintln!("logged: {line}");
        assert!(line.contains("Poll failed"), "a line of its own: {line:?}");
        assert!(!line.starts_with("2026-01-01"), "forged line: {line:?}");
        assert!(line.contains("busy\\\\n2026-01-01") || line.contains("busy\\n2026-01-01"), "escaped: {line:?}");
    }
    let all = lines.join("\n");
    assert!(!all.contains('\u{1b}') && !all.contains('\r') && !all.contains('\u{2028}'), "raw controls in the log");
    let page = exporter.get("/").await;
    assert!(page.contains("FORGED-LINE") && !page.contains('\u{1b}') && !page.contains('\u{2028}'));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_to_another_host_is_not_followed() {
    let _one = ONE_AT_A_TIME.lock().await;
    // The other host: counts every connection it gets.
    let other = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other_addr = other.local_addr().unwrap();
    let reached = Arc::new(AtomicUsize::new(0));
    let count = reached.clone();
    let thief = tokio::spawn(async move {
        while let Ok((_socket, _)) = other.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
        }
    });
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let exporter = Exporter::start(&dir, &config(&fake.url(), "1s", "5s"));
    exporter.wait_all_up().await;

    let location = format!("http://user:pw@{other_addr}/steal/?api_key=LEAKED-KEY&signature=LEAKED-SIG#frag");
    fake.answer("usage.summary", move |_| {
        let mut headers = HeaderMap::new();
        headers.insert("location", location.parse().unwrap());
        let mut r = Response::new(Body::from("moved"));
        *r.status_mut() = StatusCode::TEMPORARY_REDIRECT;
        *r.headers_mut() = headers;
        r
    });
    let before = errors(&exporter.scrape().await, "usage.summary", "http");
    let s = exporter.wait_failed("usage.summary", "http", before, Duration::from_secs(30)).await;
    assert_good_values_kept(&s);
    // Several more polls, all redirected: still nothing reaches the other host.
    wait_for(Duration::from_secs(30), "more redirected polls", || async {
        (errors(&exporter.scrape().await, "usage.summary", "http") >= before + 3.0).then_some(())
    })
    .await;
    assert_eq!(reached.load(Ordering::SeqCst), 0, "a request followed the redirect to the other host");
    let code = exporter.scrape().await;
    assert!(
        code.get("cdn_exporter_upstream_requests_total", &[("code", "307")]).unwrap_or(0.0) >= 1.0,
        "the 307 answers are counted"
    );
    let page = exporter.get("/").await;
    let log = exporter.log_with(&["redirect to http://"]).await;
    for text in [&page, &log] {
        assert!(text.contains(&format!("redirect to http://{other_addr}/steal/")), "the location is named");
        for secret in ["LEAKED-KEY", "LEAKED-SIG", "pw@", "#frag"] {
            assert!(!text.contains(secret), "{secret} shown");
        }
    }
    thief.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_finite_cells_are_a_failed_poll_that_keeps_the_last_values() {
    let _one = ONE_AT_A_TIME.lock().await;
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let exporter = Exporter::start(&dir, &config(&fake.url(), "1s", "5s"));
    exporter.wait_all_up().await;
    let mut before = errors(&exporter.scrape().await, "usage.summary", "parse");
    for cells in [
        r#"["Edge Bandwidth:","NaN"],["Edge Requests:","Infinity"]"#,
        r#"["Edge Bandwidth:",{"v":"1e400","f":"lots"}],["Edge Requests:","5"]"#,
        r#"["Edge Bandwidth:",1e400]"#,
        r#"["Edge Bandwidth:","-5"]"#,
        r#"["Edge Bandwidth:","5"],["edge bandwidth","6"]"#,
    ] {
        let body: Bytes =
            format!(r#"{{"status":"success","data":{{"cols":[],"vals":[{cells}]}}}}"#).into_bytes().into();
        fake.answer("usage.summary", move |_| json(body.clone()));
        let s = exporter.wait_failed("usage.summary", "parse", before, Duration::from_secs(30)).await;
        assert_good_values_kept(&s);
        before = errors(&s, "usage.summary", "parse");
        fake.answer("usage.summary", |_| good_summary());
        wait_for(Duration::from_secs(30), "summary up again", || async {
            (exporter.scrape().await.get("cdn_exporter_poll_up", &[("endpoint", "usage.summary")]) == Some(1.0))
                .then_some(())
        })
        .await;
    }
    // Billing credits are money, and may be negative.
    fake.answer("usage.billing.live", |_| {
        json(r#"{"status":"success","data":{"cols":[],"vals":[["Credit:",0,-10,0,-10],["Totals:",0,-10,0,-10]]}}"#)
    });
    wait_for(Duration::from_secs(30), "a negative spend accepted", || async {
        (exporter.scrape().await.get("cdn_billing_estimated_month_spend_usd", &[]) == Some(-10.0)).then_some(())
    })
    .await;
    assert!(fake.requests.load(Ordering::SeqCst) > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdnetworks_answers_are_bounded_and_redirects_refused_too() {
    let _one = ONE_AT_A_TIME.lock().await;
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cdn = format!(
        r#"
[[cdnetworks]]
name = "cn"
base_url = "{}"
username = "ops"
api_key = "hostile-test-cdn-key"
granularity = "d"
interval = "1s"
timeout = "5s"
max_age = "1h"
domains = [{{ domain = "a.example.net", contract = "C-1" }}]
"#,
        fake.cdn_url()
    );
    let exporter = Exporter::start(&dir, &format!("{}{cdn}", config(&fake.url(), "1s", "5s")));
    let domain = ("domain", "a.example.net");
    wait_for(Duration::from_secs(30), "the domain's storage", || async {
        (exporter.scrape().await.get("cdn_storage_bytes", &[domain]) == Some(2135.0)).then_some(())
    })
    .await;

    // A 5 MB answer without a Content-Length: past domain_usage_bytes (4 MiB) while reading.
    let mut pieces = vec![Bytes::from_static(br#"{"code":"0","data":["#)];
    let point = Bytes::from_static(br#"{"timestamp":"2020-01-01","usage":"1"},"#);
    pieces.extend(std::iter::repeat_n(point, 5_000_000 / 40));
    pieces.push(Bytes::from_static(br#"{"timestamp":"2020-01-02","usage":"1"}]}"#));
    fake.answer("domain-usage", move |_| chunked(pieces.clone()));
    let s = exporter.wait_failed("domain-usage", "parse", 0.0, Duration::from_secs(30)).await;
    assert_eq!(s.get("cdn_storage_bytes", &[domain]), Some(2135.0), "last good value kept");
    exporter.log_with(&["answer_limits.domain_usage_bytes"]).await;

    // A redirect: failed with reason http, not followed.
    fake.answer("domain-usage", |_| {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::FOUND;
        r.headers_mut().insert("location", "http://127.0.0.1:9/elsewhere?token=LEAKED".parse().unwrap());
        r
    });
    let s = exporter.wait_failed("domain-usage", "http", 0.0, Duration::from_secs(30)).await;
    assert_eq!(s.get("cdn_storage_bytes", &[domain]), Some(2135.0), "last good value kept");
    let log = exporter.log_with(&["redirect to http://127.0.0.1:9/elsewhere"]).await;
    assert!(!log.contains("LEAKED"), "the query of the location is not logged");
    assert_rss(&exporter, "huge CDNetworks answer");
}
