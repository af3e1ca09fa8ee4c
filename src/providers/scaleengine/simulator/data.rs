//! The simulator's ScaleEngine data: deterministic month-to-date usage, billing, disk and video
//! figures for an account, shaped like the provider's Google-table answers.

use serde_json::{Map, Value, json};

use super::SeAccount;
use crate::timeutil;

/// Deterministic data for one request.
pub(super) struct Gen {
    /// Numbers as strings (`Faults::numbers_as_strings`).
    pub(super) strings: bool,
    /// Now, by the simulator's clock.
    pub(super) now: i64,
}

fn round(v: f64, decimals: i32) -> f64 {
    let p = 10f64.powi(decimals);
    (v * p).round() / p
}

impl Gen {
    fn num(&self, v: f64) -> Value {
        if self.strings {
            Value::String(v.to_string())
        } else if v.fract() == 0.0 && v.abs() < 9e15 {
            json!(v as i64)
        } else {
            json!(v)
        }
    }

    /// A Google-table cell.
    fn cell(&self, v: f64, f: String) -> Value {
        json!({"v": self.num(v), "f": f})
    }

    /// Elapsed fraction of the current UTC month (never 0, so estimates stay finite).
    fn month_fraction(&self) -> f64 {
        let today = self.now.div_euclid(86_400);
        let (y, m, _) = timeutil::civil_from_days(today);
        let start = timeutil::days_from_civil(y, m, 1) * 86_400;
        let len = f64::from(timeutil::days_in_month(y, m)) * 86_400.0;
        ((self.now - start) as f64 / len).clamp(0.01, 1.0)
    }

    fn table(&self, cols: Value, rows: Vec<Value>, message: &str) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("data".into(), json!({"cols": cols, "vals": rows}));
        m.insert("message".into(), message.into());
        m
    }

    /// Month totals of the usage types, as (row name, monthly amount, scales with time).
    fn monthly(a: &SeAccount) -> Vec<(&'static str, f64)> {
        let e = a.monthly_edge_gb;
        vec![
            ("Edge Bandwidth:", e),
            ("CDN Bandwidth:", 0.6 * e),
            ("Origin Bandwidth:", 0.05 * e),
            ("VideoCDN Bandwidth:", 0.3 * e),
            ("Edge Requests:", e * 25_000.0),
            ("CDN Requests:", e * 12_000.0),
            ("Origin Requests:", e * 900.0),
            ("VideoCDN Requests:", e * 1_500.0),
            ("SQL SELECT:", 4_000_000.0),
            ("SQL UPDATE:", 300_000.0),
            ("SQL OTHER:", 50_000.0),
            ("SQL Replication Bandwidth:", 12.0),
            ("SQL CPU Hours:", 40.0),
            ("PHP CPU Hours:", 120.0),
            ("Origin CPU Hours:", 0.0),
            ("Origin I/O Transactions:", 40_000.0),
            ("Origin Memory Seconds:", 45_000.0),
        ]
    }

    /// The share of the asked month to report and the month's factor: the current month so
    /// far, a past month in full (scaled by [`month_factor`] so that history is not flat), a
    /// future month not at all.
    fn month_share(&self, req: &Map<String, Value>) -> (f64, f64) {
        let (cy, cm, _) = timeutil::civil_from_days(self.now.div_euclid(86_400));
        let asked = match req.get("starttime") {
            Some(Value::String(s)) => timeutil::parse_ymd(&format!("{}-01", s.get(..7).unwrap_or_default())),
            Some(Value::Number(n)) => n.as_i64().map(|t| t.div_euclid(86_400)),
            _ => None,
        }
        .map(|d| {
            let (y, m, _) = timeutil::civil_from_days(d);
            (y, m)
        });
        match asked.map(|ym| ym.cmp(&(cy, cm))) {
            None | Some(std::cmp::Ordering::Equal) => (self.month_fraction(), 1.0),
            Some(std::cmp::Ordering::Less) => {
                let (y, m) = asked.unwrap_or((cy, cm));
                (1.0, month_factor(y, m))
            }
            Some(std::cmp::Ordering::Greater) => (0.0, 1.0),
        }
    }

    pub(super) fn summary(&self, a: &SeAccount, req: &Map<String, Value>) -> Map<String, Value> {
        let (f, factor) = self.month_share(req);
        let to_date: Vec<(&str, f64)> = Self::monthly(a)
            .into_iter()
            .map(|(name, m)| (name, m * factor))
            .map(|(name, m)| {
                (
                    name,
                    if name.contains("Bandwidth") || name.contains("Hours") {
                        round(m * f, 3)
                    } else {
                        (m * f).round()
                    },
                )
            })
            .collect();
        let get = |n: &str| to_date.iter().find(|(k, _)| *k == n).map(|(_, v)| *v).unwrap_or(0.0);
        let sum = |names: &[&str]| names.iter().map(|n| get(n)).sum::<f64>();
        let row = |name: &str, v: f64| -> Value {
            let f = if name == "Origin CPU Hours:" { "Coming Soon".to_owned() } else { format!("{} ", group(v)) };
            json!([name, self.cell(v, f)])
        };
        let mut rows = Vec::new();
        let bw = ["Edge Bandwidth:", "CDN Bandwidth:", "Origin Bandwidth:", "VideoCDN Bandwidth:"];
        let rq = ["Edge Requests:", "CDN Requests:", "Origin Requests:", "VideoCDN Requests:"];
        let sql = ["SQL SELECT:", "SQL UPDATE:", "SQL OTHER:"];
        for n in bw {
            rows.push(row(n, get(n)));
        }
        rows.push(row("Total Bandwidth:", round(sum(&bw), 3)));
        for n in rq {
            rows.push(row(n, get(n)));
        }
        rows.push(row("Total Requests:", sum(&rq)));
        for n in sql {
            rows.push(row(n, get(n)));
        }
        rows.push(row("SQL Replication Bandwidth:", get("SQL Replication Bandwidth:")));
        rows.push(row("SQL CPU Hours:", get("SQL CPU Hours:")));
        rows.push(row("SQL Query Total:", sum(&sql)));
        rows.push(row("PHP CPU Hours:", get("PHP CPU Hours:")));
        rows.push(row("Origin CPU Hours:", 0.0));
        rows.push(row("Origin Processes:", 6.0));
        rows.push(row("Origin I/O Transactions:", get("Origin I/O Transactions:")));
        rows.push(row("Origin Memory Seconds:", get("Origin Memory Seconds:")));
        rows.push(json!(["Origin Disk:", {"v": self.num(0.0), "f": "Coming Soon"}]));
        self.table(json!([["string", "Name"], ["number", "Total"]]), rows, "Found Usage Summary Data")
    }

    pub(super) fn billing(&self, a: &SeAccount, req: &Map<String, Value>) -> Map<String, Value> {
        let (f, factor) = self.month_share(req);
        let monthly: Vec<(&str, f64)> = Self::monthly(a).into_iter().map(|(n, m)| (n, m * factor)).collect();
        let m = |n: &str| monthly.iter().find(|(k, _)| *k == n).map(|(_, v)| *v).unwrap_or(0.0);
        // (item, monthly usage in the billing unit, price per unit in USD)
        let items: Vec<(&str, f64, f64)> = vec![
            ("Edge Bandwidth:", m("Edge Bandwidth:"), 0.03),
            ("Edge Requests:", m("Edge Requests:") / 10_000.0, 0.0008),
            ("CDN Bandwidth:", m("CDN Bandwidth:"), 0.02),
            ("CDN Requests:", m("CDN Requests:") / 10_000.0, 0.0008),
            ("Origin Bandwidth:", m("Origin Bandwidth:"), 0.05),
            ("Origin Requests:", m("Origin Requests:") / 10_000.0, 0.001),
            ("VideoCDN Bandwidth:", m("VideoCDN Bandwidth:"), 0.02),
            ("Storage Usage:", 800.0, 0.05),
            ("SQL SELECT:", m("SQL SELECT:"), 0.000_000_2),
            ("SQL UPDATE:", m("SQL UPDATE:"), 0.000_001),
            ("SQL OTHER:", m("SQL OTHER:"), 0.000_001),
            ("SQL Replication Bandwidth:", m("SQL Replication Bandwidth:"), 0.05),
            ("SQL CPU Hours:", m("SQL CPU Hours:"), 0.10),
            ("PHP CPU Hours:", m("PHP CPU Hours:"), 0.10),
            ("Origin CPU Hours:", 0.0, 0.10),
        ];
        let mut rows = Vec::new();
        let (mut to_date_total, mut estimated_total) = (0.0, 0.0);
        for (name, month, price) in items {
            let usage = round(month * f, 3);
            let cost = round(usage * price, 2);
            let est_usage = round(month, 3);
            let est_cost = round(month * price, 2);
            to_date_total += cost;
            estimated_total += est_cost;
            rows.push(json!([
                name,
                self.cell(usage, format!("{} ", group(usage))),
                self.cell(cost, format!("${cost:.2}")),
                self.cell(est_usage, format!("{} ", group(est_usage))),
                self.cell(est_cost, format!("${est_cost:.2}")),
            ]));
        }
        let (t, e) = (round(to_date_total, 2), round(estimated_total, 2));
        rows.push(json!([
            "Totals: ",
            {"v": self.num(0.0), "f": "To Date:"},
            self.cell(t, format!("${t:.2}")),
            {"v": self.num(0.0), "f": "Estimated:"},
            self.cell(e, format!("${e:.2}")),
        ]));
        let cols = json!([
            ["string", "Item"],
            ["number", "Usage To Date:"],
            ["number", "Estimated Price:"],
            ["number", "Estimated Usage:"],
            ["number", "Estimated Total:"]
        ]);
        self.table(cols, rows, "Found Usage Summary Data")
    }

    pub(super) fn disk(&self, a: &SeAccount, req: &Map<String, Value>) -> Result<Map<String, Value>, &'static str> {
        let today = self.now.div_euclid(86_400);
        let start_day = match req.get("starttime") {
            Some(Value::Number(n)) => n.as_i64().map(|t| t.div_euclid(86_400)),
            Some(Value::String(s)) => {
                timeutil::parse_ymd(s).or_else(|| s.parse::<i64>().ok().map(|t| t.div_euclid(86_400)))
            }
            _ => None,
        }
        .ok_or("starttime")?;
        let cpu = req.get("cpu").and_then(Value::as_str).ok_or("cpu")?;
        let users: Vec<String> = if cpu.is_empty() || a.users.is_empty() {
            vec![String::new()]
        } else {
            a.users.iter().filter(|u| *u == cpu).cloned().collect()
        };
        let mut usage = Vec::new();
        for day in start_day..(start_day + 30).min(today + 1) {
            for (i, user) in users.iter().enumerate() {
                // 800 GB growing 2 GB a day, per user a share of it.
                let share = if user.is_empty() { 1.0 } else { 1.0 / (i as f64 + 2.0) };
                let bytes = ((800e9 + 2e9 * (day % 1000) as f64) * share).round();
                let bytes = if day == today { (bytes * 0.4).round() } else { bytes };
                usage.push(json!({
                    "summary_date": timeutil::format_ymd(day),
                    "cpu_user": user,
                    "bytes_total": Value::String(format!("{bytes}")),
                }));
            }
        }
        let mut m = Map::new();
        m.insert("message".into(), "Found Disk Data".into());
        m.insert("usage".into(), Value::Array(usage));
        Ok(m)
    }

    pub(super) fn video(&self, a: &SeAccount, req: &Map<String, Value>) -> Result<Map<String, Value>, &'static str> {
        let apps = req.get("app").ok_or("app")?;
        let year = req.get("year").and_then(Value::as_i64).ok_or("year")?;
        let month = req.get("month").and_then(Value::as_i64).ok_or("month")?;
        let (cy, cm, _) = timeutil::civil_from_days(self.now.div_euclid(86_400));
        let today = self.now.div_euclid(86_400);
        let f = match req.get("day").and_then(Value::as_i64) {
            // One day of the month: its share, if the day is over.
            Some(day) => {
                let d = timeutil::days_from_civil(year, month.clamp(1, 12) as u32, day.clamp(1, 31) as u32);
                if d < today { 1.0 / f64::from(timeutil::days_in_month(year, month.clamp(1, 12) as u32)) } else { 0.0 }
            }
            None => match (year, month).cmp(&(cy, i64::from(cm))) {
                std::cmp::Ordering::Less => 1.0,
                std::cmp::Ordering::Equal => self.month_fraction(),
                std::cmp::Ordering::Greater => 0.0,
            },
        };
        let wanted: Vec<&Value> = match apps {
            Value::Array(items) => items.iter().collect(),
            one => vec![one],
        };
        let url_filter: Option<Vec<String>> = match req.get("url") {
            Some(Value::String(s)) if !s.is_empty() => Some(vec![s.clone()]),
            Some(Value::Array(items)) => Some(items.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect()),
            _ => None,
        };
        let mut all = Vec::new();
        for (idx, app) in a.video_apps.iter().enumerate() {
            let hit =
                wanted.iter().any(|w| w.as_str() == Some(app.name.as_str()) || w.as_i64() == Some(idx as i64 + 1));
            if !hit || f == 0.0 {
                continue;
            }
            let total_bytes = a.monthly_edge_gb * 1e9 * 0.3 / a.video_apps.len() as f64 * f;
            let norm: f64 = (0..app.urls).map(|i| 1.0 / (i as f64 + 1.0).powf(1.1)).sum();
            for i in 0..app.urls {
                let url = if app.name == "live" {
                    format!("live/stream{i}")
                } else {
                    format!("sestore/{}/clip-{i:04}.mp4", app.name)
                };
                if url_filter.as_ref().is_some_and(|f| !f.contains(&url)) {
                    continue;
                }
                let bytes = (total_bytes / norm / (i as f64 + 1.0).powf(1.1)).round();
                // Like the docs' example, the first URL comes back as two rows.
                let parts: &[f64] = if i == 0 { &[0.7, 0.3] } else { &[1.0] };
                for p in parts {
                    let b = (bytes * p).round();
                    all.push((url.clone(), b, (b / 50e6).ceil().max(1.0)));
                }
            }
        }
        let count = all.len();
        let offset = req.get("offset").and_then(Value::as_u64).unwrap_or(0) as usize;
        let limit = req.get("limit").and_then(Value::as_u64).map(|l| l as usize).unwrap_or(usize::MAX);
        let usage: Vec<Value> = all
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|(url, bytes, requests)| {
                json!({
                    "video_url": url,
                    "bytes_total": Value::String(format!("{bytes}")),
                    "requests_total": Value::String(format!("{requests}")),
                })
            })
            .collect();
        let mut m = Map::new();
        m.insert("usage".into(), Value::Array(usage));
        m.insert("count".into(), self.num(count as f64));
        m.insert("message".into(), "Found Video Usage".into());
        Ok(m)
    }
}

/// How a past month's usage compares with the configured monthly figures: 0.8 to 1.2,
/// deterministic, so that backfilled history has shape.
pub fn month_factor(year: i64, month: u32) -> f64 {
    0.8 + 0.1 * ((year * 12 + i64::from(month)) % 5) as f64
}

/// `28103` → `"28,103"`, as the provider's `f` strings show numbers.
fn group(v: f64) -> String {
    let whole = format!("{:.0}", v.trunc());
    let mut out = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 && c != '-' {
            out.push(',');
        }
        out.push(c);
    }
    out
}
