//! The performance harness: `cargo bench --bench perf` (options after `--`: `--secs N` per wrk
//! run, `--reps N` alternations, `--sizes 1000,10000,100000`, `--formats openmetrics,text`,
//! `--skip-scrape`, `--skip-poll`, `--skip-backfill`, `--skip-minute`).
//!
//! Measures, in one run, alternating exporter and limit (A B A B …):
//! - `/metrics` of the real exporter binary against a static axum handler serving the identical
//!   bytes (the limit), plain and gzip: req/s with 32 connections, p50/p99 with one;
//! - RSS of the exporter idle and under 32 concurrent scrapes, and bytes per series;
//! - both formats: OpenMetrics (what Prometheus asks for) and text 0.0.4 (the default);
//! - the cost per series of encoding a poll (poll path), rendering the body and gzip (per
//!   change), deriving the text body (lazily), and of one job's poll among 100k series;
//! - a poll round over 1,000 accounts × 5 endpoints against the simulator with 100 ms added
//!   latency: how long, and how many requests were in flight at most;
//! - backfill of hourly storage for 10 domains over 6 months and 2 years: time and peak RSS.
//!
//! Needs `wrk` (Debian package `wrk`) for the scrape part. Only loopback traffic.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cdn_usage_exporter::families::FamilyId;
use cdn_usage_exporter::job::{JobKey, Sample};
use cdn_usage_exporter::providers::scaleengine::simulator::{SeAccount, VideoAppSpec};
use cdn_usage_exporter::simulator::{SimState, Simulator};
use cdn_usage_exporter::store::Store;

const KEY: &str = "BENCHKEY00000000000000000000000001";
const SECRET: &str = "bench-secret";

struct Args {
    secs: u64,
    reps: usize,
    sizes: Vec<usize>,
    scrape: bool,
    poll: bool,
    backfill: bool,
    /// Formats scraped: `true` for OpenMetrics.
    formats: Vec<bool>,
    /// Whether to wait a minute after the scrapes to read RSS again.
    minute: bool,
}

fn args() -> Args {
    let mut a = Args {
        secs: 3,
        reps: 5,
        sizes: vec![1_000, 10_000, 100_000],
        scrape: true,
        poll: true,
        backfill: true,
        formats: vec![true, false],
        minute: true,
    };
    let argv: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < argv.len() {
        match argv[i].as_str() {
            "--secs" => {
                i += 1;
                a.secs = argv[i].parse().expect("--secs N");
            }
            "--reps" => {
                i += 1;
                a.reps = argv[i].parse().expect("--reps N");
            }
            "--sizes" => {
                i += 1;
                a.sizes = argv[i].split(',').map(|s| s.parse().expect("--sizes 1000,10000")).collect();
            }
            "--formats" => {
                i += 1;
                a.formats = argv[i]
                    .split(',')
                    .map(|f| match f {
                        "openmetrics" => true,
                        "text" => false,
                        _ => panic!("--formats openmetrics,text"),
                    })
                    .collect();
            }
            "--skip-minute" => a.minute = false,
            "--skip-scrape" => a.scrape = false,
            "--skip-poll" => a.poll = false,
            "--skip-backfill" => a.backfill = false,
            // `cargo bench` passes --bench; ignore what we do not know.
            _ => {}
        }
        i += 1;
    }
    a
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() { f64::NAN } else { v[v.len() / 2] }
}

// ---------------------------------------------------------------- render cost

fn video_samples(n: usize) -> Vec<Sample> {
    (0..n / 2)
        .flat_map(|i| {
            let url = format!("sestore/vod/clip-{i:06}.mp4");
            [
                Sample::new(FamilyId::VideoMonthToDateBytes, 1_234_567_890.0 + i as f64)
                    .label("app", "vod")
                    .label("url", url.clone()),
                Sample::new(FamilyId::VideoMonthToDateRequests, 4_321.0 + i as f64)
                    .label("app", "vod")
                    .label("url", url),
            ]
        })
        .collect()
}

fn render_costs(sizes: &[usize]) {
    println!("\n## Render cost per series (median of 5)\n");
    println!(
        "Encode: prometheus-client encoding a poll's samples into fragments (poll path). Render: \
         concatenating fragments under headers, OpenMetrics (per change). Text: deriving text 0.0.4 \
         from it and compressing it (on the first text scrape after a change). Gzip: of the OpenMetrics body.\n"
    );
    println!(
        "| series | encode (poll path) | render body (per change) | gzip level 1 | total per change | text 0.0.4 + its gzip-1 (lazy) | gzip level 6 | body | gzip-1 body | gzip-6 body |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &n in sizes {
        let samples = video_samples(n);
        let (mut pre, mut render, mut gz1, mut text, mut gz6) = (vec![], vec![], vec![], vec![], vec![]);
        let (mut plain_len, mut gz1_len, mut gz6_len) = (0, 0, 0);
        for _ in 0..5 {
            let store = Store::new("bench", "bench");
            store.set_max_series(usize::MAX);
            let key = JobKey::account("scaleengine", "bench", "video.usage");
            let samples = samples.clone();
            let t = Instant::now();
            store.record_success(&key, samples, Duration::ZERO);
            pre.push(t.elapsed().as_nanos() as f64 / n as f64);
            // render_now renders and compresses at the shipped level; gzip is timed apart below.
            let t = Instant::now();
            let exposition = store.render_now();
            let both = t.elapsed();
            let t = Instant::now();
            let g1 = cdn_usage_exporter::exposition::gzip(&exposition);
            let g1_time = t.elapsed();
            render.push((both.saturating_sub(g1_time)).as_nanos() as f64 / n as f64);
            gz1.push(g1_time.as_nanos() as f64 / n as f64);
            let current = store.exposition();
            let t = Instant::now();
            let _ = current.text();
            text.push(t.elapsed().as_nanos() as f64 / n as f64);
            let t = Instant::now();
            let g6 = gzip_level(&exposition, 6);
            gz6.push(t.elapsed().as_nanos() as f64 / n as f64);
            (plain_len, gz1_len, gz6_len) = (exposition.len(), g1.len(), g6.len());
        }
        let (pre, render, gz1) = (median(pre), median(render), median(gz1));
        println!(
            "| {n} | {pre:.0} ns | {render:.0} ns | {gz1:.0} ns | {:.0} ns | {:.0} ns | {:.0} ns | {:.1} MiB | {:.2} MiB ({:.1}:1) | {:.2} MiB ({:.1}:1) |",
            pre + render + gz1,
            median(text),
            median(gz6),
            plain_len as f64 / 1048576.0,
            gz1_len as f64 / 1048576.0,
            plain_len as f64 / gz1_len as f64,
            gz6_len as f64 / 1048576.0,
            plain_len as f64 / gz6_len as f64
        );
    }
    incremental(sizes.iter().copied().max().unwrap_or(100_000));
}

/// A poll of one job among many: what it costs, against encoding every job again.
fn incremental(n: usize) {
    const PER_JOB: usize = 2_000;
    let jobs = (n / PER_JOB).max(2);
    let total = jobs * PER_JOB;
    println!("\n### One job's poll among {total} series ({jobs} jobs of {PER_JOB} series; median of 5)\n");
    let store = Store::new("bench", "bench");
    store.set_max_series(usize::MAX);
    let keys: Vec<JobKey> =
        (0..jobs).map(|j| JobKey::account("scaleengine", format!("acct{j:04}"), "video.usage")).collect();
    let samples = video_samples(PER_JOB);
    let t = Instant::now();
    for key in &keys {
        store.record_success(key, samples.clone(), Duration::ZERO);
    }
    let full = t.elapsed().as_secs_f64() * 1e3;
    store.render_now();
    let (mut encode, mut render) = (vec![], vec![]);
    for round in 0..5 {
        let changed: Vec<Sample> = samples
            .iter()
            .cloned()
            .map(|mut s| {
                s.value += round as f64 + 1.0;
                s
            })
            .collect();
        let t = Instant::now();
        store.record_success(&keys[round % jobs], changed, Duration::ZERO);
        encode.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        store.render_now();
        render.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let (encode, render) = (median(encode), median(render));
    let per = |ms: f64| ms * 1e6 / total as f64;
    println!("| work | time | per series of the body |");
    println!("|---|---:|---:|");
    println!("| encode the polled job ({PER_JOB} series) | {encode:.2} ms | {:.0} ns |", per(encode));
    println!("| render: that job's health, concatenation, gzip-1 | {render:.2} ms | {:.0} ns |", per(render));
    println!("| **one poll in all** | **{:.2} ms** | **{:.0} ns** |", encode + render, per(encode + render));
    println!("| for comparison: encoding every job again | {full:.2} ms (before the render) | {:.0} ns |", per(full));
}

fn gzip_level(data: &[u8], level: u32) -> Vec<u8> {
    use std::io::Write as _;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

// ---------------------------------------------------------------- scrape

/// `--serve-static PLAIN GZIP PORT`: the limit, the same bytes from a static axum handler.
/// What the RSS sampler watches: nothing, the exporter, or the limit.
const SAMPLE_NONE: u8 = 0;
const SAMPLE_EXPORTER: u8 = 1;
const SAMPLE_LIMIT: u8 = 2;

/// Prometheus 3's default `Accept` (scrape/scrape.go `acceptHeader`, config.DefaultScrapeProtocols).
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";

/// The limit: the exporter's four bodies (text and OpenMetrics, plain and gzip) served as
/// static bytes, chosen as cheaply as can be (a prefix test on `Accept`).
fn serve_static(dir: &str, port: u16) {
    let read = |name: &str| Bytes::from(std::fs::read(std::path::Path::new(dir).join(name)).unwrap());
    let bodies = Arc::new([read("text"), read("text.gz"), read("om"), read("om.gz")]);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        use axum::http::{HeaderMap, header};
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move |headers: HeaderMap| {
                let bodies = bodies.clone();
                async move {
                    let om = headers
                        .get(header::ACCEPT)
                        .and_then(|v| v.to_str().ok())
                        .is_some_and(|v| v.starts_with("application/openmetrics-text"));
                    let ct = if om {
                        "application/openmetrics-text; version=1.0.0; charset=utf-8"
                    } else {
                        "text/plain; version=0.0.4; charset=utf-8"
                    };
                    let (plain, gz) = if om { (&bodies[2], &bodies[3]) } else { (&bodies[0], &bodies[1]) };
                    let (plain, gz) = (plain.clone(), gz.clone());
                    let gzip = headers
                        .get(header::ACCEPT_ENCODING)
                        .and_then(|v| v.to_str().ok())
                        .is_some_and(|v| v.contains("gzip"));
                    if gzip {
                        ([(header::CONTENT_TYPE, ct), (header::CONTENT_ENCODING, "gzip")], gz)
                    } else {
                        ([(header::CONTENT_TYPE, ct), (header::VARY, "Accept, Accept-Encoding")], plain)
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        // As the exporter does (src/web.rs).
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, app).await.unwrap();
    });
}

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

struct Wrk {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn wrk(url: &str, connections: u32, secs: u64, gzip: bool, openmetrics: bool) -> Wrk {
    let threads = if connections == 1 { "1" } else { "2" };
    let mut cmd = Command::new("wrk");
    cmd.args(["-t", threads, "-c", &connections.to_string(), "-d", &format!("{secs}s"), "--latency"]);
    if gzip {
        cmd.args(["-H", "Accept-Encoding: gzip"]);
    }
    if openmetrics {
        cmd.args(["-H", &format!("Accept: {PROMETHEUS_ACCEPT}")]);
    }
    let out = cmd.arg(url).output().expect("wrk runs (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout);
    let latency = |pct: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(pct).map(str::trim))
            .map(|v| {
                let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len()));
                let n: f64 = num.parse().unwrap_or(f64::NAN);
                match unit {
                    "us" => n / 1000.0,
                    "ms" => n,
                    "s" => n * 1000.0,
                    _ => f64::NAN,
                }
            })
            .unwrap_or(f64::NAN)
    };
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(f64::NAN);
    Wrk { rps, p50_ms: latency("50%"), p99_ms: latency("99%") }
}

fn config(accounts: usize, top_n: usize, url: &str) -> String {
    let mut toml = String::from("max_series = 1000000\n");
    for i in 0..accounts {
        toml.push_str(&format!(
            "[[scaleengine]]\nname = \"acct{i:03}\"\ncdn = 4242\napi_key = \"{KEY}\"\napi_secret = \"{SECRET}\"\nbase_url = \"{url}\"\n\
             summary_interval = \"1h\"\nbilling_interval = \"1h\"\ndisk_interval = \"1h\"\nvideo_interval = \"1h\"\n\
             video_apps = [\"vod\"]\nvideo_top_n = {top_n}\n"
        ));
    }
    toml
}

fn sim_account(urls: usize) -> SeAccount {
    SeAccount {
        cdn: 4242,
        api_key: KEY.into(),
        api_secret: SECRET.into(),
        monthly_edge_gb: 5_000.0,
        users: vec![],
        video_apps: vec![VideoAppSpec { name: "vod".into(), urls }],
    }
}

async fn fetch(url: &str, gzip: bool, openmetrics: bool) -> Bytes {
    let mut req = reqwest::Client::new().get(url);
    if gzip {
        req = req.header("accept-encoding", "gzip");
    }
    if openmetrics {
        req = req.header("accept", PROMETHEUS_ACCEPT);
    }
    req.send().await.unwrap().bytes().await.unwrap()
}

fn series_of(body: &[u8]) -> usize {
    std::str::from_utf8(body)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("cdn_exporter_series "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn scrape_bench(n: usize, a: &Args, baseline_rss: &mut Option<(usize, u64, u64)>) {
    // Accounts × (2 × top_n video series + ~85 others) ≈ n.
    let (accounts, top_n) = match n {
        n if n <= 2_000 => (1, (n.saturating_sub(85)) / 2),
        n => (n / 2_000, 1_000 - 43),
    };
    let sim = Simulator::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        SimState::builder()
            .with(cdn_usage_exporter::providers::scaleengine::simulator::part(vec![sim_account(1_000)]))
            .build(),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bench.toml");
    std::fs::write(&cfg, config(accounts, top_n, &sim.scaleengine_url())).unwrap();
    let port = free_port();
    let exporter = Kill(
        Command::new(env!("CARGO_BIN_EXE_cdn-usage-exporter"))
            .args([
                "--config",
                cfg.to_str().unwrap(),
                "--web.listen-address",
                &format!("127.0.0.1:{port}"),
                "--log.level",
                "error",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let url = format!("http://127.0.0.1:{port}/metrics");
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut series = 0;
    let mut last = 0;
    // Wait until every account's first round is in and the count is stable.
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        // Only OpenMetrics until the idle RSS is read, as when only Prometheus scrapes.
        if let Ok(r) = reqwest::Client::new().get(&url).header("accept", PROMETHEUS_ACCEPT).send().await {
            series = series_of(&r.bytes().await.unwrap_or_default());
            if series > 0 && series == last && series >= n * 9 / 10 {
                break;
            }
            last = series;
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pid = exporter.0.id();
    let rss_idle_om = rss_kib(pid);
    let om = fetch(&url, false, true).await;
    let om_gz = fetch(&url, true, true).await;
    // The first text scrape derives the text body; from here on both are cached.
    let plain = fetch(&url, false, false).await;
    let gz = fetch(&url, true, false).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_idle = rss_kib(pid);
    for (name, body) in [("text", &plain), ("text.gz", &gz), ("om", &om), ("om.gz", &om_gz)] {
        std::fs::write(dir.path().join(name), body).unwrap();
    }
    let static_port = free_port();
    let _static = Kill(
        Command::new(std::env::current_exe().unwrap())
            .args(["--serve-static", dir.path().to_str().unwrap(), &static_port.to_string()])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let static_url = format!("http://127.0.0.1:{static_port}/metrics");
    while reqwest::get(&static_url).await.is_err() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Memory under load: sampled every 100 ms during the 32-connection runs, the exporter's and
    // the limit's, so that what hyper and tokio cost per connection is seen beside ours.
    let static_pid = _static.0.id();
    let static_idle = rss_kib(static_pid);
    let max_rss = Arc::new([AtomicU64::new(rss_idle), AtomicU64::new(static_idle)]);
    let sampling = Arc::new(AtomicU8::new(SAMPLE_NONE));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (max_rss, sampling, stop) = (max_rss.clone(), sampling.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match sampling.load(Ordering::Relaxed) {
                    SAMPLE_EXPORTER => max_rss[0].fetch_max(rss_kib(pid), Ordering::Relaxed),
                    SAMPLE_LIMIT => max_rss[1].fetch_max(rss_kib(static_pid), Ordering::Relaxed),
                    _ => 0,
                };
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    println!(
        "\n### {series} series ({accounts} accounts), text body {:.2} MiB plain, {:.2} MiB gzip; OpenMetrics {:.2} / {:.2} MiB\n",
        plain.len() as f64 / 1048576.0,
        gz.len() as f64 / 1048576.0,
        om.len() as f64 / 1048576.0,
        om_gz.len() as f64 / 1048576.0
    );
    println!(
        "| format | encoding | exporter req/s (c32) | limit req/s | ratio | exporter p50 / p99 (c1) | limit p50 / p99 | p50 ratio | p99 ratio |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for (openmetrics, gzip) in a.formats.iter().flat_map(|&om| [(om, false), (om, true)]) {
        let (mut e_rps, mut s_rps, mut e50, mut s50, mut e99, mut s99) =
            (vec![], vec![], vec![], vec![], vec![], vec![]);
        for _ in 0..a.reps {
            sampling.store(SAMPLE_EXPORTER, Ordering::Relaxed);
            let e = wrk(&url, 32, a.secs, gzip, openmetrics);
            sampling.store(SAMPLE_LIMIT, Ordering::Relaxed);
            let s = wrk(&static_url, 32, a.secs, gzip, openmetrics);
            sampling.store(SAMPLE_NONE, Ordering::Relaxed);
            e_rps.push(e.rps);
            s_rps.push(s.rps);
            let e = wrk(&url, 1, a.secs, gzip, openmetrics);
            let s = wrk(&static_url, 1, a.secs, gzip, openmetrics);
            e50.push(e.p50_ms);
            e99.push(e.p99_ms);
            s50.push(s.p50_ms);
            s99.push(s.p99_ms);
        }
        let (er, sr, e50, s50, e99, s99) =
            (median(e_rps), median(s_rps), median(e50), median(s50), median(e99), median(s99));
        println!(
            "| {} | {} | {er:.0} | {sr:.0} | {:.2} | {e50:.2} / {e99:.2} ms | {s50:.2} / {s99:.2} ms | {:.2} | {:.2} |",
            if openmetrics { "OpenMetrics" } else { "text 0.0.4" },
            if gzip { "gzip" } else { "plain" },
            er / sr,
            e50 / s50,
            e99 / s99
        );
    }
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    let rss_load = max_rss[0].load(Ordering::Relaxed);
    let static_load = max_rss[1].load(Ordering::Relaxed);
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!(
        "\nRSS idle {:.1} MiB, under 32 concurrent scrapes at most {:.1} MiB (+{:.1} %, +{:.2} MiB). \
         The limit: idle {:.1} MiB, at most {:.1} MiB (+{:.1} %, +{:.2} MiB).",
        mib(rss_idle),
        mib(rss_load),
        (rss_load as f64 / rss_idle as f64 - 1.0) * 100.0,
        mib(rss_load.saturating_sub(rss_idle)),
        mib(static_idle),
        mib(static_load),
        (static_load as f64 / static_idle as f64 - 1.0) * 100.0,
        mib(static_load.saturating_sub(static_idle)),
    );
    // The renderer hands freed memory back at least once a minute even when nothing renders.
    if a.minute {
        std::thread::sleep(Duration::from_secs(61));
        println!("A minute after the last scrape: RSS {:.1} MiB.", mib(rss_kib(pid)));
    }
    println!(
        "Idle RSS when only OpenMetrics had been scraped: {:.1} MiB; after text scrapes too: {:.1} MiB.",
        mib(rss_idle_om),
        mib(rss_idle)
    );
    match baseline_rss {
        None => *baseline_rss = Some((series, rss_idle_om, rss_idle)),
        Some((s0, r0_om, r0)) if series > *s0 => {
            let extra = series - *s0;
            let per = |now: u64, base: u64| (now as f64 - base as f64) * 1024.0 / extra as f64;
            println!(
                "Memory per series against the {s0}-series run, cached bodies included: {:.0} bytes when only \
                 OpenMetrics is scraped ((RSS {rss_idle_om} KiB − {r0_om} KiB) ÷ {extra} series), {:.0} bytes when \
                 both formats are ((RSS {rss_idle} KiB − {r0} KiB) ÷ {extra} series).",
                per(rss_idle_om, *r0_om),
                per(rss_idle, *r0),
            );
        }
        _ => {}
    }
    sim.stop().await;
}

// ---------------------------------------------------------------- poll round

async fn poll_round() {
    const ACCOUNTS: usize = 1_000;
    const LIMIT: usize = 32;
    let mut account = sim_account(5);
    account.video_apps = vec![VideoAppSpec { name: "vod".into(), urls: 5 }];
    let sim = Simulator::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        SimState::builder().with(cdn_usage_exporter::providers::scaleengine::simulator::part(vec![account])).build(),
    )
    .await
    .unwrap();
    sim.state.set_faults(cdn_usage_exporter::simulator::Faults { latency_ms: 100, ..Default::default() });
    let toml = format!(
        "max_in_flight = {LIMIT}\nmax_in_flight_per_provider = {LIMIT}\n{}",
        config(ACCOUNTS, 5, &sim.scaleengine_url())
            .replace("max_series = 1000000\n", "")
            .replace("[[scaleengine]]\n", "[[scaleengine]]\ntimeout = \"120s\"\n")
    );
    let config = cdn_usage_exporter::config::Config::from_toml_str(&toml, "bench").unwrap();
    let started = Instant::now();
    let running = cdn_usage_exporter::app::start(&config, SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
    while !running.store.ready() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed();
    let requests = sim.state.requests().len();
    let jobs = running.store.jobs();
    let failed = jobs.iter().filter(|(_, h)| !h.up).count();
    let endpoints = jobs.len() / ACCOUNTS;
    let bound = requests as f64 / LIMIT as f64 * 0.1;
    println!(
        "\n## Poll round: {ACCOUNTS} accounts × {endpoints} endpoints, 100 ms upstream latency, concurrency limit {LIMIT}\n"
    );
    println!("| requests | took | ideal (requests ÷ limit × 100 ms) | ratio | max in flight | failed jobs |");
    println!("|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {requests} | {:.2} s | {bound:.2} s | {:.2} | {} | {failed} |",
        took.as_secs_f64(),
        took.as_secs_f64() / bound,
        sim.state.max_in_flight()
    );
    running.stop().await;
    sim.stop().await;
}

// ---------------------------------------------------------------- backfill

/// Runs the backfill binary over `days` of hourly storage for 10 domains; returns (seconds,
/// peak RSS in KiB, samples written).
async fn backfill_run(sim_url: &str, days: i64) -> (f64, u64, usize) {
    let dir = tempfile::tempdir().unwrap();
    let domains: Vec<String> =
        (0..10).map(|i| format!("{{ domain = \"d{i}.example.net\", contract = \"C-1\" }}")).collect();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[cdnetworks]]\nname = \"bench\"\nbase_url = \"{sim_url}\"\nusername = \"u\"\napi_key = \"k\"\ndomains = [{}]\n",
            domains.join(", ")
        ),
    )
    .unwrap();
    let today = (cdn_usage_exporter::timeutil::now_unix() + 9 * 3600).div_euclid(86_400);
    let out = dir.path().join("h.om");
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cdn-usage-exporter"))
        .args(["backfill", "--config", cfg.to_str().unwrap(), "--log.level", "error"])
        .args([
            "--from",
            &cdn_usage_exporter::timeutil::format_ymd(today - days),
            "--to",
            &cdn_usage_exporter::timeutil::format_ymd(today - 1),
        ])
        .args(["--out", out.to_str().unwrap()])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut peak = 0;
    loop {
        // VmHWM: the peak resident set so far; read until the process exits.
        let hwm = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0);
        peak = peak.max(hwm);
        if child.try_wait().unwrap().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed().as_secs_f64();
    let samples = std::fs::read_to_string(&out).unwrap_or_default().lines().filter(|l| !l.starts_with('#')).count();
    (took, peak, samples)
}

async fn backfill_bench() {
    let cdn = cdn_usage_exporter::providers::cdnetworks::simulator::CdnAccount {
        username: "u".into(),
        api_key: "k".into(),
        access_key: "a".into(),
        secret_key: "s".into(),
        domains: (0..10).map(|i| (format!("d{i}.example.net"), "C-1".into(), 1e12 + f64::from(i) * 1e9)).collect(),
    };
    let sim = Simulator::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        SimState::builder().with(cdn_usage_exporter::providers::cdnetworks::simulator::part(vec![cdn])).build(),
    )
    .await
    .unwrap();
    println!("\n## Backfill: hourly storage of 10 CDNetworks domains against the simulator\n");
    println!("| range | requests | samples | took | peak RSS |");
    println!("|---|---:|---:|---:|---:|");
    for days in [180, 730] {
        let before = sim.state.cdn_requests().len();
        let (took, peak, samples) = backfill_run(&sim.cdnetworks_url(), days).await;
        let requests = sim.state.cdn_requests().len() - before;
        println!("| {days} days | {requests} | {samples} | {took:.2} s | {:.1} MiB |", peak as f64 / 1024.0);
    }
    sim.stop().await;
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    if let Some(i) = argv.iter().position(|a| a == "--serve-static") {
        serve_static(&argv[i + 1], argv[i + 2].parse().unwrap());
        return;
    }
    let a = args();
    println!("# cdn-usage-exporter benchmarks");
    println!(
        "\nmachine: {} cores, {}; wrk {}s runs, medians of {} alternations (exporter, limit, exporter, limit, …)",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        cpu_model(),
        a.secs,
        a.reps
    );
    render_costs(&a.sizes);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    if a.scrape {
        if Command::new("wrk").arg("--version").output().is_err() {
            println!("\nwrk is not installed (apt-get install wrk): scrape benchmarks skipped");
        } else {
            println!("\n## /metrics against the limit (a static axum handler serving the same bytes)");
            let mut baseline = None;
            for &n in &a.sizes {
                rt.block_on(scrape_bench(n, &a, &mut baseline));
            }
        }
    }
    if a.poll {
        rt.block_on(poll_round());
    }
    if a.backfill {
        rt.block_on(backfill_bench());
    }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned()))
        })
        .unwrap_or_else(|| "unknown CPU".into())
}
