//! The HTTP server against slow and hostile clients, each played by this test process on
//! loopback against the real binary: half-open connections past the open-files limit, huge
//! headers, a storm of wrong passwords; and the lifecycle API that is off unless asked for.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cdn_usage_exporter::simulator::{SimState, Simulator};

use crate::support::se_part;
use crate::support::{Binary, Launch, account_toml, loopback, sim_account, wait_for};

/// The binary serving `config`, with `args`, `env`, and an open-files limit if given (the
/// lifecycle variable of the test's own environment removed), and the address it serves on.
struct Exporter {
    bin: Binary,
    addr: String,
}

impl Exporter {
    fn start(config: &std::path::Path, args: &[&str], env: &[(&str, &str)], nofile: Option<u64>) -> Exporter {
        let launch = Launch {
            args: args.to_vec(),
            env: env.to_vec(),
            env_remove: vec!["CDN_EXPORTER_WEB_ENABLE_LIFECYCLE"],
            nofile,
        };
        let bin = Binary::start(config, launch);
        let addr = bin.addr();
        Exporter { bin, addr }
    }

    fn status_field(&self, field: &str) -> u64 {
        self.bin.status_field(field)
    }

    fn log(&self) -> String {
        self.bin.log()
    }
}

/// A configuration with one account on a simulator that answers.
async fn simulated(dir: &std::path::Path) -> (Simulator, std::path::PathBuf) {
    let sim =
        Simulator::start(loopback(), SimState::builder().with(se_part(vec![sim_account()])).build()).await.unwrap();
    let path = dir.join("config.toml");
    std::fs::write(&path, account_toml("main", &sim.scaleengine_url(), "1h")).unwrap();
    (sim, path)
}

/// Seconds a GET of `url` took, and its status.
async fn timed_get(client: &reqwest::Client, url: &str, user: Option<(&str, &str)>) -> (Duration, u16) {
    let started = Instant::now();
    let mut request = client.get(url).timeout(Duration::from_secs(20));
    if let Some((u, p)) = user {
        request = request.basic_auth(u, Some(p));
    }
    let status = request.send().await.map_or(0, |r| r.status().as_u16());
    (started.elapsed(), status)
}

#[tokio::test]
async fn half_open_connections_past_the_fd_limit_do_not_lock_out_a_scrape() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, config) = simulated(dir.path()).await;
    let exporter = Exporter::start(&config, &[], &[], Some(256));
    let started = wait_for(Duration::from_secs(10), "the cap logged at start", || async {
        let log = exporter.log();
        log.contains("HTTP connection limit").then_some(log)
    })
    .await;
    let cap: usize = started
        .split("max_connections=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .expect("the cap in the log");
    assert!(started.contains("open_files_limit=256") && cap <= 256 - 64, "the cap leaves descriptors free: {cap}");
    let addr = exporter.addr.clone();

    // 300 connections that never finish a request: half send a partial request line, half
    // send nothing at all.
    let opened = Instant::now();
    let mut held = Vec::new();
    for n in 0..300 {
        let mut s = TcpStream::connect(&addr).unwrap();
        if n % 2 == 0 {
            s.write_all(b"GET /metrics HT").unwrap();
        }
        held.push(s);
    }
    // And one keep-alive connection that finished a request and then idles.
    let mut idle = TcpStream::connect(&addr).unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut answer = Vec::new();
    while !answer.ends_with(b"ok\n") {
        let mut buf = [0u8; 1024];
        let n = idle.read(&mut buf).expect("the keep-alive request is answered");
        assert!(n > 0, "answered, not closed: {}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&buf[..n]);
    }
    held.push(idle);

    let client = reqwest::Client::new();
    let url = format!("http://{addr}/metrics");
    let mut slowest = Duration::ZERO;
    for _ in 0..3 {
        let (took, status) = timed_get(&client, &url, None).await;
        assert_eq!(status, 200, "a scrape gets in while 300 half-open connections are held");
        slowest = slowest.max(took);
    }
    println!("scrape with 300 half-open connections held (nofile 256): slowest of 3 took {slowest:?}");
    assert!(slowest < Duration::from_secs(2), "a scrape took {slowest:?}");

    // Every held connection (the idle keep-alive too) is closed by the server: EOF or a reset,
    // within 30 s of opening.
    let closed_after = tokio::task::spawn_blocking(move || {
        let mut last = Duration::ZERO;
        for mut s in held {
            let left = Duration::from_secs(30).saturating_sub(opened.elapsed());
            s.set_read_timeout(Some(left.max(Duration::from_millis(1)))).unwrap();
            let mut buf = [0u8; 4096];
            loop {
                match s.read(&mut buf) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                        panic!("a half-open connection was still open after {:?}", opened.elapsed())
                    }
                    Err(_) => break,
                }
            }
            last = last.max(opened.elapsed());
        }
        last
    })
    .await
    .unwrap();
    println!("all 300 half-open connections and an idle keep-alive one closed by the server after {closed_after:?}");
    assert!(closed_after < Duration::from_secs(30));
    let log = exporter.log();
    assert_eq!(log.matches("HTTP connection limit reached").count(), 1, "logged once, not per connection:\n{log}");
    let (_, status) = timed_get(&client, &url, None).await;
    assert_eq!(status, 200, "still serving");
    drop(exporter);
    sim.stop().await;
}

#[tokio::test]
async fn huge_headers_are_refused_without_memory_growth() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, config) = simulated(dir.path()).await;
    let exporter = Exporter::start(&config, &[], &[], None);
    let client = reqwest::Client::new();
    let url = format!("http://{}/metrics", exporter.addr);
    assert_eq!(timed_get(&client, &url, None).await.1, 200);
    let before = exporter.status_field("VmRSS:");

    // 200 clients at once, each with a 384 KB header.
    let started = Instant::now();
    let answers: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..200)
            .map(|_| {
                let addr = exporter.addr.clone();
                scope.spawn(move || {
                    let mut s = TcpStream::connect(&addr).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
                    s.set_write_timeout(Some(Duration::from_secs(15))).unwrap();
                    let mut request = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Padding: ".to_vec();
                    request.resize(request.len() + 384 * 1024, b'a');
                    request.extend_from_slice(b"\r\n\r\n");
                    // The server may close before reading it all: a write error is a refusal too.
                    let _ = s.write_all(&request);
                    let mut answer = Vec::new();
                    let _ = s.take(4096).read_to_end(&mut answer);
                    String::from_utf8_lossy(&answer).into_owned()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let took = started.elapsed();
    let after = exporter.status_field("VmHWM:");
    for a in &answers {
        assert!(a.is_empty() || a.starts_with("HTTP/1.1 431"), "refused, not served: {a:?}");
    }
    let refused_431 = answers.iter().filter(|a| a.starts_with("HTTP/1.1 431")).count();
    let growth_kib = after.saturating_sub(before);
    println!(
        "200 x 384 KB headers: all refused in {took:?} ({refused_431} with 431, the rest closed); \
         VmRSS before {before} KiB, VmHWM after {after} KiB (+{growth_kib} KiB)"
    );
    assert!(took < Duration::from_secs(10), "refusing took {took:?}");
    assert!(growth_kib < 20 * 1024, "peak RSS grew by {growth_kib} KiB");
    assert_eq!(timed_get(&client, &url, None).await.1, 200, "still serving");
    drop(exporter);
    sim.stop().await;
}

#[tokio::test]
async fn a_password_storm_on_one_user_does_not_lock_out_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, config) = simulated(dir.path()).await;
    // A realistic cost: what `htpasswd -B` uses by default.
    let cost = 10;
    let (scraper_hash, grafana_hash) =
        (bcrypt::hash("scraper pw", cost).unwrap(), bcrypt::hash("grafana pw", cost).unwrap());
    let web = dir.path().join("web.yml");
    std::fs::write(&web, format!("basic_auth_users:\n  prometheus: {scraper_hash}\n  grafana: {grafana_hash}\n"))
        .unwrap();
    let exporter = Exporter::start(&config, &["--web.config.file", web.to_str().unwrap()], &[], None);
    let url = format!("http://{}/metrics", exporter.addr);
    let client = reqwest::Client::new();
    let (first, status) = timed_get(&client, &url, Some(("prometheus", "scraper pw"))).await;
    assert_eq!(status, 200);
    println!("one bcrypt verify (cost {cost}) in the exporter, first login: {first:?}");

    // 100 clients sending wrong passwords for the scraper's user, each a new one, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let (attempts, too_many) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    // On a runtime of their own, so that the storm does not delay the measuring clients here.
    let storm_runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let storm: Vec<_> = (0..100)
        .map(|n| {
            let (stop, attempts, too_many, url) = (stop.clone(), attempts.clone(), too_many.clone(), url.clone());
            storm_runtime.spawn(async move {
                let client = reqwest::Client::new();
                let deadline = Instant::now() + Duration::from_secs(60);
                for k in 0..10_000 {
                    if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                        break;
                    }
                    let wrong = format!("wrong-{n}-{k}");
                    let (_, status) = timed_get(&client, &url, Some(("prometheus", &wrong))).await;
                    assert!(status != 200, "a wrong password got in");
                    attempts.fetch_add(1, Ordering::Relaxed);
                    if status == 429 {
                        too_many.fetch_add(1, Ordering::Relaxed);
                        // What a client honouring Retry-After would not do: try again at once.
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect();
    // Threads sampled during the storm.
    let peak_threads = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (stop, peak, pid) = (stop.clone(), peak_threads.clone(), exporter.bin.child.id());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
                    if let Some(n) = s.lines().find_map(|l| l.strip_prefix("Threads:")) {
                        peak.fetch_max(n.trim().parse().unwrap_or(0), Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    wait_for(Duration::from_secs(20), "429s once the user's short queue is full", || async {
        (too_many.load(Ordering::Relaxed) >= 100).then_some(())
    })
    .await;

    let scraper = reqwest::Client::new();
    let mut slowest_scrape = Duration::ZERO;
    for _ in 0..5 {
        let (took, status) = timed_get(&scraper, &url, Some(("prometheus", "scraper pw"))).await;
        assert_eq!(status, 200, "the logged-in scraper gets in during the storm");
        slowest_scrape = slowest_scrape.max(took);
    }
    let (grafana_first, status) = timed_get(&reqwest::Client::new(), &url, Some(("grafana", "grafana pw"))).await;
    assert_eq!(status, 200, "another user's first login succeeds during the storm");
    wait_for(Duration::from_secs(5), "a thread count sampled during the storm", || async {
        (peak_threads.load(Ordering::Relaxed) > 0).then_some(())
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for t in storm {
        t.await.unwrap();
    }
    sampler.await.unwrap();
    storm_runtime.shutdown_background();
    let peak = peak_threads.load(Ordering::Relaxed);
    println!(
        "storm: {} wrong-password attempts by 100 clients ({} answered 429); cached scraper slowest {slowest_scrape:?}; \
         grafana's first login {grafana_first:?}; peak threads {peak}",
        attempts.load(Ordering::Relaxed),
        too_many.load(Ordering::Relaxed)
    );
    assert!(slowest_scrape < Duration::from_secs(2), "the cached scraper took {slowest_scrape:?}");
    assert!(grafana_first < Duration::from_secs(3), "grafana's first login took {grafana_first:?}");
    assert!(peak > 0 && peak < 64, "{peak} threads");

    // Storm over: an unknown user costs what a known user's wrong password costs.
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for k in 0..5 {
        let (t, status) = timed_get(&client, &url, Some(("grafana", &format!("nope-{k}")))).await;
        assert_eq!(status, 401);
        known.push(t);
        let (t, status) = timed_get(&client, &url, Some((&format!("nobody-{k}"), "grafana pw"))).await;
        assert_eq!(status, 401);
        unknown.push(t);
    }
    let (known, unknown) = (median(known), median(unknown));
    println!("median rejection: known user, wrong password {known:?}; unknown user {unknown:?}");
    assert!(unknown * 3 >= known && known * 3 >= unknown, "known {known:?} vs unknown {unknown:?}");
    drop(exporter);
    sim.stop().await;
}

#[tokio::test]
async fn reload_over_http_only_with_the_lifecycle_flag() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, config) = simulated(dir.path()).await;
    let client = reqwest::Client::new();
    let reload = |addr: String| {
        let client = client.clone();
        async move {
            let r = client.post(format!("http://{addr}/-/reload")).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let off = Exporter::start(&config, &[], &[], None);
    assert_eq!(reload(off.addr.clone()).await, (403, "Lifecycle API is not enabled.".to_owned()));
    let put = client.put(format!("http://{}/-/reload", off.addr)).send().await.unwrap();
    assert_eq!(put.status(), 403);
    // SIGHUP still reloads.
    assert!(Command::new("kill").args(["-HUP", &off.bin.child.id().to_string()]).status().unwrap().success());
    wait_for(Duration::from_secs(10), "the SIGHUP reload", || async {
        off.log().contains("Configuration reloaded").then_some(())
    })
    .await;
    drop(off);
    let off = Exporter::start(&config, &[], &[("CDN_EXPORTER_WEB_ENABLE_LIFECYCLE", "false")], None);
    assert_eq!(reload(off.addr.clone()).await.0, 403, "the variable set to false keeps it off");
    drop(off);
    for (args, env) in [
        (&["--web.enable-lifecycle"][..], &[][..]),
        (&[][..], &[("CDN_EXPORTER_WEB_ENABLE_LIFECYCLE", "true")][..]),
        (&[][..], &[("CDN_EXPORTER_WEB_ENABLE_LIFECYCLE", "1")][..]),
    ] {
        let on = Exporter::start(&config, args, env, None);
        let (status, text) = reload(on.addr.clone()).await;
        assert_eq!(status, 200, "{args:?} {env:?}: {text}");
        assert!(text.starts_with("reloaded: "), "{text}");
    }
    sim.stop().await;
}
