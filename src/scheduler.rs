//! One task per job: poll, record the outcome, sleep its interval with jitter, again. A job's
//! polls never overlap (one task runs them in turn) and never block a scrape (they only write
//! to the store).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::job::{JobSpec, PollError, Reason};
use crate::store::Store;

/// Interval jitter: each wait is the interval times a factor in `1 ± JITTER`.
pub const JITTER: f64 = 0.1;

/// The longest a job waits before its first poll (spreads the start of many jobs).
pub const MAX_FIRST_DELAY: Duration = Duration::from_secs(1);

/// Starts every job; they stop when `stop` turns true.
pub fn spawn_all(
    jobs: Vec<JobSpec>,
    store: &Arc<Store>,
    stop: &watch::Receiver<bool>,
) -> JoinSet<()> {
    let mut set = JoinSet::new();
    for job in jobs {
        store.register_job(&job.key);
        set.spawn(run_job(job, store.clone(), stop.clone()));
    }
    set
}

fn jittered(interval: Duration) -> Duration {
    interval.mul_f64(1.0 + JITTER * (2.0 * fastrand::f64() - 1.0))
}

/// Runs one poll with its deadline and records the outcome; returns it for callers that care.
pub async fn poll_once(job: &JobSpec, store: &Store) -> Result<usize, PollError> {
    let span = tracing::info_span!("poll", provider = job.key.provider, account = %job.key.account, endpoint = job.key.endpoint);
    let start = Instant::now();
    let outcome =
        match tokio::time::timeout(job.timeout, job.poller.poll().instrument(span.clone())).await {
            Ok(result) => result,
            Err(_) => Err(PollError::new(
                Reason::Timeout,
                format!("poll did not finish within {:?}", job.timeout),
            )),
        };
    let elapsed = start.elapsed();
    let _enter = span.enter();
    match outcome {
        Ok(samples) => {
            store.record_success(&job.key, &samples, elapsed);
            tracing::debug!(
                series = samples.len(),
                duration_ms = elapsed.as_millis() as u64,
                "Poll succeeded"
            );
            Ok(samples.len())
        }
        Err(error) => {
            store.record_failure(&job.key, &error, elapsed);
            tracing::warn!(reason = error.reason.as_str(), error = %error.message, "Poll failed; keeping the last good values");
            Err(error)
        }
    }
}

async fn run_job(job: JobSpec, store: Arc<Store>, mut stop: watch::Receiver<bool>) {
    let first = MAX_FIRST_DELAY
        .min(job.interval / 10)
        .mul_f64(fastrand::f64());
    let mut next = Instant::now() + first;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let started = Instant::now();
        tokio::select! {
            _ = poll_once(&job, &store) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        next = started + jittered(job.interval);
    }
}
