//! ScaleEngine answers → samples. Every unit assumption about `usage.summary` lives in
//! [`SUMMARY_ROWS`]; docs/metrics.md repeats it for users.

use std::collections::{BTreeMap, HashMap};

use crate::families::FamilyId;
use crate::job::Sample;

use super::wire::{DiskDay, Table, VideoEntry};

/// Seconds in an hour: the provider reports CPU in hours.
const HOUR: f64 = 3600.0;
/// Bytes in a (decimal) gigabyte. Guess: usage.summary reports bandwidth in GB, the unit
/// ScaleEngine bills in; the docs do not say.
const GB: f64 = 1e9;

/// How one `usage.summary` row becomes a sample.
#[derive(Debug, Clone, Copy)]
pub struct RowMapping {
    /// The row name, lowercased, without the trailing colon.
    pub row: &'static str,
    /// The family it goes to.
    pub family: FamilyId,
    /// The extra label, if the family has one.
    pub label: Option<(&'static str, &'static str)>,
    /// Multiply the provider's value by this to get the family's base unit.
    pub factor: f64,
}

const fn map(
    row: &'static str,
    family: FamilyId,
    label: Option<(&'static str, &'static str)>,
    factor: f64,
) -> RowMapping {
    RowMapping { row, family, label, factor }
}

use FamilyId::*;

/// The one table from `usage.summary` row names to families, labels and unit factors.
pub const SUMMARY_ROWS: &[RowMapping] = &[
    map("edge bandwidth", MonthToDateBandwidthBytes, Some(("product", "edge")), GB),
    map("cdn bandwidth", MonthToDateBandwidthBytes, Some(("product", "cdn")), GB),
    map("origin bandwidth", MonthToDateBandwidthBytes, Some(("product", "origin")), GB),
    map("videocdn bandwidth", MonthToDateBandwidthBytes, Some(("product", "videocdn")), GB),
    map("sql replication bandwidth", MonthToDateBandwidthBytes, Some(("product", "sql_replication")), GB),
    map("edge requests", MonthToDateRequests, Some(("product", "edge")), 1.0),
    map("cdn requests", MonthToDateRequests, Some(("product", "cdn")), 1.0),
    map("origin requests", MonthToDateRequests, Some(("product", "origin")), 1.0),
    map("videocdn requests", MonthToDateRequests, Some(("product", "videocdn")), 1.0),
    map("sql select", MonthToDateSqlQueries, Some(("kind", "select")), 1.0),
    map("sql update", MonthToDateSqlQueries, Some(("kind", "update")), 1.0),
    map("sql other", MonthToDateSqlQueries, Some(("kind", "other")), 1.0),
    map("sql cpu hours", MonthToDateCpuSeconds, Some(("product", "sql")), HOUR),
    map("php cpu hours", MonthToDateCpuSeconds, Some(("product", "php")), HOUR),
    map("origin cpu hours", MonthToDateCpuSeconds, Some(("product", "origin")), HOUR),
    map("origin i/o transactions", MonthToDateOriginIoTransactions, None, 1.0),
    map("origin memory seconds", MonthToDateOriginMemorySeconds, None, 1.0),
    map("origin processes", OriginProcesses, None, 1.0),
];

/// Lowercased row name without the trailing colon and surrounding space.
pub fn row_key(name: &str) -> String {
    name.trim().trim_end_matches(':').trim().to_lowercase()
}

/// A total of other rows ("Total Bandwidth:", "SQL Query Total:", "Totals: "): never exported,
/// since a family never holds the sum of its own series.
pub fn is_total_row(key: &str) -> bool {
    key == "totals" || key.starts_with("total ") || key.ends_with(" total") || key == "total"
}

/// `"Origin I/O Transactions:"` → `origin_i_o_transactions`.
pub fn slug(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.trim().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out.trim_matches('_').to_owned()
}

/// Normalizes a `usage.summary` table. Returns the samples and the names of rows that have no
/// mapping yet (exported under `cdn_month_to_date_usage`).
pub fn summary(table: &Table) -> (Vec<Sample>, Vec<String>) {
    let mut samples = Vec::with_capacity(table.rows.len());
    let mut unmapped = Vec::new();
    for row in &table.rows {
        let key = row_key(&row.name);
        if is_total_row(&key) {
            continue;
        }
        let Some(value) = row.cells.first().copied().flatten() else {
            continue;
        };
        match SUMMARY_ROWS.iter().find(|m| m.row == key) {
            Some(m) => {
                let mut s = Sample::new(m.family, value * m.factor);
                if let Some((k, v)) = m.label {
                    s = s.label(k, v);
                }
                samples.push(s);
            }
            None => {
                let item = slug(&row.name);
                if item.is_empty() {
                    continue;
                }
                unmapped.push(row.name.trim().to_owned());
                samples.push(Sample::new(MonthToDateUsage, value).label("item", item));
            }
        }
    }
    (samples, unmapped)
}

/// Column positions of a `usage.billing.live` table, found by header text where possible.
#[derive(Debug, PartialEq, Eq)]
struct BillingColumns {
    usage_to_date: usize,
    price_to_date: usize,
    estimated_usage: usize,
    estimated_total: usize,
}

fn billing_columns(cols: &[String]) -> BillingColumns {
    // Documented order: Item, Usage To Date, Estimated Price (to date), Estimated Usage,
    // Estimated Total. Cell index = column index - 1 (the item name is not a cell).
    let mut c = BillingColumns { usage_to_date: 0, price_to_date: 1, estimated_usage: 2, estimated_total: 3 };
    let find = |pred: &dyn Fn(&str) -> bool| {
        cols.iter().position(|h| pred(&h.to_lowercase())).filter(|&i| i > 0).map(|i| i - 1)
    };
    if let Some(i) = find(&|h| h.contains("usage") && h.contains("to date")) {
        c.usage_to_date = i;
    }
    if let Some(i) = find(&|h| h.contains("estimated usage")) {
        c.estimated_usage = i;
    }
    if let Some(i) = find(&|h| h.contains("estimated total")) {
        c.estimated_total = i;
    }
    if let Some(i) = find(&|h| h.contains("price")) {
        c.price_to_date = i;
    }
    c
}

/// Normalizes a `usage.billing.live` table: per-item usage and cost, and the totals row.
pub fn billing(table: &Table) -> Vec<Sample> {
    let cols = billing_columns(&table.cols);
    let mut samples = Vec::with_capacity(table.rows.len() * 4);
    for row in &table.rows {
        let cell = |i: usize| row.cells.get(i).copied().flatten();
        let key = row_key(&row.name);
        if is_total_row(&key) {
            if let Some(v) = cell(cols.price_to_date) {
                samples.push(Sample::new(BillingMonthToDateSpendUsd, v));
            }
            if let Some(v) = cell(cols.estimated_total) {
                samples.push(Sample::new(BillingEstimatedMonthSpendUsd, v));
            }
            continue;
        }
        let item = slug(&row.name);
        if item.is_empty() {
            continue;
        }
        for (col, family) in [
            (cols.usage_to_date, BillingMonthToDateUsage),
            (cols.price_to_date, BillingMonthToDateCostUsd),
            (cols.estimated_usage, BillingEstimatedMonthUsage),
            (cols.estimated_total, BillingEstimatedMonthCostUsd),
        ] {
            if let Some(v) = cell(col) {
                samples.push(Sample::new(family, v).label("item", item.clone()));
            }
        }
    }
    samples
}

/// The `user` label for the whole account, when disk.usage reports no per-user rows.
pub const ALL_USERS: &str = "__all__";

/// Normalizes `disk.usage`: per user, the newest day before `today` (the current day is still
/// being counted); if a user has only today's row, that row. Empty-user rows are the account's
/// own total and are exported (as `user="__all__"`) only when no per-user rows exist.
pub fn disk(days: &[DiskDay], today: i64) -> Vec<Sample> {
    let has_users = days.iter().any(|d| !d.user.trim().is_empty());
    let mut best: BTreeMap<&str, &DiskDay> = BTreeMap::new();
    for d in days {
        let user = d.user.trim();
        if has_users && user.is_empty() {
            continue;
        }
        let user = if user.is_empty() { ALL_USERS } else { user };
        let better = |cur: &DiskDay| {
            let complete = d.day < today;
            let cur_complete = cur.day < today;
            (complete, d.day) > (cur_complete, cur.day)
        };
        match best.get(user) {
            Some(cur) if !better(cur) => {}
            _ => {
                best.insert(user, d);
            }
        }
    }
    let mut samples = Vec::with_capacity(best.len() * 2);
    for (user, d) in best {
        samples.push(Sample::new(StorageBytes, d.bytes).label("user", user));
        // The time of a point is the end of the interval it covers: the day's following midnight.
        samples.push(Sample::new(StorageSampleTimestampSeconds, ((d.day + 1) * 86_400) as f64).label("user", user));
    }
    samples
}

/// The `url` label of the sum of every URL outside the top N.
pub const OTHER_URLS: &str = "__other__";

/// Normalizes one app's `video.usage` entries: duplicates of a URL are summed, the `top_n` URLs
/// by bytes are kept, the rest are summed into `url="__other__"`.
pub fn video(app: &str, entries: &[VideoEntry], top_n: usize) -> Vec<Sample> {
    let mut by_url: HashMap<&str, (f64, f64)> = HashMap::with_capacity(entries.len());
    for e in entries {
        let slot = by_url.entry(e.url.as_str()).or_default();
        slot.0 += e.bytes;
        slot.1 += e.requests;
    }
    let mut urls: Vec<(&str, (f64, f64))> = by_url.into_iter().collect();
    // Bytes descending, then URL, so that ties are stable from poll to poll.
    urls.sort_by(|a, b| b.1.0.total_cmp(&a.1.0).then_with(|| a.0.cmp(b.0)));
    let mut samples = Vec::with_capacity(2 * (top_n.min(urls.len()) + 1));
    let (top, rest) = urls.split_at(top_n.min(urls.len()));
    for (url, (bytes, requests)) in top {
        samples.push(Sample::new(VideoMonthToDateBytes, *bytes).label("app", app).label("url", *url));
        samples.push(Sample::new(VideoMonthToDateRequests, *requests).label("app", app).label("url", *url));
    }
    if !rest.is_empty() {
        let (bytes, requests) = rest.iter().fold((0.0, 0.0), |acc, (_, (b, r))| (acc.0 + b, acc.1 + r));
        samples.push(Sample::new(VideoMonthToDateBytes, bytes).label("app", app).label("url", OTHER_URLS));
        samples.push(Sample::new(VideoMonthToDateRequests, requests).label("app", app).label("url", OTHER_URLS));
    }
    samples
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::scaleengine::wire::Row;

    fn row(name: &str, cells: &[f64]) -> Row {
        Row { name: name.into(), cells: cells.iter().map(|v| Some(*v)).collect() }
    }

    fn value(samples: &[Sample], family: FamilyId, label: Option<(&str, &str)>) -> Option<f64> {
        samples
            .iter()
            .find(|s| s.family == family && label.is_none_or(|(k, v)| s.labels.iter().any(|(a, b)| *a == k && b == v)))
            .map(|s| s.value)
    }

    #[test]
    fn summary_maps_rows_and_skips_totals() {
        let table = Table {
            cols: vec![],
            rows: vec![
                row("Edge Bandwidth:", &[2.5]),
                row("Total Bandwidth:", &[99.0]),
                row("SQL Query Total:", &[99.0]),
                row("PHP CPU Hours:", &[1.5]),
                row("Origin I/O Transactions:", &[28_103.0]),
                row("Origin Disk:", &[4.0]),
            ],
        };
        let (samples, unmapped) = summary(&table);
        assert_eq!(value(&samples, MonthToDateBandwidthBytes, Some(("product", "edge"))), Some(2.5e9));
        assert_eq!(value(&samples, MonthToDateCpuSeconds, Some(("product", "php"))), Some(5400.0));
        assert_eq!(value(&samples, MonthToDateOriginIoTransactions, None), Some(28_103.0));
        assert_eq!(value(&samples, MonthToDateUsage, Some(("item", "origin_disk"))), Some(4.0));
        assert_eq!(unmapped, vec!["Origin Disk:".to_owned()]);
        assert_eq!(samples.len(), 4, "totals must not be exported: {samples:?}");
    }

    #[test]
    fn billing_reads_items_and_totals() {
        let table = Table {
            cols: ["Item", "Usage To Date:", "Estimated Price:", "Estimated Usage:", "Estimated Total:"]
                .map(String::from)
                .to_vec(),
            rows: vec![row("Edge Bandwidth:", &[100.0, 5.0, 300.0, 15.0]), row("Totals: ", &[0.0, 42.5, 0.0, 120.0])],
        };
        let s = billing(&table);
        assert_eq!(value(&s, BillingMonthToDateUsage, Some(("item", "edge_bandwidth"))), Some(100.0));
        assert_eq!(value(&s, BillingMonthToDateCostUsd, Some(("item", "edge_bandwidth"))), Some(5.0));
        assert_eq!(value(&s, BillingEstimatedMonthUsage, Some(("item", "edge_bandwidth"))), Some(300.0));
        assert_eq!(value(&s, BillingEstimatedMonthCostUsd, Some(("item", "edge_bandwidth"))), Some(15.0));
        assert_eq!(value(&s, BillingMonthToDateSpendUsd, None), Some(42.5));
        assert_eq!(value(&s, BillingEstimatedMonthSpendUsd, None), Some(120.0));
        assert_eq!(s.len(), 6);
    }

    #[test]
    fn disk_takes_the_newest_complete_day_per_user() {
        let d = |day, user: &str, bytes| DiskDay { day, user: user.into(), bytes };
        let days = [d(10, "a", 1.0), d(11, "a", 2.0), d(12, "a", 3.0), d(11, "", 50.0), d(12, "b", 7.0)];
        let s = disk(&days, 12);
        assert_eq!(value(&s, StorageBytes, Some(("user", "a"))), Some(2.0));
        assert_eq!(value(&s, StorageSampleTimestampSeconds, Some(("user", "a"))), Some(12.0 * 86_400.0));
        assert_eq!(value(&s, StorageBytes, Some(("user", "b"))), Some(7.0), "only today's row: use it");
        assert_eq!(value(&s, StorageBytes, Some(("user", ALL_USERS))), None);
        let s = disk(&[d(11, "", 50.0)], 12);
        assert_eq!(value(&s, StorageBytes, Some(("user", ALL_USERS))), Some(50.0));
    }

    #[test]
    fn video_keeps_top_n_and_sums_the_rest() {
        let e = |url: &str, bytes, requests| VideoEntry { url: url.into(), bytes, requests };
        let entries = [e("a", 10.0, 1.0), e("b", 30.0, 1.0), e("a", 25.0, 2.0), e("c", 5.0, 4.0), e("d", 1.0, 1.0)];
        let s = video("app1", &entries, 2);
        assert_eq!(value(&s, VideoMonthToDateBytes, Some(("url", "a"))), Some(35.0));
        assert_eq!(value(&s, VideoMonthToDateRequests, Some(("url", "a"))), Some(3.0));
        assert_eq!(value(&s, VideoMonthToDateBytes, Some(("url", "b"))), Some(30.0));
        assert_eq!(value(&s, VideoMonthToDateBytes, Some(("url", OTHER_URLS))), Some(6.0));
        assert_eq!(value(&s, VideoMonthToDateRequests, Some(("url", OTHER_URLS))), Some(5.0));
        assert_eq!(s.len(), 6);
        let total: f64 = s.iter().filter(|x| x.family == VideoMonthToDateBytes).map(|x| x.value).sum();
        assert_eq!(total, 71.0, "no byte lost or counted twice");
    }

    #[test]
    fn slugs() {
        assert_eq!(slug("Origin I/O Transactions:"), "origin_i_o_transactions");
        assert_eq!(slug("  Totals: "), "totals");
        assert_eq!(slug(":::"), "");
    }
}
