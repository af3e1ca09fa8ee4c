//! ScaleEngine: the command API at `https://api.scaleengine.net/stable/`. Four endpoints, each a
//! job: `usage.summary`, `usage.billing.live`, `disk.usage`, `video.usage`.

pub mod client;
pub mod normalize;
pub mod phpjson;
pub mod wire;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::config::{AnswerLimits, ScaleEngineAccount, VideoApp};
use crate::families::FamilyId;
use crate::job::{BoxFuture, JobKey, JobSpec, Poll, PollError, Sample};
use crate::providers::http::{BodyLimit, Upstream};
use crate::store::Store;
use crate::timeutil;

use client::Client;
use wire::ListLimit;

/// The `provider` label value.
pub const PROVIDER: &str = "scaleengine";

/// The public endpoint.
pub const DEFAULT_BASE_URL: &str = "https://api.scaleengine.net/stable/";

/// Rows per `video.usage` page asked for (fewer if `answer_limits.page_entries` is lower).
pub const VIDEO_PAGE_LIMIT: u64 = 1000;

/// The most unmapped `usage.summary` row names remembered per account, so each is logged once.
pub const MAX_UNMAPPED_REMEMBERED: usize = 64;

/// The body bound of one command's answer, with the key that sets it.
pub fn body_limit(answers: &AnswerLimits, command: &str) -> BodyLimit {
    let (bytes, endpoint, key) = match command {
        "usage.summary" => (answers.summary_bytes, "usage.summary", "answer_limits.summary_bytes"),
        "usage.billing.live" | "usage.billing" => {
            (answers.billing_bytes, "usage.billing", "answer_limits.billing_bytes")
        }
        "disk.usage" => (answers.disk_bytes, "disk.usage", "answer_limits.disk_bytes"),
        _ => (answers.video_page_bytes, "video.usage", "answer_limits.video_page_bytes"),
    };
    BodyLimit { bytes, endpoint, key }
}

/// The bound on the rows of a `usage.summary` or `usage.billing.live` table.
pub fn table_limit(answers: &AnswerLimits) -> ListLimit {
    ListLimit { max: answers.table_rows, items: "rows", key: "answer_limits.table_rows" }
}

/// The bound on the entries of a `disk.usage` answer or a `video.usage` page.
pub fn entries_limit(answers: &AnswerLimits) -> ListLimit {
    ListLimit { max: answers.page_entries, items: "entries", key: "answer_limits.page_entries" }
}

/// Runs `command` and parses its answer as a table.
pub async fn fetch_table(client: &Client, command: &'static str) -> Result<Vec<u8>, PollError> {
    client.call(command, &[], body_limit(&client.answers(), command)).await
}

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
        job(
            "usage.summary",
            account.summary_interval,
            Arc::new(Summary { client: client.clone(), unmapped_seen: Mutex::default() }),
        ),
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
    /// Unmapped row names already logged: per account, at most [`MAX_UNMAPPED_REMEMBERED`].
    unmapped_seen: Mutex<BTreeSet<String>>,
}

impl Poll for Summary {
    fn poll(&self) -> BoxFuture<'_, Result<Vec<Sample>, PollError>> {
        Box::pin(async move {
            let body = fetch_table(&self.client, "usage.summary").await?;
            let table = wire::parse_table(&body, table_limit(&self.client.answers()), "usage.summary answer")?;
            let (samples, unmapped) = normalize::summary(&table)?;
            if !unmapped.is_empty() {
                let mut seen = self.unmapped_seen.lock().unwrap_or_else(|e| e.into_inner());
                for row in unmapped {
                    if seen.len() >= MAX_UNMAPPED_REMEMBERED || seen.contains(&row) {
                        continue;
                    }
                    tracing::info!(row = %row, "usage.summary row has no mapping yet; exported as cdn_month_to_date_usage");
                    seen.insert(row);
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
            let body = fetch_table(&self.client, "usage.billing.live").await?;
            normalize::billing(&wire::parse_table(
                &body,
                table_limit(&self.client.answers()),
                "usage.billing.live answer",
            )?)
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
            let limit = body_limit(&self.client.answers(), "disk.usage");
            let body =
                self.client.call("disk.usage", &[("cpu", json!("")), ("starttime", json!(start))], limit).await?;
            normalize::disk(&wire::parse_disk(&body, entries_limit(&self.client.answers()))?, today)
        })
    }
}

struct Video {
    client: Arc<Client>,
    apps: Vec<VideoApp>,
    top_n: usize,
}

impl Video {
    /// Folds every page of one app into `top`; `pages` counts the pages of this poll, all apps
    /// together, against `answer_limits.video_pages`. Each page is dropped once folded.
    async fn fetch_app(
        &self,
        app: &VideoApp,
        year: i64,
        month: u32,
        top: &mut normalize::TopUrls,
        pages: &mut usize,
    ) -> Result<(), PollError> {
        let answers = self.client.answers();
        let app_value: Value = match app {
            VideoApp::Id(id) => json!(id),
            VideoApp::Name(name) => json!(name),
        };
        let page_limit = VIDEO_PAGE_LIMIT.min(answers.page_entries as u64);
        let mut offset = 0u64;
        loop {
            if *pages >= answers.video_pages {
                return Err(PollError::parse(format!(
                    "video.usage kept paging: {} pages read in this poll (app {}, offset {offset}) and the \
                     provider says there is more: refused. If the apps really have that many URLs, raise \
                     `answer_limits.video_pages`",
                    *pages, app
                )));
            }
            *pages += 1;
            let params = [
                ("app", app_value.clone()),
                ("year", json!(year)),
                ("month", json!(month)),
                ("limit", json!(page_limit)),
                ("offset", json!(offset)),
            ];
            let body = self.client.call("video.usage", &params, body_limit(&answers, "video.usage")).await?;
            let page = wire::parse_video(&body, entries_limit(&answers))?;
            let got = page.entries.len() as u64;
            top.add_page(&page.entries)?;
            offset += got;
            let done = match page.count {
                Some(count) => offset >= count,
                None => got < page_limit,
            };
            if done || got == 0 {
                return Ok(());
            }
        }
    }
}

impl Poll for Video {
    fn poll(&self) -> BoxFuture<'_, Result<Vec<Sample>, PollError>> {
        Box::pin(async move {
            let (year, month, _) = timeutil::civil_from_days(timeutil::now_unix().div_euclid(86_400));
            let mut samples = Vec::new();
            let mut pages = 0;
            for app in &self.apps {
                let mut top = normalize::TopUrls::new(self.top_n);
                self.fetch_app(app, year, month, &mut top, &mut pages).await?;
                samples.extend(top.samples(&app.to_string()));
            }
            Ok(samples)
        })
    }
}
