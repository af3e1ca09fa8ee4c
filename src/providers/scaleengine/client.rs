//! The ScaleEngine command API: sign, POST the form field `json`, and pass on a bounded answer
//! body or a classified [`PollError`]. Redirects are refused, never followed.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::job::{PollContext, PollError, Reason};
use crate::secret::Secret;

use super::config::ScaleEngineAccount;
use super::phpjson;
use crate::providers::common::http::{BodyLimit, Upstream, preview, read_body, retry_after, with_retries};
use crate::providers::common::limits::AnswerLimits;
use crate::text;

use super::wire::Text;

/// Standard padded base64 of HMAC-SHA256(`secret`, `message`).
pub fn sign(secret: &str, message: &str) -> String {
    crate::providers::common::sign::base64(&crate::providers::common::sign::hmac_sha256(
        secret.as_bytes(),
        message.as_bytes(),
    ))
}

/// The signed request body (the value of the form field `json`): `command`, `api_key`,
/// `timestamp`, `cdn`, then `params` in order, then `signature` over all of those.
pub fn signed_request(
    command: &str,
    api_key: &str,
    secret: &str,
    cdn: i64,
    timestamp: i64,
    params: &[(&str, Value)],
) -> String {
    let mut request = Map::new();
    request.insert("command".into(), command.into());
    request.insert("api_key".into(), api_key.into());
    request.insert("timestamp".into(), timestamp.into());
    request.insert("cdn".into(), cdn.into());
    for (k, v) in params {
        request.insert((*k).into(), v.clone());
    }
    let mut request = Value::Object(request);
    let signature = sign(secret, &phpjson::encode(&request));
    if let Value::Object(map) = &mut request {
        map.insert("signature".into(), signature.into());
    }
    phpjson::encode(&request)
}

/// Classifies a provider error code (`"0002"`, `2`, …) into a reason.
pub fn classify_code(code: &str) -> Reason {
    match code {
        "0002" => Reason::ClockSkew,
        "0001" | "0003" | "0005" => Reason::Auth,
        "1000" => Reason::Throttled,
        _ => Reason::Provider,
    }
}

fn describe_code(code: &str) -> &'static str {
    match code {
        "0000" => "unrecognized command",
        "0001" => "CDN authorization failed: check cdn and api_key",
        "0002" => "timestamp outside the valid range: check this host's clock (UTC)",
        "0003" => "bad HMAC signature: check api_secret",
        "0004" => "unexpected error on the provider's side",
        "0005" => "unauthorized: check that the API key may use this command",
        "0006" => "required fields missing",
        "0100" => "operation queued",
        "1000" => "servers busy, try again in a few minutes",
        _ => "unknown code",
    }
}

/// The envelope every answer has: `status`, and on failure `code` and `message`.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default, borrow)]
    status: Text<'a>,
    #[serde(default, borrow)]
    code: Text<'a>,
    #[serde(default, borrow)]
    message: Text<'a>,
}

/// Checks an HTTP answer: a success with a JSON object passes (the caller parses what it
/// needs); anything else is an error that names what went wrong, with the provider's text
/// bounded and inert.
pub fn interpret(status: u16, body: &[u8]) -> Result<(), PollError> {
    let envelope = match serde_json::from_slice::<Envelope<'_>>(body) {
        Ok(v) => v,
        Err(e) => {
            let reason = match status {
                200..=299 => Reason::Parse,
                429 => Reason::Throttled,
                _ => Reason::Http,
            };
            let what = if e.is_data() { "not a JSON object" } else { "not JSON" };
            return Err(PollError::new(reason, format!("HTTP {status}, answer is {what} ({e}): {}", preview(body))));
        }
    };
    if envelope.status.get() == Some("failure") {
        let code = normalize_code(envelope.code.get().unwrap_or_default());
        let message = text::message(envelope.message.get().unwrap_or_default());
        return Err(PollError::new(
            classify_code(&code),
            format!("ScaleEngine error {} ({}): {message}", text::label(&code), describe_code(&code)),
        ));
    }
    if !(200..300).contains(&status) {
        let reason = if status == 429 { Reason::Throttled } else { Reason::Http };
        return Err(PollError::new(reason, format!("HTTP {status}: {}", preview(body))));
    }
    Ok(())
}

/// `2`, `"2"`, `"0002"` → `"0002"`: codes are documented with four digits.
fn normalize_code(raw: &str) -> String {
    let raw = raw.trim();
    match raw.parse::<u32>() {
        Ok(n) if raw.len() <= 4 => format!("{n:04}"),
        _ => raw.to_owned(),
    }
}

/// One account's connection to the API.
#[derive(Debug)]
pub struct Client {
    http: reqwest::Client,
    url: String,
    cdn: i64,
    api_key: Secret,
    api_secret: Secret,
    account: Arc<str>,
    timeout: Duration,
    upstream: Upstream,
}

impl Client {
    /// A client for one account; its requests pass (and are counted by) `upstream`.
    pub fn new(account: &ScaleEngineAccount, http: &reqwest::Client, upstream: Upstream) -> Self {
        Client {
            http: http.clone(),
            url: account.base_url.clone(),
            cdn: account.cdn,
            api_key: account.api_key.clone(),
            api_secret: account.api_secret.clone(),
            account: account.name.as_str().into(),
            timeout: account.timeout,
            upstream,
        }
    }

    /// Runs one command and returns the answer's body once [`interpret`] passed it (at most
    /// `limit.bytes`), retrying what may succeed on a retry.
    pub async fn call(
        &self,
        ctx: &PollContext,
        command: &str,
        params: &[(&str, Value)],
        limit: BodyLimit,
    ) -> Result<Vec<u8>, PollError> {
        with_retries(&self.upstream.retry, ctx, || self.attempt(command, params, limit)).await
    }

    /// What one answer may hold.
    pub fn answers(&self) -> AnswerLimits {
        self.upstream.answers()
    }

    /// One request, signed with a fresh timestamp.
    async fn attempt(&self, command: &str, params: &[(&str, Value)], limit: BodyLimit) -> Result<Vec<u8>, PollError> {
        let _permits = self.upstream.permit().await?;
        let body = signed_request(
            command,
            self.api_key.expose(),
            self.api_secret.expose(),
            self.cdn,
            crate::timeutil::now_unix(),
            params,
        );
        let request = self
            .http
            .post(&self.url)
            .timeout(self.timeout)
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&[("json", body)]);
        let mut response = self.upstream.send(&self.account, request).await?;
        let status = response.status().as_u16();
        let wait = retry_after(response.headers());
        let bytes = read_body(&mut response, limit).await?;
        interpret(status, &bytes).map_err(|e| PollError { retry_after: wait, ..e })?;
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const KEY: &str = "APX4GKLM0RKQLSP2FBO1ROPKSSW47DZE";
    const SECRET: &str = "8fc8c48da81e6a2a06a9556379bf798af508dc0792497c678b4c3532ba8b637f";

    #[test]
    fn signs_the_docs_example_like_openssl() {
        // printf '%s' '{"command":"usage.summary",...,"cdn":158}' \
        //   | openssl dgst -sha256 -hmac "$SECRET" -binary | base64
        let body = signed_request("usage.summary", KEY, SECRET, 158, 1_763_800_000, &[]);
        assert_eq!(
            body,
            r#"{"command":"usage.summary","api_key":"APX4GKLM0RKQLSP2FBO1ROPKSSW47DZE","timestamp":1763800000,"cdn":158,"signature":"OYKue3jlNp96EYXYzEzz8nmq9Yf5ah4Hu2KhoU3bq0Q="}"#
        );
    }

    #[test]
    fn signs_slash_and_non_ascii_like_php() {
        // php -r '$r=[...,"app"=>"démo/origin",...]; echo base64_encode(hash_hmac("sha256",json_encode($r),$secret,true));'
        let body = signed_request(
            "video.usage",
            KEY,
            SECRET,
            158,
            1_763_800_000,
            &[
                ("app", json!("démo/origin")),
                ("year", json!(2026)),
                ("month", json!(11)),
                ("limit", json!(1000)),
                ("offset", json!(0)),
            ],
        );
        assert!(body.contains(r#""app":"d\u00e9mo\/origin""#), "{body}");
        assert!(body.ends_with(r#","signature":"DLYNZ3vQTr0RtMXMB3h537zh3duF8rC0MCksXsMyPVY="}"#), "{body}");
    }

    #[test]
    fn failure_envelopes_are_classified() {
        let cases = [
            (
                json!({"status":"failure","code":"0002","message":"Timestamp outside valid range, use UTC"}),
                Reason::ClockSkew,
            ),
            (json!({"status":"failure","code":1,"message":"CDN authorization failed"}), Reason::Auth),
            (json!({"status":"failure","code":"0003","message":"bad sig","debug":{"x":1}}), Reason::Auth),
            (json!({"status":"failure","code":"0005","message":"no"}), Reason::Auth),
            (json!({"status":"failure","code":1000,"message":"Servers busy"}), Reason::Throttled),
            (json!({"status":"failure","code":"0006","message":"missing"}), Reason::Provider),
        ];
        for (body, reason) in cases {
            let err = interpret(200, body.to_string().as_bytes()).unwrap_err();
            assert_eq!(err.reason, reason, "{body}");
            let code = normalize_code(&match &body["code"] {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            });
            assert!(err.message.contains(&code), "{} lacks {code}", err.message);
        }
    }

    #[test]
    fn provider_messages_are_cut_and_escaped() {
        let message = format!("busy\nlevel=error msg=forged\u{1b}[2J{}", "m".repeat(900_000));
        let body = json!({"status": "failure", "code": "0004\nX", "message": message}).to_string();
        let err = interpret(200, body.as_bytes()).unwrap_err();
        assert_eq!(err.reason, Reason::Provider);
        assert!(err.message.len() <= text::ERROR_BYTES + 32, "{}", err.message.len());
        assert!(err.message.contains("busy\\nlevel=error msg=forged\\u{1b}[2J"), "{}", &err.message[..120]);
        assert!(err.message.contains("bytes cut]") && err.message.contains("0004\\nX"), "{}", err.message);
        assert!(!err.message.chars().any(char::is_control));
    }

    #[test]
    fn html_error_pages_name_the_status_and_the_body() {
        let err = interpret(502, b"<html><head><title>502 Bad Gateway</title></head></html>").unwrap_err();
        assert_eq!(err.reason, Reason::Http);
        assert!(err.message.contains("HTTP 502"), "{}", err.message);
        assert!(err.message.contains("<title>502 Bad Gateway"), "{}", err.message);
        let err = interpret(200, b"<html>maintenance</html>").unwrap_err();
        assert_eq!(err.reason, Reason::Parse);
        let err = interpret(200, b"").unwrap_err();
        assert!(err.message.contains("(empty body)"), "{}", err.message);
    }
}
