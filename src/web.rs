//! The HTTP listener's security, configured the way Prometheus exporters are (exporter-toolkit's
//! web configuration file): optional TLS (`tls_server_config.cert_file` / `key_file`) and
//! optional basic auth (`basic_auth_users` with bcrypt hashes), for every endpoint; and the
//! accept loop that holds slow and hostile clients to bounds (header timeout, head size,
//! connection cap under the open-files limit; docs/security.md lists them all).

mod auth;
mod conns;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum_server::tls_rustls::RustlsConfig;
use serde::Deserialize;
use tokio::net::TcpListener;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebConfig {
    tls_server_config: Option<RawTls>,
    basic_auth_users: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
struct RawTls {
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    #[serde(flatten)]
    other: BTreeMap<String, serde_yaml_ng::Value>,
}

/// A validated web configuration.
#[derive(Clone)]
pub struct WebConfig {
    tls: Option<RustlsConfig>,
    users: BTreeMap<String, String>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The hashes are not secrets, but they are nobody's business either.
        f.debug_struct("WebConfig").field("tls", &self.tls.is_some()).field("users", &self.users.len()).finish()
    }
}

/// Why a web configuration file was refused.
#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    /// The file could not be read.
    #[error("cannot read --web.config.file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not the YAML it should be.
    #[error(
        "--web.config.file {path}: {source}. Supported keys: tls_server_config (cert_file, key_file), basic_auth_users"
    )]
    Parse {
        /// The file.
        path: String,
        /// The YAML error.
        source: serde_yaml_ng::Error,
    },
    /// The file parsed, and its settings have problems.
    #[error("--web.config.file {path} has {} problem(s):\n  - {}", problems.len(), problems.join("\n  - "))]
    Invalid {
        /// The file.
        path: String,
        /// Each problem, and how to fix it.
        problems: Vec<String>,
    },
}

impl WebConfig {
    /// Reads and checks a web configuration file; relative paths in it are relative to the file.
    pub async fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
        let name = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|source| WebConfigError::Read { path: name.clone(), source })?;
        let raw: RawWebConfig =
            serde_yaml_ng::from_str(&text).map_err(|source| WebConfigError::Parse { path: name.clone(), source })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut problems = Vec::new();
        let tls = match raw.tls_server_config {
            None => None,
            Some(t) => {
                for key in t.other.keys() {
                    problems.push(format!("tls_server_config.{key} is not supported; only cert_file and key_file are"));
                }
                match (t.cert_file, t.key_file) {
                    (Some(cert), Some(key)) => match RustlsConfig::from_pem_file(dir.join(&cert), dir.join(&key)).await
                    {
                        Ok(c) => Some(c),
                        Err(e) => {
                            problems.push(format!(
                                "tls_server_config: cannot load {} and {}: {e}",
                                dir.join(cert).display(),
                                dir.join(key).display()
                            ));
                            None
                        }
                    },
                    _ => {
                        problems.push("tls_server_config needs both cert_file and key_file".into());
                        None
                    }
                }
            }
        };
        let users = raw.basic_auth_users.unwrap_or_default();
        for (user, hash) in &users {
            if user.contains(':') || user.is_empty() {
                problems.push(format!("basic_auth_users: {user:?} is not a valid user name (no colon, not empty)"));
            }
            if hash.parse::<bcrypt::HashParts>().is_err() {
                problems.push(format!(
                    "basic_auth_users.{user}: not a bcrypt hash. Make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`"
                ));
            }
        }
        if problems.is_empty() {
            Ok(WebConfig { tls, users })
        } else {
            Err(WebConfigError::Invalid { path: name, problems })
        }
    }
}

/// How long a client has to send a whole request head, counted from the connection's accept or
/// from the end of its previous answer (so it also bounds an idle keep-alive connection).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client has to complete the TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest request head (request line and headers) read; larger ones get 431.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Each connection's read and write buffer at most. The head is bounded by
/// [`MAX_HEADER_BYTES`] on its own; this bounds how much of an answer hyper queues before
/// flushing. The queue holds references to the cached body, not copies, and at 32 KiB a gzip
/// body of a few tens of KiB plus the process metrics took two writes instead of one.
const MAX_BUF_BYTES: usize = 256 * 1024;
/// How long a write may make no progress (a client that stopped reading) before the connection
/// is closed.
pub const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(20);
/// Open connections at most, before the open-files limit lowers it (`--web.max-connections`).
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
/// File descriptors kept free for everything else (on top of the upstream requests in flight):
/// stdio, the runtime, the listener, configuration and secret files, upstream DNS.
pub const FD_RESERVE: usize = 64;
/// How long shutdown waits for answers in progress (and the exporter for in-flight scrapes).
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);
/// The pause after a failed accept (EMFILE and the like), so that the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How many connections the server takes at most.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The configured cap (`--web.max-connections`).
    pub max_connections: usize,
    /// Descriptors the rest of the process may need on top of [`FD_RESERVE`] (upstream sockets).
    pub other_fds: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_connections: DEFAULT_MAX_CONNECTIONS, other_fds: 0 }
    }
}

pub use crate::memory::open_files_limit;

/// The connection cap: the configured one, lowered to leave `reserve` descriptors of the
/// open-files limit free (but never below half of that limit, nor below 1).
pub fn connection_cap(configured: usize, nofile: Option<u64>, reserve: usize) -> usize {
    let by_fds = nofile.map_or(usize::MAX, |n| {
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        n.saturating_sub(reserve).max(n / 2)
    });
    configured.min(by_fds).max(1)
}

/// Serves `app` on `listener` until `shutdown` resolves, with TLS and basic auth as `web` says,
/// within the bounds above; then lets answers in progress finish for up to
/// [`SHUTDOWN_DEADLINE`].
pub async fn serve(
    listener: TcpListener,
    app: Router,
    web: Option<WebConfig>,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let web = web.unwrap_or(WebConfig { tls: None, users: BTreeMap::new() });
    let app = if web.users.is_empty() {
        app
    } else {
        app.layer(axum::middleware::from_fn_with_state(auth::BasicAuth::new(web.users), auth::require_auth))
    };
    let tls = web.tls.map(|config| {
        // HTTP/1.1 only: what Prometheus speaks, and what the bounds here are written for.
        let mut config = (*config.get_inner()).clone();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    });
    let nofile = open_files_limit();
    let cap = connection_cap(limits.max_connections, nofile, FD_RESERVE + limits.other_fds);
    tracing::info!(max_connections = cap, open_files_limit = nofile, "HTTP connection limit");
    let tracker = conns::Tracker::new(cap);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_header_size(MAX_HEADER_BYTES)
        .max_buf_size(MAX_BUF_BYTES);
    let http = Arc::new(http);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    let mut last_accept_error: Option<std::time::Instant> = None;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => {
                    let Some((conn, killed)) = tracker.admit() else { continue };
                    // TCP_NODELAY: the body goes out as two writes (the cached exposition, then
                    // the process metrics); with Nagle's algorithm the second waits for a delayed
                    // ACK, about 40 ms.
                    let _ = tcp.set_nodelay(true);
                    let task = Connection {
                        app: app.clone(),
                        http: http.clone(),
                        conn,
                        killed,
                        stopped: stopped.clone(),
                    };
                    tasks.spawn(task.run(tcp, tls.clone()));
                }
                Err(e) => {
                    if last_accept_error.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                        last_accept_error = Some(std::time::Instant::now());
                        tracing::warn!(error = %e, open = tracker.len(), "Cannot accept HTTP connections; pausing briefly");
                    }
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
        }
    }
    drop(listener);
    let _ = stop.send(true);
    let drained = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_DEADLINE, drained).await.is_err() {
        tracing::warn!(open = tasks.len(), "HTTP answers still in progress at the shutdown deadline; closing them");
    }
    Ok(())
}

/// One accepted connection and what it needs.
struct Connection {
    app: Router,
    http: Arc<hyper::server::conn::http1::Builder>,
    conn: Arc<conns::Conn>,
    killed: tokio::sync::oneshot::Receiver<()>,
    stopped: tokio::sync::watch::Receiver<bool>,
}

impl Connection {
    async fn run(mut self, tcp: tokio::net::TcpStream, tls: Option<tokio_rustls::TlsAcceptor>) {
        let io = StallGuard::new(tcp, WRITE_STALL_TIMEOUT);
        match tls {
            None => self.http(io).await,
            Some(tls) => {
                let handshake = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.accept(io));
                let stream = tokio::select! {
                    r = handshake => match r {
                        Ok(Ok(stream)) => stream,
                        _ => return,
                    },
                    _ = &mut self.killed => return,
                    _ = self.stopped.wait_for(|s| *s) => return,
                };
                self.http(stream).await
            }
        }
    }

    async fn http<I>(mut self, io: I)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let conn = self.conn.clone();
        let router = hyper_util::service::TowerToHyperService::new(self.app.clone());
        let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            conn.busy();
            let answer = hyper::service::Service::call(&router, request);
            let conn = conn.clone();
            async move {
                let response = answer.await?;
                Ok::<_, std::convert::Infallible>(response.map(|body| Body::new(Tracked { body, conn })))
            }
        });
        let connection = self.http.serve_connection(hyper_util::rt::TokioIo::new(io), service);
        tokio::pin!(connection);
        let mut stopping = false;
        loop {
            tokio::select! {
                _ = connection.as_mut() => return,
                _ = &mut self.killed => return,
                _ = self.stopped.wait_for(|s| *s), if !stopping => {
                    stopping = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// A response body that marks its connection idle once it is sent (or dropped).
struct Tracked {
    body: Body,
    conn: Arc<conns::Conn>,
}

impl http_body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.conn.idle();
    }
}

/// A stream whose writes fail once one has made no progress for a while: a client that stops
/// reading its answer does not hold the connection (and its buffers) for ever.
struct StallGuard<T> {
    inner: T,
    limit: Duration,
    timer: std::pin::Pin<Box<tokio::time::Sleep>>,
    armed: bool,
}

impl<T> StallGuard<T> {
    fn new(inner: T, limit: Duration) -> Self {
        StallGuard { inner, limit, timer: Box::pin(tokio::time::sleep(limit)), armed: false }
    }

    /// Passes a write's outcome on; a pending one arms the timer, which fails it when it fires.
    fn watch<R>(
        &mut self,
        cx: &mut std::task::Context<'_>,
        poll: Poll<std::io::Result<R>>,
    ) -> Poll<std::io::Result<R>> {
        match poll {
            Poll::Ready(r) => {
                self.armed = false;
                Poll::Ready(r)
            }
            Poll::Pending => {
                if !self.armed {
                    self.armed = true;
                    let deadline = tokio::time::Instant::now() + self.limit;
                    self.timer.as_mut().reset(deadline);
                }
                match self.timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the client stopped reading the answer",
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for StallGuard<T> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for StallGuard<T> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let poll = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, poll)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let poll = std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<std::io::Result<()>> {
        let poll = std::pin::Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, poll)
    }

    fn poll_shutdown(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<std::io::Result<()>> {
        let poll = std::pin::Pin::new(&mut self.inner).poll_shutdown(cx);
        self.watch(cx, poll)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_descriptors_free() {
        assert_eq!(connection_cap(512, None, 96), 512);
        assert_eq!(connection_cap(512, Some(1_048_576), 96), 512);
        assert_eq!(connection_cap(512, Some(256), 96), 160, "256 - 96");
        assert_eq!(connection_cap(512, Some(100), 96), 50, "never below half the limit");
        assert_eq!(connection_cap(0, Some(256), 96), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_that_makes_no_progress_fails() {
        use tokio::io::AsyncWriteExt as _;
        let (client, server) = tokio::io::duplex(64);
        let mut guarded = StallGuard::new(server, Duration::from_secs(20));
        let started = tokio::time::Instant::now();
        let err = guarded.write_all(&[0; 1024]).await.expect_err("nobody reads");
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_secs(20));
        drop(client);
    }
}
