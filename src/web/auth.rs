//! Basic auth against bcrypt hashes, without letting a storm of attempts take the process
//! down: bcrypt runs on a small fixed pool of threads, fed round-robin from one short queue per
//! user name (attempts past it get 429 at once), unknown names pay a dummy verify of the same
//! cost, recently failed credentials are refused without bcrypt, and successful ones are
//! remembered so that a scrape every few seconds does not pay bcrypt each time.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

/// Threads that run bcrypt at most (fewer on a single core).
pub const POOL_THREADS: usize = 2;
/// Attempts one user name may have waiting for bcrypt; more are answered 429 at once.
pub const QUEUE_PER_USER: usize = 4;
/// User names (known or not) that may have attempts waiting at once; a new one past it gets 429.
pub const QUEUED_USERS: usize = 64;
/// How long a failed user and password pair is refused without running bcrypt again.
pub const FAILED_TTL: Duration = Duration::from_secs(30);
/// Failed pairs remembered at most.
pub const FAILED_CACHE: usize = 4096;
/// Remembered successful logins at most.
pub const VERIFIED_CACHE: usize = 1024;
/// Seconds a client is asked to wait after a 429.
const RETRY_AFTER_SECS: &str = "1";

/// The salt and digest of a bcrypt hash of nothing anybody sends: the dummy an unknown user is
/// verified against, with the cost of the configured hashes put in front.
const DUMMY_TAIL: &str = "N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy";

/// Checks credentials; cheap to clone.
#[derive(Clone)]
pub struct BasicAuth {
    inner: Arc<Inner>,
}

struct Inner {
    users: BTreeMap<String, String>,
    dummy: String,
    pool: Pool,
    verified: Mutex<HashSet<[u8; 32]>>,
    failed: Mutex<HashMap<[u8; 32], Instant>>,
}

/// What an attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Ok,
    Denied,
    Busy,
}

impl BasicAuth {
    /// Checks against `users` (name to bcrypt hash, all already validated) and starts the pool.
    pub fn new(users: BTreeMap<String, String>) -> Self {
        let cost = users.values().filter_map(|h| h.parse::<bcrypt::HashParts>().ok()).map(|p| p.get_cost()).max();
        let dummy = format!("$2b${:02}${DUMMY_TAIL}", cost.unwrap_or(bcrypt::DEFAULT_COST));
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, POOL_THREADS);
        BasicAuth {
            inner: Arc::new(Inner {
                users,
                dummy,
                pool: Pool::start(threads),
                verified: Mutex::default(),
                failed: Mutex::default(),
            }),
        }
    }

    async fn check(&self, user: &str, password: &str) -> Verdict {
        let inner = &self.inner;
        let (known, hash) = match inner.users.get(user) {
            Some(h) => (true, h.as_str()),
            None => (false, inner.dummy.as_str()),
        };
        let print = fingerprint(user, password, hash);
        if known && lock(&inner.verified).contains(&print) {
            return Verdict::Ok;
        }
        let now = Instant::now();
        if lock(&inner.failed).get(&print).is_some_and(|t| now.duration_since(*t) < FAILED_TTL) {
            return Verdict::Denied;
        }
        let Some(answer) = inner.pool.submit(user, password, hash) else { return Verdict::Busy };
        // No answer (the pool is shutting down): nothing learnt, nothing remembered.
        let Ok(verified) = answer.await else { return Verdict::Busy };
        // An unknown user runs the same bcrypt as a known one and is then refused whatever it says.
        let ok = verified && known;
        if ok {
            let mut v = lock(&inner.verified);
            if v.len() >= VERIFIED_CACHE {
                v.clear();
            }
            v.insert(print);
            Verdict::Ok
        } else {
            let mut f = lock(&inner.failed);
            if f.len() >= FAILED_CACHE {
                f.retain(|_, t| now.duration_since(*t) < FAILED_TTL);
                if f.len() >= FAILED_CACHE {
                    f.clear();
                }
            }
            f.insert(print, now);
            Verdict::Denied
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A SHA-256 of user, password and hash: what the caches keep instead of the password.
fn fingerprint(user: &str, password: &str, hash: &str) -> [u8; 32] {
    Sha256::new()
        .chain_update(user.as_bytes())
        .chain_update([0])
        .chain_update(password.as_bytes())
        .chain_update([0])
        .chain_update(hash.as_bytes())
        .finalize()
        .into()
}

/// The middleware: 401 without valid credentials, 429 when that user's queue is full.
pub async fn require_auth(State(auth): State<BasicAuth>, request: Request, next: Next) -> Response {
    let unauthorized = || {
        (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Basic realm=\"cdn-usage-exporter\"")], "Unauthorized\n")
            .into_response()
    };
    let Some(credentials) = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v.trim()).ok())
        .and_then(|v| String::from_utf8(v).ok())
    else {
        return unauthorized();
    };
    let Some((user, password)) = credentials.split_once(':') else { return unauthorized() };
    match auth.check(user, password).await {
        Verdict::Ok => next.run(request).await,
        Verdict::Denied => unauthorized(),
        Verdict::Busy => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, RETRY_AFTER_SECS)],
            "Too many login attempts for this user at once; retry later\n",
        )
            .into_response(),
    }
}

/// One bcrypt verify to run, and where its answer goes.
struct Job {
    password: String,
    hash: String,
    answer: oneshot::Sender<bool>,
}

/// One short queue per user name, served round-robin.
#[derive(Default)]
struct Queues {
    per_user: HashMap<String, VecDeque<Job>>,
    /// User names with waiting jobs, in the order they are served next.
    turn: VecDeque<String>,
    closed: bool,
}

impl Queues {
    /// Queues `job` for `user`; gives it back when that user's queue, or the set of users, is full.
    fn push(&mut self, user: &str, job: Job) -> Result<(), Job> {
        if let Some(queue) = self.per_user.get_mut(user) {
            if queue.len() >= QUEUE_PER_USER {
                return Err(job);
            }
            queue.push_back(job);
        } else {
            if self.per_user.len() >= QUEUED_USERS {
                return Err(job);
            }
            self.per_user.insert(user.to_owned(), VecDeque::from([job]));
            self.turn.push_back(user.to_owned());
        }
        Ok(())
    }

    /// The next job: the first of the user whose turn it is; that user goes to the back.
    fn pop(&mut self) -> Option<Job> {
        let user = self.turn.pop_front()?;
        let queue = self.per_user.get_mut(&user)?;
        let job = queue.pop_front();
        if queue.is_empty() {
            self.per_user.remove(&user);
        } else {
            self.turn.push_back(user);
        }
        job
    }
}

/// Threads that run bcrypt, stopped when the pool is dropped.
struct Pool {
    shared: Arc<(Mutex<Queues>, Condvar)>,
}

impl Pool {
    fn start(threads: usize) -> Self {
        let shared = Arc::new((Mutex::new(Queues::default()), Condvar::new()));
        for n in 0..threads {
            let shared = shared.clone();
            let spawned = std::thread::Builder::new().name(format!("bcrypt-{n}")).spawn(move || worker(&shared));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "Cannot start a basic auth thread");
            }
        }
        Pool { shared }
    }

    /// Queues a verify; `None` when that user already has [`QUEUE_PER_USER`] waiting.
    fn submit(&self, user: &str, password: &str, hash: &str) -> Option<oneshot::Receiver<bool>> {
        let (answer, rx) = oneshot::channel();
        let job = Job { password: password.to_owned(), hash: hash.to_owned(), answer };
        lock(&self.shared.0).push(user, job).ok()?;
        self.shared.1.notify_one();
        Some(rx)
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        lock(&self.shared.0).closed = true;
        self.shared.1.notify_all();
    }
}

fn worker(shared: &(Mutex<Queues>, Condvar)) {
    loop {
        let job = {
            let mut queues = lock(&shared.0);
            loop {
                if queues.closed {
                    return;
                }
                if let Some(job) = queues.pop() {
                    break job;
                }
                queues = shared.1.wait(queues).unwrap_or_else(|e| e.into_inner());
            }
        };
        // A client that gave up is not worth a verify.
        if job.answer.is_closed() {
            continue;
        }
        let ok = bcrypt::verify(&job.password, &job.hash).unwrap_or(false);
        let _ = job.answer.send(ok);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(tag: &str) -> (Job, oneshot::Receiver<bool>) {
        let (answer, rx) = oneshot::channel();
        (Job { password: tag.into(), hash: String::new(), answer }, rx)
    }

    #[test]
    fn users_take_turns_and_each_queue_is_short() {
        let mut q = Queues::default();
        for n in 0..QUEUE_PER_USER {
            assert!(q.push("storm", job(&format!("s{n}")).0).is_ok());
        }
        assert!(q.push("storm", job("one too many").0).is_err(), "a full queue refuses at once");
        q.push("bob", job("b0").0).ok().unwrap();
        q.push("carol", job("c0").0).ok().unwrap();
        let order: Vec<String> = std::iter::from_fn(|| q.pop()).map(|j| j.password).collect();
        assert_eq!(order, ["s0", "b0", "c0", "s1", "s2", "s3"], "bob and carol do not wait behind the storm");
        assert!(q.per_user.is_empty() && q.turn.is_empty());
    }

    #[test]
    fn the_number_of_waiting_users_is_bounded() {
        let mut q = Queues::default();
        for n in 0..QUEUED_USERS {
            assert!(q.push(&format!("u{n}"), job("x").0).is_ok());
        }
        assert!(q.push("one more", job("x").0).is_err());
        assert!(q.push("u0", job("x").0).is_ok(), "a user already waiting may still queue");
    }

    #[tokio::test]
    async fn known_unknown_cached_and_remembered() {
        let hash = bcrypt::hash("right", 4).unwrap();
        let auth = BasicAuth::new(BTreeMap::from([("alice".to_owned(), hash)]));
        assert!(auth.inner.dummy.starts_with("$2b$04$"), "the dummy costs what the configured hashes cost");
        assert!(auth.inner.dummy.parse::<bcrypt::HashParts>().is_ok(), "{}", auth.inner.dummy);
        assert_eq!(auth.check("alice", "right").await, Verdict::Ok);
        assert_eq!(auth.check("alice", "wrong").await, Verdict::Denied);
        assert_eq!(auth.check("mallory", "right").await, Verdict::Denied, "unknown users are refused");
        assert_eq!(lock(&auth.inner.failed).len(), 2, "both failures are remembered");
        assert_eq!(lock(&auth.inner.verified).len(), 1);
        // Remembered: answered without the pool, even when it is closed.
        lock(&auth.inner.pool.shared.0).closed = true;
        assert_eq!(auth.check("alice", "right").await, Verdict::Ok);
        assert_eq!(auth.check("alice", "wrong").await, Verdict::Denied);
    }
}
