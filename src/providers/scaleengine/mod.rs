//! ScaleEngine: the command API at `https://api.scaleengine.net/stable/`. Four endpoints, each a
//! job: `usage.summary`, `usage.billing.live`, `disk.usage`, `video.usage`.

pub mod client;
pub mod normalize;
pub mod phpjson;
pub mod wire;

use std::collections::BTreeSet;
use std::sync::{Arc, LazyLock, Mutex};

use serde_json::{Value, json};

use crate::config::{ScaleEngineAccount, VideoApp};
use crate::families::FamilyId;
use crate::job::{BoxFuture, JobKey, JobSpec, Poll, PollError, Sample};
use crate::providers::http::Upstream;
use crate::store::Store;
use crate::timeutil;

use client::Client;

/// The `provider` label value.
pub const PROVIDER: &str = "scaleengine";

/// The public endpoint.
pub const DEFAULT_BASE_URL: &str = "https://api.scaleengine.net/stable/";

/// Rows per `video.usage` page.
pub const VIDEO_PAGE_LIMIT: u64 = 1000;

/// The most pages read per app in one poll, so that a provider whose `count` never ends cannot
/// keep a poll going forever (a million URLs per app).
pub const VIDEO_MAX_PAGES: u64 = 1000;

/// Builds the jobs of one account.
pub fn jobs(
    account: &ScaleEngineAccount,
    http: &reqwest::Client,
    store: &Arc<Store>,
    upstream: &Upstream,
) -> Vec<JobSpec> {
    let name: Arc<str> = account.name.as_str().into();
    let client = Arc::new(Client::new(account, http, store, upstream.clone()));
    let job = |endpoint, interval, poller: Arc<dyn Poll>| {
        JobSpec::periodic(
            JobKey::account(PROVIDER, name.clone(), endpoint),
            interval,
            account.timeout,
            account.max_age,
            poller,
        )
    };
    let mut jobs = vec![
        job("usage.summary", account.summary_interval, Arc::new(Summary { client: client.clone() })),
        job("usage.billing.live", account.billing_interval, Arc::new(Billing { client: client.clone() })),
        job("disk.usage", account.disk_interval, Arc::new(Disk { client: client.clone() })),
    ];
    if !account.video_apps.is_empty() {
        let video = Video { client, apps: account.video_apps.clone(), top_n: account.video_top_n };
        jobs.push(job("video.usage", account.video_interval, Arc::new(video)));
    }
    jobs
}

/// Samples that come from the account's configuration (the budget).
pub fn config_samples(account: &ScaleEngineAccount) -> Vec<Sample> {
    account.budget_usd.map(|b| Sample::new(FamilyId::BillingBudgetUsd, b)).into_iter().collect()
}

struct Summary {
    client: Arc<Client>,
}

static UNMAPPED_SEEN: LazyLock<Mutex<BTreeSet<String>>> = LazyLock::new(Default::default);

impl Poll for Summary {
    fn poll(&self) -> BoxFuture<'_, Result<Vec<Sample>, PollError>> {
        Box::pin(async move {
            let answer = self.client.call("usage.summary", &[]).await?;
            let (samples, unmapped) = normalize::summary(&wire::parse_table(&answer)?);
            if !unmapped.is_empty() {
                let mut seen = UNMAPPED_SEEN.lock().unwrap_or_else(|e| e.into_inner());
                for row in unmapped {
                    if seen.insert(row.clone()) {
                        tracing::info!(
                            row,
                            "usage.summary row has no mapping yet; exported as cdn_month_to_date_usage"
                        );
                    }
                }
            }
            Ok(samples)
        })
    }
}

struct Billing {
    client: Arc<Client>,
}

impl Poll for Billing {
    fn poll(&self) -> BoxFuture<'_, Result<Vec<Sample>, PollError>> {
        Box::pin(async move {
            let answer = self.client.call("usage.billing.live", &[]).await?;
            Ok(normalize::billing(&wire::parse_table(&answer)?))
        })
    }
}

struct Disk {
    client: Arc<Client>,
}

impl Poll for Disk {
    fn poll(&self) -> BoxFuture<'_, Result<Vec<Sample>, PollError>> {
        Box::pin(async move {
            let today = timeutil::now_unix().div_euclid(86_400);
            // The 30-day window ends yesterday: the newest complete day is the one we export.
            let start = (today - 30) * 86_400;
            let answer = self.client.call("disk.usage", &[("cpu", json!("")), ("starttime", json!(start))]).await?;
            Ok(normalize::disk(&wire::parse_disk(&answer)?, today))
        })
    }
}

struct Video {
    client: Arc<Client>,
    apps: Vec<VideoApp>,
    top_n: usize,
}

impl Video {
    async fn fetch_app(&self, app: &VideoApp, year: i64, month: u32) -> Result<Vec<wire::VideoEntry>, PollError> {
        let app_value: Value = match app {
            VideoApp::Id(id) => json!(id),
            VideoApp::Name(name) => json!(name),
        };
        let mut entries = Vec::new();
        let mut offset = 0u64;
        for _ in 0..VIDEO_MAX_PAGES {
            let params = [
                ("app", app_value.clone()),
                ("year", json!(year)),
                ("month", json!(month)),
                ("limit", json!(VIDEO_PAGE_LIMIT)),
                ("offset", json!(offset)),
            ];
            let page = wire::parse_video(&self.client.call("video.usage", &params).await?)?;
            let got = page.entries.len() as u64;
            entries.extend(page.entries);
            offset += got;
            let done = match page.count {
                Some(count) => offset >= count,
                None => got < VIDEO_PAGE_LIMIT,
            };
            if done || got == 0 {
                return Ok(entries);
            }
        }
        tracing::warn!(app = %app, pages = VIDEO_MAX_PAGES, "video.usage kept paging; using what was read");
        Ok(entries)
    }
}

impl Poll for Video {
    fn poll(&self) -> BoxFuture<'_, Result<Vec<Sample>, PollError>> {
        Box::pin(async move {
            let (year, month, _) = timeutil::civil_from_days(timeutil::now_unix().div_euclid(86_400));
            let mut samples = Vec::new();
            for app in &self.apps {
                let entries = self.fetch_app(app, year, month).await?;
                samples.extend(normalize::video(&app.to_string(), &entries, self.top_n));
            }
            Ok(samples)
        })
    }
}
