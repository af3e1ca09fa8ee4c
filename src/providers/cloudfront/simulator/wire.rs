//! The four AWS APIs' wire conventions as the simulator answers: which API a request is for,
//! and each API's success and error envelopes (awsJson 1.1 for Cost Explorer, awsJson 1.0 with
//! the query-compatible header for CloudWatch, query XML for STS, rest-xml for CloudFront).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// An AWS API the simulator serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// Cost Explorer (awsJson 1.1).
    CostExplorer,
    /// CloudWatch (awsJson 1.0, query-compatible).
    CloudWatch,
    /// The CloudFront control API (rest-xml).
    CloudFront,
    /// STS (query: form in, XML out).
    Sts,
}

impl Api {
    /// The SigV4 signing name: the credential scope's service.
    pub fn signing_name(self) -> &'static str {
        match self {
            Api::CostExplorer => "ce",
            Api::CloudWatch => "monitoring",
            Api::CloudFront => "cloudfront",
            Api::Sts => "sts",
        }
    }
}

/// The one signing region every simulated API expects (CE and CloudFront are global, served
/// from us-east-1; CloudFront's metrics live in us-east-1; the STS endpoint is us-east-1's).
pub const REGION: &str = "us-east-1";

/// An error answer, rendered in the protocol of the API it is for.
#[derive(Debug, Clone, PartialEq)]
pub struct AwsError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The status when rendered as XML, where it differs (`MissingAuthenticationToken`).
    pub xml_status: Option<StatusCode>,
    /// The JSON protocols' `__type` (a shape name: `InvalidParameterValueException`).
    pub json_code: &'static str,
    /// The query code: XML `Code`, and CloudWatch's `x-amzn-query-error` (`InvalidParameterValue`).
    pub query_code: &'static str,
    /// The message.
    pub message: String,
}

impl AwsError {
    /// An error whose JSON and query codes are the same.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        AwsError { status, xml_status: None, json_code: code, query_code: code, message: message.into() }
    }

    /// An error with a JSON shape name apart from its query code.
    pub fn coded(
        status: StatusCode,
        json_code: &'static str,
        query_code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        AwsError { status, xml_status: None, json_code, query_code, message: message.into() }
    }

    /// A 400 `ValidationException` (query: `ValidationError`).
    pub fn validation(message: impl Into<String>) -> Self {
        Self::coded(StatusCode::BAD_REQUEST, "ValidationException", "ValidationError", message)
    }

    /// The API's throttle answer (HTTP 400): CE `LimitExceededException` "Rate limit exceeded",
    /// CloudWatch `Throttling`, STS and CloudFront `Throttling` "Rate exceeded".
    pub fn throttle(api: Api) -> Self {
        match api {
            Api::CostExplorer => Self::new(StatusCode::BAD_REQUEST, "LimitExceededException", "Rate limit exceeded"),
            Api::CloudWatch => {
                Self::coded(StatusCode::BAD_REQUEST, "ThrottlingException", "Throttling", "Rate exceeded")
            }
            Api::CloudFront | Api::Sts => Self::new(StatusCode::BAD_REQUEST, "Throttling", "Rate exceeded"),
        }
    }

    /// An internal failure (HTTP 500), as AWS answers when it fails on its side.
    pub fn internal() -> Self {
        Self::coded(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalFailure",
            "InternalFailure",
            "The request processing has failed because of an unknown error, exception or failure.",
        )
    }

    /// Renders the error in `api`'s protocol.
    pub fn render(&self, api: Api) -> Response {
        let id = request_id();
        let sender = if self.status.is_server_error() { "Receiver" } else { "Sender" };
        match api {
            Api::CostExplorer => {
                let body = json!({"__type": self.json_code, "message": self.message});
                let mut r = json_response(self.status, JSON_1_1, &body);
                set(&mut r, "x-amzn-requestid", &id);
                r
            }
            Api::CloudWatch => {
                let body = json!({
                    "__type": format!("GraniteServiceVersion20100801#{}", self.json_code),
                    "message": self.message,
                });
                let mut r = json_response(self.status, JSON_1_0, &body);
                set(&mut r, "x-amzn-requestid", &id);
                set(&mut r, "x-amzn-query-error", &format!("{};{sender}", self.query_code));
                r
            }
            Api::CloudFront | Api::Sts => {
                let ns = if api == Api::Sts { STS_NS } else { CLOUDFRONT_NS };
                let body = format!(
                    "<?xml version=\"1.0\"?>\n<ErrorResponse xmlns=\"{ns}\"><Error><Type>{sender}</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>{id}</RequestId></ErrorResponse>",
                    self.query_code,
                    xml_escape(&self.message)
                );
                let mut r = xml_response(self.xml_status.unwrap_or(self.status), body);
                set(&mut r, "x-amzn-requestid", &id);
                r
            }
        }
    }
}

/// awsJson 1.1's content type (Cost Explorer).
pub const JSON_1_1: &str = "application/x-amz-json-1.1";
/// awsJson 1.0's content type (CloudWatch).
pub const JSON_1_0: &str = "application/x-amz-json-1.0";
/// STS's XML namespace.
pub const STS_NS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";
/// CloudFront's XML namespace.
pub const CLOUDFRONT_NS: &str = "http://cloudfront.amazonaws.com/doc/2020-05-31/";

fn set(r: &mut Response, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(name, v);
    }
}

/// A JSON answer with the protocol's content type and a request id.
pub fn json_response(status: StatusCode, content_type: &'static str, body: &Value) -> Response {
    let mut r = (status, [(header::CONTENT_TYPE, content_type)], body.to_string()).into_response();
    set(&mut r, "x-amzn-requestid", &request_id());
    r
}

/// An XML answer (`text/xml`) with a request id.
pub fn xml_response(status: StatusCode, body: String) -> Response {
    let mut r = (status, [(header::CONTENT_TYPE, "text/xml")], body).into_response();
    set(&mut r, "x-amzn-requestid", &request_id());
    r
}

/// A fresh request id, shaped as AWS's (a UUID).
pub fn request_id() -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        fastrand::u32(..),
        fastrand::u16(..),
        fastrand::u16(..0x1000),
        fastrand::u16(..0x1000),
        fastrand::u64(..1 << 48)
    )
}

/// Escapes text for an XML element.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// The request as a string that depends neither on key order nor on its page token (the key
/// `skip`): what a page token is bound to, so that a changed request is told apart.
pub fn fingerprint(body: &Value, skip: &str) -> String {
    fn canonical(v: &Value, skip: &str, out: &mut String) {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().filter(|k| k.as_str() != skip).collect();
                keys.sort();
                out.push('{');
                for k in keys {
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push(':');
                    canonical(&m[k], skip, out);
                    out.push(',');
                }
                out.push('}');
            }
            Value::Array(a) => {
                out.push('[');
                for v in a {
                    canonical(v, skip, out);
                    out.push(',');
                }
                out.push(']');
            }
            v => out.push_str(&v.to_string()),
        }
    }
    let mut s = String::new();
    canonical(body, skip, &mut s);
    hex(&Sha256::digest(s.as_bytes())[..12])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn checksum(joined: &str) -> String {
    hex(&Sha256::digest(format!("sim-token:{joined}").as_bytes())[..4])
}

/// An opaque token (a page token, a marker) carrying `fields` (none holding `:`), with a
/// checksum so that a token made up or altered is told apart.
pub fn seal(fields: &[String]) -> String {
    let joined = fields.join(":");
    base64::engine::general_purpose::STANDARD.encode(format!("{joined}:{}", checksum(&joined)))
}

/// The fields of a token [`seal`] made; `None` for anything else.
pub fn open(token: &str) -> Option<Vec<String>> {
    let raw = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(token).ok()?).ok()?;
    let (joined, sum) = raw.rsplit_once(':')?;
    (sum == checksum(joined)).then(|| joined.split(':').map(str::to_owned).collect())
}
