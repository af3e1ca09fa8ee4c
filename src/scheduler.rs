//! One task per job: poll, record the outcome, sleep its interval with jitter, again. A job's
//! polls never overlap (one task runs them in turn) and never block a scrape (they only write
//! to the store).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::job::{JobKey, JobSpec, PollContext, PollError, Reason};
use crate::store::Store;

/// Interval jitter: each wait is the interval times a factor in `1 ± JITTER`.
pub const JITTER: f64 = 0.1;

/// The longest a job waits before its first poll (spreads the start of many jobs).
pub const MAX_FIRST_DELAY: Duration = Duration::from_secs(1);

/// Starts one job in `set`; it stops when `stop` turns true or when aborted.
pub fn spawn(set: &mut JoinSet<()>, job: JobSpec, store: &Arc<Store>, stop: &watch::Receiver<bool>) -> AbortHandle {
    store.register_job(&job.key, job.max_age);
    set.spawn(run_job(job, store.clone(), stop.clone()))
}

fn jittered(interval: Duration) -> Duration {
    interval.mul_f64(1.0 + JITTER * (2.0 * fastrand::f64() - 1.0))
}

/// Runs one poll with its deadline and records the outcome; returns it for callers that care.
pub async fn poll_once(job: &JobSpec, store: &Store) -> Result<usize, PollError> {
    let span = tracing::info_span!(
        "poll",
        provider = job.key.provider,
        account = %job.key.account,
        endpoint = job.key.endpoint,
        domain = tracing::field::Empty
    );
    if let Some(domain) = &job.key.domain {
        span.record("domain", &**domain);
    }
    let start = Instant::now();
    let deadline = start + job.timeout;
    let ctx = PollContext::until(deadline);
    let poll = job.poller.poll(&ctx).instrument(span.clone());
    let outcome = match tokio::time::timeout_at(deadline, poll).await {
        Ok(result) => result,
        Err(_) => Err(PollError::new(Reason::Timeout, format!("poll did not finish within {:?}", job.timeout))),
    };
    let elapsed = start.elapsed();
    let _enter = span.enter();
    match outcome {
        Ok(samples) => {
            let account = format!("{}/{}", job.key.provider, job.key.account);
            store.set_bill(&job.key, &samples, crate::timeutil::now_unix());
            let converted = crate::currency::convert(samples, &store.rates(), &account);
            let currency = converted.account_samples();
            if !currency.is_empty() {
                store.set_account_static(&currency_key(&job.key), &currency);
            }
            let series = converted.samples.len();
            if let Some(error) = converted.error {
                store.record_partial(&job.key, converted.samples, &error, elapsed);
                tracing::warn!(reason = error.reason.as_str(), error = %error.message, "Poll answered, but its amounts are left out");
                return Err(error);
            }
            store.record_success(&job.key, converted.samples, elapsed);
            tracing::debug!(series, duration_ms = elapsed.as_millis() as u64, "Poll succeeded");
            Ok(series)
        }
        Err(error) => {
            // Provider text may be in it: never a raw control character in a log line or page.
            let error = error.made_inert();
            store.record_failure(&job.key, &error, elapsed);
            tracing::warn!(reason = error.reason.as_str(), error = %error.message, "Poll failed; keeping the last good values");
            Err(error)
        }
    }
}

/// Where an account's currency and exchange rate are served: one entry per account, whichever
/// of its jobs converted amounts last.
pub fn currency_key(job: &JobKey) -> JobKey {
    JobKey::account(job.provider, job.account.clone(), "currency")
}

async fn run_job(job: JobSpec, store: Arc<Store>, mut stop: watch::Receiver<bool>) {
    let first = MAX_FIRST_DELAY.min(job.interval / 10).mul_f64(fastrand::f64());
    let mut next = Instant::now() + first;
    store.set_next_poll(&job.key, std::time::SystemTime::now() + first);
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
        let wait = jittered(job.interval);
        next = started + wait;
        store.set_next_poll(&job.key, std::time::SystemTime::now() + wait.saturating_sub(started.elapsed()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::families::FamilyId;
    use crate::job::{BoxFuture, JobKey, PollContext, Poller, Sample};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A poll that takes `delay`, counting how many run at once.
    struct Slow {
        delay: Duration,
        running: AtomicUsize,
        max_running: AtomicUsize,
        polls: AtomicUsize,
    }

    impl Poller for Slow {
        fn poll<'a>(&'a self, _ctx: &'a PollContext) -> BoxFuture<'a, Result<Vec<Sample>, PollError>> {
            Box::pin(async move {
                let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
                self.max_running.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(self.delay).await;
                self.running.fetch_sub(1, Ordering::SeqCst);
                let n = self.polls.fetch_add(1, Ordering::SeqCst) + 1;
                Ok(vec![Sample::new(FamilyId::OriginProcesses, n as f64)])
            })
        }
    }

    fn job(poller: Arc<Slow>, interval: Duration, timeout: Duration) -> JobSpec {
        JobSpec { key: JobKey::account("test", "a", "e"), interval, timeout, max_age: interval * 3, poller }
    }

    fn spawn_all(jobs: Vec<JobSpec>, store: &Arc<Store>, stop: &watch::Receiver<bool>) -> JoinSet<()> {
        let mut set = JoinSet::new();
        for job in jobs {
            spawn(&mut set, job, store, stop);
        }
        set
    }

    fn slow(delay: Duration) -> Arc<Slow> {
        Arc::new(Slow { delay, running: 0.into(), max_running: 0.into(), polls: 0.into() })
    }

    #[tokio::test(start_paused = true)]
    async fn polls_of_one_job_never_overlap_even_when_slower_than_the_interval() {
        let poller = slow(Duration::from_secs(3));
        let store = Store::new("t", "r");
        let (stop_tx, stop) = watch::channel(false);
        let mut set =
            spawn_all(vec![job(poller.clone(), Duration::from_secs(1), Duration::from_secs(10))], &store, &stop);
        tokio::time::sleep(Duration::from_secs(30)).await;
        let _ = stop_tx.send(true);
        while set.join_next().await.is_some() {}
        assert_eq!(poller.max_running.load(Ordering::SeqCst), 1);
        let polls = poller.polls.load(Ordering::SeqCst);
        assert!((9..=10).contains(&polls), "back to back, one at a time: {polls}");
    }

    #[tokio::test(start_paused = true)]
    async fn polls_follow_the_interval() {
        let poller = slow(Duration::ZERO);
        let store = Store::new("t", "r");
        let (stop_tx, stop) = watch::channel(false);
        let mut set =
            spawn_all(vec![job(poller.clone(), Duration::from_secs(60), Duration::from_secs(10))], &store, &stop);
        tokio::time::sleep(Duration::from_secs(60 * 100)).await;
        let _ = stop_tx.send(true);
        while set.join_next().await.is_some() {}
        // 100 intervals of 60 s ± 10 %: between 91 and 112 polls.
        let polls = poller.polls.load(Ordering::SeqCst);
        assert!((91..=112).contains(&polls), "{polls}");
    }

    #[test]
    fn jitter_spreads_waits_within_ten_percent() {
        let waits: Vec<f64> = (0..2000).map(|_| jittered(Duration::from_secs(60)).as_secs_f64()).collect();
        let (min, max) = waits.iter().fold((f64::MAX, f64::MIN), |(a, b), w| (a.min(*w), b.max(*w)));
        assert!(min >= 54.0 && max <= 66.0, "{min}..{max}");
        assert!(min < 55.0 && max > 65.0, "waits are spread over the whole band: {min}..{max}");
    }

    /// A poll that fails with a message built around [`PollError::new`].
    struct Forging;

    impl Poller for Forging {
        fn poll<'a>(&'a self, _ctx: &'a PollContext) -> BoxFuture<'a, Result<Vec<Sample>, PollError>> {
            Box::pin(async move {
                let message = format!("a\nFORGED\u{1b}[2J{}", "x".repeat(1_000_000));
                Err(PollError { reason: Reason::Provider, message, retry_after: None })
            })
        }
    }

    #[tokio::test]
    async fn failure_messages_are_inert_and_bounded_whatever_built_them() {
        let store = Store::new("t", "r");
        let forging = JobSpec {
            key: JobKey::account("test", "a", "e"),
            interval: Duration::from_secs(60),
            timeout: Duration::from_secs(5),
            max_age: Duration::from_secs(180),
            poller: Arc::new(Forging),
        };
        let error = poll_once(&forging, &store).await.unwrap_err();
        let kept = store.health(&forging.key).unwrap().last_error.unwrap().message;
        for message in [&*error.message, &*kept] {
            assert!(message.starts_with("a\\nFORGED\\u{1b}[2J"), "{}", &message[..40]);
            assert!(message.len() < crate::text::ERROR_BYTES + 64, "{}", message.len());
        }
        // Made inert once, it stays the same.
        assert_eq!(error.clone().made_inert(), error);
    }

    #[tokio::test(start_paused = true)]
    async fn a_poll_past_its_deadline_is_a_timeout_and_keeps_the_last_samples() {
        let store = Store::new("t", "r");
        let quick = job(slow(Duration::ZERO), Duration::from_secs(60), Duration::from_secs(5));
        poll_once(&quick, &store).await.unwrap();
        let stuck = JobSpec { poller: slow(Duration::from_secs(3600)), ..quick.clone() };
        let err = poll_once(&stuck, &store).await.unwrap_err();
        assert_eq!(err.reason, Reason::Timeout);
        let body = String::from_utf8(store.render_now().to_vec()).unwrap();
        assert!(body.contains("cdn_origin_processes{provider=\"test\",account=\"a\"} 1\n"), "{body}");
        assert!(body.contains("reason=\"timeout\"} 1\n"), "{body}");
    }
}
