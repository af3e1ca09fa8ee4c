use super::*;
use crate::currency::marker;
use crate::timeutil::days_from_civil;

fn cost(item: &str, v: f64) -> Sample {
    Sample::new(FamilyId::BillingMonthToDateCostUsd, v).label("item", item)
}

fn used(item: &str, v: f64) -> Sample {
    Sample::new(FamilyId::BillingMonthToDateUsage, v).label("item", item)
}

fn total(v: f64) -> Sample {
    Sample::new(FamilyId::BillingMonthToDateSpendUsd, v)
}

fn units(labels: &[(&'static str, String)]) -> Option<&'static str> {
    match item_of(labels) {
        "traffic" => Some("GB"),
        "fee" => Some(MONTHS),
        _ => None,
    }
}

const PROFILE: Profile = Profile { name: "Example CDN", utc_offset: 9 * 3600, unit: units };

#[test]
fn daily_points_become_daily_rows_that_add_up_to_the_bill() {
    let nov = days_from_civil(2026, 11, 1);
    let (start, end) = period(nov, PROFILE.utc_offset);
    assert_eq!(datetime(start), "2026-10-31T15:00:00Z", "a GMT+9 month starts at 15:00 UTC the day before");
    assert_eq!(end - start, 30 * 86_400);
    let day = |d: i64| start + d * 86_400;
    let held = [
        (
            day(1),
            vec![
                cost("traffic", 10.0),
                used("traffic", 100.0),
                cost("fee", 1.0),
                used("fee", 0.1),
                total(11.0),
                marker("EUR"),
            ],
        ),
        (
            day(2),
            vec![
                cost("traffic", 25.0),
                used("traffic", 250.0),
                cost("fee", 2.0),
                used("fee", 0.2),
                total(27.0),
                marker("EUR"),
            ],
        ),
        // A credit on day 3, and a total the items do not reach.
        (
            day(3),
            vec![
                cost("traffic", 25.0),
                used("traffic", 250.0),
                cost("fee", 2.0),
                cost("credit", -4.0),
                total(30.0),
                marker("EUR"),
            ],
        ),
        // Outside the month: not this bill.
        (end + 10, vec![cost("traffic", 999.0), marker("EUR")]),
    ];
    let points: Vec<Point<'_>> =
        held.iter().flat_map(|(at, s)| s.iter().map(|sample| Point { at: *at, sample })).collect();
    let b = bill("cdnetworks", "cn", &PROFILE, nov, end + 100, &points).unwrap();
    assert_eq!(b.currency, "EUR");
    assert_eq!(b.total, 30.0);
    let sum: f64 = b.charges.iter().map(|c| c.cost).sum();
    assert!((sum - 30.0).abs() < 1e-9, "the rows add up to the bill: {sum}");
    let traffic: Vec<&Charge> = b.charges.iter().filter(|c| c.item == "traffic").collect();
    assert_eq!(traffic.len(), 2, "a day with no growth has no row");
    assert_eq!((traffic[1].start, traffic[1].end, traffic[1].cost), (day(1), day(2), 15.0));
    assert_eq!(traffic[1].quantity, Some((150.0, "GB")));
    assert_eq!(traffic[1].category, Category::Usage);
    let fee = b.charges.iter().find(|c| c.item == "fee").unwrap();
    assert_eq!((fee.category, fee.quantity, fee.recurring), (Category::Usage, Some((0.1, MONTHS)), true));
    let credit = b.charges.iter().find(|c| c.item == "credit").unwrap();
    assert_eq!((credit.category, credit.quantity), (Category::Credit, None));
    let rest = b.charges.iter().find(|c| c.item == "unitemised").unwrap();
    assert_eq!((rest.category, rest.cost), (Category::Adjustment, 7.0));
}

#[test]
fn a_month_end_figure_is_one_row_for_the_month_and_a_total_alone_is_one_usage_row() {
    let oct = days_from_civil(2026, 10, 1);
    let plain = Profile::plain("Plain");
    let (start, end) = period(oct, 0);
    let held = [total(12.5), marker("USD")];
    let points: Vec<Point<'_>> = held.iter().map(|sample| Point { at: end - 1, sample }).collect();
    let b = bill("bunny", "b", &plain, oct, end + 5, &points).unwrap();
    assert_eq!(b.charges.len(), 1);
    let c = &b.charges[0];
    assert_eq!((c.start, c.end, c.cost, c.category), (start, end, 12.5, Category::Usage), "snapped to the month's end");
    let none: Vec<Point<'_>> = Vec::new();
    assert_eq!(bill("bunny", "b", &plain, oct, end, &none), Err(BillError::Empty));
    let nameless = [total(1.0)];
    let points: Vec<Point<'_>> = nameless.iter().map(|sample| Point { at: end - 1, sample }).collect();
    assert_eq!(bill("bunny", "b", &plain, oct, end, &points), Err(BillError::NoCurrency));
}

#[test]
fn the_csv_is_what_focus_type_inference_reads() {
    assert_eq!(decimal(12.0), "12.00");
    assert_eq!(decimal(0.1 + 0.2), "0.30");
    assert_eq!(decimal(1.234_567_891_23), "1.2345678912");
    assert_eq!(decimal(-0.000_000_000_01), "0.00");
    assert_eq!(decimal(f64::NAN), "0.00");
    assert_eq!(decimal(-3.5), "-3.50");
    assert_eq!(parse_month("2026-11"), Some(days_from_civil(2026, 11, 1)));
    for bad in ["2026-13", "2026-1", "26-11", "2026-11-01", "x"] {
        assert_eq!(parse_month(bad), None, "{bad}");
    }
    let b = Bill {
        provider: "fastly",
        account: "a,\"b\"".into(),
        profile_name: "Fastly",
        currency: "EUR".into(),
        period_start: 0,
        period_end: 86_400,
        charges: vec![Charge {
            item: "x".into(),
            description: "line\nbreak".into(),
            category: Category::Usage,
            start: 0,
            end: 3600,
            cost: 2.0,
            quantity: None,
            recurring: false,
        }],
        total: 2.0,
    };
    let text = csv(&[b]);
    let mut lines = text.lines();
    assert_eq!(lines.next().map(|h| h.split(',').count()), Some(COLUMNS.len()));
    assert!(text.contains(",\"a,\"\"b\"\"\","), "quoted and doubled: {text}");
    assert!(text.contains("\"line\nbreak\""));
    assert!(text.contains(",1970-01-01T01:00:00Z,"), "{text}");
    assert!(text.starts_with("BilledCost,") && text.contains("\n2.00,\"fastly:a,\"\"b\"\"\","), "{text}");
}
