//! What the scheduler, the providers and the store share: a job's identity, the samples a poll
//! produces, the error a poll can end in (with its fixed `reason`), and the trait a provider
//! endpoint implements.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::families::FamilyId;

/// One (provider, account, endpoint): the unit that is scheduled, polled and exported.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobKey {
    /// `scaleengine` or `cdnetworks`: the `provider` label.
    pub provider: &'static str,
    /// The account's configured name: the `account` label.
    pub account: Arc<str>,
    /// The API endpoint polled, e.g. `usage.summary`: the `endpoint` label of health metrics.
    pub endpoint: &'static str,
    /// For jobs that poll one domain of an account (CDNetworks): the `domain` label of health
    /// metrics.
    pub domain: Option<Arc<str>>,
}

impl JobKey {
    /// A job that covers a whole account.
    pub fn account(provider: &'static str, account: impl Into<Arc<str>>, endpoint: &'static str) -> Self {
        JobKey { provider, account: account.into(), endpoint, domain: None }
    }

    /// The labels that identify the job on health metrics.
    pub fn labels(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [("provider", self.provider), ("account", &*self.account), ("endpoint", self.endpoint)]
            .into_iter()
            .chain(self.domain.as_deref().map(|d| ("domain", d)))
    }
}

impl fmt::Display for JobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.provider, self.account, self.endpoint)?;
        match &self.domain {
            Some(d) => write!(f, "/{d}"),
            None => Ok(()),
        }
    }
}

/// One value of a family, with the labels beyond `provider` and `account`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The family it belongs to.
    pub family: FamilyId,
    /// Extra labels, in the order they are written.
    pub labels: Vec<(&'static str, String)>,
    /// The value, in the family's base unit.
    pub value: f64,
}

impl Sample {
    /// A sample with no extra labels.
    pub fn new(family: FamilyId, value: f64) -> Self {
        Sample { family, labels: Vec::new(), value }
    }

    /// Adds a label.
    pub fn label(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.labels.push((name, value.into()));
        self
    }
}

/// Why a poll failed: the fixed set of values of the `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// Credentials were refused.
    Auth,
    /// The provider refused our timestamp: the host clock is off.
    ClockSkew,
    /// The provider asked us to slow down.
    Throttled,
    /// No answer within the job's timeout.
    Timeout,
    /// A connection error or an HTTP status that is not a success.
    Http,
    /// An answer we could not understand.
    Parse,
    /// The provider answered with an error of its own.
    Provider,
    /// The answer needs a setting the configuration lacks (a currency, an exchange rate).
    Config,
}

impl Reason {
    /// Every reason, in label order.
    pub const ALL: [Reason; 8] = [
        Reason::Auth,
        Reason::ClockSkew,
        Reason::Throttled,
        Reason::Timeout,
        Reason::Http,
        Reason::Parse,
        Reason::Provider,
        Reason::Config,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Auth => "auth",
            Reason::ClockSkew => "clock_skew",
            Reason::Throttled => "throttled",
            Reason::Timeout => "timeout",
            Reason::Http => "http",
            Reason::Parse => "parse",
            Reason::Provider => "provider",
            Reason::Config => "config",
        }
    }
}

/// A failed poll: why, and a message for a person (never containing a secret; built with
/// [`PollError::new`], at most [`crate::text::ERROR_BYTES`] and free of controls).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PollError {
    /// The `reason` label value.
    pub reason: Reason,
    /// What went wrong, with the provider's own code and message where there is one.
    pub message: String,
    /// How long the provider asked us to wait (`Retry-After`), if it said.
    pub retry_after: Option<Duration>,
}

impl PollError {
    /// An error of the given reason. The message is made inert and bounded here, once for every
    /// place it goes (log, status page): it may carry provider text.
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        let message = message.into();
        let message = crate::text::inert(&message, crate::text::ERROR_BYTES);
        PollError { reason, message, retry_after: None }
    }

    /// The same error with its message made inert and bounded again, for an error built as a
    /// struct literal around [`PollError::new`]: the scheduler applies it before logging and
    /// storing. A message that already passed [`PollError::new`] comes out unchanged.
    pub fn made_inert(self) -> Self {
        use crate::text::{ERROR_BYTES, inert};
        // Room for the cut marker [`PollError::new`] may have added: such a message is only
        // escaped (a no-op for it), never cut twice.
        const SLACK: usize = ERROR_BYTES + 32;
        let escaped = (self.message.len() <= SLACK).then(|| inert(&self.message, usize::MAX));
        let message = match escaped {
            Some(m) if m.len() <= SLACK => m,
            _ => inert(&self.message, ERROR_BYTES),
        };
        PollError { message, ..self }
    }

    /// Whether trying again may help: timeouts, connection errors, 5xx and throttling. Auth,
    /// clock, validation and parse errors would only fail again.
    pub fn retryable(&self) -> bool {
        matches!(self.reason, Reason::Timeout | Reason::Http | Reason::Throttled)
    }

    /// A response we could not understand.
    pub fn parse(message: impl Into<String>) -> Self {
        Self::new(Reason::Parse, message)
    }
}

/// A boxed future, as returned by [`Poller::poll`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the scheduler hands one poll: when it must be finished. Retries that would end past the
/// deadline are not made ([`crate::providers::common::http::with_retries`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollContext {
    /// When the poll is cut; `None` when nothing bounds it (backfill bounds each request only).
    pub deadline: Option<tokio::time::Instant>,
}

impl PollContext {
    /// A poll that must end by `deadline`.
    pub fn until(deadline: tokio::time::Instant) -> Self {
        PollContext { deadline: Some(deadline) }
    }

    /// A poll with no deadline of its own (each request still has its timeout).
    pub const UNBOUNDED: PollContext = PollContext { deadline: None };
}

/// One provider endpoint for one account: fetch and normalize, nothing else. The scheduler owns
/// timing, timeouts and health.
pub trait Poller: Send + Sync {
    /// Fetches the endpoint and returns every sample it yields.
    fn poll<'a>(&'a self, ctx: &'a PollContext) -> BoxFuture<'a, Result<Vec<Sample>, PollError>>;
}

/// Where providers report each upstream request they made: the store counts them into
/// `cdn_exporter_upstream_requests_total`; backfill counts nothing.
pub trait RequestSink: Send + Sync {
    /// One request of `provider`'s `account` ended with `status` (an HTTP status code, or
    /// `error` when no answer came).
    fn count(&self, provider: &'static str, account: &Arc<str>, status: &str);
    /// One request of `provider`'s `account` to `api` may cost `usd` US dollars.
    fn cost(&self, _provider: &'static str, _account: &Arc<str>, _api: &'static str, _usd: f64) {}
}

/// A [`RequestSink`] that counts nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSink;

impl RequestSink for NoSink {
    fn count(&self, _: &'static str, _: &Arc<str>, _: &str) {}
}

/// A job as the scheduler runs it.
#[derive(Clone)]
pub struct JobSpec {
    /// Identity and labels.
    pub key: JobKey,
    /// Time between the starts of two polls (before jitter).
    pub interval: Duration,
    /// The longest a poll may take, pagination included.
    pub timeout: Duration,
    /// Samples older than this leave `/metrics`.
    pub max_age: Duration,
    /// The endpoint.
    pub poller: Arc<dyn Poller>,
}

impl JobSpec {
    /// A job polled every `interval`. A poll (retries, pagination and waits for a free
    /// connection included) is bounded by its interval, so that polls of one job never pile up;
    /// `request_timeout` bounds each request. Samples live `max_age`, by default 3 intervals.
    pub fn periodic(
        key: JobKey,
        interval: Duration,
        request_timeout: Duration,
        max_age: Option<Duration>,
        poller: Arc<dyn Poller>,
    ) -> Self {
        JobSpec {
            key,
            interval,
            timeout: interval.max(request_timeout),
            max_age: max_age.unwrap_or(interval * 3),
            poller,
        }
    }
}

impl fmt::Debug for JobSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobSpec")
            .field("key", &self.key)
            .field("interval", &self.interval)
            .field("timeout", &self.timeout)
            .field("max_age", &self.max_age)
            .finish_non_exhaustive()
    }
}
