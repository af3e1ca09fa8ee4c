//! Cost Explorer and CloudWatch answers made samples of the shared families: spend and cost per
//! usage type (the `item` label, bounded by `max_items`, the rest summed into `other`) in the
//! currency Cost Explorer names (converted downstream, see `currency.rs`); the provider's
//! month-end estimate with its interval; bytes and requests per distribution.

use std::collections::BTreeMap;

use crate::families::FamilyId;
use crate::job::{PollError, Sample};

use super::wire::{self, CostAndUsage, CostForecast};

/// The item that sums the usage types past `max_items`.
pub const OTHER: &str = "other";

/// The cost and usage of a period, summed per usage type over the pages of an answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Costs {
    /// Per usage type: cost, and usage in the type's unit when Cost Explorer gave one.
    pub items: BTreeMap<String, (f64, Option<f64>)>,
    /// The ungrouped total, when the answer was not grouped.
    pub total: f64,
    /// The currency of the amounts (`USD`), if any amount named one.
    pub currency: Option<String>,
    /// Whether any result was `Estimated`.
    pub estimated: bool,
}

impl Costs {
    /// Adds one page of a `GetCostAndUsage` answer asked for `metric` (and `UsageQuantity`).
    pub fn add(&mut self, page: &CostAndUsage, metric: &str) -> Result<(), PollError> {
        page.results.0.iter().try_for_each(|r| self.add_result(r, metric))
    }

    /// Adds one period's result.
    pub fn add_result(&mut self, result: &wire::ResultByTime, metric: &str) -> Result<(), PollError> {
        {
            self.estimated |= result.estimated;
            if let Some(v) = result.total.get(metric) {
                self.total += self.amount(v, metric, "Total")?;
            }
            for group in &result.groups.0 {
                let Some(key) = group.keys.0.first() else { continue };
                let item = crate::text::label(key.trim());
                let cost = match group.metrics.get(metric) {
                    Some(v) => self.amount(v, metric, &item)?,
                    None => 0.0,
                };
                let usage = match group.metrics.get("UsageQuantity").and_then(|v| v.amount.as_deref()) {
                    Some(a) => Some(wire::decimal(a, &format!("UsageQuantity of {item}"))?),
                    None => None,
                };
                if self.items.len() >= wire::MAX_LIST && !self.items.contains_key(&item) {
                    return Err(PollError::parse("GetCostAndUsage answer has too many usage types: refused"));
                }
                let entry = self.items.entry(item).or_insert((0.0, None));
                entry.0 += cost;
                if let Some(u) = usage {
                    entry.1 = Some(entry.1.unwrap_or(0.0) + u);
                }
            }
        }
        Ok(())
    }

    /// An amount of money, its unit checked against the others'.
    fn amount(&mut self, v: &wire::MetricValue, metric: &str, of: &str) -> Result<f64, PollError> {
        let amount = wire::decimal(v.amount.as_deref().unwrap_or_default(), &format!("{metric} of {of}"))?;
        let unit = v.unit.as_deref().unwrap_or("USD").trim();
        if unit.len() != 3 || !unit.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(PollError::parse(format!(
                "{metric} of {of} is in {}, which is not a currency code",
                crate::text::label(unit)
            )));
        }
        match &self.currency {
            Some(c) if c != unit => Err(PollError::parse(format!(
                "Cost Explorer gave amounts in both {c} and {unit}: refused (one account, one currency)"
            ))),
            Some(_) => Ok(amount),
            None => {
                self.currency = Some(unit.to_owned());
                Ok(amount)
            }
        }
    }

    /// The sum of every item (or the ungrouped total).
    pub fn sum(&self) -> f64 {
        self.total + self.items.values().map(|(c, _)| c).sum::<f64>()
    }

    /// The items, at most `max_items` of the dearest, the rest summed into [`OTHER`] (cost
    /// only: their units differ).
    pub fn capped(&self, max_items: usize) -> Vec<(String, f64, Option<f64>)> {
        let mut items: Vec<(String, f64, Option<f64>)> =
            self.items.iter().map(|(k, (c, u))| (k.clone(), *c, *u)).collect();
        if items.len() <= max_items {
            return items;
        }
        items.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let rest: f64 = items[max_items - 1..].iter().map(|i| i.1).sum();
        items.truncate(max_items - 1);
        items.push((OTHER.to_owned(), rest, None));
        items.sort_by(|a, b| a.0.cmp(&b.0));
        items
    }

    /// The currency marker of these amounts (`USD` when no amount named one).
    pub fn marker(&self) -> Sample {
        crate::currency::marker(self.currency.as_deref().unwrap_or("USD"))
    }
}

/// The samples of the month so far.
pub fn month_to_date(costs: &Costs, max_items: usize) -> Vec<Sample> {
    let mut out = vec![costs.marker(), Sample::new(FamilyId::BillingMonthToDateSpendUsd, costs.sum())];
    for (item, cost, usage) in costs.capped(max_items) {
        out.push(Sample::new(FamilyId::BillingMonthToDateCostUsd, cost).label("item", item.clone()));
        if let Some(u) = usage {
            out.push(Sample::new(FamilyId::BillingMonthToDateUsage, u).label("item", item));
        }
    }
    out
}

/// The samples of last month's bill.
pub fn last_month(costs: &Costs, max_items: usize) -> Vec<Sample> {
    let mut out = vec![costs.marker(), Sample::new(FamilyId::BillingLastMonthSpendUsd, costs.sum())];
    for (item, cost, _) in costs.capped(max_items) {
        out.push(Sample::new(FamilyId::BillingLastMonthCostUsd, cost).label("item", item));
    }
    out
}

/// The provider's month-end estimate: what was spent before today plus Cost Explorer's
/// forecast of the rest of the month, with the forecast's interval.
pub fn estimate(before_today: &Costs, forecast: &CostForecast) -> Result<Vec<Sample>, PollError> {
    let mut mean = 0.0;
    let (mut low, mut high) = (Some(0.0), Some(0.0));
    for r in &forecast.results.0 {
        mean += wire::decimal(r.mean.as_deref().unwrap_or_default(), "GetCostForecast MeanValue")?;
        let bound = |v: &Option<String>, what: &str| v.as_deref().map(|s| wire::decimal(s, what)).transpose();
        match bound(&r.lower, "PredictionIntervalLowerBound")? {
            Some(l) => low = low.map(|s| s + l),
            None => low = None,
        }
        match bound(&r.upper, "PredictionIntervalUpperBound")? {
            Some(u) => high = high.map(|s| s + u),
            None => high = None,
        }
    }
    if forecast.results.0.is_empty() {
        let total = forecast
            .total
            .as_ref()
            .ok_or_else(|| PollError::parse("GetCostForecast answer has neither Total nor ForecastResultsByTime"))?;
        mean = wire::decimal(total.amount.as_deref().unwrap_or_default(), "GetCostForecast Total")?;
        (low, high) = (None, None);
    }
    let unit = forecast.total.as_ref().and_then(|t| t.unit.clone()).unwrap_or_else(|| "USD".to_owned());
    if let Some(c) = &before_today.currency
        && *c != unit
    {
        return Err(PollError::parse(format!("the forecast is in {unit} and the spend in {c}: refused")));
    }
    let spent = before_today.sum();
    let mut out =
        vec![crate::currency::marker(&unit), Sample::new(FamilyId::BillingEstimatedMonthSpendUsd, spent + mean)];
    if let (Some(l), Some(h)) = (low, high) {
        out.push(Sample::new(FamilyId::BillingEstimatedMonthSpendLowUsd, spent + l.min(mean)));
        out.push(Sample::new(FamilyId::BillingEstimatedMonthSpendHighUsd, spent + h.max(mean)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(json: &str) -> CostAndUsage {
        wire::parse(json.as_bytes(), "t").unwrap()
    }

    const GROUPED: &str = r#"{"GroupDefinitions":[{"Type":"DIMENSION","Key":"USAGE_TYPE"}],
 "ResultsByTime":[{"TimePeriod":{"Start":"2026-11-01","End":"2026-12-01"},"Total":{},"Estimated":true,
   "Groups":[{"Keys":["EU-DataTransfer-Out-Bytes"],"Metrics":{"UnblendedCost":{"Amount":"83.1204","Unit":"USD"},"UsageQuantity":{"Amount":"977.89","Unit":"GB"}}},
             {"Keys":["US-Requests-Tier2-HTTPS"],"Metrics":{"UnblendedCost":{"Amount":"12.6","Unit":"USD"},"UsageQuantity":{"Amount":"12600000","Unit":"Requests"}}},
             {"Keys":["Invalidations"],"Metrics":{"UnblendedCost":{"Amount":"0.0000000282","Unit":"USD"}}}]}],
 "DimensionValueAttributes":[]}"#;

    #[test]
    fn groups_become_items_and_their_sum_the_spend() {
        let mut c = Costs::default();
        c.add(&page(GROUPED), "UnblendedCost").unwrap();
        assert!(c.estimated);
        let s = month_to_date(&c, 300);
        let get = |f: FamilyId, item: &str| {
            s.iter().find(|x| x.family == f && x.labels.iter().any(|(_, v)| v == item)).map(|x| x.value)
        };
        assert!((s[1].value - 95.7204000282).abs() < 1e-9, "{}", s[1].value);
        assert_eq!(get(FamilyId::BillingMonthToDateCostUsd, "EU-DataTransfer-Out-Bytes"), Some(83.1204));
        assert_eq!(get(FamilyId::BillingMonthToDateUsage, "US-Requests-Tier2-HTTPS"), Some(12_600_000.0));
        assert_eq!(get(FamilyId::BillingMonthToDateUsage, "Invalidations"), None);
        assert_eq!(s[0], crate::currency::marker("USD"));
        // Two pages add up; past max_items the cheapest are one `other` item.
        c.add(&page(GROUPED), "UnblendedCost").unwrap();
        let capped = c.capped(2);
        assert_eq!(capped.iter().map(|i| i.0.as_str()).collect::<Vec<_>>(), ["EU-DataTransfer-Out-Bytes", "other"]);
        assert!((capped.iter().map(|i| i.1).sum::<f64>() - c.sum()).abs() < 1e-9, "nothing lost in the cap");
    }

    #[test]
    fn hostile_amounts_and_mixed_currencies_fail_the_answer() {
        for bad in ["NaN", "1e999", "12,5", ""] {
            let mut c = Costs::default();
            let json = GROUPED.replace("83.1204", bad);
            assert!(c.add(&page(&json), "UnblendedCost").is_err(), "{bad}");
        }
        let mut c = Costs::default();
        let json = GROUPED.replacen("\"Unit\":\"USD\"", "\"Unit\":\"EUR\"", 1);
        assert!(c.add(&page(&json), "UnblendedCost").unwrap_err().message.contains("both"));
        let mut c = Costs::default();
        let json = GROUPED.replace("\"Unit\":\"USD\"", "\"Unit\":\"CNY\"");
        c.add(&page(&json), "UnblendedCost").unwrap();
        assert_eq!(month_to_date(&c, 10)[0], crate::currency::marker("CNY"));
    }

    #[test]
    fn the_estimate_adds_the_forecast_to_what_was_spent() {
        let mut before = Costs::default();
        before.add(&page(r#"{"ResultsByTime":[{"TimePeriod":{"Start":"2026-12-01","End":"2026-12-04"},"Total":{"UnblendedCost":{"Amount":"100","Unit":"USD"}},"Groups":[],"Estimated":true}]}"#), "UnblendedCost").unwrap();
        let f: CostForecast = wire::parse(br#"{"Total":{"Amount":"400","Unit":"USD"},"ForecastResultsByTime":[{"TimePeriod":{"Start":"2026-12-04","End":"2027-01-01"},"MeanValue":"400","PredictionIntervalLowerBound":"350.5","PredictionIntervalUpperBound":"460"}]}"#, "t").unwrap();
        let s = estimate(&before, &f).unwrap();
        let v = |fam| s.iter().find(|x| x.family == fam).map(|x| x.value);
        assert_eq!(v(FamilyId::BillingEstimatedMonthSpendUsd), Some(500.0));
        assert_eq!(v(FamilyId::BillingEstimatedMonthSpendLowUsd), Some(450.5));
        assert_eq!(v(FamilyId::BillingEstimatedMonthSpendHighUsd), Some(560.0));
        let f: CostForecast = wire::parse(br#"{"Total":{"Amount":"400","Unit":"USD"}}"#, "t").unwrap();
        let s = estimate(&before, &f).unwrap();
        assert_eq!(s.len(), 2, "no interval when none is given: {s:?}");
        let f: CostForecast = wire::parse(br#"{"ForecastResultsByTime":[{"MeanValue":"Infinity"}]}"#, "t").unwrap();
        assert!(estimate(&before, &f).is_err());
    }
}
