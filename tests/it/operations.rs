//! Running it like a production exporter: reload, readiness, staleness, the cardinality guard,
//! retries, and a slow provider that delays nobody else.

use std::time::{Duration, Instant};

use cdn_usage_exporter::app::{self, ConfigSource, Running, WebOptions};
use cdn_usage_exporter::config::Config;
use cdn_usage_exporter::simulator::{Faults, SimState, Simulator};

use crate::support::se_part;
use crate::support::{SE_JOBS, Scrape, account_toml, loopback, sim_account, wait_for};

async fn start_file(path: &std::path::Path) -> Running {
    let config = Config::load(path).unwrap_or_else(|e| panic!("{e}"));
    let web = WebOptions { enable_lifecycle: true, ..WebOptions::default() };
    app::start_from(ConfigSource::File(path.to_owned()), &config, loopback(), &web).await.unwrap()
}

async fn scrape(r: &Running) -> Scrape {
    Scrape::parse(&reqwest::get(format!("http://{}/metrics", r.addr)).await.unwrap().text().await.unwrap())
}

async fn post(r: &Running, path: &str) -> (u16, String) {
    let response = reqwest::Client::new().post(format!("http://{}{path}", r.addr)).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn get_status(r: &Running, path: &str) -> u16 {
    reqwest::get(format!("http://{}{path}", r.addr)).await.unwrap().status().as_u16()
}

async fn wait_up(r: &Running, account: &str, jobs: usize) -> Scrape {
    wait_for(Duration::from_secs(10), &format!("{account} up"), || async {
        let s = scrape(r).await;
        let up = s.all("cdn_exporter_poll_up", &[("account", account)]);
        (up.len() == jobs && up.iter().all(|x| x.value == 1.0)).then_some(s)
    })
    .await
}

#[tokio::test]
async fn reload_adds_removes_keeps_and_refuses_a_bad_file() {
    let sim =
        Simulator::start(loopback(), SimState::builder().with(se_part(vec![sim_account()])).build()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let a = account_toml("a", &sim.scaleengine_url(), "1h");
    let b = account_toml("b", &sim.scaleengine_url(), "1h");
    std::fs::write(&path, &a).unwrap();
    let r = start_file(&path).await;
    wait_up(&r, "a", SE_JOBS).await;
    let key = cdn_usage_exporter::job::JobKey::account("scaleengine", "a", "usage.summary");
    let last_success = r.store.health(&key).unwrap().last_success;

    // Add b, keep a.
    std::fs::write(&path, format!("{a}\n{b}")).unwrap();
    let (status, text) = post(&r, "/-/reload").await;
    assert_eq!((status, text.as_str()), (200, "reloaded: 1 added, 0 removed, 0 changed, 1 unchanged\n"));
    wait_up(&r, "b", SE_JOBS).await;
    let kept = r.store.health(&key).unwrap();
    assert_eq!(kept.polls, 1, "a's job kept running untouched (interval 1h: no new poll)");
    assert_eq!(kept.last_success, last_success);

    // A bad file changes nothing.
    std::fs::write(&path, format!("{a}\n{b}\n[[scaleengine]]\nname = \"c\"\n")).unwrap();
    let (status, text) = post(&r, "/-/reload").await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("scaleengine[2].cdn: missing") && text.contains("scaleengine[2].api_key: missing"), "{text}");
    assert_eq!(scrape(&r).await.all("cdn_exporter_poll_up", &[]).len(), 2 * SE_JOBS, "both accounts still run");

    // Remove a: its series leave; b stays.
    std::fs::write(&path, &b).unwrap();
    let (status, text) = post(&r, "/-/reload").await;
    assert_eq!((status, text.as_str()), (200, "reloaded: 0 added, 1 removed, 0 changed, 1 unchanged\n"));
    let s = wait_for(Duration::from_secs(5), "a's series gone", || async {
        let s = scrape(&r).await;
        s.series.iter().all(|x| x.labels.get("account").map(String::as_str) != Some("a")).then_some(s)
    })
    .await;
    assert!(s.get("cdn_billing_budget_usd", &[("account", "b")]).is_some());

    // Change b (its budget): restarted with the new value.
    std::fs::write(&path, b.replace("budget_usd = 123.5", "budget_usd = 99")).unwrap();
    let (_, text) = post(&r, "/-/reload").await;
    assert_eq!(text, "reloaded: 0 added, 0 removed, 1 changed, 0 unchanged\n");
    wait_for(Duration::from_secs(5), "the new budget", || async {
        (scrape(&r).await.get("cdn_billing_budget_usd", &[("account", "b")])? == 99.0).then_some(())
    })
    .await;
    r.stop().await;
    sim.stop().await;
}

#[tokio::test]
async fn readyz_turns_200_once_every_job_has_polled() {
    let sim =
        Simulator::start(loopback(), SimState::builder().with(se_part(vec![sim_account()])).build()).await.unwrap();
    sim.state.set_faults(Faults { latency_ms: 1_500, ..Faults::default() });
    let config = Config::from_toml_str(&account_toml("main", &sim.scaleengine_url(), "1h"), "t").unwrap();
    let r = app::start(&config, loopback()).await.unwrap();
    assert_eq!(get_status(&r, "/readyz").await, 503);
    assert_eq!(get_status(&r, "/healthz").await, 200, "alive while not ready");
    wait_for(Duration::from_secs(15), "ready", || async { (get_status(&r, "/readyz").await == 200).then_some(()) })
        .await;
    r.stop().await;
    sim.stop().await;
}

#[tokio::test]
async fn samples_older_than_max_age_leave_and_come_back() {
    let sim =
        Simulator::start(loopback(), SimState::builder().with(se_part(vec![sim_account()])).build()).await.unwrap();
    let toml = account_toml("main", &sim.scaleengine_url(), "1s").replace("budget_usd", "max_age = \"3s\"\nbudget_usd");
    let config = Config::from_toml_str(&toml, "t").unwrap();
    let r = app::start(&config, loopback()).await.unwrap();
    wait_up(&r, "main", SE_JOBS).await;
    sim.state.set_faults(Faults { http_500: true, ..Faults::default() });
    let key = cdn_usage_exporter::job::JobKey::account("scaleengine", "main", "usage.billing.live");
    wait_for(Duration::from_secs(10), "stale samples removed", || async {
        scrape(&r).await.get("cdn_billing_estimated_month_spend_usd", &[]).is_none().then_some(())
    })
    .await;
    let removed_at = std::time::SystemTime::now();
    let last_success = r.store.health(&key).and_then(|h| h.last_success).expect("the job succeeded before");
    let kept_for = removed_at.duration_since(last_success).unwrap_or_default();
    assert!(kept_for >= Duration::from_secs(3), "kept until max_age (3 s), not dropped early: {kept_for:?}");
    // The poll that failed may still be retrying when max_age strikes; its failure follows.
    let s = wait_for(Duration::from_secs(10), "the failed poll recorded", || async {
        let s = scrape(&r).await;
        (s.get("cdn_exporter_poll_up", &[("endpoint", "usage.billing.live")]) == Some(0.0)).then_some(s)
    })
    .await;
    assert!(s.get("cdn_billing_estimated_month_spend_usd", &[]).is_none(), "still gone");
    assert!(s.get("cdn_exporter_last_success_timestamp_seconds", &[("endpoint", "usage.billing.live")]).is_some());
    assert_eq!(s.value("cdn_billing_budget_usd", &[]), 123.5, "configured values do not age");
    sim.state.set_faults(Faults::default());
    wait_up(&r, "main", SE_JOBS).await;
    assert!(scrape(&r).await.get("cdn_billing_estimated_month_spend_usd", &[]).is_some());
    r.stop().await;
    sim.stop().await;
}

#[tokio::test]
async fn the_cardinality_guard_drops_new_series_and_counts_them() {
    let sim =
        Simulator::start(loopback(), SimState::builder().with(se_part(vec![sim_account()])).build()).await.unwrap();
    let toml = format!("max_series = 40\n{}", account_toml("main", &sim.scaleengine_url(), "1h"));
    let config = Config::from_toml_str(&toml, "t").unwrap();
    let r = app::start(&config, loopback()).await.unwrap();
    let s = wait_up(&r, "main", SE_JOBS).await;
    let served = s.value("cdn_exporter_series", &[]);
    assert_eq!(served, 40.0);
    let provider_series =
        s.series.iter().filter(|x| x.name.starts_with("cdn_") && !x.name.starts_with("cdn_exporter_")).count();
    assert_eq!(provider_series, 40);
    // Without the guard this account serves 2 (budget, spend source) + 19 + 62 + 16 (last month)
    // + 2 + 18 + 2 (currency and rate) = 121 series.
    assert_eq!(s.value("cdn_exporter_series_dropped_total", &[]), 81.0);
    assert!(s.get("cdn_billing_budget_usd", &[]).is_some(), "configured series came first and stay");
    r.stop().await;
    sim.stop().await;
}

#[tokio::test]
async fn transient_failures_are_retried_and_auth_failures_are_not() {
    let sim =
        Simulator::start(loopback(), SimState::builder().with(se_part(vec![sim_account()])).build()).await.unwrap();
    sim.state.set_faults(Faults { flaky: 2, ..Faults::default() });
    let config = Config::from_toml_str(&account_toml("main", &sim.scaleengine_url(), "10s"), "t").unwrap();
    let r = app::start(&config, loopback()).await.unwrap();
    let s = wait_up(&r, "main", SE_JOBS).await;
    assert_eq!(s.value("cdn_exporter_upstream_requests_total", &[("code", "500")]), 2.0);
    let errors: f64 = s.all("cdn_exporter_poll_errors_total", &[]).iter().map(|x| x.value).sum();
    assert_eq!(errors, 0.0, "both 500s were retried away");
    r.stop().await;

    let wrong = account_toml("main", &sim.scaleengine_url(), "1h").replace(crate::support::SECRET, "wrong-secret");
    let r = app::start(&Config::from_toml_str(&wrong, "t").unwrap(), loopback()).await.unwrap();
    let s = wait_for(Duration::from_secs(10), "a failed poll per job", || async {
        let s = scrape(&r).await;
        let failed: f64 = s.all("cdn_exporter_poll_errors_total", &[("reason", "auth")]).iter().map(|x| x.value).sum();
        (failed == SE_JOBS as f64).then_some(s)
    })
    .await;
    // Nothing to wait for: a retry would be a request that should never come. Give one the time
    // it would take (the first backoff is at least 0.5 s) and check it did not.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let s2 = scrape(&r).await;
    assert_eq!(
        s2.value("cdn_exporter_upstream_requests_total", &[("code", "200")]),
        SE_JOBS as f64,
        "one request per poll: {s:?}"
    );
    r.stop().await;
    sim.stop().await;
}

#[tokio::test]
async fn a_slow_provider_delays_no_other_job_and_no_scrape() {
    let slow =
        Simulator::start(loopback(), SimState::builder().with(se_part(vec![sim_account()])).build()).await.unwrap();
    slow.state.set_faults(Faults { latency_ms: 30_000, ..Faults::default() });
    let fast =
        Simulator::start(loopback(), SimState::builder().with(se_part(vec![sim_account()])).build()).await.unwrap();
    let toml = format!(
        "{}\n{}",
        account_toml("slow", &slow.scaleengine_url(), "1h").replace("timeout = \"2s\"", "timeout = \"60s\""),
        account_toml("fast", &fast.scaleengine_url(), "1h")
    );
    let r = app::start(&Config::from_toml_str(&toml, "t").unwrap(), loopback()).await.unwrap();
    let started = Instant::now();
    let slowest = std::sync::Mutex::new(Duration::ZERO);
    wait_for(Duration::from_secs(10), "the fast account up", || async {
        let t = Instant::now();
        let s = scrape(&r).await;
        let mut slowest = slowest.lock().unwrap();
        *slowest = (*slowest).max(t.elapsed());
        let up = s.all("cdn_exporter_poll_up", &[("account", "fast")]);
        (up.len() == SE_JOBS && up.iter().all(|x| x.value == 1.0)).then_some(())
    })
    .await;
    let slowest_scrape = *slowest.lock().unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    let s = scrape(&r).await;
    assert!(s.all("cdn_exporter_poll_up", &[("account", "slow")]).iter().all(|x| x.value == 0.0), "slow still waiting");
    assert!(slowest_scrape < Duration::from_secs(1), "scrapes never wait on a provider: {slowest_scrape:?}");
    r.stop().await;
    fast.stop().await;
    slow.stop().await;
}

#[tokio::test]
async fn requests_in_flight_stay_under_the_caps() {
    let sim =
        Simulator::start(loopback(), SimState::builder().with(se_part(vec![sim_account()])).build()).await.unwrap();
    sim.state.set_faults(Faults { latency_ms: 200, ..Faults::default() });
    let mut toml = String::from("max_in_flight = 8\nmax_in_flight_per_provider = 3\n");
    for i in 0..6 {
        toml.push_str(&account_toml(&format!("a{i}"), &sim.scaleengine_url(), "1h"));
    }
    let r = app::start(&Config::from_toml_str(&toml, "t").unwrap(), loopback()).await.unwrap();
    wait_for(Duration::from_secs(30), "every job polled", || async { r.store.ready().then_some(()) }).await;
    // 24 jobs, 200 ms each: with at most 3 at once, the provider never saw more than 3.
    assert_eq!(sim.state.max_in_flight(), 3, "the per-provider cap binds (global 8)");
    r.stop().await;
    sim.stop().await;
}

#[tokio::test]
async fn json_logs_carry_provider_account_endpoint_and_reason_per_failed_poll() {
    use std::io::{BufRead as _, BufReader};
    let sim =
        Simulator::start(loopback(), SimState::builder().with(se_part(vec![sim_account()])).build()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, account_toml("main", &sim.scaleengine_url(), "1h").replace(crate::support::SECRET, "wrong"))
        .unwrap();
    let mut child = crate::support::Kill(
        std::process::Command::new(env!("CARGO_BIN_EXE_cdn-usage-exporter"))
            .args(["--config", path.to_str().unwrap(), "--web.listen-address", "127.0.0.1:0", "--log.format", "json"])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = child.0.stderr.take().unwrap();
    let lines = tokio::task::spawn_blocking(move || {
        let mut failed = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            if v["message"] == "Poll failed; keeping the last good values" {
                failed.push(v);
                if failed.len() == SE_JOBS {
                    break;
                }
            }
        }
        failed
    })
    .await
    .unwrap();
    assert_eq!(lines.len(), SE_JOBS, "one line per failed poll, one per job");
    for v in &lines {
        assert_eq!(v["level"], "WARN");
        assert_eq!(v["reason"], "auth");
        assert_eq!(v["span"]["provider"], "scaleengine", "{v}");
        assert_eq!(v["span"]["account"], "main", "{v}");
        assert!(v["span"]["endpoint"].as_str().is_some_and(|e| e.contains('.')), "{v}");
        assert!(v["error"].as_str().is_some_and(|e| e.contains("0003")), "{v}");
    }
    drop(child);
    sim.stop().await;
}

/// Every `cdn_` data series (not the exporter's own) of `account`, with its value.
fn data_series(s: &Scrape, account: &str) -> Vec<String> {
    let mut out: Vec<String> = s
        .series
        .iter()
        .filter(|x| x.name.starts_with("cdn_") && !x.name.starts_with("cdn_exporter_"))
        .filter(|x| x.labels.get("account").map(String::as_str) == Some(account))
        .map(|x| format!("{} {:?} {}", x.name, x.labels, x.value))
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn a_reload_that_changes_limits_while_a_provider_fails_keeps_every_series_and_health() {
    let sim =
        Simulator::start(loopback(), SimState::builder().with(se_part(vec![sim_account()])).build()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let a = account_toml("a", &sim.scaleengine_url(), "1s").replace("budget_usd", "max_age = \"1h\"\nbudget_usd");
    std::fs::write(&path, &a).unwrap();
    let r = start_file(&path).await;
    wait_up(&r, "a", SE_JOBS).await;

    // The provider fails; every job records a failure and keeps its last good values. A poll
    // that began before the fault may still succeed, with values a second newer: the last good
    // values are those once every job has failed, and further failures keep them.
    sim.state.set_faults(Faults { failure_code: Some("0003".into()), ..Faults::default() });
    let failing = wait_for(Duration::from_secs(20), "every job failing", || async {
        let s = scrape(&r).await;
        let up = s.all("cdn_exporter_poll_up", &[("account", "a")]);
        (up.len() == SE_JOBS && up.iter().all(|x| x.value == 0.0)).then_some(s)
    })
    .await;
    let good = data_series(&failing, "a");
    assert!(good.len() > 10, "{good:?}");
    let key = cdn_usage_exporter::job::JobKey::account("scaleengine", "a", "usage.summary");
    let first = r.store.health(&key).unwrap().polls;
    wait_for(Duration::from_secs(20), "two more failed polls", || async {
        (r.store.health(&key).unwrap().polls >= first + 2).then_some(())
    })
    .await;
    assert_eq!(data_series(&scrape(&r).await, "a"), good, "failures keep the last good values");
    let before = r.store.health(&key).unwrap();
    assert!(before.polls >= 2 && !before.up && before.last_error.is_some());

    for (n, limits) in [
        "max_series = 40000\nmax_in_flight = 3\nmax_in_flight_per_provider = 2\nretries = 0\n",
        "max_series = 45000\nmax_in_flight = 7\nretries = 1\n",
    ]
    .into_iter()
    .enumerate()
    {
        std::fs::write(&path, format!("{limits}{a}")).unwrap();
        let summary = r.reload().await.unwrap();
        assert_eq!(
            (summary.added, summary.removed, summary.changed, summary.unchanged),
            (0, 0, 0, 1),
            "reload {n}: the account is unchanged, counted once"
        );
        let s = scrape(&r).await;
        assert_eq!(data_series(&s, "a"), good, "reload {n}: every last good series kept");
        let after = r.store.health(&key).unwrap();
        assert!(after.polls >= before.polls, "reload {n}: health kept ({} < {})", after.polls, before.polls);
        assert_eq!(after.last_success, before.last_success, "reload {n}");
        assert!(!after.up && after.last_error.is_some(), "reload {n}: still failing, and it shows");
    }
    // The jobs kept running under the new limits: they poll on, and recover.
    sim.state.set_faults(Faults::default());
    wait_up(&r, "a", SE_JOBS).await;
    assert!(r.store.health(&key).unwrap().polls > before.polls);
    r.stop().await;
    sim.stop().await;
}

#[tokio::test]
async fn the_job_set_does_not_grow_across_reloads() {
    let sim =
        Simulator::start(loopback(), SimState::builder().with(se_part(vec![sim_account()])).build()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let a = account_toml("a", &sim.scaleengine_url(), "1h");
    std::fs::write(&path, &a).unwrap();
    let r = start_file(&path).await;
    assert_eq!(r.control.task_count().await, SE_JOBS, "one task per job");
    for n in 0..30 {
        // A changed account: its tasks are aborted and as many new ones start.
        std::fs::write(&path, a.replace("budget_usd = 123.5", &format!("budget_usd = {n}"))).unwrap();
        let summary = r.reload().await.unwrap();
        assert_eq!(summary.changed, 1);
        if n == 15 {
            // Aborted tasks end when next scheduled, and are reaped then: the set stays at the
            // running jobs instead of growing by a job set per reload.
            wait_for(Duration::from_secs(10), "aborted tasks reaped midway", || async {
                (r.control.task_count().await == SE_JOBS).then_some(())
            })
            .await;
        }
    }
    wait_for(Duration::from_secs(10), "aborted tasks reaped", || async {
        (r.control.task_count().await == SE_JOBS).then_some(())
    })
    .await;
    r.stop().await;
    sim.stop().await;
}
