//! CDNetworks spend, priced from the account's contract: CDNetworks' APIs report usage only, so
//! an account with a `[cdnetworks.pricing]` table gets its spend to date and month-end estimate
//! (and last month's bill) computed from what its traffic and storage jobs already hold, with
//! the formulas of docs/metrics.md. No request of its own: the `pricing` job reads the
//! [`Ledger`] the other jobs of the account publish into.
//!
//! GB = 10^9 bytes, Mbps = 10^6 bit/s, as CDN bills count them.

use serde_json::Value;

use crate::families::FamilyId;
use crate::job::Sample;
use crate::validate::{Validator, join, kind};

pub use ledger::{Ledger, StorageMonth, TrafficMonth};
pub use poller::Pricer;

mod ledger;
mod poller;

/// Bytes in the GB of a bill.
pub const BYTES_PER_GB: f64 = 1e9;
/// Bytes per second in the Mbps of a bill.
pub const BYTES_PER_SEC_PER_MBPS: f64 = 1e6 / 8.0;
/// The most traffic tiers a pricing table may list (16).
pub const MAX_TIERS: usize = 16;

/// One graduated traffic tier: the GB of the month up to `up_to_gb` (from the previous tier's
/// bound) cost `price` each; the last tier has no bound.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tier {
    /// `up_to_gb`: the tier's upper bound in GB of the month, `None` for the open last tier.
    pub up_to_gb: Option<f64>,
    /// `price` (or `usd`, its older name): the price of one GB in this tier, in the contract's
    /// currency.
    pub price: f64,
}

/// What the bandwidth price applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BandwidthBilling {
    /// `p95`: the month's 95th percentile of the account's summed 5-minute slices.
    P95,
    /// `average_daily_peak`: the mean of each day's highest summed 5-minute slice.
    AverageDailyPeak,
}

/// Which figure of the month's daily storage is billed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageBasis {
    /// `peak`: the highest day.
    Peak,
    /// `average`: the mean of the days.
    Average,
}

/// The bandwidth component.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BandwidthPrice {
    /// `bandwidth_billing` (default `p95`).
    pub billing: BandwidthBilling,
    /// `bandwidth_per_mbps`: the price of one Mbps (of the commit, or of all of it).
    pub per_mbps: f64,
    /// `overage_per_mbps` (default `bandwidth_per_mbps`): the price of a Mbps past the commit.
    pub overage_per_mbps: Option<f64>,
}

/// The storage component.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StoragePrice {
    /// `storage_per_gb_month`.
    pub per_gb_month: f64,
    /// `storage_basis` (default `peak`).
    pub basis: StorageBasis,
}

/// An account's `[cdnetworks.pricing]` table; at least one component is present. Prices are in
/// the contract's `currency`; the keys' older names (`traffic_usd_per_gb`, …) say US dollars and
/// are read for a contract in USD.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Pricing {
    /// `currency` (default `"USD"`): the ISO 4217 code of the contract's prices.
    pub currency: String,
    /// `traffic_per_gb`: graduated tiers (one number is one open tier).
    pub traffic: Option<Vec<Tier>>,
    /// `bandwidth_*`.
    pub bandwidth: Option<BandwidthPrice>,
    /// `storage_*`.
    pub storage: Option<StoragePrice>,
    /// `monthly_fee`.
    pub monthly_fee: Option<f64>,
}

/// Each price key: its name, and the older name that says US dollars.
const KEYS: [(&str, &str); 5] = [
    ("traffic_per_gb", "traffic_usd_per_gb"),
    ("bandwidth_per_mbps", "bandwidth_usd_per_mbps"),
    ("overage_per_mbps", "overage_usd_per_mbps"),
    ("storage_per_gb_month", "storage_usd_per_gb_month"),
    ("monthly_fee", "monthly_fee_usd"),
];

/// Takes the price key `name` or its older name `old` (one of [`KEYS`]) out of `t`, with the path
/// of whichever was given. The older name says US dollars: with another `currency` it is refused.
fn price_key<'a>(
    v: &mut Validator,
    t: &mut crate::validate::Table<'a>,
    (name, old): (&str, &str),
    currency: &str,
) -> Option<(String, &'a Value)> {
    let new = t.take(name);
    let older = t.take(old);
    match (new, older) {
        (Some(_), Some(_)) => {
            v.problem(t.key_path(old), format!("and {name} are the same price under two names. Keep {name}."));
            None
        }
        (None, Some(_)) if currency != "USD" => {
            v.problem(
                t.key_path(old),
                format!("says US dollars, and the contract's currency is {currency}. Rename it to {name}."),
            );
            None
        }
        (Some(value), None) => Some((t.key_path(name), value)),
        (None, Some(value)) => Some((t.key_path(old), value)),
        (None, None) => None,
    }
}

/// A price (or a tier's bound, `what`): a finite number of at least 0.
fn price_at(v: &mut Validator, path: &str, value: &Value, what: &str) -> Option<f64> {
    match value.as_f64() {
        Some(n) if n.is_finite() && n >= 0.0 => Some(n),
        _ => {
            v.problem(path, format!("expected a {what} of at least 0, found {}.", crate::validate::show(value)));
            None
        }
    }
}

impl Pricing {
    /// Whether a component needs the traffic job (traffic or bandwidth).
    pub fn needs_traffic(&self) -> bool {
        self.traffic.is_some() || self.bandwidth.is_some()
    }
}

/// Validates `pricing` of the account at `path`. `commit_mbps` is the account's
/// `bandwidth_commit_mbps`, `traffic` its `traffic` switch: both bear on what the table may say.
pub fn parse(
    v: &mut Validator,
    path: &str,
    value: &Value,
    commit_mbps: Option<f64>,
    traffic: Option<bool>,
) -> Option<Pricing> {
    let before = v.count();
    let mut t = v.table(join(path, "pricing"), value)?;
    let currency_path = t.key_path("currency");
    let currency = v.string(&mut t, "currency").unwrap_or_else(|| "USD".into());
    if !crate::currency::is_code(&currency) {
        v.problem(
            &currency_path,
            format!(
                "{} is not a currency code. Use the ISO 4217 code of the contract's prices in capitals, e.g. \"EUR\".",
                crate::validate::quote(&currency)
            ),
        );
    }
    let [traffic_key, bandwidth_key, overage_key, storage_key, fee_key] = KEYS;
    let tiers = price_key(v, &mut t, traffic_key, &currency).and_then(|(p, value)| tiers(v, &p, value, &currency));
    let billing_path = t.key_path("bandwidth_billing");
    let billing = match v.string(&mut t, "bandwidth_billing").as_deref() {
        None => None,
        Some("p95") => Some(BandwidthBilling::P95),
        Some("average_daily_peak") => Some(BandwidthBilling::AverageDailyPeak),
        Some(other) => {
            v.problem(
                &billing_path,
                format!(
                    "{} is not a bandwidth billing. Use \"p95\" or \"average_daily_peak\".",
                    crate::validate::quote(other)
                ),
            );
            None
        }
    };
    let bandwidth_given = t.has(bandwidth_key.0) || t.has(bandwidth_key.1);
    let per_mbps =
        price_key(v, &mut t, bandwidth_key, &currency).and_then(|(p, value)| price_at(v, &p, value, "price"));
    let overage = price_key(v, &mut t, overage_key, &currency);
    let overage_path = overage.as_ref().map_or_else(|| t.key_path(overage_key.0), |(p, _)| p.clone());
    let overage = overage.and_then(|(p, value)| price_at(v, &p, value, "price"));
    let basis_path = t.key_path("storage_basis");
    let basis = match v.string(&mut t, "storage_basis").as_deref() {
        None => None,
        Some("peak") => Some(StorageBasis::Peak),
        Some("average") => Some(StorageBasis::Average),
        Some(other) => {
            v.problem(
                &basis_path,
                format!("{} is not a storage basis. Use \"peak\" or \"average\".", crate::validate::quote(other)),
            );
            None
        }
    };
    let storage_given = t.has(storage_key.0) || t.has(storage_key.1);
    let per_gb_month =
        price_key(v, &mut t, storage_key, &currency).and_then(|(p, value)| price_at(v, &p, value, "price"));
    let fee = price_key(v, &mut t, fee_key, &currency).and_then(|(p, value)| price_at(v, &p, value, "price"));
    let table_path = t.path.clone();
    v.unknown(t);
    if per_mbps.is_none() && !bandwidth_given {
        if billing.is_some() {
            v.problem(&billing_path, "has no price. Add bandwidth_per_mbps, or remove bandwidth_billing.");
        }
        if overage.is_some() {
            v.problem(&overage_path, "has no base price. Add bandwidth_per_mbps, or remove overage_per_mbps.");
        }
    }
    if overage.is_some() && commit_mbps.is_none() {
        v.problem(
            &overage_path,
            "applies past a commit, and the account has none. Set bandwidth_commit_mbps on the account, or remove overage_per_mbps.",
        );
    }
    if basis.is_some() && per_gb_month.is_none() && !storage_given {
        v.problem(&basis_path, "has no price. Add storage_per_gb_month, or remove storage_basis.");
    }
    let pricing = Pricing {
        currency,
        traffic: tiers,
        bandwidth: per_mbps.map(|per_mbps| BandwidthPrice {
            billing: billing.unwrap_or(BandwidthBilling::P95),
            per_mbps,
            overage_per_mbps: overage,
        }),
        storage: per_gb_month
            .map(|per_gb_month| StoragePrice { per_gb_month, basis: basis.unwrap_or(StorageBasis::Peak) }),
        monthly_fee: fee,
    };
    let empty = pricing.traffic.is_none()
        && pricing.bandwidth.is_none()
        && pricing.storage.is_none()
        && pricing.monthly_fee.is_none();
    if empty && v.count() == before {
        v.problem(
            &table_path,
            "has no price. Give at least one of traffic_per_gb, bandwidth_per_mbps, storage_per_gb_month, monthly_fee, or remove the table.",
        );
    }
    if pricing.needs_traffic() && traffic == Some(false) {
        v.problem(
            &table_path,
            "prices traffic or bandwidth, which the traffic job measures, and the account sets traffic = false. Set traffic = true, or price storage and the fee only.",
        );
    }
    (v.count() == before).then_some(pricing)
}

/// `traffic_per_gb`: one price, or tiers `[{ up_to_gb, price }, …, { price }]` (`usd`, the
/// older name of `price`, in a contract in USD).
fn tiers(v: &mut Validator, path: &str, value: &Value, currency: &str) -> Option<Vec<Tier>> {
    let price = |v: &mut Validator, path: &str, value: Option<&Value>, what: &str| {
        value.and_then(|x| price_at(v, path, x, what))
    };
    let items = match value {
        Value::Array(items) => items,
        Value::Number(_) => {
            return price(v, path, Some(value), "price").map(|price| vec![Tier { up_to_gb: None, price }]);
        }
        other => {
            v.problem(
                path,
                format!(
                    "expected a price per GB or a list of tiers, found {}. Write it as `traffic_per_gb = 0.04` or `traffic_per_gb = [{{ up_to_gb = 10000, price = 0.05 }}, {{ price = 0.03 }}]`.",
                    kind(other)
                ),
            );
            return None;
        }
    };
    if items.is_empty() || items.len() > MAX_TIERS {
        v.problem(path, format!("lists {} tiers; give 1 to {MAX_TIERS}, the last one without up_to_gb.", items.len()));
        return None;
    }
    let before = v.count();
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Some(mut t) = v.table(format!("{path}[{i}]"), item) else { continue };
        let bound_path = t.key_path("up_to_gb");
        let bound = t.take("up_to_gb");
        let (price_path, price_value) = match (t.take("price"), t.take("usd")) {
            (Some(_), Some(_)) => {
                v.problem(t.key_path("usd"), "and price are the same price under two names. Keep price.");
                (t.key_path("price"), None)
            }
            (None, Some(_)) if currency != "USD" => {
                v.problem(
                    t.key_path("usd"),
                    format!("says US dollars, and the contract's currency is {currency}. Rename it to price."),
                );
                (t.key_path("usd"), None)
            }
            (None, Some(x)) => (t.key_path("usd"), Some(x)),
            (x, None) => (t.key_path("price"), x),
        };
        v.unknown(t);
        let up_to_gb = price(v, &bound_path, bound, "number of GB");
        let last = i + 1 == items.len();
        match (bound.is_some(), last) {
            (true, true) => v.problem(
                &bound_path,
                "closes the last tier: past it no price would apply. Remove up_to_gb from the last tier.",
            ),
            (false, false) => v.problem(
                format!("{path}[{i}]"),
                "has no up_to_gb, and only the last tier may be open. Give it an up_to_gb above the tier before.",
            ),
            _ => {}
        }
        if let (Some(b), Some(prev)) = (up_to_gb, out.last().and_then(|t: &Tier| t.up_to_gb)) {
            if b <= prev {
                v.problem(
                    &bound_path,
                    format!(
                        "is {b}, not above the tier before ({prev}): tiers overlap or are out of order. List them by rising up_to_gb."
                    ),
                );
            }
        }
        if price_value.is_none() && !v.reported(&price_path) {
            v.problem(&price_path, "missing: every tier needs its price per GB, e.g. price = 0.05.");
        }
        if let Some(price) = price(v, &price_path, price_value, "price") {
            out.push(Tier { up_to_gb: up_to_gb.filter(|_| !last), price });
        }
    }
    (v.count() == before).then_some(out)
}

/// The price of `gb` GB on graduated `tiers`: each GB at the price of the tier it falls in.
pub fn tiered(gb: f64, tiers: &[Tier]) -> f64 {
    let mut charge = 0.0;
    let mut floor = 0.0;
    for t in tiers {
        let top = t.up_to_gb.unwrap_or(f64::INFINITY);
        if gb > floor {
            charge += (gb.min(top) - floor) * t.price;
        }
        floor = top;
    }
    charge
}

/// The month's bandwidth charge for a billed bandwidth of `mbps`:
/// `commit × price + max(0, mbps − commit) × overage` (no commit: `mbps × price`).
pub fn bandwidth_charge(mbps: f64, commit_mbps: Option<f64>, price: &BandwidthPrice) -> f64 {
    match commit_mbps {
        Some(c) => c * price.per_mbps + (mbps - c).max(0.0) * price.overage_per_mbps.unwrap_or(price.per_mbps),
        None => mbps * price.per_mbps,
    }
}

/// What a month's usage is, as the pricing reads it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Usage {
    /// Bytes of traffic, all the account's domains (for `traffic`).
    pub bytes: f64,
    /// The billed bandwidth in bytes per second (for `bandwidth`).
    pub bandwidth: f64,
    /// The billed storage in GB (for `storage`).
    pub storage_gb: f64,
}

/// One priced item.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Item {
    /// The `item` label: `traffic`, `bandwidth`, `storage`, `fee`.
    pub name: &'static str,
    /// Cost to date, in the contract's currency.
    pub to_date: f64,
    /// The month-end estimate, in the contract's currency.
    pub estimate: f64,
    /// The billed quantity to date and at month end, in the item's billing unit ([`item_unit`]:
    /// GB, Mbps-months, GB-months, months).
    pub usage: Option<(f64, f64)>,
}

/// Prices `usage` at the elapsed share `s` (0 to 1) of the month, with the formulas of
/// docs/metrics.md; one item per component of `pricing`, in the order traffic, bandwidth,
/// storage, fee.
pub fn quote(pricing: &Pricing, commit_mbps: Option<f64>, usage: &Usage, s: f64) -> Vec<Item> {
    let mut items = Vec::with_capacity(4);
    if let Some(tiers) = &pricing.traffic {
        let gb = usage.bytes / BYTES_PER_GB;
        // The month's volume at this pace; at the very start of a month nothing is known yet.
        let month_gb = if s > 0.0 { gb / s } else { gb };
        items.push(Item {
            name: "traffic",
            to_date: tiered(gb, tiers),
            estimate: tiered(month_gb, tiers),
            usage: Some((gb, month_gb)),
        });
    }
    if let Some(price) = &pricing.bandwidth {
        let mbps = usage.bandwidth / BYTES_PER_SEC_PER_MBPS;
        let charge = bandwidth_charge(mbps, commit_mbps, price);
        // Billed: the month's Mbps (at least the commit), accrued over the month as Mbps-months.
        let billed = commit_mbps.map_or(mbps, |c| mbps.max(c));
        items.push(Item {
            name: "bandwidth",
            to_date: charge * s,
            estimate: charge,
            usage: Some((billed * s, billed)),
        });
    }
    if let Some(price) = &pricing.storage {
        let charge = usage.storage_gb * price.per_gb_month;
        items.push(Item {
            name: "storage",
            to_date: charge * s,
            estimate: charge,
            usage: Some((usage.storage_gb * s, usage.storage_gb)),
        });
    }
    if let Some(fee) = pricing.monthly_fee {
        items.push(Item { name: "fee", to_date: fee * s, estimate: fee, usage: Some((s, 1.0)) });
    }
    items
}

/// The samples of this month's `items`, their totals, and the billed bandwidth (bytes per
/// second) when the contract prices bandwidth; amounts in `currency`.
pub fn month_samples(items: &[Item], billed_bandwidth: Option<f64>, currency: &str) -> Vec<Sample> {
    let mut out = Vec::with_capacity(items.len() * 4 + 3);
    for i in items {
        out.push(Sample::new(FamilyId::BillingMonthToDateCostUsd, i.to_date).label("item", i.name));
        out.push(Sample::new(FamilyId::BillingEstimatedMonthCostUsd, i.estimate).label("item", i.name));
        if let Some((to_date, month)) = i.usage {
            out.push(Sample::new(FamilyId::BillingMonthToDateUsage, to_date).label("item", i.name));
            out.push(Sample::new(FamilyId::BillingEstimatedMonthUsage, month).label("item", i.name));
        }
    }
    out.push(Sample::new(FamilyId::BillingMonthToDateSpendUsd, items.iter().map(|i| i.to_date).sum()));
    out.push(Sample::new(FamilyId::BillingEstimatedMonthSpendUsd, items.iter().map(|i| i.estimate).sum()));
    if let Some(b) = billed_bandwidth {
        out.push(Sample::new(FamilyId::BillingBandwidthBytesPerSecond, b));
    }
    out.push(crate::currency::marker(currency));
    out
}

/// When the account's month began: its first day (a day number in the account's zone) at
/// midnight there, `offset` seconds east of UTC. The forecast rules read it (docs/alerts.md).
pub fn month_start_sample(first_day: i64, offset: i64) -> Sample {
    Sample::new(FamilyId::BillingMonthStartTimestampSeconds, (first_day * 86_400 - offset) as f64)
}

/// The samples of last month's bill: the items of a whole month (`s = 1`) and their total.
pub fn last_month_samples(items: &[Item], currency: &str) -> Vec<Sample> {
    let mut out: Vec<Sample> = items
        .iter()
        .map(|i| Sample::new(FamilyId::BillingLastMonthCostUsd, i.estimate).label("item", i.name))
        .collect();
    out.push(Sample::new(FamilyId::BillingLastMonthSpendUsd, items.iter().map(|i| i.estimate).sum()));
    out.push(crate::currency::marker(currency));
    out
}

/// The unit of an item's billed quantity (`cdn_billing_month_to_date_usage{item}`), in FOCUS's
/// unit format.
pub fn item_unit(item: &str) -> Option<&'static str> {
    match item {
        "traffic" => Some("GB"),
        "bandwidth" => Some("Mbps-Months"),
        "storage" => Some("GB-Months"),
        "fee" => Some(crate::bill::MONTHS),
        _ => None,
    }
}

/// The share of the local month that starts on day `first_day` (in a zone `offset` seconds
/// east of UTC) gone at `now`: from 0 at its first second to 1 at its end.
pub fn elapsed_share(now: i64, first_day: i64, offset: i64) -> f64 {
    let (y, m, _) = crate::timeutil::civil_from_days(first_day);
    let len = f64::from(crate::timeutil::days_in_month(y, m)) * 86_400.0;
    let start = first_day * 86_400 - offset;
    ((now - start) as f64 / len).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests;
