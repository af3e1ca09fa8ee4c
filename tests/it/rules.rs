//! The shipped alert and recording rules: promtool checks and unit-tests them, every alert is
//! tested firing and not firing, every alert has its runbook, and the Kubernetes
//! PrometheusRule carries the same rules.

use std::collections::BTreeSet;
use std::process::Command;

use serde_yaml_ng::Value;

use crate::support::require_tool;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/prometheus");

fn yaml(path: &str) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every alert name of the shipped rules.
pub fn alert_names() -> BTreeSet<String> {
    let rules = yaml(&format!("{DIR}/rules.yml"));
    rules["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_sequence().unwrap().iter())
        .filter_map(|r| r["alert"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn promtool_checks_and_tests_the_rules() {
    let Some(promtool) = require_tool("promtool") else { return };
    let check = Command::new(&promtool).args(["check", "rules", "rules.yml"]).current_dir(DIR).output().unwrap();
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let test = Command::new(&promtool)
        .args(["test", "rules", "rules_test.yml", "rules_test_days.yml", "rules_test_forecast.yml", "balance_test.yml"])
        .current_dir(DIR)
        .output()
        .unwrap();
    assert!(
        test.status.success(),
        "{}{}",
        String::from_utf8_lossy(&test.stdout),
        String::from_utf8_lossy(&test.stderr)
    );
    let config = Command::new(&promtool).args(["check", "config", "prometheus.yml"]).current_dir(DIR).output().unwrap();
    assert!(
        config.status.success(),
        "{}{}",
        String::from_utf8_lossy(&config.stdout),
        String::from_utf8_lossy(&config.stderr)
    );
}

#[test]
fn every_alert_is_tested_firing_and_not_firing() {
    let mut firing = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    for file in ["rules_test.yml", "rules_test_days.yml", "rules_test_forecast.yml", "balance_test.yml"] {
        let tests = yaml(&format!("{DIR}/{file}"));
        for test in tests["tests"].as_sequence().unwrap() {
            for case in test["alert_rule_test"].as_sequence().into_iter().flatten() {
                let name = case["alertname"].as_str().unwrap().to_owned();
                if case["exp_alerts"].as_sequence().is_some_and(|a| !a.is_empty()) {
                    firing.insert(name);
                } else {
                    quiet.insert(name);
                }
            }
        }
    }
    let alerts = alert_names();
    assert!(alerts.len() >= 10, "{alerts:?}");
    for alert in &alerts {
        assert!(firing.contains(alert), "{alert} is never tested firing");
        assert!(quiet.contains(alert), "{alert} is never tested quiet");
    }
}

#[test]
fn every_alert_has_summary_description_and_a_runbook_section() {
    let rules = yaml(&format!("{DIR}/rules.yml"));
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/alerts.md")).unwrap();
    for rule in rules["groups"].as_sequence().unwrap().iter().flat_map(|g| g["rules"].as_sequence().unwrap().iter()) {
        let Some(alert) = rule["alert"].as_str() else { continue };
        let a = &rule["annotations"];
        assert!(a["summary"].as_str().is_some_and(|s| s.contains("$labels")), "{alert}: summary");
        assert!(a["description"].as_str().is_some_and(|s| s.contains("$value")), "{alert}: description with the value");
        assert_eq!(a["runbook"].as_str(), Some(format!("docs/alerts.md#{}", alert.to_lowercase()).as_str()), "{alert}");
        assert!(doc.contains(&format!("\n## {alert}\n")), "docs/alerts.md has no section for {alert}");
        assert!(matches!(rule["labels"]["severity"].as_str(), Some("warning" | "critical")), "{alert}: severity");
    }
}
