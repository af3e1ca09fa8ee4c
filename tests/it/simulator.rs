//! The simulator holds requests to the rules of the ScaleEngine docs and PROVIDERS.md, so that
//! passing against it means something.

use cdn_usage_exporter::providers::scaleengine::client::{self, signed_request};
use cdn_usage_exporter::providers::scaleengine::phpjson;
use cdn_usage_exporter::simulator::{SimState, Simulator};
use cdn_usage_exporter::timeutil::now_unix;
use serde_json::{Value, json};

use crate::support::se_part;
use crate::support::{KEY, SECRET, loopback, sim_account};

async fn post_form(url: &str, json_field: &str) -> Value {
    let body = serde_urlencoded::to_string([("json", json_field)]).unwrap();
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    serde_json::from_slice(&response.bytes().await.unwrap()).unwrap()
}

fn code(v: &Value) -> &str {
    v["code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn checks_signature_key_cdn_timestamp_fields_and_command() {
    let sim =
        Simulator::start(loopback(), SimState::builder().with(se_part(vec![sim_account()])).build()).await.unwrap();
    let url = sim.scaleengine_url();
    let now = now_unix();

    let ok = post_form(&url, &signed_request("usage.summary", KEY, SECRET, 4242, now, &[])).await;
    assert_eq!(ok["status"], "success", "{ok}");

    let wrong_secret = signed_request("usage.summary", KEY, "nope", 4242, now, &[]);
    assert_eq!(code(&post_form(&url, &wrong_secret).await), "0003");

    let stale = signed_request("usage.summary", KEY, SECRET, 4242, now - 3600, &[]);
    assert_eq!(code(&post_form(&url, &stale).await), "0002");

    let unknown_key = signed_request("usage.summary", "OTHER", SECRET, 4242, now, &[]);
    assert_eq!(code(&post_form(&url, &unknown_key).await), "0005");

    let wrong_cdn = signed_request("usage.summary", KEY, SECRET, 1, now, &[]);
    assert_eq!(code(&post_form(&url, &wrong_cdn).await), "0001");

    let unknown_command = signed_request("usage.nothing", KEY, SECRET, 4242, now, &[]);
    assert_eq!(code(&post_form(&url, &unknown_command).await), "0000");

    let no_app = signed_request("video.usage", KEY, SECRET, 4242, now, &[("year", json!(2026)), ("month", json!(1))]);
    assert_eq!(code(&post_form(&url, &no_app).await), "0006");

    // cdn as a string, signed correctly: refused, the field is an integer.
    let mut req = serde_json::Map::new();
    for (k, v) in [
        ("command", json!("usage.summary")),
        ("api_key", json!(KEY)),
        ("timestamp", json!(now)),
        ("cdn", json!("4242")),
    ] {
        req.insert(k.into(), v);
    }
    let sig = client::sign(SECRET, &phpjson::encode(&Value::Object(req.clone())));
    req.insert("signature".into(), sig.into());
    assert_eq!(code(&post_form(&url, &phpjson::encode(&Value::Object(req))).await), "0001");

    // Signed over raw UTF-8 and unescaped slashes instead of PHP's encoding: refused.
    let mut req = serde_json::Map::new();
    for (k, v) in [
        ("command", json!("video.usage")),
        ("api_key", json!(KEY)),
        ("timestamp", json!(now)),
        ("cdn", json!(4242)),
        ("app", json!("vod/è")),
        ("year", json!(2026)),
        ("month", json!(1)),
    ] {
        req.insert(k.into(), v);
    }
    let plain = serde_json::to_string(&Value::Object(req.clone())).unwrap();
    req.insert("signature".into(), client::sign(SECRET, &plain).into());
    assert_eq!(code(&post_form(&url, &serde_json::to_string(&Value::Object(req)).unwrap()).await), "0003");

    assert_eq!(code(&post_form(&url, "not json").await), "0004");
    sim.stop().await;
}

#[tokio::test]
async fn accepts_multipart_like_the_docs_php_example() {
    let sim =
        Simulator::start(loopback(), SimState::builder().with(se_part(vec![sim_account()])).build()).await.unwrap();
    let json_field = signed_request("usage.billing.live", KEY, SECRET, 4242, now_unix(), &[]);
    let boundary = "------------------------a1b2c3d4";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"json\"\r\n\r\n{json_field}\r\n--{boundary}--\r\n"
    );
    let response = reqwest::Client::new()
        .post(sim.scaleengine_url())
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .body(body)
        .send()
        .await
        .unwrap();
    let answer: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(answer["status"], "success", "{answer}");
    assert!(answer["data"]["vals"].as_array().unwrap().len() > 10);
    sim.stop().await;
}

#[tokio::test]
async fn pages_video_usage_with_limit_offset_and_count() {
    let sim =
        Simulator::start(loopback(), SimState::builder().with(se_part(vec![sim_account()])).build()).await.unwrap();
    let page = |offset: u64| {
        signed_request(
            "video.usage",
            KEY,
            SECRET,
            4242,
            now_unix(),
            &[
                ("app", json!(["live", 2])),
                ("year", json!(2026)),
                ("month", json!(11)),
                ("limit", json!(1000)),
                ("offset", json!(offset)),
            ],
        )
    };
    let first = post_form(&sim.scaleengine_url(), &page(0)).await;
    // live: 3 URLs + 1 duplicate row; app 2 (vod/è): 2,345 URLs + 1 duplicate row.
    assert_eq!(first["count"], 3 + 1 + 2345 + 1);
    assert_eq!(first["usage"].as_array().unwrap().len(), 1000);
    let last = post_form(&sim.scaleengine_url(), &page(2000)).await;
    assert_eq!(last["usage"].as_array().unwrap().len(), 350);
    sim.stop().await;
}
