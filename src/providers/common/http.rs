//! HTTP plumbing every provider client shares: bounded body reads, redirects and transport
//! errors as poll errors, and printable previews of bodies for error messages.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::limits::{AnswerLimits, RequestLimits};
use crate::job::{NoSink, PollContext, PollError, Reason, RequestSink};
use crate::timeutil;

/// The HTTP client every provider shares: rustls, a user agent naming the exporter, bounded
/// connects, and no redirects (a signed request goes only where it is configured to; a
/// redirect is a failed poll, see [`redirect_error`]).
pub fn client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .user_agent(concat!("cdn-usage-exporter/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

/// What one answer may weigh: its byte bound and the config key that raises it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimit {
    /// The most bytes read.
    pub bytes: usize,
    /// The endpoint, for the message (`usage.summary`).
    pub endpoint: &'static str,
    /// The key that sets it (`answer_limits.summary_bytes`).
    pub key: &'static str,
}

impl BodyLimit {
    /// The error for an answer past the bound; `declared` is its `Content-Length`, if known.
    fn exceeded(&self, status: u16, declared: Option<u64>) -> PollError {
        let size = match declared {
            Some(n) => format!("declares {n} bytes"),
            None => "kept coming".to_owned(),
        };
        PollError::parse(format!(
            "{} answer (HTTP {status}) {size}, more than the {} bytes allowed: refused. If the provider \
             really sends that much, raise `{}`",
            self.endpoint, self.bytes, self.key
        ))
    }
}

/// Reads a response body of at most `limit.bytes`: a `Content-Length` past it is refused before
/// reading, and a body that grows past it is refused as it arrives.
pub async fn read_body(response: &mut reqwest::Response, limit: BodyLimit) -> Result<Vec<u8>, PollError> {
    let status = response.status().as_u16();
    let declared = response.content_length();
    if declared.is_some_and(|n| n > limit.bytes as u64) {
        return Err(limit.exceeded(status, declared));
    }
    let mut bytes = Vec::with_capacity(declared.map_or(0, |n| n as usize).min(limit.bytes));
    while let Some(chunk) = response.chunk().await.map_err(|e| transport_error(&e))? {
        if bytes.len() + chunk.len() > limit.bytes {
            return Err(limit.exceeded(status, None));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// A redirect answer as a poll error naming where it pointed (without query or credentials).
/// Redirects are never followed: a signed request must go only where it is configured to.
pub fn redirect_error(response: &reqwest::Response) -> Option<PollError> {
    if !response.status().is_redirection() {
        return None;
    }
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .map(|v| crate::text::url(&String::from_utf8_lossy(v.as_bytes())))
        .unwrap_or_else(|| "nowhere (no Location header)".to_owned());
    Some(PollError::new(
        Reason::Http,
        format!(
            "HTTP {} redirect to {location}: redirects are not followed. If the provider moved, set base_url to \
             the new address",
            response.status().as_u16()
        ),
    ))
}

/// A reqwest error as a poll error: timeouts apart, with the cause chain in the message.
pub fn transport_error(e: &reqwest::Error) -> PollError {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    let reason = if e.is_timeout() { Reason::Timeout } else { Reason::Http };
    PollError::new(reason, message)
}

/// The first bytes of a body, printable and on one line, for error messages.
pub fn preview(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(120)]);
    let mut out: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    out = crate::text::inert(&out, crate::text::MESSAGE_BYTES);
    if body.len() > 120 {
        out.push('…');
    }
    if out.trim().is_empty() { "(empty body)".into() } else { out }
}

/// How failed requests are retried: jittered exponential backoff, `Retry-After` honoured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all (1 = no retry).
    pub attempts: u32,
    /// The first backoff.
    pub base: Duration,
    /// The longest backoff.
    pub cap: Duration,
    /// A `Retry-After` longer than this is not waited for: the poll fails and the next one
    /// comes at its interval.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 3,
            base: Duration::from_secs(1),
            cap: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (0-based): half of `min(cap, base × 2^retry)`
    /// plus a random share of the other half, and never less than the provider's `Retry-After`.
    pub fn backoff(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        let full = self.base.saturating_mul(1u32 << retry.min(16)).min(self.cap);
        let jittered = full / 2 + (full / 2).mul_f64(fastrand::f64());
        retry_after.map_or(jittered, |r| r.max(jittered))
    }
}

/// Runs `attempt` until it succeeds, fails with an error that is not retryable, or the policy's
/// attempts are spent. A retry whose wait would run past the poll's deadline (`ctx`) is not
/// made: the poll ends with the real error rather than being cut as a timeout.
pub async fn with_retries<T, F, Fut>(
    policy: &impl RetrySource,
    ctx: &PollContext,
    mut attempt: F,
) -> Result<T, PollError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, PollError>>,
{
    let policy = &policy.policy();
    let mut retry = 0;
    loop {
        let error = match attempt().await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        if !error.retryable() || retry + 1 >= policy.attempts {
            return Err(error);
        }
        if error.retry_after.is_some_and(|r| r > policy.max_retry_after) {
            return Err(error);
        }
        let wait = policy.backoff(retry, error.retry_after);
        if ctx.deadline.is_some_and(|d| tokio::time::Instant::now() + wait >= d) {
            return Err(error);
        }
        tracing::debug!(reason = error.reason.as_str(), error = %error.message, wait_ms = wait.as_millis() as u64, "Retrying");
        tokio::time::sleep(wait).await;
        retry += 1;
    }
}

/// `Retry-After` as seconds or as an HTTP date.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = timeutil::parse_http_date(value)?;
    Some(Duration::from_secs((at - timeutil::now_unix()).max(0) as u64))
}

/// Where [`with_retries`] reads its policy: a fixed one, or one a reload may change.
pub trait RetrySource {
    /// The policy now.
    fn policy(&self) -> RetryPolicy;
}

impl RetrySource for RetryPolicy {
    fn policy(&self) -> RetryPolicy {
        *self
    }
}

/// A retry policy shared by every clone, changed in place by a reload.
#[derive(Debug, Clone)]
pub struct LiveRetry(Arc<ArcSwap<RetryPolicy>>);

impl RetrySource for LiveRetry {
    fn policy(&self) -> RetryPolicy {
        **self.0.load()
    }
}

#[derive(Debug)]
struct Caps {
    global: Arc<Semaphore>,
    provider: Arc<Semaphore>,
    per_provider: usize,
    answers: AnswerLimits,
}

/// The limits every request of one provider passes: a global cap on requests in flight and the
/// provider's own, plus the retry policy. Clones share them, so that a reload changes them in
/// place ([`Upstream::set_limits`]) under running jobs instead of restarting the jobs.
#[derive(Clone)]
pub struct Upstream {
    caps: Arc<ArcSwap<Caps>>,
    /// How failed requests are retried.
    pub retry: LiveRetry,
    /// The `provider` label of the requests counted.
    provider: &'static str,
    /// Where each request is counted.
    sink: Arc<dyn RequestSink>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("provider", &self.provider)
            .field("caps", &self.caps)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// One [`Upstream`] per provider, sharing one global cap (`limits.max_in_flight`) and counting
/// requests into `sink`. Live polling and backfill build theirs with it.
pub fn upstreams(
    providers: impl IntoIterator<Item = &'static str>,
    limits: &RequestLimits,
    sink: Arc<dyn RequestSink>,
) -> (Arc<Semaphore>, BTreeMap<&'static str, Upstream>) {
    let global = Arc::new(Semaphore::new(limits.max_in_flight));
    let retry = limits.retry_policy();
    let upstreams = providers
        .into_iter()
        .map(|p| {
            let upstream = Upstream::new(global.clone(), limits.max_in_flight_per_provider, retry)
                .with_answers(limits.answers)
                .counting(p, sink.clone());
            (p, upstream)
        })
        .collect();
    (global, upstreams)
}

impl Upstream {
    /// Limits sharing `global` with other providers.
    pub fn new(global: Arc<Semaphore>, per_provider: usize, retry: RetryPolicy) -> Self {
        let per_provider = per_provider.max(1);
        let caps = Caps {
            global,
            provider: Arc::new(Semaphore::new(per_provider)),
            per_provider,
            answers: AnswerLimits::default(),
        };
        Upstream {
            caps: Arc::new(ArcSwap::from_pointee(caps)),
            retry: LiveRetry(Arc::new(ArcSwap::from_pointee(retry))),
            provider: "",
            sink: Arc::new(NoSink),
        }
    }

    /// The same limits, counting each request as `provider`'s into `sink`.
    pub fn counting(self, provider: &'static str, sink: Arc<dyn RequestSink>) -> Self {
        Upstream { provider, sink, ..self }
    }

    /// Counts one request of `account` that ended with `status` (a status code or `error`).
    pub fn count(&self, account: &Arc<str>, status: &str) {
        self.sink.count(self.provider, account, status);
    }

    /// Counts what one request of `account` to `api` may cost, in US dollars.
    pub fn cost(&self, account: &Arc<str>, api: &'static str, usd: f64) {
        self.sink.cost(self.provider, account, api, usd);
    }

    /// The same limits with `answers` as the bounds on answers.
    pub fn with_answers(self, answers: AnswerLimits) -> Self {
        let caps = self.caps.load();
        self.caps.store(Arc::new(Caps {
            global: caps.global.clone(),
            provider: caps.provider.clone(),
            per_provider: caps.per_provider,
            answers,
        }));
        self
    }

    /// What one answer may hold, now.
    pub fn answers(&self) -> AnswerLimits {
        self.caps.load().answers
    }

    /// Changes the limits of every clone. A changed cap is a new semaphore: requests in flight
    /// finish under the old one, so for the length of one request both may be in use.
    pub fn set_limits(&self, global: &Arc<Semaphore>, limits: &RequestLimits) {
        let (retry, answers) = (limits.retry_policy(), limits.answers);
        let per_provider = limits.max_in_flight_per_provider.max(1);
        let old = self.caps.load();
        let provider = if old.per_provider == per_provider {
            old.provider.clone()
        } else {
            Arc::new(Semaphore::new(per_provider))
        };
        self.caps.store(Arc::new(Caps { global: global.clone(), provider, per_provider, answers }));
        self.retry.0.store(Arc::new(retry));
    }

    /// Sends `request` for `account`, counting it by its status (`error` when no answer came). A
    /// transport failure or a redirect (never followed) is a poll error.
    pub async fn send(
        &self,
        account: &Arc<str>,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, PollError> {
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                self.count(account, "error");
                return Err(transport_error(&e));
            }
        };
        self.count(account, &response.status().as_u16().to_string());
        match redirect_error(&response) {
            Some(e) => Err(e),
            None => Ok(response),
        }
    }

    /// Waits for a place under both limits; hold the permits for the length of one request.
    pub async fn permit(&self) -> Result<(OwnedSemaphorePermit, OwnedSemaphorePermit), PollError> {
        let closed = |_| PollError::new(Reason::Http, "shutting down");
        let (provider, global) = {
            let caps = self.caps.load();
            (caps.provider.clone(), caps.global.clone())
        };
        let provider = provider.acquire_owned().await.map_err(closed)?;
        let global = global.acquire_owned().await.map_err(closed)?;
        Ok((provider, global))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn backoff_grows_with_jitter_and_respects_retry_after() {
        let p = RetryPolicy::default();
        for retry in 0..8 {
            let full = Duration::from_secs(1 << retry).min(p.cap);
            let w = p.backoff(retry, None);
            assert!(w >= full / 2 && w <= full, "retry {retry}: {w:?}");
        }
        assert_eq!(p.backoff(0, Some(Duration::from_secs(10))), Duration::from_secs(10));
    }

    fn limits(per_provider: usize, retries: u32) -> RequestLimits {
        RequestLimits {
            max_in_flight: 10,
            max_in_flight_per_provider: per_provider,
            retries,
            answers: AnswerLimits::default(),
        }
    }

    #[tokio::test]
    async fn limits_change_in_place_for_every_clone() {
        let global = Arc::new(Semaphore::new(10));
        let a = Upstream::new(global.clone(), 1, RetryPolicy { attempts: 1, ..RetryPolicy::default() });
        let b = a.clone();
        let held = a.permit().await.unwrap();
        assert!(tokio::time::timeout(Duration::from_millis(50), b.permit()).await.is_err(), "1 per provider");
        b.set_limits(&global, &limits(2, 3));
        let second = tokio::time::timeout(Duration::from_secs(5), a.permit()).await;
        assert!(second.is_ok(), "the new cap of 2 holds for the clone too");
        assert_eq!(a.retry.policy().attempts, 4);
        let narrow = Arc::new(Semaphore::new(1));
        a.set_limits(&narrow, &limits(2, 2));
        let _one = b.permit().await.unwrap();
        assert!(tokio::time::timeout(Duration::from_millis(50), b.permit()).await.is_err(), "the new global cap");
        drop(held);
    }

    #[tokio::test(start_paused = true)]
    async fn retries_only_what_may_succeed() {
        let policy = RetryPolicy::default();
        for (reason, expected) in [
            (Reason::Http, 3),
            (Reason::Timeout, 3),
            (Reason::Throttled, 3),
            (Reason::Auth, 1),
            (Reason::Parse, 1),
            (Reason::Provider, 1),
            (Reason::ClockSkew, 1),
        ] {
            let calls = AtomicU32::new(0);
            let r: Result<(), _> = with_retries(&policy, &PollContext::UNBOUNDED, || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(PollError::new(reason, "x"))
            })
            .await;
            assert!(r.is_err());
            assert_eq!(calls.load(Ordering::SeqCst), expected, "{reason:?}");
        }
        let calls = AtomicU32::new(0);
        let r = with_retries(&policy, &PollContext::UNBOUNDED, || async {
            if calls.fetch_add(1, Ordering::SeqCst) < 2 { Err(PollError::new(Reason::Http, "flaky")) } else { Ok(7) }
        })
        .await;
        assert_eq!(r, Ok(7));
        // A Retry-After beyond the policy's patience is not waited for.
        let calls = AtomicU32::new(0);
        let started = tokio::time::Instant::now();
        let _: Result<(), _> = with_retries(&policy, &PollContext::UNBOUNDED, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(PollError {
                retry_after: Some(Duration::from_secs(3600)),
                ..PollError::new(Reason::Throttled, "later")
            })
        })
        .await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(started.elapsed() < Duration::from_secs(1));
        // Nor is a retry that would end past the poll's deadline.
        let calls = AtomicU32::new(0);
        let deadline = tokio::time::Instant::now() + Duration::from_millis(400);
        let r: Result<(), _> = with_retries(&policy, &PollContext::until(deadline), || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(PollError::new(Reason::Throttled, "busy"))
        })
        .await;
        assert_eq!(r.unwrap_err().reason, Reason::Throttled, "the real error, not a timeout");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
