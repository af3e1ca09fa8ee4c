//! Property tests: whatever JSON (or bytes) a provider sends, no parser or normalizer panics.

use cdn_usage_exporter::providers::cdnetworks::{self, wire as cn};
use cdn_usage_exporter::providers::scaleengine::{client, normalize, wire};
use proptest::prelude::*;
use serde_json::{Map, Value};

/// Arbitrary JSON, biased towards the shapes the providers use (tables, cells, usage lists).
fn json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("data".to_owned()),
        Just("vals".to_owned()),
        Just("cols".to_owned()),
        Just("usage".to_owned()),
        Just("count".to_owned()),
        Just("status".to_owned()),
        Just("code".to_owned()),
        Just("message".to_owned()),
        Just("v".to_owned()),
        Just("f".to_owned()),
        Just("timestamp".to_owned()),
        Just("summary_date".to_owned()),
        Just("bytes_total".to_owned()),
        Just("video_url".to_owned()),
        Just("cpu_user".to_owned()),
        "[a-z_]{0,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null)),
        "[0-9 ,.eE+-]{0,12}".prop_map(Value::String),
        "\\PC{0,16}".prop_map(Value::String),
        Just(Value::String("2024-02-29 24:00".into())),
        Just(Value::String("failure".into())),
    ];
    leaf.prop_recursive(4, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn no_floats(v: Value) -> Value {
    match v {
        Value::Number(n) if n.is_f64() => Value::from(n.as_f64().unwrap_or_default() as i64),
        Value::Array(a) => Value::Array(a.into_iter().map(no_floats).collect()),
        Value::Object(m) => Value::Object(m.into_iter().map(|(k, v)| (k, no_floats(v))).collect()),
        other => other,
    }
}

fn numeric(v: Value) -> Value {
    match v {
        Value::Number(n) => n.as_f64().and_then(serde_json::Number::from_f64).map(Value::Number).unwrap_or(Value::Null),
        Value::Array(a) => Value::Array(a.into_iter().map(numeric).collect()),
        Value::Object(m) => Value::Object(m.into_iter().map(|(k, v)| (k, numeric(v))).collect()),
        other => other,
    }
}

fn ctx() -> cn::Context<'static> {
    cn::Context {
        domain: "d",
        contract: "c",
        path: "cdnetworks[0].domains[0]",
        date_from: "2026-01-01",
        date_to: "2026-01-03",
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn scaleengine_parsers_never_panic(v in json(), top_n in 0usize..5, max in 0usize..6) {
        let body = v.to_string();
        let body = body.as_bytes();
        let rows = wire::ListLimit { max, items: "rows", key: "answer_limits.table_rows" };
        if let Ok(t) = wire::parse_table(body, rows, "usage.summary answer") {
            prop_assert!(t.rows.len() <= max);
            if let Ok((samples, _)) = normalize::summary(&t) {
                // Whatever passes is data: finite, and no usage below zero.
                prop_assert!(samples.iter().all(|s| s.value.is_finite() && s.value >= 0.0));
            }
            if let Ok(samples) = normalize::billing(&t) {
                prop_assert!(samples.iter().all(|s| s.value.is_finite()));
            }
        }
        if let Ok(days) = wire::parse_disk(body, rows) {
            prop_assert!(days.len() <= max);
            let _ = normalize::disk(&days, 20_000);
        }
        if let Ok(page) = wire::parse_video(body, rows) {
            prop_assert!(page.entries.len() <= max);
            if let Ok(samples) = normalize::video("app", &page.entries, top_n) {
                prop_assert!(samples.iter().all(|s| s.value.is_finite() && s.value >= 0.0));
                prop_assert!(samples.len() <= 2 * (top_n + 1));
            }
        }
        let _ = client::interpret(200, body);
    }

    #[test]
    fn cdnetworks_parsers_never_panic(v in json(), offset in -50_400i64..50_400) {
        let body = v.to_string();
        let limit = wire::ListLimit { max: 4, items: "points", key: "answer_limits.page_entries" };
        if let Ok(points) = cn::parse_points(body.as_bytes(), offset, limit) {
            prop_assert!(points.iter().all(|p| p.bytes.is_finite() && p.bytes >= 0.0));
            let _ = cn::newest_complete(&points, 1_800_000_000);
        }
        for status in [200u16, 400, 401, 446, 500] {
            let _ = cdnetworks::interpret(status, body.as_bytes(), &ctx(), offset, 4);
        }
    }

    #[test]
    fn arbitrary_bytes_are_errors_not_panics(bytes in prop::collection::vec(any::<u8>(), 0..512), status in 100u16..600) {
        let _ = client::interpret(status, &bytes);
        let _ = cdnetworks::interpret(status, &bytes, &ctx(), 9 * 3600, 10_000);
    }

    #[test]
    fn provider_text_is_always_bounded_and_inert(text in "\\PC{0,64}|[\\x00-\\x1f\\x7f\\u{80}-\\u{9f}\\u{2028}\\u{202e} a-z]{0,600}", max in 16usize..300) {
        let out = cdn_usage_exporter::text::inert(&text, max);
        prop_assert!(!out.chars().any(|c| c.is_control() || c == '\u{2028}' || c == '\u{202e}'), "{:?}", out);
        prop_assert!(out.len() <= max + "…[99999 bytes cut]".len(), "{} > {}", out.len(), max);
        if out.len() <= max && !out.contains('…') {
            // Nothing cut: the text is all there, only escaped.
            prop_assert!(out.len() >= text.len());
        }
        let label = cdn_usage_exporter::text::label(&text);
        prop_assert!(label.len() <= cdn_usage_exporter::text::LABEL_BYTES);
        prop_assert!(!label.chars().any(|c| c.is_control()));
    }

    #[test]
    fn php_encoding_round_trips_through_json(v in json()) {
        // What PHP's json_encode writes is JSON that decodes to the same value. Requests never
        // carry floats (PHP writes large ones in its own exponent style), so floats are left out.
        let v = no_floats(v);
        let encoded = cdn_usage_exporter::providers::scaleengine::phpjson::encode(&v);
        let back: Value = serde_json::from_str(&encoded).expect("valid JSON");
        // PHP writes integral floats without ".0": compare numbers as numbers.
        prop_assert_eq!(numeric(back), numeric(v));
    }
}
