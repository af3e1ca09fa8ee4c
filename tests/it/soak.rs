//! A bounded fault soak: many jobs against a simulator that injects random faults (failure
//! envelopes, 5xx, HTML, truncated JSON, delays, connection resets) while scrapes run all the
//! time. No panic, every scrape answered, memory flat, last good values kept until max_age and
//! gone after it, full recovery once the faults stop. `CDN_EXPORTER_SOAK_SECS` lengthens it.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cdn_usage_exporter::providers::cdnetworks::simulator::demo_accounts as demo_cdn_accounts;
use cdn_usage_exporter::simulator::{Faults, SimState, Simulator};

use crate::support::{Scrape, loopback, sim_account, wait_for};
use crate::support::{cdn_part, se_part};

const SE_ACCOUNTS: usize = 10;
const CDN_ACCOUNTS: usize = 3;
const JOBS: usize = SE_ACCOUNTS * crate::support::SE_JOBS + CDN_ACCOUNTS * 2;
const MAX_AGE: f64 = 6.0;

fn config(se_url: &str, cdn_url: &str) -> String {
    let mut toml = String::new();
    for i in 0..SE_ACCOUNTS {
        toml.push_str(
            &crate::support::account_toml(&format!("se{i}"), se_url, "1s")
                .replace("timeout = \"2s\"", "timeout = \"1s\"\nmax_age = \"6s\""),
        );
    }
    let cdn = &demo_cdn_accounts()[0];
    for i in 0..CDN_ACCOUNTS {
        toml.push_str(&format!(
            "[[cdnetworks]]\nname = \"cn{i}\"\nbase_url = \"{cdn_url}\"\nusername = \"{}\"\napi_key = \"{}\"\ninterval = \"1s\"\ntimeout = \"1s\"\nmax_age = \"6s\"\ntraffic = false\n\
             domains = [{{ domain = \"static.demo.example\", contract = \"CT-1001\" }}, {{ domain = \"video.demo.example\", contract = \"CT-1001\" }}]\n",
            cdn.username, cdn.api_key
        ));
    }
    toml
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// For each job, a series its last good poll leaves on /metrics.
fn evidence(s: &Scrape, job: &cdn_usage_exporter::job::JobKey) -> bool {
    let account = ("account", &*job.account);
    let any = |name: &str, extra: &[(&str, &str)]| {
        let mut labels = vec![account];
        labels.extend_from_slice(extra);
        !s.all(name, &labels).is_empty()
    };
    match (job.provider, job.endpoint) {
        ("scaleengine", "usage.summary") => any("cdn_origin_processes", &[]),
        ("scaleengine", "usage.billing.live") => any("cdn_billing_estimated_month_spend_usd", &[]),
        ("scaleengine", "usage.billing") => any("cdn_billing_last_month_spend_usd", &[]),
        ("scaleengine", "disk.usage") => any("cdn_storage_bytes", &[("provider", "scaleengine")]),
        ("scaleengine", "video.usage") => any("cdn_video_month_to_date_bytes", &[]),
        _ => any("cdn_storage_bytes", &[("domain", job.domain.as_deref().unwrap_or_default())]),
    }
}

fn jobs_of(s: &Scrape) -> Vec<(cdn_usage_exporter::job::JobKey, bool, Option<f64>)> {
    s.all("cdn_exporter_poll_up", &[])
        .into_iter()
        .map(|x| {
            let l = &x.labels;
            let endpoint: &'static str = match l["endpoint"].as_str() {
                "usage.summary" => "usage.summary",
                "usage.billing.live" => "usage.billing.live",
                "usage.billing" => "usage.billing",
                "disk.usage" => "disk.usage",
                "video.usage" => "video.usage",
                _ => "domain-usage",
            };
            let provider: &'static str = if l["provider"] == "scaleengine" { "scaleengine" } else { "cdnetworks" };
            let key = cdn_usage_exporter::job::JobKey {
                provider,
                account: l["account"].as_str().into(),
                endpoint,
                domain: l.get("domain").map(|d| d.as_str().into()),
            };
            let mut labels: Vec<(&str, &str)> = l.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            labels.retain(|(k, _)| *k != "reason");
            let last = s.get("cdn_exporter_last_success_timestamp_seconds", &labels);
            (key, x.value == 1.0, last)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_everywhere_scrapes_always_answered_memory_flat_full_recovery() {
    let soak =
        Duration::from_secs(std::env::var("CDN_EXPORTER_SOAK_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(20));
    let sim = Simulator::start(
        loopback(),
        SimState::builder().with(se_part(vec![sim_account()])).with(cdn_part(demo_cdn_accounts())).build(),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, config(&sim.scaleengine_url(), &sim.cdnetworks_url())).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cdn-usage-exporter"))
        .args(["--config", path.to_str().unwrap(), "--web.listen-address", "127.0.0.1:0", "--log.level", "warn"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let panics = Arc::new(Mutex::new(Vec::<String>::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let seen = panics.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(addr) = line.split("addr=").nth(1) {
                let _ = tx.send(addr.split_whitespace().next().unwrap_or_default().to_owned());
            }
            if line.contains("panicked") {
                seen.lock().unwrap().push(line);
            }
        }
    });
    // Info is off at --log.level warn: find the port from /proc instead of the log.
    let addr = rx.recv_timeout(Duration::from_millis(1)).ok();
    let addr = match addr {
        Some(a) => a,
        None => listening_port(pid).expect("the exporter listens"),
    };
    let url = format!("http://{addr}/metrics");
    let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().unwrap();
    let fetch = || async { http.get(&url).send().await.ok()?.text().await.ok() };

    let all_up = || async {
        let s = Scrape::parse(&fetch().await?);
        let jobs = jobs_of(&s);
        (jobs.len() == JOBS && jobs.iter().all(|(k, up, _)| *up && evidence(&s, k))).then_some(())
    };
    wait_for(Duration::from_secs(20), "every job up before the faults", all_up).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_before = rss_kib(pid);

    sim.state.set_faults(Faults { chaos: 0.4, ..Faults::default() });
    let started = Instant::now();
    let (mut scrapes, mut failed_polls_seen, mut kept, mut expired) = (0u64, 0u64, 0u64, 0u64);
    while started.elapsed() < soak {
        let text = fetch().await.unwrap_or_else(|| panic!("scrape {scrapes} not answered"));
        let s = Scrape::parse(&text);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
        for (key, up, last) in jobs_of(&s) {
            if up {
                continue;
            }
            failed_polls_seen += 1;
            let Some(last) = last else { continue };
            let age = now - last;
            if age < MAX_AGE - 1.5 {
                assert!(
                    evidence(&s, &key),
                    "{key}: last success {age:.1}s ago, within max_age, yet its values are gone"
                );
                kept += 1;
            } else if age > MAX_AGE + 2.5 {
                assert!(!evidence(&s, &key), "{key}: last success {age:.1}s ago, past max_age, yet its values remain");
                expired += 1;
            }
        }
        scrapes += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rss_during = rss_kib(pid);
    sim.state.set_faults(Faults::default());
    wait_for(Duration::from_secs(20), "every job back up after the faults", all_up).await;
    assert!(child.try_wait().unwrap().is_none(), "the exporter is still running");
    assert!(panics.lock().unwrap().is_empty(), "panics: {:?}", panics.lock().unwrap());
    eprintln!(
        "soak: {scrapes} scrapes in {:?}, {failed_polls_seen} failing-job observations ({kept} with values kept, {expired} expired), RSS {rss_before} KiB -> {rss_during} KiB",
        soak
    );
    assert!(scrapes > soak.as_secs() * 10, "scrapes kept coming: {scrapes}");
    assert!(kept > 0, "faults were injected and last good values were seen kept");
    assert!(rss_during < rss_before + rss_before / 2 + 8 * 1024, "memory flat: {rss_before} KiB -> {rss_during} KiB");
    let _ = child.kill();
    let _ = child.wait();
    sim.stop().await;
}

/// The loopback port a process listens on, from /proc/net/tcp and its fds.
fn listening_port(pid: u32) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .ok()?
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter_map(|l| l.to_str()?.strip_prefix("socket:[")?.strip_suffix(']').map(str::to_owned))
            .collect();
        let tcp = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
        for line in tcp.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local address, state 0A = LISTEN, inode
            if f.len() > 9 && f[3] == "0A" && inodes.iter().any(|i| i == f[9]) && f[1].starts_with("0100007F:") {
                let port = u16::from_str_radix(&f[1][9..], 16).ok()?;
                return Some(format!("127.0.0.1:{port}"));
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}
