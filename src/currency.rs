//! Currencies: every amount is known in the currency its account is billed in, and the `_usd`
//! families hold US dollars, converted here, in one place, at the rates of `[exchange_rates]`.
//!
//! A provider's job says what its amounts are in with a [`marker`] sample among them (the
//! currency from the provider's answer where the API says it, from the configuration where it
//! does not). Between the poll and the store, [`convert`] multiplies every amount
//! ([`is_money`]) by the currency's rate and takes the marker out: the account's currency and
//! rate are served once per account (`cdn_billing_currency_info`, `cdn_billing_exchange_rate`),
//! not once per job. An amount in a currency with no rate is not exported in dollars: the job
//! keeps its other samples (usage), and fails with reason `config`, naming the key to add.
//! Backfill converts the same way ([`convert`] on each batch). Budgets are configured and
//! compared in US dollars (`budget_usd`), so that one alert rule and one dashboard hold for
//! every account.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::families::FamilyId;
use crate::job::{PollError, Reason, Sample};
use crate::validate::{Validator, escape_cut, kind};

/// The most entries `[exchange_rates]` may have (ISO 4217 lists about 180 currencies).
pub const MAX_RATES: usize = 256;
/// The smallest rate accepted (US dollars per unit); below it a rate is surely a typo.
pub const MIN_RATE: f64 = 1e-9;
/// The largest rate accepted (US dollars per unit).
pub const MAX_RATE: f64 = 1e6;

/// The key of `[exchange_rates]` the currency `code` needs, for messages.
pub fn rate_key(code: &str) -> String {
    format!("exchange_rates.{code}")
}

/// Whether `s` is written as an ISO 4217 code: three ASCII capital letters.
pub fn is_code(s: &str) -> bool {
    s.len() == 3 && s.bytes().all(|b| b.is_ascii_uppercase())
}

/// `[exchange_rates]`: US dollars per unit of each currency. USD is always 1.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Rates {
    usd_per_unit: BTreeMap<String, f64>,
}

impl Rates {
    /// Rates from (code, US dollars per unit) pairs (tests, the demo).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, f64)>) -> Self {
        Rates { usd_per_unit: pairs.into_iter().map(|(c, r)| (c.to_owned(), r)).collect() }
    }

    /// US dollars per unit of `code`, if known (1 for USD).
    pub fn get(&self, code: &str) -> Option<f64> {
        if code == "USD" {
            return Some(1.0);
        }
        self.usd_per_unit.get(code).copied()
    }

    /// The configured rates, by code.
    pub fn iter(&self) -> impl Iterator<Item = (&str, f64)> {
        self.usd_per_unit.iter().map(|(c, r)| (c.as_str(), *r))
    }
}

/// Validates `[exchange_rates]` (absent: no rate but USD's).
pub fn parse(v: &mut Validator, value: Option<&Value>) -> Rates {
    let Some(value) = value else {
        return Rates::default();
    };
    let Value::Object(map) = value else {
        v.problem(
            "exchange_rates",
            format!(
                "expected a table, found {}. Write it as `[exchange_rates]` with one line per currency, e.g. `EUR = 1.08` (US dollars per euro).",
                kind(value)
            ),
        );
        return Rates::default();
    };
    if map.len() > MAX_RATES {
        v.problem(
            "exchange_rates",
            format!(
                "lists {} currencies; at most {MAX_RATES} are read. List the currencies your accounts bill in.",
                map.len()
            ),
        );
        return Rates::default();
    }
    let mut rates = BTreeMap::new();
    for (code, rate) in map {
        let path = format!("exchange_rates.{}", escape_cut(code, 16));
        if !is_code(code) {
            v.problem(
                path,
                "is not a currency code. Use the ISO 4217 code in capitals, e.g. EUR, GBP, JPY, KRW.".to_owned(),
            );
            continue;
        }
        match rate.as_f64() {
            Some(r) if r.is_finite() && (MIN_RATE..=MAX_RATE).contains(&r) => {
                if code == "USD" && r != 1.0 {
                    v.problem(path, format!("is {r}; a US dollar is 1 US dollar. Remove the line."));
                    continue;
                }
                rates.insert(code.clone(), r);
            }
            Some(r) => v.problem(
                path,
                format!(
                    "is {r}, outside {MIN_RATE} to {MAX_RATE}. Give US dollars per one {code}, e.g. `EUR = 1.08`, `JPY = 0.0067`."
                ),
            ),
            None => v.problem(
                path,
                format!(
                    "expected a number (US dollars per one {code}), found {}. Write it like `{code} = 1.08`.",
                    kind(rate)
                ),
            ),
        }
    }
    Rates { usd_per_unit: rates }
}

/// The sample a job adds to say that its amounts are in `code`.
pub fn marker(code: &str) -> Sample {
    Sample::new(FamilyId::BillingCurrencyInfo, 1.0).label("currency", code)
}

/// Whether a family holds an amount of money that came from a provider or a contract (and
/// so is converted). The budget is configured in US dollars and never converted.
pub fn is_money(f: FamilyId) -> bool {
    f != FamilyId::BillingBudgetUsd && f.def().unit == Some("usd")
}

/// What [`convert`] made of one job's samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Converted {
    /// The samples to export: amounts in US dollars (none if they could not be converted),
    /// everything else as it was; the marker taken out.
    pub samples: Vec<Sample>,
    /// The account's currency and the rate used, when the samples held amounts.
    pub currency: Option<(String, f64)>,
    /// Why amounts were left out.
    pub error: Option<PollError>,
}

impl Converted {
    /// The account-level samples of the currency: `cdn_billing_currency_info` and
    /// `cdn_billing_exchange_rate`.
    pub fn account_samples(&self) -> Vec<Sample> {
        match &self.currency {
            Some((code, rate)) => vec![
                Sample::new(FamilyId::BillingCurrencyInfo, 1.0).label("currency", code.clone()),
                Sample::new(FamilyId::BillingExchangeRate, *rate).label("currency", code.clone()),
            ],
            None => Vec::new(),
        }
    }
}

/// Converts the amounts among `samples` into US dollars with `rates`. `account` names the
/// account in messages (`fastly/main`).
pub fn convert(mut samples: Vec<Sample>, rates: &Rates, account: &str) -> Converted {
    let mut code: Option<String> = None;
    samples.retain(|s| {
        if s.family != FamilyId::BillingCurrencyInfo {
            return true;
        }
        if code.is_none() {
            code = s.labels.iter().find(|(k, _)| *k == "currency").map(|(_, v)| v.clone());
        }
        false
    });
    if !samples.iter().any(|s| is_money(s.family)) {
        return Converted { samples, currency: None, error: None };
    }
    let Some(code) = code else {
        // A provider bug, never a user's: a job must say what its amounts are in.
        samples.retain(|s| !is_money(s.family));
        let error = PollError::new(
            Reason::Config,
            format!(
                "{account}: the amounts name no currency, so none is exported in US dollars (a defect: please report it)"
            ),
        );
        return Converted { samples, currency: None, error: Some(error) };
    };
    match rates.get(&code) {
        Some(rate) => {
            if rate != 1.0 {
                for s in samples.iter_mut().filter(|s| is_money(s.family)) {
                    s.value *= rate;
                }
            }
            Converted { samples, currency: Some((code, rate)), error: None }
        }
        None => {
            samples.retain(|s| !is_money(s.family));
            let error = PollError::new(
                Reason::Config,
                format!(
                    "{account} is billed in {code} and [exchange_rates] has no {code}: add `{code} = <US dollars per {code}>` \
                     under [exchange_rates] ({}). Its amounts are not exported in US dollars until then; its usage figures are.",
                    rate_key(&code)
                ),
            );
            Converted { samples, currency: None, error: Some(error) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rates(toml: &str) -> (Rates, Vec<String>) {
        use figment::providers::Format as _;
        let value: Value =
            figment::Figment::from(figment::providers::Toml::string(toml)).extract().unwrap_or(Value::Null);
        let mut v = Validator::default();
        let r = parse(&mut v, value.get("exchange_rates"));
        (r, v.problems.iter().map(|p| p.to_string()).collect())
    }

    #[test]
    fn rates_are_codes_with_positive_finite_usd_per_unit() {
        let (r, problems) = rates("[exchange_rates]\nEUR = 1.08\nJPY = 0.0067\nUSD = 1\n");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(r.get("EUR"), Some(1.08));
        assert_eq!(r.get("JPY"), Some(0.0067));
        assert_eq!(r.get("USD"), Some(1.0));
        assert_eq!(r.get("GBP"), None);

        let (r, problems) = rates(
            "[exchange_rates]\neur = 1.08\nGBP = 0\nCHF = \"1.1\"\nUSD = 2\nKRW = 1e9\nSEK = -0.1\nNOK = 0.09\nCAD = nan\n",
        );
        assert_eq!(r.iter().collect::<Vec<_>>(), vec![("NOK", 0.09)], "only the good line is kept");
        let all = problems.join("\n");
        for (key, says) in [
            ("exchange_rates.eur", "ISO 4217 code in capitals"),
            ("exchange_rates.GBP", "outside"),
            ("exchange_rates.CHF", "expected a number"),
            ("exchange_rates.USD", "Remove the line"),
            ("exchange_rates.KRW", "outside"),
            ("exchange_rates.SEK", "outside"),
            ("exchange_rates.CAD", "CAD = 1.08"),
        ] {
            assert!(problems.iter().any(|p| p.starts_with(key) && p.contains(says)), "{key}: {says} in\n{all}");
        }
        assert_eq!(problems.len(), 7, "{all}");

        let (_, problems) = rates("exchange_rates = 3\n");
        assert!(problems[0].contains("expected a table"), "{problems:?}");
        let many: String = (0..=MAX_RATES)
            .map(|i| format!("A{}{} = 1.0\n", (b'A' + (i / 26) as u8) as char, (b'A' + (i % 26) as u8) as char))
            .collect();
        let (_, problems) = rates(&format!("[exchange_rates]\n{many}"));
        assert!(problems[0].contains(&format!("at most {MAX_RATES}")), "{problems:?}");
    }

    fn batch(code: Option<&str>) -> Vec<Sample> {
        let mut out = vec![
            Sample::new(FamilyId::BillingMonthToDateSpendUsd, 100.0),
            Sample::new(FamilyId::BillingMonthToDateCostUsd, 40.0).label("item", "traffic"),
            Sample::new(FamilyId::BillingMonthToDateUsage, 7.0).label("item", "traffic"),
        ];
        out.extend(code.map(marker));
        out
    }

    #[test]
    fn amounts_are_multiplied_by_the_rate_and_the_marker_becomes_the_accounts_currency() {
        let r = Rates::from_pairs([("EUR", 1.25)]);
        let c = convert(batch(Some("EUR")), &r, "fastly/eu");
        assert_eq!(c.error, None);
        let values: Vec<f64> = c.samples.iter().map(|s| s.value).collect();
        assert_eq!(values, vec![125.0, 50.0, 7.0], "usage is not money and stays");
        assert!(!c.samples.iter().any(|s| s.family == FamilyId::BillingCurrencyInfo), "the marker is taken out");
        assert_eq!(c.currency, Some(("EUR".into(), 1.25)));
        let account = c.account_samples();
        assert_eq!(account[0].labels, vec![("currency", "EUR".to_owned())]);
        assert_eq!(account[1].value, 1.25);

        let usd = convert(batch(Some("USD")), &Rates::default(), "x/y");
        assert_eq!(usd.samples[0].value, 100.0);
        assert_eq!(usd.currency, Some(("USD".into(), 1.0)));
    }

    #[test]
    fn a_missing_rate_keeps_the_usage_drops_the_amounts_and_names_the_key() {
        let c = convert(batch(Some("KRW")), &Rates::from_pairs([("EUR", 1.1)]), "cdnetworks/kr");
        let e = c.error.expect("an error");
        assert_eq!(e.reason, Reason::Config);
        assert!(e.message.contains("exchange_rates.KRW") && e.message.contains("KRW = "), "{}", e.message);
        assert!(e.message.contains("cdnetworks/kr"), "{}", e.message);
        assert_eq!(c.samples, vec![Sample::new(FamilyId::BillingMonthToDateUsage, 7.0).label("item", "traffic")]);
        assert_eq!(c.currency, None);
    }

    #[test]
    fn amounts_without_a_currency_are_never_taken_for_dollars() {
        let c = convert(batch(None), &Rates::default(), "a/b");
        assert!(c.error.is_some());
        assert!(c.samples.iter().all(|s| !is_money(s.family)));
        // Samples with no amount need no currency.
        let usage = vec![Sample::new(FamilyId::MonthToDateRequests, 3.0)];
        assert_eq!(
            convert(usage.clone(), &Rates::default(), "a/b"),
            Converted { samples: usage, currency: None, error: None }
        );
    }

    #[test]
    fn the_budget_is_never_converted() {
        assert!(!is_money(FamilyId::BillingBudgetUsd));
        assert!(is_money(FamilyId::BillingLastMonthSpendUsd));
        assert!(!is_money(FamilyId::BillingExchangeRate));
    }
}
