//! Fastly against the simulator over loopback, with one manual clock for both where figures
//! must be exact: spend to date equal to the invoice (items adding up to the cent) and only in
//! a currency that is known, last month's bill with its currency checked, cursor and `Link`
//! paging followed to the end and bounded, the failure statuses classified, usage per service
//! and area (Compute requests apart) equal to an independent sum over the simulator's full-size
//! buckets through a month (a restart rebuilding it), 100 services within the default bounds,
//! backfill, and the whole exporter serving the shared families without showing the token.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cdn_usage_exporter::app;
use cdn_usage_exporter::config::Config;
use cdn_usage_exporter::families::FamilyId;
use cdn_usage_exporter::job::{PollContext, PollError, Poller, Reason, Sample};
use cdn_usage_exporter::providers::common::http::{RetryPolicy, Upstream};
use cdn_usage_exporter::providers::fastly::simulator::{
    FastlyFaults, FastlySim, SIM_REGIONS, bill_cents, full_bucket, item_cents, mtd_cents,
};
use cdn_usage_exporter::providers::fastly::{Client, FastlyAccount, config::DEFAULT_AREAS, history, jobs};
use cdn_usage_exporter::providers::{SampleSink, SinkError, Window};
use cdn_usage_exporter::simulator::{SimState, Simulator};
use cdn_usage_exporter::timeutil::{self, Clock};
use tokio::sync::Semaphore;

use crate::support::fastly_part;
use crate::support::{Scrape, loopback, wait_for};

const TOKEN: &str = "fastly-test-token-1";
const SERVICES: [&str; 2] = ["SU1Z0isxPaozGVKXdv0eY", "AP2Y1jtyQbpaHWLYew1fZ"];
/// The Compute service among them.
const COMPUTE: &str = "AP2Y1jtyQbpaHWLYew1fZ";
const CTX: PollContext = PollContext::UNBOUNDED;

fn sim_account(currency: &str) -> FastlySim {
    FastlySim {
        token: TOKEN.into(),
        customer_id: "cust-1".into(),
        services: SERVICES.iter().map(|s| s.to_string()).collect(),
        compute: vec![COMPUTE.into()],
        versions: 8,
        page_size: 1,
        monthly_usd: 2345.67,
        past_months: 14,
        currency: currency.into(),
        post_delay_secs: 0,
    }
}

/// Unix time of a UTC date and time.
fn utc(y: i64, m: u32, d: u32, h: i64, mi: i64) -> i64 {
    timeutil::days_from_civil(y, m, d) * 86_400 + h * 3600 + mi * 60
}

struct Rig {
    sim: Simulator,
    clock: Clock,
}

impl Rig {
    async fn start(now: i64, currency: &str) -> Rig {
        Self::start_with(now, sim_account(currency)).await
    }

    async fn start_with(now: i64, account: FastlySim) -> Rig {
        let clock = Clock::manual(now);
        let state = SimState::builder().with(fastly_part(vec![account])).clock(clock.clone()).build();
        Rig { sim: Simulator::start(loopback(), state).await.unwrap(), clock }
    }

    fn account(&self, extra: &str) -> FastlyAccount {
        let toml = format!(
            "[[fastly]]\nname = \"f\"\nbase_url = \"{}\"\napi_token = \"{TOKEN}\"\n{extra}\n",
            self.sim.url("fastly").unwrap()
        );
        let config = Config::from_toml_str(&toml, "test").unwrap_or_else(|e| panic!("{e}"));
        config.accounts_of::<FastlyAccount>()[0].clone()
    }

    fn client(&self, account: &FastlyAccount) -> Arc<Client> {
        let retry = RetryPolicy { attempts: 1, ..RetryPolicy::default() };
        let upstream = Upstream::new(Arc::new(Semaphore::new(8)), 8, retry);
        Arc::new(Client::new(account, &reqwest::Client::new(), upstream).unwrap().with_clock(self.clock.clone()))
    }

    /// The account's three pollers: month-to-date, last month, usage.
    fn pollers(&self, extra: &str) -> Vec<Arc<dyn Poller>> {
        let account = self.account(extra);
        jobs::jobs(&account, self.client(&account)).into_iter().map(|j| j.poller).collect()
    }

    fn faults(&self, faults: FastlyFaults) {
        self.sim.state.set_fastly_faults(faults);
    }

    fn requests(&self, path: &str) -> usize {
        self.sim.state.fastly_requests().iter().filter(|r| r.path == path).count()
    }
}

async fn poll(p: &dyn Poller) -> Result<Vec<Sample>, PollError> {
    tokio::time::timeout(Duration::from_secs(60), p.poll(&CTX)).await.expect("in time")
}

fn label<'a>(s: &'a Sample, name: &str) -> Option<&'a str> {
    s.labels.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
}

fn only(samples: &[Sample], family: FamilyId) -> Vec<&Sample> {
    samples.iter().filter(|s| s.family == family).collect()
}

fn cents(v: f64) -> i64 {
    (v * 100.0).round() as i64
}

/// The items' cents and the total's, checked to add up.
fn assert_items_add_up(samples: &[Sample], total: FamilyId, item: FamilyId, expected_cents: u64) {
    let t = only(samples, total);
    assert_eq!(t.len(), 1, "{samples:?}");
    assert_eq!(cents(t[0].value), expected_cents as i64, "the total is the invoice's");
    let items = only(samples, item);
    assert_eq!(items.len(), 3);
    let sum: i64 = items.iter().map(|s| cents(s.value)).sum();
    assert_eq!(sum, expected_cents as i64, "the items add up to the total, to the cent");
    let mut got: Vec<i64> = items.iter().map(|s| cents(s.value)).collect();
    let mut want: Vec<i64> = item_cents(expected_cents).into_iter().map(|c| c as i64).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    for s in &items {
        assert_eq!(label(s, "product"), Some("Full-Site Delivery"));
        assert!(["bandwidth", "requests"].contains(&label(s, "usage_type").unwrap()));
        assert!(label(s, "area").is_some_and(|a| !a.is_empty()));
        for bad in ["region", "service"] {
            assert_eq!(label(s, bad), None);
        }
    }
    let item = items.iter().find(|s| label(s, "area") == Some("North America")).unwrap();
    assert_eq!(label(item, "item"), Some("north_america_bandwidth"));
}

#[tokio::test]
async fn spend_to_date_is_the_invoice_total_and_the_failure_statuses_are_classified() {
    let now = utc(2026, 11, 18, 13, 25);
    let rig = Rig::start(now, "USD").await;
    let p = rig.pollers("");
    let (mtd, last) = (&p[0], &p[1]);
    let sim = sim_account("USD");
    let samples = poll(mtd.as_ref()).await.unwrap();
    assert_items_add_up(
        &samples,
        FamilyId::BillingMonthToDateSpendUsd,
        FamilyId::BillingMonthToDateCostUsd,
        mtd_cents(&sim, now),
    );
    // The amount as a number (the end-of-month shape) reads the same.
    rig.faults(FastlyFaults { numeric_mtd_amount: true, ..FastlyFaults::default() });
    assert_eq!(poll(mtd.as_ref()).await.unwrap(), samples);

    let samples = poll(last.as_ref()).await.unwrap();
    let october = timeutil::days_from_civil(2026, 10, 1);
    assert_items_add_up(
        &samples,
        FamilyId::BillingLastMonthSpendUsd,
        FamilyId::BillingLastMonthCostUsd,
        bill_cents(&sim, october),
    );
    let listed = rig.sim.state.fastly_requests();
    let listing = listed.iter().rev().find(|r| r.path == "/billing/v3/invoices").unwrap();
    assert_eq!(listing.query.get("billing_start_date").map(String::as_str), Some("2026-10-01"));
    assert_eq!(listing.query.get("billing_end_date").map(String::as_str), Some("2026-10-31"));
    assert!(listed.iter().all(|r| r.authenticated), "every request carries the Fastly-Key");

    for (status, reason, needle) in [
        (404, Reason::Provider, "no month-to-date invoice for this account (HTTP 404"),
        (422, Reason::Provider, "no month-to-date invoice for this account (HTTP 422"),
        (202, Reason::Provider, "still preparing the answer; the next poll asks again"),
        (401, Reason::Auth, "Fastly refused the token"),
        (429, Reason::Throttled, "rate limit"),
        (500, Reason::Http, "HTTP 500"),
    ] {
        rig.faults(FastlyFaults { status: Some(status), only: Some("month-to-date"), ..FastlyFaults::default() });
        let err = poll(mtd.as_ref()).await.unwrap_err();
        assert_eq!(err.reason, reason, "{status}: {err}");
        assert!(err.message.contains(needle), "{status}: {err}");
        if status == 429 {
            // Fastly-RateLimit-Reset is the next hour's start.
            assert_eq!(err.retry_after, Some(Duration::from_secs((utc(2026, 11, 18, 14, 0) - now) as u64)));
        }
        // Limited to one endpoint: the bill still comes.
        assert!(poll(last.as_ref()).await.is_ok());
    }
    // A wrong token: auth, and the token is not in the message.
    rig.faults(FastlyFaults::default());
    let account =
        FastlyAccount { api_token: cdn_usage_exporter::secret::Secret::new("wrong-token-9"), ..rig.account("") };
    let bad = jobs::jobs(&account, rig.client(&account));
    let err = poll(bad[0].poller.as_ref()).await.unwrap_err();
    assert_eq!(err.reason, Reason::Auth);
    assert!(!err.message.contains("wrong-token-9") && !err.message.contains(TOKEN), "{err}");
    assert!(err.message.contains("Provided credentials are missing or invalid"), "{err}");
    // Past answer_bytes: refused, naming the bound.
    rig.faults(FastlyFaults { pad_bytes: 4000, ..FastlyFaults::default() });
    let small = rig.pollers("answer_bytes = 2048");
    let err = poll(small[0].as_ref()).await.unwrap_err();
    assert_eq!(err.reason, Reason::Parse);
    assert!(err.message.contains("more than the 2048 bytes allowed") && err.message.contains("answer_bytes"), "{err}");
    // Past max_line_items: refused.
    rig.faults(FastlyFaults::default());
    let few = rig.pollers("max_line_items = 2");
    let err = poll(few[0].as_ref()).await.unwrap_err();
    assert!(err.message.contains("max_line_items"), "{err}");
    rig.sim.stop().await;
}

#[tokio::test]
async fn cursor_paging_is_followed_to_the_end_and_bounded_and_the_currency_is_checked() {
    let now = utc(2026, 11, 3, 9, 0);
    let rig = Rig::start(now, "USD").await;
    let account = rig.account("");
    let client = rig.client(&account);
    // A year of invoices, one per page (the simulator's page size): twelve pages, every one read.
    let (first, last) = (timeutil::days_from_civil(2025, 11, 1), timeutil::days_from_civil(2026, 10, 31));
    let before = rig.requests("/billing/v3/invoices");
    let bills = jobs::bills(&client, &CTX, first, last).await.unwrap();
    assert_eq!(bills.len(), 12);
    assert_eq!(rig.requests("/billing/v3/invoices") - before, 12);
    let cursors: Vec<String> =
        rig.sim.state.fastly_requests().iter().filter_map(|r| r.query.get("cursor").cloned()).collect();
    assert_eq!(cursors, (1..12).map(|i| format!("c{i}")).collect::<Vec<_>>());
    let sim = sim_account("USD");
    for b in &bills {
        assert_eq!(cents(b.total), bill_cents(&sim, b.month) as i64);
        assert_eq!(b.items.iter().map(|(_, v)| cents(v.amount)).sum::<i64>(), cents(b.total));
    }
    // Pages that never end stop at max_pages.
    rig.faults(FastlyFaults { endless_cursor: true, ..FastlyFaults::default() });
    let capped = rig.account("max_pages = 5");
    let before = rig.requests("/billing/v3/invoices");
    let err = jobs::bills(&rig.client(&capped), &CTX, first, last).await.unwrap_err();
    assert_eq!(err.reason, Reason::Parse);
    assert!(err.message.contains("5 pages read") && err.message.contains("fastly[0].max_pages"), "{err}");
    assert_eq!(rig.requests("/billing/v3/invoices") - before, 5);
    // A cursor named twice would page forever: refused at once.
    rig.faults(FastlyFaults { repeat_cursor: true, ..FastlyFaults::default() });
    let err = jobs::bills(&client, &CTX, first, last).await.unwrap_err();
    assert!(err.message.contains("repeats the cursor \"c1\""), "{err}");
    rig.faults(FastlyFaults::default());
    rig.sim.stop().await;

    // An account billed in euros: the bill and the spend to date say so (the conversion into
    // US dollars is the exporter's, tested in `a_fastly_account_billed_in_euros_*`).
    let rig = Rig::start(now, "EUR").await;
    let p = rig.pollers("");
    for job in &p[..2] {
        let samples = poll(job.as_ref()).await.unwrap();
        assert_eq!(samples.last(), Some(&cdn_usage_exporter::currency::marker("EUR")), "{samples:?}");
    }
    rig.sim.stop().await;

    // Early in a month, before the last one's bill is posted (the 2nd, 08:00): a clear failure;
    // once posted, the bill.
    // Posted on the 2nd at 08:00.
    let late = FastlySim { post_delay_secs: 32 * 3600, ..sim_account("USD") };
    let rig = Rig::start_with(utc(2025, 1, 2, 7, 0), late).await;
    let p = rig.pollers("");
    let err = poll(p[1].as_ref()).await.unwrap_err();
    assert_eq!(err.reason, Reason::Provider);
    assert!(err.message.contains("no end-of-month invoice for 2024-12 yet"), "{err}");
    rig.clock.set(utc(2025, 1, 2, 8, 0));
    let samples = poll(p[1].as_ref()).await.unwrap();
    let december = timeutil::days_from_civil(2024, 12, 1);
    assert_eq!(cents(only(&samples, FamilyId::BillingLastMonthSpendUsd)[0].value), bill_cents(&sim, december) as i64);
    rig.sim.stop().await;
}

/// Month-to-date figures per (service, area): (bytes, delivery requests, Compute requests).
type Usage = BTreeMap<(String, String), (f64, f64, f64)>;

/// The (bandwidth, requests, compute_requests) of the simulator's full `/stats` bucket of
/// service `s` of `account` in area `r` for the hour starting at `h`, as served at `now`.
fn bucket_fields(account: &FastlySim, s: usize, r: usize, h: i64, now: i64) -> (f64, f64, f64) {
    type Done = std::collections::HashMap<(String, usize, usize, i64), (f64, f64, f64)>;
    thread_local! {
        /// Buckets of whole hours never change: each is built once per test thread.
        static DONE: std::cell::RefCell<Done> = Default::default();
    }
    let key = (account.services[s].clone() + &account.compute.join(","), s, r, h);
    let whole = h + 3600 <= now;
    if let Some(v) = DONE.with(|d| d.borrow().get(&key).copied()).filter(|_| whole) {
        return v;
    }
    let Some(b) = full_bucket(account, s, Some(r), h, 3600, now) else { return (0.0, 0.0, 0.0) };
    let f = |k: &str| b[k].as_f64().unwrap_or_else(|| panic!("{k} in {b}"));
    let v = (f("bandwidth"), f("requests"), f("compute_requests"));
    if whole {
        DONE.with(|d| d.borrow_mut().insert(key, v));
    }
    v
}

/// Month-to-date usage per (service, area) computed here from the simulator's full hourly
/// buckets from `from` up to `now` (the filling hour included), with the exporter's `areas`.
fn expected_between(account: &FastlySim, from: i64, now: i64, areas: &[&str]) -> Usage {
    let mut out = BTreeMap::new();
    for (s, service) in account.services.iter().enumerate() {
        let mut per_area: BTreeMap<String, (f64, f64, f64)> = BTreeMap::new();
        for (r, region) in SIM_REGIONS.iter().enumerate() {
            let area = match areas.iter().find(|a| *a == region) {
                Some(a) => a.to_string(),
                None if areas.is_empty() => "all".into(),
                None => "other".into(),
            };
            let v = per_area.entry(area).or_default();
            for h in (from..now).step_by(3600) {
                let (b, q, c) = bucket_fields(account, s, r, h, now);
                *v = (v.0 + b, v.1 + q, v.2 + c);
            }
        }
        let names: Vec<String> = if areas.is_empty() {
            vec!["all".into()]
        } else {
            areas.iter().map(|a| a.to_string()).chain(["other".into()]).collect()
        };
        for area in names {
            out.insert((service.clone(), area.clone()), per_area.get(&area).copied().unwrap_or_default());
        }
    }
    out
}

fn expected_usage(now: i64, areas: &[&str]) -> Usage {
    let month = timeutil::month_start(now.div_euclid(86_400)) * 86_400;
    expected_between(&sim_account("USD"), month, now, areas)
}

fn usage(samples: &[Sample]) -> Usage {
    let mut out: Usage = BTreeMap::new();
    for s in samples {
        let key = (label(s, "service_id").unwrap().to_owned(), label(s, "area").unwrap().to_owned());
        let v = out.entry(key).or_default();
        match (s.family, label(s, "kind")) {
            (FamilyId::MonthToDateBandwidthBytes, None) => v.0 = s.value,
            (FamilyId::MonthToDateRequests, Some("delivery")) => v.1 = s.value,
            (FamilyId::MonthToDateRequests, Some("compute")) => v.2 = s.value,
            other => panic!("{other:?}"),
        }
    }
    out
}

#[tokio::test]
async fn usage_per_service_and_area_equals_the_simulators_buckets_through_the_month() {
    let rig = Rig::start(utc(2026, 10, 1, 0, 40), "USD").await;
    let job = rig.pollers("")[2].clone();
    let areas: Vec<&str> = DEFAULT_AREAS.to_vec();
    let usage_requests = |rig: &Rig| rig.requests("/stats/usage_by_service");
    // Every 7 hours 13 minutes through October, into November: one usage request a poll.
    let mut now = utc(2026, 10, 1, 0, 40);
    let mut last_poll = now;
    while now < utc(2026, 11, 1, 3, 0) {
        rig.clock.set(now);
        last_poll = now;
        let before = usage_requests(&rig);
        let got = usage(&poll(job.as_ref()).await.unwrap());
        assert_eq!(got, expected_usage(now, &areas), "at {}", timeutil::format_http_date(now));
        assert_eq!(usage_requests(&rig) - before, 1, "at {now}");
        if now > utc(2026, 10, 3, 0, 0) {
            assert!(got[&(SERVICES[1].to_string(), "other".to_string())].0 > 0.0, "latam is not listed: other");
            assert_eq!(got[&(SERVICES[1].to_string(), "anzac".to_string())], (0.0, 0.0, 0.0));
        }
        now += 7 * 3600 + 13 * 60;
    }
    // Every usage request asks for the month so far, by the hour, in Unix seconds.
    let asked = rig.sim.state.fastly_requests();
    let last = asked.iter().rev().find(|r| r.path == "/stats/usage_by_service").unwrap();
    let month = timeutil::month_start(last_poll.div_euclid(86_400)) * 86_400;
    assert_eq!(last.query.get("from"), Some(&month.to_string()));
    assert_eq!(last.query.get("to"), Some(&last_poll.to_string()));
    assert_eq!(last.query.get("by").map(String::as_str), Some("hour"));
    // Services were found through /service, one per page: the Link header was followed, and
    // every page asked without the versions.
    let pages: Vec<_> = asked.iter().filter(|r| r.path == "/service").collect();
    assert!(pages.iter().any(|r| r.query.get("page").map(String::as_str) == Some("2")), "{pages:?}");
    assert!(pages.iter().all(|r| r.query.get("filter[include_versions]").map(String::as_str) == Some("false")));

    // The newest hour is provisional: a minute later it has grown.
    let at = utc(2026, 10, 31, 20, 10);
    rig.clock.set(at);
    let figures = usage(&poll(job.as_ref()).await.unwrap());
    rig.clock.set(at + 60);
    let grown = usage(&poll(job.as_ref()).await.unwrap());
    let key = (SERVICES[0].to_string(), "usa".to_string());
    assert!(grown[&key].0 > figures[&key].0, "the filling hour grew");
    assert_eq!(grown, expected_usage(at + 60, &areas));

    // A restart mid-month rebuilds the same figures.
    let mid = utc(2026, 11, 20, 15, 5);
    rig.clock.set(mid);
    let old = usage(&poll(job.as_ref()).await.unwrap());
    let fresh = rig.pollers("")[2].clone();
    assert_eq!(usage(&poll(fresh.as_ref()).await.unwrap()), old);

    // Without areas: one area="all" per service, configured services (no /service call).
    let plain = rig.pollers(&format!("areas = []\nservices = [\"{}\"]", SERVICES[1]))[2].clone();
    let before = rig.requests("/service");
    let got = usage(&poll(plain.as_ref()).await.unwrap());
    assert_eq!(rig.requests("/service"), before);
    let want: Usage = expected_usage(mid, &[]).into_iter().filter(|((s, _), _)| s == SERVICES[1]).collect();
    assert_eq!(got, want);
    rig.sim.stop().await;
}

#[tokio::test]
async fn a_compute_services_requests_are_counted_as_compute_not_zero() {
    let now = utc(2026, 10, 9, 16, 30);
    let rig = Rig::start(now, "USD").await;
    let got = usage(&poll(rig.pollers("")[2].as_ref()).await.unwrap());
    for area in ["usa", "europe", "asia", "other"] {
        let (bytes, delivery, compute) = got[&(COMPUTE.to_string(), area.to_string())];
        assert!(bytes > 0.0 && compute > 0.0, "{area}: the Compute service served requests: {compute}");
        assert_eq!(delivery, 0.0, "{area}: Fastly counts none of them in `requests`");
        let (_, delivery, compute) = got[&(SERVICES[0].to_string(), area.to_string())];
        assert!(delivery > 0.0 && compute == 0.0, "{area}: the delivery service's are delivery requests");
    }
    assert_eq!(got, expected_usage(now, DEFAULT_AREAS));
    rig.sim.stop().await;
}

#[tokio::test]
async fn a_poll_of_100_services_with_full_size_buckets_fits_the_default_bounds() {
    let now = utc(2026, 11, 20, 15, 5);
    let services: Vec<String> = (0..100).map(|i| format!("svc{i:019}")).collect();
    let account = FastlySim {
        compute: services.iter().step_by(20).cloned().collect(),
        services,
        versions: 40,
        page_size: 100,
        ..sim_account("USD")
    };
    let rig = Rig::start_with(now, account.clone()).await;
    let job = rig.pollers("")[2].clone();
    let bytes = rig.sim.state.fastly_answer_bytes();
    let got = usage(&poll(job.as_ref()).await.unwrap());
    let cost = rig.sim.state.fastly_answer_bytes() - bytes;
    assert_eq!(got.len(), 100 * (DEFAULT_AREAS.len() + 1));
    assert!(cost < 1 << 20, "one poll costs {cost} bytes of answers");
    assert_eq!(rig.sim.state.fastly_requests().len(), 2, "the service list and the usage");
    // Against an independent sum over the simulator's full buckets (the month's first 20 days
    // and the hours since), Compute requests included.
    let month = utc(2026, 11, 1, 0, 0);
    let want = expected_between(&account, month, now, DEFAULT_AREAS);
    assert_eq!(got, want);
    let compute: f64 = got.values().map(|v| v.2).sum();
    assert!(compute > 0.0 && got[&(account.compute[1].clone(), "usa".to_string())].1 == 0.0);
    // A full bucket is the size of a real one: what a /stats poll would have had to read.
    let bucket = full_bucket(&account, 0, Some(0), month, 3600, now).unwrap();
    assert!(bucket.to_string().len() > 5000);
    rig.sim.stop().await;
}

#[tokio::test]
async fn month_to_date_spend_needs_a_known_currency() {
    let now = utc(2026, 11, 18, 13, 25);
    // A new account: no end-of-month invoice yet, and the month-to-date invoice names no currency.
    let new = FastlySim { past_months: 0, ..sim_account("USD") };
    let rig = Rig::start_with(now, new).await;
    let err = poll(rig.pollers("")[0].as_ref()).await.unwrap_err();
    assert_eq!(err.reason, Reason::Config);
    assert!(err.message.contains("names no currency") && err.message.contains("`fastly[0].currency`"), "{err}");
    let samples = poll(rig.pollers("currency = \"USD\"")[0].as_ref()).await.unwrap();
    assert_eq!(
        cents(only(&samples, FamilyId::BillingMonthToDateSpendUsd)[0].value),
        mtd_cents(&sim_account("USD"), now) as i64
    );
    let eur = poll(rig.pollers("currency = \"EUR\"")[0].as_ref()).await.unwrap();
    assert_eq!(eur.last(), Some(&cdn_usage_exporter::currency::marker("EUR")), "the configured currency");
    rig.sim.stop().await;

    // Invoices that name no currency: neither they nor the spend to date are called US dollars.
    let rig = Rig::start(now, "").await;
    for p in &rig.pollers("")[..2] {
        let err = poll(p.as_ref()).await.unwrap_err();
        assert!(err.message.contains("names no currency") && err.message.contains("fastly[0].currency"), "{err}");
    }
    for p in &rig.pollers("currency = \"usd\"")[..2] {
        poll(p.as_ref()).await.unwrap();
    }
    rig.sim.stop().await;

    // Once an invoice named the currency, the month-to-date job asks no more.
    let rig = Rig::start(now, "USD").await;
    let mtd = rig.pollers("")[0].clone();
    poll(mtd.as_ref()).await.unwrap();
    let listed = rig.requests("/billing/v3/invoices");
    assert!(listed > 0, "the first poll looked the currency up");
    poll(mtd.as_ref()).await.unwrap();
    assert_eq!(rig.requests("/billing/v3/invoices"), listed);
    rig.sim.stop().await;
}

#[tokio::test]
async fn hostile_service_lists_and_usage_answers_fail_the_poll() {
    let rig = Rig::start(utc(2026, 10, 12, 10, 0), "USD").await;
    rig.faults(FastlyFaults { link_elsewhere: true, ..FastlyFaults::default() });
    let err = poll(rig.pollers("")[2].as_ref()).await.unwrap_err();
    assert_eq!(err.reason, Reason::Provider);
    assert!(err.message.contains("http://elsewhere.example/service") && err.message.contains("not followed"), "{err}");
    assert_eq!(rig.requests("/stats/usage_by_service"), 0);
    rig.faults(FastlyFaults::default());
    let err = poll(rig.pollers("max_services = 1")[2].as_ref()).await.unwrap_err();
    assert!(err.message.contains("more than 1 services") && err.message.contains("fastly[0].max_services"), "{err}");
    let err = poll(rig.pollers("max_pages = 1")[2].as_ref()).await.unwrap_err();
    assert!(err.message.contains("fastly[0].max_pages"), "{err}");
    rig.faults(FastlyFaults { negative_bucket: true, ..FastlyFaults::default() });
    let err = poll(rig.pollers("")[2].as_ref()).await.unwrap_err();
    assert_eq!(err.reason, Reason::Parse);
    assert!(err.message.contains("negative"), "{err}");
    // More services in one region than max_services: refused, naming the key.
    rig.faults(FastlyFaults { extra_services: 150, ..FastlyFaults::default() });
    let err = poll(rig.pollers("")[2].as_ref()).await.unwrap_err();
    assert_eq!(err.reason, Reason::Parse);
    assert!(err.message.contains("more than 100 services") && err.message.contains("fastly[0].max_services"), "{err}");
    // Configured services: the others are not counted, but the answer is still bounded.
    let listed = format!("services = [\"{}\"]\nmax_services = 200", SERVICES[0]);
    assert!(poll(rig.pollers(&listed)[2].as_ref()).await.is_ok());
    rig.faults(FastlyFaults { extra_regions: 70, ..FastlyFaults::default() });
    let err = poll(rig.pollers("")[2].as_ref()).await.unwrap_err();
    assert!(err.message.contains("more than 64 regions"), "{err}");
    rig.faults(FastlyFaults { status: Some(401), only: Some("stats"), ..FastlyFaults::default() });
    assert_eq!(poll(rig.pollers("")[2].as_ref()).await.unwrap_err().reason, Reason::Auth);
    rig.sim.stop().await;
}

#[derive(Default)]
struct Collect(Vec<(i64, Vec<Sample>)>);

impl SampleSink for Collect {
    fn write(&mut self, samples: &[Sample], timestamp: i64) -> Result<(), SinkError> {
        self.0.push((timestamp, samples.to_vec()));
        Ok(())
    }
}

#[tokio::test]
async fn backfill_writes_daily_usage_and_the_bills_in_the_live_families() {
    let now = utc(2026, 11, 10, 12, 0);
    let rig = Rig::start(now, "USD").await;
    let account = rig.account("areas = [\"usa\", \"europe\"]");
    let units = history::units(&account, rig.client(&account));
    assert_eq!(units.iter().map(|u| u.name()).collect::<Vec<_>>(), ["fastly/f/stats", "fastly/f/invoices"]);
    let (from, to) = (timeutil::days_from_civil(2026, 10, 5), timeutil::days_from_civil(2026, 11, 20));
    // Months from their first day, today and later left to live polling.
    let october = timeutil::days_from_civil(2026, 10, 1);
    let november = timeutil::days_from_civil(2026, 11, 1);
    let today = now.div_euclid(86_400);
    assert_eq!(units[0].windows(from, to, now), [(october, october + 30), (november, today - 1)]);
    assert!(units[0].windows(from - 400, from - 380, now).is_empty(), "past the history kept");

    let mut sink = Collect::default();
    let w = Window { first: october, last: october + 30, emit_from: from, now };
    let before = rig.requests("/stats/usage_by_service");
    units[0].fetch(w, &mut sink).await.unwrap();
    assert_eq!(rig.requests("/stats/usage_by_service") - before, 31, "one usage request per day");
    assert_eq!(sink.0.len(), 27, "October 5 to 31");
    for (at, samples) in &sink.0 {
        let got = usage(samples);
        assert_eq!(got.len(), 6, "2 services × usa, europe, other");
        assert_eq!(got, expected_at_day_end(*at), "at {at}");
    }

    let mut sink = Collect::default();
    let w = Window { first: november, last: today - 1, emit_from: from, now };
    units[1].fetch(w, &mut sink).await.unwrap();
    assert_eq!(sink.0.len(), 9, "November 1 to 9, each with October's bill");
    let sim = sim_account("USD");
    for (_, samples) in &sink.0 {
        let total = only(samples, FamilyId::BillingLastMonthSpendUsd);
        assert_eq!(cents(total[0].value), bill_cents(&sim, october) as i64);
    }
    let mut sink = Collect::default();
    let w = Window { first: october, last: october + 30, emit_from: from, now };
    units[1].fetch(w, &mut sink).await.unwrap();
    let (at, final_spend) = sink.0.last().unwrap();
    assert_eq!(*at, november * 86_400, "October's final spend to date at its end");
    assert_eq!(
        cents(only(final_spend, FamilyId::BillingMonthToDateSpendUsd)[0].value),
        bill_cents(&sim, october) as i64
    );
    rig.sim.stop().await;
}

/// Month-to-date figures at the end of a whole UTC day (`at` a midnight), from full hours.
fn expected_at_day_end(at: i64) -> Usage {
    let month = timeutil::month_start((at - 1).div_euclid(86_400)) * 86_400;
    expected_between(&sim_account("USD"), month, at, &["usa", "europe"])
}

#[tokio::test]
async fn the_exporter_serves_fastly_spend_budget_and_usage_without_the_token() {
    let sim = Simulator::start(loopback(), SimState::builder().with(fastly_part(vec![sim_account("USD")])).build())
        .await
        .unwrap();
    let toml = format!(
        "[[fastly]]\nname = \"f\"\nbase_url = \"{}\"\napi_token = \"{TOKEN}\"\ninvoice_interval = \"1s\"\nstats_interval = \"1s\"\ntimeout = \"2s\"\nbudget_usd = 1000\n",
        sim.url("fastly").unwrap()
    );
    let config = Config::from_toml_str(&toml, "test").unwrap();
    let exporter = app::start(&config, loopback()).await.unwrap();
    let url = format!("http://{}/metrics", exporter.addr);
    let http = reqwest::Client::new();
    let s = wait_for(Duration::from_secs(30), "every Fastly job up", || async {
        let text = http.get(&url).send().await.ok()?.text().await.ok()?;
        let s = Scrape::parse(&text);
        let up = s.all("cdn_exporter_poll_up", &[("provider", "fastly")]);
        (up.len() == 3 && up.iter().all(|x| x.value == 1.0)).then_some((s, text))
    })
    .await;
    let (s, text) = s;
    let l = [("provider", "fastly"), ("account", "f")];
    assert_eq!(s.value("cdn_billing_budget_usd", &l), 1000.0);
    assert_eq!(s.value("cdn_billing_spend_source_info", &[("provider", "fastly"), ("source", "provider")]), 1.0);
    assert!(s.value("cdn_billing_month_to_date_spend_usd", &l) > 0.0);
    assert!(s.value("cdn_billing_last_month_spend_usd", &l) > 0.0);
    assert_eq!(s.all("cdn_billing_month_to_date_cost_usd", &l).len(), 3);
    for service in SERVICES {
        assert!(s.value("cdn_month_to_date_bandwidth_bytes", &[("service_id", service), ("area", "usa")]) > 0.0);
        let kind = if service == COMPUTE { "compute" } else { "delivery" };
        let l = [("service_id", service), ("area", "usa"), ("kind", kind)];
        assert!(s.value("cdn_month_to_date_requests", &l) > 0.0, "{service}: {kind} requests");
    }
    let status = http.get(format!("http://{}/", exporter.addr)).send().await.unwrap().text().await.unwrap();
    assert!(status.contains("fastly"), "the status page lists the account");
    assert!(!text.contains(TOKEN) && !status.contains(TOKEN), "the token shows nowhere");
    assert!(!format!("{config:?}").contains(TOKEN), "nor in a Debug print");
    exporter.stop().await;
    sim.stop().await;
}

/// The configuration of the Fastly account of `rig`, with `rates` as its `[exchange_rates]` lines.
fn euro_toml(rig: &Rig, rates: &str) -> String {
    format!(
        "[exchange_rates]\n{rates}\n[[fastly]]\nname = \"f\"\nbase_url = \"{}\"\napi_token = \"{TOKEN}\"\ninvoice_interval = \"1s\"\nstats_interval = \"1s\"\ntimeout = \"2s\"\nbudget_usd = 1000\n",
        rig.sim.url("fastly").unwrap()
    )
}

#[tokio::test]
async fn a_fastly_account_billed_in_euros_is_converted_at_the_configured_rate_and_a_missing_rate_keeps_the_usage() {
    use cdn_usage_exporter::app::{ConfigSource, WebOptions};
    let now = timeutil::now_unix();
    let rig = Rig::start(now, "EUR").await;
    // What the invoices say, in euros.
    let raw = poll(rig.pollers("")[1].as_ref()).await.unwrap();
    let eur = only(&raw, FamilyId::BillingLastMonthSpendUsd)[0].value;
    let http = reqwest::Client::new();
    let l = [("provider", "fastly"), ("account", "f")];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, euro_toml(&rig, "EUR = 1.25")).unwrap();
    let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let exporter =
        app::start_from(ConfigSource::File(path.clone()), &config, loopback(), &WebOptions::default()).await.unwrap();
    let base = format!("http://{}", exporter.addr);
    let scrape =
        || async { Some(Scrape::parse(&http.get(format!("{base}/metrics")).send().await.ok()?.text().await.ok()?)) };
    let s: Scrape = wait_for(Duration::from_secs(30), "every Fastly job up", || async {
        let s: Scrape = scrape().await?;
        let up = s.all("cdn_exporter_poll_up", &l);
        (up.len() == 3 && up.iter().all(|x| x.value == 1.0)).then_some(s)
    })
    .await;
    assert_eq!(s.value("cdn_billing_currency_info", &[("account", "f"), ("currency", "EUR")]), 1.0);
    assert_eq!(s.value("cdn_billing_exchange_rate", &[("account", "f"), ("currency", "EUR")]), 1.25);
    assert_eq!(cents(s.value("cdn_billing_last_month_spend_usd", &l)), cents(eur * 1.25), "euros × 1.25");
    let items: f64 = s.all("cdn_billing_last_month_cost_usd", &l).iter().map(|x| x.value).sum();
    assert_eq!(cents(items), cents(eur * 1.25), "the items are converted too");
    assert_eq!(s.value("cdn_billing_budget_usd", &l), 1000.0, "the budget is in US dollars, never converted");

    // A new rate, by reload: the account keeps running, its next poll converts at it.
    std::fs::write(&path, euro_toml(&rig, "EUR = 1.5")).unwrap();
    let summary = exporter.reload().await.unwrap();
    assert_eq!(summary.unchanged, 1, "a rate is no reason to restart an account");
    wait_for(Duration::from_secs(30), "last month at the new rate", || async {
        let s: Scrape = scrape().await?;
        (cents(s.get("cdn_billing_last_month_spend_usd", &l)?) == cents(eur * 1.5)
            && s.get("cdn_billing_exchange_rate", &[("account", "f"), ("currency", "EUR")]) == Some(1.5))
        .then_some(())
    })
    .await;

    // No rate for euros: no amount in dollars, a failed poll naming the key, the usage kept.
    std::fs::write(&path, euro_toml(&rig, "GBP = 1.3")).unwrap();
    exporter.reload().await.unwrap();
    let s: Scrape = wait_for(Duration::from_secs(30), "both billing jobs failed and the usage up", || async {
        let s: Scrape = scrape().await?;
        let up = |e: &str| s.all("cdn_exporter_poll_up", &[("account", "f"), ("endpoint", e)]).first().map(|x| x.value);
        let config_errors = |e: &str| {
            s.all("cdn_exporter_poll_errors_total", &[("endpoint", e), ("reason", "config")]).first().map(|x| x.value)
        };
        (up("stats") == Some(1.0)
            && up("invoices") == Some(0.0)
            && up("month-to-date") == Some(0.0)
            && config_errors("invoices") >= Some(1.0))
        .then_some(s)
    })
    .await;
    assert!(s.all("cdn_billing_last_month_spend_usd", &l).is_empty(), "euros are not exported as dollars");
    assert!(s.all("cdn_billing_month_to_date_spend_usd", &l).is_empty());
    assert!(!s.all("cdn_month_to_date_bandwidth_bytes", &l).is_empty(), "the usage is kept");
    let status = http.get(format!("{base}/")).send().await.unwrap().text().await.unwrap();
    assert!(status.contains("exchange_rates.EUR"), "the status page names the key to add");
    exporter.stop().await;
    rig.sim.stop().await;
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/fastly/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn the_vendor_shaped_fixtures_parse_and_normalize() {
    use cdn_usage_exporter::providers::common::wire::{Array, Capped, ListLimit, parse_capped};
    use cdn_usage_exporter::providers::fastly::{client, normalize, wire};
    let limit = ListLimit { max: 100, items: "entries", key: "k" };
    let body = fixture("month-to-date.json");
    client::classify(200, &body, "month-to-date", "fastly[0]").unwrap();
    let mtd: wire::MtdInvoice<'_> = parse_capped(&body, limit, "month-to-date invoice").unwrap();
    let (total, items) = normalize::month_to_date(mtd, 10, timeutil::days_from_civil(2025, 10, 15)).unwrap();
    assert_eq!(total, 842.17, "the string total");
    assert_eq!(items.len(), 1);
    assert_eq!(
        (items[0].0.item.as_str(), items[0].0.area.as_str(), items[0].1.amount),
        ("north_america_bandwidth", "North America", 610.2)
    );

    let body = fixture("invoices.json");
    let page: wire::InvoicePage<'_> = parse_capped(&body, limit, "invoices answer").unwrap();
    assert_eq!(page.meta.as_ref().and_then(|m| m.next_cursor.get()), Some(""), "the last page");
    let bill = normalize::bill(page.data.unwrap().0.remove(0), 10).unwrap();
    assert_eq!(
        (bill.month, bill.currency.as_deref(), bill.total),
        (timeutil::days_from_civil(2025, 9, 1), Some("USD"), 1290.55)
    );
    assert_eq!(bill.items[0].0.usage_type, "requests");

    let body = fixture("usage-by-service.json");
    client::classify(200, &body, "stats", "fastly[0]").unwrap();
    let areas: Vec<String> = ["usa", "europe"].iter().map(|a| a.to_string()).collect();
    let mut table = normalize::UsageTable::new(&[SERVICES[0].to_string()], &areas);
    table.add(wire::parse_usage(&body, 10, "k").unwrap(), &areas, true, 10, "k").unwrap();
    let u = |b, r, c| normalize::Usage { bytes: b, requests: r, compute: c };
    assert_eq!(
        table.services[0].1,
        [u(1_843_147_000.0, 97031.0, 0.0), u(905_123_456.0, 51200.0, 0.0), u(81_234_567.0, 4012.0, 0.0)]
    );
    assert_eq!(table.services[1].0, COMPUTE, "named by the answer, not the list");
    assert_eq!(table.services[1].1, [u(220_000.0, 0.0, 88.0), u(17245.0, 0.0, 6.0), u(514.0, 0.0, 3.0)]);

    let body = fixture("service.json");
    let Array(Capped(services)) = parse_capped::<Array<wire::ServiceEntry<'_>>>(&body, limit, "service list").unwrap();
    assert_eq!(services.len(), 3);
    assert_eq!(services[0].id.get(), Some(SERVICES[0]));
    assert_eq!(services[0].deleted_at.get(), None);
    assert_eq!(services[2].deleted_at.get(), Some("2025-06-01T00:00:00Z"));

    let err = client::classify(404, &fixture("error-billing.json"), "month-to-date", "fastly[0]").unwrap_err();
    assert_eq!(err.reason, Reason::Provider);
    assert!(err.message.contains("Not Found (code not_found)"), "{err}");
}

#[tokio::test]
async fn no_token_reaches_the_log_the_metrics_or_the_pages() {
    use crate::support::{Binary, Launch};
    let sim = Simulator::start(loopback(), SimState::builder().with(fastly_part(vec![sim_account("USD")])).build())
        .await
        .unwrap();
    let wrong = "fastly-wrong-secret-77";
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let url = sim.url("fastly").unwrap();
    let config = format!(
        "[[fastly]]\nname = \"good\"\nbase_url = \"{url}\"\napi_token_file = \"{}\"\ninvoice_interval = \"1s\"\nstats_interval = \"1s\"\ntimeout = \"2s\"\n\
         [[fastly]]\nname = \"bad\"\nbase_url = \"{url}\"\napi_token = \"{wrong}\"\ninvoice_interval = \"1s\"\nstats_interval = \"1s\"\ntimeout = \"2s\"\n",
        token_file.display()
    );
    let path = dir.path().join("config.toml");
    std::fs::write(&path, config).unwrap();
    let bin = Binary::start(&path, Launch { args: vec!["--log.level", "debug"], ..Launch::default() });
    let addr = bin.addr();
    let log = bin.wait_log("Fastly refused the token", 3).await;
    let http = reqwest::Client::new();
    let metrics = wait_for(Duration::from_secs(20), "the good account's spend", || async {
        let text = http.get(format!("http://{addr}/metrics")).send().await.ok()?.text().await.ok()?;
        text.contains("cdn_billing_month_to_date_spend_usd{provider=\"fastly\",account=\"good\"}").then_some(text)
    })
    .await;
    let page = http.get(format!("http://{addr}/")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Fastly refused the token"), "the status page says why the bad account fails");
    for secret in [TOKEN, wrong] {
        for (what, text) in [("log", &log), ("metrics", &metrics), ("status page", &page)] {
            assert!(!text.contains(secret), "the {what} shows a token");
        }
    }
    drop(bin);
    sim.stop().await;
}
