//! CDNetworks against the simulator over loopback: both auth schemes, the newest complete
//! point, the request rules of the doc, and one bad domain failing alone.

use std::time::Duration;

use cdn_usage_exporter::app::{self, Running};
use cdn_usage_exporter::config::Config;
use cdn_usage_exporter::job::JobKey;
use cdn_usage_exporter::providers::cdnetworks::simulator::CdnAccount;
use cdn_usage_exporter::providers::cdnetworks::simulator::{daily_value, hourly_value};
use cdn_usage_exporter::providers::cdnetworks::{self, auth};
use cdn_usage_exporter::simulator::{Faults, SimState, Simulator};
use cdn_usage_exporter::timeutil;
use serde_json::Value;

use crate::support::cdn_part;
use crate::support::{Scrape, loopback, wait_for};

const NINE: i64 = 9 * 3600;

fn account() -> CdnAccount {
    CdnAccount {
        username: "user-1".into(),
        api_key: "api-key-1/é".into(),
        access_key: "AK1".into(),
        secret_key: "sk-1".into(),
        domains: vec![("a.example.net".into(), "C-1".into(), 5e9), ("b.example.net".into(), "C-2".into(), 7e9)],
    }
}

struct Cdn {
    sim: Simulator,
    exporter: Running,
}

impl Cdn {
    async fn start(auth_toml: &str, extra: &str) -> Cdn {
        let sim =
            Simulator::start(loopback(), SimState::builder().with(cdn_part(vec![account()])).build()).await.unwrap();
        let toml = format!(
            r#"
[[cdnetworks]]
name = "cn"
base_url = "{}"
{auth_toml}
interval = "1s"
timeout = "2s"
{extra}
domains = [
  {{ domain = "a.example.net", contract = "C-1" }},
  {{ domain = "b.example.net", contract = "C-2" }},
  {{ domain = "missing.example.net", contract = "C-1" }},
]
"#,
            sim.cdnetworks_url()
        );
        let config = Config::from_toml_str(&toml, "test").unwrap_or_else(|e| panic!("{e}"));
        let exporter = app::start(&config, loopback()).await.unwrap();
        Cdn { sim, exporter }
    }

    async fn scrape(&self) -> Scrape {
        let url = format!("http://{}/metrics", self.exporter.addr);
        Scrape::parse(&reqwest::get(url).await.unwrap().text().await.unwrap())
    }

    /// Waits until both good domains export storage.
    async fn wait_storage(&self) -> Scrape {
        wait_for(Duration::from_secs(10), "storage of both domains", || async {
            let s = self.scrape().await;
            (s.all("cdn_storage_bytes", &[("account", "cn")]).len() == 2).then_some(s)
        })
        .await
    }

    fn health(&self, domain: &str) -> Option<cdn_usage_exporter::store::Health> {
        let key = JobKey {
            provider: "cdnetworks",
            account: "cn".into(),
            endpoint: "domain-usage",
            domain: Some(domain.into()),
        };
        self.exporter.store.health(&key)
    }

    async fn stop(self) {
        self.exporter.stop().await;
        self.sim.stop().await;
    }
}

const API_KEY_AUTH: &str = "username = \"user-1\"\napi_key = \"api-key-1/é\"";
const AKSK_AUTH: &str = "access_key = \"AK1\"\nsecret_key = \"sk-1\"";

/// The value the simulator serves for the newest complete hour, given when the scrape happened.
fn expect_hourly(base: f64, value: f64, ts: f64) {
    let now = timeutil::now_unix();
    let newest = now.div_euclid(3600) * 3600;
    // Allow for an hour boundary passing between the poll and this check.
    assert!(ts == newest as f64 || ts == (newest - 3600) as f64, "timestamp {ts}, now {now}");
    assert_eq!(value, hourly_value(base, ts as i64), "the complete point, not the halved partial one");
}

#[tokio::test]
async fn api_key_auth_exports_the_newest_complete_hour_and_one_bad_domain_fails_alone() {
    let c = Cdn::start(API_KEY_AUTH, "").await;
    let s = c.wait_storage().await;
    for (domain, base) in [("a.example.net", 5e9), ("b.example.net", 7e9)] {
        let l = [("provider", "cdnetworks"), ("account", "cn"), ("domain", domain)];
        expect_hourly(base, s.value("cdn_storage_bytes", &l), s.value("cdn_storage_sample_timestamp_seconds", &l));
        assert_eq!(s.value("cdn_exporter_poll_up", &l), 1.0);
    }
    let bad = wait_for(Duration::from_secs(10), "the bad domain's poll", || async {
        c.health("missing.example.net").filter(|h| h.polls > 0)
    })
    .await;
    let error = bad.last_error.expect("failed");
    assert_eq!(error.reason.as_str(), "provider");
    assert!(
        error
            .message
            .contains("domain missing.example.net not found under contract C-1: check `cdnetworks[0].domains[2]`"),
        "{}",
        error.message
    );
    assert!(error.message.contains("X-Cnc-Request-Id sim-"), "request id logged: {}", error.message);
    let s = c.scrape().await;
    assert_eq!(s.get("cdn_storage_bytes", &[("domain", "missing.example.net")]), None);
    assert_eq!(s.value("cdn_exporter_poll_up", &[("domain", "missing.example.net")]), 0.0);

    // Every request followed the doc's rules.
    let requests = c.sim.state.cdn_requests();
    assert!(!requests.is_empty());
    for r in &requests {
        let h = |k: &str| r.headers.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(h("accept"), Some("application/json"));
        assert_eq!(h("x-time-zone"), Some("GMT+09:00"));
        let date = h("date").expect("Date header");
        assert!(timeutil::parse_http_date(date).is_some_and(|t| (t - timeutil::now_unix()).abs() < 60), "{date}");
        let body: Value = serde_json::from_str(&r.body).unwrap();
        let keys: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["dateFrom", "dateTo", "domain", "contract", "type"]);
        let from = timeutil::parse_ymd(body["dateFrom"].as_str().unwrap()).unwrap();
        let to = timeutil::parse_ymd(body["dateTo"].as_str().unwrap()).unwrap();
        assert!(from < to && to - from <= 31, "{body}");
        assert_eq!(to, (timeutil::now_unix() + NINE).div_euclid(86_400), "dateTo is today in GMT+9");
        assert_eq!(body["type"], "h");
    }
    c.stop().await;
}

#[tokio::test]
async fn aksk_auth_works_and_daily_points_end_at_the_next_midnight() {
    let c = Cdn::start(AKSK_AUTH, "granularity = \"d\"\ntime_zone = \"GMT-05:00\"").await;
    let s = c.wait_storage().await;
    let five = -5 * 3600;
    let yesterday = (timeutil::now_unix() + five).div_euclid(86_400) - 1;
    let l = [("domain", "a.example.net")];
    assert_eq!(s.value("cdn_storage_bytes", &l), daily_value(5e9, yesterday));
    assert_eq!(s.value("cdn_storage_sample_timestamp_seconds", &l), ((yesterday + 1) * 86_400 - five) as f64);
    let r = &c.sim.state.cdn_requests()[0];
    assert!(r.headers.iter().any(|(k, v)| k == "x-cnc-auth-method" && v == "AKSK"));
    assert!(r.headers.iter().all(|(k, _)| k != "date"), "AK/SK signs a timestamp, not Date");
    c.stop().await;
}

#[tokio::test]
async fn wrong_credentials_are_auth_errors_and_throttling_is_throttled() {
    for auth_toml in ["username = \"user-1\"\napi_key = \"nope\"", "access_key = \"AK1\"\nsecret_key = \"nope\""] {
        let c = Cdn::start(auth_toml, "").await;
        let h =
            wait_for(Duration::from_secs(10), "a poll", || async { c.health("a.example.net").filter(|h| h.polls > 0) })
                .await;
        let e = h.last_error.expect("failed");
        assert_eq!(e.reason.as_str(), "auth", "{auth_toml}: {}", e.message);
        assert!(!e.message.contains("nope"), "no secret in messages");
        c.stop().await;
    }
    let c = Cdn::start(API_KEY_AUTH, "").await;
    c.wait_storage().await;
    c.sim.state.set_faults(Faults { http_446: true, ..Faults::default() });
    wait_for(Duration::from_secs(10), "a throttled poll", || async {
        let s = c.scrape().await;
        (s.get("cdn_exporter_poll_errors_total", &[("domain", "a.example.net"), ("reason", "throttled")])? >= 1.0)
            .then_some(())
    })
    .await;
    // The last good value stays while throttled.
    assert_eq!(c.scrape().await.all("cdn_storage_bytes", &[]).len(), 2);
    c.sim.state.set_faults(Faults { failure_code: Some("24102500".into()), ..Faults::default() });
    wait_for(Duration::from_secs(10), "an internal error classified as http", || async {
        let s = c.scrape().await;
        (s.get("cdn_exporter_poll_errors_total", &[("domain", "a.example.net"), ("reason", "http")])? >= 1.0)
            .then_some(())
    })
    .await;
    c.sim.state.set_faults(Faults { bare_envelope: true, ..Faults::default() });
    let before = c.health("a.example.net").unwrap().polls;
    wait_for(Duration::from_secs(10), "a successful poll on the bare envelope", || async {
        c.health("a.example.net").filter(|h| h.polls > before && h.up)
    })
    .await;
    c.stop().await;
}

/// Sends one API-key-signed request straight to the simulator.
async fn raw(sim: &Simulator, body: &str) -> (u16, Value) {
    let date = timeutil::format_http_date(timeutil::now_unix());
    let password = auth::api_key_password("api-key-1/é", &date);
    let response = reqwest::Client::new()
        .post(format!("{}{}", sim.cdnetworks_url(), cdnetworks::PATH))
        .header("authorization", auth::basic_authorization("user-1", &password))
        .header("date", date)
        .header("accept", "application/json")
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, serde_json::from_slice(&response.bytes().await.unwrap()).unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_simulator_enforces_the_docs_request_rules() {
    let sim = Simulator::start(loopback(), SimState::builder().with(cdn_part(vec![account()])).build()).await.unwrap();
    let today = (timeutil::now_unix() + NINE).div_euclid(86_400);
    let d = |n: i64| timeutil::format_ymd(today - n);
    let req = |from: &str, to: &str, domain: &str, contract: &str| {
        format!(r#"{{"dateFrom":"{from}","dateTo":"{to}","domain":"{domain}","contract":"{contract}","type":"d"}}"#)
    };
    let cases = [
        (req(&d(31), &d(0), "a.example.net", "C-1"), 200, "0"),
        (req(&d(32), &d(0), "a.example.net", "C-1"), 400, "24102023"),
        (req(&d(1), &d(1), "a.example.net", "C-1"), 400, "24102006"),
        (req(&d(0), &d(3), "a.example.net", "C-1"), 400, "24102006"),
        (req("2022/08/01", &d(0), "a.example.net", "C-1"), 400, "24102021"),
        (req(&d(800), &d(790), "a.example.net", "C-1"), 400, "24102006"),
        (req(&d(2), &d(0), "", "C-1"), 400, "24102008"),
        (req(&d(2), &d(0), "zzz.example.net", "C-1"), 400, "24102008"),
        (req(&d(2), &d(0), "a.example.net", "C-2"), 400, "34102022"),
    ];
    for (body, status, code) in cases {
        let (s, answer) = raw(&sim, &body).await;
        assert_eq!((s, answer["code"].as_str().unwrap_or_default()), (status, code), "{body} → {answer}");
    }
    // The 31-day window gives 32 daily points, today's still filling.
    let (_, answer) = raw(&sim, &req(&d(31), &d(0), "a.example.net", "C-1")).await;
    assert_eq!(answer["data"].as_array().unwrap().len(), 32);
    sim.stop().await;
}
