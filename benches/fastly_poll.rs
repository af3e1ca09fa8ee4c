//! What one Fastly usage poll costs on real-size answers: `cargo bench --bench fastly_poll`
//! (options after `--`: `--services N`, default 100).
//!
//! Starts the simulator with one account of N services (one in twenty a Compute service, 40
//! versions each), whose stats buckets carry every field of Fastly's `Results` model, and runs
//! the account's usage job at 15:05 UTC on the 20th of a month: first as after a restart (the
//! month so far), then an hour later (the steady state). For each it prints whether the poll
//! succeeded within the default bounds, the requests it sent and the bytes Fastly answered; a
//! failed poll is run again with `answer_bytes` at its ceiling (256 MiB) to show what it would
//! have cost. Only loopback traffic.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cdn_usage_exporter::config::Config;
use cdn_usage_exporter::job::{PollContext, Poller};
use cdn_usage_exporter::providers::common::http::{RetryPolicy, Upstream};
use cdn_usage_exporter::providers::fastly::simulator::FastlySim;
use cdn_usage_exporter::providers::fastly::{Client, FastlyAccount, jobs};
use cdn_usage_exporter::simulator::{SimState, Simulator};
use cdn_usage_exporter::timeutil::{self, Clock};
use tokio::sync::Semaphore;

const TOKEN: &str = "bench-fastly-token";

fn service_id(i: usize) -> String {
    format!("svc{i:019}")
}

fn usage_job(sim: &Simulator, clock: &Clock, extra: &str) -> Arc<dyn Poller> {
    let toml = format!(
        "[[fastly]]\nname = \"bench\"\nbase_url = \"{}\"\napi_token = \"{TOKEN}\"\ntimeout = \"60s\"\n{extra}\n",
        sim.url("fastly").expect("the simulator serves Fastly")
    );
    let config = Config::from_toml_str(&toml, "bench").unwrap_or_else(|e| panic!("{e}"));
    let account: FastlyAccount = config.accounts_of::<FastlyAccount>()[0].clone();
    let retry = RetryPolicy { attempts: 1, ..RetryPolicy::default() };
    let upstream = Upstream::new(Arc::new(Semaphore::new(8)), 8, retry);
    let client = Client::new(&account, &reqwest::Client::new(), upstream).expect("client").with_clock(clock.clone());
    jobs::jobs(&account, Arc::new(client)).into_iter().map(|j| j.poller).nth(2).expect("the usage job")
}

/// One poll: (ok or the error, requests, answer bytes, seconds).
async fn measure(sim: &Simulator, job: &dyn Poller) -> (Result<usize, String>, usize, u64, f64) {
    let (requests, bytes) = (sim.state.fastly_requests().len(), sim.state.fastly_answer_bytes());
    let t = Instant::now();
    let got = job.poll(&PollContext::UNBOUNDED).await.map(|s| s.len()).map_err(|e| e.message);
    let secs = t.elapsed().as_secs_f64();
    (got, sim.state.fastly_requests().len() - requests, sim.state.fastly_answer_bytes() - bytes, secs)
}

fn report(what: &str, (got, requests, bytes, secs): &(Result<usize, String>, usize, u64, f64)) {
    let outcome = match got {
        Ok(n) => format!("ok, {n} samples"),
        Err(e) => format!("FAILED: {}", e.chars().take(160).collect::<String>()),
    };
    println!(
        "{what:<44} {requests:>4} requests {:>12.3} MiB answered {secs:>7.2} s  {outcome}",
        *bytes as f64 / 1048576.0
    );
}

#[tokio::main]
async fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let n = argv
        .iter()
        .position(|a| a == "--services")
        .and_then(|i| argv.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(100usize);
    let services: Vec<String> = (0..n).map(service_id).collect();
    let account = FastlySim {
        token: TOKEN.into(),
        customer_id: "bench".into(),
        compute: services.iter().step_by(20).cloned().collect(),
        services,
        versions: 40,
        page_size: 100,
        monthly_usd: 10_000.0,
        past_months: 2,
        currency: "USD".into(),
        post_delay_secs: 0,
    };
    let now = timeutil::days_from_civil(2026, 11, 20) * 86_400 + 15 * 3600 + 5 * 60;
    let clock = Clock::manual(now);
    let sim = Simulator::start(
        "127.0.0.1:0".parse().expect("address"),
        SimState::builder()
            .with(cdn_usage_exporter::providers::fastly::simulator::part(vec![account]))
            .clock(clock.clone())
            .build(),
    )
    .await
    .expect("simulator");
    println!("Fastly usage poll, {n} services, on 2026-11-20 15:05 UTC (default bounds unless said)");
    for (what, extra) in [("", ""), (" (answer_bytes = 256 MiB)", "answer_bytes = 268435456")] {
        clock.set(now);
        let job = usage_job(&sim, &clock, extra);
        let first = measure(&sim, job.as_ref()).await;
        report(&format!("first poll (the month so far){what}"), &first);
        clock.set(now + 3600);
        let next = measure(&sim, job.as_ref()).await;
        report(&format!("an hour later{what}"), &next);
        if first.0.is_ok() && next.0.is_ok() {
            break;
        }
    }
    tokio::time::timeout(Duration::from_secs(10), sim.stop()).await.ok();
}
