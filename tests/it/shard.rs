//! Sharding (`--shard i/n`): the shards of one configuration together poll every account, no
//! account twice, and the same accounts again after a restart or a reload; the flag, the
//! environment and the file all set it, in that order of precedence.

use std::collections::BTreeSet;
use std::process::Command;

use cdn_usage_exporter::app::{self, ConfigSource, WebOptions};
use cdn_usage_exporter::config::Config;
use cdn_usage_exporter::shard::{Shard, shard_of};

use crate::support::{account_toml, loopback};

const BIN: &str = env!("CARGO_BIN_EXE_cdn-usage-exporter");
const ACCOUNTS: usize = 24;
const SHARDS: u32 = 3;

fn names() -> Vec<String> {
    (0..ACCOUNTS).map(|i| format!("account-{i:02}")).collect()
}

/// Many accounts, each pointing at a closed loopback port: they exist, their polls fail fast.
fn toml(file_shard: Option<&str>) -> String {
    let mut text = file_shard.map(|s| format!("shard = \"{s}\"\n")).unwrap_or_default();
    for name in names() {
        text.push_str(&account_toml(&name, "http://127.0.0.1:9/stable/", "1h"));
    }
    text
}

/// Starts an exporter for `source` and returns the accounts it runs jobs for.
async fn accounts_polled(source: ConfigSource) -> BTreeSet<String> {
    let config = source.load().expect("valid config");
    let running = app::start_from(source, &config, loopback(), &WebOptions::default()).await.expect("starts");
    let accounts = running.store.jobs().into_iter().map(|(key, _)| key.account.to_string()).collect();
    running.stop().await;
    accounts
}

fn sharded(file_shard: Option<&str>, shard: Shard) -> ConfigSource {
    let config = Config::from_toml_str(&toml(file_shard), "shard-test").expect("valid config");
    ConfigSource::Sharded(Box::new(ConfigSource::Fixed(Box::new(config))), shard)
}

#[tokio::test]
async fn shards_cover_every_account_once_and_again_after_a_restart() {
    let mut seen = BTreeSet::new();
    for i in 1..=SHARDS {
        let shard = Shard::new(i, SHARDS).unwrap();
        // The file's own shard is overridden by the command line's.
        let first = accounts_polled(sharded(Some("1/1"), shard)).await;
        let again = accounts_polled(sharded(None, shard)).await;
        assert_eq!(first, again, "shard {shard} polls the same accounts after a restart");
        assert!(!first.is_empty(), "shard {shard} of {ACCOUNTS} accounts is empty");
        for name in &first {
            assert_eq!(shard_of(name, SHARDS), i, "{name} is polled by shard {shard}");
            assert!(seen.insert(name.clone()), "{name} is polled by two shards");
        }
    }
    assert_eq!(seen, names().into_iter().collect(), "the shards together poll every account");
}

#[tokio::test]
async fn a_reload_keeps_the_command_lines_shard() {
    let shard = Shard::new(2, SHARDS).unwrap();
    let source = sharded(Some("1/3"), shard);
    let config = source.load().unwrap();
    assert_eq!(config.shard, shard);
    let running = app::start_from(source, &config, loopback(), &WebOptions::default()).await.unwrap();
    let before: BTreeSet<_> = running.store.jobs().into_iter().map(|(k, _)| k.account.to_string()).collect();
    let summary = running.reload().await.expect("reload");
    assert_eq!((summary.added, summary.removed, summary.changed), (0, 0, 0), "{summary:?}");
    let after: BTreeSet<_> = running.store.jobs().into_iter().map(|(k, _)| k.account.to_string()).collect();
    assert_eq!(before, after);
    running.stop().await;
}

fn check_config(file: &std::path::Path, args: &[&str], env: Option<&str>) -> (Option<i32>, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(["check-config", "--config"]).arg(file).args(args).env_remove("CDN_EXPORTER_SHARD");
    if let Some(v) = env {
        cmd.env("CDN_EXPORTER_SHARD", v);
    }
    let out = cmd.output().expect("binary runs");
    (out.status.code(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn flag_environment_and_file_set_the_shard_in_that_order() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    std::fs::write(&file, toml(Some("1/3"))).unwrap();
    let keeps = |i: u32| names().iter().filter(|n| shard_of(n, SHARDS) == i).count();
    let expect = |i: u32| format!("{ACCOUNTS} account(s); shard {i}/{SHARDS} keeps {})", keeps(i));

    let (code, out) = check_config(&file, &[], None);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(&expect(1)), "the file's shard: {out}");
    let (_, out) = check_config(&file, &[], Some("3/3"));
    assert!(out.contains(&expect(3)), "the environment over the file: {out}");
    let (_, out) = check_config(&file, &["--shard", "2/3"], Some("3/3"));
    assert!(out.contains(&expect(2)), "the flag over the environment: {out}");

    let (code, out) = check_config(&file, &["--shard", "4/3"], None);
    assert_eq!(code, Some(2), "a bad flag is a usage error: {out}");
    assert!(out.contains("--shard") && out.contains("between 1 and the number of shards"), "{out}");

    std::fs::write(&file, toml(Some("zero/3"))).unwrap();
    let (code, out) = check_config(&file, &[], None);
    assert_eq!(code, Some(64), "{out}");
    assert!(out.contains("shard") && out.contains("is not of the form i/n"), "{out}");
}

/// The StatefulSet overlay turns pod ordinal K into shard K+1 with the image's /bin/sh.
#[test]
fn the_statefulsets_shell_gives_each_pod_its_shard() {
    let manifest =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/kubernetes/sharded/statefulset.yaml"))
            .unwrap();
    // The folded `args` scalar: the lines after `- >-` up to the next key, joined by spaces.
    let script: Vec<&str> = manifest
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("- >-"))
        .skip(1)
        .take_while(|l| l.trim_start().starts_with("exec") || l.trim_start().starts_with("--"))
        .map(str::trim)
        .collect();
    let script = script.join(" ");
    assert!(script.starts_with("exec /usr/local/bin/cdn-usage-exporter"), "{script}");
    let replicas: u32 = manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix("replicas: "))
        .and_then(|v| v.parse().ok())
        .expect("replicas");
    let shards = manifest
        .lines()
        .skip_while(|l| l.trim() != "- name: SHARDS")
        .nth(1)
        .and_then(|l| l.trim().strip_prefix("value: "))
        .map(|v| v.trim_matches('"').to_owned())
        .expect("SHARDS");
    assert_eq!(shards, replicas.to_string(), "SHARDS and replicas change together");
    for ordinal in 0..replicas {
        let echoed = script.replacen("exec /usr/local/bin/cdn-usage-exporter", "echo", 1);
        let out = Command::new("sh")
            .args(["-c", &echoed])
            .env("POD_NAME", format!("cdn-usage-exporter-{ordinal}"))
            .env("SHARDS", replicas.to_string())
            .output()
            .expect("sh runs");
        let args = String::from_utf8_lossy(&out.stdout);
        assert!(args.contains(&format!("--shard={}/{replicas}", ordinal + 1)), "pod {ordinal}: {args}");
    }
}
