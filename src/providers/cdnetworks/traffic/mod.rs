//! CDNetworks traffic, requests and billable bandwidth per domain from
//! `POST /api/report/traffic-request`: one job per account asks for all of its domains at once
//! (`groupBy: ["domain"]`, at most [`MAX_DOMAINS_PER_REQUEST`] per request), one local day per
//! request. The month so far is kept in memory as compact 5-minute slices; a day fetched after
//! it had settled is final, the rest (today and the settle window) is fetched again every poll.
//! From the slices come month-to-date bytes and requests, the peak and the 95th percentile.
//!
//! Split by job: `answer` reads one day's answer into slices, `month` keeps the month of
//! slices and plans what to fetch, `figures` computes bytes, peaks and percentiles from it,
//! `window` turns local days into request windows, `samples` writes the figures as samples
//! and `job` is the poller tying them together. The constants below are shared by all of them.

mod answer;
mod figures;
mod job;
mod month;
mod samples;
#[cfg(test)]
mod tests;
mod window;

// Re-exported so that `traffic::X` stays the one path used across the crate and by tests.
pub use answer::{Answer, DayAnswer, DomainDay, Slice, day_slices, parse_answer};
pub use figures::{Figures, p95};
pub use job::Traffic;
pub use month::Month;
pub use samples::samples;
pub use window::{local_midnight, local_month};

/// The API path.
pub const PATH: &str = "/api/report/traffic-request";
/// The `endpoint` label value.
pub const ENDPOINT: &str = "traffic-request";
/// A slice's length, in seconds.
pub const SLICE_SECS: i64 = 300;
/// Slices in a day.
pub const SLICES_PER_DAY: usize = 288;
/// The most slices one domain may have in a one-day answer: the window `[00:00, 24:00]` holds
/// the slice that ends at its start too.
pub const MAX_SLICES_PER_ANSWER: usize = SLICES_PER_DAY + 1;
/// The documented limit of domains per request.
pub const MAX_DOMAINS_PER_REQUEST: usize = 1000;
/// Bytes in the API's "MB". The docs do not say; traffic and bandwidth figures of CDN bills are
/// decimal (1 Mbps = 10^6 bit/s), so MB is taken as 10^6 bytes. The one place this is set.
pub const BYTES_PER_MB: f64 = 1e6;
/// Bytes per second in the API's "Mbps" (10^6 bit/s; Prometheus' base unit is bytes).
pub const BYTES_PER_SEC_PER_MBPS: f64 = 1e6 / 8.0;
/// Bytes per hundredth of an MB: traffic is kept in hundredths (the API's two decimals), exactly.
const BYTES_PER_CENTI_MB: f64 = BYTES_PER_MB / 100.0;
/// Bytes per second per kept bandwidth unit (kbit/s: the API's Mbps with up to three decimals).
const BYTES_PER_SEC_PER_KBPS: f64 = BYTES_PER_SEC_PER_MBPS / 1000.0;
/// A slot with no slice.
const NO_SLICE: u32 = u32::MAX;
