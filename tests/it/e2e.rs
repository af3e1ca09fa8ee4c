//! End to end against a real Prometheus: the demo exporter is scraped with the shipped rules
//! loaded, by a scrape job named `cdn` (not the default `cdn-usage-exporter`, as a user's own
//! Prometheus names it); every dashboard query and every template variable must return data,
//! every rule must evaluate cleanly over data that exists, and the demo's budget alert must fire.
//! Also: the deployment manifests parse, the PrometheusRule carries the shipped rules, and every
//! dashboard query is filtered by the job and instance variables.
//!
//! The rules are loaded with `for:` set to 0s and `offset 1d` shortened to `offset 10s`, so that
//! a test of a minute can evaluate rules written for hours and days; their real timing is
//! covered by the promtool unit tests (tests/it/rules.rs).

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::{Kill, assert_promtool_silent, require_tool, start_demo, wait_for};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Every PromQL expression of a dashboard, with the panel it belongs to.
fn dashboard_queries(path: &std::path::Path) -> (Vec<(String, String)>, Vec<String>) {
    let d: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut exprs = Vec::new();
    for panel in d["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().unwrap() {
            exprs.push((panel["title"].as_str().unwrap().to_owned(), t["expr"].as_str().unwrap().to_owned()));
        }
    }
    let vars = d["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["query"]["query"].as_str().map(str::to_owned))
        .collect();
    (exprs, vars)
}

/// The scrape job's name in the test's Prometheus: anything but the default.
const JOB: &str = "cdn";

/// Template variables as "All" selects them (`allValue` is `.+`), and Grafana's interval macros.
fn substitute(expr: &str) -> String {
    let mut expr = expr.replace("$__rate_interval", "1m");
    for var in ["$job", "$instance", "$provider", "$account", "$app"] {
        expr = expr.replace(var, ".+");
    }
    expr
}

async fn query(http: &reqwest::Client, base: &str, expr: &str) -> Result<Vec<Value>, String> {
    let bytes = http
        .post(format!("{base}/api/v1/query"))
        .form(&[("query", expr)])
        .send()
        .await
        .map_err(|e| e.to_string())?
        .bytes()
        .await
        .map_err(|e| e.to_string())?;
    let response: Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    if response["status"] != "success" {
        return Err(format!("{response}"));
    }
    Ok(response["data"]["result"].as_array().cloned().unwrap_or_default())
}

async fn get_json(http: &reqwest::Client, url: &str) -> Option<Value> {
    serde_json::from_slice(&http.get(url).send().await.ok()?.bytes().await.ok()?).ok()
}

/// Metric and recorded-series names an expression reads.
fn selectors(expr: &str) -> Vec<String> {
    let functions = [
        "max",
        "sum",
        "count",
        "topk",
        "rate",
        "increase",
        "scalar",
        "vector",
        "time",
        "by",
        "without",
        "on",
        "ignoring",
        "and",
        "or",
        "unless",
        "offset",
        "hour",
        "minute",
        "day_of_month",
        "days_in_month",
        "bool",
        "group_left",
    ];
    let mut names = Vec::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    let mut in_braces = 0;
    let mut in_quotes = false;
    let mut in_parens_after_by = false;
    while i < bytes.len() {
        let c = bytes[i] as char;
        if c == '"' {
            in_quotes = !in_quotes;
        }
        if in_quotes {
            i += 1;
            continue;
        }
        match c {
            '{' => in_braces += 1,
            '}' => in_braces -= 1,
            ')' => in_parens_after_by = false,
            _ => {}
        }
        if in_braces == 0
            && (c.is_ascii_alphabetic() || c == '_')
            && (i == 0 || !(bytes[i - 1] as char).is_ascii_alphanumeric())
        {
            let start = i;
            while i < bytes.len()
                && ((bytes[i] as char).is_ascii_alphanumeric() || matches!(bytes[i] as char, '_' | ':'))
            {
                i += 1;
            }
            let word = &expr[start..i];
            let next = expr[i..].trim_start().chars().next();
            if matches!(word, "by" | "without" | "on" | "ignoring") {
                in_parens_after_by = true;
            } else if !in_parens_after_by && next != Some('(') && !functions.contains(&word) {
                names.push(word.to_owned());
            }
            continue;
        }
        i += 1;
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboards_and_rules_work_against_a_real_prometheus() {
    let Some(prometheus) = require_tool("prometheus") else { return };
    let Some(promtool) = require_tool("promtool") else { return };
    let (_demo, url) = start_demo();
    let target = url.trim_start_matches("http://").trim_end_matches("/metrics").to_owned();
    let dir = tempfile::tempdir().unwrap();
    let rules = std::fs::read_to_string(format!("{ROOT}/deploy/prometheus/rules.yml")).unwrap();
    // The early-month guards of the forecast and balance alerts are lifted too, so that those
    // alerts fire in this test on any day of the month (their promtool tests cover the guards):
    // with no whole day of history the forecast is spend over the month's elapsed share, whose
    // interval's low end is the spend to date; here it is the forecast itself.
    let linear_spread = "(max by (provider, account) (cdn_billing_month_to_date_spend_usd) * 0 + 1)";
    assert!(rules.contains(linear_spread), "the forecast's linear spread is where this test expects it");
    let shortened = regex_replace_for(&rules)
        .replace("offset 1d", "offset 10s")
        .replace(linear_spread, "(max by (provider, account) (cdn_billing_month_to_date_spend_usd) * 0 + 0)")
        .replace("* 60) > 21600)", "* 60) >= 0)");
    assert!(!shortened.contains("> 21600)"), "the guards were found and lifted");
    std::fs::write(dir.path().join("rules.yml"), &shortened).unwrap();
    // Forty days of one more account's hourly spend, imported as blocks before Prometheus
    // starts: the forecast's inputs that need whole days of history (last month's same point,
    // the last week's pace, last month's shape) have data here as they do in production.
    let history = dir.path().join("history.om");
    std::fs::write(&history, spend_history(cdn_usage_exporter::timeutil::now_unix())).unwrap();
    let imported = Command::new(&promtool)
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&history)
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert!(imported.status.success(), "{}", String::from_utf8_lossy(&imported.stderr));
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [rules.yml]\n\
             scrape_configs:\n  - job_name: {JOB}\n    static_configs:\n      - targets: [\"{target}\"]\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let _prom = Kill(
        Command::new(prometheus)
            .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            // The imported history is older than the default 15 days of retention.
            .arg("--storage.tsdb.retention.time=100d")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    wait_for(Duration::from_secs(60), "Prometheus ready", || async {
        http.get(format!("{base}/-/ready")).send().await.ok().filter(|r| r.status().is_success()).map(|_| ())
    })
    .await;
    // A few scrapes, and storage data for rate() and the shortened offsets.
    wait_for(Duration::from_secs(60), "15 scrapes of the demo", || async {
        let r = query(&http, &base, &format!("count_over_time(up{{job=\"{JOB}\"}}[1m]) >= 15")).await.ok()?;
        (!r.is_empty()).then_some(())
    })
    .await;
    // Waits are bounded generously: the rest of the suite (promtool backfills among it) runs
    // beside this test on two cores, and a rule group's evaluation can fall behind for a while.
    wait_for(Duration::from_secs(90), "the recording rules' data", || async {
        let r = query(&http, &base, "cdn:billing_spend_usd:increase1d").await.ok()?;
        (!r.is_empty()).then_some(())
    })
    .await;

    let mut empty = Vec::new();
    let mut checked = 0;
    for file in ["cdn-usage-overview.json", "cdn-usage-video.json", "cdn-usage-exporter-health.json"] {
        let (exprs, vars) = dashboard_queries(&std::path::Path::new(ROOT).join("dashboards").join(file));
        for (panel, expr) in exprs {
            let expr = substitute(&expr);
            match query(&http, &base, &expr).await {
                Ok(r) if !r.is_empty() => checked += 1,
                Ok(_) => empty.push(format!("{file} / {panel}: {expr} returned nothing")),
                Err(e) => empty.push(format!("{file} / {panel}: {expr} failed: {e}")),
            }
        }
        for var in vars {
            // label_values(metric{...}, label): the metric must have that label.
            let inner = var.trim_start_matches("label_values(").trim_end_matches(')');
            let (selector, label) = inner.rsplit_once(',').unwrap();
            let expr = substitute(&format!("count by ({}) ({selector})", label.trim()));
            match query(&http, &base, &expr).await {
                // The job variable must offer the job this Prometheus scrapes, whatever its name.
                Ok(r) if label.trim() == "job" && !r.iter().any(|s| s["metric"]["job"] == JOB) => {
                    empty.push(format!("{file} variable {var} does not offer job {JOB}: {r:?}"))
                }
                Ok(r) if r.iter().any(|s| s["metric"][label.trim()].is_string()) => checked += 1,
                other => empty.push(format!("{file} variable {var}: {other:?}")),
            }
        }
    }

    // Rules: every one evaluates without error, and everything it reads has data.
    let groups = get_json(&http, &format!("{base}/api/v1/rules")).await.expect("rules API");
    let mut rules_seen = 0;
    for group in groups["data"]["groups"].as_array().unwrap() {
        eprintln!("rule group {} evaluates in {} s", group["name"], group["evaluationTime"]);
        for rule in group["rules"].as_array().unwrap() {
            rules_seen += 1;
            let name = rule["name"].as_str().unwrap();
            if rule["health"] != "ok" {
                empty.push(format!("rule {name}: health {} ({})", rule["health"], rule["lastError"]));
            }
            let expr = rule["query"].as_str().unwrap();
            if let Err(e) = query(&http, &base, expr).await {
                empty.push(format!("rule {name}: {e}"));
            }
            for selector in selectors(expr) {
                match query(&http, &base, &format!("count({selector})")).await {
                    Ok(r) if !r.is_empty() => checked += 1,
                    other => empty.push(format!("rule {name} reads {selector}, which has no data: {other:?}")),
                }
            }
        }
    }
    assert_eq!(rules_seen, 29, "every shipped rule loaded");
    assert!(empty.is_empty(), "{} problem(s):\n{}", empty.len(), empty.join("\n"));
    assert!(checked > 50, "{checked} queries checked");
    eprintln!("{checked} dashboard queries, template variables and rule inputs returned data (scrape job {JOB})");

    // The demo's budgets are below their estimates, the provider's (ScaleEngine) and the one
    // priced from the contract (CDNetworks): the alert fires for both; the near-budget one does not.
    let alerts = wait_for(Duration::from_secs(60), "the budget alert firing for both providers", || async {
        let a = get_json(&http, &format!("{base}/api/v1/alerts")).await?;
        let alerts = a["data"]["alerts"].as_array()?.clone();
        let firing = |provider: &str| {
            alerts.iter().any(|x| {
                x["labels"]["alertname"] == "CdnEstimatedSpendOverBudget"
                    && x["state"] == "firing"
                    && x["labels"]["account"] == "demo"
                    && x["labels"]["provider"] == provider
            })
        };
        (firing("scaleengine") && firing("cdnetworks")).then_some(alerts)
    })
    .await;
    assert!(!alerts.iter().any(|x| x["labels"]["alertname"] == "CdnEstimatedSpendNearBudget"), "{alerts:?}");
    // Fastly and bunny.net report no month-end estimate: our forecast (spend to date over the
    // month's elapsed share) is over the demo's budgets, and the bunny.net demo's balance runs out
    // before the month does.
    wait_for(Duration::from_secs(60), "the forecast and balance alerts firing", || async {
        let a = get_json(&http, &format!("{base}/api/v1/alerts")).await?;
        let alerts = a["data"]["alerts"].as_array()?.clone();
        let firing = |name: &str, provider: &str| {
            alerts.iter().any(|x| {
                x["labels"]["alertname"] == name && x["state"] == "firing" && x["labels"]["provider"] == provider
            })
        };
        (firing("CdnForecastSpendOverBudget", "fastly")
            && firing("CdnForecastSpendOverBudget", "bunny")
            && firing("CdnPrepaidBalanceLow", "bunny"))
        .then_some(())
    })
    .await;
    // The demo's CDNetworks commitment is below its 95th percentile: that alert fires too.
    wait_for(Duration::from_secs(60), "the bandwidth commitment alert firing", || async {
        let a = get_json(&http, &format!("{base}/api/v1/alerts")).await?;
        a["data"]["alerts"]
            .as_array()?
            .iter()
            .any(|x| {
                x["labels"]["alertname"] == "CdnBandwidthP95OverCommit"
                    && x["state"] == "firing"
                    && x["labels"]["provider"] == "cdnetworks"
            })
            .then_some(())
    })
    .await;
    assert!(!alerts.iter().any(|x| x["labels"]["alertname"] == "CdnExporterJobFailing"), "{alerts:?}");

    // promtool on what Prometheus scrapes.
    let body = reqwest::get(format!("http://{target}/metrics")).await.unwrap().text().await.unwrap();
    assert_promtool_silent(&promtool, &body);
}

/// Forty days of a steady $1 an hour, to `now` less two minutes, for the account
/// `history/e2e`, in OpenMetrics: the month-to-date spend (reset at each UTC month's start),
/// last month's bill, and the shape the rules recorded (flat).
fn spend_history(now: i64) -> String {
    use cdn_usage_exporter::timeutil::{civil_from_days, days_in_month, month_start};
    let labels = format!("provider=\"history\",account=\"e2e\",job=\"{JOB}\",instance=\"history\"");
    let end = now - 120;
    let times: Vec<i64> = ((now - 40 * 86_400) / 3600 * 3600..end).step_by(3600).chain([end]).collect();
    let month_of = |t: i64| month_start(t.div_euclid(86_400)) * 86_400;
    let mut out = String::from("# TYPE cdn_billing_month_to_date_spend_usd gauge\n");
    for &t in &times {
        out.push_str(&format!("cdn_billing_month_to_date_spend_usd{{{labels}}} {} {t}\n", (t - month_of(t)) / 3600));
    }
    out.push_str("# TYPE cdn_billing_last_month_spend_usd gauge\n");
    for &t in &times {
        let (y, m, _) = civil_from_days(month_of(t) / 86_400 - 1);
        out.push_str(&format!("cdn_billing_last_month_spend_usd{{{labels}}} {} {t}\n", days_in_month(y, m) * 24));
    }
    // What the shape rule recorded over those days (a steady spend's shape is flat), so that
    // the month before's shape, read a month back, has data as in a Prometheus that has run.
    let record_labels = "provider=\"history\",account=\"e2e\"";
    out.push_str("# TYPE cdn:billing_spend_usd:shape_last_month gauge\n");
    for &t in &times {
        out.push_str(&format!("cdn:billing_spend_usd:shape_last_month{{{record_labels}}} 1 {t}\n"));
    }
    out.push_str("# EOF\n");
    out
}

/// Sets every `for:` of a rules file to 0s.
fn regex_replace_for(rules: &str) -> String {
    rules
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("for:") {
                format!("{}for: 0s", &l[..l.len() - l.trim_start().len()])
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn selectors_finds_what_an_expression_reads() {
    let expr = r#"max by (provider, account) (cdn_billing_estimated_month_spend_usd) > max by (provider, account) (cdn_billing_budget_usd) * scalar(cdn:budget_warning:ratio) and on () (cdn:month_elapsed:ratio > 0.1) and x offset 1d > 2e9 and up{job=~"a.*"} == 0"#;
    assert_eq!(
        selectors(expr),
        [
            "cdn_billing_estimated_month_spend_usd",
            "cdn_billing_budget_usd",
            "cdn:budget_warning:ratio",
            "cdn:month_elapsed:ratio",
            "x",
            "up"
        ]
    );
}

/// Every series an expression selects carries `job=~"$job", instance=~"$instance"`: one label
/// matcher block per series, each with both (so no panel can ignore the job or hard-code one).
fn assert_filtered_by_job_and_instance(expr: &str) -> Result<(), String> {
    let series = selectors(&substitute(expr).replace(".+", "x"));
    let blocks: Vec<&str> = expr.split('{').skip(1).map(|b| b.split('}').next().unwrap_or("")).collect();
    if blocks.len() != series.len() {
        return Err(format!("{} series {series:?} but {} label matcher blocks in {expr}", series.len(), blocks.len()));
    }
    // A recorded series (a name with a colon, by provider and account) has no job or instance:
    // it passes when the expression keeps it to the accounts of a series that is filtered.
    let joined = expr.contains("and on (provider, account)");
    let recorded = |b: &&str| {
        let at = expr.find(&format!("{{{b}}}")).unwrap_or(0);
        joined
            && expr[..at]
                .rsplit(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .next()
                .is_some_and(|n| n.contains(':'))
    };
    match blocks
        .iter()
        .filter(|b| !recorded(b))
        .find(|b| !b.contains(r#"job=~"$job""#) || !b.contains(r#"instance=~"$instance""#))
    {
        Some(b) => Err(format!("{{{b}}} is not filtered by $job and $instance in {expr}")),
        None => Ok(()),
    }
}

#[test]
fn the_job_filter_check_catches_an_unfiltered_or_hard_coded_series() {
    let ok = r#"sum(a{job=~"$job", instance=~"$instance"}) / scalar(hour()) + rate(b{job=~"$job", instance=~"$instance", x="y"}[$__rate_interval])"#;
    assert_eq!(assert_filtered_by_job_and_instance(ok), Ok(()));
    let joined = r#"x:recorded{provider=~"$provider"} and on (provider, account) max by (provider, account) (a{job=~"$job", instance=~"$instance"})"#;
    assert_eq!(assert_filtered_by_job_and_instance(joined), Ok(()));
    for bad in [
        r#"sum(a{job=~"$job", instance=~"$instance"}) / b"#,
        r#"up{job=~"cdn-usage-exporter.*"}"#,
        r#"up{job=~"$job"}"#,
        r#"x:recorded{instance=~"$instance", provider=~"$provider"}"#,
        r#"x:recorded{provider=~"$provider"} and on (provider, account) max by (provider, account) (a{job=~"$job"})"#,
    ] {
        assert!(assert_filtered_by_job_and_instance(bad).is_err(), "{bad}");
    }
}

#[test]
#[allow(clippy::result_large_err)] // figment::Jail's closures return figment::Error
fn the_manifests_parse_and_the_prometheusrule_carries_the_shipped_rules() {
    let read = |p: &str| std::fs::read_to_string(format!("{ROOT}/{p}")).unwrap_or_else(|e| panic!("{p}: {e}"));
    let rules: serde_yaml_ng::Value = serde_yaml_ng::from_str(&read("deploy/prometheus/rules.yml")).unwrap();
    let mut kinds = Vec::new();
    let files = ["deploy/kubernetes", "deploy/kubernetes/sharded"].into_iter().flat_map(|dir| {
        let entries = std::fs::read_dir(format!("{ROOT}/{dir}")).unwrap();
        entries.map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect::<Vec<_>>()
    });
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let v = serde_yaml_ng::Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            if let Some(kind) = v["kind"].as_str() {
                kinds.push(kind.to_owned());
                if kind == "PrometheusRule" {
                    assert_eq!(v["spec"]["groups"], rules["groups"], "prometheusrule.yaml differs from rules.yml");
                }
                if kind == "Deployment" || kind == "StatefulSet" {
                    let c = &v["spec"]["template"]["spec"]["containers"][0];
                    assert_eq!(c["livenessProbe"]["httpGet"]["path"].as_str(), Some("/healthz"));
                    assert_eq!(c["readinessProbe"]["httpGet"]["path"].as_str(), Some("/readyz"));
                }
                if kind == "ConfigMap" {
                    let toml = v["data"]["config.toml"].as_str().unwrap();
                    figment::Jail::expect_with(|jail| {
                        for var in ["SCALEENGINE_API_KEY", "SCALEENGINE_API_SECRET", "CDNETWORKS_API_KEY"] {
                            jail.set_env(var, "x");
                        }
                        cdn_usage_exporter::config::Config::from_toml_str(toml, "configmap")
                            .map_err(|e| e.to_string())?;
                        Ok(())
                    });
                }
            }
        }
    }
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "ConfigMap",
            "Deployment",
            "Kustomization",
            "Kustomization",
            "PrometheusRule",
            "Secret",
            "Service",
            "ServiceAccount",
            "ServiceMonitor",
            "StatefulSet"
        ]
    );
    for p in [
        "deploy/docker-compose.yml",
        "deploy/grafana/provisioning/datasources/prometheus.yml",
        "deploy/grafana/provisioning/dashboards/cdn-usage-exporter.yml",
        "deploy/prometheus/prometheus.yml",
        "deploy/prometheus/compose-prometheus.yml",
    ] {
        let _: serde_yaml_ng::Value = serde_yaml_ng::from_str(&read(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    }
    let unit = read("deploy/systemd/cdn-usage-exporter.service");
    for line in ["DynamicUser=yes", "ProtectSystem=strict", "NoNewPrivileges=yes", "ExecReload=/bin/kill -HUP $MAINPID"]
    {
        assert!(unit.lines().any(|l| l == line), "systemd unit lacks {line}");
    }
    for dashboard in ["cdn-usage-overview.json", "cdn-usage-video.json", "cdn-usage-exporter-health.json"] {
        let d: Value = serde_json::from_str(&read(&format!("dashboards/{dashboard}"))).unwrap();
        assert!(d["schemaVersion"].as_i64().unwrap() >= 36, "{dashboard}: Grafana 10 schema");
        let vars: Vec<&str> =
            d["templating"]["list"].as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
        assert!(vars.starts_with(&["datasource", "job", "instance", "provider", "account"]), "{dashboard}: {vars:?}");
        let job_var = &d["templating"]["list"][1]["query"]["query"];
        assert_eq!(job_var, "label_values(cdn_exporter_build_info, job)", "{dashboard}");
        for panel in d["panels"].as_array().unwrap() {
            assert_eq!(panel["datasource"]["uid"], "${datasource}", "{dashboard}: {}", panel["title"]);
        }
        let (exprs, _) = dashboard_queries(&std::path::Path::new(ROOT).join("dashboards").join(dashboard));
        for (panel, expr) in exprs {
            assert_filtered_by_job_and_instance(&expr).unwrap_or_else(|e| panic!("{dashboard} / {panel}: {e}"));
        }
        let text = read(&format!("dashboards/{dashboard}"));
        assert!(!text.contains("cdn-usage-exporter.*"), "{dashboard} hard-codes a job");
    }
}

use serde::Deserialize as _;
