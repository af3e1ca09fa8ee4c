//! Fastly answers as they arrive, parsed under bounds: the month-to-date invoice, pages of
//! end-of-month invoices, usage per region and service, the service list and the error bodies.
//! Every list is [`Capped`], the usage maps are bounded by [`parse_usage`]; numbers are [`Num`] (the
//! month-to-date total arrives as a string, an end-of-month total as a number: both are read).

use std::cell::Cell;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

use crate::job::PollError;
use crate::providers::common::wire::{Capped, ListLimit, Num, Text, parse_capped};

/// One line item of an invoice (`Mtdlineitems`, `Invoicelineitems`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LineItem<'a> {
    /// The line item's name (`North America Bandwidth`).
    #[serde(default, borrow)]
    pub description: Text<'a>,
    /// Billed amount (a number in the spec; a numeric string is read too).
    #[serde(default)]
    pub amount: Num,
    /// Units used.
    #[serde(default)]
    pub units: Num,
    /// The product (`Full-Site Delivery`).
    #[serde(default, borrow)]
    pub product_name: Text<'a>,
    /// The kind of usage (`bandwidth`, `requests`).
    #[serde(default, borrow)]
    pub usage_type: Text<'a>,
    /// The geographic area (`North America`): exported as `area`.
    #[serde(default, borrow)]
    pub region: Text<'a>,
}

/// `GET /billing/v3/invoices/month-to-date` (`MtdInvoiceResponse`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MtdInvoice<'a> {
    /// The invoice id.
    #[serde(default, borrow)]
    pub invoice_id: Text<'a>,
    /// The start of the billing period (ISO 8601).
    #[serde(default, borrow)]
    pub billing_start_date: Text<'a>,
    /// The total so far: a decimal string in the spec (a number is read too).
    #[serde(default)]
    pub monthly_transaction_amount: Num,
    /// The line items.
    #[serde(default, borrow)]
    pub transaction_line_items: Option<Capped<LineItem<'a>>>,
}

/// One end-of-month invoice (`Invoice`, `EomInvoiceResponse`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Invoice<'a> {
    /// The invoice id.
    #[serde(default, borrow)]
    pub invoice_id: Text<'a>,
    /// When it was posted (ISO 8601).
    #[serde(default, borrow)]
    pub invoice_posted_on: Text<'a>,
    /// The start of the billing period (ISO 8601).
    #[serde(default, borrow)]
    pub billing_start_date: Text<'a>,
    /// Three-letter currency code.
    #[serde(default, borrow)]
    pub currency_code: Text<'a>,
    /// The total: a number in the spec (a numeric string is read too).
    #[serde(default)]
    pub monthly_transaction_amount: Num,
    /// The line items.
    #[serde(default, borrow)]
    pub transaction_line_items: Option<Capped<LineItem<'a>>>,
}

/// `meta` of an invoice page.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct Meta<'a> {
    /// The cursor of the next page; absent or empty on the last.
    #[serde(default, borrow)]
    pub next_cursor: Text<'a>,
}

/// One page of `GET /billing/v3/invoices` (`ListEomInvoicesResponse`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct InvoicePage<'a> {
    /// The invoices of the page.
    #[serde(default, borrow)]
    pub data: Option<Capped<Invoice<'a>>>,
    /// Paging.
    #[serde(default, borrow)]
    pub meta: Option<Meta<'a>>,
}

/// One entry of `GET /service`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ServiceEntry<'a> {
    /// The service id.
    #[serde(default, borrow)]
    pub id: Text<'a>,
    /// When it was deleted, if it was.
    #[serde(default, borrow)]
    pub deleted_at: Text<'a>,
}

/// One service's usage in one region of a `/stats/usage_by_service` answer
/// (`HistoricalUsageData`): only these three fields are sent.
#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
pub struct UsageEntry {
    /// Bytes delivered (`bandwidth`; Compute services' bytes included).
    #[serde(default)]
    pub bandwidth: Num,
    /// Requests of delivery (VCL) services (`requests`).
    #[serde(default)]
    pub requests: Num,
    /// Requests of Compute services (`compute_requests`): not counted in `requests`.
    #[serde(default)]
    pub compute_requests: Num,
}

/// The `data` of a usage answer: region → service id → usage, in the order sent. A region with
/// no traffic comes as `{}` (null is read the same way).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UsageData(pub Vec<(String, Vec<(String, UsageEntry)>)>);

/// A `/stats/usage_by_service` answer (`HistoricalUsageServiceResponse`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct UsageAnswer<'a> {
    /// `success`, or why not.
    #[serde(default, borrow)]
    pub status: Text<'a>,
    /// What failed, when it failed.
    #[serde(default, borrow)]
    pub msg: Text<'a>,
    /// The usage per region and service.
    #[serde(default)]
    pub data: Option<UsageData>,
}

/// The most regions one usage answer may name (64; Fastly's recorded answers name 9, the
/// newest spec 10). No key raises it: past it the answer is not data.
pub const MAX_REGIONS: usize = 64;
/// The longest region or service id key read (64 bytes).
pub const MAX_KEY_BYTES: usize = 64;

thread_local! {
    /// The most services one region of a [`UsageData`] may hold in the parse on this thread.
    static SERVICES_CAP: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// A region's services, bounded by [`SERVICES_CAP`].
struct RegionUsage(Vec<(String, UsageEntry)>);

fn key<E: de::Error>(k: String, what: &str) -> Result<String, E> {
    if k.len() > MAX_KEY_BYTES {
        return Err(E::custom(format!("a {what} key of {} bytes, more than {MAX_KEY_BYTES}", k.len())));
    }
    Ok(k)
}

impl<'de> Deserialize<'de> for RegionUsage {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RegionUsage;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of service ids to usage")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RegionUsage, A::Error> {
                let cap = SERVICES_CAP.get();
                let mut out = Vec::new();
                while let Some(k) = map.next_key::<String>()? {
                    if out.len() == cap {
                        return Err(de::Error::custom(format!("more than {cap} services")));
                    }
                    out.push((key(k, "service")?, map.next_value::<UsageEntry>()?));
                }
                Ok(RegionUsage(out))
            }
            fn visit_unit<E>(self) -> Result<RegionUsage, E> {
                Ok(RegionUsage(Vec::new()))
            }
            fn visit_none<E>(self) -> Result<RegionUsage, E> {
                Ok(RegionUsage(Vec::new()))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for UsageData {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = UsageData;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of regions to services")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<UsageData, A::Error> {
                let mut out = Vec::new();
                while let Some(k) = map.next_key::<String>()? {
                    if out.len() == MAX_REGIONS {
                        return Err(de::Error::custom(format!("more than {MAX_REGIONS} regions")));
                    }
                    let RegionUsage(services) = map.next_value()?;
                    out.push((key(k, "region")?, services));
                }
                Ok(UsageData(out))
            }
            fn visit_unit<E>(self) -> Result<UsageData, E> {
                Ok(UsageData::default())
            }
            fn visit_none<E>(self) -> Result<UsageData, E> {
                Ok(UsageData::default())
            }
        }
        d.deserialize_any(V)
    }
}

/// Parses a usage answer: at most [`MAX_REGIONS`] regions of at most `max_services` services
/// each; `key` names the setting that raises `max_services`.
pub fn parse_usage<'a>(body: &'a [u8], max_services: usize, key: &str) -> Result<UsageAnswer<'a>, PollError> {
    SERVICES_CAP.set(max_services);
    let limit = ListLimit { max: 0, items: "-", key: "-" };
    let parsed = parse_capped::<UsageAnswer<'_>>(body, limit, "usage answer");
    SERVICES_CAP.set(usize::MAX);
    parsed.map_err(|e| {
        if e.message.contains(&format!("more than {max_services} services")) {
            PollError::parse(format!(
                "usage answer holds more than {max_services} services in one region: refused. If the account \
                 really has that many, raise `{key}`"
            ))
        } else {
            e
        }
    })
}

/// An error body of any of the shapes Fastly's API families use: billing v3
/// `{type, title, code, status}`, JSON:API `{errors: [{title, detail}]}`, problem+json
/// `{title, detail}`, and the legacy `{msg, detail}`. Only small bodies are read.
#[derive(Debug, Default, Deserialize)]
pub struct ErrorBody<'a> {
    #[serde(default, borrow)]
    msg: Text<'a>,
    #[serde(default, borrow)]
    detail: Text<'a>,
    #[serde(default, borrow)]
    title: Text<'a>,
    #[serde(default, borrow)]
    code: Text<'a>,
    #[serde(default, borrow)]
    errors: Option<Capped<ErrorEntry<'a>>>,
}

#[derive(Debug, Default, Deserialize)]
struct ErrorEntry<'a> {
    #[serde(default, borrow)]
    title: Text<'a>,
    #[serde(default, borrow)]
    detail: Text<'a>,
}

/// The most bytes of an error body read for its message (64 KiB).
pub const MAX_ERROR_BODY_BYTES: usize = 64 << 10;

/// The provider's own words in an error body, if it has any: `title: detail`, `msg: detail`,
/// the first of `errors`, and the code.
pub fn error_message(body: &[u8]) -> Option<String> {
    if body.len() > MAX_ERROR_BODY_BYTES {
        return None;
    }
    let limit = ListLimit { max: 16, items: "errors", key: "-" };
    let e: ErrorBody<'_> = parse_capped(body, limit, "error body").ok()?;
    let first = e.errors.as_ref().and_then(|Capped(list)| list.first());
    let parts: Vec<&str> = [
        e.title.get(),
        e.msg.get(),
        e.detail.get(),
        first.and_then(|f| f.title.get()),
        first.and_then(|f| f.detail.get()),
    ]
    .into_iter()
    .flatten()
    .map(str::trim)
    .filter(|s| !s.is_empty())
    .collect();
    if parts.is_empty() {
        return None;
    }
    let mut out = parts.join(": ");
    if let Some(code) = e.code.get().filter(|c| !c.trim().is_empty()) {
        out.push_str(&format!(" (code {})", code.trim()));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lists(max: usize) -> ListLimit {
        ListLimit { max, items: "entries", key: "fastly[0].max_line_items" }
    }

    #[test]
    fn both_invoice_amount_shapes_are_read() {
        let mtd: MtdInvoice<'_> = parse_capped(
            br#"{"monthly_transaction_amount":"842.17","transaction_line_items":[{"description":"NA Bandwidth","amount":610.2}]}"#,
            lists(10),
            "x",
        )
        .unwrap();
        assert_eq!(mtd.monthly_transaction_amount, Num::Value(842.17));
        let items = mtd.transaction_line_items.unwrap().0;
        assert_eq!(items[0].amount, Num::Value(610.2));
        let page: InvoicePage<'_> = parse_capped(
            br#"{"data":[{"monthly_transaction_amount":1290.55,"currency_code":"USD"}],"meta":{"next_cursor":""}}"#,
            lists(10),
            "x",
        )
        .unwrap();
        assert_eq!(page.data.unwrap().0[0].monthly_transaction_amount, Num::Value(1290.55));
        let err = parse_capped::<MtdInvoice<'_>>(
            br#"{"transaction_line_items":[{},{},{}]}"#,
            lists(2),
            "month-to-date invoice",
        )
        .unwrap_err();
        assert!(err.message.contains("more than 2 entries") && err.message.contains("max_line_items"), "{err}");
    }

    #[test]
    fn usage_answers_are_read_and_bounded() {
        let body = br#"{"data":{"africa_std":{},"europe":{"2xSyplKh6dJaYAjbDbbwOw":{"bandwidth":514,"requests":0,"compute_requests":3},"6J1WNVqsOeYgbV0Hq7FWel":{"bandwidth":17245,"requests":0,"compute_requests":6}},"latam":null},"meta":{"by":"minute","region":"usa"},"status":"success","msg":null}"#;
        let u = parse_usage(body, 5, "k").unwrap();
        let data = u.data.unwrap().0;
        assert_eq!(data.len(), 3);
        assert_eq!((data[0].0.as_str(), data[0].1.len()), ("africa_std", 0));
        assert_eq!(data[1].1[1].0, "6J1WNVqsOeYgbV0Hq7FWel");
        assert_eq!(data[1].1[1].1.compute_requests, Num::Value(6.0));
        assert_eq!(data[1].1[1].1.requests, Num::Value(0.0));
        assert_eq!(data[2].1, vec![]);
        let err = parse_usage(body, 1, "fastly[0].max_services").unwrap_err();
        assert!(
            err.message.contains("more than 1 services") && err.message.contains("fastly[0].max_services"),
            "{err}"
        );
        let many: String = (0..=MAX_REGIONS).map(|i| format!("\"r{i}\":{{}}")).collect::<Vec<_>>().join(",");
        let err = parse_usage(format!("{{\"data\":{{{many}}}}}").as_bytes(), 5, "k").unwrap_err();
        assert!(err.message.contains("more than 64 regions"), "{err}");
        let long = format!("{{\"data\":{{\"usa\":{{\"{}\":{{}}}}}}}}", "s".repeat(65));
        assert!(parse_usage(long.as_bytes(), 5, "k").unwrap_err().message.contains("65 bytes"));
    }

    #[test]
    fn error_bodies_of_every_family() {
        assert_eq!(
            error_message(br#"{"type":"x","title":"Not Found","code":"no_invoice","status":"404"}"#).as_deref(),
            Some("Not Found (code no_invoice)")
        );
        assert_eq!(error_message(br#"{"errors":[{"title":"Bad","detail":"cursor"}]}"#).as_deref(), Some("Bad: cursor"));
        assert_eq!(
            error_message(br#"{"msg":"Provided credentials are missing or invalid"}"#).as_deref(),
            Some("Provided credentials are missing or invalid")
        );
        assert_eq!(error_message(b"<html>"), None);
        assert_eq!(error_message(&vec![b' '; MAX_ERROR_BODY_BYTES + 1]), None);
    }
}
