use super::*;
use crate::config::Config;
use crate::providers::cdnetworks::CdnetworksAccount;
use crate::providers::cdnetworks::wire::Point;
use crate::timeutil;

fn account(extra: &str, pricing: &str) -> String {
    format!(
        "[[cdnetworks]]\nname = \"cn\"\nusername = \"u\"\napi_key = \"k\"\n{extra}\ndomains = [{{ domain = \"a.example.net\", contract = \"C\" }}]\n[cdnetworks.pricing]\n{pricing}\n"
    )
}

fn pricing_of(extra: &str, pricing: &str) -> Pricing {
    let c = Config::from_toml_str(&account(extra, pricing), "test").unwrap_or_else(|e| panic!("{e}"));
    c.accounts_of::<CdnetworksAccount>()[0].pricing.clone().expect("a pricing table")
}

#[test]
fn a_full_table_parses_with_its_defaults() {
    let p = pricing_of(
        "bandwidth_commit_mbps = 500\nbudget_usd = 2500",
        r#"traffic_usd_per_gb = [{ up_to_gb = 10000, usd = 0.05 }, { usd = 0.03 }]
bandwidth_usd_per_mbps = 1.20
overage_usd_per_mbps = 1.50
storage_usd_per_gb_month = 0.02
storage_basis = "average"
monthly_fee_usd = 100"#,
    );
    assert_eq!(
        p.traffic,
        Some(vec![Tier { up_to_gb: Some(10_000.0), price: 0.05 }, Tier { up_to_gb: None, price: 0.03 }])
    );
    assert_eq!(
        p.bandwidth,
        Some(BandwidthPrice { billing: BandwidthBilling::P95, per_mbps: 1.2, overage_per_mbps: Some(1.5) })
    );
    assert_eq!(p.storage, Some(StoragePrice { per_gb_month: 0.02, basis: StorageBasis::Average }));
    assert_eq!(p.monthly_fee, Some(100.0));
    let one = pricing_of(
        "",
        "traffic_usd_per_gb = 0.04\nbandwidth_billing = \"average_daily_peak\"\nbandwidth_usd_per_mbps = 2",
    );
    assert_eq!(one.traffic, Some(vec![Tier { up_to_gb: None, price: 0.04 }]));
    assert_eq!(one.bandwidth.map(|b| b.billing), Some(BandwidthBilling::AverageDailyPeak));
    assert_eq!(pricing_of("", "storage_usd_per_gb_month = 0.1").storage.map(|s| s.basis), Some(StorageBasis::Peak));
    // No table: no pricing, and the budget alone is allowed.
    let c = Config::from_toml_str(
        "[[cdnetworks]]\nname = \"cn\"\nusername = \"u\"\napi_key = \"k\"\nbudget_usd = 10\ndomains = [{ domain = \"a.example.net\", contract = \"C\" }]\n",
        "t",
    )
    .unwrap();
    let a = c.accounts_of::<CdnetworksAccount>()[0];
    assert_eq!((a.pricing.as_ref(), a.budget_usd), (None, Some(10.0)));
}

#[test]
fn a_contract_in_another_currency_names_it_and_its_prices_say_no_dollars() {
    let p = pricing_of(
        "bandwidth_commit_mbps = 500",
        r#"currency = "EUR"
traffic_per_gb = [{ up_to_gb = 10000, price = 0.05 }, { price = 0.03 }]
bandwidth_per_mbps = 1.20
overage_per_mbps = 1.50
storage_per_gb_month = 0.02
monthly_fee = 100"#,
    );
    assert_eq!(p.currency, "EUR");
    assert_eq!(
        p.traffic,
        Some(vec![Tier { up_to_gb: Some(10_000.0), price: 0.05 }, Tier { up_to_gb: None, price: 0.03 }])
    );
    assert_eq!(p.bandwidth.map(|b| (b.per_mbps, b.overage_per_mbps)), Some((1.2, Some(1.5))));
    assert_eq!(p.storage.map(|s| s.per_gb_month), Some(0.02));
    assert_eq!(p.monthly_fee, Some(100.0));
    assert_eq!(pricing_of("", "monthly_fee = 1").currency, "USD", "the default currency");
    // The older names say US dollars: read in a contract in USD, refused in another.
    let old =
        pricing_of("", "currency = \"USD\"\ntraffic_usd_per_gb = [{ up_to_gb = 10, usd = 0.5 }, { price = 0.4 }]");
    assert_eq!(old.traffic, Some(vec![Tier { up_to_gb: Some(10.0), price: 0.5 }, Tier { up_to_gb: None, price: 0.4 }]));
    let p = "cdnetworks[0].pricing";
    for (table, path, says) in [
        ("currency = \"EUR\"\nmonthly_fee_usd = 100", format!("{p}.monthly_fee_usd"), "Rename it to monthly_fee"),
        (
            "currency = \"EUR\"\nbandwidth_usd_per_mbps = 1",
            format!("{p}.bandwidth_usd_per_mbps"),
            "Rename it to bandwidth_per_mbps",
        ),
        (
            "currency = \"EUR\"\ntraffic_per_gb = [{ usd = 0.1 }]",
            format!("{p}.traffic_per_gb[0].usd"),
            "Rename it to price",
        ),
        ("monthly_fee = 1\nmonthly_fee_usd = 1", format!("{p}.monthly_fee_usd"), "Keep monthly_fee"),
        ("currency = \"euro\"\nmonthly_fee = 1", format!("{p}.currency"), "ISO 4217"),
    ] {
        let found = problems("", table);
        assert!(
            found.iter().any(|(at, message, line)| *at == path && message.contains(says) && line.is_some()),
            "{table:?}: want {path} with {says:?}, got {found:?}"
        );
    }
}

/// The problems of a bad table: (path, a word of the message, its line in the file).
fn problems(extra: &str, pricing: &str) -> Vec<(String, String, Option<usize>)> {
    let err = Config::from_toml_str(&account(extra, pricing), "test").unwrap_err();
    err.problems.iter().map(|p| (p.path.clone(), p.message.clone(), p.at.map(|a| a.line))).collect()
}

#[test]
fn each_rule_refuses_a_bad_table_with_its_path_line_and_fix() {
    let p = "cdnetworks[0].pricing";
    // The pricing table starts on line 7 of `account`; its first key is on line 8.
    for (extra, table, path, needle) in [
        ("", "traffic_usd_per_gb = -0.01", format!("{p}.traffic_usd_per_gb"), "at least 0"),
        ("", "monthly_fee_usd = nan", format!("{p}.monthly_fee_usd"), "at least 0"),
        ("", "bandwidth_usd_per_mbps = -1", format!("{p}.bandwidth_usd_per_mbps"), "at least 0"),
        ("", "storage_usd_per_gb_month = inf", format!("{p}.storage_usd_per_gb_month"), "at least 0"),
        (
            "",
            "traffic_usd_per_gb = [{ up_to_gb = 500, usd = 0.05 }, { up_to_gb = 100, usd = 0.04 }, { usd = 0.03 }]",
            format!("{p}.traffic_usd_per_gb[1].up_to_gb"),
            "out of order",
        ),
        (
            "",
            "traffic_usd_per_gb = [{ up_to_gb = 500, usd = 0.05 }, { up_to_gb = 500, usd = 0.04 }, { usd = 0.03 }]",
            format!("{p}.traffic_usd_per_gb[1].up_to_gb"),
            "overlap",
        ),
        (
            "",
            "traffic_usd_per_gb = [{ up_to_gb = 500, usd = 0.05 }, { up_to_gb = 900, usd = 0.04 }]",
            format!("{p}.traffic_usd_per_gb[1].up_to_gb"),
            "Remove up_to_gb from the last tier",
        ),
        (
            "",
            "traffic_usd_per_gb = [{ usd = 0.05 }, { usd = 0.04 }]",
            format!("{p}.traffic_usd_per_gb[0]"),
            "only the last tier may be open",
        ),
        ("", "traffic_usd_per_gb = []", format!("{p}.traffic_usd_per_gb"), "1 to 16"),
        ("", "traffic_usd_per_gb = \"cheap\"", format!("{p}.traffic_usd_per_gb"), "list of tiers"),
        (
            "",
            "traffic_usd_per_gb = [{ up_to_gb = 1 }, { usd = 0.03 }]",
            format!("{p}.traffic_usd_per_gb[0].price"),
            "needs its price",
        ),
        (
            "",
            "bandwidth_billing = \"p99\"\nbandwidth_usd_per_mbps = 1",
            format!("{p}.bandwidth_billing"),
            "\"average_daily_peak\"",
        ),
        (
            "",
            "storage_basis = \"median\"\nstorage_usd_per_gb_month = 1",
            format!("{p}.storage_basis"),
            "\"peak\" or \"average\"",
        ),
        ("", "", p.to_string(), "at least one of"),
        ("", "bandwidth_billing = \"p95\"", format!("{p}.bandwidth_billing"), "Add bandwidth_per_mbps"),
        ("", "storage_basis = \"peak\"", format!("{p}.storage_basis"), "Add storage_per_gb_month"),
        (
            "",
            "bandwidth_usd_per_mbps = 1\noverage_usd_per_mbps = 2",
            format!("{p}.overage_usd_per_mbps"),
            "Set bandwidth_commit_mbps",
        ),
        ("traffic = false", "traffic_usd_per_gb = 0.02", p.to_string(), "traffic = false"),
        ("", "trafic_usd_per_gb = 0.02", format!("{p}.trafic_usd_per_gb"), "traffic_usd_per_gb"),
    ] {
        let got = problems(extra, table);
        assert!(
            got.iter().any(|(gp, m, _)| *gp == path && m.contains(needle)),
            "{table:?}: want {path} with {needle:?}, got {got:?}"
        );
    }
    // A line is named where the problem is in the file.
    let got = problems("", "monthly_fee_usd = -5");
    assert_eq!(got[0].2, Some(8), "{got:?}");
}

#[test]
fn every_problem_of_a_table_is_listed_at_once() {
    let got = problems(
        "",
        r#"traffic_usd_per_gb = [{ up_to_gb = 900, usd = 0.05 }, { up_to_gb = 100, usd = -1 }]
bandwidth_billing = "p99"
bandwidth_usd_per_mbps = 1
overage_usd_per_mbps = 2
storage_basis = "mean"
storage_usd_per_gb_month = 0.02
monthly_fee_usd = -3"#,
    );
    let paths: Vec<&str> = got.iter().map(|(p, _, _)| p.as_str()).collect();
    for want in [
        "cdnetworks[0].pricing.traffic_usd_per_gb[1].up_to_gb",
        "cdnetworks[0].pricing.traffic_usd_per_gb[1].usd",
        "cdnetworks[0].pricing.bandwidth_billing",
        "cdnetworks[0].pricing.overage_usd_per_mbps",
        "cdnetworks[0].pricing.storage_basis",
        "cdnetworks[0].pricing.monthly_fee_usd",
    ] {
        assert!(paths.contains(&want), "{want} missing from {got:?}");
    }
    assert!(got.len() >= 7, "{got:?}");
}

/// Graduated tiers priced GB by GB: the independent computation.
fn by_the_gb(gb: u64, tiers: &[(f64, f64)]) -> f64 {
    (0..gb).map(|g| tiers.iter().find(|(top, _)| (g as f64) < *top).map_or(0.0, |(_, usd)| *usd)).sum()
}

#[test]
fn tiers_are_graduated() {
    let tiers = [
        Tier { up_to_gb: Some(100.0), price: 0.05 },
        Tier { up_to_gb: Some(250.0), price: 0.04 },
        Tier { up_to_gb: None, price: 0.03 },
    ];
    let flat = [(100.0, 0.05), (250.0, 0.04), (f64::INFINITY, 0.03)];
    for gb in [0u64, 1, 99, 100, 101, 250, 251, 1000] {
        let got = tiered(gb as f64, &tiers);
        assert!((got - by_the_gb(gb, &flat)).abs() < 1e-9, "{gb} GB: {got}");
    }
    // 150.5 GB: 100 at 0.05, 50.5 at 0.04.
    assert!((tiered(150.5, &tiers) - (5.0 + 50.5 * 0.04)).abs() < 1e-12);
}

#[test]
fn bandwidth_charges_the_commit_and_the_overage() {
    let p = BandwidthPrice { billing: BandwidthBilling::P95, per_mbps: 1.2, overage_per_mbps: Some(1.5) };
    assert!((bandwidth_charge(300.0, Some(500.0), &p) - 600.0).abs() < 1e-9, "below the commit: the commit");
    assert!((bandwidth_charge(700.0, Some(500.0), &p) - (600.0 + 300.0)).abs() < 1e-9);
    let same = BandwidthPrice { overage_per_mbps: None, ..p };
    assert!((bandwidth_charge(700.0, Some(500.0), &same) - 840.0).abs() < 1e-9, "overage defaults to the price");
    assert!((bandwidth_charge(700.0, None, &same) - 840.0).abs() < 1e-9);
}

#[test]
fn a_quote_follows_the_documented_formulas() {
    let pricing = Pricing {
        currency: "USD".into(),
        traffic: Some(vec![Tier { up_to_gb: Some(1000.0), price: 0.05 }, Tier { up_to_gb: None, price: 0.03 }]),
        bandwidth: Some(BandwidthPrice { billing: BandwidthBilling::P95, per_mbps: 2.0, overage_per_mbps: None }),
        storage: Some(StoragePrice { per_gb_month: 0.02, basis: StorageBasis::Peak }),
        monthly_fee: Some(100.0),
    };
    // 600 GB a quarter into the month: 2,400 GB at this pace.
    let usage = Usage { bytes: 600e9, bandwidth: 100.0 * BYTES_PER_SEC_PER_MBPS, storage_gb: 500.0 };
    let items = quote(&pricing, Some(50.0), &usage, 0.25);
    let names: Vec<&str> = items.iter().map(|i| i.name).collect();
    assert_eq!(names, ["traffic", "bandwidth", "storage", "fee"]);
    let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
    assert!(close(items[0].to_date, 30.0) && close(items[0].estimate, 50.0 + 1400.0 * 0.03), "{:?}", items[0]);
    assert_eq!(items[0].usage, Some((600.0, 2400.0)));
    assert!(close(items[1].estimate, 200.0) && close(items[1].to_date, 50.0), "{:?}", items[1]);
    let billed = items[1].usage.expect("Mbps-months");
    assert!(close(billed.0, 25.0) && close(billed.1, 100.0), "100 Mbps billed, a quarter accrued: {billed:?}");
    assert_eq!(items[3].usage, Some((0.25, 1.0)), "a quarter of the fee's month");
    assert_eq!(item_unit("bandwidth"), Some("Mbps-Months"));
    assert!(close(items[2].estimate, 10.0) && close(items[2].to_date, 2.5), "{:?}", items[2]);
    assert!(close(items[3].estimate, 100.0) && close(items[3].to_date, 25.0), "{:?}", items[3]);
    let samples = month_samples(&items, Some(usage.bandwidth), "EUR");
    assert_eq!(samples.last(), Some(&crate::currency::marker("EUR")), "amounts say their currency");
    let total = |f| samples.iter().find(|s| s.family == f).map(|s| s.value);
    assert!(close(total(FamilyId::BillingMonthToDateSpendUsd).unwrap(), 30.0 + 50.0 + 2.5 + 25.0));
    assert!(close(total(FamilyId::BillingEstimatedMonthSpendUsd).unwrap(), 92.0 + 200.0 + 10.0 + 100.0));
    assert_eq!(total(FamilyId::BillingBandwidthBytesPerSecond), Some(usage.bandwidth));
    let last = last_month_samples(&items, "EUR");
    assert!(close(total_of(&last, FamilyId::BillingLastMonthSpendUsd), 402.0), "{last:?}");
    assert_eq!(last.last(), Some(&crate::currency::marker("EUR")));
    // At the month's first second nothing is divided by zero.
    let start = quote(&pricing, None, &Usage::default(), 0.0);
    assert!(start.iter().all(|i| i.to_date == 0.0 && i.estimate.is_finite()), "{start:?}");
}

#[test]
fn the_elapsed_share_is_of_the_local_month() {
    let nine = 9 * 3600;
    let dec1 = timeutil::days_from_civil(2026, 12, 1);
    let start = dec1 * 86_400 - nine;
    assert_eq!(elapsed_share(start, dec1, nine), 0.0);
    assert_eq!(elapsed_share(start + 300, dec1, nine), 300.0 / (31.0 * 86_400.0));
    assert_eq!(elapsed_share(start + 31 * 86_400, dec1, nine), 1.0);
    assert_eq!(elapsed_share(start - 1, dec1, nine), 0.0);
}

#[test]
fn storage_days_are_their_highest_complete_point() {
    let first = timeutil::days_from_civil(2026, 11, 1);
    let start = first * 86_400; // UTC for simplicity
    let points = [
        Point { end: start - 3600, bytes: 7.0 },           // before the month: carried
        Point { end: start + 3600, bytes: 10.0 },          // day 1
        Point { end: start + 86_400, bytes: 30.0 },        // 24:00 of day 1
        Point { end: start + 86_400 + 3600, bytes: 20.0 }, // day 2
        Point { end: start + 2 * 86_400, bytes: 99.0 },    // day 2's last hour, still filling
    ];
    let m = StorageMonth::from_points(first, &points, 0, start + 2 * 86_400 - 60);
    assert_eq!(&m.days[..3], &[Some(30.0), Some(20.0), None]);
    let one = std::slice::from_ref(&m);
    assert_eq!(StorageMonth::billed_sum(one, StorageBasis::Peak), Some(30.0));
    assert_eq!(StorageMonth::billed_sum(one, StorageBasis::Average), Some(25.0));
    assert!(!m.complete);
    // Two domains: a day is their sum, the peak is the highest sum (not a sum of peaks).
    let other = StorageMonth::from_points(
        first,
        &[Point { end: start + 3600, bytes: 1.0 }, Point { end: start + 86_400 + 3600, bytes: 50.0 }],
        0,
        start + 2 * 86_400 - 60,
    );
    let both = [m.clone(), other];
    assert_eq!(StorageMonth::billed_sum(&both, StorageBasis::Peak), Some(70.0));
    assert_eq!(StorageMonth::billed_sum(&both, StorageBasis::Average), Some((31.0 + 70.0) / 2.0));
    let empty = StorageMonth::from_points(first, &points[..1], 0, start + 60);
    let empty = std::slice::from_ref(&empty);
    assert_eq!(
        StorageMonth::billed_sum(empty, StorageBasis::Average),
        Some(7.0),
        "before its first point, what was stored"
    );
    let whole =
        StorageMonth::from_points(first, &[Point { end: start + 30 * 86_400, bytes: 1.0 }], 0, start + 31 * 86_400);
    assert!(whole.complete);
}

fn total_of(samples: &[crate::job::Sample], f: FamilyId) -> f64 {
    samples.iter().find(|s| s.family == f).map_or(f64::NAN, |s| s.value)
}
