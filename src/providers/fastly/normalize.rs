//! Parsed Fastly answers turned into checked figures and samples: invoice totals and line
//! items (bounded, duplicates summed, the currency known or the poll failed), and usage per
//! service and area (non-negative, finite, once each; delivery and Compute requests apart).

use std::collections::BTreeMap;

use crate::families::FamilyId;
use crate::job::{PollError, Reason, Sample};
use crate::providers::common::wire::{Capped, Num, Text};
use crate::text;
use crate::timeutil;

use super::wire::{Invoice, LineItem, MtdInvoice, UsageAnswer};

/// One service's usage in one area, checked: bytes, delivery requests, Compute requests.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Usage {
    /// Bytes delivered (`bandwidth`).
    pub bytes: f64,
    /// Requests of delivery services (`requests`).
    pub requests: f64,
    /// Requests of Compute services (`compute_requests`).
    pub compute: f64,
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, o: Usage) {
        self.bytes += o.bytes;
        self.requests += o.requests;
        self.compute += o.compute;
    }
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

/// One line item's figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Line {
    /// `amount`, in the invoice's currency.
    pub amount: f64,
    /// `units`: "total number of units of usage", in the unit its `usage_type` names; `None`
    /// when the line gives none.
    pub units: Option<f64>,
}

/// Line items as (labels, figures): at most `max` items, every amount a finite number, items
/// with the same labels summed (so that the items still add up to the total; their units too,
/// when every one of them gives units).
pub fn line_items(
    items: Option<Capped<LineItem<'_>>>,
    max: usize,
    what: &str,
) -> Result<Vec<(ItemLabels, Line)>, PollError> {
    let items = items.map(|Capped(v)| v).unwrap_or_default();
    if items.len() > max {
        return Err(PollError::parse(format!(
            "{what} has {} line items, more than max_line_items = {max}: refused. If that is real, raise \
             `max_line_items` in the account's [[fastly]] table",
            items.len()
        )));
    }
    let label = |t: &Text<'_>| text::label(t.get().unwrap_or_default().trim());
    let mut merged: BTreeMap<ItemLabels, Line> = BTreeMap::new();
    for li in &items {
        let name = li.description.get().unwrap_or_default();
        let item = match slug(name) {
            s if s.is_empty() => "unnamed".to_owned(),
            s => s,
        };
        let value = amount(li.amount, &format!("{what} line item {:?} amount", text::label(name)))?;
        let units = match li.units {
            Num::Missing => None,
            n => Some(amount(n, &format!("{what} line item {:?} units", text::label(name)))?),
        };
        let key = ItemLabels {
            item,
            product: label(&li.product_name),
            usage_type: label(&li.usage_type),
            area: label(&li.region),
        };
        let line = merged.entry(key).or_insert(Line { amount: 0.0, units: Some(0.0) });
        line.amount += value;
        line.units = line.units.zip(units).map(|(a, b)| a + b);
    }
    Ok(merged.into_iter().collect())
}

impl ItemLabels {
    fn sample(&self, family: FamilyId, value: f64) -> Sample {
        Sample::new(family, value)
            .label("item", self.item.clone())
            .label("product", self.product.clone())
            .label("usage_type", self.usage_type.clone())
            .label("area", self.area.clone())
    }
}

/// Cost samples of `family` for `items`.
pub fn cost_samples(family: FamilyId, items: &[(ItemLabels, Line)]) -> Vec<Sample> {
    items.iter().map(|(l, v)| l.sample(family, v.amount)).collect()
}

/// The unit of a line item's `units`, in FOCUS's unit format, from its `usage_type` ("the unit
/// of measure (e.g., requests or bandwidth)", fastly-go's Invoicelineitems): requests are
/// counted one by one, bandwidth in GB (Fastly's price list bills it per GB: a guess, listed in
/// docs/providers/fastly.md); `None` for any other.
pub fn usage_unit(labels: &[(&'static str, String)]) -> Option<&'static str> {
    match labels.iter().find(|(k, _)| *k == "usage_type").map(|(_, v)| v.as_str()) {
        Some("requests") => Some("Requests"),
        Some("bandwidth") => Some("GB"),
        _ => None,
    }
}

/// The month-to-date invoice as its total and items, checked against the current UTC month
/// (`today`, a day number): a billing period that starts in another month is refused.
pub fn month_to_date(
    mtd: MtdInvoice<'_>,
    max_items: usize,
    today: i64,
) -> Result<(f64, Vec<(ItemLabels, Line)>), PollError> {
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
    /// `currency_code`, upper case; `None` when the invoice names none.
    pub currency: Option<String>,
    /// The total.
    pub total: f64,
    /// The line items.
    pub items: Vec<(ItemLabels, Line)>,
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
        currency: currency.map(|c| text::label(&c)),
        total,
        items: line_items(inv.transaction_line_items, max_items, &format!("invoice {id:?}"))?,
    })
}

/// The bill of the month starting on day `month` among `bills`: the one posted last.
pub fn bill_of(bills: &[Bill], month: i64) -> Option<&Bill> {
    bills.iter().filter(|b| b.month == month).max_by(|a, b| a.posted.cmp(&b.posted))
}

/// The newest bill among `bills` (latest month, then latest posted).
pub fn newest(bills: &[Bill]) -> Option<&Bill> {
    bills.iter().max_by(|a, b| (a.month, &a.posted).cmp(&(b.month, &b.posted)))
}

/// The currency `what` is in: the one the answer names, else the account's configured
/// `currency` (key `key`), else it is not known and the poll fails saying which key to set. A
/// named currency that is not an ISO 4217 code is not data.
pub fn currency_of(named: Option<&str>, configured: Option<&str>, what: &str, key: &str) -> Result<String, PollError> {
    if let Some(c) = named.filter(|c| !crate::currency::is_code(c)) {
        return Err(PollError::parse(format!(
            "{what} names the currency {:?}, which is not an ISO 4217 code: not data",
            text::label(c)
        )));
    }
    match named.or(configured) {
        Some(c) => Ok(c.to_owned()),
        None => Err(PollError::new(
            Reason::Config,
            format!(
                "{what} names no currency, so the amount cannot be exported: set `{key}` to the currency the \
                 account is billed in (e.g. \"USD\")"
            ),
        )),
    }
}

/// The currency of `bill`: the one it names, else the configured one.
pub fn bill_currency(bill: &Bill, configured: Option<&str>, key: &str) -> Result<String, PollError> {
    let what = format!("the invoice for {}", &timeutil::format_ymd(bill.month)[..7]);
    currency_of(bill.currency.as_deref(), configured, &what, key)
}

/// The samples of last month's bill, in `currency` (converted to US dollars by
/// [`crate::currency::convert`]).
pub fn last_month_samples(bill: &Bill, currency: &str) -> Vec<Sample> {
    let mut out = vec![Sample::new(FamilyId::BillingLastMonthSpendUsd, bill.total)];
    out.extend(cost_samples(FamilyId::BillingLastMonthCostUsd, &bill.items));
    out.push(crate::currency::marker(currency));
    out
}

/// The samples of a month's spend to date, in `currency`.
pub fn month_to_date_samples(total: f64, items: &[(ItemLabels, Line)], currency: &str) -> Vec<Sample> {
    let mut out = vec![Sample::new(FamilyId::BillingMonthToDateSpendUsd, total)];
    out.extend(cost_samples(FamilyId::BillingMonthToDateCostUsd, items));
    // The units used, where the line gives them: `cdn_billing_month_to_date_usage`.
    out.extend(items.iter().filter_map(|(l, v)| v.units.map(|u| l.sample(FamilyId::BillingMonthToDateUsage, u))));
    out.push(crate::currency::marker(currency));
    out
}

/// Usage per service and area slot: the slots are the listed `areas` in order then `other`
/// (what they leave out), or one slot `all` when no areas are listed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UsageTable {
    /// (service id, usage per slot), in the order services were first named.
    pub services: Vec<(String, Vec<Usage>)>,
}

impl UsageTable {
    /// A table with `services` at zero in every slot of `areas`.
    pub fn new(services: &[String], areas: &[String]) -> Self {
        let slots = slots(areas);
        UsageTable { services: services.iter().map(|s| (s.clone(), vec![Usage::default(); slots])).collect() }
    }

    /// Adds a usage answer: each service's figures go to the slot of its region. With
    /// `open` true, services the answer names that the table lacks are added (at most `max`
    /// services in all); otherwise they are left out.
    pub fn add(
        &mut self,
        answer: UsageAnswer<'_>,
        areas: &[String],
        open: bool,
        max: usize,
        key: &str,
    ) -> Result<(), PollError> {
        let status = answer.status.get().map(str::trim).unwrap_or("success");
        if !status.eq_ignore_ascii_case("success") {
            let msg = answer.msg.get().unwrap_or("no message");
            return Err(PollError::new(
                Reason::Provider,
                format!("usage answer says {:?}: {}", text::label(status), text::message(msg)),
            ));
        }
        let Some(data) = answer.data else {
            return Err(PollError::parse("usage answer has no \"data\""));
        };
        let mut seen: Vec<&str> = Vec::new();
        for (region, services) in &data.0 {
            if seen.contains(&region.as_str()) {
                return Err(PollError::parse(format!(
                    "usage answer names region {:?} twice: not data",
                    text::label(region)
                )));
            }
            seen.push(region);
            // Unlisted regions (and every region when none are listed) go to the last slot.
            let slot = areas.iter().position(|a| a == region).unwrap_or(slots(areas) - 1);
            for (service, entry) in services {
                let what =
                    |field: &str| format!("usage of {} in {} {field}", text::label(service), text::label(region));
                let usage = Usage {
                    bytes: count_or_zero(entry.bandwidth, &what("bandwidth"))?,
                    requests: count_or_zero(entry.requests, &what("requests"))?,
                    compute: count_or_zero(entry.compute_requests, &what("compute_requests"))?,
                };
                let row = match self.services.iter().position(|(s, _)| s == service) {
                    Some(i) => i,
                    None if !open => continue,
                    None => {
                        if !is_service_id(service) {
                            return Err(PollError::parse(format!(
                                "usage answer names the service {:?}, which is not a service id: not data",
                                text::label(service)
                            )));
                        }
                        if self.services.len() >= max {
                            return Err(PollError::parse(format!(
                                "the usage answer names more than {max} services: refused. Raise `{key}`, or list \
                                 the services to watch in `services`"
                            )));
                        }
                        self.services.push((service.clone(), vec![Usage::default(); slots(areas)]));
                        self.services.len() - 1
                    }
                };
                self.services[row].1[slot] += usage;
            }
        }
        Ok(())
    }
}

/// The slots of a [`UsageTable`] row: each listed area and `other`, or `all` alone.
pub fn slots(areas: &[String]) -> usize {
    if areas.is_empty() { 1 } else { areas.len() + 1 }
}

/// A count that may be absent (a region where a field was never sent): 0 then.
fn count_or_zero(n: Num, what: &str) -> Result<f64, PollError> {
    match n {
        Num::Missing => Ok(0.0),
        n => count(n, what),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::common::wire::{ListLimit, parse_capped};
    use crate::providers::fastly::wire::parse_usage;

    const LIMIT: ListLimit = ListLimit { max: 100, items: "entries", key: "k" };

    fn table(body: &str, services: &[&str], areas: &[&str], open: bool) -> Result<UsageTable, PollError> {
        let services: Vec<String> = services.iter().map(|s| s.to_string()).collect();
        let areas: Vec<String> = areas.iter().map(|s| s.to_string()).collect();
        let mut t = UsageTable::new(&services, &areas);
        t.add(parse_usage(body.as_bytes(), 10, "k")?, &areas, open, 3, "fastly[0].max_services")?;
        Ok(t)
    }

    fn u(bytes: f64, requests: f64, compute: f64) -> Usage {
        Usage { bytes, requests, compute }
    }

    #[test]
    fn usage_goes_to_its_area_and_compute_requests_stay_apart() {
        let body = r#"{"status":"success","data":{"usa":{"A":{"bandwidth":10,"requests":2,"compute_requests":0}},
            "europe":{"A":{"bandwidth":5,"requests":0,"compute_requests":7},"C":{"bandwidth":1,"requests":1}},
            "latam":{"A":{"bandwidth":"3","requests":1,"compute_requests":1}},"anzac":{}}}"#;
        let t = table(body, &["A", "B"], &["usa", "europe"], false).unwrap();
        assert_eq!(t.services.len(), 2, "C is not watched: left out");
        assert_eq!(t.services[0].1, [u(10.0, 2.0, 0.0), u(5.0, 0.0, 7.0), u(3.0, 1.0, 1.0)], "usa, europe, other");
        assert_eq!(t.services[1].1, [Usage::default(); 3], "B had no traffic: zero");
        let all = table(body, &["A"], &[], false).unwrap();
        assert_eq!(all.services[0].1, [u(18.0, 3.0, 8.0)], "no areas: one slot, every region");
        let open = table(body, &["A", "B"], &["usa"], true).unwrap();
        assert_eq!(open.services.iter().map(|(s, _)| s.as_str()).collect::<Vec<_>>(), ["A", "B", "C"]);
        assert_eq!(open.services[2].1, [Usage::default(), u(1.0, 1.0, 0.0)], "a service the list lacks is counted");
        let err = table(body, &["A", "B", "X"], &["usa"], true).unwrap_err();
        assert!(err.message.contains("more than 3 services") && err.message.contains("fastly[0].max_services"));
        for (body, needle) in [
            (r#"{"status":"error","msg":"bad from","data":null}"#, "bad from"),
            (r#"{"status":"success"}"#, "no \"data\""),
            (r#"{"data":{"usa":{"A":{"bandwidth":-1}}}}"#, "negative"),
            (r#"{"data":{"usa":{"A":{"bandwidth":1,"requests":"NaN"}}}}"#, "finite"),
            (r#"{"data":{"usa":{},"usa":{}}}"#, "twice"),
        ] {
            let err = table(body, &["A"], &["usa"], false).unwrap_err();
            assert!(err.message.contains(needle), "{body}: {err}");
        }
        let err = table(r#"{"data":{"usa":{"a b":{"bandwidth":1}}}}"#, &["A"], &["usa"], true).unwrap_err();
        assert!(err.message.contains("not a service id"), "{err}");
    }

    #[test]
    fn invoices_are_checked_and_items_merged() {
        let body = br#"{"monthly_transaction_amount":"100.05","billing_start_date":"2026-12-01T00:00:00Z","transaction_line_items":[
            {"description":"North America Bandwidth","amount":60,"units":500,"product_name":"Full-Site Delivery","usage_type":"bandwidth","region":"North America"},
            {"description":"North America Bandwidth","amount":0.05,"units":"1.5","product_name":"Full-Site Delivery","usage_type":"bandwidth","region":"North America"},
            {"description":"Requests\n{x}","amount":"40","region":"Europe"}]}"#;
        let today = timeutil::days_from_civil(2026, 12, 9);
        let mtd: MtdInvoice<'_> = parse_capped(body, LIMIT, "x").unwrap();
        let (total, items) = month_to_date(mtd.clone(), 10, today).unwrap();
        assert_eq!(total, 100.05);
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].0.item, "north_america_bandwidth");
        assert_eq!(items[0].0.area, "North America");
        assert!((items[0].1.amount - 60.05).abs() < 1e-9);
        assert_eq!(items[0].1.units, Some(501.5), "units summed too");
        assert_eq!(items[1].0.item, "requests_x");
        assert_eq!(items[1].1.units, None, "no units given: none");
        let samples = month_to_date_samples(total, &items, "USD");
        let used: Vec<&Sample> = samples.iter().filter(|s| s.family == FamilyId::BillingMonthToDateUsage).collect();
        assert_eq!(used.len(), 1, "usage only where the line gives units");
        assert_eq!(usage_unit(&used[0].labels), Some("GB"));
        // Units that are not a finite number are not data, as an amount would be.
        let hostile = br#"{"monthly_transaction_amount":"1","billing_start_date":"2026-12-01T00:00:00Z","transaction_line_items":[
            {"description":"x","amount":1,"units":"Infinity"}]}"#;
        let bad: MtdInvoice<'_> = parse_capped(hostile, LIMIT, "x").unwrap();
        let err = month_to_date(bad, 10, today).unwrap_err();
        assert_eq!(err.reason, Reason::Parse);
        assert!(err.message.contains("units"), "{err}");
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
        assert_eq!(
            (b.month, b.currency.as_deref(), b.total),
            (timeutil::days_from_civil(2026, 11, 1), Some("EUR"), 5.0)
        );
        assert_eq!(bill_currency(&b, Some("USD"), "k").as_deref(), Ok("EUR"), "the invoice's own currency wins");
        let nameless = Bill { currency: None, ..b.clone() };
        let err = bill_currency(&nameless, None, "fastly[0].currency").unwrap_err();
        assert_eq!(err.reason, Reason::Config);
        assert!(err.message.contains("names no currency") && err.message.contains("`fastly[0].currency`"), "{err}");
        assert_eq!(bill_currency(&nameless, Some("USD"), "k").as_deref(), Ok("USD"));
        let odd = Bill { currency: Some("EURO".into()), ..b };
        assert_eq!(bill_currency(&odd, Some("USD"), "k").unwrap_err().reason, Reason::Parse);
    }
}
