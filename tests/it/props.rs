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
    fn scaleengine_parsers_never_panic(v in json(), top_n in 0usize..5) {
        if let Ok(t) = wire::parse_table(&v) {
            let _ = normalize::summary(&t);
            let _ = normalize::billing(&t);
        }
        if let Ok(days) = wire::parse_disk(&v) {
            let _ = normalize::disk(&days, 20_000);
        }
        if let Ok(page) = wire::parse_video(&v) {
            let _ = normalize::video("app", &page.entries, top_n);
        }
        let _ = client::interpret(200, v.to_string().as_bytes());
    }

    #[test]
    fn cdnetworks_parsers_never_panic(v in json(), offset in -50_400i64..50_400) {
        if let Ok(points) = cn::parse_points(&v, offset) {
            let _ = cn::newest_complete(&points, 1_800_000_000);
        }
        let _ = cn::error_code(&v);
        for status in [200u16, 400, 401, 446, 500] {
            let _ = cdnetworks::interpret(status, v.to_string().as_bytes(), &ctx(), offset);
        }
    }

    #[test]
    fn arbitrary_bytes_are_errors_not_panics(bytes in prop::collection::vec(any::<u8>(), 0..512), status in 100u16..600) {
        let _ = client::interpret(status, &bytes);
        let _ = cdnetworks::interpret(status, &bytes, &ctx(), 9 * 3600);
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
