//! The HTTP listener's security, configured the way Prometheus exporters are (exporter-toolkit's
//! web configuration file): optional TLS (`tls_server_config.cert_file` / `key_file`) and
//! optional basic auth (`basic_auth_users` with bcrypt hashes), for every endpoint.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum_server::tls_rustls::RustlsConfig;
use base64::Engine as _;
use serde::Deserialize;
use sha2::{Digest, Sha256};
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

impl WebConfig {
    /// Reads and checks a web configuration file; relative paths in it are relative to the file.
    pub async fn load(path: &Path) -> Result<WebConfig, String> {
        let name = path.display();
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read --web.config.file {name}: {e}"))?;
        let raw: RawWebConfig = serde_yaml_ng::from_str(&text).map_err(|e| {
            format!("--web.config.file {name}: {e}. Supported keys: tls_server_config (cert_file, key_file), basic_auth_users")
        })?;
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
            Err(format!("--web.config.file {name} has {} problem(s):\n  - {}", problems.len(), problems.join("\n  - ")))
        }
    }
}

/// Checks basic auth against bcrypt hashes; successful checks are remembered (as a SHA-256 of
/// user, password and hash) so that a scrape every few seconds does not pay bcrypt each time.
#[derive(Clone)]
struct BasicAuth {
    users: Arc<BTreeMap<String, String>>,
    verified: Arc<Mutex<HashSet<[u8; 32]>>>,
}

/// Remembered successful logins at most.
const VERIFIED_CACHE: usize = 1024;

async fn require_auth(State(auth): State<BasicAuth>, request: Request, next: Next) -> Response {
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
    let Some(hash) = auth.users.get(user).cloned() else { return unauthorized() };
    let fingerprint: [u8; 32] = Sha256::new()
        .chain_update(user.as_bytes())
        .chain_update([0])
        .chain_update(password.as_bytes())
        .chain_update([0])
        .chain_update(hash.as_bytes())
        .finalize()
        .into();
    let known = auth.verified.lock().map(|v| v.contains(&fingerprint)).unwrap_or(false);
    if !known {
        let password = password.to_owned();
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
            .await
            .unwrap_or(false);
        if !ok {
            return unauthorized();
        }
        if let Ok(mut v) = auth.verified.lock() {
            if v.len() >= VERIFIED_CACHE {
                v.clear();
            }
            v.insert(fingerprint);
        }
    }
    next.run(request).await
}

/// Serves `app` on `listener` until `shutdown` resolves, with TLS and basic auth as `web` says.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    web: Option<WebConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let web = web.unwrap_or(WebConfig { tls: None, users: BTreeMap::new() });
    let app = if web.users.is_empty() {
        app
    } else {
        let auth = BasicAuth { users: Arc::new(web.users), verified: Arc::default() };
        app.layer(axum::middleware::from_fn_with_state(auth, require_auth))
    };
    // TCP_NODELAY: the body goes out as two writes (the cached exposition, then the process
    // metrics); with Nagle's algorithm the second waits for a delayed ACK, about 40 ms.
    match web.tls {
        None => {
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                let _ = tcp.set_nodelay(true);
            });
            axum::serve(listener, app).with_graceful_shutdown(shutdown).await
        }
        Some(tls) => {
            let handle = axum_server::Handle::new();
            let stopper = handle.clone();
            tokio::spawn(async move {
                shutdown.await;
                stopper.graceful_shutdown(Some(Duration::from_secs(5)));
            });
            let acceptor =
                axum_server::tls_rustls::RustlsAcceptor::new(tls).acceptor(axum_server::accept::NoDelayAcceptor::new());
            axum_server::from_tcp(listener.into_std()?)?
                .acceptor(acceptor)
                .handle(handle)
                .serve(app.into_make_service())
                .await
        }
    }
}
