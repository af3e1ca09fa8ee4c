//! The bunny.net Core API: `GET` with the `AccessKey` header, answers read within the
//! account's `answer_bytes`, statuses classified into poll errors. Only a 400 carries a JSON
//! body (`ErrorKey`, `Message`); 401, 404 and 500 come empty, so the status speaks.

use std::sync::Arc;
use std::time::Duration;

use crate::job::{PollContext, PollError, Reason};
use crate::providers::common::http::{BodyLimit, Upstream, preview, read_body, retry_after, with_retries};
use crate::secret::Secret;
use crate::text;

use super::config::BunnyAccount;
use super::wire;

/// The header the account key travels in.
pub const ACCESS_KEY: &str = "AccessKey";

/// Classifies a non-success answer. `body` is shown only for statuses whose body is an error
/// (never a success answer, which may hold payment details).
pub fn classify(status: u16, path: &str, body: &[u8]) -> PollError {
    let reason = match status {
        401 | 403 => Reason::Auth,
        429 => Reason::Throttled,
        400 | 404 => Reason::Provider,
        _ => Reason::Http,
    };
    let said = match serde_json::from_slice::<wire::ApiError<'_>>(body) {
        Ok(e) if e.key.get().is_some() || e.message.get().is_some() => format!(
            "{} ({})",
            text::message(e.message.get().unwrap_or_default()),
            text::label(e.key.get().unwrap_or_default())
        ),
        _ => preview(body),
    };
    let hint = match status {
        401 => ": the key is refused; check api_key (the account API key, not a storage zone password)",
        403 => ": the key may not use this endpoint; use the account API key",
        404 => ": not found; check pull_zones",
        429 => ": rate limited",
        _ => "",
    };
    PollError::new(reason, format!("GET {path}: HTTP {status}{hint}: {said}"))
}

/// One account's connection to the API.
#[derive(Debug)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    api_key: Secret,
    account: Arc<str>,
    timeout: Duration,
    answer_bytes: usize,
    upstream: Upstream,
}

impl Client {
    /// A client for one account; its requests pass (and are counted by) `upstream`.
    pub fn new(account: &BunnyAccount, http: &reqwest::Client, upstream: Upstream) -> Self {
        Client {
            http: http.clone(),
            base: account.base_url.trim_end_matches('/').to_owned(),
            api_key: account.api_key.clone(),
            account: account.name.as_str().into(),
            timeout: account.timeout,
            answer_bytes: account.answer_bytes,
            upstream,
        }
    }

    /// `GET path?query` and the answer's body, once its status is a success, retrying what may
    /// succeed on a retry (timeouts, connection errors, 5xx, 429).
    pub async fn get(
        &self,
        ctx: &PollContext,
        path: &'static str,
        query: &[(&str, String)],
    ) -> Result<Vec<u8>, PollError> {
        with_retries(&self.upstream.retry, ctx, || self.attempt(path, query)).await
    }

    async fn attempt(&self, path: &'static str, query: &[(&str, String)]) -> Result<Vec<u8>, PollError> {
        let mut url = reqwest::Url::parse(&format!("{}{path}", self.base))
            .map_err(|e| PollError::new(Reason::Http, format!("base_url with {path} is not a URL: {e}")))?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        let _permits = self.upstream.permit().await?;
        let request = self
            .http
            .get(url)
            .timeout(self.timeout)
            .header(reqwest::header::ACCEPT, "application/json")
            .header(ACCESS_KEY, self.api_key.expose());
        let mut response = self.upstream.send(&self.account, request).await?;
        let status = response.status().as_u16();
        let wait = retry_after(response.headers());
        let limit =
            BodyLimit { bytes: self.answer_bytes, endpoint: path, key: "answer_bytes of the [[bunny]] account" };
        let bytes = read_body(&mut response, limit).await?;
        if !(200..300).contains(&status) {
            return Err(PollError { retry_after: wait, ..classify(status, path, &bytes) });
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified_and_empty_bodies_named() {
        let e = classify(401, "/billing", b"");
        assert_eq!(e.reason, Reason::Auth);
        assert!(e.message.contains("HTTP 401") && e.message.contains("(empty body)"), "{}", e.message);
        assert_eq!(classify(429, "/billing", b"").reason, Reason::Throttled);
        assert!(classify(429, "/billing", b"").retryable());
        assert_eq!(classify(500, "/billing", b"").reason, Reason::Http);
        assert_eq!(classify(404, "/statistics", b"").reason, Reason::Provider);
        let e = classify(
            400,
            "/statistics",
            br#"{"ErrorKey":"pullZone.not_found","Field":"pullZone","Message":"The pull zone\nwas not found"}"#,
        );
        assert_eq!(e.reason, Reason::Provider);
        assert!(e.message.contains("The pull zone\\nwas not found (pullZone.not_found)"), "{}", e.message);
    }
}
