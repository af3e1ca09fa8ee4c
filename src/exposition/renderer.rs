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
