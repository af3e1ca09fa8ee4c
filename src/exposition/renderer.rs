//! The renderer task: waits for the samples to change and has them rendered at most once per
//! gap, so that a burst of finished polls costs one render; sweeps for stale samples every
//! second; hands freed memory back to the OS after a render, and now and then when idle.
//!
//! It drives a [`Source`] (the store implements it), so that this module needs nothing of the
//! store: the store depends on the exposition, not the other way round.

use std::future::Future;
use std::time::Duration;

/// How often freed memory is handed back to the OS when nothing renders.
const IDLE_TRIM: Duration = Duration::from_secs(60);

/// How often stale samples are looked for.
const SWEEP: Duration = Duration::from_secs(1);

/// What the renderer drives: samples that say when they changed, drop what went stale, and
/// publish a new body.
pub trait Source: Send + Sync {
    /// Resolves once the samples changed since the last call (a change made while nobody
    /// waited is not lost).
    fn changed(&self) -> impl Future<Output = ()> + Send + '_;
    /// Removes samples older than their `max_age`; whether anything was removed.
    fn expire_stale(&self) -> bool;
    /// Renders the body and publishes it.
    fn publish(&self);
}

/// Waits for changes and renders at most once per `min_gap`. Returns when `shutdown` resolves.
pub async fn run(source: &impl Source, min_gap: Duration, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    let mut sweep = tokio::time::interval(SWEEP);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut trimmed = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = source.changed() => {}
            _ = sweep.tick() => {
                if !source.expire_stale() {
                    // Between renders (an hour apart with hourly polls), still hand back
                    // what closed connections freed.
                    if trimmed.elapsed() >= IDLE_TRIM {
                        crate::memory::release_free();
                        trimmed = tokio::time::Instant::now();
                    }
                    continue;
                }
            }
        }
        source.publish();
        crate::memory::release_free();
        trimmed = tokio::time::Instant::now();
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(min_gap) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use tokio::sync::Notify;
    use tokio::time::{Instant, sleep_until};

    use super::*;

    #[derive(Default)]
    struct Fake {
        dirty: Notify,
        stale: AtomicBool,
        renders: AtomicUsize,
    }

    impl Source for Fake {
        fn changed(&self) -> impl Future<Output = ()> + Send + '_ {
            self.dirty.notified()
        }

        fn expire_stale(&self) -> bool {
            self.stale.swap(false, Ordering::Relaxed)
        }

        fn publish(&self) {
            self.renders.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_changes_costs_one_render_per_gap_and_stale_samples_cause_one() {
        let fake = Arc::new(Fake::default());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let start = Instant::now();
        let task = tokio::spawn({
            let fake = fake.clone();
            async move { run(&*fake, Duration::from_millis(100), async move { drop(stopped.await) }).await }
        });
        let renders = || fake.renders.load(Ordering::Relaxed);
        for _ in 0..10 {
            fake.dirty.notify_one();
        }
        sleep_until(start + Duration::from_millis(50)).await;
        assert_eq!(renders(), 1, "ten changes at once, one render");
        // Changes during the gap wait for its end, then cost one render together.
        for _ in 0..10 {
            fake.dirty.notify_one();
        }
        sleep_until(start + Duration::from_millis(90)).await;
        assert_eq!(renders(), 1, "no render within the gap");
        sleep_until(start + Duration::from_millis(150)).await;
        assert_eq!(renders(), 2);
        sleep_until(start + Duration::from_millis(900)).await;
        assert_eq!(renders(), 2, "no change, no render");
        // The next sweep (a second after the first, which a render may have delayed by its gap)
        // finds stale samples: their removal is rendered.
        fake.stale.store(true, Ordering::Relaxed);
        sleep_until(start + SWEEP + Duration::from_millis(500)).await;
        assert_eq!(renders(), 3);
        let _ = stop.send(());
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the renderer returns at shutdown")
            .expect("the renderer does not panic");
    }
}
