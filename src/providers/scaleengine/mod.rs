//! ScaleEngine: the command API at `https://api.scaleengine.net/stable/`. Four endpoints, each a
//! job: `usage.summary`, `usage.billing.live`, `disk.usage`, `video.usage`.

pub mod client;
pub mod config;
pub mod history;
pub mod jobs;
pub mod normalize;
pub mod phpjson;
pub mod simulator;
pub mod wire;

use std::sync::Arc;

use serde_json::{Value, json};

use crate::job::{JobSpec, PollContext, PollError, Sample};
use crate::providers::common::http::BodyLimit;
use crate::providers::common::limits::AnswerLimits;
use crate::providers::{Account, Context, History, Provider, SetupError};
use crate::validate::{Table, Validator};

use client::Client;
pub use config::{ScaleEngineAccount, VideoApp};
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

/// The bill of the month starting on day `first` (`usage.billing`): its price-to-date column and
/// totals row as the last-month families. Live polling and backfill read it the same way.
pub async fn month_bill(client: &Client, ctx: &PollContext, first: i64) -> Result<Vec<Sample>, PollError> {
    let limit = body_limit(&client.answers(), "usage.billing");
    let params = [("starttime", json!(crate::timeutil::format_ymd(first)))];
    let body = client.call(ctx, "usage.billing", &params, limit).await?;
    let table = wire::parse_table(&body, table_limit(&client.answers()), "usage.billing answer")?;
    Ok(normalize::last_month(normalize::billing(&table)?))
}

/// Runs `command` and returns its answer, for parsing as a table.
pub async fn fetch_table(client: &Client, ctx: &PollContext, command: &'static str) -> Result<Vec<u8>, PollError> {
    client.call(ctx, command, &[], body_limit(&client.answers(), command)).await
}

/// The `app` parameter of `video.usage`: an id as a number, a name as a string.
pub fn app_param(app: &VideoApp) -> Value {
    match app {
        VideoApp::Id(id) => json!(id),
        VideoApp::Name(name) => json!(name),
    }
}

/// Reads every page of one app's `video.usage` for the period in `period` (`year`, `month` and
/// maybe `day`), handing each page to `each` and dropping it once handed. `pages` counts the
/// pages read against `answer_limits.video_pages` (live polling counts all apps of a poll
/// together); past it the read fails rather than being cut short.
pub async fn video_pages(
    client: &Client,
    ctx: &PollContext,
    app: &VideoApp,
    period: &[(&str, Value)],
    pages: &mut usize,
    mut each: impl FnMut(&wire::VideoPage<'_>) -> Result<(), PollError>,
) -> Result<(), PollError> {
    let answers = client.answers();
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
        let mut params: Vec<(&str, Value)> = vec![("app", app_param(app))];
        params.extend(period.iter().cloned());
        params.push(("limit", json!(page_limit)));
        params.push(("offset", json!(offset)));
        let body = client.call(ctx, "video.usage", &params, body_limit(&answers, "video.usage")).await?;
        let page = wire::parse_video(&body, entries_limit(&answers))?;
        let got = page.entries.len() as u64;
        each(&page)?;
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

/// The ScaleEngine provider: the `[[scaleengine]]` section.
#[derive(Debug, Clone, Copy, Default)]
pub struct ScaleEngine;

/// ScaleEngine's entry in the registry.
pub const ENTRY: crate::providers::registry::Entry = crate::providers::registry::Entry {
    name: ScaleEngine::NAME,
    parse: crate::providers::registry::section::<ScaleEngine>,
    check: crate::providers::registry::check::<ScaleEngine>,
    routes: simulator::routes,
    base_path: simulator::BASE_PATH,
    describe: simulator::describe,
    demo_toml: simulator::demo_toml,
    demo_part: || simulator::part(simulator::demo_accounts()),
};

impl Provider for ScaleEngine {
    const NAME: &'static str = PROVIDER;
    type Account = ScaleEngineAccount;

    fn parse(v: &mut Validator, t: &mut Table<'_>) -> Option<ScaleEngineAccount> {
        config::parse_account(v, t)
    }
}

impl Account for ScaleEngineAccount {
    fn provider(&self) -> &'static str {
        PROVIDER
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn jobs(&self, ctx: &Context<'_>) -> Result<Vec<JobSpec>, SetupError> {
        Ok(jobs::jobs(self, Arc::new(Client::new(self, ctx.http, ctx.upstream.clone()))))
    }

    /// The budget, and the mark that the spend is the provider's own (`usage.billing.live`).
    fn config_samples(&self) -> Vec<Sample> {
        crate::providers::spend_samples(Some(crate::providers::SpendSource::Provider), self.budget_usd)
    }

    fn history(&self, ctx: &Context<'_>) -> Result<Vec<Box<dyn History>>, SetupError> {
        Ok(history::units(self, Arc::new(Client::new(self, ctx.http, ctx.upstream.clone()))))
    }

    fn focus_profile(&self) -> crate::bill::Profile {
        crate::bill::Profile {
            name: "ScaleEngine",
            utc_offset: 0,
            unit: |labels| normalize::item_unit(crate::bill::item_of(labels)),
        }
    }
}
