//! One Fastly account's connection to the API: GETs with the `Fastly-Key` header, bounded
//! answers, status codes classified into [`PollError`]s (rate-limit headers honoured on 429),
//! and the two ways Fastly pages: a `meta.next_cursor` (invoices) and a `Link` header
//! (`/service`), each followed to the end under `max_pages`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::{ACCEPT, HeaderMap, HeaderValue};

use crate::job::{PollContext, PollError, Reason};
use crate::providers::SetupError;
use crate::providers::common::http::{BodyLimit, Upstream, preview, read_body, retry_after, with_retries};
use crate::providers::common::wire::{Array, Capped, ListLimit, parse_capped};
use crate::secret::Secret;
use crate::text;
use crate::timeutil::{self, Clock};

use super::config::FastlyAccount;
use super::normalize;
use super::wire::{self, InvoicePage, ServiceEntry};
use super::{
    INVOICES_ENDPOINT, INVOICES_PATH, MTD_ENDPOINT, MTD_PATH, RATELIMIT_RESET, SERVICES_ENDPOINT, SERVICES_PATH,
    SERVICES_PER_PAGE, STATS_ENDPOINT, USAGE_PATH,
};

/// The key that raises the byte bound of every answer, for error messages.
pub const ANSWER_BYTES_KEY: &str = "answer_bytes (in the account's [[fastly]] table)";
/// Invoices asked for per page (the API's maximum is 200).
pub const INVOICES_PER_PAGE: usize = 100;
/// The longest wait a 429's `Fastly-RateLimit-Reset` is taken at (an hour: the API's window).
pub const MAX_RESET_WAIT: Duration = Duration::from_secs(3600);

/// One account's connection to the API.
#[derive(Debug)]
pub struct Client {
    http: reqwest::Client,
    base: reqwest::Url,
    token: Secret,
    account: Arc<str>,
    path: String,
    timeout: Duration,
    upstream: Upstream,
    clock: Clock,
    /// `max_services`, `max_line_items`, `max_pages`, `answer_bytes`.
    pub limits: Limits,
    /// The currency of the newest end-of-month invoice seen: the month-to-date invoice has no
    /// currency field, so it is taken to be billed in the same one.
    currency: Mutex<Option<String>>,
}

/// The account's bounds on answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Services listed, configured or in one stats answer.
    pub max_services: usize,
    /// Line items of one invoice.
    pub max_line_items: usize,
    /// Pages of one listing per poll.
    pub max_pages: usize,
    /// Bytes of one answer.
    pub answer_bytes: usize,
}

/// One answer that passed the status check.
#[derive(Debug)]
pub struct Reply {
    /// The HTTP status (2xx).
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
    /// The `Link` header's `rel="next"` target, if any.
    pub next: Option<String>,
}

impl Client {
    /// A client for one account. Fails only on a base URL that validation let through.
    pub fn new(account: &FastlyAccount, http: &reqwest::Client, upstream: Upstream) -> Result<Self, SetupError> {
        let base = reqwest::Url::parse(account.base_url.trim_end_matches('/'))
            .map_err(|e| SetupError { path: format!("{}.base_url", account.path), message: e.to_string() })?;
        Ok(Client {
            http: http.clone(),
            base,
            token: account.api_token.clone(),
            account: account.name.as_str().into(),
            path: account.path.clone(),
            timeout: account.timeout,
            upstream,
            clock: Clock::system(),
            limits: Limits {
                max_services: account.max_services,
                max_line_items: account.max_line_items,
                max_pages: account.max_pages,
                answer_bytes: account.answer_bytes,
            },
            currency: Mutex::new(None),
        })
    }

    /// The same client reading "now" from `clock` (tests walk a month with a manual clock).
    pub fn with_clock(self, clock: Clock) -> Self {
        Client { clock, ..self }
    }

    /// The clock windows are chosen by.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The account's configured name.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// The account's place in the file (`fastly[0]`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The currency of the newest end-of-month invoice seen, if one was.
    pub fn currency(&self) -> Option<String> {
        self.currency.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Remembers the currency of the newest end-of-month invoice.
    pub fn set_currency(&self, currency: &str) {
        *self.currency.lock().unwrap_or_else(|e| e.into_inner()) = Some(currency.to_owned());
    }

    /// `path` under the base URL with `query`.
    fn url(&self, path: &str, query: &[(&str, String)]) -> reqwest::Url {
        let mut url = self.base.clone();
        let joined = format!("{}{path}", self.base.path().trim_end_matches('/'));
        url.set_path(&joined);
        if query.is_empty() {
            url.set_query(None);
        } else {
            url.query_pairs_mut().clear().extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        url
    }

    /// GETs `url`, retrying what may succeed; the answer passed the status check.
    pub async fn get(&self, ctx: &PollContext, url: &reqwest::Url, endpoint: &'static str) -> Result<Reply, PollError> {
        with_retries(&self.upstream.retry, ctx, || self.attempt(url, endpoint)).await
    }

    async fn attempt(&self, url: &reqwest::Url, endpoint: &'static str) -> Result<Reply, PollError> {
        let _permits = self.upstream.permit().await?;
        let mut key = HeaderValue::from_str(self.token.expose())
            .map_err(|_| PollError::new(Reason::Auth, "the API token has characters not allowed in an HTTP header"))?;
        key.set_sensitive(true);
        let request = self
            .http
            .get(url.clone())
            .timeout(self.timeout)
            .header("fastly-key", key)
            .header(ACCEPT, HeaderValue::from_static("application/json"));
        let mut response = self.upstream.send(&self.account, request).await?;
        let status = response.status().as_u16();
        let wait = wait(response.headers(), self.clock.now());
        let next = next_link(response.headers());
        let limit = BodyLimit { bytes: self.limits.answer_bytes, endpoint, key: ANSWER_BYTES_KEY };
        let body = read_body(&mut response, limit).await?;
        classify(status, &body, endpoint, &self.path).map_err(|e| PollError { retry_after: wait, ..e })?;
        Ok(Reply { status, body, next })
    }

    /// The month-to-date invoice's body.
    pub async fn month_to_date(&self, ctx: &PollContext) -> Result<Vec<u8>, PollError> {
        let url = self.url(MTD_PATH, &[]);
        Ok(self.get(ctx, &url, MTD_ENDPOINT).await?.body)
    }

    /// Every page of the end-of-month invoices whose billing period starts between the days
    /// `first` and `last`, each handed to `each`; at most `max_pages` pages.
    pub async fn invoices(
        &self,
        ctx: &PollContext,
        first: i64,
        last: i64,
        mut each: impl FnMut(InvoicePage<'_>) -> Result<(), PollError>,
    ) -> Result<(), PollError> {
        let mut cursor = String::new();
        let mut seen: Vec<String> = Vec::new();
        for page in 0.. {
            if page >= self.limits.max_pages {
                return Err(PollError::parse(format!(
                    "invoices kept paging: {page} pages read and Fastly says there is more: refused. If the \
                     account really has that many invoices, raise `{}.max_pages`",
                    self.path
                )));
            }
            let mut query = vec![
                ("billing_start_date", timeutil::format_ymd(first)),
                ("billing_end_date", timeutil::format_ymd(last)),
                ("limit", INVOICES_PER_PAGE.to_string()),
            ];
            if !cursor.is_empty() {
                query.push(("cursor", cursor.clone()));
            }
            let reply = self.get(ctx, &self.url(INVOICES_PATH, &query), INVOICES_ENDPOINT).await?;
            let limit = ListLimit {
                max: self.limits.max_line_items.max(INVOICES_PER_PAGE * 2),
                items: "entries (invoices or line items)",
                key: "max_line_items (in the account's [[fastly]] table)",
            };
            let parsed: InvoicePage<'_> = parse_capped(&reply.body, limit, "invoices answer")?;
            let next = parsed.meta.as_ref().and_then(|m| m.next_cursor.get()).unwrap_or_default().trim().to_owned();
            each(parsed)?;
            if next.is_empty() {
                return Ok(());
            }
            // A cursor seen before would page forever.
            if seen.contains(&next) {
                return Err(PollError::parse(format!(
                    "invoices answer repeats the cursor {:?}: refused (it would page forever)",
                    text::label(&next)
                )));
            }
            seen.push(next.clone());
            cursor = next;
        }
        Ok(())
    }

    /// Every service `GET /service` lists (deleted ones left out), following the `Link`
    /// header's `rel="next"` under `max_pages`; more than `max_services` fails.
    pub async fn services(&self, ctx: &PollContext) -> Result<Vec<String>, PollError> {
        // Without the filter every version of every service comes along: hundreds of entries a
        // service on a busy account (Fastly's own exporter sends it too).
        let mut url = self.url(
            SERVICES_PATH,
            &[
                ("page", "1".into()),
                ("per_page", SERVICES_PER_PAGE.to_string()),
                ("filter[include_versions]", "false".into()),
            ],
        );
        let mut services: Vec<String> = Vec::new();
        let max = self.limits.max_services;
        for page in 0.. {
            if page >= self.limits.max_pages {
                return Err(PollError::parse(format!(
                    "service list kept paging: {page} pages read and the Link header names a next one: refused. \
                     Raise `{}.max_pages`, or list the services in `{}.services`",
                    self.path, self.path
                )));
            }
            let reply = self.get(ctx, &url, SERVICES_ENDPOINT).await?;
            let limit = ListLimit {
                max: SERVICES_PER_PAGE.max(max + 1),
                items: "services",
                key: "max_services (in the account's [[fastly]] table)",
            };
            let Array(Capped(entries)) = parse_capped::<Array<ServiceEntry<'_>>>(&reply.body, limit, "service list")?;
            for e in entries {
                if e.deleted_at.get().is_some_and(|d| !d.trim().is_empty()) {
                    continue;
                }
                let id = e.id.get().unwrap_or_default().trim();
                if !normalize::is_service_id(id) {
                    return Err(PollError::parse(format!(
                        "service list has the id {:?}, which is not a service id: not data",
                        text::label(id)
                    )));
                }
                if !services.iter().any(|s| s == id) {
                    services.push(id.to_owned());
                }
                if services.len() > max {
                    return Err(PollError::parse(format!(
                        "the token sees more than {max} services: refused. Raise `{}.max_services`, or list the \
                         services to watch in `{}.services`",
                        self.path, self.path
                    )));
                }
            }
            let Some(next) = reply.next else { return Ok(services) };
            url = self.same_origin(&next)?;
            // A `Link` target may drop the filter: every version would come back with page 2.
            if !url.query_pairs().any(|(k, _)| k == "filter[include_versions]") {
                url.query_pairs_mut().append_pair("filter[include_versions]", "false");
            }
        }
        Ok(services)
    }

    /// A `Link` target as a URL, if it points to the service list under the base URL: the
    /// token is sent only there.
    fn same_origin(&self, link: &str) -> Result<reqwest::Url, PollError> {
        let expected = self.url(SERVICES_PATH, &[]);
        match self.base.join(link) {
            Ok(u)
                if u.scheme() == expected.scheme()
                    && u.host_str() == expected.host_str()
                    && u.port_or_known_default() == expected.port_or_known_default()
                    && u.path() == expected.path() =>
            {
                Ok(u)
            }
            _ => Err(PollError::new(
                Reason::Provider,
                format!(
                    "service list's Link header points to {}, not to the service list under base_url: not followed \
                     (the token goes only to base_url)",
                    text::url(link)
                ),
            )),
        }
    }

    /// Usage per region and service summed over the hourly buckets of `[from, to)` (Unix
    /// seconds), from `/stats/usage_by_service`: one small answer whatever the window and the
    /// number of services (docs/providers/fastly.md says why this endpoint). At most
    /// `max_services` services per region.
    pub async fn usage(&self, ctx: &PollContext, from: i64, to: i64) -> Result<Vec<u8>, PollError> {
        let query = [("from", from.to_string()), ("to", to.to_string()), ("by", "hour".to_owned())];
        Ok(self.get(ctx, &self.url(USAGE_PATH, &query), STATS_ENDPOINT).await?.body)
    }
}

/// How long a 429 asks to wait: `Retry-After` if sent, else until `Fastly-RateLimit-Reset`
/// (epoch seconds), at most [`MAX_RESET_WAIT`].
pub fn wait(headers: &HeaderMap, now: i64) -> Option<Duration> {
    if let Some(w) = retry_after(headers) {
        return Some(w);
    }
    let reset: i64 = headers.get(RATELIMIT_RESET)?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs((reset - now).clamp(0, MAX_RESET_WAIT.as_secs() as i64) as u64))
}

/// The `rel="next"` target of the `Link` headers, if any.
pub fn next_link(headers: &HeaderMap) -> Option<String> {
    headers.get_all(reqwest::header::LINK).iter().filter_map(|v| v.to_str().ok()).find_map(|v| {
        v.split(',').find_map(|part| {
            let (target, params) = part.trim().split_once(';')?;
            let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
            let next = params.split(';').any(|p| {
                let p = p.trim().to_ascii_lowercase();
                p == "rel=\"next\"" || p == "rel=next"
            });
            next.then(|| target.to_owned())
        })
    })
}

/// Classifies an HTTP status: 2xx other than 202 passes; every other status is a failed poll.
pub fn classify(status: u16, body: &[u8], endpoint: &str, path: &str) -> Result<(), PollError> {
    if (200..300).contains(&status) && status != 202 {
        return Ok(());
    }
    let said = wire::error_message(body).unwrap_or_else(|| preview(body));
    let said = text::message(&said);
    Err(match status {
        202 => PollError::new(
            Reason::Provider,
            format!("{endpoint}: HTTP 202, Fastly is still preparing the answer; the next poll asks again"),
        ),
        401 | 403 => PollError::new(
            Reason::Auth,
            format!(
                "{endpoint}: HTTP {status}, Fastly refused the token ({said}). Check `{path}.api_token`; the billing \
                 endpoints need a token of a user with the Billing or Superuser role"
            ),
        ),
        404 | 422 if endpoint == MTD_ENDPOINT => PollError::new(
            Reason::Provider,
            format!(
                "no month-to-date invoice for this account (HTTP {status}: {said}): Fastly has none yet this \
                 month, or the account cannot have one (a parent-paid account)"
            ),
        ),
        429 => PollError::new(Reason::Throttled, format!("{endpoint}: HTTP 429, Fastly's rate limit: {said}")),
        500.. => PollError::new(Reason::Http, format!("{endpoint}: HTTP {status}: {said}")),
        _ => PollError::new(Reason::Provider, format!("{endpoint}: HTTP {status}: {said}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified() {
        let r =
            |s: u16, e: &str| classify(s, br#"{"title":"Nope"}"#, e, "fastly[0]").map_err(|e| (e.reason, e.message));
        assert!(r(200, MTD_ENDPOINT).is_ok());
        let (reason, message) = r(202, MTD_ENDPOINT).unwrap_err();
        assert_eq!(reason, Reason::Provider);
        assert!(message.contains("next poll"), "{message}");
        assert_eq!(r(401, STATS_ENDPOINT).unwrap_err().0, Reason::Auth);
        assert!(r(403, MTD_ENDPOINT).unwrap_err().1.contains("`fastly[0].api_token`"));
        for s in [404, 422] {
            let (reason, message) = r(s, MTD_ENDPOINT).unwrap_err();
            assert_eq!(reason, Reason::Provider);
            assert!(message.contains("no month-to-date invoice") && message.contains("Nope"), "{message}");
        }
        assert!(!r(404, STATS_ENDPOINT).unwrap_err().1.contains("month-to-date"));
        assert_eq!(r(429, STATS_ENDPOINT).unwrap_err().0, Reason::Throttled);
        assert_eq!(r(503, STATS_ENDPOINT).unwrap_err().0, Reason::Http);
        assert_eq!(r(400, STATS_ENDPOINT).unwrap_err().0, Reason::Provider);
    }

    #[test]
    fn link_and_rate_limit_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            reqwest::header::LINK,
            HeaderValue::from_static(
                "<https://api.fastly.com/service?page=1>; rel=\"prev\", <https://api.fastly.com/service?page=3&per_page=100>; rel=\"next\"",
            ),
        );
        assert_eq!(next_link(&h).as_deref(), Some("https://api.fastly.com/service?page=3&per_page=100"));
        assert_eq!(next_link(&HeaderMap::new()), None);
        h.insert(RATELIMIT_RESET, HeaderValue::from_static("1000060"));
        assert_eq!(wait(&h, 1_000_000), Some(Duration::from_secs(60)));
        h.insert(RATELIMIT_RESET, HeaderValue::from_static("99999999999"));
        assert_eq!(wait(&h, 1_000_000), Some(MAX_RESET_WAIT));
        h.insert(reqwest::header::RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(wait(&h, 1_000_000), Some(Duration::from_secs(7)));
    }
}
