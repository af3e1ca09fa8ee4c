//! The live jobs of one ScaleEngine account: `usage.summary`, `usage.billing.live`,
//! `disk.usage` and, when apps are configured, `video.usage`.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use serde_json::json;

use crate::job::{BoxFuture, JobKey, JobSpec, PollContext, PollError, Poller, Sample};
use crate::timeutil;

use super::client::Client;
use super::{
    MAX_UNMAPPED_REMEMBERED, PROVIDER, ScaleEngineAccount, VideoApp, body_limit, entries_limit, fetch_table, normalize,
    table_limit, video_pages, wire,
};

/// Builds the jobs of one account, all sharing `client`.
pub fn jobs(account: &ScaleEngineAccount, client: Arc<Client>) -> Vec<JobSpec> {
    let name: Arc<str> = account.name.as_str().into();
    let job = |endpoint, interval, poller: Arc<dyn Poller>| {
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
        job("usage.billing", account.last_month_interval, Arc::new(LastMonth { client: client.clone() })),
        job("disk.usage", account.disk_interval, Arc::new(Disk { client: client.clone() })),
    ];
    if !account.video_apps.is_empty() {
        let video = Video { client, apps: account.video_apps.clone(), top_n: account.video_top_n };
        jobs.push(job("video.usage", account.video_interval, Arc::new(video)));
    }
    jobs
}

struct Summary {
    client: Arc<Client>,
    /// Unmapped row names already logged: per account, at most [`MAX_UNMAPPED_REMEMBERED`].
    unmapped_seen: Mutex<BTreeSet<String>>,
}

impl Poller for Summary {
    fn poll<'a>(&'a self, ctx: &'a PollContext) -> BoxFuture<'a, Result<Vec<Sample>, PollError>> {
        Box::pin(async move {
            let body = fetch_table(&self.client, ctx, "usage.summary").await?;
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

impl Poller for Billing {
    fn poll<'a>(&'a self, ctx: &'a PollContext) -> BoxFuture<'a, Result<Vec<Sample>, PollError>> {
        Box::pin(async move {
            let body = fetch_table(&self.client, ctx, "usage.billing.live").await?;
            normalize::billing(&wire::parse_table(
                &body,
                table_limit(&self.client.answers()),
                "usage.billing.live answer",
            )?)
        })
    }
}

/// Last month's final bill: `usage.billing` for the previous UTC month, its price-to-date
/// column and totals row as the last-month families.
struct LastMonth {
    client: Arc<Client>,
}

impl Poller for LastMonth {
    fn poll<'a>(&'a self, ctx: &'a PollContext) -> BoxFuture<'a, Result<Vec<Sample>, PollError>> {
        Box::pin(async move {
            let today = timeutil::now_unix().div_euclid(86_400);
            super::month_bill(&self.client, ctx, timeutil::month_start(timeutil::month_start(today) - 1)).await
        })
    }
}

struct Disk {
    client: Arc<Client>,
}

impl Poller for Disk {
    fn poll<'a>(&'a self, ctx: &'a PollContext) -> BoxFuture<'a, Result<Vec<Sample>, PollError>> {
        Box::pin(async move {
            let today = timeutil::now_unix().div_euclid(86_400);
            // The 30-day window ends yesterday: the newest complete day is the one we export.
            let start = (today - 30) * 86_400;
            let limit = body_limit(&self.client.answers(), "disk.usage");
            let params = [("cpu", json!("")), ("starttime", json!(start))];
            let body = self.client.call(ctx, "disk.usage", &params, limit).await?;
            normalize::disk(&wire::parse_disk(&body, entries_limit(&self.client.answers()))?, today)
        })
    }
}

struct Video {
    client: Arc<Client>,
    apps: Vec<VideoApp>,
    top_n: usize,
}

impl Poller for Video {
    fn poll<'a>(&'a self, ctx: &'a PollContext) -> BoxFuture<'a, Result<Vec<Sample>, PollError>> {
        Box::pin(async move {
            let (year, month, _) = timeutil::civil_from_days(timeutil::now_unix().div_euclid(86_400));
            let period = [("year", json!(year)), ("month", json!(month))];
            let mut samples = Vec::new();
            // Pages of all apps together count against `answer_limits.video_pages`.
            let mut pages = 0;
            for app in &self.apps {
                let mut top = normalize::TopUrls::new(self.top_n);
                video_pages(&self.client, ctx, app, &period, &mut pages, |page| top.add_page(&page.entries)).await?;
                samples.extend(top.samples(&app.to_string()));
            }
            Ok(samples)
        })
    }
}
