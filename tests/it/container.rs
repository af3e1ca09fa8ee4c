//! The Dockerfile's runtime stage, checked without a Docker engine: a Debian root of the stage's
//! release made by `debootstrap` from Debian's archive (cached under target/tmp, so it costs a
//! minute once), the stage's own RUN lines run inside it, the built binary copied where its COPY
//! puts it. Then, chrooted as the stage's USER (65534): the demo runs, the HEALTHCHECK command
//! fails before it listens and passes after, and /metrics is scraped; and the image's own
//! command (ENTRYPOINT + CMD, TLS on) polls a provider over HTTPS, failing while the root's CA
//! store lacks the provider's CA and succeeding once `update-ca-certificates` adds it, which
//! shows that rustls inside the image reads the CA store the stage installs.
//!
//! Needs root, `debootstrap`, `chroot` and `openssl`; skipped with a notice without them,
//! failing under `CDN_EXPORTER_REQUIRE_TOOLS=1` (CI).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cdn_usage_exporter::simulator::SimState;

use crate::support::se_part;
use crate::support::{Kill, Scrape, account_toml, require_tool, sim_account, wait_for};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// Where the debootstrapped root is kept between runs, one directory per recipe.
const CACHE: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/container-root");
/// Debian's archive; another mirror by `CDN_EXPORTER_DEBIAN_MIRROR`.
const MIRROR: &str = "http://deb.debian.org/debian";
/// Bound on building the root (debootstrap and the stage's RUN lines): a minute or two normally.
const BUILD_TIMEOUT: Duration = Duration::from_secs(20 * 60);
/// The name of the test CA in the root's trust store; removed again after the test.
const TEST_CA: &str = "usr/local/share/ca-certificates/cdn-exporter-test-ca.crt";
/// A container's environment: Docker's default PATH and nothing of ours (no SSL_CERT_FILE).
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What the runtime stage (the Dockerfile's last FROM) does.
#[derive(Debug, Default)]
struct Stage {
    build_image: String,
    image: String,
    runs: Vec<String>,
    /// Where `COPY --from=...` puts the binary.
    binary: String,
    user: String,
    healthcheck: Vec<String>,
    entrypoint: Vec<String>,
    cmd: Vec<String>,
    expose: Vec<u16>,
}

/// Dockerfile instructions: comment lines dropped, continuation lines joined.
fn instructions(dockerfile: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in dockerfile.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                let (keyword, rest) = current.split_once(char::is_whitespace).unwrap_or((&current, ""));
                out.push((keyword.to_uppercase(), rest.trim().to_owned()));
                current.clear();
            }
        }
    }
    out
}

fn exec_form(what: &str, args: &str) -> Vec<String> {
    serde_json::from_str(args).unwrap_or_else(|e| panic!("{what} {args}: not the exec (JSON) form: {e}"))
}

fn runtime_stage(dockerfile: &str) -> Stage {
    let all = instructions(dockerfile);
    let froms: Vec<usize> = all.iter().enumerate().filter(|(_, (k, _))| k == "FROM").map(|(i, _)| i).collect();
    assert!(froms.len() >= 2, "the Dockerfile keeps its build and runtime stages: {froms:?}");
    let mut stage = Stage {
        build_image: all[froms[0]].1.split_whitespace().next().unwrap_or_default().to_owned(),
        image: all[*froms.last().unwrap()].1.split_whitespace().next().unwrap_or_default().to_owned(),
        ..Stage::default()
    };
    for (keyword, args) in &all[*froms.last().unwrap() + 1..] {
        match keyword.as_str() {
            "RUN" => stage.runs.push(args.clone()),
            "COPY" if args.starts_with("--from=") => {
                stage.binary = args.split_whitespace().last().unwrap_or_default().to_owned();
            }
            "USER" => stage.user = args.clone(),
            "HEALTHCHECK" => {
                let (_, command) = args.split_once("CMD ").unwrap_or_else(|| panic!("HEALTHCHECK without CMD: {args}"));
                stage.healthcheck = exec_form("HEALTHCHECK CMD", command);
            }
            "ENTRYPOINT" => stage.entrypoint = exec_form("ENTRYPOINT", args),
            "CMD" => stage.cmd = exec_form("CMD", args),
            "EXPOSE" => stage.expose.extend(args.split_whitespace().map(|p| p.parse::<u16>().expect("EXPOSE port"))),
            _ => {}
        }
    }
    stage
}

/// A command run inside `root`, as `user` if given, with a container's bare environment.
fn in_root(root: &Path, user: Option<&str>, argv: &[String]) -> Command {
    let mut c = Command::new("chroot");
    if let Some(user) = user {
        c.arg(format!("--userspec={user}"));
    }
    c.arg(root).args(argv).env_clear().env("PATH", PATH).env("DEBIAN_FRONTEND", "noninteractive");
    c
}

fn run_ok(mut command: Command, what: &str) {
    let out = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `command` to its end, killing it after `timeout`.
fn run_bounded(mut command: Command, timeout: Duration, what: &str) {
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(log.reopen().unwrap())
        .stderr(log.reopen().unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: no end after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let text = std::fs::read_to_string(log.path()).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect();
    assert!(status.success(), "{what} failed ({status}):\n{}", tail.join("\n"));
}

/// Skips (or fails under CDN_EXPORTER_REQUIRE_TOOLS=1) when not root: chroot needs it.
fn require_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    let required = std::env::var("CDN_EXPORTER_REQUIRE_TOOLS").is_ok_and(|v| v == "1");
    assert!(!required, "the container check needs root (chroot) and CDN_EXPORTER_REQUIRE_TOOLS=1");
    eprintln!("SKIPPED: the container check needs root (chroot)");
    false
}

/// The stage's root: debootstrapped and its RUN lines run, or the cached one of the same recipe.
fn runtime_root(stage: &Stage) -> PathBuf {
    use sha2::Digest as _;
    let suite = stage.image.strip_prefix("debian:").and_then(|t| t.strip_suffix("-slim")).unwrap_or_else(|| {
        panic!("the runtime stage is {}, not debian:<release>-slim; this check builds only Debian roots", stage.image)
    });
    let recipe = format!("{suite}\n{}", stage.runs.join("\n"));
    let key: String = sha2::Sha256::digest(recipe.as_bytes()).iter().take(6).map(|b| format!("{b:02x}")).collect();
    let root = Path::new(CACHE).join(format!("{suite}-{key}"));
    let done = Path::new(CACHE).join(format!("{suite}-{key}.complete"));
    if done.exists() {
        eprintln!("container check: cached {suite} root {}", root.display());
        return root;
    }
    // Older recipes' roots and a half-built one go. debootstrap mounts /proc and /sys inside the
    // root while it works; an interrupted run can leave them, and they must not be descended into.
    unmount_under(Path::new(CACHE));
    let _ = std::fs::remove_dir_all(CACHE);
    std::fs::create_dir_all(CACHE).unwrap();
    let mirror = std::env::var("CDN_EXPORTER_DEBIAN_MIRROR").unwrap_or_else(|_| MIRROR.to_owned());
    let started = Instant::now();
    let mut debootstrap = Command::new("debootstrap");
    debootstrap.args(["--variant=minbase", suite]).arg(&root).arg(&mirror);
    run_bounded(debootstrap, BUILD_TIMEOUT, "debootstrap");
    eprintln!("container check: debootstrap {suite} took {:.0?}", started.elapsed());
    std::fs::copy("/etc/resolv.conf", root.join("etc/resolv.conf")).expect("resolv.conf for apt in the root");
    for run in &stage.runs {
        let step = Instant::now();
        run_bounded(in_root(&root, None, &["/bin/sh".into(), "-c".into(), run.clone()]), BUILD_TIMEOUT, run);
        eprintln!("container check: RUN took {:.0?}: {run}", step.elapsed());
    }
    std::fs::write(&done, recipe).unwrap();
    eprintln!("container check: root built in {:.0?}", started.elapsed());
    root
}

/// Unmounts whatever is mounted below `dir`, deepest first; panics if something stays.
fn unmount_under(dir: &Path) {
    let mounts = || -> Vec<String> {
        let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut points: Vec<String> = table
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(str::to_owned))
            .filter(|p| Path::new(p).starts_with(dir))
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        points
    };
    for point in mounts() {
        let _ = Command::new("umount").arg("--lazy").arg(&point).status();
    }
    let left = mounts();
    assert!(left.is_empty(), "mounted below {}: {left:?}; unmount them first", dir.display());
}

/// Removes the test CA from the root's trust store, now and when dropped.
struct TrustStore<'a>(&'a Path);

impl TrustStore<'_> {
    fn reset(&self) {
        let _ = std::fs::remove_file(self.0.join(TEST_CA));
        run_ok(in_root(self.0, None, &["update-ca-certificates".into(), "--fresh".into()]), "update-ca-certificates");
    }
}

impl Drop for TrustStore<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.0.join(TEST_CA));
        let _ = in_root(self.0, None, &["update-ca-certificates".into(), "--fresh".into()]).output();
    }
}

fn openssl(openssl: &Path, dir: &Path, args: &[&str]) {
    let mut c = Command::new(openssl);
    c.args(args).current_dir(dir);
    run_ok(c, &format!("openssl {}", args.join(" ")));
}

/// A test CA and a certificate for 127.0.0.1 signed by it: ca.crt, tls.crt, tls.key.
fn certificates(tool: &Path, dir: &Path) {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let mut ca = vec!["req", "-x509", "-days", "1", "-subj", "/CN=cdn-exporter test CA", "-keyout", "ca.key"];
    ca.extend(ec);
    ca.extend(["-out", "ca.crt", "-addext", "basicConstraints=critical,CA:TRUE"]);
    ca.extend(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
    openssl(tool, dir, &ca);
    let mut csr = vec!["req", "-subj", "/CN=127.0.0.1", "-keyout", "tls.key", "-out", "tls.csr"];
    csr.extend(ec);
    openssl(tool, dir, &csr);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        tool,
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "tls.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "ext.cnf",
            "-out",
            "tls.crt",
        ],
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits until the chrooted process runs the exporter, and returns its real, effective, saved
/// and file-system user and group ids.
async fn ids_of(pid: u32) -> (String, String) {
    wait_for(Duration::from_secs(10), "the exporter to be exec'd in the root", || async {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        if !comm.starts_with("cdn-usage-expor") {
            return None;
        }
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let field = |name: &str| status.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.trim().to_owned());
        Some((field("Uid:")?, field("Gid:")?))
    })
    .await
}

fn passes(mut healthcheck: Command) -> bool {
    healthcheck.stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

#[test]
fn the_dockerfile_is_read_as_docker_reads_it() {
    let stage = runtime_stage(&std::fs::read_to_string(format!("{ROOT}/Dockerfile")).unwrap());
    assert!(stage.build_image.starts_with("rust:") && stage.build_image.ends_with("-bookworm"), "{stage:?}");
    // The binary is built on the runtime's Debian release, so its glibc is there.
    assert_eq!(stage.image, "debian:bookworm-slim");
    assert_eq!(stage.user, "65534:65534");
    assert_eq!(stage.expose, [9862]);
    assert_eq!(stage.entrypoint, std::slice::from_ref(&stage.binary));
    assert_eq!(stage.healthcheck[0], stage.binary);
    assert!(stage.healthcheck.contains(&"healthcheck".to_owned()), "{stage:?}");
    assert!(stage.healthcheck.contains(&"127.0.0.1:9862".to_owned()), "probes the exposed port: {stage:?}");
    assert_eq!(stage.cmd, ["--config", "/etc/cdn-usage-exporter/config.toml"]);
    assert!(stage.runs.iter().any(|r| r.contains("ca-certificates")), "{stage:?}");
    let joined = instructions("RUN a \\\n  # a comment\n && b\nUSER x\n");
    assert_eq!(joined, [("RUN".to_owned(), "a  && b".to_owned()), ("USER".to_owned(), "x".to_owned())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runtime_stage_runs_as_nobody_passes_its_healthcheck_and_trusts_its_ca_store() {
    let stage = runtime_stage(&std::fs::read_to_string(format!("{ROOT}/Dockerfile")).unwrap());
    if !require_root() {
        return;
    }
    let (Some(_), Some(_), Some(openssl)) =
        (require_tool("debootstrap"), require_tool("chroot"), require_tool("openssl"))
    else {
        return;
    };
    let started = Instant::now();
    let root = runtime_root(&stage);
    assert!(root.join("etc/ssl/certs/ca-certificates.crt").is_file(), "the stage installs a CA bundle");

    // COPY --from=build: the binary CI built, where the stage puts it.
    let binary = root.join(stage.binary.trim_start_matches('/'));
    std::fs::create_dir_all(binary.parent().unwrap()).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_cdn-usage-exporter"), &binary).unwrap();
    let trust = TrustStore(&root);
    trust.reset();
    let user = Some(stage.user.as_str());
    let nobody = ("65534\t65534\t65534\t65534".to_owned(), "65534\t65534\t65534\t65534".to_owned());
    let healthcheck = |port: u16| {
        let argv: Vec<String> = stage.healthcheck.iter().map(|a| a.replace("9862", &port.to_string())).collect();
        in_root(&root, user, &argv)
    };
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();

    // 1. The demo, as the stage's user, probed by the stage's HEALTHCHECK, scraped.
    let port = free_port();
    assert!(!passes(healthcheck(port)), "the HEALTHCHECK passes with nothing listening");
    let mut demo = stage.entrypoint.clone();
    demo.extend(
        ["demo", "--web.listen-address", &format!("127.0.0.1:{port}"), "--log.level", "warn"].map(String::from),
    );
    let child = Kill(in_root(&root, user, &demo).stdout(Stdio::null()).stderr(Stdio::inherit()).spawn().unwrap());
    assert_eq!(ids_of(child.0.id()).await, nobody, "the exporter runs as 65534");
    wait_for(Duration::from_secs(30), "the HEALTHCHECK to pass", || async { passes(healthcheck(port)).then_some(()) })
        .await;
    let url = format!("http://127.0.0.1:{port}/metrics");
    let scrape = wait_for(Duration::from_secs(30), "the demo's accounts up", || async {
        let s = Scrape::parse(&http.get(&url).send().await.ok()?.text().await.ok()?);
        let up = s.all("cdn_exporter_poll_up", &[("account", "demo")]);
        (up.len() >= 4 && up.iter().all(|x| x.value == 1.0)).then_some(s)
    })
    .await;
    assert!(!scrape.all("cdn_billing_budget_usd", &[("account", "demo")]).is_empty());
    // `docker stop`: SIGTERM, and SIGKILL 10 s later; the exporter must end on the first.
    let mut child = child;
    // SAFETY: kill(2) on our own child's pid; no memory is involved.
    assert_eq!(unsafe { libc::kill(child.0.id() as libc::pid_t, libc::SIGTERM) }, 0);
    let status = wait_for(Duration::from_secs(10), "the exporter to stop on SIGTERM", || {
        let status = child.0.try_wait().ok().flatten();
        async move { status }
    })
    .await;
    assert!(status.success(), "stopped on SIGTERM with {status}");

    // 2. The image's own command (ENTRYPOINT + CMD) with TLS on, polling a provider over HTTPS
    // whose certificate only the test CA vouches for.
    let certs = tempfile::tempdir().unwrap();
    certificates(&openssl, certs.path());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let provider = listener.local_addr().unwrap();
    let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(
        certs.path().join("tls.crt"),
        certs.path().join("tls.key"),
    )
    .await
    .unwrap();
    let state = SimState::builder().with(se_part(vec![sim_account()])).build();
    let app = cdn_usage_exporter::simulator::router(state.clone());
    let server = tokio::spawn(axum_server::from_tcp_rustls(listener, tls).unwrap().serve(app.into_make_service()));

    let port = free_port();
    let etc = root.join("etc/cdn-usage-exporter");
    std::fs::create_dir_all(&etc).unwrap();
    let config = format!(
        "listen_address = \"127.0.0.1:{port}\"\n{}",
        account_toml("main", &format!("https://{provider}/stable/"), "1h")
    );
    std::fs::write(etc.join("config.toml"), config).unwrap();
    std::fs::write(etc.join("web.yml"), "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n").unwrap();
    for f in ["tls.crt", "tls.key"] {
        std::fs::copy(certs.path().join(f), etc.join(f)).unwrap();
        // As a mounted secret must be: readable by the image's user, 65534.
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(etc.join(f), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let mut image = stage.entrypoint.clone();
    image.extend(stage.cmd.iter().cloned());
    image.extend(["--web.config.file", "/etc/cdn-usage-exporter/web.yml", "--log.level", "warn"].map(String::from));
    let ca = reqwest::Certificate::from_pem(&std::fs::read(certs.path().join("ca.crt")).unwrap()).unwrap();
    let https = reqwest::Client::builder().timeout(Duration::from_secs(5)).add_root_certificate(ca).build().unwrap();
    let url = format!("https://127.0.0.1:{port}/metrics");
    let polls = |want_up: f64| {
        let (https, url) = (&https, &url);
        async move {
            let s = Scrape::parse(&https.get(url).send().await.ok()?.text().await.ok()?);
            let up = s.all("cdn_exporter_poll_up", &[("account", "main")]);
            let errors: f64 =
                s.all("cdn_exporter_poll_errors_total", &[("account", "main")]).iter().map(|x| x.value).sum();
            let done = up.len() == crate::support::SE_JOBS
                && up.iter().all(|x| x.value == want_up)
                && (want_up == 1.0 || errors > 0.0);
            done.then_some(s)
        }
    };

    // 2a. Without the test CA in the root's store, the provider's certificate is refused.
    let child = Kill(in_root(&root, user, &image).stdout(Stdio::null()).stderr(Stdio::inherit()).spawn().unwrap());
    assert_eq!(ids_of(child.0.id()).await, nobody);
    wait_for(Duration::from_secs(30), "the HEALTHCHECK to pass over HTTPS", || async {
        passes(healthcheck(port)).then_some(())
    })
    .await;
    wait_for(Duration::from_secs(60), "every poll failing on the unknown CA", || polls(0.0)).await;
    assert!(state.requests().is_empty(), "a request got through TLS without the CA: {:?}", state.requests());
    drop(child);

    // 2b. update-ca-certificates adds it, as a user's own CA would be added to the image.
    std::fs::create_dir_all(root.join(TEST_CA).parent().unwrap()).unwrap();
    std::fs::copy(certs.path().join("ca.crt"), root.join(TEST_CA)).unwrap();
    run_ok(in_root(&root, None, &["update-ca-certificates".into()]), "update-ca-certificates");
    let child = Kill(in_root(&root, user, &image).stdout(Stdio::null()).stderr(Stdio::inherit()).spawn().unwrap());
    assert_eq!(ids_of(child.0.id()).await, nobody);
    wait_for(Duration::from_secs(30), "the HEALTHCHECK to pass over HTTPS", || async {
        passes(healthcheck(port)).then_some(())
    })
    .await;
    wait_for(Duration::from_secs(60), "every poll succeeding over HTTPS", || polls(1.0)).await;
    assert!(!state.requests().is_empty(), "the provider saw no request");
    drop(child);
    server.abort();
    drop(trust);
    eprintln!("container check: {:.0?} in all", started.elapsed());
}

#[test]
fn a_mount_left_in_the_cache_is_unmounted_before_the_cache_is_removed() {
    if !require_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let inner = dir.path().join("root/proc");
    std::fs::create_dir_all(&inner).unwrap();
    let mounted = Command::new("mount").args(["-t", "tmpfs", "none"]).arg(&inner).status();
    if !mounted.is_ok_and(|s| s.success()) {
        eprintln!("SKIPPED: cannot mount a tmpfs here");
        return;
    }
    unmount_under(dir.path());
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!table.contains(&inner.display().to_string()), "{table}");
}
