//! SigV4 as AWS checks it: the `Authorization` header's parts, the credential scope (date,
//! `us-east-1`, the API's signing name), the key (an account's or an unexpired STS session's,
//! with its token signed), the 5-minute clock window, and the signature itself, recomputed with
//! our signer over the request exactly as received (the `http` scheme, the `Host` header, the
//! path with its `/aws` prefix, the query, the signed headers' values and the body bytes).

use std::time::{Duration, UNIX_EPOCH};

use axum::http::{HeaderMap, Method, StatusCode, Uri};

use crate::providers::common::sigv4::{self, Credentials, Scope};
use crate::secret::Secret;

use super::wire::{AwsError, REGION};
use super::{Part, SimAccount};

/// Who signed a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The access key (`AKIA…`, or `ASIA…` for a session).
    pub access_key_id: String,
    /// The index of the account it belongs to (a session's is its role's account).
    pub account: usize,
}

/// The parts of `Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// The access key of `Credential=`.
    pub access_key_id: String,
    /// The scope's date, `yyyymmdd`.
    pub date: String,
    /// The scope's region.
    pub region: String,
    /// The scope's service (the signing name).
    pub service: String,
    /// `SignedHeaders=`, lowercase names.
    pub signed_headers: Vec<String>,
    /// `Signature=`, hex.
    pub signature: String,
}

/// The access key named in a request's `Authorization` header, if it parses (for the log).
pub fn access_key_of(headers: &HeaderMap) -> Option<String> {
    parse(headers).ok().flatten().map(|a| a.access_key_id)
}

fn incomplete(message: impl Into<String>) -> AwsError {
    AwsError::coded(StatusCode::BAD_REQUEST, "IncompleteSignatureException", "IncompleteSignature", message)
}

/// 403 `InvalidSignatureException` (JSON) / `SignatureDoesNotMatch` (XML).
pub fn bad_signature(message: impl Into<String>) -> AwsError {
    AwsError::coded(StatusCode::FORBIDDEN, "InvalidSignatureException", "SignatureDoesNotMatch", message)
}

/// 403 `UnrecognizedClientException` (JSON) / `InvalidClientTokenId` (XML).
pub fn unknown_key() -> AwsError {
    AwsError::coded(
        StatusCode::FORBIDDEN,
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "The security token included in the request is invalid.",
    )
}

/// 403 `ExpiredTokenException` (JSON) / `ExpiredToken` (XML).
pub fn expired_token() -> AwsError {
    AwsError::coded(
        StatusCode::FORBIDDEN,
        "ExpiredTokenException",
        "ExpiredToken",
        "The security token included in the request is expired",
    )
}

/// No `Authorization`: JSON 400 `MissingAuthenticationTokenException`, XML 403
/// `MissingAuthenticationToken`.
pub fn missing() -> AwsError {
    AwsError {
        xml_status: Some(StatusCode::FORBIDDEN),
        ..AwsError::coded(
            StatusCode::BAD_REQUEST,
            "MissingAuthenticationTokenException",
            "MissingAuthenticationToken",
            "Request is missing Authentication Token",
        )
    }
}

/// The `Authorization` header's parts; `None` when there is none.
pub fn parse(headers: &HeaderMap) -> Result<Option<Authorization>, AwsError> {
    let Some(value) = headers.get("authorization") else { return Ok(None) };
    let value = value.to_str().map_err(|_| incomplete("Authorization header is not ASCII."))?;
    let Some(rest) = value.strip_prefix("AWS4-HMAC-SHA256 ") else {
        return Err(incomplete(format!("Authorization header requires the AWS4-HMAC-SHA256 algorithm: {value}")));
    };
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        match part.trim().split_once('=') {
            Some(("Credential", v)) => credential = Some(v),
            Some(("SignedHeaders", v)) => signed = Some(v),
            Some(("Signature", v)) => signature = Some(v),
            _ => {}
        }
    }
    let (Some(credential), Some(signed), Some(signature)) = (credential, signed, signature) else {
        return Err(incomplete(
            "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters.",
        ));
    };
    let parts: Vec<&str> = credential.split('/').collect();
    let [key, date, region, service, "aws4_request"] = parts.as_slice() else {
        return Err(incomplete(format!(
            "Credential should be scoped to a valid region and service, ending in aws4_request: {credential}"
        )));
    };
    Ok(Some(Authorization {
        access_key_id: (*key).to_owned(),
        date: (*date).to_owned(),
        region: (*region).to_owned(),
        service: (*service).to_owned(),
        signed_headers: signed.split(';').map(str::to_owned).collect(),
        signature: signature.to_owned(),
    }))
}

/// Parses `X-Amz-Date` (`20261204T104118Z`) into Unix seconds.
pub fn parse_amz_date(s: &str) -> Option<i64> {
    if s.len() != 16 || s.as_bytes()[8] != b'T' || !s.ends_with('Z') {
        return None;
    }
    let day = crate::timeutil::parse_ymd(&format!("{}-{}-{}", &s[..4], &s[4..6], &s[6..8]))?;
    let (h, m, sec): (i64, i64, i64) = (s[9..11].parse().ok()?, s[11..13].parse().ok()?, s[13..15].parse().ok()?);
    (h < 24 && m < 60 && sec < 61).then_some(day * 86_400 + h * 3600 + m * 60 + sec)
}

/// Formats Unix seconds as `X-Amz-Date` does.
pub fn format_amz_date(unix: i64) -> String {
    super::data::iso(unix).replace(['-', ':'], "")
}

/// The secret (and session token) of an access key, with its account; `Err` when the key is
/// unknown, or a session's token is missing, wrong or expired.
fn identity(
    accounts: &[SimAccount],
    part: &Part,
    key: &str,
    token: Option<&str>,
    now: i64,
) -> Result<(Credentials, usize), AwsError> {
    for (i, a) in accounts.iter().enumerate() {
        if let Some(k) = a.keys.iter().find(|k| k.access_key_id == key) {
            let creds = Credentials {
                access_key_id: Secret::new(key),
                secret_access_key: Secret::new(k.secret_access_key.clone()),
                session_token: None,
            };
            return Ok((creds, i));
        }
    }
    let session = part.session(key).ok_or_else(unknown_key)?;
    if token != Some(session.token.as_str()) {
        return Err(unknown_key());
    }
    if now >= session.expires {
        return Err(expired_token());
    }
    let creds = Credentials {
        access_key_id: Secret::new(key),
        secret_access_key: Secret::new(session.secret.clone()),
        session_token: Some(Secret::new(session.token.clone())),
    };
    Ok((creds, session.account))
}

/// A request as received.
#[derive(Debug, Clone, Copy)]
pub struct Received<'a> {
    /// The method.
    pub method: &'a Method,
    /// The path and query, as sent.
    pub uri: &'a Uri,
    /// The headers.
    pub headers: &'a HeaderMap,
    /// The body bytes.
    pub body: &'a [u8],
}

/// Checks a request's SigV4 signature for the API whose signing name is `service`: sessions
/// expire by `now`, the signature's date must be within 5 minutes of `signed_now`.
pub fn verify(
    accounts: &[SimAccount],
    part: &Part,
    service: &str,
    request: &Received<'_>,
    now: i64,
    signed_now: i64,
) -> Result<Caller, AwsError> {
    let Received { method, uri, headers, body } = *request;
    let auth = parse(headers)?.ok_or_else(missing)?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let amz_date = header("x-amz-date").ok_or_else(|| {
        incomplete("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
    })?;
    let time = parse_amz_date(amz_date).ok_or_else(|| incomplete(format!("Invalid X-Amz-Date: {amz_date}")))?;
    if !amz_date.starts_with(&auth.date) || auth.date.len() != 8 {
        return Err(bad_signature(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}', from '{amz_date}'.",
            auth.date,
            &amz_date[..8]
        )));
    }
    if auth.region != REGION {
        return Err(bad_signature(format!(
            "Credential should be scoped to a valid region, not '{}'. The expected scope is '{}/{REGION}/{service}/aws4_request'.",
            auth.region, auth.date
        )));
    }
    if auth.service != service {
        return Err(bad_signature(format!(
            "Credential should be scoped to correct service: '{service}'. The expected scope is '{}/{REGION}/{service}/aws4_request'.",
            auth.date
        )));
    }
    let token = header("x-amz-security-token");
    let (creds, account) = identity(accounts, part, &auth.access_key_id, token, now)?;
    if creds.session_token.is_some() && !auth.signed_headers.iter().any(|h| h == "x-amz-security-token") {
        return Err(bad_signature("The header X-Amz-Security-Token must be signed."));
    }
    if (time - signed_now).abs() > 300 {
        let (relation, bound, sign) =
            if time < signed_now { ("earlier", signed_now - 300, '-') } else { ("later", signed_now + 300, '+') };
        return Err(bad_signature(format!(
            "Signature expired: {amz_date} is now {relation} than {} ({} {sign} 5 min.)",
            format_amz_date(bound),
            format_amz_date(signed_now)
        )));
    }
    // The headers the client signed, as received; the signer adds x-amz-date (from the time)
    // and a session's token itself.
    let mut signed: Vec<(String, String)> = Vec::new();
    for name in &auth.signed_headers {
        if name == "x-amz-date" || (name == "x-amz-security-token" && creds.session_token.is_some()) {
            continue;
        }
        let values: Vec<&str> = headers.get_all(name.as_str()).iter().filter_map(|v| v.to_str().ok()).collect();
        if values.is_empty() {
            return Err(bad_signature(format!("The signed header '{name}' is missing from the request.")));
        }
        signed.push((name.clone(), values.join(",")));
    }
    let host = header("host").ok_or_else(|| incomplete("'Host' must be a 'SignedHeader' in the AWS Authorization."))?;
    let url = format!("http://{host}{}", uri.path_and_query().map_or("/", |p| p.as_str()));
    let pairs: Vec<(&str, &str)> = signed.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let at = UNIX_EPOCH + Duration::from_secs(time.max(0) as u64);
    let computed = sigv4::headers(method.as_str(), &url, &pairs, body, &creds, Scope { region: REGION, service }, at)
        .map_err(|e| bad_signature(e.to_string()))?;
    let expected = computed
        .iter()
        .find(|(k, _)| k == "authorization")
        .and_then(|(_, v)| v.rsplit_once("Signature=").map(|(_, s)| s.to_owned()))
        .unwrap_or_default();
    if expected.is_empty() || expected != auth.signature {
        return Err(bad_signature(
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
        ));
    }
    Ok(Caller { access_key_id: auth.access_key_id, account })
}
