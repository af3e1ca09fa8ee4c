//! The FOCUS export of the demo: `cdn-usage-exporter focus` for last month and the current one,
//! its rows adding up to what `/metrics` serves as each account's bill, and the FinOps
//! Foundation's own validator (`focus-validator`, FOCUS 1.2 rules) finding no failed mandatory
//! rule.

use std::collections::BTreeMap;
use std::time::Duration;

use cdn_usage_exporter::app;
use cdn_usage_exporter::config::Config;
use cdn_usage_exporter::focus::{self, COLUMNS};
use cdn_usage_exporter::providers::registry::{demo_state, demo_toml};
use cdn_usage_exporter::simulator::Simulator;
use cdn_usage_exporter::timeutil;

use crate::support::{Scrape, loopback, wait_for};

/// The rows of a FOCUS CSV as column → value maps (quoted fields read as the writer writes them).
pub fn rows(text: &str) -> Vec<BTreeMap<String, String>> {
    let mut records = Vec::new();
    let (mut record, mut field, mut quoted, mut chars) = (Vec::new(), String::new(), false, text.chars().peekable());
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => field.push(c),
        }
    }
    let mut records = records.into_iter();
    let header = records.next().expect("a header");
    assert_eq!(header, COLUMNS.iter().map(|c| c.to_string()).collect::<Vec<_>>());
    records.map(|r| header.iter().cloned().zip(r).collect()).collect()
}

/// The FinOps Foundation's validator on `file`: no failed mandatory rule, and what it cannot
/// check (docs/focus-validator.md) checked here: every usage row has its quantities.
fn judged(file: &std::path::Path) {
    let text = std::fs::read_to_string(file).unwrap();
    for r in rows(&text) {
        if r["ChargeCategory"] == "Usage" {
            for column in ["PricingQuantity", "PricingUnit", "ConsumedQuantity", "ConsumedUnit"] {
                assert!(!r[column].is_empty(), "{}: a usage row without {column}: {r:?}", file.display());
            }
        }
    }
    let Some(judge) = crate::focus_judge::judge() else { return };
    let verdict = judge.validate(file);
    let failed = verdict.failed_mandatory();
    assert!(failed.is_empty(), "{verdict}");
    eprintln!("{}: {} rules, no failed mandatory rule", file.display(), verdict.rules.len());
}

fn cents(v: f64) -> i64 {
    (v * 100.0).round() as i64
}

fn last_month(now: i64) -> i64 {
    timeutil::month_start(timeutil::month_start(now.div_euclid(86_400)) - 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_months_export_adds_up_to_each_accounts_bill_on_metrics() {
    let sim = Simulator::start(loopback(), demo_state()).await.unwrap();
    let config = Config::from_toml_str(&demo_toml(&sim.addr.to_string()), "demo").unwrap();
    let now = timeutil::now_unix();
    let report = focus::collect::run(&config, last_month(now), now).await.unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.bills.len(), config.accounts.len(), "every account has a bill");
    let text = focus::csv(&report.bills);
    // Kept for a person to read, and for the validator's test.
    std::fs::write(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("focus-demo-last-month.csv"), &text).unwrap();
    let rows = rows(&text);
    assert!(rows.len() > 30, "daily rows where the provider gives days: {}", rows.len());

    // What the exporter serves as last month's bill, in US dollars, and the rates.
    let exporter = app::start(&config, loopback()).await.unwrap();
    let url = format!("http://{}/metrics", exporter.addr);
    let http = reqwest::Client::new();
    let s = wait_for(Duration::from_secs(60), "every account's bills and currency", || async {
        let s = Scrape::parse(&http.get(&url).send().await.ok()?.text().await.ok()?);
        let done = config.accounts.iter().all(|a| {
            let l = [("provider", a.provider()), ("account", a.name())];
            s.get("cdn_billing_last_month_spend_usd", &l).is_some()
                && s.get("cdn_billing_month_to_date_spend_usd", &l).is_some()
                && !s.all("cdn_billing_exchange_rate", &l).is_empty()
        });
        done.then_some(s)
    })
    .await;
    // The same month served by the exporter from what its polls hold (one row per item).
    let base = format!("http://{}", exporter.addr);
    let served = http.get(format!("{base}/focus")).send().await.unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(served.headers()["content-type"], "text/csv; charset=utf-8");
    let served = served.text().await.unwrap();
    std::fs::write(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("focus-served-last-month.csv"), &served)
        .unwrap();
    let served = self::rows(&served);
    let this_month = &timeutil::format_ymd(timeutil::month_start(now.div_euclid(86_400)))[..7];
    let current = http.get(format!("{base}/focus?month={this_month}")).send().await.unwrap().text().await.unwrap();
    std::fs::write(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("focus-served-this-month.csv"), &current)
        .unwrap();
    let current = self::rows(&current);
    // Accounts whose spend to date moved while /focus was read (a poll in between).
    let again = Scrape::parse(&http.get(&url).send().await.unwrap().text().await.unwrap());
    let moved: Vec<String> = report
        .bills
        .iter()
        .filter(|b| {
            let l = [("provider", b.provider), ("account", b.account.as_str())];
            s.get("cdn_billing_month_to_date_spend_usd", &l) != again.get("cdn_billing_month_to_date_spend_usd", &l)
        })
        .map(|b| format!("{}:{}", b.provider, b.account))
        .collect();
    assert!(moved.len() < report.bills.len(), "some account's spend held still: {moved:?}");
    let long = format!("month={}", "9".repeat(4000));
    for (query, status) in [("month=2020-01", 404), ("month=soon", 400), ("month=2026-1", 400), (long.as_str(), 400)] {
        let got = http.get(format!("{base}/focus?{query}")).send().await.unwrap().status();
        assert_eq!(got, status, "{query}");
    }
    exporter.stop().await;
    // An account whose months are in another zone (CDNetworks, GMT+9) may already be in the
    // next month near the UTC month's end: its "last month" on /metrics is not the one exported.
    let in_step = |b: &focus::Bill| {
        let (start, _) = focus::period(last_month(now), 0);
        let offset = b.period_start - start;
        let same = focus::collect::current_month(now, -offset) == timeutil::month_start(now.div_euclid(86_400));
        if !same {
            eprintln!("{}:{}: its month has already turned; not compared", b.provider, b.account);
        }
        same
    };
    for b in report.bills.iter().filter(|b| in_step(b)) {
        let id = format!("{}:{}", b.provider, b.account);
        let l = [("provider", b.provider), ("account", b.account.as_str())];
        let rate = s.all("cdn_billing_exchange_rate", &l)[0].value;
        let sum = |rows: &[BTreeMap<String, String>]| -> f64 {
            rows.iter().filter(|r| r["BillingAccountId"] == id).map(|r| r["BilledCost"].parse::<f64>().unwrap()).sum()
        };
        let usd = cents(s.value("cdn_billing_last_month_spend_usd", &l));
        assert_eq!(cents(sum(&served) * rate), usd, "{id}: /focus against /metrics");
        let to_date = cents(s.value("cdn_billing_month_to_date_spend_usd", &l));
        // A poll between the scrape and /focus moves both: compared when they saw the same poll.
        let agree = (cents(sum(&current) * rate) - to_date).abs() <= 1;
        assert!(agree || moved.contains(&id), "{id}: /focus this month against /metrics");
    }
    for b in report.bills.iter().filter(|b| in_step(b)) {
        let l = [("provider", b.provider), ("account", b.account.as_str())];
        let rate = s.all("cdn_billing_exchange_rate", &l)[0].value;
        let id = format!("{}:{}", b.provider, b.account);
        let mine: Vec<_> = rows.iter().filter(|r| r["BillingAccountId"] == id).collect();
        assert!(mine.iter().all(|r| r["BillingCurrency"] == b.currency));
        let billed: f64 = mine.iter().map(|r| r["BilledCost"].parse::<f64>().unwrap()).sum();
        assert_eq!(
            cents(billed * rate),
            cents(s.value("cdn_billing_last_month_spend_usd", &l)),
            "{id}: the rows ({billed} {}) × {rate} against /metrics",
            b.currency
        );
    }
    // The demo's CDNetworks contract is in euros, priced day by day.
    let cdn: Vec<_> = rows.iter().filter(|r| r["x_ExporterProvider"] == "cdnetworks").collect();
    assert!(cdn.iter().all(|r| r["BillingCurrency"] == "EUR" && r["ProviderName"] == "CDNetworks"));
    let traffic_days = cdn.iter().filter(|r| r["x_ExporterItem"] == "traffic").count();
    assert!(traffic_days >= 28, "a row per day of traffic: {traffic_days}");
    assert!(
        cdn.iter().any(|r| r["ChargeFrequency"] == "Recurring" && r["PricingUnit"] == "Months"),
        "the fee, month by month"
    );
    assert!(rows.iter().all(|r| r["InvoiceId"].ends_with(&timeutil::format_ymd(last_month(now))[..7])));
    sim.stop().await;
    let tmp = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    for file in ["focus-demo-last-month.csv", "focus-served-last-month.csv", "focus-served-this-month.csv"] {
        let file = tmp.join(file);
        tokio::task::block_in_place(|| judged(&file));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_writes_the_current_month_to_date_and_refuses_a_bad_month() {
    let sim = Simulator::start(loopback(), demo_state()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("demo.toml");
    std::fs::write(&config, demo_toml(&sim.addr.to_string())).unwrap();
    let out = dir.path().join("focus.csv");
    let now = timeutil::now_unix();
    let month = &timeutil::format_ymd(timeutil::month_start(now.div_euclid(86_400)))[..7];
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_cdn-usage-exporter"))
            .args(["--log.level", "warn", "--config"])
            .arg(&config)
            .arg("focus")
            .args(args)
            .output()
            .expect("runs")
    };
    let o = tokio::task::block_in_place(|| run(&["--month", month, "--out", out.to_str().unwrap()]));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows = rows(&std::fs::read_to_string(&out).unwrap());
    let accounts: std::collections::BTreeSet<&str> = rows.iter().map(|r| r["BillingAccountId"].as_str()).collect();
    assert_eq!(
        accounts.len(),
        cdn_usage_exporter::providers::registry::NAMES.len(),
        "every demo account has charges to date: {accounts:?}"
    );
    for r in &rows {
        assert!(r["ChargePeriodEnd"] <= focus::datetime(now + 120), "nothing past now: {r:?}");
    }
    tokio::task::block_in_place(|| judged(&out));
    for bad in ["2026-13", "next", "2999-01"] {
        let o = tokio::task::block_in_place(|| run(&["--month", bad]));
        assert_eq!(o.status.code(), Some(64), "{bad}: {}", String::from_utf8_lossy(&o.stderr));
        assert!(String::from_utf8_lossy(&o.stderr).contains("--month"));
    }
    sim.stop().await;
}
