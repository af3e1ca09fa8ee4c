//! bunny.net against the simulator over loopback: spend, items, balance and last month's bill
//! equal the `/billing` answer; cost, bandwidth and requests per pull zone equal a computation
//! over the simulator's daily data; storage is exact; a restart rebuilds it all; failures keep
//! the last good values; the bounds hold; and no payment detail, key, certificate or document
//! URL from any answer reaches /metrics, the status page, a log line or an error.

use std::sync::Arc;
use std::time::Duration;

use cdn_usage_exporter::app::{self, Running};
use cdn_usage_exporter::config::Config;
use cdn_usage_exporter::job::JobKey;
use cdn_usage_exporter::providers::bunny::normalize::item_slug;
use cdn_usage_exporter::providers::bunny::simulator::{
    LAST_FOUR, SENSITIVE, SimAccount, SimPullZone, SimStorageZone, data,
};
use cdn_usage_exporter::providers::bunny::{BunnyAccount, history};
use cdn_usage_exporter::providers::common::http::{RetryPolicy, Upstream};
use cdn_usage_exporter::providers::{Account, Context, Window};
use cdn_usage_exporter::simulator::{Faults, SimState, Simulator};
use cdn_usage_exporter::timeutil;
use serde_json::Value;

use crate::support::bunny_part;
use crate::support::{Binary, Launch, Scrape, loopback, wait_for};

const KEY: &str = "bunny-key-SIM-0d9e71";

fn zone(id: i64, name: &str, gb: u64, requests: u64, usd_per_gb: f64) -> SimPullZone {
    SimPullZone {
        id,
        name: name.into(),
        daily_bytes: gb * 1_000_000_000,
        daily_requests: requests,
        usd_per_gb,
        null_charts: false,
    }
}

/// Seven pull zones (two pages of five), two storage zones and a deleted one.
fn account() -> SimAccount {
    SimAccount {
        api_key: KEY.into(),
        deposit_usd: 500.0,
        pull_zones: vec![
            zone(112_233, "assets", 120, 900_000, 0.01),
            zone(445_566, "médias", 480, 150_000, 0.005),
            zone(3, "z3", 1, 10_000, 0.01),
            zone(4, "z4", 2, 20_000, 0.02),
            zone(5, "z5", 3, 30_000, 0.03),
            zone(6, "z6", 4, 40_000, 0.04),
            zone(7, "z7", 5, 50_000, 0.045),
        ],
        storage_zones: vec![
            SimStorageZone { id: 81, name: "files".into(), bytes: 53_687_091_200, files: 18_342, deleted: false },
            SimStorageZone { id: 82, name: "backups".into(), bytes: 7_000_000_001, files: 3, deleted: false },
            SimStorageZone { id: 83, name: "gone".into(), bytes: 5, files: 5, deleted: true },
        ],
        fixed_charges: vec![("MonthlyChargesDNS".into(), 3.0), ("MonthlyChargesScriptingCpu".into(), 1.25)],
    }
}

fn toml(base_url: &str, key: &str, extra: &str) -> String {
    format!(
        r#"
[[bunny]]
name = "bn"
base_url = "{base_url}"
api_key = "{key}"
billing_interval = "1s"
stats_interval = "1s"
storage_interval = "1s"
timeout = "2s"
page_size = 5
budget_usd = 250
{extra}
"#
    )
}

async fn start_exporter(toml: &str) -> Running {
    let config = Config::from_toml_str(toml, "test").unwrap_or_else(|e| panic!("{e}"));
    app::start(&config, loopback()).await.unwrap()
}

async fn scrape(exporter: &Running) -> Scrape {
    let url = format!("http://{}/metrics", exporter.addr);
    Scrape::parse(&reqwest::get(url).await.unwrap().text().await.unwrap())
}

fn health(exporter: &Running, endpoint: &'static str) -> Option<cdn_usage_exporter::store::Health> {
    exporter.store.health(&JobKey::account("bunny", "bn", endpoint))
}

async fn sim_billing(sim: &Simulator) -> Value {
    let url = format!("{}/billing", sim.url("bunny").unwrap());
    let answer = reqwest::Client::new().get(url).header("AccessKey", KEY).send().await.unwrap();
    serde_json::from_str(&answer.text().await.unwrap()).unwrap()
}

/// Month-to-date (bytes, cost, requests) of `zone`, summed here from the simulator's days.
fn expected_zone(z: &SimPullZone, now: i64) -> (f64, f64, f64) {
    let (first, today) = (data::month_first_day(now), now.div_euclid(86_400));
    let bytes: u64 = (first..=today).map(|d| data::day_bytes(z, d, now)).sum();
    let requests: u64 = (first..=today).map(|d| data::day_requests(z, d, now)).sum();
    (bytes as f64, bytes as f64 / 1e9 * z.usd_per_gb, requests as f64)
}

/// What the scrape must show now, or why not.
async fn matches_simulator(sim: &Simulator, s: &Scrape, zones: &[SimPullZone]) -> Result<(), String> {
    let billing = sim_billing(sim).await;
    let l = [("provider", "bunny"), ("account", "bn")];
    let check = |name: &str, labels: &[(&str, &str)], want: f64| -> Result<(), String> {
        let all: Vec<(&str, &str)> = l.iter().copied().chain(labels.iter().copied()).collect();
        match s.get(name, &all) {
            // Sums made in another order may differ in the last bit; nothing more.
            Some(v) if (v - want).abs() <= 1e-12 * want.abs().max(1.0) => Ok(()),
            other => Err(format!("{name}{labels:?} = {other:?}, the simulator says {want}")),
        }
    };
    let field = |k: &str| billing[k].as_f64().unwrap_or_else(|| panic!("{k} in /billing"));
    check("cdn_billing_month_to_date_spend_usd", &[], field("ThisMonthCharges"))?;
    check("cdn_billing_prepaid_balance_usd", &[], field("Balance"))?;
    let mut items = 0;
    for (k, v) in billing.as_object().unwrap() {
        if let Some(item) = k.strip_prefix("MonthlyCharges") {
            check("cdn_billing_month_to_date_cost_usd", &[("item", &item_slug(item))], v.as_f64().unwrap())?;
            items += 1;
        }
    }
    if s.all("cdn_billing_month_to_date_cost_usd", &l).len() != items {
        return Err("one item per MonthlyCharges field".into());
    }
    let now = timeutil::now_unix();
    for z in zones {
        let (bytes, cost, requests) = expected_zone(z, now);
        let zl = [("pull_zone", z.name.as_str()), ("pull_zone_id", &z.id.to_string())];
        check("cdn_month_to_date_bandwidth_bytes", &zl, bytes)?;
        check("cdn_billing_month_to_date_pull_zone_cost_usd", &zl, cost)?;
        check("cdn_month_to_date_requests", &zl, requests)?;
    }
    if s.all("cdn_month_to_date_requests", &l).len() != zones.len() {
        return Err(format!("{} zones with requests", s.all("cdn_month_to_date_requests", &l).len()));
    }
    Ok(())
}

async fn wait_matches(sim: &Simulator, exporter: &Running, zones: &[SimPullZone]) -> Scrape {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let s = scrape(exporter).await;
        let why = match matches_simulator(sim, &s, zones).await {
            Ok(()) => return s,
            Err(why) => why,
        };
        assert!(tokio::time::Instant::now() < deadline, "the exporter never matched the simulator: {why}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn every_figure_equals_the_simulator_and_a_restart_rebuilds_them() {
    let sim =
        Simulator::start(loopback(), SimState::builder().with(bunny_part(vec![account()])).build()).await.unwrap();
    let base = sim.url("bunny").unwrap();
    let config = toml(&base, KEY, "");
    let exporter = start_exporter(&config).await;
    let zones = account().pull_zones;
    let s = wait_matches(&sim, &exporter, &zones).await;

    let l = [("provider", "bunny"), ("account", "bn")];
    assert_eq!(s.value("cdn_billing_budget_usd", &l), 250.0);
    assert_eq!(s.value("cdn_billing_spend_source_info", &[("account", "bn"), ("source", "provider")]), 1.0);
    // Storage: exact, the deleted zone left out.
    for (id, name, bytes, files) in
        [("81", "files", 53_687_091_200.0, 18_342.0), ("82", "backups", 7_000_000_001.0, 3.0)]
    {
        let zl = [("account", "bn"), ("storage_zone", name), ("storage_zone_id", id)];
        assert_eq!(s.value("cdn_storage_bytes", &zl), bytes);
        assert_eq!(s.value("cdn_storage_files", &zl), files);
    }
    assert_eq!(s.all("cdn_storage_bytes", &l).len(), 2, "the deleted zone is not listed");
    // Last month's bill: the newest MonthlyUsage record, booked on this month's first day.
    let now = timeutil::now_unix();
    let previous = data::past_months(now, 1)[0];
    if now >= data::booked_at(data::month_first_day(now)) {
        assert_eq!(s.value("cdn_billing_last_month_spend_usd", &l), data::monthly_bill(previous));
    }
    for endpoint in ["billing", "billing/summary", "statistics", "storagezone"] {
        assert_eq!(s.value("cdn_exporter_poll_up", &[("account", "bn"), ("endpoint", endpoint)]), 1.0, "{endpoint}");
    }

    // Every request as the API wants it: the key, pages from 1, the chart flags set.
    let requests = sim.state.bunny_requests();
    assert!(requests.iter().all(|r| r.authorized));
    let listing: Vec<_> = requests.iter().filter(|r| r.path == "/pullzone").collect();
    assert!(listing.iter().all(|r| r.query.get("perPage").map(String::as_str) == Some("5")));
    assert!(listing.iter().all(|r| r.query.get("includeCertificate").map(String::as_str) == Some("false")));
    assert!(listing.iter().any(|r| r.query.get("page").map(String::as_str) == Some("2")), "seven zones, two pages");
    assert!(listing.iter().all(|r| r.query.get("page").is_some_and(|p| p != "0" && p != "3")));
    let stats: Vec<_> = requests.iter().filter(|r| r.path == "/statistics").collect();
    assert!(!stats.is_empty());
    let month = timeutil::format_ymd(data::month_first_day(now));
    for r in &stats {
        assert_eq!(r.query.get("loadRequestsServed").map(String::as_str), Some("true"));
        assert_eq!(r.query.get("loadBandwidthUsed").map(String::as_str), Some("true"));
        assert!(r.query["dateFrom"].starts_with(&month), "{:?}", r.query);
    }

    // A restart rebuilds everything from the API alone.
    exporter.stop().await;
    let exporter = start_exporter(&config).await;
    wait_matches(&sim, &exporter, &zones).await;
    exporter.stop().await;
    sim.stop().await;
}

#[tokio::test]
async fn configured_zones_bare_arrays_and_failures_that_keep_the_last_values() {
    let sim =
        Simulator::start(loopback(), SimState::builder().with(bunny_part(vec![account()])).build()).await.unwrap();
    let base = sim.url("bunny").unwrap();
    let exporter = start_exporter(&toml(&base, KEY, "pull_zones = [445566, 3]\nmax_age = \"1h\"")).await;
    let zones: Vec<SimPullZone> = account().pull_zones.into_iter().filter(|z| z.id == 445_566 || z.id == 3).collect();
    wait_matches(&sim, &exporter, &zones).await;
    let s = scrape(&exporter).await;
    assert_eq!(s.all("cdn_month_to_date_bandwidth_bytes", &[("account", "bn")]).len(), 2, "only the configured zones");

    // Bare arrays instead of the envelope.
    sim.state.set_faults(Faults { bare_envelope: true, ..Faults::default() });
    let before = health(&exporter, "storagezone").unwrap().polls;
    wait_for(Duration::from_secs(10), "polls on bare arrays", || async {
        let (st, sm) = (health(&exporter, "storagezone")?, health(&exporter, "billing/summary")?);
        (st.polls > before + 1 && st.up && sm.up).then_some(())
    })
    .await;
    wait_matches(&sim, &exporter, &zones).await;

    // 429 on /billing alone: throttled, the last values kept, the other jobs fine.
    sim.state.set_faults(Faults {
        failure_code: Some("429".into()),
        only_command: Some("/billing".into()),
        ..Faults::default()
    });
    let billing = [("account", "bn"), ("endpoint", "billing")];
    let kept = wait_for(Duration::from_secs(15), "a throttled /billing poll on /metrics", || async {
        let s = scrape(&exporter).await;
        let throttled: Vec<(&str, &str)> = billing.iter().copied().chain([("reason", "throttled")]).collect();
        (s.get("cdn_exporter_poll_up", &billing)? == 0.0 && s.get("cdn_exporter_poll_errors_total", &throttled)? >= 1.0)
            .then(|| s.get("cdn_billing_month_to_date_spend_usd", &[("account", "bn")]))
            .flatten()
    })
    .await;
    let failed = health(&exporter, "billing").unwrap().errors.values().sum::<u64>();
    let h = wait_for(Duration::from_secs(20), "two more throttled polls", || async {
        health(&exporter, "billing").filter(|h| h.errors.values().sum::<u64>() >= failed + 2)
    })
    .await;
    assert_eq!(h.last_error.unwrap().reason.as_str(), "throttled");
    let s = wait_for(Duration::from_secs(5), "a fresh render", || async {
        let s = scrape(&exporter).await;
        let errors: f64 = s.all("cdn_exporter_poll_errors_total", &billing).iter().map(|x| x.value).sum();
        (errors >= (failed + 2) as f64).then_some(s)
    })
    .await;
    assert_eq!(s.value("cdn_billing_month_to_date_spend_usd", &[("account", "bn")]), kept, "the last good value stays");
    assert_eq!(s.value("cdn_exporter_poll_up", &billing), 0.0);
    assert_eq!(s.value("cdn_exporter_poll_up", &[("account", "bn"), ("endpoint", "storagezone")]), 1.0);
    sim.state.set_faults(Faults::default());
    exporter.stop().await;

    // A wrong key: 401 with an empty body, an auth error that names neither key.
    let exporter = start_exporter(&toml(&base, "wrong-SIM-key-77", "")).await;
    let h = wait_for(Duration::from_secs(10), "a refused poll", || async {
        health(&exporter, "billing").filter(|h| h.polls > 0)
    })
    .await;
    let e = h.last_error.expect("refused");
    assert_eq!(e.reason.as_str(), "auth");
    assert!(e.message.contains("HTTP 401") && e.message.contains("(empty body)"), "{}", e.message);
    assert!(!e.message.contains("wrong-SIM-key-77") && !e.message.contains(KEY), "{}", e.message);
    exporter.stop().await;

    // A configured zone the account does not have: the poll says which entry to fix.
    let exporter = start_exporter(&toml(&base, KEY, "pull_zones = [3, 999]")).await;
    let h = wait_for(Duration::from_secs(10), "the per-zone poll", || async {
        health(&exporter, "statistics").filter(|h| h.polls > 0)
    })
    .await;
    let e = h.last_error.expect("failed");
    assert_eq!(e.reason.as_str(), "provider");
    assert!(e.message.contains("pull zone 999 (pull_zones[1])"), "{}", e.message);
    exporter.stop().await;
    sim.stop().await;
}

#[tokio::test]
async fn answers_past_the_bounds_fail_with_the_key_that_raises_them() {
    let sim =
        Simulator::start(loopback(), SimState::builder().with(bunny_part(vec![account()])).build()).await.unwrap();
    let base = sim.url("bunny").unwrap();
    for (extra, endpoint, says) in [
        ("max_pull_zones = 6", "billing/summary", "more than max_pull_zones (6)"),
        ("max_pull_zones = 6", "statistics", "more than max_pull_zones (6)"),
        ("max_pages = 1", "billing/summary", "raise max_pages"),
        ("max_storage_zones = 1", "storagezone", "more than max_storage_zones (1)"),
        ("answer_bytes = 1024", "billing", "answer_bytes"),
        ("list_entries = 4", "statistics", "raise `list_entries`"),
    ] {
        let exporter = start_exporter(&toml(&base, KEY, extra)).await;
        let h = wait_for(Duration::from_secs(10), endpoint, || async {
            health(&exporter, endpoint).filter(|h| h.polls > 0)
        })
        .await;
        let e = h.last_error.unwrap_or_else(|| panic!("{extra}: {endpoint} must fail"));
        assert_eq!(e.reason.as_str(), "parse", "{extra}: {}", e.message);
        assert!(e.message.contains(says), "{extra}: {}", e.message);
        exporter.stop().await;
    }
    sim.stop().await;
}

use crate::support::Collect;

#[tokio::test]
async fn backfill_writes_daily_month_to_date_figures_and_monthly_bills() {
    let sim =
        Simulator::start(loopback(), SimState::builder().with(bunny_part(vec![account()])).build()).await.unwrap();
    let config =
        Config::from_toml_str(&toml(&sim.url("bunny").unwrap(), KEY, "pull_zones = [112233, 4]"), "t").unwrap();
    let account = config.accounts_of::<BunnyAccount>()[0];
    let http = reqwest::Client::new();
    let upstream = Upstream::new(Arc::new(tokio::sync::Semaphore::new(4)), 4, RetryPolicy::default());
    let units = account.history(&Context { http: &http, upstream: &upstream }).unwrap();
    let names: Vec<String> = units.iter().map(|u| u.name()).collect();
    assert_eq!(names, ["bunny/bn/statistics", "bunny/bn/billing"]);
    let now = timeutil::now_unix();
    let today = now.div_euclid(86_400);
    // Two whole months back, to yesterday; emit from the 10th of the month before last.
    let months = data::past_months(now, 2);
    let from = months[1] + 9;
    let zones: Vec<SimPullZone> =
        self::account().pull_zones.into_iter().filter(|z| z.id == 112_233 || z.id == 4).collect();

    let mut stats = Collect::default();
    let windows = units[0].windows(from, today - 1, now);
    assert_eq!(windows.first().map(|w| w.0), Some(months[1]), "a month's sums start on its first day");
    for (first, last) in &windows {
        units[0].fetch(Window { first: *first, last: *last, emit_from: from, now }, &mut stats).await.unwrap();
    }
    let days = (today - from) as usize;
    assert_eq!(stats.0.len(), days, "one point per day from the 10th to yesterday");
    for (at, samples) in &stats.0 {
        let day = (at + 1) / 86_400 - 1;
        let first = timeutil::month_start(day);
        for z in &zones {
            let bytes: u64 = (first..=day).map(|d| data::day_bytes(z, d, now)).sum();
            let requests: u64 = (first..=day).map(|d| data::day_requests(z, d, now)).sum();
            let find = |name: &str| {
                samples
                    .iter()
                    .find(|s| s.family.def().name == name && s.labels[1].1 == z.id.to_string())
                    .map(|s| s.value)
            };
            assert_eq!(find("cdn_month_to_date_bandwidth_bytes"), Some(bytes as f64), "{} on {day}", z.name);
            assert_eq!(find("cdn_month_to_date_requests"), Some(requests as f64), "{} on {day}", z.name);
        }
    }

    let mut bills = Collect::default();
    for (first, last) in units[1].windows(from, today - 1, now) {
        units[1].fetch(Window { first, last, emit_from: from, now }, &mut bills).await.unwrap();
    }
    // The month before last ended: its bill (booked last month) is its final spend.
    let end = months[0] * 86_400 - 1;
    let at_end = &bills.0[&end];
    let spend = at_end.iter().find(|s| s.family.def().name == "cdn_billing_month_to_date_spend_usd").unwrap();
    assert_eq!(spend.value, data::monthly_bill(months[1]));
    // During last month, last month's bill is the one of the month before last.
    let mid_last = (months[0] + 14) * 86_400 + 86_399;
    let last = bills.0[&mid_last].iter().find(|s| s.family.def().name == "cdn_billing_last_month_spend_usd").unwrap();
    assert_eq!(last.value, data::monthly_bill(months[1]));
    sim.stop().await;
}

/// bunny.net makes every `/statistics` chart nullable: a zone whose charts come back null has no
/// figure from them, and every other zone still has its own, live and in backfill.
#[tokio::test]
async fn a_null_chart_is_no_data_for_that_zone_and_fails_no_other() {
    let mut with_null = account();
    with_null.pull_zones[2].null_charts = true; // z3
    let nulled = with_null.pull_zones[2].id.to_string();
    let sim = Simulator::start(loopback(), SimState::builder().with(bunny_part(vec![with_null.clone()])).build())
        .await
        .unwrap();
    let exporter = start_exporter(&toml(&sim.url("bunny").unwrap(), KEY, "")).await;
    // Both jobs' figures: the statistics job's requests, and the summary job's bytes (two jobs,
    // whose first polls land in either order).
    let s = wait_for(Duration::from_secs(20), "requests of the zones with charts, and every zone's bytes", || async {
        let s = scrape(&exporter).await;
        let requests = s.all("cdn_month_to_date_requests", &[("provider", "bunny")]).len() == 6;
        (requests && s.get("cdn_month_to_date_bandwidth_bytes", &[("pull_zone_id", &nulled)]).is_some()).then_some(s)
    })
    .await;
    assert_eq!(health(&exporter, "statistics").map(|h| h.up), Some(true), "the statistics job succeeds");
    let now = timeutil::now_unix();
    for z in &with_null.pull_zones {
        let requests = s.get("cdn_month_to_date_requests", &[("pull_zone_id", &z.id.to_string())]);
        if z.null_charts {
            assert_eq!(requests, None, "no requests figure for {}, whose chart is null", z.name);
        } else {
            assert_eq!(requests, Some(expected_zone(z, now).2), "{} keeps its figure", z.name);
        }
    }
    // The rest of the zone (its bytes and cost, from /billing/summary) is still exported.
    assert!(s.get("cdn_month_to_date_bandwidth_bytes", &[("pull_zone_id", &nulled)]).is_some());
    exporter.stop().await;

    // Backfill: the same, day by day.
    let config = Config::from_toml_str(&toml(&sim.url("bunny").unwrap(), KEY, ""), "t").unwrap();
    let account = config.accounts_of::<BunnyAccount>()[0];
    let http = reqwest::Client::new();
    let upstream = Upstream::new(Arc::new(tokio::sync::Semaphore::new(4)), 4, RetryPolicy::default());
    let units = account.history(&Context { http: &http, upstream: &upstream }).unwrap();
    let today = now.div_euclid(86_400);
    let first = data::past_months(now, 1)[0];
    let mut stats = Collect::default();
    units[0].fetch(Window { first, last: first + 2, emit_from: first, now }, &mut stats).await.unwrap();
    assert_eq!(stats.0.len(), 3.min((today - first) as usize));
    for samples in stats.0.values() {
        let zones: Vec<&str> = samples.iter().map(|s| s.labels[1].1.as_str()).collect();
        assert!(!zones.contains(&nulled.as_str()), "no figure for the zone whose charts are null");
        assert_eq!(zones.len(), 2 * (with_null.pull_zones.len() - 1), "both figures of every other zone");
    }
    sim.stop().await;
}

/// bunny.net serves statistics for the last year only: a backfill that reaches further writes
/// the months inside the year and leaves out, once, those that begin before it.
#[tokio::test]
async fn backfill_past_a_year_writes_the_months_inside_it() {
    let sim =
        Simulator::start(loopback(), SimState::builder().with(bunny_part(vec![account()])).build()).await.unwrap();
    let config = Config::from_toml_str(&toml(&sim.url("bunny").unwrap(), KEY, "pull_zones = [4]"), "t").unwrap();
    let account = config.accounts_of::<BunnyAccount>()[0];
    let http = reqwest::Client::new();
    let upstream = Upstream::new(Arc::new(tokio::sync::Semaphore::new(4)), 4, RetryPolicy::default());
    let units = account.history(&Context { http: &http, upstream: &upstream }).unwrap();
    let now = timeutil::now_unix();
    let today = now.div_euclid(86_400);
    let from = today - 400;
    let oldest = today - history::STATS_HISTORY_DAYS;
    let windows = units[0].windows(from, today - 1, now);
    assert!(!windows.is_empty() && windows.iter().all(|(first, _)| *first >= oldest), "{windows:?}");
    assert_eq!(windows.last().map(|w| w.1), Some(today - 1));
    let first_kept = windows[0].0;
    assert!(first_kept - oldest < 31, "the first month inside the year is kept");
    let mut stats = Collect::default();
    for (first, last) in &windows {
        units[0].fetch(Window { first: *first, last: *last, emit_from: from, now }, &mut stats).await.unwrap();
    }
    assert_eq!(stats.0.len(), (today - first_kept) as usize, "every day inside the year, written");
    // The simulator refuses what bunny.net refuses: a window that begins before the year.
    let too_old =
        Window { first: timeutil::month_start(from), last: timeutil::month_start(from) + 5, emit_from: from, now };
    assert!(units[0].fetch(too_old, &mut Collect::default()).await.is_err());
    // Billing records are not statistics: their windows are not clamped.
    assert_eq!(units[1].windows(from, today - 1, now)[0].0, timeutil::month_start(from));
    sim.stop().await;
}

fn assert_clean(what: &str, text: &str) {
    for secret in SENSITIVE.iter().chain([&KEY]) {
        assert!(!text.contains(secret), "{secret} leaked into {what}:\n{text}");
    }
    let tokens: Vec<&str> = text.split(|c: char| !c.is_ascii_alphanumeric()).collect();
    assert!(!tokens.contains(&LAST_FOUR), "the card's last four digits leaked into {what}:\n{text}");
}

#[tokio::test]
async fn no_payment_detail_key_or_document_url_reaches_any_output() {
    let sim =
        Simulator::start(loopback(), SimState::builder().with(bunny_part(vec![account()])).build()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
    let config = toml(&sim.url("bunny").unwrap(), KEY, "")
        .replace(&format!("api_key = \"{KEY}\""), &format!("api_key_file = \"{}\"", key_file.display()));
    std::fs::write(&path, &config).unwrap();
    let exporter = Binary::start(&path, Launch { args: vec!["--log.level", "debug"], ..Launch::default() });
    let base = format!("http://{}", exporter.addr());
    let http = reqwest::Client::new();
    let get = |p: &'static str| {
        let (http, base) = (http.clone(), base.clone());
        async move { http.get(format!("{base}{p}")).send().await.unwrap().text().await.unwrap() }
    };
    // The answers do carry every sensitive value: the test below is not vacuous.
    let raw = {
        let sim_base = sim.url("bunny").unwrap();
        let mut raw = String::new();
        for p in ["/billing", "/pullzone?page=1", "/storagezone?page=1"] {
            let answer = http.get(format!("{sim_base}{p}")).header("AccessKey", KEY).send().await.unwrap();
            raw.push_str(&answer.text().await.unwrap());
        }
        raw
    };
    for secret in SENSITIVE.iter().chain([&LAST_FOUR]) {
        assert!(raw.contains(secret), "the simulator's answers carry {secret}");
    }
    let mut seen = Vec::new();
    let body = wait_for(Duration::from_secs(20), "every bunny job up", || async {
        let text = get("/metrics").await;
        let s = Scrape::parse(&text);
        let up = s.all("cdn_exporter_poll_up", &[("provider", "bunny")]);
        (up.len() == 4 && up.iter().all(|x| x.value == 1.0)).then_some(text)
    })
    .await;
    seen.push(("/metrics", body));
    seen.push(("the status page", get("/").await));
    // Every failure the simulator can give, each seen on /metrics and the status page.
    for faults in [
        Faults { failure_code: Some("401".into()), ..Faults::default() },
        Faults { failure_code: Some("429".into()), ..Faults::default() },
        Faults { http_500: true, ..Faults::default() },
        Faults { chaos: 1.0, ..Faults::default() },
    ] {
        let errors = |text: &str| -> f64 {
            Scrape::parse(text).all("cdn_exporter_poll_errors_total", &[]).iter().map(|x| x.value).sum()
        };
        let before = errors(&get("/metrics").await);
        sim.state.set_faults(faults);
        wait_for(Duration::from_secs(20), "polls failing under the fault", || async {
            (errors(&get("/metrics").await) >= before + 2.0).then_some(())
        })
        .await;
        seen.push(("/metrics", get("/metrics").await));
        seen.push(("the status page", get("/").await));
    }
    sim.state.set_faults(Faults::default());
    let log = exporter.log();
    assert!(log.contains("DEBUG") && log.contains("Poll failed"), "{log}");
    seen.push(("the log", log));
    for (what, text) in &seen {
        assert_clean(what, text);
    }
    drop(exporter);
    sim.stop().await;
}

#[test]
fn the_commented_example_table_validates() {
    let example = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/config.example.toml")).unwrap();
    let start = example.find("# [[bunny]]").expect("a [[bunny]] example");
    let table: String = example[start..]
        .lines()
        .map(|l| l.strip_prefix("# ").unwrap_or(l))
        .map(|l| if l.starts_with("api_key_env") { "api_key = \"example-key\"" } else { l })
        .collect::<Vec<_>>()
        .join("\n");
    let config = Config::from_toml_str(&table, "example").unwrap_or_else(|e| panic!("{e}\n{table}"));
    let a = config.accounts_of::<BunnyAccount>()[0];
    assert_eq!((a.name.as_str(), a.pull_zones.as_slice(), a.budget_usd), ("cdn", &[112_233, 445_566][..], Some(300.0)));
}

/// The demo serves the bunny.net families within seconds, with a budget below the month-end
/// forecast (spend to date over the elapsed share of the month) so the forecast alert fires.
#[tokio::test]
async fn the_demo_shows_bunny_within_seconds_with_a_budget_below_its_forecast() {
    let started = std::time::Instant::now();
    let (_demo, url) = crate::support::start_demo();
    let l = [("provider", "bunny"), ("account", "demo")];
    let expected: [(&str, &[(&str, &str)]); 8] = [
        ("cdn_billing_month_to_date_spend_usd", &[]),
        ("cdn_billing_month_to_date_cost_usd", &[("item", "eu_traffic")]),
        ("cdn_billing_prepaid_balance_usd", &[]),
        ("cdn_billing_month_to_date_pull_zone_cost_usd", &[("pull_zone", "demo-video")]),
        ("cdn_month_to_date_bandwidth_bytes", &[("pull_zone", "demo-assets")]),
        ("cdn_month_to_date_requests", &[("pull_zone", "demo-video")]),
        ("cdn_storage_bytes", &[("storage_zone", "demo-storage")]),
        ("cdn_storage_files", &[("storage_zone", "demo-storage")]),
    ];
    let s = wait_for(Duration::from_secs(5), "the demo's bunny.net families", || async {
        let s = Scrape::parse(&reqwest::get(&url).await.ok()?.text().await.ok()?);
        let present = expected.iter().all(|(name, labels)| {
            let all: Vec<(&str, &str)> = l.iter().chain(labels.iter()).copied().collect();
            !s.all(name, &all).is_empty()
        });
        present.then_some(s)
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(10));
    let now = timeutil::now_unix();
    let forecast = s.value("cdn_billing_month_to_date_spend_usd", &l) / data::month_elapsed(now);
    assert!(forecast > s.value("cdn_billing_budget_usd", &l), "forecast {forecast} over the demo's budget");
}

mod fixtures {
    //! The examples of the API summary (tests/fixtures/bunny, built from the vendor's schema, with
    //! placeholder sensitive fields) parse and normalize; nothing sensitive is kept.

    use cdn_usage_exporter::families::FamilyId;
    use cdn_usage_exporter::job::Sample;
    use cdn_usage_exporter::providers::bunny::{normalize, wire};

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/tests/fixtures/bunny/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// Every fixture carries every field of its model in the spec (the list the simulator
    /// builds its answers from), and the statistics fixture's null charts read as no chart.
    #[test]
    fn the_fixtures_have_the_spec_models_every_field() {
        use cdn_usage_exporter::providers::bunny::simulator::spec::{self, Kind};
        let json = |name: &str| serde_json::from_slice::<serde_json::Value>(&fixture(name)).unwrap();
        let check = |what: &str, v: &serde_json::Value, model: &[(&str, Kind, bool)]| {
            let fields = v.as_object().unwrap_or_else(|| panic!("{what}: not an object"));
            for (name, _, nullable) in model {
                let value = fields.get(*name).unwrap_or_else(|| panic!("{what} lacks {name}"));
                assert!(*nullable || !value.is_null(), "{what}: {name} is null, which the spec does not allow");
            }
        };
        let billing = json("billing.json");
        check("billing.json", &billing, spec::BILLING);
        for r in billing["BillingRecords"].as_array().unwrap() {
            check("a billing record", r, spec::BILLING_RECORD);
        }
        for item in json("billing_summary.json").as_array().unwrap() {
            check("billing_summary.json", item, spec::BILLING_SUMMARY_ITEM);
        }
        for z in json("pullzone_page.json")["Items"]
            .as_array()
            .unwrap()
            .iter()
            .chain(json("pullzone_bare.json").as_array().unwrap())
        {
            check("a pull zone", z, spec::PULL_ZONE);
        }
        for z in json("storagezone_bare.json").as_array().unwrap() {
            check("a storage zone", z, spec::STORAGE_ZONE);
        }
        let stats = json("statistics.json");
        check("statistics.json", &stats, spec::STATISTICS);
        assert!(stats["OriginTrafficChart"].is_null(), "a chart not asked for is null");
        let mut nulled = stats.clone();
        nulled["RequestsServedChart"] = serde_json::Value::Null;
        let body = serde_json::to_vec(&nulled).unwrap();
        let parsed: wire::Statistics = wire::parse(&body, 100, "s").unwrap();
        assert_eq!(parsed.requests, None, "a null chart is no chart");
        assert!(parsed.bandwidth.is_some_and(|c| c.0.len() == 2));
    }

    fn find(samples: &[Sample], family: FamilyId, label: Option<(&str, &str)>) -> Option<f64> {
        samples
            .iter()
            .find(|s| s.family == family && label.is_none_or(|(k, v)| s.labels.iter().any(|l| l.0 == k && l.1 == v)))
            .map(|s| s.value)
    }

    const JUNE_5: i64 = (20_605 + 4) * 86_400;

    #[test]
    fn billing_example() {
        let body = fixture("billing.json");
        let b: wire::Billing<'_> = wire::parse(&body, 10_000, "/billing answer").unwrap();
        assert!(!format!("{b:?}").contains("FIXTURE"), "no payment detail kept: {b:?}");
        let s = normalize::billing(&b, JUNE_5).unwrap();
        assert_eq!(find(&s, FamilyId::BillingMonthToDateSpendUsd, None), Some(15.48));
        assert_eq!(find(&s, FamilyId::BillingPrepaidBalanceUsd, None), Some(84.52));
        assert_eq!(find(&s, FamilyId::BillingLastMonthSpendUsd, None), Some(14.02));
        let items: Vec<&str> = s
            .iter()
            .filter(|x| x.family == FamilyId::BillingMonthToDateCostUsd)
            .map(|x| x.labels[0].1.as_str())
            .collect();
        assert_eq!(items.len(), 23, "every MonthlyCharges field of the spec: {items:?}");
        for (item, usd) in [
            ("eu_traffic", 6.10),
            ("us_traffic", 5.20),
            ("asia_traffic", 1.90),
            ("sa_traffic", 0.30),
            ("storage", 1.98),
        ] {
            assert_eq!(find(&s, FamilyId::BillingMonthToDateCostUsd, Some(("item", item))), Some(usd), "{item}");
        }
        for item in ["af_traffic", "dns", "extra_pull_zones", "scripting_cpu", "magic_containers", "web_sockets", "db"]
        {
            assert!(items.contains(&item), "{item} in {items:?}");
        }
        assert!(s.iter().all(|x| x.labels.iter().all(|l| !l.1.contains("FIXTURE"))));
    }

    #[test]
    fn listings_summary_statistics_and_storage_examples() {
        let (page_body, bare_body, storage_body) =
            (fixture("pullzone_page.json"), fixture("pullzone_bare.json"), fixture("storagezone_bare.json"));
        let page: wire::Page<wire::PullZone<'_>> = wire::parse(&page_body, 1000, "p").unwrap();
        assert_eq!(page.has_more, Some(false));
        let zones: Vec<normalize::Zone> = page.items.iter().map(|z| normalize::zone(z).unwrap()).collect();
        assert_eq!(
            zones.iter().map(|z| (z.id, z.name.as_str())).collect::<Vec<_>>(),
            [(112_233, "assets"), (445_566, "media")]
        );
        let bare: wire::Page<wire::PullZone<'_>> = wire::parse(&bare_body, 1000, "p").unwrap();
        assert_eq!(bare.has_more, None);
        assert_eq!(normalize::zone(&bare.items[1]).unwrap().name, "445566", "a zone without a name is named by its id");

        let items: wire::List<wire::SummaryItem> = wire::parse(&fixture("billing_summary.json"), 1000, "s").unwrap();
        let s = normalize::summary(&items.0, &zones, true, 100).unwrap();
        assert_eq!(find(&s, FamilyId::BillingMonthToDatePullZoneCostUsd, Some(("pull_zone", "assets"))), Some(9.71));
        assert_eq!(
            find(&s, FamilyId::MonthToDateBandwidthBytes, Some(("pull_zone", "media"))),
            Some(387_700_000_000.0)
        );

        let stats: wire::Statistics = wire::parse(&fixture("statistics.json"), 1000, "st").unwrap();
        let june = 20_605 * 86_400;
        let requests = stats.requests.unwrap();
        assert_eq!(normalize::sum(&requests, june, june + 2 * 86_400), 4_000_000.0, "keys without Z, out of order");
        assert_eq!(normalize::sum(&stats.bandwidth.unwrap(), june, june + 2 * 86_400), 52_000_000_000.0, "keys with Z");
        assert_eq!(normalize::sum(&requests, june + 86_400, june + 2 * 86_400), 2_100_000.0);

        let storage: wire::Page<wire::StorageZone<'_>> = wire::parse(&storage_body, 1000, "sz").unwrap();
        let s = normalize::storage(&storage.items, 100, JUNE_5).unwrap();
        assert_eq!(find(&s, FamilyId::StorageBytes, Some(("storage_zone", "files"))), Some(53_687_091_200.0));
        assert_eq!(find(&s, FamilyId::StorageFiles, Some(("storage_zone", "files"))), Some(18_342.0));
        assert_eq!(find(&s, FamilyId::StorageBytes, Some(("storage_zone", "old"))), None, "deleted");
    }
}

mod hostile {
    //! A fake bunny.net in the test process serves good answers, then turns hostile one endpoint
    //! at a time (an endless chunked body, non-finite and negative values, endless pages, a
    //! chart past `list_entries`, a redirect): each poll fails with its reason, the others go
    //! on, and the last good values stay.

    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use axum::body::{Body, Bytes};
    use axum::extract::Query;
    use axum::http::{StatusCode, Uri};
    use axum::response::Response;

    use super::{health, scrape, start_exporter, toml};
    use crate::support::{loopback, wait_for};

    type Answer = Arc<dyn Fn(&HashMap<String, String>) -> Response + Send + Sync>;

    fn json(body: impl Into<Bytes>) -> Response {
        Response::builder().header("content-type", "application/json").body(Body::from(body.into())).unwrap()
    }

    fn good(path: &str) -> Answer {
        let body: &'static str = match path {
            "/billing" => r#"{"Balance":10,"ThisMonthCharges":5,"MonthlyChargesDNS":1}"#,
            "/billing/summary" => r#"[{"PullZoneId":1,"MonthlyUsage":2,"MonthlyBandwidthUsed":300}]"#,
            "/pullzone" => r#"{"Items":[{"Id":1,"Name":"a"}],"CurrentPage":1,"TotalItems":1,"HasMoreItems":false}"#,
            "/storagezone" => r#"[{"Id":9,"Name":"s","StorageUsed":1000,"FilesStored":2}]"#,
            _ => r#"{"RequestsServedChart":{},"BandwidthUsedChart":{}}"#,
        };
        Arc::new(move |_| json(body))
    }

    #[tokio::test]
    async fn hostile_answers_fail_their_poll_and_keep_the_last_values() {
        let answers: Arc<Mutex<HashMap<String, Answer>>> = Arc::default();
        let table = answers.clone();
        let app = axum::Router::new().fallback(move |uri: Uri, Query(q): Query<HashMap<String, String>>| {
            let table = table.clone();
            async move {
                let path = uri.path().strip_prefix("/fake").unwrap_or_default().to_owned();
                let answer = table.lock().unwrap().get(&path).cloned().unwrap_or_else(|| good(&path));
                answer(&q)
            }
        });
        let listener = tokio::net::TcpListener::bind(loopback()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let exporter = start_exporter(&toml(&format!("http://{addr}/fake"), "k", "max_age = \"1h\"")).await;
        wait_for(Duration::from_secs(10), "every job up", || async {
            let up = ["billing", "billing/summary", "statistics", "storagezone"]
                .iter()
                .all(|e| health(&exporter, e).is_some_and(|h| h.up));
            up.then_some(())
        })
        .await;
        let before = scrape(&exporter).await;
        let chart: String = (0..20_001)
            .map(|i| format!("\"{}\":1", cdn_usage_exporter::providers::bunny::format_time(i * 86_400)))
            .collect::<Vec<_>>()
            .join(",");
        let chart = format!("{{\"RequestsServedChart\":{{{chart}}},\"BandwidthUsedChart\":{{}}}}");
        let cases: Vec<(&str, &str, Answer, &str, &str)> = vec![
            (
                "/billing",
                "billing",
                Arc::new(|_| {
                    let pieces = std::iter::repeat_n(Bytes::from(vec![b' '; 1 << 20]), 6).collect();
                    Response::builder().body(Body::new(Chunks(pieces))).unwrap()
                }),
                "parse",
                "answer_bytes",
            ),
            (
                "/billing",
                "billing",
                Arc::new(|_| json(r#"{"Balance":10,"ThisMonthCharges":"NaN"}"#)),
                "parse",
                "not a finite number",
            ),
            (
                "/storagezone",
                "storagezone",
                Arc::new(|_| json(r#"[{"Id":9,"Name":"s","StorageUsed":-1}]"#)),
                "parse",
                "negative",
            ),
            (
                "/pullzone",
                "billing/summary",
                Arc::new(|q: &HashMap<String, String>| {
                    let page = q.get("page").cloned().unwrap_or_default();
                    json(format!(r#"{{"Items":[{{"Id":{page},"Name":"p{page}"}}],"HasMoreItems":true}}"#))
                }),
                "parse",
                "raise max_pages",
            ),
            ("/statistics", "statistics", Arc::new(move |_| json(chart.clone())), "parse", "raise `list_entries`"),
            (
                "/billing/summary",
                "billing/summary",
                Arc::new(|_| {
                    Response::builder()
                        .status(StatusCode::FOUND)
                        .header("location", "https://elsewhere.invalid/?token=x")
                        .body(Body::empty())
                        .unwrap()
                }),
                "http",
                "redirects are not followed",
            ),
        ];
        for (path, endpoint, answer, reason, says) in cases {
            answers.lock().unwrap().insert(path.to_owned(), answer);
            let polls = health(&exporter, endpoint).unwrap().polls;
            let h = wait_for(Duration::from_secs(15), endpoint, || async {
                health(&exporter, endpoint).filter(|h| h.polls > polls + 1 && !h.up)
            })
            .await;
            let e = h.last_error.unwrap();
            assert_eq!(e.reason.as_str(), reason, "{path}: {}", e.message);
            assert!(e.message.contains(says), "{path}: {}", e.message);
            answers.lock().unwrap().clear();
        }
        // Through all of it, every value that was there is still there.
        let after = scrape(&exporter).await;
        for s in before
            .all("cdn_storage_bytes", &[])
            .into_iter()
            .chain(before.all("cdn_billing_month_to_date_spend_usd", &[]))
        {
            let labels: Vec<(&str, &str)> = s.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            assert_eq!(after.get(&s.name, &labels), Some(s.value), "{} kept", s.name);
        }
        exporter.stop().await;
        server.abort();
    }

    /// A body sent in pieces with no `Content-Length` (chunked), so only reading can bound it.
    struct Chunks(std::collections::VecDeque<Bytes>);

    impl http_body::Body for Chunks {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
            std::task::Poll::Ready(self.0.pop_front().map(|b| Ok(http_body::Frame::data(b))))
        }
    }
}
