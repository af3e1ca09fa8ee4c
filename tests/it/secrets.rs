//! Known credentials go through success, failure, reload (HTTP and SIGHUP), a refused reload
//! and debug logging; none of them may appear in a log line, /metrics, the status page or a
//! reload answer.

use std::time::Duration;

use cdn_usage_exporter::providers::cdnetworks::simulator::CdnAccount;
use cdn_usage_exporter::providers::scaleengine::simulator::{SeAccount, VideoAppSpec};
use cdn_usage_exporter::simulator::{Faults, SimState, Simulator};

use crate::support::{Binary, Launch, Scrape, loopback, wait_for};
use crate::support::{cdn_part, se_part};

const SE_KEY: &str = "SECRETsekey4b1d";
const SE_SECRET: &str = "SECRET-se-secret-9f2a";
const CDN_KEY: &str = "SECRET-cdn-key-77c3";
const AK: &str = "SECRETak1x";
const SK: &str = "SECRET-sk-2y";
const ALL: [&str; 5] = [SE_KEY, SE_SECRET, CDN_KEY, AK, SK];

fn config(se_url: &str, cdn_url: &str, secret_file: &std::path::Path, budget: u32) -> String {
    format!(
        r#"
[[scaleengine]]
name = "se"
cdn = 7
api_key = "{SE_KEY}"
api_secret_file = "{}"
base_url = "{se_url}"
summary_interval = "1s"
billing_interval = "1s"
disk_interval = "1s"
timeout = "2s"
budget_usd = {budget}

[[cdnetworks]]
name = "cn-key"
base_url = "{cdn_url}"
username = "ops"
api_key_env = "TEST_CDN_API_KEY"
interval = "1s"
timeout = "2s"
domains = [{{ domain = "a.example.net", contract = "C-1" }}]

[[cdnetworks]]
name = "cn-aksk"
base_url = "{cdn_url}"
access_key = "{AK}"
secret_key = "{SK}"
interval = "1s"
timeout = "2s"
domains = [{{ domain = "a.example.net", contract = "C-1" }}]
"#,
        secret_file.display()
    )
}

/// The binary with debug logging and the lifecycle API, one CDNetworks key from the environment.
fn start(config_path: &std::path::Path) -> Binary {
    let launch = Launch {
        args: vec!["--log.level", "debug", "--web.enable-lifecycle"],
        env: vec![("TEST_CDN_API_KEY", CDN_KEY)],
        ..Launch::default()
    };
    Binary::start(config_path, launch)
}

#[tokio::test]
async fn no_secret_reaches_logs_metrics_pages_or_reload_answers() {
    let sim = Simulator::start(
        loopback(),
        SimState::builder()
            .with(se_part(vec![SeAccount {
                cdn: 7,
                api_key: SE_KEY.into(),
                api_secret: SE_SECRET.into(),
                monthly_edge_gb: 10.0,
                users: vec![],
                video_apps: vec![VideoAppSpec { name: "live".into(), urls: 2 }],
            }]))
            .with(cdn_part(vec![CdnAccount {
                username: "ops".into(),
                api_key: CDN_KEY.into(),
                access_key: AK.into(),
                secret_key: SK.into(),
                domains: vec![("a.example.net".into(), "C-1".into(), 1e9)],
            }]))
            .build(),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("se_secret");
    std::fs::write(&secret_file, format!("{SE_SECRET}\n")).unwrap();
    let path = dir.path().join("config.toml");
    let (se_url, cdn_url) = (sim.scaleengine_url(), sim.cdnetworks_url());
    std::fs::write(&path, config(&se_url, &cdn_url, &secret_file, 100)).unwrap();
    let exporter = start(&path);
    let http = reqwest::Client::new();
    let base = format!("http://{}", exporter.addr());
    let mut seen = Vec::new();
    let scrape = || async { http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap() };

    // Success.
    let body = wait_for(Duration::from_secs(15), "every job up", || async {
        let text = scrape().await;
        let s = Scrape::parse(&text);
        let up = s.all("cdn_exporter_poll_up", &[]);
        (up.len() == crate::support::SE_JOBS + 3 && up.iter().all(|x| x.value == 1.0)).then_some(text)
    })
    .await;
    seen.push(body);
    seen.push(http.get(format!("{base}/")).send().await.unwrap().text().await.unwrap());

    // Failures of every kind the providers can give.
    for faults in [
        Faults { failure_code: Some("0003".into()), ..Faults::default() },
        Faults { failure_code: Some("24102500".into()), http_500: false, ..Faults::default() },
        Faults { http_500: true, ..Faults::default() },
    ] {
        let errors = |text: &str| -> f64 {
            Scrape::parse(text).all("cdn_exporter_poll_errors_total", &[]).iter().map(|x| x.value).sum()
        };
        let before = errors(&scrape().await);
        sim.state.set_faults(faults);
        // Failed polls under this fault, then what the exporter shows of them.
        wait_for(Duration::from_secs(15), "polls failing under the fault", || async {
            (errors(&scrape().await) >= before + 3.0).then_some(())
        })
        .await;
        seen.push(scrape().await);
        seen.push(http.get(format!("{base}/")).send().await.unwrap().text().await.unwrap());
    }
    sim.state.set_faults(Faults::default());

    // Reload over HTTP, by SIGHUP, and a refused one.
    std::fs::write(&path, config(&se_url, &cdn_url, &secret_file, 200)).unwrap();
    let answer = http.post(format!("{base}/-/reload")).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    seen.push(answer.text().await.unwrap());
    std::fs::write(&path, config(&se_url, &cdn_url, &secret_file, 300)).unwrap();
    exporter.signal("HUP");
    wait_for(Duration::from_secs(10), "the SIGHUP reload", || async {
        (Scrape::parse(&scrape().await).get("cdn_billing_budget_usd", &[])? == 300.0).then_some(())
    })
    .await;
    std::fs::write(&path, config(&se_url, &cdn_url, &secret_file, 300).replace("cdn = 7", "cdn = \"7\"")).unwrap();
    let answer = http.post(format!("{base}/-/reload")).send().await.unwrap();
    assert_eq!(answer.status(), 400);
    seen.push(answer.text().await.unwrap());
    seen.push(scrape().await);
    seen.push(http.get(format!("{base}/")).send().await.unwrap().text().await.unwrap());

    exporter.signal("TERM");
    let mut exporter = exporter;
    wait_for(Duration::from_secs(10), "the exporter to exit on SIGTERM", || {
        let exited = exporter.child.try_wait().ok().flatten().is_some();
        async move { exited.then_some(()) }
    })
    .await;
    // The log reader thread ends with the pipe; give it the last lines.
    let log = wait_for(Duration::from_secs(5), "the shutdown line", || {
        let log = exporter.log();
        async move { log.contains("Shutting down").then_some(log) }
    })
    .await;
    assert!(log.contains("DEBUG"), "debug logging was on");
    assert!(
        log.contains("Poll failed") && log.contains("Configuration reloaded") && log.contains("Reload refused"),
        "{log}"
    );
    seen.push(log);
    for text in &seen {
        for secret in ALL {
            assert!(!text.contains(secret), "secret {secret} leaked into:\n{text}");
        }
    }
    drop(exporter);
    sim.stop().await;
}
