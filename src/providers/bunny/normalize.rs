//! bunny.net answers turned into samples. A value that is not data (not finite, negative where
//! a count or a charge cannot be, an id that is not a positive whole number) fails the poll: the
//! last good values stay.

use std::collections::BTreeMap;

use crate::families::FamilyId;
use crate::job::{PollError, Sample};
use crate::providers::common::wire::Num;
use crate::text;
use crate::timeutil;

use super::wire::{self, Billing, Chart, PullZone, StorageZone, SummaryItem};

/// A pull zone as labelled: its id, and its name (inert, bounded; the id when it has none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    /// `Id`.
    pub id: i64,
    /// The `pull_zone` label.
    pub name: String,
}

impl Zone {
    /// The zone's labels, on `sample`.
    pub fn labels(&self, sample: Sample) -> Sample {
        sample.label("pull_zone", self.name.clone()).label("pull_zone_id", self.id.to_string())
    }
}

/// The start of the UTC month of `now`, in Unix seconds.
pub fn month_start(now: i64) -> i64 {
    timeutil::month_start(now.div_euclid(86_400)) * 86_400
}

/// `EUTraffic` → `eu_traffic`, `ScriptingCpu` → `scripting_cpu`, `DB` → `db`: the `item` label
/// of a `MonthlyCharges*` field. Only ASCII letters and digits are kept.
pub fn item_slug(name: &str) -> String {
    let chars: Vec<char> = name.chars().filter(char::is_ascii_alphanumeric).collect();
    let mut out = String::with_capacity(chars.len() + 4);
    for (i, c) in chars.iter().enumerate() {
        let prev = i.checked_sub(1).map(|j| chars[j]);
        let next = chars.get(i + 1);
        let boundary = c.is_ascii_uppercase()
            && prev.is_some_and(|p| {
                p.is_ascii_lowercase()
                    || p.is_ascii_digit()
                    || (p.is_ascii_uppercase() && next.is_some_and(char::is_ascii_lowercase))
            });
        if boundary {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

fn amount(v: Num, what: &str, may_be_negative: bool) -> Result<Option<f64>, PollError> {
    match v {
        Num::Value(x) if x >= 0.0 || may_be_negative => Ok(Some(x)),
        Num::Value(_) => Err(PollError::parse(format!("{what} is negative: not data"))),
        Num::NonFinite => Err(PollError::parse(format!("{what} is not a finite number: not data"))),
        Num::Missing => Ok(None),
    }
}

fn required(v: Num, what: &str, may_be_negative: bool) -> Result<f64, PollError> {
    amount(v, what, may_be_negative)?.ok_or_else(|| PollError::parse(format!("/billing answer has no {what}")))
}

fn id(v: Num, what: &str) -> Result<i64, PollError> {
    match v.get() {
        Some(x) if x >= 1.0 && x.fract() == 0.0 && x < 9.0e15 => Ok(x as i64),
        _ => Err(PollError::parse(format!("{what} has an id that is not a positive whole number: not data"))),
    }
}

/// `/billing`: spend to date, cost to date per item, the prepaid balance, and last month's bill
/// (the newest MonthlyUsage record that bills the month before this one, see [`billed_month`]).
pub fn billing(b: &Billing<'_>, now: i64) -> Result<Vec<Sample>, PollError> {
    let mut out = vec![
        Sample::new(FamilyId::BillingMonthToDateSpendUsd, required(b.this_month, "ThisMonthCharges", false)?),
        Sample::new(FamilyId::BillingPrepaidBalanceUsd, required(b.balance, "Balance", true)?),
    ];
    let mut items: BTreeMap<String, f64> = BTreeMap::new();
    for (name, value) in &b.items {
        let what = format!("MonthlyCharges{}", text::label(name));
        let Some(v) = amount(*value, &what, false)? else { continue };
        let slug = item_slug(name);
        if slug.is_empty() || items.insert(slug.clone(), v).is_some() {
            return Err(PollError::parse(format!("{what} gives the item {slug:?} twice or none: not data")));
        }
    }
    drop_scripting_total(&mut items);
    out.extend(
        items.into_iter().map(|(item, v)| Sample::new(FamilyId::BillingMonthToDateCostUsd, v).label("item", item)),
    );
    let last_month = timeutil::month_start(month_start(now).div_euclid(86_400) - 1);
    if let Some((_, amount)) =
        monthly_records(&b.records)?.into_iter().rev().find(|(at, _)| billed_month(*at) == last_month)
    {
        out.push(Sample::new(FamilyId::BillingLastMonthSpendUsd, amount));
    }
    out.push(crate::currency::marker(CURRENCY));
    Ok(out)
}

/// The currency of bunny.net's amounts: US dollars (its API documents every amount in USD and
/// names no currency).
pub const CURRENCY: &str = "USD";

/// The spec calls `MonthlyChargesScripting` "the total monthly charges for Bunny Edge
/// Scripting" beside its `…ScriptingRequests` and `…ScriptingCpu` parts: when it equals their sum
/// (to the cent) it is that total, and is left out so that the items still add up; otherwise it
/// is a charge of its own and stays (both readings accepted: docs/providers/bunny.md).
pub fn drop_scripting_total(items: &mut BTreeMap<String, f64>) {
    let part = |k: &str| items.get(k).copied().unwrap_or(0.0);
    let parts = part("scripting_requests") + part("scripting_cpu");
    if parts > 0.0 && items.get("scripting").is_some_and(|total| (total - parts).abs() < 0.005) {
        items.remove("scripting");
    }
}

/// The first day of the month a MonthlyUsage record booked at `at` bills. Not documented; both
/// readings are accepted: booked on a month's last day, it bills that month; booked on any other
/// day (the first hours of a month, as seen), it bills the month before.
pub fn billed_month(at: i64) -> i64 {
    let day = at.div_euclid(86_400);
    let this = timeutil::month_start(day);
    if timeutil::month_start(day + 1) == day + 1 { this } else { timeutil::month_start(this - 1) }
}

/// Every MonthlyUsage record as (booked at, USD), newest last.
pub fn monthly_records(records: &[wire::Record<'_>]) -> Result<Vec<(i64, f64)>, PollError> {
    let mut out = Vec::new();
    for r in records.iter().filter(|r| wire::is_monthly_usage(&r.kind)) {
        let at = r.timestamp.get().and_then(wire::parse_time).ok_or_else(|| {
            PollError::parse("a MonthlyUsage billing record has no readable Timestamp: not data".to_owned())
        })?;
        let usd = required(r.amount, "Amount of a MonthlyUsage billing record", true)?;
        out.push((at, usd));
    }
    out.sort_by_key(|(at, _)| *at);
    Ok(out)
}

/// The zones of `/pullzone` pages as labelled.
pub fn zone(z: &PullZone<'_>) -> Result<Zone, PollError> {
    let id = id(z.id, "a /pullzone entry")?;
    let name = match z.name.get().map(str::trim) {
        Some(n) if !n.is_empty() => text::label(n),
        _ => id.to_string(),
    };
    Ok(Zone { id, name })
}

/// The zones broken down: the configured ids (each must be listed), or every zone, at most `max`.
pub fn select(listed: Vec<Zone>, configured: &[i64], max: usize) -> Result<Vec<Zone>, PollError> {
    let mut seen = std::collections::BTreeSet::new();
    if let Some(z) = listed.iter().find(|z| !seen.insert(z.id)) {
        return Err(PollError::parse(format!("/pullzone lists zone {} twice: not data", z.id)));
    }
    if configured.is_empty() {
        if listed.len() > max {
            return Err(PollError::parse(format!(
                "the account has {} pull zones, more than max_pull_zones ({max}): refused. Raise max_pull_zones \
                 or list the zones to break down in pull_zones",
                listed.len()
            )));
        }
        return Ok(listed);
    }
    configured
        .iter()
        .enumerate()
        .map(|(i, want)| {
            listed.iter().find(|z| z.id == *want).cloned().ok_or_else(|| {
                PollError::new(
                    crate::job::Reason::Provider,
                    format!(
                        "pull zone {want} (pull_zones[{i}]) is not among the account's pull zones: check pull_zones"
                    ),
                )
            })
        })
        .collect()
}

/// `/billing/summary`: cost and bandwidth this month per selected zone; a selected zone the
/// summary does not list had no usage (0). With every zone selected, a zone the summary lists
/// that `/pullzone` does not (deleted this month, its spend still real) is labelled by its id.
pub fn summary(items: &[SummaryItem], zones: &[Zone], every: bool, max: usize) -> Result<Vec<Sample>, PollError> {
    let mut figures: BTreeMap<i64, (f64, f64)> = BTreeMap::new();
    for item in items {
        let zone = id(item.pull_zone_id, "a /billing/summary entry")?;
        let cost = amount(item.monthly_usage, "MonthlyUsage of a /billing/summary entry", false)?.unwrap_or(0.0);
        let bytes =
            amount(item.monthly_bandwidth, "MonthlyBandwidthUsed of a /billing/summary entry", false)?.unwrap_or(0.0);
        if figures.insert(zone, (cost, bytes)).is_some() {
            return Err(PollError::parse(format!("/billing/summary lists zone {zone} twice: not data")));
        }
    }
    let mut labelled: Vec<Zone> = zones.to_vec();
    if every {
        for id in figures.keys() {
            if !labelled.iter().any(|z| z.id == *id) {
                labelled.push(Zone { id: *id, name: id.to_string() });
            }
        }
        if labelled.len() > max {
            return Err(PollError::parse(format!(
                "/billing/summary has {} pull zones, more than max_pull_zones ({max}): refused. Raise \
                 max_pull_zones or list the zones to break down in pull_zones",
                labelled.len()
            )));
        }
    }
    let mut out = Vec::with_capacity(labelled.len() * 2);
    for z in &labelled {
        let (cost, bytes) = figures.get(&z.id).copied().unwrap_or((0.0, 0.0));
        out.push(z.labels(Sample::new(FamilyId::BillingMonthToDatePullZoneCostUsd, cost)));
        out.push(z.labels(Sample::new(FamilyId::MonthToDateBandwidthBytes, bytes)));
    }
    out.push(crate::currency::marker(CURRENCY));
    Ok(out)
}

/// The sum of a chart's buckets that start in `[from, to)`.
pub fn sum(chart: &Chart, from: i64, to: i64) -> f64 {
    chart.0.iter().filter(|(t, _)| *t >= from && *t < to).map(|(_, v)| v).sum()
}

/// `/storagezone`: bytes and files per storage zone (deleted ones left out), at `now`.
pub fn storage(zones: &[StorageZone<'_>], max: usize, now: i64) -> Result<Vec<Sample>, PollError> {
    let live: Vec<&StorageZone<'_>> = zones.iter().filter(|z| z.deleted.0 != Some(true)).collect();
    if live.len() > max {
        return Err(PollError::parse(format!(
            "the account has {} storage zones, more than max_storage_zones ({max}): refused. Raise max_storage_zones",
            live.len()
        )));
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::with_capacity(live.len() * 3);
    for z in live {
        let id = id(z.id, "a /storagezone entry")?;
        if !seen.insert(id) {
            return Err(PollError::parse(format!("/storagezone lists zone {id} twice: not data")));
        }
        let name = match z.name.get().map(str::trim) {
            Some(n) if !n.is_empty() => text::label(n),
            _ => id.to_string(),
        };
        let bytes = amount(z.storage_used, "StorageUsed of a storage zone", false)?
            .ok_or_else(|| PollError::parse(format!("storage zone {id} has no StorageUsed")))?;
        let files = amount(z.files_stored, "FilesStored of a storage zone", false)?.unwrap_or(0.0);
        let l = |s: Sample| s.label("storage_zone", name.clone()).label("storage_zone_id", id.to_string());
        out.push(l(Sample::new(FamilyId::StorageBytes, bytes)));
        out.push(l(Sample::new(FamilyId::StorageFiles, files)));
        out.push(l(Sample::new(FamilyId::StorageSampleTimestampSeconds, now as f64)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::Reason;

    #[test]
    fn item_names_are_slugged() {
        for (name, slug) in [
            ("EUTraffic", "eu_traffic"),
            ("USTraffic", "us_traffic"),
            ("ASIATraffic", "asia_traffic"),
            ("DNS", "dns"),
            ("ExtraPullZones", "extra_pull_zones"),
            ("ScriptingCpu", "scripting_cpu"),
            ("DB", "db"),
            ("WebSockets", "web_sockets"),
            ("Mc2Volumes", "mc2_volumes"),
            ("Bad\n\"Name", "bad_name"),
        ] {
            assert_eq!(item_slug(name), slug, "{name}");
        }
    }

    fn billing_of(json: &str, now: i64) -> Result<Vec<Sample>, PollError> {
        let b: Billing<'_> = wire::parse(json.as_bytes(), 100, "billing")?;
        billing(&b, now)
    }

    #[test]
    fn billing_figures_and_last_month() {
        let june_day = 20_605;
        let june = june_day * 86_400;
        let json = r#"{"Balance":-2.5,"ThisMonthCharges":15.48,"MonthlyChargesEUTraffic":6.1,"MonthlyChargesDNS":0,
            "MonthlyChargesTaxes":null,"BillingRecords":[
              {"Amount":11,"Timestamp":"2026-05-01T00:05:00Z","Type":3},
              {"Amount":14.02,"Timestamp":"2026-06-01T00:05:12","Type":"MonthlyUsage"},
              {"Amount":100,"Timestamp":"2026-06-03T10:00:00Z","Type":2}]}"#;
        let s = billing_of(json, june + 86_400 * 5).unwrap();
        let get = |f: FamilyId, item: Option<&str>| {
            s.iter().find(|x| x.family == f && x.labels.first().map(|l| l.1.as_str()) == item).map(|x| x.value)
        };
        assert_eq!(get(FamilyId::BillingMonthToDateSpendUsd, None), Some(15.48));
        assert_eq!(get(FamilyId::BillingPrepaidBalanceUsd, None), Some(-2.5));
        assert_eq!(get(FamilyId::BillingMonthToDateCostUsd, Some("eu_traffic")), Some(6.1));
        assert_eq!(get(FamilyId::BillingMonthToDateCostUsd, Some("dns")), Some(0.0));
        assert_eq!(get(FamilyId::BillingMonthToDateCostUsd, Some("taxes")), None, "null is no figure");
        assert_eq!(get(FamilyId::BillingLastMonthSpendUsd, None), Some(14.02), "the newest monthly record");
        // In July, June's record is not last month's bill (July's is not booked yet).
        let s = billing_of(json, june + 86_400 * 31).unwrap();
        assert!(!s.iter().any(|x| x.family == FamilyId::BillingLastMonthSpendUsd));
        // Booked on May's last day, a record bills May: June's last month.
        let late = r#"{"Balance":1,"ThisMonthCharges":1,"BillingRecords":[{"Amount":9,"Timestamp":"2026-05-31T23:59:00Z","Type":3}]}"#;
        let s = billing_of(late, june + 86_400 * 5).unwrap();
        assert_eq!(s.iter().find(|x| x.family == FamilyId::BillingLastMonthSpendUsd).map(|x| x.value), Some(9.0));
        let may = timeutil::month_start(june_day - 1);
        assert_eq!(billed_month(june + 312), may, "booked June 1st: May");
        assert_eq!(billed_month(june - 400), may, "booked May 31st: May");
        assert_eq!(billed_month(june + 14 * 86_400), may, "booked mid-June: May");
        assert_eq!(billed_month(june - 2 * 86_400), timeutil::month_start(may - 1), "booked May 30th: April");
        for bad in [
            r#"{"Balance":1}"#,
            r#"{"ThisMonthCharges":1}"#,
            r#"{"Balance":1,"ThisMonthCharges":"NaN"}"#,
            r#"{"Balance":1,"ThisMonthCharges":1,"MonthlyChargesDNS":-1}"#,
            r#"{"Balance":1,"ThisMonthCharges":1,"MonthlyChargesDNS":1,"MonthlyCharges_DNS":1}"#,
            r#"{"Balance":1,"ThisMonthCharges":1,"BillingRecords":[{"Amount":1,"Timestamp":"x","Type":3}]}"#,
        ] {
            assert_eq!(billing_of(bad, june).unwrap_err().reason, Reason::Parse, "{bad}");
        }
    }

    #[test]
    fn zones_are_selected_and_bounded() {
        let z = |id, name: &str| Zone { id, name: name.into() };
        let listed = vec![z(1, "a"), z(2, "b"), z(3, "c")];
        assert_eq!(select(listed.clone(), &[], 3).unwrap().len(), 3);
        let err = select(listed.clone(), &[], 2).unwrap_err();
        assert!(err.message.contains("more than max_pull_zones (2)"), "{}", err.message);
        assert_eq!(select(listed.clone(), &[3, 1], 1).unwrap(), vec![z(3, "c"), z(1, "a")]);
        let err = select(listed.clone(), &[9], 5).unwrap_err();
        assert!(err.message.contains("pull_zones[0]"), "{}", err.message);
        assert!(select(vec![z(1, "a"), z(1, "b")], &[], 5).is_err());
        let named = zone(&PullZone { id: Num::Value(7.0), name: crate::providers::common::wire::Text(None) }).unwrap();
        assert_eq!(named, z(7, "7"));
        assert!(zone(&PullZone { id: Num::Value(1.5), name: Default::default() }).is_err());
        let hostile = "n\u{1b}[2J".repeat(200);
        let named =
            zone(&PullZone { id: Num::Value(8.0), name: crate::providers::common::wire::Text(Some(hostile.into())) })
                .unwrap();
        assert!(named.name.len() <= text::LABEL_BYTES && !named.name.chars().any(char::is_control), "{}", named.name);
    }

    #[test]
    fn summary_gives_every_selected_zone_and_deleted_ones_by_id() {
        let item = |id: f64, usd: f64, bytes: f64| SummaryItem {
            pull_zone_id: Num::Value(id),
            monthly_usage: Num::Value(usd),
            monthly_bandwidth: Num::Value(bytes),
        };
        let zones = vec![Zone { id: 1, name: "a".into() }, Zone { id: 2, name: "b".into() }];
        let s = summary(&[item(1.0, 2.5, 100.0), item(9.0, 1.0, 5.0)], &zones, true, 10).unwrap();
        assert_eq!(s.len(), 7, "two figures of three zones, and the currency");
        assert_eq!(s.last(), Some(&crate::currency::marker("USD")));
        let find = |f, zone: &str| s.iter().find(|x| x.family == f && x.labels[0].1 == zone).map(|x| x.value);
        assert_eq!(find(FamilyId::BillingMonthToDatePullZoneCostUsd, "a"), Some(2.5));
        assert_eq!(find(FamilyId::MonthToDateBandwidthBytes, "a"), Some(100.0));
        assert_eq!(find(FamilyId::MonthToDateBandwidthBytes, "b"), Some(0.0), "no entry: no usage");
        assert_eq!(find(FamilyId::BillingMonthToDatePullZoneCostUsd, "9"), Some(1.0));
        let s = summary(&[item(1.0, 2.5, 100.0), item(9.0, 1.0, 5.0)], &zones[..1], false, 10).unwrap();
        assert_eq!(s.len(), 3, "only the configured zone (and the currency)");
        assert!(summary(&[item(1.0, 1.0, 1.0), item(1.0, 1.0, 1.0)], &zones, true, 10).is_err());
        let non_finite = SummaryItem { monthly_usage: Num::NonFinite, ..item(1.0, 0.0, 1.0) };
        assert!(summary(&[non_finite], &zones, true, 10).is_err());
        assert!(summary(&[item(1.0, -1.0, 1.0)], &zones, true, 10).is_err());
        assert!(summary(&[item(9.0, 1.0, 1.0)], &zones, true, 2).is_err(), "bounded with the deleted zone");
    }

    #[test]
    fn storage_zones_exact_and_deleted_left_out() {
        let body =
            br#"[{"Id":5,"Name":"files","StorageUsed":53687091200,"FilesStored":18342,"Password":"pw","Deleted":false},
            {"Id":6,"Name":"old","StorageUsed":1,"FilesStored":1,"Deleted":true}]"#;
        let page: wire::Page<StorageZone<'_>> = wire::parse(body, 10, "s").unwrap();
        let s = storage(&page.items, 10, 1000).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!((s[0].family, s[0].value), (FamilyId::StorageBytes, 53_687_091_200.0));
        assert_eq!((s[1].family, s[1].value), (FamilyId::StorageFiles, 18_342.0));
        assert_eq!(s[0].labels, vec![("storage_zone", "files".to_owned()), ("storage_zone_id", "5".to_owned())]);
        assert!(storage(&page.items, 0, 1000).is_err());
    }
}
