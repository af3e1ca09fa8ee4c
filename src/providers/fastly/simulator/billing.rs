//! The simulator's Fastly invoices: the month-to-date invoice (its total a decimal string, no
//! currency field, as Fastly's `MtdInvoiceResponse`) and the end-of-month invoices, newest
//! first, filtered by billing start date and paged by cursor. A month's spend is a function of
//! the account and the month, so tests know every amount to the cent.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use crate::providers::common::simulator::SimState;
use crate::timeutil;

use super::{FastlyFaults, FastlySim, admit, reply};
use crate::providers::fastly::{INVOICES_PATH, MTD_PATH};

/// The line items of every simulated invoice: description, usage type, area, share of the total
/// in percent (the last takes the remainder, so the items add up to the cent).
pub const ITEMS: [(&str, &str, &str, u64); 3] = [
    ("North America Bandwidth", "bandwidth", "North America", 55),
    ("Europe Bandwidth", "bandwidth", "Europe", 30),
    ("All Regions Requests", "requests", "Global", 15),
];

/// The whole spend of the month starting on `month` (a day number) for an end-of-month invoice,
/// in cents: 80 % to 100 % of the account's monthly figure, varying by month.
pub fn bill_cents(account: &FastlySim, month: i64) -> u64 {
    let (y, m, _) = timeutil::civil_from_days(month);
    let share = 80 + (y as u64 * 12 + u64::from(m)) % 5 * 5;
    (account.monthly_usd * share as f64).round() as u64
}

/// The month-to-date spend at `now`, in cents: the month's elapsed share of `monthly_usd`.
pub fn mtd_cents(account: &FastlySim, now: i64) -> u64 {
    let today = now.div_euclid(86_400);
    let month = timeutil::month_start(today);
    let (y, m, _) = timeutil::civil_from_days(month);
    let len = i64::from(timeutil::days_in_month(y, m)) * 86_400;
    let elapsed = (now - month * 86_400).clamp(0, len);
    (account.monthly_usd * 100.0 * elapsed as f64 / len as f64).round() as u64
}

/// The line items of a total, in cents each, adding up to it.
pub fn item_cents(total: u64) -> Vec<u64> {
    let mut out: Vec<u64> = ITEMS[..ITEMS.len() - 1].iter().map(|(_, _, _, share)| total * share / 100).collect();
    out.push(total - out.iter().sum::<u64>());
    out
}

fn items_json(total: u64, eom: bool) -> Vec<Value> {
    ITEMS
        .iter()
        .zip(item_cents(total))
        .map(|((description, usage, region, _), cents)| {
            let mut item = json!({
                "description": description,
                "amount": cents as f64 / 100.0,
                "rate": 0.12,
                "units": cents as f64 / 12.0,
                "product_name": "Full-Site Delivery",
                "product_group": "Full-Site Delivery",
                "product_line": "Network Services",
                "region": region,
                "usage_type": usage,
            });
            if eom {
                item["credit_coupon_code"] = json!("");
            }
            item
        })
        .collect()
}

fn iso(day: i64, time: &str) -> String {
    format!("{}T{time}Z", timeutil::format_ymd(day))
}

fn iso_at(unix: i64) -> String {
    let s = unix.rem_euclid(86_400);
    iso(unix.div_euclid(86_400), &format!("{:02}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60))
}

/// `GET /billing/v3/invoices/month-to-date`.
pub async fn handle_mtd(
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let _in_flight = state.in_flight();
    let account = match admit(&state, "month-to-date", MTD_PATH, &headers, &query).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let now = state.clock.now();
    let month = timeutil::month_start(now.div_euclid(86_400));
    let (y, m, _) = timeutil::civil_from_days(month);
    let last = month + i64::from(timeutil::days_in_month(y, m)) - 1;
    let total = mtd_cents(account, now);
    let amount = if state.fastly_faults().numeric_mtd_amount {
        json!(total as f64 / 100.0)
    } else {
        json!(format!("{}.{:02}", total / 100, total % 100))
    };
    let body = json!({
        "customer_id": account.customer_id,
        "invoice_id": format!("MTD{y:04}{m:02}"),
        "billing_start_date": iso(month, "00:00:00"),
        "billing_end_date": iso(last, "23:59:59"),
        "monthly_transaction_amount": amount,
        "transaction_line_items": items_json(total, false),
    });
    reply(&state, StatusCode::OK, body, Vec::new())
}

/// `GET /billing/v3/invoices`: newest first, filtered by the billing start date, paged by cursor.
pub async fn handle_invoices(
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let _in_flight = state.in_flight();
    let account = match admit(&state, "invoices", INVOICES_PATH, &headers, &query).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let bad =
        |msg: &str| reply(&state, StatusCode::BAD_REQUEST, json!({"title": "Bad Request", "detail": msg}), vec![]);
    let date = |k: &str| match query.get(k) {
        None => Ok(None),
        Some(s) => timeutil::parse_ymd(s).filter(|_| s.len() == 10).map(Some).ok_or(()),
    };
    let (Ok(from), Ok(to)) = (date("billing_start_date"), date("billing_end_date")) else {
        return bad("billing_start_date and billing_end_date are YYYY-MM-DD");
    };
    let limit = match query.get("limit").map(|l| l.parse::<usize>()) {
        None => 100,
        Some(Ok(l)) if (1..=200).contains(&l) => l,
        Some(_) => return bad("limit is 1 to 200"),
    };
    let offset = match query.get("cursor").map(String::as_str) {
        None | Some("") => 0,
        Some(c) => match c.strip_prefix("c").and_then(|n| n.parse::<usize>().ok()) {
            Some(n) => n,
            None => return bad("unknown cursor"),
        },
    };
    let now = state.clock.now();
    let this_month = timeutil::month_start(now.div_euclid(86_400));
    let mut invoices = Vec::new();
    let mut month = this_month;
    for _ in 0..account.past_months {
        month = timeutil::month_start(month - 1);
        if from.is_some_and(|f| month < f) || to.is_some_and(|t| month > t) {
            continue;
        }
        let (y, m, _) = timeutil::civil_from_days(month);
        let next = month + i64::from(timeutil::days_in_month(y, m));
        if now < next * 86_400 + account.post_delay_secs {
            continue;
        }
        let total = bill_cents(account, month);
        let mut invoice = json!({
            "customer_id": account.customer_id,
            "invoice_id": (4_000_000 + y * 12 + i64::from(m)).to_string(),
            "invoice_posted_on": iso_at(next * 86_400 + account.post_delay_secs),
            "billing_start_date": iso(month, "00:00:00"),
            "billing_end_date": iso(next - 1, "23:59:59"),
            "statement_number": format!("ST-{y:04}{m:02}"),
            "currency_code": account.currency,
            "monthly_transaction_amount": total as f64 / 100.0,
            "transaction_line_items": items_json(total, true),
        });
        if account.currency.is_empty() {
            if let Some(fields) = invoice.as_object_mut() {
                fields.remove("currency_code");
            }
        }
        invoices.push(invoice);
    }
    let size = limit.min(account.page_size.max(1));
    let page: Vec<Value> = invoices.iter().skip(offset).take(size).cloned().collect();
    let end = offset + page.len();
    let FastlyFaults { endless_cursor, repeat_cursor, .. } = state.fastly_faults();
    let next = if repeat_cursor {
        "c1".to_owned()
    } else if end < invoices.len() || endless_cursor {
        format!("c{}", end.max(offset + 1))
    } else {
        String::new()
    };
    let body = json!({
        "data": page,
        "meta": {"next_cursor": next, "limit": size, "sort": "billing_start_date", "total": invoices.len()},
    });
    reply(&state, StatusCode::OK, body, Vec::new())
}
