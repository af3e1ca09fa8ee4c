//! ScaleEngine answers → samples. Every unit assumption about `usage.summary` lives in
//! [`SUMMARY_ROWS`]; docs/metrics.md repeats it for users. An answer that is not data (a
//! non-finite value, negative usage, a row twice, rows with no number at all) is an error, so
//! that the last good values stay rather than vanish.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::families::FamilyId;
use crate::job::{PollError, Sample};
use crate::text;

use super::wire::{DiskDay, Num, Row, Table, VideoEntry};

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

pub use crate::text::slug;

/// Refuses a row that holds a non-finite value.
fn finite_cells(what: &str, row: &Row<'_>) -> Result<(), PollError> {
    if row.cells.contains(&Num::NonFinite) {
        return Err(PollError::parse(format!(
            "{what} row {:?} has a value that is not a finite number (NaN, Infinity or out of range): not data",
            text::label(&row.name)
        )));
    }
    Ok(())
}

/// Refuses a table whose rows hold no number at all: an answer that is not data is no success.
fn some_number(what: &str, table: &Table<'_>) -> Result<(), PollError> {
    if !table.rows.is_empty() && !table.rows.iter().any(|r| r.cells.iter().any(|c| c.get().is_some())) {
        return Err(PollError::parse(format!("{what} has {} rows but not one number: not data", table.rows.len())));
    }
    Ok(())
}

fn negative(what: &str, name: &str, value: f64) -> PollError {
    PollError::parse(format!("{what} row {:?} has negative usage {value}: not data", text::label(name)))
}

fn twice(what: &str, name: &str) -> PollError {
    PollError::parse(format!("{what} lists row {:?} twice: not data", text::label(name)))
}

/// Normalizes a `usage.summary` table. Returns the samples and the names of rows that have no
/// mapping yet (exported under `cdn_month_to_date_usage`; bounded, inert label values). Every
/// value is usage, so a negative one is an error, as is a non-finite one or a row twice.
pub fn summary(table: &Table<'_>) -> Result<(Vec<Sample>, Vec<String>), PollError> {
    const WHAT: &str = "usage.summary";
    some_number(WHAT, table)?;
    let mut samples = Vec::with_capacity(table.rows.len());
    let mut unmapped = Vec::new();
    let mut seen = HashSet::with_capacity(table.rows.len());
    for row in &table.rows {
        finite_cells(WHAT, row)?;
        let key = row_key(&row.name);
        if !seen.insert(key.clone()) {
            return Err(twice(WHAT, &row.name));
        }
        if is_total_row(&key) {
            continue;
        }
        let Some(value) = row.cell(0) else {
            continue;
        };
        if value < 0.0 {
            return Err(negative(WHAT, &row.name, value));
        }
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
                if !seen.insert(format!("\0{item}")) {
                    return Err(twice(WHAT, &row.name));
                }
                unmapped.push(text::label(row.name.trim()));
                samples.push(Sample::new(MonthToDateUsage, value).label("item", item));
            }
        }
    }
    Ok((samples, unmapped))
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

/// A finished month's billing samples as last month's bill: its charges to date are final.
pub fn last_month(samples: Vec<Sample>) -> Vec<Sample> {
    samples
        .into_iter()
        .filter_map(|s| {
            let family = match s.family {
                BillingMonthToDateSpendUsd => FamilyId::BillingLastMonthSpendUsd,
                BillingMonthToDateCostUsd => FamilyId::BillingLastMonthCostUsd,
                // What the amounts are in.
                FamilyId::BillingCurrencyInfo => FamilyId::BillingCurrencyInfo,
                _ => return None,
            };
            Some(Sample { family, ..s })
        })
        .collect()
}

/// Normalizes a `usage.billing.live` table: per-item usage and cost, and the totals row. Usage
/// may not be negative; money may (credits).
pub fn billing(table: &Table<'_>) -> Result<Vec<Sample>, PollError> {
    const WHAT: &str = "usage.billing.live";
    some_number(WHAT, table)?;
    let cols = billing_columns(&table.cols);
    let mut samples = Vec::with_capacity(table.rows.len() * 4);
    let mut seen = HashSet::with_capacity(table.rows.len());
    for row in &table.rows {
        finite_cells(WHAT, row)?;
        let cell = |i: usize| row.cell(i);
        let key = row_key(&row.name);
        if is_total_row(&key) {
            if !seen.insert(String::new()) {
                return Err(twice(WHAT, &row.name));
            }
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
        if !seen.insert(item.clone()) {
            return Err(twice(WHAT, &row.name));
        }
        for (col, family, usage) in [
            (cols.usage_to_date, BillingMonthToDateUsage, true),
            (cols.price_to_date, BillingMonthToDateCostUsd, false),
            (cols.estimated_usage, BillingEstimatedMonthUsage, true),
            (cols.estimated_total, BillingEstimatedMonthCostUsd, false),
        ] {
            if let Some(v) = cell(col) {
                if usage && v < 0.0 {
                    return Err(negative(WHAT, &row.name, v));
                }
                samples.push(Sample::new(family, v).label("item", item.clone()));
            }
        }
    }
    // ScaleEngine bills in US dollars and its tables name no currency (docs/metrics.md).
    samples.push(crate::currency::marker(CURRENCY));
    Ok(samples)
}

/// The unit of a billing item's usage columns, from its name (ScaleEngine's documentation: GB
/// for bandwidth and storage, counts for requests and queries, hours for CPU), in FOCUS's unit
/// format; `None` for an item it does not name.
pub fn item_unit(item: &str) -> Option<&'static str> {
    if item.contains("cpu_hours") {
        Some("Hours")
    } else if item.contains("bandwidth") || item.contains("storage") {
        Some("GB")
    } else if item.contains("requests") {
        Some("Requests")
    } else if item.starts_with("sql_") {
        Some("Queries")
    } else {
        None
    }
}

/// The currency of ScaleEngine's bills: US dollars (its API names none).
pub const CURRENCY: &str = "USD";

/// The `user` label for the whole account, when disk.usage reports no per-user rows.
pub const ALL_USERS: &str = "__all__";

/// One day of storage of one user (`user="__all__"` for the account's own total), checked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DiskPoint<'a> {
    /// The day (day number, UTC).
    pub day: i64,
    /// The `user` label.
    pub user: &'a str,
    /// Bytes stored.
    pub bytes: f64,
}

impl DiskPoint<'_> {
    /// The point's samples: the bytes, and the time it was taken (the end of its day).
    pub fn samples(&self) -> [Sample; 2] {
        // The time of a point is the end of the interval it covers: the day's following midnight.
        [
            Sample::new(StorageBytes, self.bytes).label("user", self.user),
            Sample::new(StorageSampleTimestampSeconds, self.end() as f64).label("user", self.user),
        ]
    }

    /// The end of the point's day, in Unix seconds.
    pub fn end(&self) -> i64 {
        (self.day + 1) * 86_400
    }
}

/// The points of a `disk.usage` answer, in its order. Empty-user rows are the account's own
/// total and are kept (as `user="__all__"`) only when no per-user rows exist. A non-finite or
/// negative value, or a (day, user) twice, is an error: the answer is not data. Live polling
/// and backfill both read answers through it.
pub fn disk_points<'a>(days: &'a [DiskDay]) -> Result<Vec<DiskPoint<'a>>, PollError> {
    let mut seen = HashSet::with_capacity(days.len());
    for d in days {
        let user = d.user.trim();
        match d.bytes {
            Num::Value(v) if v < 0.0 => return Err(negative("disk.usage", user, v)),
            Num::Value(_) => {}
            _ => {
                return Err(PollError::parse(format!(
                    "disk.usage entry for user {user:?} has a value that is not a finite number: not data"
                )));
            }
        }
        if !seen.insert((d.day, user)) {
            return Err(PollError::parse(format!(
                "disk.usage lists day {} of user {user:?} twice: not data",
                crate::timeutil::format_ymd(d.day)
            )));
        }
    }
    let has_users = days.iter().any(|d| !d.user.trim().is_empty());
    Ok(days
        .iter()
        .filter(|d| !has_users || !d.user.trim().is_empty())
        .map(|d| {
            let user = d.user.trim();
            DiskPoint {
                day: d.day,
                user: if user.is_empty() { ALL_USERS } else { user },
                bytes: d.bytes.get().unwrap_or_default(),
            }
        })
        .collect())
}

/// Normalizes `disk.usage`: per user, the newest day before `today` (the current day is still
/// being counted); if a user has only today's row, that row. See [`disk_points`] for what is
/// kept and what is refused.
pub fn disk(days: &[DiskDay], today: i64) -> Result<Vec<Sample>, PollError> {
    let mut best: BTreeMap<&str, DiskPoint<'_>> = BTreeMap::new();
    for d in disk_points(days)? {
        let better = |cur: &DiskPoint<'_>| {
            let complete = d.day < today;
            let cur_complete = cur.day < today;
            (complete, d.day) > (cur_complete, cur.day)
        };
        match best.get(d.user) {
            Some(cur) if !better(cur) => {}
            _ => {
                best.insert(d.user, d);
            }
        }
    }
    Ok(best.values().flat_map(DiskPoint::samples).collect())
}

/// The `url` label of the sum of every URL outside the top N.
pub const OTHER_URLS: &str = "__other__";

/// One app's `video.usage` folded page by page into its top N URLs by bytes and the running sum
/// of the rest, so that memory holds N URLs however many pages come. Duplicates of a URL within
/// a page are summed first, and across pages while the URL is among the kept ones; a URL that
/// left the top N and comes back later starts again (its earlier share stays in `__other__`),
/// so no byte is lost or counted twice. The API lists each URL once, so the top N is exact there.
#[derive(Debug)]
pub struct TopUrls {
    n: usize,
    /// Kept URL → (bytes, requests).
    kept: HashMap<String, (f64, f64)>,
    /// The kept URLs ordered worst first: fewest bytes, then the later URL (ties stay stable).
    order: BTreeSet<(u64, Reverse<String>)>,
    /// Sums of every URL not kept.
    other: (f64, f64),
    /// URLs folded into `other`.
    others: usize,
}

/// A rank key: non-negative finite floats order like their bits.
fn rank(bytes: f64, url: &str) -> (u64, Reverse<String>) {
    ((bytes + 0.0).to_bits(), Reverse(url.to_owned()))
}

impl TopUrls {
    /// An empty fold keeping `n` URLs.
    pub fn new(n: usize) -> Self {
        TopUrls { n, kept: HashMap::new(), order: BTreeSet::new(), other: (0.0, 0.0), others: 0 }
    }

    /// Folds one page in. A non-finite or negative value is an error, as is a page of entries
    /// none of which has a number.
    pub fn add_page(&mut self, entries: &[VideoEntry<'_>]) -> Result<(), PollError> {
        let mut page: HashMap<String, (f64, f64)> = HashMap::with_capacity(entries.len());
        let mut numbers = false;
        for e in entries {
            let Some(url) = e.url.get() else { continue };
            let mut value = |n: Num, what: &str| match n {
                Num::Value(v) if v < 0.0 => Err(PollError::parse(format!(
                    "video.usage entry {:?} has negative {what} {v}: not data",
                    text::label(url)
                ))),
                Num::Value(v) => {
                    numbers = true;
                    Ok(v)
                }
                Num::NonFinite => Err(PollError::parse(format!(
                    "video.usage entry {:?} has {what} that is not a finite number: not data",
                    text::label(url)
                ))),
                Num::Missing => Ok(0.0),
            };
            let (bytes, requests) = (value(e.bytes, "bytes")?, value(e.requests, "requests")?);
            let slot = page.entry(text::label(url)).or_default();
            slot.0 += bytes;
            slot.1 += requests;
        }
        if !entries.is_empty() && !numbers {
            return Err(PollError::parse(format!(
                "video.usage page has {} entries but not one number: not data",
                entries.len()
            )));
        }
        // Kept URLs grow first, so that none is evicted just before it grows; then the rest,
        // largest first. The fold then ends the same whatever order a page lists its URLs in.
        let mut page: Vec<(String, (f64, f64))> = page.into_iter().collect();
        page.sort_by(|(ua, (ba, _)), (ub, (bb, _))| {
            let kept = |u: &String| self.kept.contains_key(u);
            kept(ub).cmp(&kept(ua)).then(bb.total_cmp(ba)).then(ua.cmp(ub))
        });
        for (url, (bytes, requests)) in page {
            self.add(url, bytes, requests);
        }
        Ok(())
    }

    fn add(&mut self, url: String, bytes: f64, requests: f64) {
        if let Some(slot) = self.kept.get_mut(&url) {
            self.order.remove(&rank(slot.0, &url));
            slot.0 += bytes;
            slot.1 += requests;
            self.order.insert(rank(slot.0, &url));
            return;
        }
        if self.kept.len() < self.n {
            self.order.insert(rank(bytes, &url));
            self.kept.insert(url, (bytes, requests));
            return;
        }
        // Compared without allocating: most URLs of a long list do not make the top N.
        let bits = (bytes + 0.0).to_bits();
        let evict = match self.order.first() {
            Some((worst_bits, Reverse(worst_url)))
                if (bits, Reverse(url.as_str())) > (*worst_bits, Reverse(worst_url.as_str())) =>
            {
                self.order.pop_first()
            }
            _ => None,
        };
        self.others += 1;
        match evict {
            Some((_, Reverse(worst))) => {
                if let Some((b, r)) = self.kept.remove(&worst) {
                    self.other.0 += b;
                    self.other.1 += r;
                }
                self.order.insert(rank(bytes, &url));
                self.kept.insert(url, (bytes, requests));
            }
            None => {
                self.other.0 += bytes;
                self.other.1 += requests;
            }
        }
    }

    /// URLs kept now.
    pub fn len(&self) -> usize {
        self.kept.len()
    }

    /// Whether nothing was kept.
    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }

    /// The samples of app `app`: the kept URLs by bytes descending, then `__other__` if any URL
    /// was folded into it.
    pub fn samples(self, app: &str) -> Vec<Sample> {
        let mut samples = Vec::with_capacity(2 * (self.kept.len() + 1));
        for (_, Reverse(url)) in self.order.iter().rev() {
            let (bytes, requests) = self.kept[url];
            samples.push(Sample::new(VideoMonthToDateBytes, bytes).label("app", app).label("url", url.as_str()));
            samples.push(Sample::new(VideoMonthToDateRequests, requests).label("app", app).label("url", url.as_str()));
        }
        if self.others > 0 {
            samples.push(Sample::new(VideoMonthToDateBytes, self.other.0).label("app", app).label("url", OTHER_URLS));
            samples
                .push(Sample::new(VideoMonthToDateRequests, self.other.1).label("app", app).label("url", OTHER_URLS));
        }
        samples
    }
}

/// Normalizes one app's `video.usage` entries (one page, or all of them): [`TopUrls`] in one go.
pub fn video(app: &str, entries: &[VideoEntry<'_>], top_n: usize) -> Result<Vec<Sample>, PollError> {
    let mut top = TopUrls::new(top_n);
    top.add_page(entries)?;
    Ok(top.samples(app))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::scaleengine::wire::Text;

    fn row(name: &str, cells: &[f64]) -> Row<'static> {
        Row { name: name.to_owned().into(), cells: cells.iter().map(|v| Num::Value(*v)).collect() }
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
        let (samples, unmapped) = summary(&table).unwrap();
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
        let s = billing(&table).unwrap();
        assert_eq!(value(&s, BillingMonthToDateUsage, Some(("item", "edge_bandwidth"))), Some(100.0));
        assert_eq!(value(&s, BillingMonthToDateCostUsd, Some(("item", "edge_bandwidth"))), Some(5.0));
        assert_eq!(value(&s, BillingEstimatedMonthUsage, Some(("item", "edge_bandwidth"))), Some(300.0));
        assert_eq!(value(&s, BillingEstimatedMonthCostUsd, Some(("item", "edge_bandwidth"))), Some(15.0));
        assert_eq!(value(&s, BillingMonthToDateSpendUsd, None), Some(42.5));
        assert_eq!(value(&s, BillingEstimatedMonthSpendUsd, None), Some(120.0));
        assert_eq!(s.len(), 7, "six figures and the currency");
        assert_eq!(s.last(), Some(&crate::currency::marker("USD")), "ScaleEngine bills in US dollars");
    }

    #[test]
    fn disk_takes_the_newest_complete_day_per_user() {
        let d = |day, user: &str, bytes| DiskDay { day, user: user.into(), bytes: Num::Value(bytes) };
        let days = [d(10, "a", 1.0), d(11, "a", 2.0), d(12, "a", 3.0), d(11, "", 50.0), d(12, "b", 7.0)];
        let s = disk(&days, 12).unwrap();
        assert_eq!(value(&s, StorageBytes, Some(("user", "a"))), Some(2.0));
        assert_eq!(value(&s, StorageSampleTimestampSeconds, Some(("user", "a"))), Some(12.0 * 86_400.0));
        assert_eq!(value(&s, StorageBytes, Some(("user", "b"))), Some(7.0), "only today's row: use it");
        assert_eq!(value(&s, StorageBytes, Some(("user", ALL_USERS))), None);
        let s = disk(&[d(11, "", 50.0)], 12).unwrap();
        assert_eq!(value(&s, StorageBytes, Some(("user", ALL_USERS))), Some(50.0));
    }

    #[test]
    fn video_keeps_top_n_and_sums_the_rest() {
        let e = |url: &'static str, bytes, requests| VideoEntry {
            url: Text(Some(url.into())),
            bytes: Num::Value(bytes),
            requests: Num::Value(requests),
        };
        let entries = [e("a", 10.0, 1.0), e("b", 30.0, 1.0), e("a", 25.0, 2.0), e("c", 5.0, 4.0), e("d", 1.0, 1.0)];
        let s = video("app1", &entries, 2).unwrap();
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
    fn the_fold_keeps_the_top_n_across_pages_with_bounded_memory() {
        let e = |url: String, bytes: f64| VideoEntry {
            url: Text(Some(url.into())),
            bytes: Num::Value(bytes),
            requests: Num::Value(1.0),
        };
        // 50 pages of 100 distinct URLs; URL i has i bytes. Kept: the three largest.
        let mut top = TopUrls::new(3);
        let mut total = 0.0;
        for page in 0..50 {
            let entries: Vec<_> = (0..100).map(|i| page * 100 + i).map(|i| e(format!("u{i}"), i as f64)).collect();
            total += entries.iter().map(|x| x.bytes.get().unwrap()).sum::<f64>();
            top.add_page(&entries).unwrap();
            assert!(top.len() <= 3, "memory holds N URLs, not pages");
        }
        let s = top.samples("a");
        let urls: Vec<&str> =
            s.iter().filter(|x| x.family == VideoMonthToDateBytes).map(|x| x.labels[1].1.as_str()).collect();
        assert_eq!(urls, ["u4999", "u4998", "u4997", OTHER_URLS]);
        let sum: f64 = s.iter().filter(|x| x.family == VideoMonthToDateBytes).map(|x| x.value).sum();
        assert_eq!(sum, total, "no byte lost or counted twice");
        assert_eq!(value(&s, VideoMonthToDateRequests, Some(("url", OTHER_URLS))), Some(4997.0));
        // Ties break by URL, the same way every poll: equal bytes keep the smaller URL.
        let mut top = TopUrls::new(1);
        top.add_page(&[e("b".into(), 5.0)]).unwrap();
        top.add_page(&[e("a".into(), 5.0), e("c".into(), 5.0)]).unwrap();
        assert_eq!(top.samples("x")[0].labels[1].1, "a");
        // A URL already kept grows in place across pages.
        let mut top = TopUrls::new(2);
        top.add_page(&[e("a".into(), 1.0), e("b".into(), 2.0)]).unwrap();
        top.add_page(&[e("a".into(), 5.0), e("c".into(), 3.0)]).unwrap();
        let s = top.samples("x");
        assert_eq!(value(&s, VideoMonthToDateBytes, Some(("url", "a"))), Some(6.0));
        assert_eq!(value(&s, VideoMonthToDateBytes, Some(("url", "c"))), Some(3.0));
        assert_eq!(value(&s, VideoMonthToDateBytes, Some(("url", OTHER_URLS))), Some(2.0));
    }

    #[test]
    fn answers_that_are_not_data_are_errors() {
        let t = |rows: Vec<Row<'static>>| Table { cols: vec![], rows };
        let nan = Row { name: "Edge Bandwidth:".into(), cells: vec![Num::NonFinite] };
        let none = |name: &'static str| Row { name: name.into(), cells: vec![Num::Missing] };
        for (table, needle) in [
            (t(vec![nan.clone(), row("CDN Bandwidth:", &[1.0])]), "not a finite number"),
            (t(vec![none("Edge Bandwidth:"), none("CDN Bandwidth:")]), "not one number"),
            (t(vec![row("Edge Bandwidth:", &[1.0]), row("edge bandwidth", &[2.0])]), "twice"),
            (t(vec![row("Odd Thing:", &[1.0]), row("Odd  Thing", &[2.0])]), "twice"),
            (t(vec![row("Edge Requests:", &[-1.0])]), "negative"),
            (t(vec![row("PHP CPU Hours:", &[-0.5])]), "negative"),
        ] {
            let e = summary(&table).unwrap_err();
            assert_eq!(e.reason, crate::job::Reason::Parse);
            assert!(e.message.contains(needle), "{needle}: {}", e.message);
        }
        assert_eq!(summary(&t(vec![])).unwrap().0.len(), 0, "an empty table is an empty month");
        // Billing: money may be negative (credits), usage may not.
        let credit = t(vec![row("Credit:", &[0.0, -25.0, 0.0, -25.0]), row("Totals:", &[0.0, -25.0, 0.0, -25.0])]);
        let s = billing(&credit).unwrap();
        assert_eq!(value(&s, BillingMonthToDateSpendUsd, None), Some(-25.0));
        for (table, needle) in [
            (t(vec![row("Edge Bandwidth:", &[-1.0, 0.0, 0.0, 0.0])]), "negative"),
            (t(vec![row("Edge Bandwidth:", &[1.0, 0.0, -3.0, 0.0])]), "negative"),
            (t(vec![row("A:", &[1.0]), row("A:", &[1.0])]), "twice"),
            (t(vec![row("Totals:", &[1.0]), row("Totals", &[1.0])]), "twice"),
            (t(vec![Row { name: "A:".into(), cells: vec![Num::Value(1.0), Num::NonFinite] }]), "finite"),
        ] {
            let e = billing(&table).unwrap_err();
            assert!(e.message.contains(needle), "{needle}: {}", e.message);
        }
        // Disk and video.
        let d = |user: &str, bytes| DiskDay { day: 10, user: user.into(), bytes };
        assert!(disk(&[d("a", Num::Value(-1.0))], 12).unwrap_err().message.contains("negative"));
        assert!(disk(&[d("a", Num::NonFinite)], 12).unwrap_err().message.contains("finite"));
        assert!(disk(&[d("a", Num::Value(1.0)), d("a", Num::Value(2.0))], 12).unwrap_err().message.contains("twice"));
        let v = |bytes, requests| VideoEntry { url: Text(Some("u".into())), bytes, requests };
        assert!(video("a", &[v(Num::Value(-1.0), Num::Missing)], 5).unwrap_err().message.contains("negative"));
        assert!(video("a", &[v(Num::Value(1.0), Num::NonFinite)], 5).unwrap_err().message.contains("finite"));
        assert!(video("a", &[v(Num::Missing, Num::Missing)], 5).unwrap_err().message.contains("not one number"));
    }

    #[test]
    fn row_text_becomes_bounded_inert_labels() {
        let long = format!("Evil\u{1b}[2J{}:", "x".repeat(5000));
        let (s, unmapped) = summary(&Table { cols: vec![], rows: vec![row(&long, &[1.0])] }).unwrap();
        assert!(s[0].labels[0].1.len() <= crate::text::LABEL_BYTES);
        assert!(unmapped[0].len() <= crate::text::LABEL_BYTES && !unmapped[0].contains('\u{1b}'));
    }

    #[test]
    fn slugs() {
        assert_eq!(slug("Origin I/O Transactions:"), "origin_i_o_transactions");
        assert_eq!(slug("  Totals: "), "totals");
        assert_eq!(slug(":::"), "");
    }
}
