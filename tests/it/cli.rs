//! The command line: help, check-config on the shipped example, and refusal of bad
//! configuration with every problem listed and exit code 64.

use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_cdn-usage-exporter");

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env_remove("CDN_EXPORTER_LISTEN_ADDRESS");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("binary runs")
}

fn example() -> String {
    format!("{}/deploy/config.example.toml", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn help_names_every_command_and_flag() {
    let out = run(&["--help"], &[]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for word in
        ["serve", "demo", "simulate", "check-config", "--config", "--web.listen-address", "--log.format", "--log.level"]
    {
        assert!(text.contains(word), "--help lacks {word}:\n{text}");
    }
}

#[test]
fn the_shipped_example_config_loads() {
    let env = [
        ("SCALEENGINE_API_KEY", "k"),
        ("SCALEENGINE_API_SECRET", "s"),
        ("CDNETWORKS_API_KEY", "c"),
        ("FASTLY_API_TOKEN", "f"),
    ];
    let out = run(&["check-config", "--config", &example()], &env);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid (3 account(s))"));
}

#[test]
fn a_missing_secret_variable_is_named() {
    let out = Command::new(BIN)
        .args(["check-config", "--config", &example()])
        .env_remove("SCALEENGINE_API_KEY")
        .env_remove("SCALEENGINE_API_SECRET")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("scaleengine[0].api_key_env: environment variable SCALEENGINE_API_KEY is not set"), "{err}");
}

#[test]
fn three_mistakes_get_three_messages_and_exit_64() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        r#"
[[scaleengine]]
name = "main"
cdn = "not a number"
api_key = "k"
api_secret = "s"
disk_interval = "soon"
budget_usd = -5
"#,
    )
    .unwrap();
    for command in ["check-config", "serve"] {
        let out = run(&[command, "--config", path.to_str().unwrap(), "--web.listen-address", "127.0.0.1:0"], &[]);
        assert_eq!(out.status.code(), Some(64), "{command}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("has 3 problems"), "{err}");
        assert_eq!(err.lines().filter(|l| l.starts_with("  - scaleengine[0].")).count(), 3, "{err}");
        assert!(err.contains("scaleengine[0].cdn: expected a whole number"), "{err}");
        assert!(err.contains("scaleengine[0].disk_interval: \"soon\" is not a duration"), "{err}");
        assert!(err.contains("scaleengine[0].budget_usd: expected a number of at least 0, found -5"), "{err}");
        assert!(!err.contains("Serving"), "nothing started: {err}");
    }
}

#[test]
fn serve_without_config_or_with_a_missing_file_exits_64() {
    let out = run(&["serve"], &[]);
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--config"));
    let out = run(&["--config", "/nonexistent/cdn.toml"], &[]);
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no file at /nonexistent/cdn.toml"));
}
