//! FOCUS 1.2 cost-and-usage rows: every account's bill, item by item, in the currency it is
//! billed in, for the FinOps tools that read the FinOps Foundation's FOCUS format.
//!
//! One builder ([`bill`]) turns what the providers' code already produces (the month-to-date
//! cost and usage per item, the total, the currency marker, each at the time it held) into rows:
//! the growth of each item between two of its points is one row, so daily points (CDNetworks'
//! days priced from the contract) give daily rows and a month's final figure gives one row for
//! the month. Where the items do not add up to the total, the rest is one `Adjustment` row, so
//! that the rows always sum to the bill. Where the figures come from: [`collect`] (the
//! `focus` command: history units for a past month, one poll of every job for the current one)
//! and the store (`GET /focus`). Which column holds what, and why: docs/focus.md.

pub mod collect;

pub use crate::bill::{MONTHS, Profile, is_bill_family, item_of};

use std::collections::BTreeMap;

use crate::families::FamilyId;
use crate::job::Sample;
use crate::timeutil::{civil_from_days, days_in_month, format_ymd};

/// FOCUS `ChargeCategory`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    /// Metered use.
    Usage,
    /// A tax the provider itemises.
    Tax,
    /// A negative amount: a credit.
    Credit,
    /// The bill's total less its items (unitemised charges, rounding).
    Adjustment,
}

impl Category {
    /// The FOCUS value.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Usage => "Usage",
            Category::Tax => "Tax",
            Category::Credit => "Credit",
            Category::Adjustment => "Adjustment",
        }
    }

    /// FOCUS `ChargeFrequency`.
    pub fn frequency(self) -> &'static str {
        match self {
            Category::Usage | Category::Tax => "Usage-Based",
            Category::Credit | Category::Adjustment => "One-Time",
        }
    }
}

/// One charge: one row.
#[derive(Debug, Clone, PartialEq)]
pub struct Charge {
    /// The exporter's `item` label (`x_ExporterItem`).
    pub item: String,
    /// `ChargeDescription`.
    pub description: String,
    /// `ChargeCategory`.
    pub category: Category,
    /// `ChargePeriodStart`, Unix seconds.
    pub start: i64,
    /// `ChargePeriodEnd`, Unix seconds (exclusive).
    pub end: i64,
    /// `BilledCost`, in the billing currency.
    pub cost: f64,
    /// `PricingQuantity` and `PricingUnit` (also `ConsumedQuantity` and `ConsumedUnit` for
    /// usage), where known.
    pub quantity: Option<(f64, &'static str)>,
    /// A charge that recurs each period (`ChargeFrequency` `Recurring`), not one of metered use.
    pub recurring: bool,
}

/// One account's bill for one month.
#[derive(Debug, Clone, PartialEq)]
pub struct Bill {
    /// The `provider` label.
    pub provider: &'static str,
    /// The `account` label.
    pub account: String,
    /// The provider's name.
    pub profile_name: &'static str,
    /// `BillingCurrency`.
    pub currency: String,
    /// `BillingPeriodStart`, Unix seconds.
    pub period_start: i64,
    /// `BillingPeriodEnd`, Unix seconds.
    pub period_end: i64,
    /// The rows.
    pub charges: Vec<Charge>,
    /// The bill's total as the provider or contract gives it, in the billing currency.
    pub total: f64,
}

/// The billing period of the month that starts on day `month` in a zone `offset` seconds east
/// of UTC: its first and last instants (the end exclusive), Unix seconds.
pub fn period(month: i64, offset: i64) -> (i64, i64) {
    let (y, m, _) = civil_from_days(month);
    let next = month + i64::from(days_in_month(y, m));
    (month * 86_400 - offset, next * 86_400 - offset)
}

/// A point of one of the month-to-date series, as the builder reads it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point<'a> {
    /// When the figure held, Unix seconds.
    pub at: i64,
    /// The sample, of a month-to-date family or the currency marker.
    pub sample: &'a Sample,
}

/// Why a bill could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BillError {
    /// Nothing of the month was seen.
    #[error("no billing figure of the month")]
    Empty,
    /// Amounts without a currency (a defect).
    #[error("the amounts name no currency")]
    NoCurrency,
}

/// The bill of one account for the month starting on day `month` (in the account's zone), from
/// `points` of `cdn_billing_month_to_date_cost_usd{item,…}`, `…_usage{item}`, `…_spend_usd`
/// and the currency marker, in the account's currency (unconverted). `now` ends a month still
/// under way.
pub fn bill(
    provider: &'static str,
    account: &str,
    profile: &Profile,
    month: i64,
    now: i64,
    points: &[Point<'_>],
) -> Result<Bill, BillError> {
    let (start, end) = period(month, profile.utc_offset);
    let inside: Vec<&Point<'_>> = points.iter().filter(|p| p.at > start && p.at <= end).collect();
    // A point at the month's last second (a whole month's figure) ends the month.
    let snap = |at: i64| if at >= end - 1 { end } else { at.min(now.max(start)) };
    let mut currency = None;
    let mut costs: BTreeMap<Labels, Vec<(i64, f64)>> = BTreeMap::new();
    let mut usage: BTreeMap<Labels, BTreeMap<i64, f64>> = BTreeMap::new();
    let mut total: Option<(i64, f64)> = None;
    for p in &inside {
        let s = p.sample;
        let at = snap(p.at);
        match s.family {
            FamilyId::BillingCurrencyInfo if currency.is_none() => {
                currency = label(s, "currency").map(str::to_owned);
            }
            FamilyId::BillingMonthToDateCostUsd => costs.entry(s.labels.clone()).or_default().push((at, s.value)),
            FamilyId::BillingMonthToDateUsage => {
                usage.entry(s.labels.clone()).or_default().insert(at, s.value);
            }
            FamilyId::BillingMonthToDateSpendUsd if total.is_none_or(|(t, _)| at >= t) => {
                total = Some((at, s.value));
            }
            _ => {}
        }
    }
    if costs.is_empty() && total.is_none() {
        return Err(BillError::Empty);
    }
    let currency = currency.ok_or(BillError::NoCurrency)?;
    let mut charges = Vec::new();
    for (labels, mut series) in costs {
        series.sort_by_key(|(at, _)| *at);
        series.dedup_by(|later, earlier| {
            let same = later.0 == earlier.0;
            if same {
                earlier.1 = later.1;
            }
            same
        });
        let item = item_of(&labels).to_owned();
        let unit = (profile.unit)(&labels);
        let used = usage.get(&labels);
        let (mut from, mut cost_before, mut used_before) = (start, 0.0, 0.0);
        for (at, cost) in series {
            let quantity_now = used.and_then(|u| u.get(&at)).copied();
            let cost_delta = cost - cost_before;
            let used_delta = quantity_now.map(|q| q - used_before);
            if cost_delta != 0.0 || used_delta.is_some_and(|q| q != 0.0) {
                charges.push(charge(&item, &labels, unit, from, at, cost_delta, used_delta));
            }
            from = at;
            cost_before = cost;
            if let Some(q) = quantity_now {
                used_before = q;
            }
        }
    }
    let items: f64 = charges.iter().map(|c| c.cost).sum();
    let (total_at, total) = total.unwrap_or((end.min(now.max(start)), items));
    let rest = total - items;
    if rest.abs() >= 0.005 {
        let item = if charges.is_empty() { "total" } else { "unitemised" };
        let description = if charges.is_empty() {
            format!("{} charges of the period (the provider gives the total only)", profile.name)
        } else {
            format!("{} charges of the period its items do not list (the total less the items)", profile.name)
        };
        let category = if charges.is_empty() && rest > 0.0 { Category::Usage } else { Category::Adjustment };
        charges.push(Charge {
            item: item.into(),
            description,
            category,
            start,
            end: total_at,
            cost: rest,
            quantity: None,
            recurring: false,
        });
    }
    // Usage with no quantity the provider gives (a total alone, an invoice line): FOCUS needs
    // one, and the charge's period in months is the one quantity known (docs/focus.md).
    for c in charges.iter_mut().filter(|c| c.category == Category::Usage && c.quantity.is_none()) {
        c.quantity = Some(((c.end - c.start) as f64 / (end - start) as f64, MONTHS));
    }
    charges.sort_by(|a, b| (a.start, a.end, &a.item).cmp(&(b.start, b.end, &b.item)));
    Ok(Bill {
        provider,
        account: account.to_owned(),
        profile_name: profile.name,
        currency,
        period_start: start,
        period_end: end,
        charges,
        total,
    })
}

/// A sample's labels beyond `provider` and `account`.
type Labels = Vec<(&'static str, String)>;

fn label<'a>(s: &'a Sample, name: &str) -> Option<&'a str> {
    s.labels.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
}

fn charge(
    item: &str,
    labels: &[(&'static str, String)],
    unit: Option<&'static str>,
    start: i64,
    end: i64,
    cost: f64,
    used: Option<f64>,
) -> Charge {
    let category = if cost < 0.0 {
        Category::Credit
    } else if item.contains("tax") {
        Category::Tax
    } else {
        Category::Usage
    };
    let others: Vec<&str> =
        labels.iter().filter(|(k, v)| *k != "item" && !v.is_empty()).map(|(_, v)| v.as_str()).collect();
    let description = if others.is_empty() { item.to_owned() } else { format!("{item} ({})", others.join(", ")) };
    let quantity = match category {
        Category::Usage => unit.zip(used).map(|(u, q)| (q, u)),
        _ => None,
    };
    // A charge per month (a contract's fee) recurs; FOCUS's Purchase would need an
    // EffectiveCost of 0, amortised into later usage, which a flat fee is not: it is the month's
    // use of the plan (docs/focus.md).
    let recurring = unit == Some(MONTHS) && category == Category::Usage;
    Charge { item: item.to_owned(), description, category, start, end, cost, quantity, recurring }
}

/// The columns written, in order: FOCUS 1.2's mandatory ones, the recommended ones some
/// mandatory rules need, and the exporter's own (`x_`).
pub const COLUMNS: &[&str] = &[
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargeFrequency",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "CommitmentDiscountStatus",
    "ConsumedQuantity",
    "ConsumedUnit",
    "ContractedCost",
    "EffectiveCost",
    "InvoiceId",
    "InvoiceIssuerName",
    "ListCost",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "ServiceCategory",
    "ServiceName",
    "ServiceSubcategory",
    "x_ExporterProvider",
    "x_ExporterItem",
];

/// `InvoiceId`: the exporter's id of the account's bill for the billing period,
/// `provider:account:YYYY-MM` (the month in the account's zone). Not the provider's invoice
/// number (no API of ours gives one we keep): a stable key that groups a bill's rows.
pub fn invoice_id(b: &Bill) -> String {
    let month = (b.period_start + 86_400 / 2).div_euclid(86_400) + 1;
    format!("{}:{}:{}", b.provider, b.account, &format_ymd(crate::timeutil::month_start(month))[..7])
}

/// An instant as FOCUS writes it: ISO 8601 in UTC, to the second.
pub fn datetime(unix: i64) -> String {
    let day = unix.div_euclid(86_400);
    let s = unix.rem_euclid(86_400);
    format!("{}T{:02}:{:02}:{:02}Z", format_ymd(day), s / 3600, s / 60 % 60, s % 60)
}

/// A decimal as FOCUS's type inference needs it: always a fractional part (`12.00`), at most
/// 10 decimals, no exponent, never `-0.00`.
pub fn decimal(v: f64) -> String {
    let v = if v.is_finite() { v } else { 0.0 };
    let mut s = format!("{:.10}", v);
    while s.ends_with('0') && s.len() - s.find('.').unwrap_or(s.len()) > 3 {
        s.pop();
    }
    if s.trim_start_matches('-').trim_start_matches(['0', '.']).is_empty() {
        return "0.00".into();
    }
    s
}

/// A CSV field: quoted when it holds a comma, a quote or a line break; empty stays empty (FOCUS
/// reads an empty unquoted field as null).
fn field(out: &mut String, s: &str) {
    if s.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&s.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(s);
    }
}

/// The CSV of `bills`: a header, then one line per charge.
pub fn csv(bills: &[Bill]) -> String {
    let mut out = COLUMNS.join(",");
    out.push('\n');
    for b in bills {
        let service = format!("{} CDN", b.profile_name);
        for c in &b.charges {
            let cost = decimal(c.cost);
            let (quantity, unit) = c.quantity.map_or((String::new(), ""), |(q, u)| (decimal(q), u));
            let consumed = c.category == Category::Usage && c.quantity.is_some();
            let frequency = if c.recurring { "Recurring" } else { c.category.frequency() };
            let invoice = invoice_id(b);
            let values: [&str; 29] = [
                &cost,
                &format!("{}:{}", b.provider, b.account),
                &b.account,
                &b.currency,
                &datetime(b.period_end),
                &datetime(b.period_start),
                c.category.as_str(),
                "",
                &c.description,
                frequency,
                &datetime(c.end),
                &datetime(c.start),
                "",
                if consumed { &quantity } else { "" },
                if consumed { unit } else { "" },
                &cost,
                &cost,
                &invoice,
                b.profile_name,
                &cost,
                &quantity,
                unit,
                b.profile_name,
                b.profile_name,
                "Networking",
                &service,
                "Content Delivery",
                b.provider,
                &c.item,
            ];
            for (i, v) in values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                field(&mut out, v);
            }
            out.push('\n');
        }
    }
    out
}

/// `YYYY-MM` as the first day of that month, if it is one.
pub fn parse_month(s: &str) -> Option<i64> {
    let (y, m) = s.split_once('-')?;
    if y.len() != 4 || m.len() != 2 {
        return None;
    }
    let (y, m): (i64, u32) = (y.parse().ok()?, m.parse().ok()?);
    ((1970..=9999).contains(&y) && (1..=12).contains(&m)).then(|| crate::timeutil::days_from_civil(y, m, 1))
}

#[cfg(test)]
mod tests;
