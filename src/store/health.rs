//! How each job's polls have gone: the health the store keeps per job (for the health families
//! and the status page), its recent polls, and what the health families show for it.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::exposition;
use crate::job::{JobKey, PollError, Reason};

/// How many poll outcomes each job keeps for the status page.
pub const RECENT_POLLS: usize = 10;

/// A failed poll as kept for health and the status page: the message is shared, so a job
/// keeps each distinct message once however many recent polls ended in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The `reason` label value.
    pub reason: Reason,
    /// What went wrong (bounded and inert: see [`PollError::new`]).
    pub message: Arc<str>,
}

/// One finished poll, for the status page.
#[derive(Debug, Clone)]
pub struct PollLog {
    /// When it finished.
    pub at: SystemTime,
    /// How long it took.
    pub duration: Duration,
    /// Series exported, or the error.
    pub outcome: Result<usize, Failure>,
}

/// How a job's polls have gone, for health metrics and the status page.
#[derive(Debug, Clone, Default)]
pub struct Health {
    /// Polls finished, successful or not.
    pub polls: u64,
    /// Whether the last finished poll succeeded.
    pub up: bool,
    /// When the last successful poll finished.
    pub last_success: Option<SystemTime>,
    /// When the last poll finished.
    pub last_poll: Option<SystemTime>,
    /// When the next poll is due.
    pub next_poll: Option<SystemTime>,
    /// How long the last poll took.
    pub last_duration: Duration,
    /// Failed polls by reason.
    pub errors: BTreeMap<Reason, u64>,
    /// The last failure, if the last poll failed.
    pub last_error: Option<Failure>,
    /// The last [`RECENT_POLLS`] outcomes, oldest first.
    pub recent: VecDeque<PollLog>,
    /// Series of this job's last poll that the cardinality guard dropped.
    pub dropped: usize,
    /// Whether the job's samples were removed for being older than its `max_age`.
    pub stale: bool,
}

impl Health {
    /// `error` as kept: its message shared with the same message of a recent poll, if any.
    pub(super) fn failure(&self, error: &PollError) -> Failure {
        let known = self
            .recent
            .iter()
            .rev()
            .filter_map(|l| l.outcome.as_ref().err())
            .find(|f| *f.message == *error.message)
            .map(|f| f.message.clone());
        Failure { reason: error.reason, message: known.unwrap_or_else(|| error.message.as_str().into()) }
    }

    pub(super) fn log(&mut self, log: PollLog) {
        if self.recent.len() == RECENT_POLLS {
            self.recent.pop_front();
        }
        self.recent.push_back(log);
    }
}

/// What the health families show for a job.
pub(super) fn job_health(key: &JobKey, h: &Health, max_age: Option<Duration>) -> exposition::JobHealth {
    let mut errors = [0; Reason::ALL.len()];
    for (n, reason) in errors.iter_mut().zip(Reason::ALL) {
        *n = h.errors.get(&reason).copied().unwrap_or(0);
    }
    exposition::JobHealth {
        key: key.clone(),
        up: h.up,
        last_success: h.last_success.map(|t| {
            let secs = t.duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
            (secs * 1000.0).round() / 1000.0
        }),
        last_duration: (h.polls > 0).then_some(h.last_duration.as_secs_f64()),
        max_age: max_age.map(|d| d.as_secs_f64()),
        errors,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::families::FamilyId;
    use crate::job::Sample;
    use crate::store::Store;

    fn key(account: &str, endpoint: &'static str) -> JobKey {
        JobKey::account("scaleengine", account, endpoint)
    }

    #[test]
    fn failure_keeps_the_last_good_samples() {
        let store = Store::new("1.0", "abc");
        let a = key("a", "usage.summary");
        store.record_success(&a, &[Sample::new(FamilyId::OriginProcesses, 7.0)], Duration::ZERO);
        store.record_failure(&a, &PollError::new(Reason::Auth, "nope"), Duration::ZERO);
        let body = String::from_utf8(store.render_now().to_vec()).unwrap();
        assert!(body.contains("cdn_origin_processes{provider=\"scaleengine\",account=\"a\"} 7\n"));
        assert!(
            body.contains(
                "cdn_exporter_poll_up{provider=\"scaleengine\",account=\"a\",endpoint=\"usage.summary\"} 0\n"
            )
        );
        assert!(body.contains("reason=\"auth\"} 1\n"));
    }

    #[test]
    fn a_repeated_message_is_kept_once() {
        let store = Store::new("t", "r");
        let a = key("a", "usage.summary");
        store.register_job(&a, Duration::from_secs(60));
        let long = "x".repeat(crate::text::ERROR_BYTES);
        for _ in 0..3 * RECENT_POLLS {
            store.record_failure(&a, &PollError::new(Reason::Provider, long.as_str()), Duration::ZERO);
        }
        let h = store.health(&a).unwrap();
        assert_eq!(h.recent.len(), RECENT_POLLS);
        let first = h.last_error.as_ref().unwrap().message.clone();
        for log in &h.recent {
            let kept = &log.outcome.as_ref().unwrap_err().message;
            assert!(Arc::ptr_eq(kept, &first), "one allocation for one message");
        }
        // Shared by the store's recent polls and last error, the copy handed out, and `first`.
        assert_eq!(Arc::strong_count(&first), 2 * (RECENT_POLLS + 1) + 1);
    }
}
