//! Broken and hostile configurations: whatever is wrong on a credential's line, `check-config`,
//! a refused reload (SIGHUP's log line, `POST /-/reload`'s answer, `Control::reload`'s error)
//! name the key path, line and column and never the credential; a SIGTERM ends a reload that
//! blocks on a credential file.

use std::process::Command;
use std::time::{Duration, Instant};

use cdn_usage_exporter::app::{self, ConfigSource, WebOptions};
use cdn_usage_exporter::config::Config;

use crate::support::{Binary, Launch, loopback, wait_for};

const BIN: &str = env!("CARGO_BIN_EXE_cdn-usage-exporter");

/// Every credential below contains this; no output may.
const MARK: &str = "SECRET";

/// A good configuration; its account polls a closed port (the polls fail, which is fine here).
fn good(api_secret_line: &str) -> String {
    let base_url = if api_secret_line.contains("base_url") { "" } else { "base_url = \"http://127.0.0.1:9/\"" };
    format!(
        r#"# a comment line
[[scaleengine]]
name = "main"
cdn = 7
api_key = "SECRET-key-0a1"
{api_secret_line}
{base_url}
summary_interval = "1h"
billing_interval = "1h"
disk_interval = "1h"
timeout = "2s"
"#
    )
}

/// Broken `api_secret` lines (line 6 of the file), and a word each error must contain.
fn broken() -> Vec<(&'static str, String, &'static str)> {
    vec![
        ("syntax error on the secret's line", "api_secret = \"SECRET-unterminated-1b2".into(), "line 6, column"),
        (
            "duplicate key on the secret's line",
            "api_secret = \"SECRET-dup-3c4\"\napi_secret = \"SECRET-dup-3c4\"".into(),
            "duplicate key `api_secret`",
        ),
        (
            "wrong type for a secret",
            "api_secret = [\"SECRET-array-5d6\"]".into(),
            "scaleengine[0].api_secret: expected a string",
        ),
        (
            "table for a secret",
            "api_secret = { v = \"SECRET-table-5d7\" }".into(),
            "scaleengine[0].api_secret: expected a string",
        ),
        ("misspelled secret key", "api_secert = \"SECRET-typo-7e8\"".into(), "scaleengine[0].api_secert: unknown key"),
        (
            "weird characters in the secret",
            "api_secret = 'SECRET-w\u{e9}\"ird\\q{x}\t' = 1".into(),
            "TOML syntax error",
        ),
        (
            "credentials in base_url",
            "api_secret = \"s\"\nbase_url = \"https://ops:SECRET-pw-9f0@api.example.com/?token=SECRET-tok\"".into(),
            "scaleengine[0].base_url: carries credentials",
        ),
        ("secret in a duration", "api_secret = \"s\"\nvideo_interval = [\"SECRET-dur-1a1\"]".into(), "video_interval"),
    ]
}

fn assert_clean(what: &str, text: &str, expect: &str) {
    assert!(!text.contains(MARK), "{what}: a credential leaked:\n{text}");
    assert!(text.contains(expect), "{what}: expected {expect:?} in:\n{text}");
    assert!(text.contains("line ") && text.contains("column "), "{what}: no line and column in:\n{text}");
}

#[test]
fn check_config_names_line_and_column_and_never_prints_a_credential() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    for (what, line, expect) in broken() {
        std::fs::write(&path, good(&line)).unwrap();
        let out = Command::new(BIN)
            .args(["check-config", "--config", path.to_str().unwrap()])
            .env_remove("CDN_EXPORTER_LISTEN_ADDRESS")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(64), "{what}");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(text.contains(path.to_str().unwrap()), "{what}: the file is named:\n{text}");
        assert_clean(what, &text, expect);
    }
}

#[tokio::test]
async fn a_refused_reload_answers_and_logs_no_credential() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, good("api_secret = \"SECRET-good-000\"")).unwrap();
    let config = Config::load(&path).unwrap();
    let web = WebOptions { enable_lifecycle: true, ..WebOptions::default() };
    let r = app::start_from(ConfigSource::File(path.clone()), &config, loopback(), &web).await.unwrap();
    let http = reqwest::Client::new();
    for (what, line, expect) in broken() {
        std::fs::write(&path, good(&line)).unwrap();
        let err = r.reload().await.expect_err(what).to_string();
        assert_clean(what, &err, expect);
        let answer = http.post(format!("http://{}/-/reload", r.addr)).send().await.unwrap();
        let status = answer.status().as_u16();
        let body = answer.text().await.unwrap();
        assert_eq!(status, 400, "{what}: {body}");
        assert!(body.contains(&err), "{what}: the answer carries the error:\n{body}");
        assert_clean(what, &body, expect);
    }
    r.stop().await;
}

/// The binary with debug logging, the listen address of the environment ignored.
fn start(config: &std::path::Path) -> Binary {
    let launch = Launch {
        args: vec!["--log.level", "debug"],
        env_remove: vec!["CDN_EXPORTER_LISTEN_ADDRESS"],
        ..Launch::default()
    };
    Binary::start(config, launch)
}

#[cfg(unix)]
#[tokio::test]
async fn sighup_reloads_refused_for_broken_secret_lines_log_no_credential() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, good("api_secret = \"SECRET-good-000\"")).unwrap();
    let exporter = start(&path);
    exporter.wait_log("Serving /metrics", 1).await;
    let cases = broken();
    for (n, (what, line, _)) in cases.iter().enumerate() {
        std::fs::write(&path, good(line)).unwrap();
        exporter.signal("HUP");
        let log = exporter.wait_log("Reload refused", n + 1).await;
        let refused = log.lines().filter(|l| l.contains("Reload refused")).nth(n).unwrap_or_default().to_owned();
        assert!(!refused.contains(MARK), "{what}: {refused}");
        assert!(refused.contains("line ") && refused.contains("column "), "{what}: {refused}");
    }
    exporter.signal("TERM");
    let log = exporter.wait_log("Shutting down", 1).await;
    assert!(!log.contains(MARK), "a credential in the log:\n{log}");
}

/// `kill -TERM` while a SIGHUP reload waits on a credential file that is a FIFO nobody writes to.
#[cfg(unix)]
#[tokio::test]
async fn sigterm_during_a_blocked_reload_exits_promptly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let fifo = dir.path().join("secret.fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    std::fs::write(&path, good("api_secret = \"SECRET-good-000\"")).unwrap();
    let mut exporter = start(&path);
    exporter.wait_log("Serving /metrics", 1).await;
    std::fs::write(&path, good(&format!("api_secret_file = \"{}\"", fifo.display()))).unwrap();
    exporter.signal("HUP");
    exporter.wait_log("SIGHUP: reloading the configuration", 1).await;
    // The reload is now blocked opening the FIFO; give it a moment to get there.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = Instant::now();
    exporter.signal("TERM");
    let status = wait_for(Duration::from_secs(10), "exit after SIGTERM", || {
        let status = exporter.child.try_wait().ok().flatten();
        async move { status }
    })
    .await;
    assert!(sent.elapsed() < Duration::from_secs(8), "took {:?}", sent.elapsed());
    assert_eq!(status.code(), Some(0), "{}", exporter.log());
    let log = exporter.wait_log("Reload given up", 1).await;
    assert!(!log.contains("Configuration reloaded"), "the reload never finished:\n{log}");
}
