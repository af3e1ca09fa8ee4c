//! Fastly answers as they arrive, parsed under bounds: the month-to-date invoice, pages of
//! end-of-month invoices, historical stats, the service list and the error bodies. Every list is
//! [`Capped`], the stats map of services is bounded by [`parse_stats`]; numbers are [`Num`] (the
//! month-to-date total arrives as a string, an end-of-month total as a number: both are read).

use std::cell::Cell;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

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

/// One stats bucket (`Results`): only the fields the exporter reads.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Bucket<'a> {
    /// The service, in the per-service answer's plain array.
    #[serde(default, borrow)]
    pub service_id: Text<'a>,
    /// The bucket's start, Unix seconds (UTC-aligned).
    #[serde(default)]
    pub start_time: Num,
    /// Bytes delivered (`bandwidth`: response and backend-request headers and bodies).
    #[serde(default)]
    pub bandwidth: Num,
    /// Requests processed (`requests`).
    #[serde(default)]
    pub requests: Num,
}

/// The `data` of a stats answer: `/stats` maps service ids to buckets; `/stats/service/{id}`
/// gives a plain array whose buckets name their service. Both come out as (service, buckets).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StatsData<'a>(pub Vec<(String, Vec<Bucket<'a>>)>);

/// A stats answer (`Historical` envelope).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Stats<'a> {
    /// `success`, or why not.
    #[serde(default, borrow)]
    pub status: Text<'a>,
    /// What failed, when it failed.
    #[serde(default, borrow)]
    pub msg: Text<'a>,
    /// The buckets per service.
    #[serde(default, borrow)]
    pub data: Option<StatsData<'a>>,
}

thread_local! {
    /// The most services a [`StatsData`] may hold in the parse running on this thread.
    static SERVICES_CAP: Cell<usize> = const { Cell::new(usize::MAX) };
}

impl<'de: 'a, 'a> Deserialize<'de> for StatsData<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = StatsData<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of service ids to buckets, or an array of buckets")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StatsData<'a>, A::Error> {
                let cap = SERVICES_CAP.get();
                let mut out: Vec<(String, Vec<Bucket<'a>>)> = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    if out.len() == cap {
                        return Err(de::Error::custom(format!("more than {cap} services")));
                    }
                    let Capped(buckets) = map.next_value::<Capped<Bucket<'a>>>()?;
                    out.push((key, buckets));
                }
                Ok(StatsData(out))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<StatsData<'a>, A::Error> {
                // The per-service answer: one list, each bucket naming its service. Bounded by
                // the same list cap as any other list of the parse.
                let mut out: Vec<(String, Vec<Bucket<'a>>)> = Vec::new();
                let Capped(buckets) = Capped::<Bucket<'a>>::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
                for b in buckets {
                    let id = b.service_id.get().unwrap_or_default().to_owned();
                    match out.iter_mut().find(|(s, _)| *s == id) {
                        Some((_, list)) => list.push(b),
                        None => out.push((id, vec![b])),
                    }
                }
                Ok(StatsData(out))
            }
            fn visit_unit<E>(self) -> Result<StatsData<'a>, E> {
                Ok(StatsData::default())
            }
            fn visit_none<E>(self) -> Result<StatsData<'a>, E> {
                Ok(StatsData::default())
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// Parses a stats answer: at most `max_services` services, at most `buckets.max` buckets per
/// service.
pub fn parse_stats<'a>(
    body: &'a [u8],
    buckets: ListLimit,
    max_services: usize,
    key: &str,
) -> Result<Stats<'a>, PollError> {
    SERVICES_CAP.set(max_services);
    let parsed = parse_capped::<Stats<'_>>(body, buckets, "stats answer");
    SERVICES_CAP.set(usize::MAX);
    parsed.map_err(|e| {
        if e.message.contains(&format!("more than {max_services} services")) {
            PollError::parse(format!(
                "stats answer holds more than {max_services} services: refused. If the token really sees that many, raise `{key}`"
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
    fn stats_data_in_both_shapes_and_bounded() {
        let map = br#"{"status":"success","data":{"A":[{"start_time":0,"bandwidth":5,"requests":1}],"B":[]}}"#;
        let s = parse_stats(map, lists(10), 5, "k").unwrap();
        let data = s.data.unwrap().0;
        assert_eq!(data.len(), 2);
        assert_eq!((data[0].0.as_str(), data[0].1[0].bandwidth), ("A", Num::Value(5.0)));
        let array = br#"{"status":"success","data":[{"service_id":"A","start_time":0,"bandwidth":5},{"service_id":"A","start_time":86400}]}"#;
        let data = parse_stats(array, lists(10), 5, "k").unwrap().data.unwrap().0;
        assert_eq!((data.len(), data[0].1.len()), (1, 2));
        let err = parse_stats(map, lists(10), 1, "fastly[0].max_services").unwrap_err();
        assert!(err.message.contains("more than 1 services") && err.message.contains("max_services"), "{err}");
        let err = parse_stats(array, lists(1), 5, "k").unwrap_err();
        assert!(err.message.contains("more than 1 entries"), "{err}");
        assert_eq!(
            parse_stats(br#"{"status":"success","data":{}}"#, lists(1), 1, "k").unwrap().data.unwrap().0,
            vec![]
        );
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
