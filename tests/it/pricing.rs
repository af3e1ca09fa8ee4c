//! CDNetworks spend priced from the contract, against the simulator with one manual clock: every
//! item equals a computation made here, independently, from the simulator's own slices and
//! storage points; tiers crossed mid-month, the commit below and above the 95th percentile, the
//! average daily peak, storage peak and average, the first minutes of a month and its turn in
//! GMT+09:00, a restart, and the request cost of pricing (none).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cdn_usage_exporter::config::Config;
use cdn_usage_exporter::job::{JobSpec, PollContext, Sample};
use cdn_usage_exporter::providers::cdnetworks::simulator::{CdnAccount, hourly_value, traffic_slice};
use cdn_usage_exporter::providers::cdnetworks::{CdnetworksAccount, Client, jobs};
use cdn_usage_exporter::providers::common::http::{RetryPolicy, Upstream};
use cdn_usage_exporter::simulator::{SimState, Simulator};
use cdn_usage_exporter::timeutil::{self, Clock};
use tokio::sync::Semaphore;

use crate::support::cdn_part;
use crate::support::loopback;

const NINE: i64 = 9 * 3600;
const DOMAINS: [(&str, f64); 2] = [("a.example.net", 3.0e12), ("b.example.net", 11.0e12)];

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
        let account = CdnAccount {
            username: "user-p".into(),
            api_key: "key-p".into(),
            access_key: "AKP".into(),
            secret_key: "skp".into(),
            domains: DOMAINS.iter().map(|(d, base)| (d.to_string(), "C-1".to_string(), *base)).collect(),
        };
        let state = SimState::builder().with(cdn_part(vec![account])).clock(clock.clone()).build();
        Rig { sim: Simulator::start(loopback(), state).await.unwrap(), clock }
    }

    /// The jobs of an account (a fresh exporter) with `keys` on the account and `pricing` as its
    /// pricing table (none when empty).
    fn jobs(&self, keys: &str, pricing: &str) -> Vec<JobSpec> {
        let domains: Vec<String> =
            DOMAINS.iter().map(|(d, _)| format!("{{ domain = \"{d}\", contract = \"C-1\" }}")).collect();
        let table = if pricing.is_empty() { String::new() } else { format!("[cdnetworks.pricing]\n{pricing}\n") };
        let toml = format!(
            "[[cdnetworks]]\nname = \"p\"\nbase_url = \"{}\"\nusername = \"user-p\"\napi_key = \"key-p\"\n{keys}\ndomains = [{}]\n{table}",
            self.sim.cdnetworks_url(),
            domains.join(", ")
        );
        let config = Config::from_toml_str(&toml, "test").unwrap_or_else(|e| panic!("{e}"));
        let account = config.accounts_of::<CdnetworksAccount>()[0];
        let retry = RetryPolicy { attempts: 1, ..RetryPolicy::default() };
        let upstream = Upstream::new(Arc::new(Semaphore::new(8)), 8, retry).with_answers(config.limits.answers);
        let client = Client::new(account, &reqwest::Client::new(), upstream).unwrap().with_clock(self.clock.clone());
        jobs::jobs(account, Arc::new(client))
    }

    fn requests(&self) -> usize {
        self.sim.state.cdn_requests_of("user-p")
    }

    /// One round: every job once, the pricing job last; its samples (or its error).
    async fn round(&self, jobs: &[JobSpec]) -> Result<Priced, String> {
        let mut priced = None;
        for job in jobs {
            let poll = job.poller.poll(&PollContext::UNBOUNDED);
            let out = tokio::time::timeout(Duration::from_secs(60), poll).await.expect("in time");
            if job.key.endpoint == jobs::PRICING_ENDPOINT {
                priced = Some(out.map(|s| Priced::of(&s)).map_err(|e| e.message));
            } else {
                out.unwrap_or_else(|e| panic!("{}: {e}", job.key));
            }
        }
        priced.expect("a pricing job")
    }
}

/// Samples by (family name, item label).
#[derive(Debug, PartialEq)]
struct Priced(BTreeMap<(&'static str, String), f64>);

impl Priced {
    fn of(samples: &[Sample]) -> Priced {
        Priced(
            samples
                .iter()
                .map(|s| {
                    let item = s.labels.iter().find(|(k, _)| *k == "item").map(|(_, v)| v.clone()).unwrap_or_default();
                    ((s.family.def().name, item), s.value)
                })
                .collect(),
        )
    }

    fn get(&self, family: &str, item: &str) -> f64 {
        *self
            .0
            .iter()
            .find(|((f, i), _)| *f == family && i == item)
            .unwrap_or_else(|| panic!("no {family} {item}: {self:?}"))
            .1
    }

    fn has(&self, family: &str) -> bool {
        self.0.keys().any(|(f, _)| *f == family)
    }
}

/// What this month looks like at `now`, from the simulator's data alone.
struct Truth {
    /// Elapsed share of the local month.
    s: f64,
    /// Bytes of the month, both domains.
    bytes: f64,
    /// Summed 5-minute bandwidth per slice, in bytes/s, the filling slice left out, by local day.
    slices: BTreeMap<i64, Vec<f64>>,
    /// Per local day, the domains' highest complete storage points summed.
    storage: Vec<f64>,
    /// What was stored when the month began (both domains), for a month with no day yet.
    carry: f64,
}

impl Truth {
    fn at(now: i64) -> Truth {
        Self::of_month(now, None)
    }

    /// The month that starts on local day `first` (default: the one `now` is in), at `now`.
    fn of_month(now: i64, first: Option<i64>) -> Truth {
        let today = (now + NINE).div_euclid(86_400);
        let (y, m, _) = timeutil::civil_from_days(first.unwrap_or(today));
        let first = timeutil::days_from_civil(y, m, 1);
        let len = timeutil::days_in_month(y, m) as i64;
        let start = first * 86_400 - NINE;
        let end = (start + len * 86_400).min(now);
        let newest = now.div_euclid(300) * 300;
        let mut bytes = 0.0;
        let mut sums: BTreeMap<i64, f64> = BTreeMap::new();
        for (d, _) in DOMAINS {
            let mut at = start + 300;
            while at <= end {
                let Some(s) = traffic_slice(d, at, now, &[]) else { break };
                bytes += s.traffic_centi_mb as f64 * 1e4;
                if at != newest {
                    *sums.entry(at).or_default() += s.bandwidth_centi_mbps as f64 * 1250.0;
                }
                at += 300;
            }
        }
        let mut slices: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
        for (at, v) in sums {
            slices.entry((at - 1 + NINE).div_euclid(86_400)).or_default().push(v);
        }
        let mut storage = Vec::new();
        for day in first..first + len {
            let mut total = Some(0.0);
            for (_, base) in DOMAINS {
                let highest = (1..=24)
                    .map(|h| day * 86_400 + h * 3600 - NINE)
                    .filter(|e| *e <= now)
                    .map(|e| hourly_value(base, e))
                    .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
                total = total.zip(highest).map(|(t, h)| t + h);
            }
            storage.extend(total);
        }
        let carry = DOMAINS.iter().map(|(_, base)| hourly_value(*base, start)).sum();
        let s = ((now - start) as f64 / (len * 86_400) as f64).clamp(0.0, 1.0);
        Truth { s, bytes, slices, storage, carry }
    }

    fn p95(&self) -> f64 {
        let mut all: Vec<f64> = self.slices.values().flatten().copied().collect();
        all.sort_by(f64::total_cmp);
        all[(all.len() as f64 * 0.95).ceil() as usize - 1]
    }

    fn average_daily_peak(&self) -> f64 {
        let peaks: Vec<f64> = self.slices.values().map(|v| v.iter().copied().fold(0.0, f64::max)).collect();
        peaks.iter().sum::<f64>() / peaks.len() as f64
    }

    fn storage_gb(&self, peak: bool) -> f64 {
        let bytes = if self.storage.is_empty() {
            self.carry
        } else if peak {
            self.storage.iter().copied().fold(0.0, f64::max)
        } else {
            self.storage.iter().sum::<f64>() / self.storage.len() as f64
        };
        bytes / 1e9
    }
}

/// Graduated tiers, GB by GB in whole GB and the fraction at the end: the tiers as a bill reads them.
fn graduated(gb: f64, tiers: &[(f64, f64)]) -> f64 {
    let mut usd = 0.0;
    let mut below = 0.0;
    for (top, price) in tiers {
        if gb > below {
            usd += (gb.min(*top) - below) * price;
        }
        below = *top;
    }
    usd
}

fn close(got: f64, want: f64, what: &str) {
    let tolerance = 1e-9 * want.abs().max(1.0);
    assert!((got - want).abs() <= tolerance, "{what}: got {got}, want {want}");
}

const FULL: &str = "traffic_usd_per_gb = [{ up_to_gb = TIER, usd = 0.05 }, { usd = 0.03 }]
bandwidth_usd_per_mbps = 1.20
overage_usd_per_mbps = 1.50
storage_usd_per_gb_month = 0.02
monthly_fee_usd = 100";

#[tokio::test]
async fn every_item_equals_an_independent_computation_over_the_simulators_data() {
    // 20 November, 14:07 in GMT+9.
    let now = local(2026, 11, 20, 14, 7);
    let rig = Rig::start(now).await;
    let truth = Truth::at(now);
    // The tier boundary falls inside this month's traffic: crossed mid-month.
    let gb = truth.bytes / 1e9;
    let tier = (gb * 0.6).round();
    let p95_mbps = truth.p95() * 8.0 / 1e6;
    let below = (p95_mbps * 1.5).round(); // the 95th percentile is below this commit
    let above = (p95_mbps * 0.5).round(); // and above this one
    for (commit, overage) in [(below, true), (above, true), (above, false)] {
        let pricing = FULL.replace("TIER", &tier.to_string());
        let pricing = if overage { pricing } else { pricing.replace("overage_usd_per_mbps = 1.50\n", "") };
        let jobs = rig.jobs(&format!("bandwidth_commit_mbps = {commit}\nbudget_usd = 2500"), &pricing);
        let p = rig.round(&jobs).await.expect("priced");
        let tiers = [(tier, 0.05), (f64::INFINITY, 0.03)];
        close(p.get("cdn_billing_month_to_date_cost_usd", "traffic"), graduated(gb, &tiers), "traffic to date");
        close(
            p.get("cdn_billing_estimated_month_cost_usd", "traffic"),
            graduated(gb / truth.s, &tiers),
            "traffic estimate",
        );
        close(p.get("cdn_billing_month_to_date_usage", "traffic"), gb, "traffic GB");
        let over = if overage { 1.5 } else { 1.2 };
        let charge = commit * 1.2 + (p95_mbps - commit).max(0.0) * over;
        if commit == below {
            close(charge, commit * 1.2, "below the commit the commit is billed");
        }
        close(p.get("cdn_billing_estimated_month_cost_usd", "bandwidth"), charge, "bandwidth estimate");
        close(p.get("cdn_billing_month_to_date_cost_usd", "bandwidth"), charge * truth.s, "bandwidth to date");
        close(p.get("cdn_billing_bandwidth_bytes_per_second", ""), truth.p95(), "billed bandwidth");
        let storage = truth.storage_gb(true) * 0.02;
        close(p.get("cdn_billing_estimated_month_cost_usd", "storage"), storage, "storage estimate");
        close(p.get("cdn_billing_month_to_date_cost_usd", "storage"), storage * truth.s, "storage to date");
        close(p.get("cdn_billing_month_to_date_cost_usd", "fee"), 100.0 * truth.s, "fee to date");
        let to_date: f64 = ["traffic", "bandwidth", "storage", "fee"]
            .iter()
            .map(|i| p.get("cdn_billing_month_to_date_cost_usd", i))
            .sum();
        close(p.get("cdn_billing_month_to_date_spend_usd", ""), to_date, "spend is the items' sum");
        let estimate = graduated(gb / truth.s, &tiers) + charge + storage + 100.0;
        close(p.get("cdn_billing_estimated_month_spend_usd", ""), estimate, "estimate is the items' sum");
        // Last month (October) was walked once after this start, and has settled: its bill.
        let october = Truth::of_month(now, Some(timeutil::days_from_civil(2026, 10, 1)));
        let oct_gb = october.bytes / 1e9;
        let oct_charge = commit * 1.2 + (october.p95() * 8.0 / 1e6 - commit).max(0.0) * over;
        let oct = graduated(oct_gb, &tiers) + oct_charge + october.storage_gb(true) * 0.02 + 100.0;
        close(p.get("cdn_billing_last_month_spend_usd", ""), oct, "last month's bill");
        close(p.get("cdn_billing_last_month_cost_usd", "traffic"), graduated(oct_gb, &tiers), "last month's traffic");
    }
    // The other bases: the average daily peak and average storage.
    let jobs = rig.jobs(
        "",
        "bandwidth_billing = \"average_daily_peak\"\nbandwidth_usd_per_mbps = 2\nstorage_usd_per_gb_month = 0.03\nstorage_basis = \"average\"",
    );
    let p = rig.round(&jobs).await.expect("priced");
    let adp = truth.average_daily_peak();
    close(p.get("cdn_billing_bandwidth_bytes_per_second", ""), adp, "average daily peak");
    close(p.get("cdn_billing_estimated_month_cost_usd", "bandwidth"), adp * 8.0 / 1e6 * 2.0, "no commit: B × price");
    close(p.get("cdn_billing_estimated_month_cost_usd", "storage"), truth.storage_gb(false) * 0.03, "storage average");
    close(p.get("cdn_billing_estimated_month_usage", "storage"), truth.storage_gb(false), "GB-months");
    assert!(!p.has("cdn_billing_month_to_date_cost_usd") || p.0.keys().all(|(_, i)| i != "traffic"));
}

#[tokio::test]
async fn the_first_minutes_of_a_month_and_its_turn_in_gmt_plus_9() {
    // 1 December, 00:05 in GMT+9 (30 November 15:05 UTC): the month is 5 minutes old.
    let now = local(2026, 12, 1, 0, 5);
    let rig = Rig::start(now).await;
    let pricing = "traffic_usd_per_gb = 0.04\nstorage_usd_per_gb_month = 0.02\nmonthly_fee_usd = 100";
    let jobs = rig.jobs("", pricing);
    let p = rig.round(&jobs).await.expect("priced");
    let truth = Truth::at(now);
    assert!(truth.s > 0.0 && truth.s < 2e-4, "{}", truth.s);
    let gb = truth.bytes / 1e9;
    assert!(gb > 0.0, "the first slices of the month are in");
    close(p.get("cdn_billing_month_to_date_cost_usd", "traffic"), gb * 0.04, "traffic to date");
    close(p.get("cdn_billing_estimated_month_cost_usd", "traffic"), gb / truth.s * 0.04, "traffic estimate");
    close(p.get("cdn_billing_month_to_date_cost_usd", "fee"), 100.0 * truth.s, "fee to date");
    // No storage point of December has ended: what was stored when it began is billed.
    close(p.get("cdn_billing_estimated_month_cost_usd", "storage"), truth.carry / 1e9 * 0.02, "storage");
    for v in p.0.values() {
        assert!(v.is_finite(), "{p:?}");
    }
    // The account's month began at midnight GMT+9, nine hours before the UTC month does: what
    // the forecast rules compare with the UTC month (docs/alerts.md).
    let december = timeutil::days_from_civil(2026, 12, 1) * 86_400 - 9 * 3600;
    assert_eq!(p.get("cdn_billing_month_start_timestamp_seconds", ""), december as f64);
    // November has not settled yet (its last day ended 5 minutes ago): no bill for it yet.
    assert!(!p.has("cdn_billing_last_month_spend_usd"), "{p:?}");
    // A day and an hour later November is final: fetched once more and priced as a whole.
    let before = rig.requests();
    rig.clock.set(local(2026, 12, 2, 1, 4));
    let p = rig.round(&jobs).await.expect("priced");
    let november = Truth::of_month(rig.clock.now(), Some(timeutil::days_from_civil(2026, 11, 1)));
    let nov = november.bytes / 1e9 * 0.04 + november.storage_gb(true) * 0.02 + 100.0;
    close(p.get("cdn_billing_last_month_spend_usd", ""), nov, "November's bill");
    close(p.get("cdn_billing_last_month_cost_usd", "fee"), 100.0, "a whole month's fee");
    assert!(rig.requests() > before);
    // Once final, November is not fetched again: a later round costs what an unpriced one does.
    rig.clock.set(local(2026, 12, 2, 2, 4));
    let before = rig.requests();
    let again = rig.round(&jobs).await.expect("priced");
    close(again.get("cdn_billing_last_month_spend_usd", ""), nov, "the bill stays");
    let priced_cost = rig.requests() - before;
    let plain = rig.jobs("", "");
    for job in &plain {
        job.poller.poll(&PollContext::UNBOUNDED).await.unwrap();
    }
    rig.clock.set(local(2026, 12, 2, 3, 4));
    let before = rig.requests();
    for job in &plain {
        job.poller.poll(&PollContext::UNBOUNDED).await.unwrap();
    }
    assert_eq!(priced_cost, rig.requests() - before, "pricing adds no request to a poll");
}

#[tokio::test]
async fn a_restart_mid_month_rebuilds_the_same_figures_and_pricing_waits_for_its_inputs() {
    let now = local(2026, 11, 12, 9, 31);
    let rig = Rig::start(now).await;
    let pricing = FULL.replace("TIER", "50000");
    let keys = "bandwidth_commit_mbps = 100";
    let first = rig.jobs(keys, &pricing);
    // Before the traffic and storage jobs have polled, the pricing job says what it waits for.
    let pricer = first.iter().find(|j| j.key.endpoint == jobs::PRICING_ENDPOINT).unwrap();
    let err = pricer.poller.poll(&PollContext::UNBOUNDED).await.unwrap_err();
    assert!(err.message.contains("has not fetched"), "{err}");
    let a = rig.round(&first).await.expect("priced");
    let b = rig.round(&rig.jobs(keys, &pricing)).await.expect("priced after a restart");
    assert_eq!(a, b);
    // With a deadline, the pricing job of a fresh start waits for the others within it.
    let fresh = rig.jobs(keys, &pricing);
    let pricer = fresh.iter().find(|j| j.key.endpoint == jobs::PRICING_ENDPOINT).unwrap().poller.clone();
    let waiting = tokio::spawn(async move {
        let ctx = PollContext::until(tokio::time::Instant::now() + Duration::from_secs(30));
        pricer.poll(&ctx).await
    });
    for job in fresh.iter().filter(|j| j.key.endpoint != jobs::PRICING_ENDPOINT) {
        job.poller.poll(&PollContext::UNBOUNDED).await.unwrap();
    }
    let waited = waiting.await.unwrap().expect("priced once its inputs were in");
    assert_eq!(Priced::of(&waited), a);
}

/// Runs each of `jobs` once through the scheduler's own poll path (which converts amounts with
/// the store's rates) and returns what the store serves.
async fn through_the_store(jobs: &[JobSpec], rates: &[(&str, f64)]) -> crate::support::Scrape {
    use cdn_usage_exporter::store::Store;
    let store = Store::new("test", "test");
    store.set_rates(cdn_usage_exporter::currency::Rates::from_pairs(rates.iter().copied()));
    // The pricing job last: it prices what the other jobs published.
    let (pricing, others): (Vec<&JobSpec>, Vec<&JobSpec>) =
        jobs.iter().partition(|j| j.key.endpoint == jobs::PRICING_ENDPOINT);
    for job in others.into_iter().chain(pricing) {
        store.register_job(&job.key, job.max_age);
        let _ = cdn_usage_exporter::scheduler::poll_once(job, &store).await;
    }
    crate::support::Scrape::parse(&String::from_utf8_lossy(&store.render_now()))
}

#[tokio::test]
async fn a_contract_in_euros_is_priced_in_euros_and_served_in_dollars_at_the_configured_rate() {
    let now = local(2026, 11, 20, 14, 7);
    let rig = Rig::start(now).await;
    let eur = "currency = \"EUR\"\ntraffic_per_gb = 0.04\nmonthly_fee = 100";
    let jobs = rig.jobs("budget_usd = 2500", eur);
    // In euros, as the contract prices it (the poller's own figures).
    let p = rig.round(&jobs).await.expect("priced");
    let euros = p.get("cdn_billing_month_to_date_spend_usd", "");
    let truth = Truth::at(now);
    close(euros, truth.bytes / 1e9 * 0.04 + 100.0 * truth.s, "the contract's euros");

    let s = through_the_store(&jobs, &[("EUR", 1.08)]).await;
    let l = [("provider", "cdnetworks"), ("account", "p")];
    close(s.value("cdn_billing_month_to_date_spend_usd", &l), euros * 1.08, "euros × 1.08");
    close(s.value("cdn_billing_month_to_date_cost_usd", &[("item", "fee")]), 100.0 * truth.s * 1.08, "the fee");
    assert_eq!(s.value("cdn_billing_currency_info", &[("account", "p"), ("currency", "EUR")]), 1.0);
    assert_eq!(s.value("cdn_billing_exchange_rate", &[("account", "p"), ("currency", "EUR")]), 1.08);
    assert_eq!(s.value("cdn_exporter_poll_up", &[("endpoint", jobs::PRICING_ENDPOINT)]), 1.0);

    // No rate for euros: the pricing job fails naming the key; the traffic is still served.
    let s = through_the_store(&jobs, &[("JPY", 0.0067)]).await;
    assert!(s.get("cdn_billing_month_to_date_spend_usd", &l).is_none(), "euros are never called dollars");
    assert!(s.get("cdn_billing_exchange_rate", &l).is_none());
    assert_eq!(s.value("cdn_exporter_poll_up", &[("endpoint", jobs::PRICING_ENDPOINT)]), 0.0);
    let errors = [("endpoint", jobs::PRICING_ENDPOINT), ("reason", "config")];
    assert_eq!(s.value("cdn_exporter_poll_errors_total", &errors), 1.0);
    assert!(s.value("cdn_month_to_date_bandwidth_bytes", &[("domain", DOMAINS[0].0)]) > 0.0, "usage kept");
    // Billed quantities are not money: kept too.
    close(s.value("cdn_billing_month_to_date_usage", &[("item", "traffic")]), truth.bytes / 1e9, "traffic GB");
}
