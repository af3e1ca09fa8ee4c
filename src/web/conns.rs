//! The open HTTP connections, counted against a cap. At the cap, the connection that has waited
//! longest without completing a request (a new one that sent nothing yet, a slow header, an
//! idle keep-alive) is closed to make room, so a scrape still gets in while stragglers are held.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// How long a response may be in progress before, at the cap, its connection may be closed
/// too (when no connection is waiting for a request): a client that stopped reading it.
pub const BUSY_EVICTABLE: Duration = Duration::from_secs(30);

/// How often, at most, the cap is logged.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// Counts connections and picks one to close when a new one arrives at the cap.
#[derive(Debug)]
pub struct Tracker {
    cap: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    next: u64,
    slots: HashMap<u64, Slot>,
    evicted: u64,
    refused: u64,
    last_log: Option<Instant>,
}

#[derive(Debug)]
struct Slot {
    /// When it started waiting (accepted, or its last response sent), or its request arrived.
    since: Instant,
    busy: bool,
    /// Dropped to close the connection.
    _kill: oneshot::Sender<()>,
}

/// One tracked connection; leaves the count when dropped (the last clone of it).
#[derive(Debug)]
pub struct Conn {
    id: u64,
    tracker: Arc<Tracker>,
}

/// A connection let in: its handle, and a receiver that resolves when it is to be closed.
pub type Admitted = (Arc<Conn>, oneshot::Receiver<()>);

impl Tracker {
    /// A tracker for at most `cap` (at least 1) connections.
    pub fn new(cap: usize) -> Arc<Self> {
        Arc::new(Tracker { cap: cap.max(1), inner: Mutex::default() })
    }

    /// Connections open now.
    pub fn len(&self) -> usize {
        self.lock().slots.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Lets a new connection in, closing the longest-waiting one at the cap; `None` when every
    /// connection is busy with a recent request (the new one is to be closed).
    pub fn admit(self: &Arc<Self>) -> Option<Admitted> {
        self.admit_at(Instant::now())
    }

    fn admit_at(self: &Arc<Self>, now: Instant) -> Option<Admitted> {
        let mut inner = self.lock();
        let mut log = None;
        if inner.slots.len() >= self.cap {
            match victim(&inner.slots, now) {
                Some(id) => {
                    // Dropping the slot drops its sender: that connection's task closes it.
                    inner.slots.remove(&id);
                    inner.evicted += 1;
                }
                None => inner.refused += 1,
            }
            if inner.last_log.is_none_or(|t| now.duration_since(t) >= LOG_EVERY) {
                inner.last_log = Some(now);
                log = Some((std::mem::take(&mut inner.evicted), std::mem::take(&mut inner.refused)));
            }
        }
        let admitted = if inner.slots.len() < self.cap {
            let id = inner.next;
            inner.next += 1;
            let (kill, killed) = oneshot::channel();
            inner.slots.insert(id, Slot { since: now, busy: false, _kill: kill });
            Some((Arc::new(Conn { id, tracker: self.clone() }), killed))
        } else {
            None
        };
        drop(inner);
        if let Some((evicted, refused)) = log {
            tracing::warn!(
                limit = self.cap,
                evicted,
                refused,
                "HTTP connection limit reached; closing the connections that waited longest for a request \
                 (raise it with --web.max-connections and the open-files limit)"
            );
        }
        admitted
    }

    fn set(&self, id: u64, busy: bool, now: Instant) {
        if let Some(slot) = self.lock().slots.get_mut(&id) {
            slot.busy = busy;
            slot.since = now;
        }
    }
}

/// The connection to close at the cap: the one waiting longest for a request, else the one
/// longest busy past [`BUSY_EVICTABLE`].
fn victim(slots: &HashMap<u64, Slot>, now: Instant) -> Option<u64> {
    let oldest = |busy: bool| slots.iter().filter(|(_, s)| s.busy == busy).min_by_key(|(_, s)| s.since);
    match oldest(false) {
        Some((id, _)) => Some(*id),
        None => oldest(true).filter(|(_, s)| now.duration_since(s.since) >= BUSY_EVICTABLE).map(|(id, _)| *id),
    }
}

impl Conn {
    /// A request arrived: not a straggler while it is answered.
    pub fn busy(&self) {
        self.tracker.set(self.id, true, Instant::now());
    }

    /// The answer went out: waiting for the next request from now on.
    pub fn idle(&self) {
        self.tracker.set(self.id, false, Instant::now());
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.tracker.lock().slots.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gone(rx: &mut oneshot::Receiver<()>) -> bool {
        matches!(rx.try_recv(), Err(oneshot::error::TryRecvError::Closed))
    }

    #[test]
    fn the_longest_waiting_connection_makes_room() {
        let t = Tracker::new(3);
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let (a, mut ka) = t.admit_at(at(0)).unwrap();
        let (b, mut kb) = t.admit_at(at(1)).unwrap();
        let (c, mut kc) = t.admit_at(at(2)).unwrap();
        // a gets a request (busy), b finished one later than c was accepted (idle since 4).
        t.set(a.id, true, at(3));
        t.set(b.id, false, at(4));
        let (_d, mut kd) = t.admit_at(at(5)).unwrap();
        assert!(gone(&mut kc), "c waited longest without a request");
        assert!(!gone(&mut ka) && !gone(&mut kb));
        assert_eq!(t.len(), 3);
        let (_e, _ke) = t.admit_at(at(6)).unwrap();
        assert!(gone(&mut kb), "then b, idle since 4, before d accepted at 5");
        assert!(!gone(&mut ka) && !gone(&mut kd), "a is busy; d is younger");
        drop(c);
        assert_eq!(t.len(), 3, "dropping an evicted connection's handle changes nothing");
    }

    #[test]
    fn busy_connections_are_kept_unless_stuck() {
        let t = Tracker::new(2);
        let t0 = Instant::now();
        let (a, mut ka) = t.admit_at(t0).unwrap();
        let (b, _kb) = t.admit_at(t0).unwrap();
        t.set(a.id, true, t0);
        t.set(b.id, true, t0 + Duration::from_secs(1));
        assert!(t.admit_at(t0 + Duration::from_secs(2)).is_none(), "every connection is answering: refuse");
        assert!(!gone(&mut ka));
        let (_c, _kc) = t.admit_at(t0 + BUSY_EVICTABLE + Duration::from_secs(1)).unwrap();
        assert!(gone(&mut ka), "an answer in progress for too long is closed");
        drop(b);
        assert_eq!(t.len(), 1, "a closed connection leaves the count");
    }
}
