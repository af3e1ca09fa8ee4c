//! Unit tests of the traffic module: answer parsing, the percentile, local-day windows and the
//! kept month's settling and figures.

use super::*;
use crate::job::PollError;
use crate::timeutil;
use serde_json::json;

const NINE: i64 = 9 * 3600;

#[test]
fn p95_is_the_value_at_rank_ceil_095_n() {
    assert_eq!(p95::<u32>(&mut []), None);
    assert_eq!(p95(&mut [7u32]), Some(7));
    // n = 20: rank 19, the top one dropped.
    let mut v: Vec<u32> = (1..=20).rev().collect();
    assert_eq!(p95(&mut v), Some(19));
    // n = 100: rank 95; n = 101: rank ceil(95.95) = 96.
    let mut v: Vec<u32> = (1..=100).collect();
    assert_eq!(p95(&mut v), Some(95));
    let mut v: Vec<u32> = (1..=101).collect();
    assert_eq!(p95(&mut v), Some(96));
    // A 31-day month: 8,928 slices, rank 8,482, the top 446 dropped.
    let mut v: Vec<u32> = (0..8928).map(|i| (i * 7919) % 8928).collect();
    assert_eq!(p95(&mut v), Some(8481));
    // Against a sort, on uneven data with ties.
    for n in 1..300u32 {
        let mut v: Vec<u32> = (0..n).map(|i| (i * 37 + 11) % 50).collect();
        let mut sorted = v.clone();
        sorted.sort_unstable();
        let rank = (f64::from(n) * 0.95).ceil() as usize;
        assert_eq!(p95(&mut v), Some(sorted[rank - 1]), "n = {n}");
    }
}

#[test]
fn day_windows_carry_the_zone_offset() {
    let day = timeutil::days_from_civil(2026, 11, 1);
    assert_eq!(local_midnight(day, NINE), "2026-11-01T00:00:00+09:00");
    assert_eq!(local_midnight(day, -(5 * 3600 + 1800)), "2026-11-01T00:00:00-05:30");
    assert_eq!(local_midnight(day, 0), "2026-11-01T00:00:00+00:00");
}

#[test]
fn the_month_turns_at_local_midnight() {
    let dec1 = timeutil::days_from_civil(2026, 12, 1);
    let nov1 = timeutil::days_from_civil(2026, 11, 1);
    // 1 December 03:00 UTC is still 30 November 22:00 in GMT-05:00, already 12:00 in GMT+09:00.
    let t = dec1 * 86_400 + 3 * 3600;
    assert_eq!(local_month(t, -5 * 3600), (dec1 - 1, nov1));
    assert_eq!(local_month(t, NINE), (dec1, dec1));
    // GMT+09:00 turns at 15:00 UTC the day before.
    assert_eq!(local_month(dec1 * 86_400 - NINE - 1, NINE), (dec1 - 1, nov1));
    assert_eq!(local_month(dec1 * 86_400 - NINE, NINE), (dec1, dec1));
    // In a negative zone, the day windows and what is due follow the local days.
    let m = Month::new(nov1, 1);
    let (today, _) = local_month(t, -5 * 3600);
    assert_eq!(m.due(today, -5 * 3600, 86_400).len(), 30, "all of November");
    assert_eq!(local_midnight(today, -5 * 3600), "2026-11-30T00:00:00-05:00");
}

fn slice(stamp: &str, traffic: &str, bw: &str, req: &str) -> serde_json::Value {
    json!({"timestamp": stamp, "traffic": traffic, "bandwidth": bw, "requests": req})
}

fn parse(body: &serde_json::Value, asked: &[&str], day: i64, offset: i64) -> Result<DayAnswer, PollError> {
    let asked: Vec<String> = asked.iter().map(|s| s.to_string()).collect();
    let bytes = body.to_string();
    day_slices(parse_answer(bytes.as_bytes(), asked.len())?, &asked, day * 86_400 - offset, offset)
}

#[test]
fn slices_are_placed_by_their_end_in_the_zone_and_the_leading_one_is_left_out() {
    let day = timeutil::days_from_civil(2026, 11, 1);
    let body = json!({"result": [{"domain": "a.example", "dataSeries": [
        slice("2026-11-01 00:00", "9", "9", "9"),
        slice("2026-11-01 00:05", "1.25", "0.91", "512"),
        slice("2026-11-02 00:00", "2", "1.5", "1"),
    ]}, {"domain": "other.example", "dataSeries": []}]});
    let a = parse(&body, &["a.example", "b.example"], day, NINE).unwrap();
    assert_eq!(a.ignored, 1);
    assert_eq!(a.domains.len(), 1);
    let s = &a.domains[0].slices;
    assert_eq!(s.len(), 2, "the slice ending at the day's start belongs to the day before");
    assert_eq!(s[0], Slice { end: day * 86_400 - NINE + 300, traffic_centi_mb: 125, kbps: 910, requests: 512 });
    assert_eq!(s[1].end, (day + 1) * 86_400 - NINE);
}

#[test]
fn answers_that_are_not_data_are_errors() {
    let day = timeutil::days_from_civil(2026, 11, 1);
    let one = |s: serde_json::Value| json!({"result": [{"domain": "a.example", "dataSeries": [s]}]});
    for (body, needle) in [
        (one(slice("2026-11-01 00:05", "-1", "1", "1")), "negative traffic"),
        (one(slice("2026-11-01 00:05", "1", "NaN", "1")), "finite"),
        (one(slice("2026-11-01 00:05", "1", "1", "1e400")), "finite"),
        (one(json!({"timestamp": "2026-11-01 00:05", "traffic": "1", "bandwidth": "1"})), "no requests"),
        (one(slice("2026-11-01 00:07", "1", "1", "1")), "5-minute"),
        (one(slice("2026-11-01", "1", "1", "1")), "5-minute"),
        (one(slice("bogus", "1", "1", "1")), "5-minute"),
        (
            json!({"result": [{"domain": "a.example", "dataSeries": [
                slice("2026-11-01 00:05", "1", "1", "1"), slice("2026-11-01 00:05", "1", "1", "1")]}]}),
            "two slices",
        ),
        (json!({"result": [{"domain": "a.example"}, {"domain": "a.example"}]}), "twice"),
        (json!({"result": [{"domain": "a.example"}, {"domain": "x"}, {"domain": "y"}]}), "3 results"),
        (json!({"code": "0"}), "no \"result\""),
    ] {
        let e = parse(&body, &["a.example", "b.example"], day, NINE).unwrap_err();
        assert!(e.message.contains(needle), "{body}: {}", e.message);
    }
    let many: Vec<_> =
        (0..290).map(|i| slice(&format!("2026-11-01 {:02}:{:02}", i / 12, i % 12 * 5), "1", "1", "1")).collect();
    let e = parse(&json!({"result": [{"domain": "a.example", "dataSeries": many}]}), &["a.example"], day, NINE)
        .unwrap_err();
    assert!(e.message.contains("289") && e.message.contains("answer_limits.traffic_bytes"), "{e}");
}

/// A day answer with one slice per slot for domain 0: kbps = f(slot), traffic 1.00 MB, 1 request.
fn full_day(slots: usize, kbps: impl Fn(usize) -> u32, day_start: i64) -> DayAnswer {
    let slices = (0..slots)
        .map(|k| Slice { end: day_start + 300 * (k as i64 + 1), traffic_centi_mb: 100, kbps: kbps(k), requests: 1 })
        .collect();
    DayAnswer { domains: vec![DomainDay { index: 0, slices }], ignored: 0 }
}

#[test]
fn settle_logic_fetches_today_and_the_settle_window_only() {
    let first = timeutil::days_from_civil(2026, 11, 1);
    let settle = 86_400;
    let mut m = Month::new(first, 1);
    // The 10th, 12:00 local: the first poll walks days 1..=10.
    let today = first + 9;
    let now = today * 86_400 - NINE + 12 * 3600;
    let due = m.due(today, NINE, settle);
    assert_eq!(due, (0..10).map(|d| (d, 0)).collect::<Vec<_>>());
    for (d, c) in due {
        m.keep(d, c, &full_day(288, |_| 1, (first + d as i64) * 86_400 - NINE), NINE, now);
    }
    // Days that ended a day or more before the fetch are final; the 9th (ended 12 h ago)
    // and today are not.
    assert_eq!(m.due(today, NINE, settle), vec![(8, 0), (9, 0)]);
    // Next day 13:00: the 9th is due once more (fetched before it settled), then final.
    let now2 = now + 86_400 + 3600;
    assert_eq!(m.due(today + 1, NINE, settle), vec![(8, 0), (9, 0), (10, 0)]);
    for (d, c) in m.due(today + 1, NINE, settle) {
        m.keep(d, c, &full_day(288, |_| 1, (first + d as i64) * 86_400 - NINE), NINE, now2);
    }
    assert_eq!(m.due(today + 1, NINE, settle), vec![(9, 0), (10, 0)]);
    let f = m.figures(NINE, settle);
    assert_eq!(f.settled_until, Some((first + 9) * 86_400 - NINE), "the 9th is the newest final day");
}

#[test]
fn figures_leave_the_filling_slice_out_of_peak_and_p95_only() {
    let first = timeutil::days_from_civil(2026, 11, 1);
    let mut m = Month::new(first, 2);
    let start = first * 86_400 - NINE;
    // Domain 0: 100 slices of 1..=100 kbit/s, then a filling slice of 10,000.
    let mut a = full_day(101, |k| if k == 100 { 10_000 } else { k as u32 + 1 }, start);
    // Domain 1: the same slots, 1000 kbit/s each.
    let mut b = full_day(101, |_| 1000, start);
    b.domains[0].index = 1;
    a.domains.append(&mut b.domains);
    m.keep(0, 0, &a, NINE, start + 101 * 300 + 60);
    let f = m.figures(NINE, 86_400);
    let (bytes, requests, peak, p) = f.domains[0];
    assert_eq!(bytes, 101.0 * 1e6, "bytes and requests count the filling slice");
    assert_eq!(requests, 101.0);
    assert_eq!(peak, 100.0 * 125.0, "the filling slice is not the peak");
    assert_eq!(p, 95.0 * 125.0);
    assert_eq!(f.domains[1].3, 1000.0 * 125.0);
    // The account: per-slot sums 1001..=1100 kbit/s, rank 95 → 1095.
    assert_eq!(f.account_p95, 1095.0 * 125.0);
    assert_eq!(f.account_peak, 1100.0 * 125.0);
    assert_eq!(f.settled_until, None);
}

#[test]
fn a_new_month_starts_empty_and_february_has_28_days() {
    let m = Month::new(timeutil::days_from_civil(2027, 2, 1), 3);
    assert_eq!(m.fetched_at.len(), 28);
    let f = m.figures(0, 86_400);
    assert_eq!(f.domains, vec![(0.0, 0.0, 0.0, 0.0); 3]);
    assert_eq!((f.account_peak, f.account_p95, f.settled_until), (0.0, 0.0, None));
    // 2,500 domains: three chunks per day.
    let m = Month::new(timeutil::days_from_civil(2027, 2, 1), 2500);
    assert_eq!(m.due(m.first_day(), 0, 86_400).len(), 3);
}

#[test]
fn a_domain_keeps_at_most_about_36_kb() {
    let bytes = Month::max_bytes_per_domain();
    assert!(bytes <= 37 * 1024, "{bytes}");
    assert!(bytes >= 31 * 288 * 4, "{bytes}");
}
