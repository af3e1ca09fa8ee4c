//! The endpoints behind exporter-toolkit's web configuration: TLS and basic auth; and the
//! status page as a browser shows it.

use std::process::Command;
use std::time::Duration;

use cdn_usage_exporter::app::{self, ConfigSource, WebOptions};
use cdn_usage_exporter::config::Config;
use cdn_usage_exporter::simulator::{SimState, Simulator};

use crate::support::se_part;
use crate::support::{KEY, SECRET, account_toml, loopback, require_tool, sim_account, wait_for};

/// A self-signed certificate for 127.0.0.1, made with openssl.
fn certificate(dir: &std::path::Path) -> Option<()> {
    let openssl = require_tool("openssl")?;
    let status = Command::new(openssl)
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1", "-keyout", "key.pem", "-out", "cert.pem"])
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    Some(())
}

#[tokio::test]
async fn tls_and_basic_auth_guard_every_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    if certificate(dir.path()).is_none() {
        return;
    }
    let hash = bcrypt::hash("correct horse", 4).unwrap();
    // Relative paths are relative to the web configuration file, as in exporter-toolkit.
    std::fs::write(
        dir.path().join("web.yml"),
        format!(
            "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\nbasic_auth_users:\n  prometheus: {hash}\n"
        ),
    )
    .unwrap();
    let sim =
        Simulator::start(loopback(), SimState::builder().with(se_part(vec![sim_account()])).build()).await.unwrap();
    let toml = account_toml("main", &sim.scaleengine_url(), "1h");
    let config = Config::from_toml_str(&toml, "t").unwrap();
    let web = WebOptions { config_file: Some(dir.path().join("web.yml")), ..WebOptions::default() };
    let r = app::start_from(ConfigSource::Text(toml, "t".into()), &config, loopback(), &web).await.unwrap();
    // A client that connects and never sends a ClientHello is closed too.
    let silent = std::net::TcpStream::connect(r.addr).unwrap();
    let opened = std::time::Instant::now();
    let https = reqwest::Client::builder().danger_accept_invalid_certs(true).build().unwrap();
    for path in ["/metrics", "/", "/healthz", "/readyz", "/focus"] {
        let url = format!("https://{}{path}", r.addr);
        let ok = https.get(&url).basic_auth("prometheus", Some("correct horse")).send().await.unwrap();
        assert!(ok.status().is_success() || ok.status() == 503, "{path}: {}", ok.status());
        let wrong = https.get(&url).basic_auth("prometheus", Some("wrong")).send().await.unwrap();
        assert_eq!(wrong.status(), 401, "{path}");
        let anonymous = https.get(&url).send().await.unwrap();
        assert_eq!(anonymous.status(), 401, "{path}");
        assert_eq!(anonymous.headers()["www-authenticate"], "Basic realm=\"cdn-usage-exporter\"");
    }
    let reload = https.post(format!("https://{}/-/reload", r.addr)).send().await.unwrap();
    assert_eq!(reload.status(), 401, "reload is guarded too");
    let plain = reqwest::Client::new()
        .get(format!("http://{}/metrics", r.addr))
        .basic_auth("prometheus", Some("correct horse"))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success(), "plain HTTP is refused when TLS is on");
    let closed = tokio::task::spawn_blocking(move || {
        use std::io::Read as _;
        let mut silent = silent;
        silent.set_read_timeout(Some(Duration::from_secs(25))).unwrap();
        // EOF or a reset: closed; a timeout: still open.
        match silent.read(&mut [0u8; 64]) {
            Ok(n) => n == 0,
            Err(e) => !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
        }
    })
    .await
    .unwrap();
    assert!(closed, "a connection without a TLS handshake was still open after {:?}", opened.elapsed());
    r.stop().await;
    sim.stop().await;
}

#[tokio::test]
async fn a_bad_web_config_is_refused_with_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("web.yml");
    std::fs::write(
        &path,
        "tls_server_config:\n  cert_file: missing.pem\n  client_auth_type: RequireAndVerifyClientCert\nbasic_auth_users:\n  alice: plaintext\n",
    )
    .unwrap();
    let config = Config::from_toml_str(&account_toml("m", "http://127.0.0.1:9/stable/", "1h"), "t").unwrap();
    let web = WebOptions { config_file: Some(path), ..WebOptions::default() };
    let err = app::start_from(ConfigSource::Text(String::new(), "t".into()), &config, loopback(), &web)
        .await
        .err()
        .expect("refused");
    let text = err.to_string();
    assert!(text.contains("3 problem(s)"), "{text}");
    assert!(text.contains("client_auth_type is not supported"), "{text}");
    assert!(text.contains("needs both cert_file and key_file"), "{text}");
    assert!(text.contains("basic_auth_users.alice: not a bcrypt hash"), "{text}");
}

/// Chromium's view of a page: the DOM after load, as text.
fn chromium_dom(url: &str) -> Option<String> {
    let chromium = require_tool("chromium")?;
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(chromium)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"])
        .args(["--disable-component-update", "--disable-sync", "--disable-quic"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(["--dump-dom", url])
        .output()
        .expect("chromium runs");
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test]
async fn the_status_page_shows_a_healthy_and_a_failing_job_in_a_browser() {
    let sim =
        Simulator::start(loopback(), SimState::builder().with(se_part(vec![sim_account()])).build()).await.unwrap();
    let good = account_toml("good", &sim.scaleengine_url(), "1h");
    let bad = account_toml("bad", &sim.scaleengine_url(), "1h").replace(SECRET, "not-the-secret");
    let config = Config::from_toml_str(&format!("{good}\n{bad}"), "t").unwrap();
    let r = app::start(&config, loopback()).await.unwrap();
    wait_for(Duration::from_secs(10), "every job polled", || async { r.store.ready().then_some(()) }).await;
    let Some(dom) = tokio::task::spawn_blocking({
        let url = format!("http://{}/", r.addr);
        move || chromium_dom(&url)
    })
    .await
    .unwrap() else {
        r.stop().await;
        return;
    };
    let row = |job: &str| {
        let start = dom.find(&format!("data-job=\"{job}\"")).unwrap_or_else(|| panic!("no row for {job} in {dom}"));
        dom[start..start + dom[start..].find("</tr>").unwrap()].to_owned()
    };
    let healthy = row("scaleengine/good/usage.summary");
    assert!(healthy.contains("<td class=\"ok\">ok</td>"), "{healthy}");
    let failing = row("scaleengine/bad/usage.summary");
    assert!(failing.contains("<td class=\"fail\">failed: auth</td>"), "{failing}");
    assert!(failing.contains("ScaleEngine error 0003"), "the provider's message is shown: {failing}");
    assert!(dom.contains("10 jobs: <span class=\"ok\">5 up</span>, <span class=\"fail\">5 failing</span>"), "{dom}");
    assert!(
        dom.contains("<details open=\"\"><summary>scaleengine/bad/usage.summary"),
        "failing jobs open their recent polls"
    );
    for secret in [SECRET, KEY, "not-the-secret"] {
        assert!(!dom.contains(secret), "the page shows no credential");
    }
    r.stop().await;
    sim.stop().await;
}

#[tokio::test]
async fn the_status_page_shows_spend_against_budget_and_the_shard_in_a_browser() {
    use cdn_usage_exporter::shard::{Shard, shard_of};
    use cdn_usage_exporter::spend::usd;
    let sim =
        Simulator::start(loopback(), SimState::builder().with(se_part(vec![sim_account()])).build()).await.unwrap();
    let config = Config::from_toml_str(&account_toml("main", &sim.scaleengine_url(), "1h"), "t").unwrap();
    // The shard of two that holds "main", so the page has a shard line and the account.
    let shard = Shard::new(shard_of("main", 2), 2).unwrap();
    let source = ConfigSource::Sharded(Box::new(ConfigSource::Fixed(Box::new(config))), shard);
    let config = source.load().unwrap();
    let r = app::start_from(source, &config, loopback(), &WebOptions::default()).await.unwrap();
    // The page and /metrics read the same store; wait until the billing poll is rendered.
    let (spend, estimate, budget) = wait_for(Duration::from_secs(10), "billing figures on /metrics", || async {
        let text = reqwest::get(format!("http://{}/metrics", r.addr)).await.ok()?.text().await.ok()?;
        let scrape = crate::support::Scrape::parse(&text);
        let figure = |name: &str| scrape.get(name, &[("account", "main")]);
        Some((
            figure("cdn_billing_month_to_date_spend_usd")?,
            figure("cdn_billing_estimated_month_spend_usd")?,
            figure("cdn_billing_budget_usd")?,
        ))
    })
    .await;
    let Some(dom) = tokio::task::spawn_blocking({
        let url = format!("http://{}/", r.addr);
        move || chromium_dom(&url)
    })
    .await
    .unwrap() else {
        r.stop().await;
        sim.stop().await;
        return;
    };
    let start = dom.find("<tr data-account=\"scaleengine/main\">").unwrap_or_else(|| panic!("no spend row: {dom}"));
    let row = &dom[start..start + dom[start..].find("</tr>").unwrap()];
    let cells: Vec<&str> = row.split("<td").skip(1).map(|c| &c[c.find('>').unwrap() + 1..]).collect();
    assert_eq!(cells[2], format!("{}</td>", usd(spend)), "spend to date: {row}");
    assert_eq!(cells[3], format!("{}</td>", usd(estimate)), "the provider's estimate: {row}");
    // Our forecast, with its 80 % interval beneath and how it was made as the title.
    assert!(cells[4].starts_with("<span title=\"") && cells[4].matches('$').count() == 3, "our forecast: {row}");
    assert_eq!(cells[5], format!("{}</td>", usd(budget)), "the budget: {row}");
    assert!(row.contains("<svg") && row.contains("class=\"spend\"") && row.contains("class=\"budget\""), "{row}");
    assert!(!dom.contains("<script"), "no scripts on the page");
    let line = format!("Shard {} of 2: this process polls 1 of the 1 configured accounts", shard.index());
    assert!(dom.contains(&line), "{line} missing: {dom}");
    r.stop().await;
    sim.stop().await;
}
