//! ScaleEngine history for `backfill`: `disk.usage` 30 days per request, `usage.summary` and
//! `usage.billing` a whole finished month per request (its totals at the month's last second),
//! and `video.usage` day by day (month-to-date sums per URL at each day's last second, top N
//! kept as live polling does). The same client, parsing and normalization as live polling.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::json;

use crate::families::FamilyId;
use crate::job::{BoxFuture, PollContext, PollError, Sample};
use crate::providers::{History, SampleSink, Window, WindowError};
use crate::timeutil::{chunks, civil_from_days, format_ymd, month_start, months};

use super::client::Client;
use super::{
    PROVIDER, ScaleEngineAccount, VideoApp, body_limit, entries_limit, normalize, table_limit, video_pages, wire,
};

/// Days per `disk.usage` answer.
pub const DISK_WINDOW_DAYS: i64 = 30;

/// The history units of one account: disk, summary, billing, and one per video app.
pub fn units(account: &ScaleEngineAccount, client: Arc<Client>) -> Vec<Box<dyn History>> {
    let unit = |part: String, kind: Kind| -> Box<dyn History> {
        Box::new(Unit {
            name: format!("{PROVIDER}/{}/{part}", account.name),
            client: client.clone(),
            kind,
            top_n: account.video_top_n,
        })
    };
    let mut units = vec![
        unit("disk.usage".into(), Kind::Disk),
        unit("usage.summary".into(), Kind::Summary),
        unit("usage.billing".into(), Kind::Billing),
    ];
    for app in &account.video_apps {
        units.push(unit(format!("video.usage/{app}"), Kind::Video(app.clone())));
    }
    units
}

enum Kind {
    Disk,
    Summary,
    Billing,
    Video(VideoApp),
}

struct Unit {
    name: String,
    client: Arc<Client>,
    kind: Kind,
    top_n: usize,
}

impl History for Unit {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn bills(&self) -> bool {
        matches!(self.kind, Kind::Billing)
    }

    fn windows(&self, from: i64, to: i64, now: i64) -> Vec<(i64, i64)> {
        let today = now.div_euclid(86_400);
        match self.kind {
            Kind::Disk => chunks(from, to.min(today - 1), DISK_WINDOW_DAYS),
            // Whole months that are over, and that meet the range.
            Kind::Summary | Kind::Billing => months(from, to).into_iter().filter(|(_, last)| *last < today).collect(),
            // Month by month; a month's cumulative sums start on its first day.
            Kind::Video(_) => months(from, to.min(today - 1))
                .into_iter()
                .map(|(first, last)| (first.max(month_start(from)), last.min(to).min(today - 1)))
                .filter(|(a, b)| a <= b)
                .collect(),
        }
    }

    fn fetch<'a>(&'a self, w: Window, sink: &'a mut dyn SampleSink) -> BoxFuture<'a, Result<(), WindowError>> {
        Box::pin(async move {
            match &self.kind {
                Kind::Disk => disk(&self.client, w, sink).await,
                Kind::Summary => month(&self.client, "usage.summary", w, sink).await,
                Kind::Billing => month(&self.client, "usage.billing", w, sink).await,
                Kind::Video(app) => video(&self.client, app, self.top_n, w, sink).await,
            }
        })
    }
}

/// A fetch error of the window from day `from` on.
fn failed(from: i64) -> impl Fn(PollError) -> WindowError {
    move |error| WindowError::Fetch { error, from }
}

const CTX: PollContext = PollContext::UNBOUNDED;

async fn disk(client: &Client, w: Window, sink: &mut dyn SampleSink) -> Result<(), WindowError> {
    let fetch = failed(w.first);
    let limit = body_limit(&client.answers(), "disk.usage");
    let params = [("cpu", json!("")), ("starttime", json!(w.first * 86_400))];
    let answer = client.call(&CTX, "disk.usage", &params, limit).await.map_err(&fetch)?;
    let days = wire::parse_disk(&answer, entries_limit(&client.answers())).map_err(&fetch)?;
    // The same rules as live polling: a value that is not data fails the window.
    let mut points = normalize::disk_points(&days).map_err(&fetch)?;
    points.retain(|p| p.day >= w.first && p.day <= w.last);
    points.sort_by_key(|p| p.day);
    for p in points {
        sink.write(&p.samples(), p.end())?;
    }
    Ok(())
}

/// A whole month of `usage.summary` or `usage.billing`, as its totals at the month's last second.
async fn month(client: &Client, command: &str, w: Window, sink: &mut dyn SampleSink) -> Result<(), WindowError> {
    let fetch = failed(w.first);
    let limit = body_limit(&client.answers(), command);
    let params = [("starttime", json!(format_ymd(w.first)))];
    let answer = client.call(&CTX, command, &params, limit).await.map_err(&fetch)?;
    let table = wire::parse_table(&answer, table_limit(&client.answers()), limit.endpoint).map_err(&fetch)?;
    let samples = if command == "usage.summary" {
        normalize::summary(&table).map_err(&fetch)?.0
    } else {
        finished_month(normalize::billing(&table).map_err(&fetch)?)
    };
    sink.write(&samples, (w.last + 1) * 86_400 - 1)?;
    if command == "usage.billing" {
        last_month(client, w, sink).await?;
    }
    Ok(())
}

/// Last month's bill as live polling shows it through the month `w`: the previous month's
/// `usage.billing` at the end of each day of `w` (one more request per month).
async fn last_month(client: &Client, w: Window, sink: &mut dyn SampleSink) -> Result<(), WindowError> {
    let samples = super::month_bill(client, &CTX, month_start(w.first - 1)).await.map_err(failed(w.first))?;
    for day in w.first.max(w.emit_from)..=w.last {
        sink.write(&samples, (day + 1) * 86_400 - 1)?;
    }
    Ok(())
}

/// A finished month's billing: its estimate is its total.
fn finished_month(mut samples: Vec<Sample>) -> Vec<Sample> {
    let estimates: Vec<Sample> = samples
        .iter()
        .filter_map(|s| {
            let family = match s.family {
                FamilyId::BillingMonthToDateSpendUsd => FamilyId::BillingEstimatedMonthSpendUsd,
                FamilyId::BillingMonthToDateCostUsd => FamilyId::BillingEstimatedMonthCostUsd,
                FamilyId::BillingMonthToDateUsage => FamilyId::BillingEstimatedMonthUsage,
                _ => return None,
            };
            Some(Sample { family, ..s.clone() })
        })
        .collect();
    samples.retain(|s| {
        !matches!(
            s.family,
            FamilyId::BillingEstimatedMonthSpendUsd
                | FamilyId::BillingEstimatedMonthCostUsd
                | FamilyId::BillingEstimatedMonthUsage
        )
    });
    samples.extend(estimates);
    samples
}

/// Days `first..=last` of one month for one app: month-to-date sums per URL at each day's last
/// second, top N kept as live polling does. Days before `emit_from` only feed the sums.
async fn video(
    client: &Client,
    app: &VideoApp,
    top_n: usize,
    w: Window,
    sink: &mut dyn SampleSink,
) -> Result<(), WindowError> {
    let mut sums: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for day in w.first..=w.last {
        let fetch = failed(day);
        let (y, m, d) = civil_from_days(day);
        let period = [("year", json!(y)), ("month", json!(m)), ("day", json!(d))];
        // `answer_limits.video_pages` bounds the pages of one day, as it bounds those of a poll.
        let mut pages = 0;
        video_pages(client, &CTX, app, &period, &mut pages, |page| {
            // The same rules as live polling: a value that is not data fails the window.
            normalize::video("", &page.entries, 0)?;
            for e in &page.entries {
                let Some(url) = e.url.get() else { continue };
                let slot = sums.entry(crate::text::label(url)).or_default();
                slot.0 += e.bytes.get().unwrap_or_default();
                slot.1 += e.requests.get().unwrap_or_default();
            }
            Ok(())
        })
        .await
        .map_err(&fetch)?;
        if day >= w.emit_from {
            let entries: Vec<wire::VideoEntry> = sums
                .iter()
                .map(|(url, (b, r))| wire::VideoEntry {
                    url: wire::Text(Some(url.as_str().into())),
                    bytes: wire::Num::Value(*b),
                    requests: wire::Num::Value(*r),
                })
                .collect();
            let samples = normalize::video(&app.to_string(), &entries, top_n).map_err(&fetch)?;
            sink.write(&samples, (day + 1) * 86_400 - 1)?;
        }
    }
    Ok(())
}
