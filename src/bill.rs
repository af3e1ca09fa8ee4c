//! What a bill is made of, as the FOCUS export reads it and the providers describe it: the
//! families of a bill, and a provider's [`Profile`] (its name, the zone of its months, the units
//! of its billed quantities). A leaf, so that providers and the store can name it without
//! importing the export.

use crate::families::FamilyId;

/// What the FOCUS export needs to know of a provider beyond its figures.
#[derive(Debug, Clone, Copy)]
pub struct Profile {
    /// The provider as a person names it: ProviderName, InvoiceIssuerName, PublisherName.
    pub name: &'static str,
    /// Seconds east of UTC of the zone the account's months are billed in.
    pub utc_offset: i64,
    /// The unit of `cdn_billing_month_to_date_usage` for an item (its labels), in FOCUS's unit
    /// format (`GB`, `GB-Months`, `Requests`), where the provider's figure has a known one.
    pub unit: fn(&[(&'static str, String)]) -> Option<&'static str>,
}

/// The `item` label among `labels` (empty if none).
pub fn item_of<'a>(labels: &'a [(&'static str, String)]) -> &'a str {
    labels.iter().find(|(k, _)| *k == "item").map_or("", |(_, v)| v.as_str())
}

impl Profile {
    /// A provider whose months are UTC and whose billing usage has no known unit.
    pub const fn plain(name: &'static str) -> Self {
        Profile { name, utc_offset: 0, unit: no_unit }
    }
}

fn no_unit(_: &[(&'static str, String)]) -> Option<&'static str> {
    None
}

/// Whether the FOCUS export reads a family (the store keeps these from each poll).
pub fn is_bill_family(f: FamilyId) -> bool {
    matches!(
        f,
        FamilyId::BillingMonthToDateCostUsd
            | FamilyId::BillingMonthToDateUsage
            | FamilyId::BillingMonthToDateSpendUsd
            | FamilyId::BillingLastMonthCostUsd
            | FamilyId::BillingLastMonthSpendUsd
            | FamilyId::BillingCurrencyInfo
    )
}

/// The unit of a charge billed per month (a contract's fee), in FOCUS's unit format.
pub const MONTHS: &str = "Months";
