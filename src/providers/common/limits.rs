//! The bounds every provider request passes: how many requests may be in flight, how often a
//! failed one is retried ([`RequestLimits`]), and how much one answer may hold
//! ([`AnswerLimits`], the `[answer_limits]` table of the configuration).

use super::http::RetryPolicy;

/// The request side of the configuration's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// `max_in_flight`: upstream requests in flight, all providers together.
    pub max_in_flight: usize,
    /// `max_in_flight_per_provider`: upstream requests in flight per provider.
    pub max_in_flight_per_provider: usize,
    /// `retries`: retries of a failed request that may succeed on a retry.
    pub retries: u32,
    /// `[answer_limits]`.
    pub answers: AnswerLimits,
}

impl RequestLimits {
    /// The retry policy these limits ask for.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy { attempts: self.retries + 1, ..RetryPolicy::default() }
    }
}

/// `[answer_limits]`: the most a provider answer may hold. An answer past a bound is a failed
/// poll (`reason="parse"`) that keeps the last good values; docs/security.md lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnswerLimits {
    /// `summary_bytes` (default 1 MiB): one `usage.summary` answer.
    pub summary_bytes: usize,
    /// `billing_bytes` (default 1 MiB): one `usage.billing.live` answer.
    pub billing_bytes: usize,
    /// `disk_bytes` (default 1 MiB): one `disk.usage` answer.
    pub disk_bytes: usize,
    /// `video_page_bytes` (default 4 MiB): one `video.usage` page.
    pub video_page_bytes: usize,
    /// `domain_usage_bytes` (default 4 MiB): one CDNetworks `domain-usage` answer.
    pub domain_usage_bytes: usize,
    /// `table_rows` (default 1000): rows of a `usage.summary` or `usage.billing.live` table.
    pub table_rows: usize,
    /// `page_entries` (default 10000): entries of one `disk.usage` answer, `video.usage` page or
    /// `domain-usage` answer.
    pub page_entries: usize,
    /// `video_pages` (default 100): `video.usage` pages read in one poll, all apps together.
    pub video_pages: usize,
    /// `traffic_bytes` (default 32 MiB): one CDNetworks `traffic-request` answer (one day of
    /// 5-minute slices for up to 1,000 domains).
    pub traffic_bytes: usize,
}

impl Default for AnswerLimits {
    fn default() -> Self {
        AnswerLimits {
            summary_bytes: 1 << 20,
            billing_bytes: 1 << 20,
            disk_bytes: 1 << 20,
            video_page_bytes: 4 << 20,
            domain_usage_bytes: 4 << 20,
            table_rows: 1000,
            page_entries: 10_000,
            video_pages: 100,
            traffic_bytes: 32 << 20,
        }
    }
}
