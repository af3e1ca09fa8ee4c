//! One AWS account's connection to the four APIs the provider calls (Cost Explorer,
//! CloudWatch, CloudFront, STS), inside the project's common HTTP path: every attempt waits for
//! the upstream's permits, is signed anew (SigV4, a fresh `X-Amz-Date` per attempt), sent and
//! counted through [`Upstream`], read within `answer_bytes`, and classified into a poll error
//! that [`with_retries`] retries when AWS says it may succeed (throttling, 5xx, transport).
//! What each attempt may cost is counted ([`Api::price`]).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::job::{PollContext, PollError, Reason};
use crate::providers::common::http::{BodyLimit, Upstream, preview, read_body, retry_after, with_retries};
use crate::providers::common::sigv4::{self, Credentials, Scope};
use crate::text;

use super::config::CloudFrontAccount;
use super::credentials::Chain;
use super::xml;

/// The region every API of the provider is signed for: Cost Explorer, CloudFront and
/// CloudFront's CloudWatch metrics live in `us-east-1` whatever the account's region.
pub const REGION: &str = "us-east-1";

/// The AWS APIs the provider calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Api {
    /// Cost Explorer (awsJson 1.1).
    CostExplorer,
    /// CloudWatch (awsJson 1.0).
    CloudWatch,
    /// CloudFront's control API (rest-xml).
    CloudFront,
    /// STS (query).
    Sts,
}

impl Api {
    /// The signing name (`monitoring` for CloudWatch, never `cloudwatch`), also the `api`
    /// label of the cost counter.
    pub fn service(self) -> &'static str {
        match self {
            Api::CostExplorer => "ce",
            Api::CloudWatch => "monitoring",
            Api::CloudFront => "cloudfront",
            Api::Sts => "sts",
        }
    }

    /// The public endpoint.
    pub fn default_endpoint(self) -> &'static str {
        match self {
            Api::CostExplorer => "https://ce.us-east-1.amazonaws.com",
            Api::CloudWatch => "https://monitoring.us-east-1.amazonaws.com",
            Api::CloudFront => "https://cloudfront.amazonaws.com",
            Api::Sts => "https://sts.us-east-1.amazonaws.com",
        }
    }

    /// What AWS charges for one request carrying `units` (metrics for `GetMetricData`), in US
    /// dollars: Cost Explorer $0.01 a request (every page; an attempt AWS refused is counted
    /// too, as it may be billed), `GetMetricData` $0.01 per 1,000 metrics, CloudFront's and
    /// STS's reads nothing.
    pub fn price(self, units: usize) -> f64 {
        match self {
            Api::CostExplorer => 0.01,
            Api::CloudWatch => units as f64 * 0.00001,
            Api::CloudFront | Api::Sts => 0.0,
        }
    }

    /// Whether error bodies are JSON (else XML).
    fn json(self) -> bool {
        matches!(self, Api::CostExplorer | Api::CloudWatch)
    }
}

/// One request: its API, operation, and what goes on the wire.
#[derive(Debug, Clone)]
pub struct Call {
    /// The API.
    pub api: Api,
    /// The operation (`GetCostAndUsage`), for messages.
    pub operation: &'static str,
    /// `GET` or `POST`.
    pub method: reqwest::Method,
    /// Path and query under the endpoint (`/`, `/2020-05-31/distribution?MaxItems=100`).
    pub path: String,
    /// Headers beyond `host` and the signature's (content type, target).
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// Units priced by [`Api::price`] (metrics requested).
    pub units: usize,
    /// Unsigned (`AssumeRoleWithWebIdentity`).
    pub anonymous: bool,
}

impl Call {
    /// A JSON-protocol `POST /` with `X-Amz-Target: <prefix>.<operation>`.
    pub fn json(api: Api, operation: &'static str, body: &serde_json::Value) -> Call {
        let (content_type, prefix) = match api {
            Api::CloudWatch => ("application/x-amz-json-1.0", "GraniteServiceVersion20100801"),
            _ => ("application/x-amz-json-1.1", "AWSInsightsIndexService"),
        };
        let mut headers =
            vec![("content-type", content_type.to_owned()), ("x-amz-target", format!("{prefix}.{operation}"))];
        if api == Api::CloudWatch {
            // CloudWatch is awsQueryCompatible: botocore sends this with the JSON protocol.
            headers.push(("x-amzn-query-mode", "true".to_owned()));
        }
        Call {
            api,
            operation,
            method: reqwest::Method::POST,
            path: "/".to_owned(),
            headers,
            body: body.to_string().into_bytes(),
            units: 1,
            anonymous: false,
        }
    }

    /// A query-protocol `POST /` form (STS): `Action=<operation>&Version=…&params`.
    pub fn query(api: Api, operation: &'static str, version: &str, params: &[(&str, &str)]) -> Call {
        let pairs: Vec<(&str, &str)> =
            [("Action", operation), ("Version", version)].into_iter().chain(params.iter().copied()).collect();
        // Pairs of strings always encode.
        let form = serde_urlencoded::to_string(&pairs).unwrap_or_default();
        Call {
            api,
            operation,
            method: reqwest::Method::POST,
            path: "/".to_owned(),
            headers: vec![("content-type", "application/x-www-form-urlencoded; charset=utf-8".to_owned())],
            body: form.into_bytes(),
            units: 1,
            anonymous: false,
        }
    }
}

/// The error codes AWS's SDKs treat as throttling (botocore's standard retry mode).
const THROTTLE_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "LimitExceeded",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
];

/// Codes that mean the credentials or the policy are wrong.
const AUTH_CODES: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "InvalidSignatureException",
    "IncompleteSignature",
    "IncompleteSignatureException",
    "MissingAuthenticationToken",
    "MissingAuthenticationTokenException",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidIdentityToken",
    "IDPRejectedClaim",
    "AuthFailure",
    "NotAuthorized",
];

/// The error code and message of an AWS error answer, whatever its protocol: a JSON `__type`
/// (namespace before `#` and suffix after `:` dropped) or `code`, the `x-amzn-query-error` or
/// `x-amzn-errortype` header, an XML `Code` at any depth; `message`/`Message`.
pub fn error_parts(json: bool, headers: &reqwest::header::HeaderMap, body: &[u8]) -> (Option<String>, Option<String>) {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let mut code = None;
    let mut message = None;
    if json && let Ok(serde_json::Value::Object(map)) = serde_json::from_slice::<serde_json::Value>(body) {
        let field = |k: &str| map.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        code = field("__type").or_else(|| field("code")).or_else(|| field("Code"));
        message = field("message").or_else(|| field("Message"));
    }
    if code.is_none() || message.is_none() {
        // moto (and proxies) send XML even on JSON services.
        code = code.or_else(|| xml::first(body, "Code"));
        message = message.or_else(|| xml::first(body, "Message"));
    }
    let query = header("x-amzn-query-error").and_then(|v| v.split(';').next().map(str::to_owned));
    let code = query.or(code).or_else(|| header("x-amzn-errortype")).map(|c| {
        let c = c.rsplit('#').next().unwrap_or_default();
        c.split(':').next().unwrap_or_default().trim().to_owned()
    });
    (code.filter(|c| !c.is_empty()), message)
}

/// Classifies an AWS error answer. `scrub` are strings that must not reach the message (the
/// role session name appears in AWS's access-denied text).
pub fn classify(
    api: Api,
    operation: &str,
    status: u16,
    headers: &reqwest::header::HeaderMap,
    body: &[u8],
    scrub: &[&str],
) -> PollError {
    let (code, message) = error_parts(api.json(), headers, body);
    let code_str = code.as_deref().unwrap_or("");
    let expired_signature = message.as_deref().is_some_and(|m| m.contains("Signature expired"))
        || matches!(code_str, "RequestExpired" | "RequestTimeTooSkewed");
    let reason = if expired_signature {
        Reason::ClockSkew
    } else if THROTTLE_CODES.contains(&code_str) || status == 429 {
        Reason::Throttled
    } else if AUTH_CODES.contains(&code_str) || matches!(status, 401 | 403) {
        Reason::Auth
    } else if status >= 500 {
        Reason::Http
    } else {
        Reason::Provider
    };
    let hint = match (reason, code_str) {
        (Reason::ClockSkew, _) => {
            ": AWS refuses a signature more than 5 minutes from its clock; check this host's time (NTP)"
        }
        (_, "SignatureDoesNotMatch" | "InvalidSignatureException") => {
            ": AWS computed another signature; check secret_access_key (or the environment's AWS_SECRET_ACCESS_KEY)"
        }
        (_, "UnrecognizedClientException" | "InvalidClientTokenId") => {
            ": AWS does not know this access key (or its session token); check access_key_id and session_token"
        }
        (_, "ExpiredToken" | "ExpiredTokenException") => {
            ": the temporary credentials expired; they are renewed on the next attempt"
        }
        (_, "AccessDenied" | "AccessDeniedException")
            if code_str == "AccessDeniedException"
                && message.as_deref().is_some_and(|m| m.contains("not enabled for cost explorer")) =>
        {
            ": Cost Explorer is not enabled for the account; enable it once in the AWS Billing console"
        }
        (Reason::Auth, _) => {
            ": the identity may not call this; give it the actions of deploy/aws/cloudfront-exporter-policy.json"
        }
        (Reason::Throttled, _) => ": throttled by AWS",
        (_, "DataUnavailableException") => {
            ": Cost Explorer has no data for the period yet (a new account, or Cost Explorer enabled less than a day ago)"
        }
        _ => "",
    };
    let said = match (&code, &message) {
        (Some(c), Some(m)) => format!("{}: {}", text::label(c), text::message(m)),
        (Some(c), None) => text::label(c),
        (None, Some(m)) => text::message(m),
        (None, None) => preview(body),
    };
    let mut said = format!("{} {operation}: HTTP {status}{hint}: {said}", api.service());
    for s in scrub.iter().filter(|s| s.len() >= 2) {
        said = said.replace(s, "[redacted]");
    }
    PollError::new(reason, without_key_ids(&said))
}

/// `text` with every AWS access key id (`AKIA…`, `ASIA…` and the other four-letter prefixes
/// followed by 12 or more capitals and digits) replaced: AWS's access-denied texts may name the
/// caller's key.
pub fn without_key_ids(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(|c: char| c.is_ascii_uppercase()) {
        out.push_str(&rest[..i]);
        let word_end =
            rest[i..].find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit())).map_or(rest.len(), |e| i + e);
        let word = &rest[i..word_end];
        let starts_word = out.chars().last().is_none_or(|c| !c.is_ascii_alphanumeric());
        let key = starts_word
            && word.len() >= 16
            && ["AKIA", "ASIA", "AIDA", "AROA", "ANPA", "ANVA", "AGPA", "AIPA"].iter().any(|p| word.starts_with(p));
        out.push_str(if key { "[access key id]" } else { word });
        rest = &rest[word_end..];
    }
    out.push_str(rest);
    out
}

/// Whether an error means the temporary credentials must be renewed now.
pub fn expired_credentials(e: &PollError) -> bool {
    e.reason == Reason::Auth && (e.message.contains("ExpiredToken") || e.message.contains("InvalidClientTokenId"))
}

/// One account's AWS connection.
pub struct Client {
    http: reqwest::Client,
    account: Arc<str>,
    endpoint_url: Option<String>,
    timeout: Duration,
    answer_bytes: usize,
    upstream: Upstream,
    chain: Chain,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("account", &self.account).finish_non_exhaustive()
    }
}

impl Client {
    /// A client for one account; its requests pass (and are counted by) `upstream`.
    pub fn new(account: &CloudFrontAccount, http: &reqwest::Client, upstream: Upstream) -> Self {
        Client {
            http: http.clone(),
            account: account.name.as_str().into(),
            endpoint_url: account.endpoint_url.clone(),
            timeout: account.timeout,
            answer_bytes: account.answer_bytes,
            upstream,
            chain: Chain::new(account),
        }
    }

    /// The account's name.
    pub fn account(&self) -> &Arc<str> {
        &self.account
    }

    /// The URL of `path` on `api`'s endpoint.
    pub fn url(&self, api: Api, path: &str) -> String {
        let base = self.endpoint_url.as_deref().unwrap_or(api.default_endpoint()).trim_end_matches('/');
        format!("{base}{path}")
    }

    /// Makes `call` with the account's credentials (renewed when they expire), retrying what
    /// may succeed on a retry; the answer's body on success.
    pub async fn call(&self, ctx: &PollContext, call: &Call) -> Result<Vec<u8>, PollError> {
        with_retries(&self.upstream.retry, ctx, || async {
            let credentials = self.chain.credentials(self, ctx).await?;
            match self.send(call, Some(&credentials)).await {
                // AWS says the temporary credentials expired (earlier than they said, or a
                // clock apart): renew them and try once more at once.
                Err(e) if expired_credentials(&e) && self.chain.temporary() => {
                    self.chain.forget().await;
                    let credentials = self.chain.credentials(self, ctx).await?;
                    self.send(call, Some(&credentials)).await
                }
                outcome => outcome,
            }
        })
        .await
    }

    /// One attempt of `call`, signed with `credentials` (none: unsigned).
    pub async fn send(&self, call: &Call, credentials: Option<&Credentials>) -> Result<Vec<u8>, PollError> {
        let url = self.url(call.api, &call.path);
        let parsed = reqwest::Url::parse(&url)
            .map_err(|e| PollError::new(Reason::Http, format!("{} endpoint is not a URL: {e}", call.api.service())))?;
        let host = match (parsed.host_str(), parsed.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => return Err(PollError::new(Reason::Http, "the endpoint has no host")),
        };
        let _permits = self.upstream.permit().await?;
        let mut request = self.http.request(call.method.clone(), parsed).timeout(self.timeout);
        let mut signed: Vec<(&str, &str)> = vec![("host", host.as_str())];
        signed.extend(call.headers.iter().map(|(k, v)| (*k, v.as_str())));
        if let (Some(credentials), false) = (credentials, call.anonymous) {
            let scope = Scope { region: REGION, service: call.api.service() };
            let added =
                sigv4::headers(call.method.as_str(), &url, &signed, &call.body, credentials, scope, SystemTime::now())
                    .map_err(|e| PollError::new(Reason::Http, e.to_string()))?;
            for (k, v) in added {
                request = request.header(k, v);
            }
        }
        for (k, v) in &call.headers {
            request = request.header(*k, v.as_str());
        }
        request = request.header(reqwest::header::ACCEPT, "*/*").body(call.body.clone());
        self.upstream.cost(&self.account, call.api.service(), call.api.price(call.units));
        let mut response = self.upstream.send(&self.account, request).await?;
        let status = response.status().as_u16();
        let wait = retry_after(response.headers()).or_else(|| {
            response
                .headers()
                .get("x-amz-retry-after")
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                .map(|ms| Duration::from_millis(ms.min(5_000)))
        });
        let headers = response.headers().clone();
        let limit = BodyLimit {
            bytes: self.answer_bytes,
            endpoint: call.operation,
            key: "answer_bytes of the [[cloudfront]] account",
        };
        let body = read_body(&mut response, limit).await?;
        if !(200..300).contains(&status) {
            let scrub = self.chain.scrub();
            let scrub: Vec<&str> = scrub.iter().map(String::as_str).collect();
            let error = classify(call.api, call.operation, status, &headers, &body, &scrub);
            return Err(PollError { retry_after: wait, ..error });
        }
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    fn none() -> HeaderMap {
        HeaderMap::new()
    }

    #[test]
    fn errors_of_every_protocol_are_read_and_classified() {
        // Cost Explorer's throttle: JSON, HTTP 400, retried.
        let e = classify(
            Api::CostExplorer,
            "GetCostAndUsage",
            400,
            &none(),
            br#"{"__type":"com.amazonaws#LimitExceededException:http://x","message":"Rate limit exceeded"}"#,
            &[],
        );
        assert_eq!(e.reason, Reason::Throttled);
        assert!(e.retryable());
        assert!(e.message.contains("LimitExceededException: Rate limit exceeded"), "{}", e.message);
        // CloudWatch's query-compatible header names the query code.
        let mut h = HeaderMap::new();
        h.insert("x-amzn-query-error", HeaderValue::from_static("Throttling;Sender"));
        let e = classify(
            Api::CloudWatch,
            "GetMetricData",
            400,
            &h,
            br#"{"__type":"GraniteServiceVersion20100801#ThrottlingException","message":"Rate exceeded"}"#,
            &[],
        );
        assert_eq!(e.reason, Reason::Throttled);
        // STS's XML, with the session name in AWS's text scrubbed.
        let body = br#"<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User: arn:aws:sts::1:assumed-role/r/my-session-7 is not authorized</Message></Error></ErrorResponse>"#;
        let e = classify(Api::Sts, "AssumeRole", 403, &none(), body, &["my-session-7"]);
        assert_eq!(e.reason, Reason::Auth);
        assert!(!e.message.contains("my-session-7") && e.message.contains("[redacted]"), "{}", e.message);
        assert!(e.message.contains("deploy/aws/cloudfront-exporter-policy.json"), "{}", e.message);
        // moto's auth errors: EC2-style XML on a JSON service.
        let body = br#"<?xml version="1.0"?><ErrorResponse><Errors><Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match</Message><Type>Sender</Type></Error></Errors></ErrorResponse>"#;
        let e = classify(Api::CostExplorer, "GetCostAndUsage", 403, &none(), body, &[]);
        assert_eq!(e.reason, Reason::Auth);
        assert!(e.message.contains("check secret_access_key"), "{}", e.message);
        // A stale clock, a 5xx with HTML, and a plain provider error.
        let e = classify(Api::CloudFront, "ListDistributions", 403, &none(), b"<ErrorResponse><Error><Code>SignatureDoesNotMatch</Code><Message>Signature expired: 20150830T123600Z is now earlier than ...</Message></Error></ErrorResponse>", &[]);
        assert_eq!(e.reason, Reason::ClockSkew);
        let e = classify(
            Api::CostExplorer,
            "GetCostForecast",
            500,
            &none(),
            b"<!DOCTYPE html><title>500 Internal Server Error</title>",
            &[],
        );
        assert_eq!((e.reason, e.retryable()), (Reason::Http, true));
        let e = classify(
            Api::CostExplorer,
            "GetCostForecast",
            400,
            &none(),
            br#"{"__type":"DataUnavailableException","Message":"Insufficient amount of historical data."}"#,
            &[],
        );
        assert_eq!(e.reason, Reason::Provider);
        assert!(e.message.contains("no data for the period"), "{}", e.message);
        let e = classify(Api::CostExplorer, "GetCostAndUsage", 400, &none(), b"", &[]);
        assert!(e.message.contains("(empty body)"), "{}", e.message);
    }

    #[test]
    fn access_key_ids_never_reach_a_message() {
        let t =
            "User AKIAIOSFODNN7EXAMPLE (or ASIASIMTMP00000000001) denied; AKIA too short; xAKIAIOSFODNN7EXAMPLE kept";
        let out = without_key_ids(t);
        assert_eq!(out, "User [access key id] (or [access key id]) denied; AKIA too short; xAKIAIOSFODNN7EXAMPLE kept");
        let e = classify(Api::Sts, "AssumeRole", 403, &none(), b"<ErrorResponse><Error><Code>AccessDenied</Code><Message>key AKIASIMDEMO000000001 may not assume</Message></Error></ErrorResponse>", &[]);
        assert!(!e.message.contains("AKIASIMDEMO000000001"), "{}", e.message);
    }

    #[test]
    fn requests_are_priced() {
        assert_eq!(Api::CostExplorer.price(1), 0.01);
        assert!((Api::CloudWatch.price(3000) - 0.03).abs() < 1e-12);
        assert_eq!((Api::CloudFront.price(1), Api::Sts.price(1)), (0.0, 0.0));
    }
}
