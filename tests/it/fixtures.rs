//! The providers' own example answers (tests/fixtures, fixed where the docs' JSON is invalid)
//! parse and normalize.

use cdn_usage_exporter::config::AnswerLimits;
use cdn_usage_exporter::families::FamilyId;
use cdn_usage_exporter::job::Sample;
use cdn_usage_exporter::providers::scaleengine::{self, client, normalize, wire};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/scaleengine/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    // Through the client's own answer handling, as a live answer would go.
    client::interpret(200, &text).unwrap_or_else(|e| panic!("{path}: {e}"));
    text
}

fn rows() -> wire::ListLimit {
    scaleengine::table_limit(&AnswerLimits::default())
}

fn entries() -> wire::ListLimit {
    scaleengine::entries_limit(&AnswerLimits::default())
}

fn find(samples: &[Sample], family: FamilyId, label: (&str, &str)) -> Option<f64> {
    samples
        .iter()
        .find(|s| s.family == family && s.labels.iter().any(|(k, v)| *k == label.0 && v == label.1))
        .map(|s| s.value)
}

#[test]
fn usage_summary_example() {
    let body = fixture("usage.summary.json");
    let table = wire::parse_table(&body, rows(), "usage.summary answer").unwrap();
    assert_eq!(table.rows.len(), 22);
    assert_eq!(table.rows[19].name, "Origin I/O Transactions:");
    let (samples, unmapped) = normalize::summary(&table).unwrap();
    let one = |f: FamilyId| samples.iter().find(|s| s.family == f).map(|s| s.value);
    assert_eq!(one(FamilyId::MonthToDateOriginIoTransactions), Some(28_103.0));
    assert_eq!(one(FamilyId::MonthToDateOriginMemorySeconds), Some(31_802.0));
    assert_eq!(one(FamilyId::OriginProcesses), Some(0.0));
    assert_eq!(find(&samples, FamilyId::MonthToDateCpuSeconds, ("product", "origin")), Some(0.0));
    assert_eq!(unmapped, ["Origin Disk:"]);
    // 22 rows less 3 totals ("Total Bandwidth", "Total Requests", "SQL Query Total").
    assert_eq!(samples.len(), 19);
}

#[test]
fn usage_billing_live_example() {
    let body = fixture("usage.billing.live.json");
    let table = wire::parse_table(&body, rows(), "usage.billing.live answer").unwrap();
    let samples = normalize::billing(&table).unwrap();
    // 15 items × 4 columns + the totals row's two figures + the currency (US dollars).
    assert_eq!(samples.len(), 15 * 4 + 2 + 1);
    assert_eq!(samples.last(), Some(&cdn_usage_exporter::currency::marker("USD")));
    assert_eq!(find(&samples, FamilyId::BillingEstimatedMonthCostUsd, ("item", "storage_usage")), Some(0.0));
    assert!(samples.iter().any(|s| s.family == FamilyId::BillingEstimatedMonthSpendUsd));
    assert!(samples.iter().all(|s| s.labels.iter().all(|(_, v)| v != "totals")));
}

#[test]
fn disk_usage_example() {
    let days = wire::parse_disk(&fixture("disk.usage.json"), entries()).unwrap();
    assert_eq!(days.len(), 2);
    let today = cdn_usage_exporter::timeutil::parse_ymd("2014-11-12").unwrap();
    let samples = normalize::disk(&days, today).unwrap();
    assert_eq!(find(&samples, FamilyId::StorageBytes, ("user", "__all__")), Some(1024.0));
    let ts = find(&samples, FamilyId::StorageSampleTimestampSeconds, ("user", "__all__"));
    assert_eq!(ts, Some(1_415_750_400.0), "the end of 2014-11-11: 2014-11-12T00:00:00Z");
}

#[test]
fn video_usage_example() {
    let body = fixture("video.usage.json");
    let page = wire::parse_video(&body, entries()).unwrap();
    assert_eq!(page.count, Some(2));
    assert_eq!(page.entries[0].url.get().unwrap(), "sestore/jb/my_video.mp4");
    let samples = normalize::video("demo-origin", &page.entries, 20).unwrap();
    assert_eq!(find(&samples, FamilyId::VideoMonthToDateBytes, ("url", "sestore/jb/my_video.mp4")), Some(7_981_635.0));
    assert_eq!(find(&samples, FamilyId::VideoMonthToDateRequests, ("url", "sestore/jb/my_video.mp4")), Some(2.0));
}

#[test]
fn malformed_answers_are_parse_errors_not_panics() {
    for body in [r#"{"status":"success"}"#, r#"{"data":{"vals":[1]}}"#, r#"{"data":{"vals":[[]]}}"#, "[]", "null"] {
        assert!(wire::parse_table(body.as_bytes(), rows(), "usage.summary answer").is_err(), "{body}");
    }
    assert!(wire::parse_disk(br#"{"usage": "x"}"#, entries()).is_err());
    assert!(wire::parse_video(br#"{"usage": 5}"#, entries()).is_err());
    assert_eq!(wire::parse_video(br#"{"usage": [], "count": 0}"#, entries()).unwrap().entries.len(), 0);
}

mod cdnetworks {
    use cdn_usage_exporter::job::Reason;
    use cdn_usage_exporter::providers::cdnetworks::{interpret, wire};
    use cdn_usage_exporter::timeutil;

    const NINE: i64 = 9 * 3600;

    fn ctx() -> wire::Context<'static> {
        wire::Context {
            domain: "edu.xxx.net",
            contract: "xxxxxx-xxx",
            path: "cdnetworks[0].domains[0]",
            date_from: "2022-08-01",
            date_to: "2022-08-05",
        }
    }

    fn read(path: &str) -> Vec<u8> {
        let path = format!("{}/tests/fixtures/cdnetworks/{path}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn domain_usage_example() {
        let points = interpret(200, &read("domain-usage.json"), &ctx(), NINE, 10_000).unwrap();
        assert_eq!(points.len(), 5);
        assert_eq!(points[0].bytes, 2135.0);
        // On 2022-08-05 at noon in GMT+9, the 08-05 point is still filling: 08-04's is shown.
        let noon = timeutil::days_from_civil(2022, 8, 5) * 86_400 + 12 * 3600 - NINE;
        let shown = wire::newest_complete(&points, noon).unwrap();
        assert_eq!(shown.bytes, 2141.0);
        assert_eq!(shown.end, timeutil::days_from_civil(2022, 8, 5) * 86_400 - NINE);
    }

    #[test]
    fn every_error_of_the_docs_table() {
        let dir = format!("{}/tests/fixtures/cdnetworks/errors", env!("CARGO_MANIFEST_DIR"));
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let status: u16 = name[..3].parse().unwrap();
            let body = std::fs::read(&path).unwrap();
            let code = serde_json::from_slice::<serde_json::Value>(&body).unwrap()["code"].as_str().unwrap().to_owned();
            let err = interpret(status, &body, &ctx(), NINE, 10_000).unwrap_err();
            let expected = match code.as_str() {
                "34102022" => Reason::Auth,
                "24102500" => Reason::Http,
                _ => Reason::Provider,
            };
            assert_eq!(err.reason, expected, "{name}: {}", err.message);
            assert!(err.message.contains(&code), "{name}: {}", err.message);
            assert!(
                err.message.contains("edu.xxx.net") || err.message.contains("2022-08-01") || code == "24102500",
                "{name}: the message names what to fix: {}",
                err.message
            );
            seen += 1;
        }
        assert_eq!(seen, 8, "one fixture per row of the doc's table");
    }

    #[test]
    fn xml_and_html_answers_are_errors() {
        let err = interpret(200, b"<?xml version=\"1.0\"?><x/>", &ctx(), NINE, 10_000).unwrap_err();
        assert_eq!(err.reason, Reason::Parse);
        let err = interpret(502, b"<html>bad gateway</html>", &ctx(), NINE, 10_000).unwrap_err();
        assert_eq!(err.reason, Reason::Http);
        assert!(err.message.contains("bad gateway"), "{}", err.message);
    }
}
