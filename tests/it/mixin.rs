//! The monitoring mixin (mixin/): `jsonnet` builds it, the committed dashboards, rules file and
//! PrometheusRule are exactly its output, and its `_config` reaches every rule and dashboard.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::support::require_tool;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The files mixin/build.sh writes, relative to the repository (dashboards are listed apart).
const YAML_OUTPUTS: &[&str] = &["deploy/prometheus/rules.yml", "deploy/kubernetes/prometheusrule.yaml"];

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn json_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    names
}

/// Same text, or (another jsonnet may lay it out differently) the same document.
fn same_document(fresh: &str, committed: &str, yaml: bool) -> bool {
    if fresh == committed {
        return true;
    }
    let equal = if yaml {
        serde_yaml_ng::from_str::<serde_yaml_ng::Value>(fresh).ok()
            == serde_yaml_ng::from_str::<serde_yaml_ng::Value>(committed).ok()
    } else {
        serde_json::from_str::<Value>(fresh).ok() == serde_json::from_str::<Value>(committed).ok()
    };
    if equal {
        eprintln!("note: same document, laid out differently (another jsonnet version?)");
    }
    equal
}

#[test]
fn the_committed_dashboards_and_rules_are_the_mixins_output() {
    let Some(jsonnet) = require_tool("jsonnet") else { return };
    let out = tempfile::tempdir().unwrap();
    let build = Command::new("sh")
        .arg(Path::new(ROOT).join("mixin/build.sh"))
        .arg(out.path())
        .env("JSONNET", &jsonnet)
        .output()
        .expect("sh runs mixin/build.sh");
    assert!(
        build.status.success(),
        "mixin/build.sh failed: {}{}",
        String::from_utf8_lossy(&build.stdout),
        String::from_utf8_lossy(&build.stderr)
    );
    let fix = "edit mixin/*.libsonnet, not the generated file, and run mixin/build.sh";
    let built = json_files(&out.path().join("dashboards"));
    assert_eq!(built.len(), 3, "{built:?}");
    assert_eq!(
        json_files(&Path::new(ROOT).join("dashboards")),
        built,
        "dashboards/ holds other dashboards than the mixin's: {fix}"
    );
    for name in &built {
        let fresh = read(&out.path().join("dashboards").join(name));
        let committed = read(&Path::new(ROOT).join("dashboards").join(name));
        assert!(same_document(&fresh, &committed, false), "dashboards/{name} differs from the mixin's output: {fix}");
    }
    for file in YAML_OUTPUTS {
        let fresh = read(&out.path().join(file));
        let committed = read(&Path::new(ROOT).join(file));
        assert!(same_document(&fresh, &committed, true), "{file} differs from the mixin's output: {fix}");
    }
}

/// The mixin with `overrides` merged into its `_config`: its rule groups and dashboards as JSON.
fn build_with(jsonnet: &Path, overrides: &str) -> Value {
    let code = format!(
        "local m = (import 'mixin.libsonnet') + {{ _config+:: {overrides} }};\n\
         {{ rules: m.prometheusRules.groups, alerts: m.prometheusAlerts.groups, dashboards: m.grafanaDashboards }}"
    );
    let out = Command::new(jsonnet)
        .arg("-J")
        .arg(Path::new(ROOT).join("mixin"))
        .args(["-e", &code])
        .output()
        .expect("jsonnet runs");
    assert!(out.status.success(), "jsonnet: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("jsonnet writes JSON")
}

fn rule<'a>(built: &'a Value, name: &str) -> &'a Value {
    ["rules", "alerts"]
        .iter()
        .flat_map(|k| built[k].as_array().unwrap())
        .flat_map(|g| g["rules"].as_array().unwrap())
        .find(|r| r["alert"] == name || r["record"] == name)
        .unwrap_or_else(|| panic!("no rule {name}"))
}

#[test]
fn the_mixins_config_reaches_every_rule_and_dashboard() {
    let Some(jsonnet) = require_tool("jsonnet") else { return };
    let default = build_with(&jsonnet, "{}");
    let custom = build_with(
        &jsonnet,
        r#"{
            cdnExporterSelector: 'job="cdn", cluster="eu"',
            budgetWarningRatio: 0.9,
            exporterDownFor: '10m',
            errorWindow: '1h',
            runbookUrlPattern: 'https://wiki.example/cdn#%s',
            dashboardTags: ['billing'],
            dashboardRefresh: '1m',
            prepaidBalanceDays: 3,
        }"#,
    );

    // Groups: one name each across prometheusRules and prometheusAlerts (one rules file holds both).
    let groups: Vec<&str> = ["rules", "alerts"]
        .iter()
        .flat_map(|k| default[k].as_array().unwrap())
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(groups, ["cdn-usage", "cdn-exporter-health", "cdn-prepaid-balance"]);

    assert_eq!(rule(&default, "CdnExporterDown")["expr"], r#"up{job=~"cdn-usage-exporter.*"} == 0"#);
    let down = rule(&custom, "CdnExporterDown");
    assert_eq!(down["expr"], r#"up{job="cdn", cluster="eu"} == 0"#);
    assert_eq!(down["for"], "10m");
    assert!(down["annotations"]["description"].as_str().unwrap().contains("for 10 minutes"), "{down}");
    assert_eq!(down["annotations"]["runbook"], "https://wiki.example/cdn#cdnexporterdown");
    assert_eq!(rule(&default, "cdn:budget_warning:ratio")["expr"], "vector(0.8)");
    assert_eq!(rule(&custom, "cdn:budget_warning:ratio")["expr"], "vector(0.9)");
    let balance = rule(&custom, "CdnPrepaidBalanceLow");
    assert!(balance["expr"].as_str().unwrap().contains("259200"), "3 days as seconds: {balance}");
    assert!(balance["annotations"]["description"].as_str().unwrap().contains("3 days"), "{balance}");
    let dropped = rule(&custom, "CdnExporterSeriesDropped");
    assert_eq!(dropped["expr"], "increase(cdn_exporter_series_dropped_total[1h]) > 0");
    assert!(dropped["annotations"]["description"].as_str().unwrap().contains("in 1 hour"), "{dropped}");

    for (name, d) in custom["dashboards"].as_object().unwrap() {
        assert_eq!(d["tags"], serde_json::json!(["billing"]), "{name}");
        assert_eq!(d["refresh"], "1m", "{name}");
    }
    let gauge = custom["dashboards"]["cdn-usage-overview.json"]["panels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["title"] == "Estimated spend against budget")
        .expect("the budget gauge");
    assert_eq!(gauge["fieldConfig"]["defaults"]["thresholds"]["steps"][1]["value"], 0.9);
    assert!(gauge["description"].as_str().unwrap().contains("orange from 90 %"), "{gauge}");

    // The default selector was the only place a job name lived; with another, none is left.
    let text = custom.to_string();
    assert!(!text.contains("cdn-usage-exporter.*"), "a job name is hard-coded somewhere");
}

#[test]
fn a_bad_duration_in_the_config_is_refused_by_name() {
    let Some(jsonnet) = require_tool("jsonnet") else { return };
    let code = "(import 'mixin.libsonnet') + { _config+:: { exporterDownFor: 'five minutes' } }";
    let out = Command::new(&jsonnet)
        .arg("-J")
        .arg(Path::new(ROOT).join("mixin"))
        .args(["-e", &format!("({code}).prometheusAlerts")])
        .output()
        .expect("jsonnet runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("five minutes"), "{stderr}");
}

#[test]
fn the_mixin_is_formatted_by_jsonnetfmt() {
    let Some(jsonnetfmt) = require_tool("jsonnetfmt") else { return };
    let mut files = Vec::new();
    let mut dirs = vec![Path::new(ROOT).join("mixin")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "jsonnet" || e == "libsonnet") {
                files.push(path);
            }
        }
    }
    assert!(files.len() >= 10, "{files:?}");
    let out = Command::new(jsonnetfmt).arg("--test").args(&files).output().expect("jsonnetfmt runs");
    assert!(out.status.success(), "run jsonnetfmt -i on mixin/: {}", String::from_utf8_lossy(&out.stderr));
}
