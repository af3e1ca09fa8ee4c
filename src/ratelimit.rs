//! A sliding-window rate limiter: at most `max` acquisitions in any `window`. Used to keep a
//! CDNetworks account under its 300 requests per 5 minutes.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// At most `max` requests in any `window`; callers wait for a free slot.
#[derive(Debug)]
pub struct RateLimiter {
    max: usize,
    window: Duration,
    sent: Mutex<VecDeque<Instant>>,
}

impl RateLimiter {
    /// A limiter allowing `max` (at least 1) acquisitions per `window`.
    pub fn new(max: usize, window: Duration) -> Self {
        RateLimiter { max: max.max(1), window, sent: Mutex::new(VecDeque::new()) }
    }

    /// Waits until a request may be sent, and counts it.
    pub async fn acquire(&self) {
        loop {
            let mut sent = self.sent.lock().await;
            let now = Instant::now();
            while sent.front().is_some_and(|t| now.duration_since(*t) >= self.window) {
                sent.pop_front();
            }
            if sent.len() < self.max {
                sent.push_back(now);
                return;
            }
            let wait = sent.front().map(|t| *t + self.window - now).unwrap_or_default();
            drop(sent);
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn never_more_than_max_in_a_window() {
        let limiter = std::sync::Arc::new(RateLimiter::new(300, Duration::from_secs(300)));
        let start = Instant::now();
        let mut times = Vec::new();
        for _ in 0..1000 {
            limiter.acquire().await;
            times.push(start.elapsed());
        }
        for (i, t) in times.iter().enumerate() {
            let in_window = times[i..].iter().take_while(|u| **u < *t + Duration::from_secs(300)).count();
            assert!(in_window <= 300, "{in_window} requests in the 5 minutes from {t:?}");
        }
        // 1000 requests at 300 per 5 minutes need at least three full windows.
        assert!(times[999] >= Duration::from_secs(900), "{:?}", times[999]);
        assert!(times[299] < Duration::from_secs(1), "the first 300 go at once");
    }
}
