//! The rules under evaluation: read from a rules YAML, narrowed to the recording rules the
//! forecast and its alert need, plus eval-only rules, split into dependency levels because
//! `promtool tsdb create-blocks-from rules` cannot see what rules of the same run record.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// The forecast series whose accuracy is measured.
pub const FORECAST: &str = "cdn:billing_spend_usd:forecast";
/// The low end of its 80 % interval.
pub const FORECAST_LOW: &str = "cdn:billing_spend_usd:forecast_low";
/// The high end of its 80 % interval.
pub const FORECAST_HIGH: &str = "cdn:billing_spend_usd:forecast_high";
/// The old linear forecast, kept as the baseline.
pub const LINEAR: &str = "eval:forecast_linear";
/// The expr of the alert, recorded: present when the alert's condition holds.
pub const ALERT_CONDITION: &str = "eval:alert_condition";
/// The alert whose condition is evaluated.
pub const ALERT: &str = "CdnForecastSpendOverBudget";

const ELAPSED: &str = "((day_of_month() - 1) * 86400 + hour() * 3600 + minute() * 60) / (days_in_month() * 86400)";

#[derive(Debug, Deserialize)]
struct File {
    groups: Vec<Group>,
}

#[derive(Debug, Deserialize)]
struct Group {
    rules: Vec<Rule>,
}

/// One rule of a rules file, recording or alerting.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Rule {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    #[serde(skip_serializing)]
    pub alert: Option<String>,
    pub expr: String,
    #[serde(rename = "for", skip_serializing)]
    pub for_: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub labels: BTreeMap<String, String>,
}

/// What the evaluation runs: recording rules by level, and the alert's `for`.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Level 0 needs no recorded series; level n needs some of level n - 1.
    pub levels: Vec<Vec<Rule>>,
    /// The alert's `for`, in seconds; `None` when the rules have no such alert.
    pub alert_for: Option<i64>,
    /// Forecast series that no rule records (reported as missing).
    pub missing: Vec<&'static str>,
}

/// Reads a rules YAML and plans its evaluation.
pub fn plan(yaml: &str) -> Result<Plan, String> {
    let file: File = serde_yaml_ng::from_str(yaml).map_err(|e| format!("rules YAML: {e}"))?;
    let all: Vec<Rule> = file.groups.into_iter().flat_map(|g| g.rules).collect();
    let mut rules: Vec<Rule> = all.iter().filter(|r| r.record.is_some()).cloned().collect();
    rules.push(recording(
        LINEAR,
        &format!("max by (provider, account) (cdn_billing_month_to_date_spend_usd) / scalar({ELAPSED})"),
    ));
    let alert = all.iter().find(|r| r.alert.as_deref() == Some(ALERT));
    let alert_for = match alert {
        Some(a) => {
            rules.push(recording(ALERT_CONDITION, &a.expr));
            Some(a.for_.as_deref().map_or(Ok(0), parse_duration)?)
        }
        None => None,
    };
    let recorded: BTreeSet<String> = rules.iter().filter_map(|r| r.record.clone()).collect();
    let missing = [FORECAST, FORECAST_LOW, FORECAST_HIGH].into_iter().filter(|n| !recorded.contains(*n)).collect();
    // Only the rules the measured series need: the others cost a promtool pass and say nothing.
    let mut wanted: BTreeSet<String> =
        [FORECAST, FORECAST_LOW, FORECAST_HIGH, LINEAR, ALERT_CONDITION].iter().map(|s| s.to_string()).collect();
    loop {
        let more: BTreeSet<String> = rules
            .iter()
            .filter(|r| r.record.as_ref().is_some_and(|n| wanted.contains(n)))
            .flat_map(|r| references(&r.expr, &recorded))
            .filter(|n| !wanted.contains(n))
            .collect();
        if more.is_empty() {
            break;
        }
        wanted.extend(more);
    }
    rules.retain(|r| r.record.as_ref().is_some_and(|n| wanted.contains(n)));
    Ok(Plan { levels: levels(&rules, &recorded)?, alert_for, missing })
}

fn recording(name: &str, expr: &str) -> Rule {
    Rule { record: Some(name.into()), alert: None, expr: expr.into(), for_: None, labels: BTreeMap::new() }
}

/// The recorded names that `expr` mentions as whole words.
fn references(expr: &str, recorded: &BTreeSet<String>) -> Vec<String> {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    expr.split(|c: char| !word(c)).filter(|w| recorded.contains(*w)).map(str::to_owned).collect()
}

fn levels(rules: &[Rule], recorded: &BTreeSet<String>) -> Result<Vec<Vec<Rule>>, String> {
    let deps: Vec<Vec<usize>> = rules
        .iter()
        .map(|rule| {
            let refs = references(&rule.expr, recorded);
            (0..rules.len()).filter(|&j| rules[j].record.as_ref().is_some_and(|n| refs.contains(n))).collect()
        })
        .collect();
    // Longest path to a rule without references; more passes than rules means a cycle.
    let mut level = vec![0usize; rules.len()];
    for _ in 0..=rules.len() {
        let mut changed = false;
        for (i, ds) in deps.iter().enumerate() {
            for &j in ds.iter().filter(|&&j| j != i) {
                if level[i] < level[j] + 1 {
                    level[i] = level[j] + 1;
                    changed = true;
                }
            }
        }
        if !changed {
            let depth = level.iter().max().map_or(0, |l| l + 1);
            let mut out = vec![Vec::new(); depth];
            for (rule, l) in rules.iter().zip(level) {
                out[l].push(rule.clone());
            }
            return Ok(out);
        }
    }
    Err("recording rules depend on each other in a cycle".into())
}

/// The group name of every level. promtool evaluates a group at an offset into each interval
/// hashed from its name and file path; this name with the file `rules.yml` gives 41 s past the
/// hour (promtool 2.42, found by trying names), so that a forecast is computed as of the hour
/// of the hourly samples it reads. The report prints the offset actually seen.
const GROUP: &str = "forecast-eval-3";

/// One level as a rules file for promtool. No group `interval`: promtool's `--eval-interval`
/// sets the step.
pub fn rules_file(level: &[Rule]) -> Result<String, String> {
    #[derive(Serialize)]
    struct OutGroup<'a> {
        name: &'a str,
        rules: &'a [Rule],
    }
    #[derive(Serialize)]
    struct OutFile<'a> {
        groups: [OutGroup<'a>; 1],
    }
    serde_yaml_ng::to_string(&OutFile { groups: [OutGroup { name: GROUP, rules: level }] })
        .map_err(|e| format!("rules file: {e}"))
}

/// A Prometheus duration (`2h`, `1h30m`, `90s`, `1d`) in seconds.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let (mut total, mut number) = (0i64, String::new());
    let mut chars = text.trim().chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = if c == 'm' && chars.peek() == Some(&'s') {
            chars.next();
            "ms"
        } else {
            match c {
                's' => "s",
                'm' => "m",
                'h' => "h",
                'd' => "d",
                'w' => "w",
                'y' => "y",
                _ => return Err(format!("bad duration {text:?}")),
            }
        };
        let n: i64 = number.parse().map_err(|_| format!("bad duration {text:?}"))?;
        number.clear();
        total += match unit {
            "ms" => n / 1000,
            "s" => n,
            "m" => n * 60,
            "h" => n * 3_600,
            "d" => n * 86_400,
            "w" => n * 604_800,
            _ => n * 31_536_000,
        };
    }
    if !number.is_empty() {
        return Err(format!("bad duration {text:?}"));
    }
    Ok(total)
}
