//! One CDNetworks account's connection to the API: signed (API key or AK/SK), rate-limited
//! (300 requests per 5 minutes per account) POSTs, with bounded answers classified into
//! points, a day of traffic slices, or a [`PollError`].

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, DATE, HeaderMap, HeaderValue};
use serde_json::json;
use tokio::sync::Semaphore;

use crate::job::{PollContext, PollError, Reason};
use crate::providers::SetupError;
use crate::providers::common::http::{BodyLimit, Upstream, preview, read_body, retry_after, with_retries};
use crate::providers::common::wire::ListLimit;
use crate::ratelimit::RateLimiter;
use crate::timeutil;

use super::config::{CdnetworksAccount, CdnetworksAuth, CdnetworksDomain};
use super::{ENDPOINT, MAX_IN_FLIGHT, PATH, RATE_LIMIT, RATE_WINDOW, REQUEST_ID, WINDOW_DAYS, auth, traffic, wire};

/// One account's connection to the API.
#[derive(Debug)]
pub struct Client {
    http: reqwest::Client,
    url: reqwest::Url,
    traffic_url: reqwest::Url,
    host: String,
    auth: CdnetworksAuth,
    time_zone: HeaderValue,
    utc_offset: i64,
    granularity: &'static str,
    account: Arc<str>,
    limiter: RateLimiter,
    in_flight: Semaphore,
    timeout: Duration,
    upstream: Upstream,
    clock: timeutil::Clock,
}

/// The polling window `(dateFrom, dateTo)`: the last [`WINDOW_DAYS`] days up to today, in the
/// zone `utc_offset` seconds east of UTC.
pub fn window(now: i64, utc_offset: i64) -> (String, String) {
    let today = (now + utc_offset).div_euclid(86_400);
    (timeutil::format_ymd(today - WINDOW_DAYS), timeutil::format_ymd(today))
}

impl Client {
    /// A client for one account. Fails only on a base URL that validation let through.
    pub fn new(account: &CdnetworksAccount, http: &reqwest::Client, upstream: Upstream) -> Result<Self, SetupError> {
        let problem = |key: &str, message: String| SetupError { path: format!("{}.{key}", account.path), message };
        let base = reqwest::Url::parse(account.base_url.trim_end_matches('/'))
            .map_err(|e| problem("base_url", e.to_string()))?;
        let url = base.join(PATH).map_err(|e| problem("base_url", e.to_string()))?;
        let traffic_url = base.join(traffic::PATH).map_err(|e| problem("base_url", e.to_string()))?;
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => return Err(problem("base_url", "has no host".into())),
        };
        let time_zone = HeaderValue::from_str(&account.time_zone).map_err(|e| problem("time_zone", e.to_string()))?;
        Ok(Client {
            http: http.clone(),
            url,
            traffic_url,
            host,
            auth: account.auth.clone(),
            time_zone,
            utc_offset: account.utc_offset,
            granularity: account.granularity.as_str(),
            account: account.name.as_str().into(),
            limiter: RateLimiter::new(RATE_LIMIT, RATE_WINDOW),
            in_flight: Semaphore::new(MAX_IN_FLIGHT),
            timeout: account.timeout,
            upstream,
            clock: timeutil::Clock::system(),
        })
    }

    /// The same client reading "now" from `clock` (tests drive a month with a manual clock).
    pub fn with_clock(self, clock: timeutil::Clock) -> Self {
        Client { clock, ..self }
    }

    /// The clock requests are signed and windows chosen by.
    pub fn clock(&self) -> &timeutil::Clock {
        &self.clock
    }

    /// The account's configured name.
    pub fn account(&self) -> &str {
        &self.account
    }

    fn headers(&self, path: &str, body: &[u8], now: i64) -> Result<HeaderMap, PollError> {
        let value = |s: String| {
            HeaderValue::from_str(&s).map_err(|_| {
                PollError::new(Reason::Auth, "credentials contain characters not allowed in an HTTP header")
            })
        };
        let mut h = HeaderMap::new();
        h.insert(ACCEPT, HeaderValue::from_static("application/json"));
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        h.insert("x-time-zone", self.time_zone.clone());
        match &self.auth {
            CdnetworksAuth::ApiKey { username, api_key } => {
                let date = timeutil::format_http_date(now);
                let password = auth::api_key_password(api_key.expose(), &date);
                h.insert(AUTHORIZATION, value(auth::basic_authorization(username, &password))?);
                h.insert(DATE, value(date)?);
            }
            CdnetworksAuth::AkSk { access_key, secret_key } => {
                let req = auth::SignedRequest {
                    method: "POST",
                    path,
                    query: "",
                    content_type: "application/json",
                    host: &self.host,
                    body,
                    timestamp: now,
                };
                let signature = auth::aksk_signature(secret_key.expose(), &req);
                h.insert("x-cnc-accesskey", value(access_key.expose().to_owned())?);
                h.insert("x-cnc-timestamp", value(now.to_string())?);
                h.insert("x-cnc-auth-method", HeaderValue::from_static("AKSK"));
                h.insert(AUTHORIZATION, value(auth::aksk_authorization(access_key.expose(), &signature))?);
            }
        }
        Ok(h)
    }

    /// Fetches the domain's points over the polling window, retrying what may succeed.
    pub async fn domain_usage(
        &self,
        ctx: &PollContext,
        domain: &CdnetworksDomain,
        path: &str,
    ) -> Result<Vec<wire::Point>, PollError> {
        let (date_from, date_to) = window(self.clock.now(), self.utc_offset);
        self.domain_usage_between(ctx, domain, path, &date_from, &date_to).await
    }

    /// Fetches the domain's points between two dates (`yyyy-MM-dd`, in the account's zone, at
    /// most 31 days apart), retrying what may succeed. Backfill walks history with it.
    pub async fn domain_usage_between(
        &self,
        ctx: &PollContext,
        domain: &CdnetworksDomain,
        path: &str,
        date_from: &str,
        date_to: &str,
    ) -> Result<Vec<wire::Point>, PollError> {
        with_retries(&self.upstream.retry, ctx, || self.attempt(domain, path, date_from, date_to)).await
    }

    /// The zone of the account's dates, in seconds east of UTC.
    pub fn utc_offset(&self) -> i64 {
        self.utc_offset
    }

    async fn attempt(
        &self,
        domain: &CdnetworksDomain,
        path: &str,
        date_from: &str,
        date_to: &str,
    ) -> Result<Vec<wire::Point>, PollError> {
        let body = json!({
            "dateFrom": date_from,
            "dateTo": date_to,
            "domain": domain.domain,
            "contract": domain.contract,
            "type": self.granularity,
        });
        let answers = self.upstream.answers();
        let limit = BodyLimit {
            bytes: answers.domain_usage_bytes,
            endpoint: ENDPOINT,
            key: "answer_limits.domain_usage_bytes",
        };
        let ctx = wire::Context { domain: &domain.domain, contract: &domain.contract, path, date_from, date_to };
        self.exchange(&self.url, &body, limit, |status, bytes| {
            interpret(status, bytes, &ctx, self.utc_offset, answers.page_entries)
        })
        .await
    }

    /// One signed, rate-limited POST of `body` to `url`; the answer, read within `limit`, goes
    /// to `interpret`. Errors carry the request id and the provider's `Retry-After`.
    async fn exchange<T>(
        &self,
        url: &reqwest::Url,
        body: &serde_json::Value,
        limit: BodyLimit,
        interpret: impl FnOnce(u16, &[u8]) -> Result<T, PollError>,
    ) -> Result<T, PollError> {
        let _account_permit =
            self.in_flight.acquire().await.map_err(|_| PollError::new(Reason::Http, "client is shutting down"))?;
        self.limiter.acquire().await;
        let _permits = self.upstream.permit().await?;
        let now = self.clock.now();
        let body = body.to_string().into_bytes();
        let headers = self.headers(url.path(), &body, now)?;
        let request = self.http.post(url.clone()).timeout(self.timeout).headers(headers).body(body);
        let mut response = self.upstream.send(&self.account, request).await?;
        let status = response.status().as_u16();
        let request_id = response.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let wait = retry_after(response.headers());
        let bytes = read_body(&mut response, limit).await?;
        interpret(status, &bytes).map_err(|e| {
            let mut e = match request_id {
                Some(id) => {
                    PollError { message: format!("{} (X-Cnc-Request-Id {})", e.message, crate::text::label(&id)), ..e }
                }
                None => e,
            };
            e.retry_after = wait;
            e
        })
    }

    /// Fetches one local day (`date_from`..`date_to`, `yyyy-MM-ddTHH:mm:ss±HH:mm`) of traffic
    /// for `domains` (at most [`traffic::MAX_DOMAINS_PER_REQUEST`]), retrying what may succeed.
    /// `path` names the account in error messages.
    pub async fn traffic_day(
        &self,
        ctx: &PollContext,
        domains: &[String],
        date_from: &str,
        date_to: &str,
        path: &str,
    ) -> Result<traffic::DayAnswer, PollError> {
        let day_start = timeutil::parse_ymd(date_from).unwrap_or_default() * 86_400 - self.utc_offset;
        let body = json!({
            "dateFrom": date_from,
            "dateTo": date_to,
            "domain": domains,
            "groupBy": ["domain"],
        });
        let limit = BodyLimit {
            bytes: self.upstream.answers().traffic_bytes,
            endpoint: traffic::ENDPOINT,
            key: "answer_limits.traffic_bytes",
        };
        let listed = format!("the {} domains of `{path}.domains`", domains.len());
        let wire_ctx = wire::Context { domain: &listed, contract: "-", path, date_from, date_to };
        with_retries(&self.upstream.retry, ctx, || {
            self.exchange(&self.traffic_url, &body, limit, |status, bytes| {
                interpret_traffic(status, bytes, domains, day_start, self.utc_offset, &wire_ctx)
            })
        })
        .await
    }
}

/// Turns a `traffic-request` HTTP answer into a day of slices, or a classified error.
pub fn interpret_traffic(
    status: u16,
    body: &[u8],
    asked: &[String],
    day_start: i64,
    utc_offset: i64,
    ctx: &wire::Context<'_>,
) -> Result<traffic::DayAnswer, PollError> {
    let answer =
        traffic::parse_answer(body, asked.len()).map_err(|e| unparsable(e, "answer_limits.", status, body, ctx))?;
    check_envelope(status, body, ctx, answer.error_code(), answer.message())?;
    traffic::day_slices(answer, asked, day_start, utc_offset)
}

/// Why an answer that did not parse failed: a bound (its error names `bound_key`) as it is, else
/// a success that is not JSON, else the HTTP status classified.
fn unparsable(e: PollError, bound_key: &str, status: u16, body: &[u8], ctx: &wire::Context<'_>) -> PollError {
    if e.message.contains(bound_key) {
        e
    } else if (200..300).contains(&status) {
        PollError::parse(format!("HTTP {status}, answer is not JSON: {}", preview(body)))
    } else {
        wire::classify(status, None, &preview(body), ctx)
    }
}

/// The error an answer's envelope or HTTP status carries, if any.
fn check_envelope(
    status: u16,
    body: &[u8],
    ctx: &wire::Context<'_>,
    error: Option<(String, String)>,
    message: Option<&str>,
) -> Result<(), PollError> {
    if let Some((code, message)) = error {
        return Err(wire::classify(status, Some(&code), &message, ctx));
    }
    if !(200..300).contains(&status) {
        let message = message.map_or_else(|| preview(body), str::to_owned);
        return Err(wire::classify(status, None, &message, ctx));
    }
    Ok(())
}

/// Turns an HTTP answer into points, or a classified error; at most `max_points` points.
pub fn interpret(
    status: u16,
    body: &[u8],
    ctx: &wire::Context<'_>,
    utc_offset: i64,
    max_points: usize,
) -> Result<Vec<wire::Point>, PollError> {
    let limit = points_limit(max_points);
    let answer = wire::parse_answer(body, limit).map_err(|e| unparsable(e, limit.key, status, body, ctx))?;
    check_envelope(status, body, ctx, answer.error_code(), answer.message())?;
    wire::points(answer, utc_offset)
}

/// The bound on the points of one answer.
fn points_limit(max: usize) -> ListLimit {
    ListLimit { max, items: "points", key: "answer_limits.page_entries" }
}
