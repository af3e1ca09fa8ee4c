//! Request signatures checked by independent tools: `openssl dgst -sha256 -hmac` over the
//! signed payload, and PHP itself re-encoding every request the exporter sent, as the
//! ScaleEngine server does.

use std::io::Write as _;
use std::process::{Command, Stdio};

use cdn_usage_exporter::providers::scaleengine::client::signed_request;
use serde_json::json;

use crate::support::{Harness, SECRET, require_tool};

fn run(program: &std::path::Path, args: &[&str], stdin: &[u8]) -> String {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{} failed: {}", program.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn signatures_match_openssl() {
    let Some(openssl) = require_tool("openssl") else {
        return;
    };
    let cases = [
        signed_request("usage.summary", "APX4GKLM0RKQLSP2FBO1ROPKSSW47DZE", SECRET, 158, 1_763_800_000, &[]),
        signed_request(
            "video.usage",
            "k",
            SECRET,
            7,
            1_763_800_123,
            &[("app", json!("démo/origin")), ("url", json!(["a/b.mp4", "😀"])), ("year", json!(2026))],
        ),
    ];
    for body in cases {
        let (payload, signature) = body.rsplit_once(r#","signature":""#).expect("signature last");
        let payload = format!("{payload}}}");
        let signature = signature.trim_end_matches("\"}").replace("\\/", "/");
        // The doc's recipe: HMAC with openssl, padded base64 of the binary digest.
        let b64 = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "printf '%s' \"$PAYLOAD\" | '{}' dgst -sha256 -hmac \"$KEY\" -binary | '{}' base64 -A",
                openssl.display(),
                openssl.display()
            ))
            .env("PAYLOAD", &payload)
            .env("KEY", SECRET)
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&b64.stdout).trim(), signature, "payload {payload}");
    }
}

const PHP_VERIFY: &str = r#"
$secret = $argv[1];
$bad = 0; $n = 0;
while (($line = fgets(STDIN)) !== false) {
    $line = rtrim($line, "\n");
    if ($line === '') continue;
    $n++;
    $req = json_decode($line, true);
    $sig = $req['signature'];
    unset($req['signature']);
    $expected = base64_encode(hash_hmac('sha256', json_encode($req), $secret, true));
    if (!hash_equals($expected, $sig)) { $bad++; fwrite(STDERR, "bad: $line\n"); }
    if (!is_int($req['cdn']) || !is_int($req['timestamp'])) { $bad++; fwrite(STDERR, "types: $line\n"); }
}
echo "$n checked, $bad bad\n";
"#;

#[tokio::test]
async fn every_request_sent_verifies_the_php_way() {
    let Some(php) = require_tool("php") else {
        return;
    };
    let h = Harness::start("1h").await;
    h.wait_all_up().await;
    let requests = h.sim.state.requests();
    h.stop().await;
    assert!(requests.len() >= 7);
    let input = requests.join("\n") + "\n";
    let out = run(&php, &["-r", PHP_VERIFY, SECRET], input.as_bytes());
    assert_eq!(out.trim(), format!("{} checked, 0 bad", requests.len()));
}

#[test]
fn cdnetworks_api_key_password_matches_the_docs_shell_recipe() {
    let Some(openssl) = require_tool("openssl") else { return };
    use cdn_usage_exporter::providers::cdnetworks::auth::api_key_password;
    let date = cdn_usage_exporter::timeutil::format_http_date(cdn_usage_exporter::timeutil::now_unix());
    // The doc: echo -en "$date" | openssl dgst -sha1 -hmac $apiKey -binary | openssl enc -base64
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "printf '%s' \"$DATE\" | '{o}' dgst -sha1 -hmac \"$KEY\" -binary | '{o}' enc -base64",
            o = openssl.display()
        ))
        .env("DATE", &date)
        .env("KEY", "example_apiKey")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), api_key_password("example_apiKey", &date), "{date}");
}

#[test]
fn cdnetworks_aksk_signature_matches_openssl() {
    let Some(openssl) = require_tool("openssl") else { return };
    use cdn_usage_exporter::providers::cdnetworks::auth::{SignedRequest, aksk_signature};
    let body =
        r#"{"dateFrom":"2026-11-20","dateTo":"2026-11-22","domain":"a.example.net","contract":"C-1","type":"h"}"#;
    let script = format!(
        r#"o='{o}'
bh=$(printf '%s' "$BODY" | "$o" dgst -sha256 -hex | awk '{{print $NF}}')
canon=$(printf 'POST\n/api/domain-usage\n\ncontent-type:application/json\nhost:127.0.0.1:8080\n\ncontent-type;host\n%s' "$bh")
ch=$(printf '%s' "$canon" | "$o" dgst -sha256 -hex | awk '{{print $NF}}')
printf 'CNC-HMAC-SHA256\n1795341600\n%s' "$ch" | "$o" dgst -sha256 -hmac "$KEY" -hex | awk '{{print $NF}}'"#,
        o = openssl.display()
    );
    let out = Command::new("sh").arg("-c").arg(script).env("BODY", body).env("KEY", "sk-1").output().unwrap();
    let req = SignedRequest {
        method: "POST",
        path: "/api/domain-usage",
        query: "",
        content_type: "application/json",
        host: "127.0.0.1:8080",
        body: body.as_bytes(),
        timestamp: 1_795_341_600,
    };
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), aksk_signature("sk-1", &req));
}
