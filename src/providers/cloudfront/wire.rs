//! The answers the provider reads, as botocore's service models define them (Cost Explorer
//! 2017-10-25, CloudWatch 2010-08-01, CloudFront 2020-05-31), read under bounds: lists capped,
//! amounts parsed from their decimal strings and refused when not finite, text made inert.
//! Unknown fields pass by: AWS adds fields to answers.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::job::PollError;
use crate::providers::common::wire::{Capped, ListLimit, parse_capped};

use super::xml::{self, Step};

/// The most groups, results or series of one answer (pages are far smaller; the byte bound
/// comes first in practice).
pub const MAX_LIST: usize = 100_000;

/// Parses a JSON answer with its lists capped at [`MAX_LIST`].
pub fn parse<'a, T: Deserialize<'a>>(body: &'a [u8], what: &str) -> Result<T, PollError> {
    parse_capped(body, ListLimit { max: MAX_LIST, items: "entries in a list", key: "answer_bytes" }, what)
}

/// `GetCostAndUsage`'s answer.
#[derive(Debug, Deserialize)]
pub struct CostAndUsage {
    /// One result per period.
    #[serde(rename = "ResultsByTime", default)]
    pub results: Capped<ResultByTime>,
    /// Present when more pages follow.
    #[serde(rename = "NextPageToken", default)]
    pub next_page_token: Option<String>,
}

/// `DateInterval`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Period {
    /// `YYYY-MM-DD`, inclusive.
    #[serde(rename = "Start")]
    pub start: String,
    /// `YYYY-MM-DD`, exclusive.
    #[serde(rename = "End")]
    pub end: String,
}

/// `ResultByTime`.
#[derive(Debug, Deserialize)]
pub struct ResultByTime {
    /// The period (optional in the model; backfill, which dates the days by it, refuses a
    /// result without one).
    #[serde(rename = "TimePeriod", default)]
    pub period: Option<Period>,
    /// The sums; `{}` when grouped.
    #[serde(rename = "Total", default)]
    pub total: BTreeMap<String, MetricValue>,
    /// The groups (one per usage type).
    #[serde(rename = "Groups", default)]
    pub groups: Capped<Group>,
    /// Whether AWS may still change the figures (the month is not invoiced yet).
    #[serde(rename = "Estimated", default)]
    pub estimated: bool,
}

/// `Group`.
#[derive(Debug, Deserialize)]
pub struct Group {
    /// The group's keys (the usage type).
    #[serde(rename = "Keys", default)]
    pub keys: Capped<String>,
    /// The metrics asked for.
    #[serde(rename = "Metrics", default)]
    pub metrics: BTreeMap<String, MetricValue>,
}

/// `MetricValue`: a decimal string and its unit.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct MetricValue {
    /// `"40.3543773134"`.
    #[serde(rename = "Amount", default)]
    pub amount: Option<String>,
    /// `USD`, `GB`, `Requests`, `N/A`.
    #[serde(rename = "Unit", default)]
    pub unit: Option<String>,
}

/// An AWS decimal string as a finite number; `what` names it in the error.
pub fn decimal(s: &str, what: &str) -> Result<f64, PollError> {
    let t = s.trim();
    let ok = !t.is_empty() && t.len() <= 64 && t.bytes().all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b));
    match t.parse::<f64>() {
        Ok(v) if ok && v.is_finite() => Ok(v),
        _ => Err(PollError::parse(format!(
            "{what} is not a finite decimal: {}",
            crate::text::message(&t.chars().take(40).collect::<String>())
        ))),
    }
}

/// `GetCostForecast`'s answer.
#[derive(Debug, Deserialize)]
pub struct CostForecast {
    /// The forecast over the whole period.
    #[serde(rename = "Total", default)]
    pub total: Option<MetricValue>,
    /// Per period: mean and bounds.
    #[serde(rename = "ForecastResultsByTime", default)]
    pub results: Capped<ForecastResult>,
}

/// `ForecastResult`.
#[derive(Debug, Deserialize)]
pub struct ForecastResult {
    /// The mean.
    #[serde(rename = "MeanValue", default)]
    pub mean: Option<String>,
    /// The interval's lower bound.
    #[serde(rename = "PredictionIntervalLowerBound", default)]
    pub lower: Option<String>,
    /// The interval's upper bound.
    #[serde(rename = "PredictionIntervalUpperBound", default)]
    pub upper: Option<String>,
}

/// `GetMetricData`'s answer (JSON 1.0).
#[derive(Debug, Deserialize)]
pub struct MetricData {
    /// One per query.
    #[serde(rename = "MetricDataResults", default)]
    pub results: Capped<MetricDataResult>,
    /// Present when more points follow.
    #[serde(rename = "NextToken", default)]
    pub next_token: Option<String>,
}

/// `MetricDataResult`.
#[derive(Debug, Deserialize)]
pub struct MetricDataResult {
    /// The query's id (optional in the model; a result without one is not a query asked).
    #[serde(rename = "Id", default)]
    pub id: String,
    /// Epoch seconds (numbers in JSON 1.0), paired with `values`.
    #[serde(rename = "Timestamps", default)]
    pub timestamps: Capped<f64>,
    /// The values.
    #[serde(rename = "Values", default)]
    pub values: Capped<f64>,
    /// `Complete`, `PartialData`, `InternalError`, `Forbidden`.
    #[serde(rename = "StatusCode", default)]
    pub status: Option<String>,
}

/// One distribution of a `ListDistributions` answer: what the exporter labels with.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Distribution {
    /// `Id`.
    pub id: String,
    /// `DomainName` (`d111111abcdef8.cloudfront.net`).
    pub domain_name: String,
    /// The first `Aliases/Items/CNAME`, if any.
    pub alias: Option<String>,
    /// `Staging`: a continuous-deployment copy.
    pub staging: bool,
}

/// A page of `ListDistributions`.
#[derive(Debug, Default, PartialEq)]
pub struct DistributionPage {
    /// The page's distributions.
    pub items: Vec<Distribution>,
    /// `IsTruncated`.
    pub truncated: bool,
    /// `NextMarker` (opaque: moto sends a token, AWS an id).
    pub next_marker: Option<String>,
}

/// Reads a `ListDistributions` page: at most `max_items` distributions.
pub fn distribution_page(body: &[u8], max_items: usize) -> Result<DistributionPage, PollError> {
    const WHAT: &str = "ListDistributions answer";
    let mut page = DistributionPage::default();
    let mut current: Option<Distribution> = None;
    let mut over = false;
    xml::walk(body, 200_000, WHAT, |step| {
        match step {
            Step::Open(p) if p.len() == 3 && p[1] == "Items" && p[2] == "DistributionSummary" => {
                current = Some(Distribution::default());
            }
            Step::Close(p) if p.len() == 3 && p[1] == "Items" && p[2] == "DistributionSummary" => {
                if let Some(d) = current.take() {
                    if page.items.len() == max_items {
                        over = true;
                    } else {
                        page.items.push(d);
                    }
                }
            }
            Step::Text(p, text) => {
                let p: Vec<&str> = p.iter().map(String::as_str).collect();
                match (p.as_slice(), current.as_mut()) {
                    ([_, "IsTruncated"], _) => page.truncated = text == "true",
                    ([_, "NextMarker"], _) => page.next_marker = Some(text.to_owned()),
                    ([_, "Items", "DistributionSummary", "Id"], Some(d)) => d.id = text.to_owned(),
                    ([_, "Items", "DistributionSummary", "DomainName"], Some(d)) => d.domain_name = text.to_owned(),
                    ([_, "Items", "DistributionSummary", "Staging"], Some(d)) => d.staging = text == "true",
                    ([_, "Items", "DistributionSummary", "Aliases", "Items", "CNAME"], Some(d))
                        if d.alias.is_none() =>
                    {
                        d.alias = Some(text.to_owned());
                    }
                    _ => {}
                }
            }
            _ => {}
        }
        Ok(())
    })?;
    if over {
        return Err(PollError::parse(format!("{WHAT} lists more than {max_items} distributions on one page: refused")));
    }
    for d in &page.items {
        if !super::config::is_distribution_id(&d.id) {
            return Err(PollError::parse(format!(
                "{WHAT} has a distribution whose Id is not a distribution id: {}",
                crate::text::label(&d.id)
            )));
        }
    }
    if page.next_marker.as_ref().is_some_and(|m| m.len() > 8192) {
        return Err(PollError::parse(format!("{WHAT} has a NextMarker of more than 8192 bytes: refused")));
    }
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_finite_and_bounded() {
        assert_eq!(decimal("40.3543773134", "a").unwrap(), 40.3543773134);
        assert_eq!(decimal("-0.0000000282", "a").unwrap(), -0.0000000282);
        for bad in ["NaN", "inf", "1e400", "", "12,5", "0x10", &"9".repeat(65)] {
            assert!(decimal(bad, "the amount").is_err(), "{bad}");
        }
    }

    #[test]
    fn fields_the_model_makes_optional_may_be_absent() {
        let page: CostAndUsage = parse(br#"{"ResultsByTime":[{"Groups":[{"Metrics":{}}]}]}"#, "t").unwrap();
        assert!(page.results.0[0].period.is_none() && !page.results.0[0].estimated);
        let data: MetricData = parse(br#"{"MetricDataResults":[{"Values":[]}]}"#, "t").unwrap();
        assert_eq!(data.results.0[0].id, "");
        let forecast: CostForecast = parse(b"{}", "t").unwrap();
        assert!(forecast.total.is_none() && forecast.results.0.is_empty());
    }

    #[test]
    fn a_distribution_page_is_read_past_unknown_and_nested_elements() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<DistributionList xmlns="http://cloudfront.amazonaws.com/doc/2020-05-31/"><Marker></Marker><NextMarker>eyJ0b2tlbiI6MX0=</NextMarker><MaxItems>100</MaxItems><IsTruncated>true</IsTruncated><Quantity>2</Quantity>
<Items><DistributionSummary><Id>EDFDVBD632BHDS5</Id><ARN>arn:aws:cloudfront::123456789012:distribution/EDFDVBD632BHDS5</ARN><Status>Deployed</Status>
<DomainName>d111111abcdef8.cloudfront.net</DomainName><Aliases><Quantity>2</Quantity><Items><CNAME>cdn.example.com</CNAME><CNAME>www.example.com</CNAME></Items></Aliases>
<Origins><Quantity>1</Quantity><Items><Origin><Id>origin-1</Id><DomainName>origin.example.com</DomainName></Origin></Items></Origins>
<Comment>secret comment</Comment><Staging>false</Staging><ConnectionMode>direct</ConnectionMode></DistributionSummary>
<DistributionSummary><Id>E2STAGING0001</Id><DomainName>d2.cloudfront.net</DomainName><Aliases><Quantity>0</Quantity></Aliases><Staging>true</Staging></DistributionSummary></Items></DistributionList>"#;
        let page = distribution_page(body, 10).unwrap();
        assert!(page.truncated);
        assert_eq!(page.next_marker.as_deref(), Some("eyJ0b2tlbiI6MX0="));
        assert_eq!(page.items.len(), 2);
        assert_eq!(page.items[0].id, "EDFDVBD632BHDS5");
        assert_eq!(page.items[0].domain_name, "d111111abcdef8.cloudfront.net", "not the origin's");
        assert_eq!(page.items[0].alias.as_deref(), Some("cdn.example.com"));
        assert!(!page.items[0].staging && page.items[1].staging);
        assert_eq!(page.items[1].alias, None);
        assert!(distribution_page(body, 1).unwrap_err().message.contains("more than 1 distributions"));
        let bad = String::from_utf8_lossy(body).replace("E2STAGING0001", "e2/../x");
        assert!(distribution_page(bad.as_bytes(), 10).is_err());
    }
}
