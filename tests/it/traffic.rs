//! CDNetworks traffic against the simulator, with one manual clock for both: the month walked
//! day by day, month-to-date bytes and requests equal to the simulator's slices, peak and 95th
//! percentile equal to an independent computation, revisions picked up, a restart rebuilding
//! the same figures, the request cost of a poll, and the month's turn.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cdn_usage_exporter::config::Config;
use cdn_usage_exporter::job::{PollContext, Poller, Sample};
use cdn_usage_exporter::providers::cdnetworks::simulator::CdnAccount;
use cdn_usage_exporter::providers::cdnetworks::simulator::traffic_slice;
use cdn_usage_exporter::providers::cdnetworks::{CdnetworksAccount, Client, traffic};
use cdn_usage_exporter::providers::common::http::{RetryPolicy, Upstream};
use cdn_usage_exporter::simulator::{Faults, SimState, Simulator};
use cdn_usage_exporter::timeutil::{self, Clock};
use tokio::sync::Semaphore;

use crate::support::cdn_part;
use crate::support::loopback;

const NINE: i64 = 9 * 3600;
const DOMAINS: [&str; 3] = ["a.example.net", "b.example.net", "c.example.net"];

fn sim_account() -> CdnAccount {
    CdnAccount {
        username: "user-t".into(),
        api_key: "key-t".into(),
        access_key: "AKT".into(),
        secret_key: "skt".into(),
        domains: DOMAINS.iter().map(|d| (d.to_string(), "C-1".to_string(), 0.0)).collect(),
    }
}

/// Unix time of a local (GMT+9) date and time.
fn local(y: i64, m: u32, d: u32, h: i64, mi: i64) -> i64 {
    timeutil::days_from_civil(y, m, d) * 86_400 + h * 3600 + mi * 60 - NINE
}

struct Rig {
    sim: Simulator,
    clock: Clock,
}

impl Rig {
    async fn start(now: i64) -> Rig {
        let clock = Clock::manual(now);
        let state = SimState::builder().with(cdn_part(vec![sim_account()])).clock(clock.clone()).build();
        Rig { sim: Simulator::start(loopback(), state).await.unwrap(), clock }
    }

    /// A fresh traffic job (a restarted exporter), API-key or AK/SK auth.
    fn job(&self, aksk: bool) -> traffic::Traffic {
        self.job_with(aksk, "")
    }

    /// A job whose configuration starts with `top` (top-level keys and tables).
    fn job_with(&self, aksk: bool, top: &str) -> traffic::Traffic {
        let auth = if aksk {
            "access_key = \"AKT\"\nsecret_key = \"skt\""
        } else {
            "username = \"user-t\"\napi_key = \"key-t\""
        };
        let domains: Vec<String> =
            DOMAINS.iter().map(|d| format!("{{ domain = \"{d}\", contract = \"C-1\" }}")).collect();
        let toml = format!(
            "{top}\n[[cdnetworks]]\nname = \"t\"\nbase_url = \"{}\"\n{auth}\nbandwidth_commit_mbps = 250\ndomains = [{}]\n",
            self.sim.cdnetworks_url(),
            domains.join(", ")
        );
        let config = Config::from_toml_str(&toml, "test").unwrap_or_else(|e| panic!("{e}"));
        let account = config.accounts_of::<CdnetworksAccount>()[0];
        let retry = RetryPolicy { attempts: 1, ..RetryPolicy::default() };
        let upstream = Upstream::new(Arc::new(Semaphore::new(8)), 8, retry).with_answers(config.limits.answers);
        let client = Client::new(account, &reqwest::Client::new(), upstream).unwrap().with_clock(self.clock.clone());
        traffic::Traffic::new(
            Arc::new(client),
            DOMAINS.iter().map(|d| d.to_string()).collect(),
            account.traffic_settle.as_secs() as i64,
            account.bandwidth_commit_mbps,
            account.path.clone(),
        )
    }

    fn requests(&self) -> usize {
        self.sim.state.cdn_requests_of("user-t")
    }

    /// Polls and returns the samples and how many requests the poll cost.
    async fn poll(&self, job: &traffic::Traffic) -> (Figures, usize) {
        let before = self.requests();
        let samples = tokio::time::timeout(Duration::from_secs(60), job.poll(&PollContext::UNBOUNDED))
            .await
            .expect("in time")
            .expect("poll");
        (Figures::of(&samples), self.requests() - before)
    }
}

/// Samples by (family name, domain label).
#[derive(Debug, PartialEq)]
struct Figures(BTreeMap<(&'static str, String), f64>);

impl Figures {
    fn of(samples: &[Sample]) -> Figures {
        Figures(
            samples
                .iter()
                .map(|s| {
                    let domain =
                        s.labels.iter().find(|(k, _)| *k == "domain").map(|(_, v)| v.clone()).unwrap_or_default();
                    ((s.family.def().name, domain), s.value)
                })
                .collect(),
        )
    }

    fn get(&self, family: &str, domain: &str) -> f64 {
        *self
            .0
            .get(&(family_name(family), domain.to_owned()))
            .unwrap_or_else(|| panic!("no {family} {domain}: {self:?}"))
    }
}

fn family_name(name: &str) -> &'static str {
    cdn_usage_exporter::families::FamilyId::ALL
        .iter()
        .map(|f| f.def().name)
        .find(|n| *n == name)
        .unwrap_or_else(|| panic!("no family {name}"))
}

/// The figures computed here, independently, from the simulator's slices of the month up to
/// `now`: sums of everything, peak and p95 over all but the newest (filling) slice.
fn expected(now: i64, revisions: &[i64]) -> Figures {
    let today = (now + NINE).div_euclid(86_400);
    let (y, m, _) = timeutil::civil_from_days(today);
    let month_start = timeutil::days_from_civil(y, m, 1) * 86_400 - NINE;
    let newest = now.div_euclid(300) * 300;
    let mut out = BTreeMap::new();
    let mut account: BTreeMap<i64, u64> = BTreeMap::new();
    let name = |n: &str| family_name(n);
    for d in DOMAINS {
        let (mut centi, mut requests, mut bw) = (0u64, 0u64, Vec::new());
        let mut end = month_start + 300;
        while let Some(s) = traffic_slice(d, end, now, revisions) {
            centi += s.traffic_centi_mb;
            requests += s.requests;
            if end != newest {
                bw.push(s.bandwidth_centi_mbps);
                *account.entry(end).or_default() += s.bandwidth_centi_mbps;
            }
            end += 300;
        }
        bw.sort_unstable();
        // Hundredths of a Mbps in bytes per second: 10^4 bit/s / 8.
        let p95 = |v: &[u64]| v[(v.len() as f64 * 0.95).ceil() as usize - 1] as f64 * 1250.0;
        out.insert((name("cdn_month_to_date_bandwidth_bytes"), d.to_owned()), centi as f64 * 1e4);
        out.insert((name("cdn_month_to_date_requests"), d.to_owned()), requests as f64);
        out.insert(
            (name("cdn_month_to_date_peak_bandwidth_bytes_per_second"), d.to_owned()),
            *bw.last().unwrap() as f64 * 1250.0,
        );
        out.insert((name("cdn_month_to_date_p95_bandwidth_bytes_per_second"), d.to_owned()), p95(&bw));
    }
    let mut sums: Vec<u64> = account.into_values().collect();
    sums.sort_unstable();
    let p95 = sums[(sums.len() as f64 * 0.95).ceil() as usize - 1] as f64 * 1250.0;
    out.insert(
        (name("cdn_month_to_date_account_peak_bandwidth_bytes_per_second"), String::new()),
        *sums.last().unwrap() as f64 * 1250.0,
    );
    out.insert((name("cdn_month_to_date_account_p95_bandwidth_bytes_per_second"), String::new()), p95);
    out.insert((name("cdn_bandwidth_commit_bytes_per_second"), String::new()), 250e6 / 8.0);
    // Days that ended a settle window (1 day) before now are final.
    let settled = (now - month_start - 86_400).div_euclid(86_400);
    if settled > 0 {
        out.insert(
            (name("cdn_traffic_settled_timestamp_seconds"), String::new()),
            (month_start + settled * 86_400) as f64,
        );
    }
    Figures(out)
}

#[tokio::test]
async fn a_month_walked_day_by_day_matches_the_simulators_slices() {
    // 31 December, 12:02 in GMT+9: a 31-day month, the newest slice (12:00) still filling.
    let now = local(2026, 12, 31, 12, 2);
    let rig = Rig::start(now).await;
    let job = rig.job(false);
    let (first, cost) = rig.poll(&job).await;
    assert_eq!(cost, 31, "the first poll walks the month one day per request");
    assert!(rig.sim.state.cdn_max_in_window("user-t", Duration::from_secs(300)) <= 300);
    assert_eq!(first, expected(now, &[]));
    // Every request: one day, all domains, grouped by domain, in the account's zone.
    for r in rig.sim.state.traffic_requests() {
        let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(body["groupBy"], serde_json::json!(["domain"]));
        assert_eq!(body["domain"].as_array().unwrap().len(), 3);
        let from = body["dateFrom"].as_str().unwrap();
        assert!(from.ends_with("T00:00:00+09:00") && body["dateTo"].as_str().unwrap().ends_with("T00:00:00+09:00"));
    }

    // Fifteen minutes on: only the provisional tail (the 30th, not final when fetched, and today).
    rig.clock.set(now + 900);
    let (second, cost) = rig.poll(&job).await;
    assert!(cost <= 3, "{cost} requests after warm-up");
    assert_eq!(cost, 2);
    assert_eq!(second, expected(now + 900, &[]));

    // A revision of recent slices shows at the next poll.
    rig.sim.state.revise_traffic();
    let revisions = rig.sim.state.traffic_revisions();
    let (third, _) = rig.poll(&job).await;
    assert_ne!(third, second, "revised slices change the figures");
    assert_eq!(third, expected(now + 900, &revisions));

    // A restarted exporter (a fresh job, AK/SK this time) rebuilds the same figures.
    let restarted = rig.job(true);
    let (rebuilt, cost) = rig.poll(&restarted).await;
    assert_eq!(cost, 31);
    assert_eq!(rebuilt, third);

    // The month turns: the figures start again from the new month's first slices.
    let turn = local(2027, 1, 1, 0, 12);
    rig.clock.set(turn);
    let (january, cost) = rig.poll(&job).await;
    assert_eq!(cost, 1, "only the 1st of January");
    assert_eq!(january, expected(turn, &revisions));
    let ten_past = january.get("cdn_month_to_date_bandwidth_bytes", "a.example.net");
    assert!(ten_past < first.get("cdn_month_to_date_bandwidth_bytes", "a.example.net") / 100.0);
    rig.sim.stop().await;
}

#[tokio::test]
async fn after_warm_up_a_poll_costs_at_most_three_requests_and_failures_keep_what_was_fetched() {
    let start = local(2026, 11, 3, 23, 50);
    let rig = Rig::start(start).await;
    let job = rig.job(false);
    let (_, cost) = rig.poll(&job).await;
    assert_eq!(cost, 3);
    // Ten days at a poll every 5 hours: never more than 3 requests (today, yesterday, and the
    // day before when it was last fetched before it settled).
    let mut now = start;
    for _ in 0..48 {
        now += 5 * 3600;
        rig.clock.set(now);
        let (figures, cost) = rig.poll(&job).await;
        assert!((1..=3).contains(&cost), "{cost} requests at {now}");
        assert_eq!(figures, expected(now, &[]), "at {now}");
    }
    // A failing provider: the poll fails, and the next good one costs no more than usual.
    rig.sim.state.set_faults(Faults { http_446: true, ..Faults::default() });
    now += 600;
    rig.clock.set(now);
    let e = job.poll(&PollContext::UNBOUNDED).await.unwrap_err();
    assert_eq!(e.reason.as_str(), "throttled", "{}", e.message);
    rig.sim.state.set_faults(Faults::default());
    let (figures, cost) = rig.poll(&job).await;
    assert!(cost <= 3);
    assert_eq!(figures, expected(now, &[]));
    rig.sim.stop().await;
}

#[tokio::test]
async fn the_simulator_enforces_the_traffic_request_rules() {
    let now = local(2026, 11, 20, 12, 0);
    let rig = Rig::start(now).await;
    let day = |from: &str, to: &str| serde_json::json!({"dateFrom": from, "dateTo": to, "domain": ["a.example.net"], "groupBy": ["domain"]});
    let cases = [
        (day("2026-11-19T00:00:00+09:00", "2026-11-20T00:00:00+09:00"), 200, ""),
        (day("2026-11-18T00:00:00+09:00", "2026-11-20T00:00:00+09:00"), 400, "24102006"),
        (day("2026-11-21T00:00:00+09:00", "2026-11-22T00:00:00+09:00"), 400, "24102006"),
        (day("2026-05-01T00:00:00+09:00", "2026-05-02T00:00:00+09:00"), 400, "24102006"),
        (day("2026-11-19", "2026-11-20"), 400, "24102021"),
        (serde_json::json!({"dateFrom": "2026-11-19T00:00:00+09:00", "domain": ["a.example.net"]}), 400, "24102006"),
        (
            serde_json::json!({"dateFrom": "2026-11-19T00:00:00+09:00", "dateTo": "2026-11-20T00:00:00+09:00",
                "domain": (0..1001).map(|i| format!("d{i}.example")).collect::<Vec<_>>()}),
            400,
            "24102008",
        ),
        (
            serde_json::json!({"dateFrom": "2026-11-19T00:00:00+09:00", "dateTo": "2026-11-20T00:00:00+09:00",
                "domain": ["a.example.net"], "groupBy": ["contract"]}),
            400,
            "24102023",
        ),
    ];
    for (body, status, code) in cases {
        let (s, answer) = send_at(&rig, body.clone()).await;
        assert_eq!((s, answer["code"].as_str().unwrap_or_default()), (status, code), "{body} → {answer}");
    }
    // A whole day: 289 slices inside [00:00, 24:00], labelled by their end, numbers as strings.
    let (_, answer) = send_at(&rig, day("2026-11-19T00:00:00+09:00", "2026-11-20T00:00:00+09:00")).await;
    let series = answer["result"][0]["dataSeries"].as_array().unwrap();
    assert_eq!(series.len(), 289);
    assert_eq!(series[0]["timestamp"], "2026-11-19 00:00");
    assert_eq!(series[288]["timestamp"], "2026-11-20 00:00");
    assert!(series[1]["bandwidth"].as_str().unwrap().contains('.'));
    assert!(answer["result"][0]["totalTraffic"].is_string());
    // Today up to now: the newest slice (12:00) is filling and grows on a later query.
    let today = day("2026-11-20T00:00:00+09:00", "2026-11-21T00:00:00+09:00");
    let (_, answer) = send_at(&rig, today.clone()).await;
    let series = answer["result"][0]["dataSeries"].as_array().unwrap().clone();
    assert_eq!(series.last().unwrap()["timestamp"], "2026-11-20 12:00");
    let value = |s: &serde_json::Value| s["bandwidth"].as_str().unwrap().parse::<f64>().unwrap();
    let filling = value(series.last().unwrap());
    rig.clock.set(now + 60);
    let (_, later) = send_at(&rig, today).await;
    let series = later["result"][0]["dataSeries"].as_array().unwrap();
    assert_eq!(series.last().unwrap()["timestamp"], "2026-11-20 12:00");
    assert!(value(series.last().unwrap()) == filling, "still the same slice, still filling");
    rig.clock.set(now + 300);
    let (_, later) = send_at(&rig, day("2026-11-20T00:00:00+09:00", "2026-11-21T00:00:00+09:00")).await;
    let series = later["result"][0]["dataSeries"].as_array().unwrap();
    let noon = series.iter().find(|s| s["timestamp"] == "2026-11-20 12:00").unwrap();
    assert!(value(noon) > filling, "the slice grew once complete");
    rig.sim.stop().await;
}

async fn send_at(rig: &Rig, body: serde_json::Value) -> (u16, serde_json::Value) {
    let now = rig.clock.now();
    let url = format!("{}{}", rig.sim.cdnetworks_url(), traffic::PATH);
    let date = timeutil::format_http_date(now);
    let password = cdn_usage_exporter::providers::cdnetworks::auth::api_key_password("key-t", &date);
    let r = reqwest::Client::new()
        .post(url)
        .header(
            "authorization",
            cdn_usage_exporter::providers::cdnetworks::auth::basic_authorization("user-t", &password),
        )
        .header("date", date)
        .header("accept", "application/json")
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, serde_json::from_slice(&r.bytes().await.unwrap()).unwrap_or_default())
}

#[tokio::test]
async fn domains_not_asked_for_never_become_labels() {
    let now = local(2026, 11, 2, 8, 0);
    let rig = Rig::start(now).await;
    rig.sim.state.set_faults(Faults { traffic_extra_domain: true, ..Faults::default() });
    let job = rig.job(false);
    let samples = job.poll(&PollContext::UNBOUNDED).await.unwrap();
    assert!(samples.iter().all(|s| s.labels.iter().all(|(_, v)| DOMAINS.contains(&v.as_str()))), "{samples:?}");
    let (got, want) = (Figures::of(&samples), expected(now, &[]));
    // The first domain's result came under another name: no traffic for it, the rest exact.
    assert_eq!(got.get("cdn_month_to_date_bandwidth_bytes", "a.example.net"), 0.0);
    for family in ["cdn_month_to_date_bandwidth_bytes", "cdn_month_to_date_p95_bandwidth_bytes_per_second"] {
        assert_eq!(got.get(family, "b.example.net"), want.get(family, "b.example.net"));
    }
    rig.sim.stop().await;
}

#[tokio::test]
async fn an_answer_past_traffic_bytes_fails_the_poll_and_says_what_to_raise() {
    let now = local(2026, 11, 2, 8, 0);
    let rig = Rig::start(now).await;
    // A day of three domains is about 250 KB; 4 KiB is the smallest bound allowed.
    let job = rig.job_with(false, "[answer_limits]\ntraffic_bytes = 4096");
    let e = job.poll(&PollContext::UNBOUNDED).await.unwrap_err();
    assert_eq!(e.reason.as_str(), "parse", "{}", e.message);
    assert!(
        e.message.contains("traffic-request answer") && e.message.contains("answer_limits.traffic_bytes"),
        "{}",
        e.message
    );
    // With the default bound the same answers are read.
    assert_eq!(Figures::of(&rig.job(false).poll(&PollContext::UNBOUNDED).await.unwrap()), expected(now, &[]));
    rig.sim.stop().await;
}

#[tokio::test]
async fn days_fetched_before_a_failure_are_kept_for_the_next_poll() {
    let now = local(2026, 11, 10, 15, 0);
    let rig = Rig::start(now).await;
    let job = rig.job(false);
    // The 5th cannot be had: the poll fails there, after the 1st to the 4th.
    rig.sim.state.set_faults(Faults { fail_window: Some("2026-11-05".into()), ..Faults::default() });
    let before = rig.requests();
    let e = job.poll(&PollContext::UNBOUNDED).await.unwrap_err();
    assert_eq!(e.reason.as_str(), "http", "{}", e.message);
    assert_eq!(rig.requests() - before, 5, "the 1st to the 4th, then the 5th failed");
    rig.sim.state.set_faults(Faults::default());
    let (figures, cost) = rig.poll(&job).await;
    assert_eq!(cost, 6, "the 5th to the 10th only: the 1st to the 4th were final when fetched");
    assert_eq!(figures, expected(now, &[]));
    rig.sim.stop().await;
}
