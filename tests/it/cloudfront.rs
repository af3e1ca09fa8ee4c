//! The CloudFront provider against the simulator (every signature checked, the four APIs as AWS
//! serves them), and its configuration example. moto's judgement is in cloudfront_moto.rs.

use cdn_usage_exporter::config::Config;
use cdn_usage_exporter::providers::cloudfront::CloudFrontAccount;
use cdn_usage_exporter::providers::cloudfront::config::Source;

#[test]
fn the_commented_example_table_validates() {
    let example = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/config.example.toml")).unwrap();
    let start = example.find("# [[cloudfront]]").expect("a [[cloudfront]] example");
    let end = example[start..].find("\n# One [[").map_or(example.len(), |e| start + e);
    let table: String = example[start..end]
        .lines()
        .map(|l| l.strip_prefix("# ").unwrap_or(l))
        .map(|l| match l {
            l if l.starts_with("access_key_id_env") => "access_key_id = \"AKIAEXAMPLEEXAMPLE01\"",
            l if l.starts_with("secret_access_key_file") => "secret_access_key = \"example-secret\"",
            l if l.starts_with("external_id_env") => "external_id = \"example-external-id\"",
            l => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let config = Config::from_toml_str(&table, "example").unwrap_or_else(|e| panic!("{e}\n{table}"));
    let a = config.accounts_of::<CloudFrontAccount>()[0];
    assert_eq!((a.name.as_str(), a.budget_usd), ("aws-prod", Some(1500.0)));
    assert!(matches!(&a.source, Source::Keys { from: "config", .. }));
    let role = a.assume_role.as_ref().expect("the example assumes a role");
    assert_eq!(role.role_arn, "arn:aws:iam::123456789012:role/cdn-usage-exporter");
}

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cdn_usage_exporter::families::FamilyId;
use cdn_usage_exporter::job::{JobSpec, PollContext, PollError, Reason, RequestSink, Sample};
use cdn_usage_exporter::providers::cloudfront::simulator::{
    self as sim, DEMO_ACCESS_KEY_ID, DEMO_EXTERNAL_ID, DEMO_SECRET_ACCESS_KEY, SENSITIVE, SigningClock, data,
};
use cdn_usage_exporter::providers::cloudfront::{Client, jobs};
use cdn_usage_exporter::providers::common::http::{RetryPolicy, Upstream};
use cdn_usage_exporter::providers::{Account, Context, Window};
use cdn_usage_exporter::simulator::{Faults, SimState, Simulator};
use cdn_usage_exporter::timeutil::{self, Clock};

use crate::support::{Binary, Collect, Launch, Scrape, loopback, wait_for};

const ROLE: &str = "arn:aws:iam::123456789012:role/cdn-exporter";

/// What the exporter's requests were priced at, by api.
#[derive(Default)]
pub struct Priced(pub Mutex<BTreeMap<&'static str, f64>>);

impl RequestSink for Priced {
    fn count(&self, _: &'static str, _: &Arc<str>, _: &str) {}
    fn cost(&self, _: &'static str, _: &Arc<str>, api: &'static str, usd: f64) {
        *self.0.lock().unwrap().entry(api).or_default() += usd;
    }
}

/// The simulator with the demo account, its figures on a manual clock at the start of this
/// minute (signatures checked against the wall clock, which the exporter signs with).
struct Rig {
    sim: Simulator,
    t0: i64,
}

async fn rig() -> Rig {
    let now = timeutil::now_unix();
    let t0 = now - now.rem_euclid(60);
    let state = SimState::builder()
        .with(sim::part_with(sim::demo_accounts(), SigningClock::System))
        .clock(Clock::manual(t0))
        .build();
    Rig { sim: Simulator::start(loopback(), state).await.unwrap(), t0 }
}

impl Rig {
    fn url(&self) -> String {
        self.sim.url("cloudfront").expect("the simulator serves cloudfront")
    }

    fn account(&self, extra: &str) -> CloudFrontAccount {
        let toml = format!(
            "[[cloudfront]]\nname = \"aws\"\naccess_key_id = \"{DEMO_ACCESS_KEY_ID}\"\nsecret_access_key = \"{DEMO_SECRET_ACCESS_KEY}\"\nendpoint_url = \"{}\"\n{extra}\n",
            self.url()
        );
        Config::from_toml_str(&toml, "test").unwrap_or_else(|e| panic!("{e}")).accounts_of::<CloudFrontAccount>()[0]
            .clone()
    }

    fn role(&self) -> CloudFrontAccount {
        self.account(&format!("role_arn = \"{ROLE}\"\nexternal_id = \"{DEMO_EXTERNAL_ID}\""))
    }

    fn assumed(&self) -> usize {
        self.sim.state.cloudfront_requests().iter().filter(|r| r.operation == "AssumeRole").count()
    }
}

/// The jobs of `account`, retried as `retry` says, its requests priced into `priced`.
pub fn jobs_of(account: &CloudFrontAccount, retry: RetryPolicy, priced: Arc<Priced>) -> Vec<JobSpec> {
    let upstream = Upstream::new(Arc::new(tokio::sync::Semaphore::new(4)), 4, retry).counting("cloudfront", priced);
    jobs::jobs(account, Arc::new(Client::new(account, &reqwest::Client::new(), upstream)))
}

/// One attempt per request.
pub fn once() -> RetryPolicy {
    RetryPolicy { attempts: 1, ..RetryPolicy::default() }
}

/// One poll of the job `endpoint` among `jobs`.
pub async fn poll(jobs: &[JobSpec], endpoint: &str) -> Result<Vec<Sample>, PollError> {
    let job = jobs.iter().find(|j| j.key.endpoint == endpoint).unwrap_or_else(|| panic!("no {endpoint} job"));
    tokio::time::timeout(Duration::from_secs(60), job.poller.poll(&PollContext::UNBOUNDED)).await.expect("in time")
}

/// The value of `family` (with `label`, if given) among `samples`.
pub fn value(samples: &[Sample], family: FamilyId, label: Option<(&str, &str)>) -> Option<f64> {
    samples
        .iter()
        .find(|s| s.family == family && label.is_none_or(|(k, v)| s.labels.iter().any(|(n, x)| *n == k && x == v)))
        .map(|s| s.value)
}

fn near(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() <= 1e-9 * b.abs().max(1.0))
}

/// The simulated CloudFront cost of the days `[from, to)` at `now`, per usage type.
fn cost_of(from: i64, to: i64, now: i64) -> BTreeMap<String, f64> {
    let account = &sim::demo_accounts()[0];
    data::line_items(account)
        .iter()
        .filter(|l| l.service == data::CLOUDFRONT)
        .map(|l| (l.usage_type.clone(), (from..to).map(|d| l.day(d, now, account.history_from).0).sum::<f64>()))
        .collect()
}

#[tokio::test]
async fn through_an_assumed_role_every_figure_is_the_simulators_pages_and_all() {
    let rig = rig().await;
    let priced = Arc::new(Priced::default());
    let jobs = jobs_of(&rig.role(), once(), priced.clone());
    let today = rig.t0.div_euclid(86_400);
    let month = timeutil::month_start(today);
    let last = timeutil::month_start(month - 1);

    // Spend: CloudFront's usage types only (the other services' costs are filtered out), read
    // over two pages of five groups.
    let cost = poll(&jobs, "cost").await.unwrap_or_else(|e| panic!("{e}"));
    let expected = cost_of(month, today + 1, rig.t0);
    assert!(near(value(&cost, FamilyId::BillingMonthToDateSpendUsd, None), expected.values().sum()), "{cost:?}");
    for (item, usd) in &expected {
        assert!(near(value(&cost, FamilyId::BillingMonthToDateCostUsd, Some(("item", item))), *usd), "{item}");
    }
    let last_month = cost_of(last, month, rig.t0);
    assert!(near(value(&cost, FamilyId::BillingLastMonthSpendUsd, None), last_month.values().sum()));
    assert!(value(&cost, FamilyId::BillingMonthToDateCostUsd, Some(("item", "other"))).is_none());

    // The provider's estimate: spent before today plus the forecast, inside its interval.
    let forecast = poll(&jobs, "forecast").await.unwrap_or_else(|e| panic!("{e}"));
    let (mean, low, high) = (
        value(&forecast, FamilyId::BillingEstimatedMonthSpendUsd, None).unwrap(),
        value(&forecast, FamilyId::BillingEstimatedMonthSpendLowUsd, None).unwrap(),
        value(&forecast, FamilyId::BillingEstimatedMonthSpendHighUsd, None).unwrap(),
    );
    let before: f64 = cost_of(month, today, rig.t0).values().sum();
    assert!(before < low && low <= mean && mean <= high, "{before} {low} {mean} {high}");

    // Usage: CloudWatch's sums per distribution, named by alias or cloudfront.net name.
    let usage = poll(&jobs, "usage").await.unwrap_or_else(|e| panic!("{e}"));
    let end = timeutil::now_unix() / 60 * 60;
    for d in &sim::demo_accounts()[0].distributions {
        let of = Some(("distribution_id", d.id.as_str()));
        let sum = |m| data::cw_sum(d, m, month * 86_400, end, rig.t0, sim::demo_accounts()[0].history_from);
        assert!(
            near(value(&usage, FamilyId::MonthToDateBandwidthBytes, of), sum(data::Metric::BytesDownloaded)),
            "{}",
            d.id
        );
        assert!(near(value(&usage, FamilyId::MonthToDateUploadBytes, of), sum(data::Metric::BytesUploaded)));
        assert!(near(value(&usage, FamilyId::MonthToDateRequests, of), sum(data::Metric::Requests)));
        let domain = d.aliases.first().unwrap_or(&d.domain_name);
        assert!(usage.iter().any(|s| s.labels.contains(&("domain", domain.clone()))), "{domain}");
    }

    // One AssumeRole for the three jobs; every request signed and accepted; each Cost Explorer
    // page priced $0.01 (2 + 2 pages of cost, 2 requests of forecast), 6 metrics $0.00006.
    assert_eq!(rig.assumed(), 1);
    let requests = rig.sim.state.cloudfront_requests();
    assert!(requests.iter().all(|r| r.authorized), "{requests:?}");
    let priced = priced.0.lock().unwrap().clone();
    assert!(near(priced.get("ce").copied(), 0.06), "{priced:?}");
    assert!(near(priced.get("monitoring").copied(), 0.00006), "{priced:?}");
    // Last month is final in the simulator after the 4th: then it is not asked again.
    let asked = requests.len();
    poll(&jobs, "cost").await.unwrap();
    let again = rig.sim.state.cloudfront_requests().len() - asked;
    let final_month = timeutil::civil_from_days(today).2 > 4;
    assert_eq!(again, if final_month { 2 } else { 4 }, "cost pages asked on a second poll");
    rig.sim.stop().await;
}

#[tokio::test]
async fn expired_temporary_credentials_are_renewed_within_the_poll() {
    let rig = rig().await;
    let jobs = jobs_of(&rig.role(), once(), Arc::default());
    poll(&jobs, "usage").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rig.assumed(), 1);
    // Two hours later by AWS's clock, the one-hour session has ended: AWS says ExpiredToken,
    // the exporter assumes the role again and the same poll succeeds.
    rig.sim.state.clock.set(rig.t0 + 7200);
    poll(&jobs, "usage").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rig.assumed(), 2, "renewed once");
    assert!(rig.sim.state.cloudfront_requests().iter().any(|r| !r.authorized), "the expired session was refused");
    rig.sim.stop().await;
}

#[tokio::test]
async fn throttling_is_retried_and_a_throttle_that_stays_is_a_throttled_poll() {
    let rig = rig().await;
    let quick = RetryPolicy { attempts: 3, base: Duration::from_millis(10), ..RetryPolicy::default() };
    let jobs = jobs_of(&rig.account(""), quick, Arc::default());
    rig.sim.state.set_faults(Faults { aws_throttle_next: 2, ..Faults::default() });
    poll(&jobs, "cost").await.unwrap_or_else(|e| panic!("two throttles, then an answer: {e}"));
    rig.sim.state.set_faults(Faults { aws_throttle: true, ..Faults::default() });
    for endpoint in ["cost", "forecast", "usage"] {
        let e = poll(&jobs, endpoint).await.unwrap_err();
        assert_eq!(e.reason, Reason::Throttled, "{endpoint}: {e}");
    }
    rig.sim.state.set_faults(Faults { http_500: true, ..Faults::default() });
    assert_eq!(poll(&jobs, "cost").await.unwrap_err().reason, Reason::Http);
    rig.sim.stop().await;
}

#[tokio::test]
async fn wrong_credentials_are_clear_failed_polls_that_show_no_secret() {
    let rig = rig().await;
    let wrong = rig.account("").clone();
    let mut wrong_secret = wrong.clone();
    if let Source::Keys { keys, .. } = &mut wrong_secret.source {
        keys.secret_access_key = cdn_usage_exporter::secret::Secret::new("wrong-secret-4f1c");
    }
    let e = poll(&jobs_of(&wrong_secret, once(), Arc::default()), "cost").await.unwrap_err();
    assert_eq!(e.reason, Reason::Auth);
    assert!(e.message.contains("InvalidSignatureException") && e.message.contains("secret_access_key"), "{e}");
    let bad_role = rig.account(&format!(
        "role_arn = \"{ROLE}\"\nexternal_id = \"not-the-id\"\nrole_session_name = \"hidden-session\""
    ));
    let e = poll(&jobs_of(&bad_role, once(), Arc::default()), "usage").await.unwrap_err();
    assert_eq!(e.reason, Reason::Auth);
    assert!(e.message.contains("AssumeRole"), "{e}");
    for text in [e.message.as_str(), &format!("{bad_role:?}")] {
        for secret in SENSITIVE.iter().chain(&["not-the-id", "hidden-session", "wrong-secret-4f1c", DEMO_ACCESS_KEY_ID])
        {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
    rig.sim.stop().await;
}

#[tokio::test]
async fn backfill_writes_each_days_month_to_date_figures_and_last_months_bill() {
    let rig = rig().await;
    let account = rig.account("");
    let http = reqwest::Client::new();
    let upstream = Upstream::new(Arc::new(tokio::sync::Semaphore::new(4)), 4, RetryPolicy::default());
    let units = account.history(&Context { http: &http, upstream: &upstream }).unwrap();
    assert_eq!(units.iter().map(|u| u.name()).collect::<Vec<_>>(), ["cloudfront/aws/cost", "cloudfront/aws/usage"]);
    assert!(units[0].bills() && !units[1].bills());
    let now = rig.t0;
    let today = now.div_euclid(86_400);
    let month = timeutil::month_start(today);
    let last = timeutil::month_start(month - 1);
    let before = timeutil::month_start(last - 1);
    let history_from = sim::demo_accounts()[0].history_from;
    for unit in &units {
        let windows = unit.windows(last, month - 1, now);
        assert_eq!(windows, [(last, month - 1)], "{}", unit.name());
        // Months past what AWS keeps are left out.
        assert!(unit.windows(today - 800, today - 1, now).iter().all(|w| w.0 >= today - 456), "{}", unit.name());
    }
    let mut cost = Collect::default();
    units[0].fetch(Window { first: last, last: month - 1, emit_from: last, now }, &mut cost).await.unwrap();
    assert_eq!(cost.0.len() as i64, month - last, "one write a day");
    let mut previous = 0.0;
    for (day, (at, samples)) in (last..month).zip(&cost.0) {
        assert_eq!(*at, (day + 1) * 86_400 - 1);
        let spend = value(samples, FamilyId::BillingMonthToDateSpendUsd, None).unwrap();
        assert!(near(Some(spend), cost_of(last, day + 1, now).values().sum()), "day {day}");
        assert!(spend >= previous);
        previous = spend;
        let bill = value(samples, FamilyId::BillingLastMonthSpendUsd, None);
        assert!(near(bill, cost_of(before, last, now).values().sum()), "the month before's bill");
    }
    let mut usage = Collect::default();
    units[1].fetch(Window { first: last, last: month - 1, emit_from: last + 10, now }, &mut usage).await.unwrap();
    assert_eq!(usage.0.len() as i64, month - last - 10, "days before emit_from only feed the sums");
    let (at, samples) = usage.0.last_key_value().unwrap();
    assert_eq!(*at, month * 86_400 - 1);
    for d in &sim::demo_accounts()[0].distributions {
        let expected = data::cw_sum(d, data::Metric::Requests, last * 86_400, month * 86_400, now, history_from);
        assert!(
            near(value(samples, FamilyId::MonthToDateRequests, Some(("distribution_id", &d.id))), expected),
            "{}",
            d.id
        );
    }
    rig.sim.stop().await;
}

#[tokio::test]
async fn no_key_secret_token_external_id_or_comment_reaches_any_output() {
    let rig = rig().await;
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, format!("{DEMO_SECRET_ACCESS_KEY}\n")).unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(
        &path,
        format!(
            "[[cloudfront]]\nname = \"aws\"\naccess_key_id = \"{DEMO_ACCESS_KEY_ID}\"\nsecret_access_key_file = \"{}\"\n\
             endpoint_url = \"{}\"\nrole_arn = \"{ROLE}\"\nexternal_id = \"{DEMO_EXTERNAL_ID}\"\nusage_interval = \"2s\"\n",
            secret_file.display(),
            rig.url()
        ),
    )
    .unwrap();
    let exporter = Binary::start(&path, Launch { args: vec!["--log.level", "debug"], ..Launch::default() });
    let base = format!("http://{}", exporter.addr());
    let get = |p: &'static str| {
        let base = base.clone();
        async move { reqwest::get(format!("{base}{p}")).await.unwrap().text().await.unwrap() }
    };
    let mut seen = Vec::new();
    let body = wait_for(Duration::from_secs(20), "every cloudfront job up", || async {
        let text = get("/metrics").await;
        let up = Scrape::parse(&text)
            .all("cdn_exporter_poll_up", &[("provider", "cloudfront")])
            .iter()
            .map(|x| x.value)
            .sum::<f64>();
        (up == 3.0).then_some(text)
    })
    .await;
    seen.push(("/metrics", body));
    seen.push(("the status page", get("/").await));
    for faults in [
        Faults { aws_throttle: true, ..Faults::default() },
        Faults { http_500: true, ..Faults::default() },
        Faults { chaos: 1.0, ..Faults::default() },
    ] {
        let errors = |text: &str| -> f64 {
            Scrape::parse(text)
                .all("cdn_exporter_poll_errors_total", &[("provider", "cloudfront")])
                .iter()
                .map(|x| x.value)
                .sum()
        };
        let before = errors(&get("/metrics").await);
        rig.sim.state.set_faults(faults);
        wait_for(Duration::from_secs(30), "a poll failing under the fault", || async {
            (errors(&get("/metrics").await) > before).then_some(())
        })
        .await;
        seen.push(("/metrics", get("/metrics").await));
        seen.push(("the status page", get("/").await));
    }
    rig.sim.state.set_faults(Faults::default());
    seen.push(("the log", exporter.log()));
    let log = exporter.log();
    assert!(log.contains("DEBUG"), "{log}");
    for (what, text) in &seen {
        for secret in SENSITIVE.iter().chain(&[DEMO_EXTERNAL_ID, DEMO_SECRET_ACCESS_KEY, DEMO_ACCESS_KEY_ID]) {
            assert!(!text.contains(secret), "{secret} leaked into {what}:\n{text}");
        }
    }
    drop(exporter);
    rig.sim.stop().await;
}

/// What the hostile peer answers, by API.
#[derive(Clone)]
struct Hostile {
    ce: Arc<dyn Fn(u64) -> axum::response::Response + Send + Sync>,
    cw: Arc<dyn Fn(u64) -> axum::response::Response + Send + Sync>,
    list: Arc<dyn Fn(u64) -> axum::response::Response + Send + Sync>,
    calls: Arc<std::sync::atomic::AtomicU64>,
}

/// A peer on 127.0.0.1:0 that answers every AWS API of the provider as `h` says (no signature
/// check: the client's bounds are what is tested).
async fn hostile(h: Hostile) -> (String, tokio::task::JoinHandle<()>) {
    use axum::http::HeaderMap;
    let handler = move |headers: HeaderMap, _body: axum::body::Bytes| {
        let h = h.clone();
        async move {
            let n = h.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
            if target.starts_with("AWSInsightsIndexService") {
                (h.ce)(n)
            } else if target.starts_with("GraniteServiceVersion20100801") {
                (h.cw)(n)
            } else {
                (h.list)(n)
            }
        }
    };
    let app = axum::Router::new().fallback(handler);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, server)
}

fn answer(body: String) -> axum::response::Response {
    use axum::response::IntoResponse;
    ([("content-type", "application/x-amz-json-1.1")], body).into_response()
}

const ONE_GROUP: &str = r#"{"ResultsByTime":[{"TimePeriod":{"Start":"2026-12-01","End":"2026-12-05"},"Total":{},"Estimated":true,"Groups":[{"Keys":["US-DataTransfer-Out-Bytes"],"Metrics":{"UnblendedCost":{"Amount":"AMOUNT","Unit":"USD"},"UsageQuantity":{"Amount":"1","Unit":"GB"}}}]}]TOKEN}"#;

fn peer(ce: impl Fn(u64) -> String + Send + Sync + 'static) -> Hostile {
    Hostile {
        ce: Arc::new(move |n| answer(ce(n))),
        cw: Arc::new(|_| answer(r#"{"MetricDataResults":[]}"#.into())),
        list: Arc::new(|_| {
            answer("<DistributionList><IsTruncated>false</IsTruncated><Items/></DistributionList>".into())
        }),
        calls: Arc::default(),
    }
}

fn hostile_account(url: &str, extra: &str) -> CloudFrontAccount {
    let toml = format!(
        "[[cloudfront]]\nname = \"h\"\naccess_key_id = \"AKIAHOSTILE000000001\"\nsecret_access_key = \"hostile-secret\"\nendpoint_url = \"{url}\"\n\
         timeout = \"2s\"\n{extra}\n"
    );
    Config::from_toml_str(&toml, "test").unwrap_or_else(|e| panic!("{e}")).accounts_of::<CloudFrontAccount>()[0].clone()
}

#[tokio::test]
async fn hostile_answers_fail_the_poll_within_their_bounds() {
    let ok = |amount: &str, token: &str| ONE_GROUP.replace("AMOUNT", amount).replace("TOKEN", token);
    // (what, the peer's Cost Explorer, extra config, the error expected)
    let cases: Vec<(&str, Hostile, &str, &str)> = vec![
        (
            "endless pages",
            peer(move |n| ok("1", &format!(r#","NextPageToken":"t{n}""#))),
            "max_pages = 3",
            "kept paging",
        ),
        ("the same token", peer(move |_| ok("1", r#","NextPageToken":"same""#)), "", "same NextPageToken twice"),
        (
            "a huge token",
            peer(move |_| ok("1", &format!(r#","NextPageToken":"{}""#, "x".repeat(9000)))),
            "",
            "longer than 8192",
        ),
        ("NaN", peer(move |_| ok("NaN", "")), "", "not a finite decimal"),
        ("a huge amount", peer(move |_| ok("1e999", "")), "", "not a finite decimal"),
        (
            "an answer past answer_bytes",
            peer(move |_| ok(&"1".repeat(4000), "")),
            "answer_bytes = 2048",
            "more than the 2048 bytes",
        ),
        ("not JSON", peer(|_| "<html>".into()), "", "not in the expected form"),
        (
            "two currencies",
            peer(move |_| {
                ok("1", "").replace(
                    r#""Unit":"GB"}}}]"#,
                    r#""Unit":"GB"}}},{"Keys":["EU"],"Metrics":{"UnblendedCost":{"Amount":"2","Unit":"EUR"}}}]"#,
                )
            }),
            "",
            "both USD and EUR",
        ),
    ];
    for (what, h, extra, expected) in cases {
        let calls = h.calls.clone();
        let (url, server) = hostile(h).await;
        let priced = Arc::new(Priced::default());
        let jobs = jobs_of(&hostile_account(&url, extra), once(), priced.clone());
        let e = poll(&jobs, "cost").await.unwrap_err();
        assert!(e.message.contains(expected), "{what}: {e}");
        assert_eq!(e.reason, Reason::Parse, "{what}: {e}");
        let n = calls.load(std::sync::atomic::Ordering::SeqCst);
        assert!(n <= 3, "{what}: {n} requests");
        assert!(near(priced.0.lock().unwrap().get("ce").copied(), n as f64 * 0.01), "{what}: every request priced");
        server.abort();
    }
}

#[tokio::test]
async fn hostile_cloudwatch_and_distribution_lists_fail_the_usage_poll() {
    let xml = |n: u64, items: usize, truncated: bool| {
        let item = |i: usize| {
            format!(
                "<DistributionSummary><Id>E{n}X{i}</Id><DomainName>d{i}.cloudfront.net</DomainName></DistributionSummary>"
            )
        };
        format!(
            "<DistributionList><IsTruncated>{truncated}</IsTruncated><NextMarker>m{n}</NextMarker><Items>{}</Items></DistributionList>",
            (0..items).map(item).collect::<String>()
        )
    };
    let with = |cw: fn(u64) -> String, list: Arc<dyn Fn(u64) -> String + Send + Sync>| Hostile {
        ce: Arc::new(|_| answer("{}".into())),
        cw: Arc::new(move |n| answer(cw(n))),
        list: Arc::new(move |n| answer(list(n))),
        calls: Arc::default(),
    };
    let one: Arc<dyn Fn(u64) -> String + Send + Sync> = Arc::new(move |n| xml(n, 1, false));
    let cases: Vec<(&str, Hostile, &str, &str)> = vec![
        (
            "endless distribution pages",
            with(|_| "{}".into(), Arc::new(move |n| xml(n, 1, true))),
            "max_pages = 4",
            "kept paging",
        ),
        (
            "more distributions than allowed",
            with(|_| "{}".into(), Arc::new(move |n| xml(n, 3, false))),
            "max_distributions = 2",
            "more than max_distributions",
        ),
        (
            "a page of 101",
            with(|_| "{}".into(), Arc::new(move |n| xml(n, 101, false))),
            "",
            "more than 100 distributions",
        ),
        ("deep XML", with(|_| "{}".into(), Arc::new(|_| "<a>".repeat(40))), "", "nests deeper"),
        (
            "a query not asked",
            with(|_| r#"{"MetricDataResults":[{"Id":"q7_d","Timestamps":[1],"Values":[1]}]}"#.into(), one.clone()),
            "",
            "not asked",
        ),
        (
            "a negative count",
            with(|_| r#"{"MetricDataResults":[{"Id":"q0_d","Timestamps":[1],"Values":[-5]}]}"#.into(), one.clone()),
            "",
            "not a finite count",
        ),
        (
            "mismatched lists",
            with(|_| r#"{"MetricDataResults":[{"Id":"q0_r","Timestamps":[1,2],"Values":[1]}]}"#.into(), one.clone()),
            "",
            "different lengths",
        ),
        (
            "endless points",
            with(|n| format!(r#"{{"MetricDataResults":[],"NextToken":"n{n}"}}"#), one.clone()),
            "max_pages = 2",
            "kept paging",
        ),
    ];
    for (what, h, extra, expected) in cases {
        let (url, server) = hostile(h).await;
        let jobs = jobs_of(&hostile_account(&url, extra), once(), Arc::default());
        let e = poll(&jobs, "usage").await.unwrap_err();
        assert!(e.message.contains(expected), "{what}: {e}");
        server.abort();
    }
}

#[tokio::test]
async fn a_peer_that_never_answers_is_a_timeout_not_a_hang() {
    // A listener that accepts and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            open.push(s);
        }
    });
    let started = std::time::Instant::now();
    let e = poll(&jobs_of(&hostile_account(&url, ""), once(), Arc::default()), "cost").await.unwrap_err();
    assert_eq!(e.reason, Reason::Timeout, "{e}");
    assert!(started.elapsed() < Duration::from_secs(10));
    held.abort();
}
