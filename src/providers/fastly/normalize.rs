//! Parsed Fastly answers turned into checked figures and samples: invoice totals and line
//! items (USD only, bounded, duplicates summed), and stats buckets (aligned, inside the window
//! asked for, non-negative, once each).

use std::collections::BTreeMap;

use crate::families::FamilyId;
use crate::job::{PollError, Reason, Sample};
use crate::providers::common::wire::{Capped, Num, Text};
use crate::text;
use crate::timeutil;

use super::wire::{Invoice, LineItem, MtdInvoice, Stats};

/// The currency the billing families are in.
pub const USD: &str = "USD";

/// One stats bucket, checked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Unix time of the bucket's start.
    pub start: i64,
    /// Bytes delivered (`bandwidth`).
    pub bytes: f64,
    /// Requests (`requests`).
    pub requests: f64,
}

/// A Fastly service id as the exporter accepts it (letters, digits, `-`, `_`; at most 64 bytes).
pub fn is_service_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= super::config::MAX_SERVICE_ID_BYTES
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
}

pub use crate::text::slug;

fn amount(n: Num, what: &str) -> Result<f64, PollError> {
    match n {
        Num::Value(v) => Ok(v),
        Num::NonFinite => Err(PollError::parse(format!("{what} is not a finite number: not data"))),
        Num::Missing => Err(PollError::parse(format!("{what} is missing or not a number: not data"))),
    }
}

fn count(n: Num, what: &str) -> Result<f64, PollError> {
    match amount(n, what)? {
        v if v >= 0.0 => Ok(v),
        v => Err(PollError::parse(format!("{what} is negative ({v}): not data"))),
    }
}

/// The labels of one line item: `item` (the description, slugged), `product`, `usage_type` and
/// `area` (Fastly's `region`), each made inert and cut to a label's length.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ItemLabels {
    /// The description, slugged.
    pub item: String,
    /// `product_name`.
    pub product: String,
    /// `usage_type`.
    pub usage_type: String,
    /// `region`.
    pub area: String,
}

/// Line items as (labels, USD): at most `max` items, every amount a finite number, items with
/// the same labels summed (so that the items still add up to the total).
pub fn line_items(
    items: Option<Capped<LineItem<'_>>>,
    max: usize,
    what: &str,
) -> Result<Vec<(ItemLabels, f64)>, PollError> {
    let items = items.map(|Capped(v)| v).unwrap_or_default();
    if items.len() > max {
        return Err(PollError::parse(format!(
            "{what} has {} line items, more than max_line_items = {max}: refused. If that is real, raise \
             `max_line_items` in the account's [[fastly]] table",
            items.len()
        )));
    }
    let label = |t: &Text<'_>| text::label(t.get().unwrap_or_default().trim());
    let mut merged: BTreeMap<ItemLabels, f64> = BTreeMap::new();
    for li in &items {
        let name = li.description.get().unwrap_or_default();
        let item = match slug(name) {
            s if s.is_empty() => "unnamed".to_owned(),
            s => s,
        };
        let value = amount(li.amount, &format!("{what} line item {:?} amount", text::label(name)))?;
        let key = ItemLabels {
            item,
            product: label(&li.product_name),
            usage_type: label(&li.usage_type),
            area: label(&li.region),
        };
        *merged.entry(key).or_insert(0.0) += value;
    }
    Ok(merged.into_iter().collect())
}

/// Cost samples of `family` for `items`.
pub fn cost_samples(family: FamilyId, items: &[(ItemLabels, f64)]) -> Vec<Sample> {
    items
        .iter()
        .map(|(l, v)| {
            Sample::new(family, *v)
                .label("item", l.item.clone())
                .label("product", l.product.clone())
                .label("usage_type", l.usage_type.clone())
                .label("area", l.area.clone())
        })
        .collect()
}

/// The month-to-date invoice as its total and items, checked against the current UTC month
/// (`today`, a day number): a billing period that starts in another month is refused.
pub fn month_to_date(
    mtd: MtdInvoice<'_>,
    max_items: usize,
    today: i64,
) -> Result<(f64, Vec<(ItemLabels, f64)>), PollError> {
    let total = amount(mtd.monthly_transaction_amount, "month-to-date invoice monthly_transaction_amount")?;
    let start = mtd.billing_start_date.get().and_then(timeutil::parse_ymd);
    if let Some(start) = start.filter(|s| timeutil::month_start(*s) != timeutil::month_start(today)) {
        return Err(PollError::new(
            Reason::Provider,
            format!(
                "the month-to-date invoice covers the month of {}, not the current one ({}); the next poll asks again",
                timeutil::format_ymd(timeutil::month_start(start)),
                timeutil::format_ymd(timeutil::month_start(today)),
            ),
        ));
    }
    let items = line_items(mtd.transaction_line_items, max_items, "month-to-date invoice")?;
    Ok((total, items))
}

/// An end-of-month invoice, checked and owned.
#[derive(Debug, Clone, PartialEq)]
pub struct Bill {
    /// The first day (day number) of its month.
    pub month: i64,
    /// `invoice_posted_on`, as sent (ISO 8601 sorts as text).
    pub posted: String,
    /// `currency_code`, upper case (`USD` when absent: the field is documented, never seen missing).
    pub currency: String,
    /// The total.
    pub total: f64,
    /// The line items.
    pub items: Vec<(ItemLabels, f64)>,
}

/// Checks one end-of-month invoice.
pub fn bill(inv: Invoice<'_>, max_items: usize) -> Result<Bill, PollError> {
    let id = text::label(inv.invoice_id.get().unwrap_or_default());
    let Some(start) = inv.billing_start_date.get().and_then(timeutil::parse_ymd) else {
        return Err(PollError::parse(format!(
            "invoice {id:?} has no readable billing_start_date ({:?}): not data",
            text::label(inv.billing_start_date.get().unwrap_or_default())
        )));
    };
    let currency = inv.currency_code.get().map(|c| c.trim().to_ascii_uppercase()).filter(|c| !c.is_empty());
    let total = amount(inv.monthly_transaction_amount, &format!("invoice {id:?} monthly_transaction_amount"))?;
    Ok(Bill {
        month: timeutil::month_start(start),
        posted: text::label(inv.invoice_posted_on.get().unwrap_or_default()),
        currency: text::label(&currency.unwrap_or_else(|| USD.to_owned())),
        total,
        items: line_items(inv.transaction_line_items, max_items, &format!("invoice {id:?}"))?,
    })
}

/// The bill of the month starting on day `month` among `bills`: the one posted last.
pub fn bill_of(bills: &[Bill], month: i64) -> Option<&Bill> {
    bills.iter().filter(|b| b.month == month).max_by(|a, b| a.posted.cmp(&b.posted))
}

/// A bill in another currency than US dollars is refused: the billing families are in USD.
pub fn check_usd(bill: &Bill) -> Result<(), PollError> {
    if bill.currency == USD {
        return Ok(());
    }
    Err(PollError::new(
        Reason::Provider,
        format!(
            "the invoice for {} is in {}, not US dollars: the billing families are in USD, so the account's spend \
             is not exported",
            &timeutil::format_ymd(bill.month)[..7],
            bill.currency
        ),
    ))
}

/// The samples of last month's bill.
pub fn last_month_samples(bill: &Bill) -> Vec<Sample> {
    let mut out = vec![Sample::new(FamilyId::BillingLastMonthSpendUsd, bill.total)];
    out.extend(cost_samples(FamilyId::BillingLastMonthCostUsd, &bill.items));
    out
}

/// The samples of a month's spend to date.
pub fn month_to_date_samples(total: f64, items: &[(ItemLabels, f64)]) -> Vec<Sample> {
    let mut out = vec![Sample::new(FamilyId::BillingMonthToDateSpendUsd, total)];
    out.extend(cost_samples(FamilyId::BillingMonthToDateCostUsd, items));
    out
}

/// The buckets of a stats answer for the services `asked`, each list by start: only buckets
/// starting in `[from, to)` (Fastly may add the one starting at `to`); services not asked for
/// are left out. A failed envelope is a provider error; a bucket off the `step` grid, twice,
/// or with a count that is missing, negative or not finite is not data.
pub fn stats_points(
    stats: Stats<'_>,
    from: i64,
    to: i64,
    step: i64,
    asked: &[String],
    area: &str,
) -> Result<Vec<(String, Vec<Point>)>, PollError> {
    let status = stats.status.get().map(str::trim).unwrap_or("success");
    if !status.eq_ignore_ascii_case("success") {
        let msg = stats.msg.get().unwrap_or("no message");
        return Err(PollError::new(
            Reason::Provider,
            format!("stats answer says {:?}: {}", text::label(status), text::message(msg)),
        ));
    }
    let Some(data) = stats.data else {
        return Err(PollError::parse("stats answer has no \"data\""));
    };
    let mut out: Vec<(String, Vec<Point>)> = asked.iter().map(|s| (s.clone(), Vec::new())).collect();
    for (service, buckets) in data.0 {
        let Some((_, points)) = out.iter_mut().find(|(s, _)| *s == service) else { continue };
        for b in buckets {
            let what = |field: &str| format!("stats bucket of {service} ({area}) {field}");
            let start = match b.start_time {
                Num::Value(v) if v.fract() == 0.0 && v.abs() < 1e12 => v as i64,
                _ => return Err(PollError::parse(format!("{} is not a Unix time: not data", what("start_time")))),
            };
            if start.rem_euclid(step) != 0 {
                return Err(PollError::parse(format!(
                    "{} {start} is not on the {step}-second UTC grid: not data",
                    what("start_time")
                )));
            }
            if start < from || start >= to {
                continue;
            }
            let bytes = count(b.bandwidth, &what("bandwidth"))?;
            let requests = count(b.requests, &what("requests"))?;
            if points.iter().any(|p| p.start == start) {
                return Err(PollError::parse(format!("{} {start} comes twice: not data", what("start_time"))));
            }
            points.push(Point { start, bytes, requests });
        }
        points.sort_by_key(|p| p.start);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::common::wire::{ListLimit, parse_capped};
    use crate::providers::fastly::wire::parse_stats;

    const LIMIT: ListLimit = ListLimit { max: 100, items: "entries", key: "k" };

    fn stats(body: &str, step: i64) -> Result<Vec<(String, Vec<Point>)>, PollError> {
        let s = parse_stats(body.as_bytes(), LIMIT, 10, "k")?;
        stats_points(s, 0, 10 * step, step, &["A".into(), "B".into()], "usa")
    }

    #[test]
    fn stats_buckets_are_checked() {
        let ok = stats(
            r#"{"status":"success","data":{"A":[{"start_time":7200,"bandwidth":10,"requests":2},{"start_time":0,"bandwidth":"5","requests":1},{"start_time":36000,"bandwidth":9,"requests":9}],"C":[{"start_time":0,"bandwidth":1,"requests":1}]}}"#,
            3600,
        )
        .unwrap();
        assert_eq!(ok[0].0, "A");
        assert_eq!(
            ok[0].1,
            [Point { start: 0, bytes: 5.0, requests: 1.0 }, Point { start: 7200, bytes: 10.0, requests: 2.0 }]
        );
        assert_eq!(ok[1], ("B".to_owned(), vec![]), "absent service: no traffic; C not asked: ignored");
        for (body, needle) in [
            (r#"{"status":"error","msg":"bad from","data":null}"#, "bad from"),
            (r#"{"status":"success"}"#, "no \"data\""),
            (r#"{"data":{"A":[{"start_time":60,"bandwidth":1,"requests":1}]}}"#, "grid"),
            (r#"{"data":{"A":[{"start_time":"x","bandwidth":1,"requests":1}]}}"#, "Unix time"),
            (r#"{"data":{"A":[{"start_time":0,"bandwidth":-1,"requests":1}]}}"#, "negative"),
            (r#"{"data":{"A":[{"start_time":0,"bandwidth":"NaN","requests":1}]}}"#, "finite"),
            (r#"{"data":{"A":[{"start_time":0,"bandwidth":1}]}}"#, "requests is missing"),
            (
                r#"{"data":{"A":[{"start_time":0,"bandwidth":1,"requests":1},{"start_time":0,"bandwidth":1,"requests":1}]}}"#,
                "twice",
            ),
        ] {
            let err = stats(body, 3600).unwrap_err();
            assert!(err.message.contains(needle), "{body}: {err}");
        }
    }

    #[test]
    fn invoices_are_checked_and_items_merged() {
        let body = br#"{"monthly_transaction_amount":"100.05","billing_start_date":"2026-12-01T00:00:00Z","transaction_line_items":[
            {"description":"North America Bandwidth","amount":60,"product_name":"Full-Site Delivery","usage_type":"bandwidth","region":"North America"},
            {"description":"North America Bandwidth","amount":0.05,"product_name":"Full-Site Delivery","usage_type":"bandwidth","region":"North America"},
            {"description":"Requests\n{x}","amount":"40","region":"Europe"}]}"#;
        let today = timeutil::days_from_civil(2026, 12, 9);
        let mtd: MtdInvoice<'_> = parse_capped(body, LIMIT, "x").unwrap();
        let (total, items) = month_to_date(mtd.clone(), 10, today).unwrap();
        assert_eq!(total, 100.05);
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].0.item, "north_america_bandwidth");
        assert_eq!(items[0].0.area, "North America");
        assert!((items[0].1 - 60.05).abs() < 1e-9);
        assert_eq!(items[1].0.item, "requests_x");
        let err = month_to_date(mtd.clone(), 1, today).unwrap_err();
        assert!(err.message.contains("max_line_items"), "{err}");
        let err = month_to_date(mtd, 10, today + 31).unwrap_err();
        assert_eq!(err.reason, Reason::Provider);
        assert!(err.message.contains("not the current one"), "{err}");
        let bad: MtdInvoice<'_> = parse_capped(br#"{"monthly_transaction_amount":"soon"}"#, LIMIT, "x").unwrap();
        assert!(month_to_date(bad, 10, today).unwrap_err().message.contains("not a number"));
        let inv: Invoice<'_> = parse_capped(
            br#"{"invoice_id":"1","billing_start_date":"2026-11-01T00:00:00Z","currency_code":"eur","monthly_transaction_amount":5}"#,
            LIMIT,
            "x",
        )
        .unwrap();
        let b = bill(inv, 10).unwrap();
        assert_eq!((b.month, b.currency.as_str(), b.total), (timeutil::days_from_civil(2026, 11, 1), "EUR", 5.0));
        let err = check_usd(&b).unwrap_err();
        assert!(err.message.contains("in EUR, not US dollars"), "{err}");
    }
}
