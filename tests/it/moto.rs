//! moto (PyPI `moto[server]` 5.2.5, an independent implementation of the AWS APIs) as a test peer
//! for the CloudFront provider, run with IAM authentication on: a cached venv made from
//! `tests/moto/requirements.txt`, one `moto_server` per test on a free 127.0.0.1 port (killed and
//! reaped on drop), seeded by `tests/moto/seed.py` and probed with boto3 by `tests/moto/probe.py`.
//!
//! ```ignore
//! let Some(moto) = moto::moto() else { return };        // a SKIPPED notice without Python
//! let server = moto.start();
//! let seeded = server.seed(&json!({"distributions": 2, "metrics": [...], "ce_results": [...], "auth": true}));
//! // point the exporter at server.endpoint() with seeded.users["exporter"]'s key
//! ```
//!
//! The seed's spec and output are described in `tests/moto/seed.py`; `endpoint` and
//! `policy_file` (the deploy policy, `deploy/aws/cloudfront-exporter-policy.json`) are filled in
//! when left out.
//!
//! **Queueing Cost Explorer results.** moto answers GetCostAndUsage from a queue keyed by the
//! exact request body: the first request with a body it has not seen takes the next queued
//! result, the same body again gets the same result back, and once the queue is empty a new body
//! gets `{"ResultsByTime": [], "DimensionValueAttributes": []}`. So queue `ce_results` in the order
//! in which the code under test sends its *distinct* request bodies (a second page is a distinct
//! body: it carries `NextPageToken`). The cache is per account, shared by every user and role.
//!
//! **moto quirks measured here** (moto 5.2.5, botocore 1.44.8; more in
//! `/work/shared/provider-apis/aws-cloudfront.md` §6):
//! - IAM actions are checked under the SigV4 signing name, so CloudWatch is checked as
//!   `monitoring:GetMetricData`; the seed adds a moto-only policy granting it next to the deploy
//!   policy (real AWS needs `cloudwatch:GetMetricData`, which the deploy policy has).
//! - Auth errors are EC2-style XML (`<ErrorResponse><Errors><Error><Code>…`) even on JSON
//!   services: for Cost Explorer, and for CloudWatch (which botocore 1.44.8 speaks as JSON 1.0,
//!   preferring it to CBOR and Query), botocore reports the code as `"403"` and the XML as the
//!   message (probe.py reads the real code out of the XML and keeps botocore's as
//!   `botocore_code`). STS (Query) errors parse normally.
//! - The trust policy's `sts:ExternalId` condition is enforced only when an ExternalId is sent: a
//!   wrong one is `AccessDenied`, but AssumeRole **without** an ExternalId is allowed (moto skips a
//!   condition whose key is absent from the request; real AWS refuses). Only `StringEquals` is
//!   evaluated; other condition operators are ignored.
//! - Assumed-role keys need their session token (`InvalidClientTokenId` without it).
//! - With auth on, CloudFront ListDistributions is always refused (403 with an empty body, so
//!   botocore reports an empty code): moto hashes a body-less request's payload wrongly. Test
//!   CloudFront with auth off.
//! - With auth on, an unsigned AssumeRoleWithWebIdentity is a 500 (HTML); with auth off the web
//!   identity token is never checked (`not-a-jwt` gets credentials).
//! - GetCostForecast is not implemented (500).
//! - CreateDistribution takes an alias (CNAME) without a `ViewerCertificate` (real AWS wants a
//!   certificate covering it); PutMetricData takes the `AWS/CloudFront` namespace.
//! - Unlike most actions, AssumeRole is checked against the identity policy's `Resource` (moto
//!   takes the RoleArn as the resource): `assumer`, allowed `sts:AssumeRole` on `cdn-exporter`
//!   only, is refused `cdn-exporter-web`.
//! - An unsigned `GET /2020-05-31/distribution` is routed to S3 (`NoSuchBucket`): moto routes by
//!   the credential scope of the signature.
//! - `POST /moto-api/reset-auth` must be `text/plain` (a form content type reads as empty: 500).
//! - The pinned set needs Python 3.11 to 3.14 (moto 5.2.5 itself says >= 3.10).

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Digest as _;

use crate::support::{first_python, on_path, pyenv_pythons, run_input, run_ok};

/// Making the venv: about 20 s on this machine with a warm pip cache; a slow mirror can take
/// minutes, anything past this is a hang.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(900);
/// Another process making the same venv.
const LOCK_TIMEOUT: Duration = Duration::from_secs(960);
/// moto_server answers in well under a second here; a loaded machine needs more.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// One seed or probe run (a second or less here).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

/// The moto venv, ready to start servers.
#[derive(Clone, Debug)]
pub struct Moto {
    venv: PathBuf,
}

/// moto's venv, made once per test run and kept in the target dir between runs (keyed by the
/// hash of `tests/moto/requirements.txt`). `None` after a `SKIPPED:` notice when no suitable
/// Python, venv or pip is there, unless `CDN_EXPORTER_REQUIRE_TOOLS=1`, under which that is a
/// panic naming what is missing.
pub fn moto() -> Option<Moto> {
    static MOTO: OnceLock<Option<Moto>> = OnceLock::new();
    MOTO.get_or_init(make_venv).clone()
}

fn skip(why: String) -> Option<Moto> {
    crate::support::skip_tool("moto", &why, "CI installs python3-venv; see tests/it/moto.rs")
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn requirements() -> PathBuf {
    repo().join("tests/moto/requirements.txt")
}

fn make_venv() -> Option<Moto> {
    let wanted = std::fs::read(requirements()).expect("read tests/moto/requirements.txt");
    let hash: String = sha2::Sha256::digest(&wanted)[..8].iter().map(|b| format!("{b:02x}")).collect();
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let venv = base.join(format!("moto-venv-{hash}"));
    let marker = venv.join("cdn-exporter-requirements.txt");
    let ready = || {
        std::fs::read(&marker).is_ok_and(|m| m == wanted)
            && run_ok(&venv.join("bin/python"), &["-c", "import moto.server, boto3"])
    };
    if ready() {
        return Some(Moto { venv });
    }
    // Two test binaries (or two worktrees on one target dir) may get here at once: the first to
    // hold the lock makes the venv, the other finds it made.
    let _lock = match Lock::take(&base.join(format!("moto-venv-{hash}.lock")), LOCK_TIMEOUT) {
        Ok(lock) => lock,
        Err(e) => return skip(e),
    };
    if ready() {
        return Some(Moto { venv });
    }
    let Some(python) = find_python() else {
        return skip("no Python 3.11 to 3.14 found (python3, python3.1x on PATH, /usr/bin/python3, pyenv)".into());
    };
    let started = Instant::now();
    let mut make = Command::new(&python);
    make.args(["-m", "venv", "--clear"]).arg(&venv);
    match run_bounded(make, INSTALL_TIMEOUT) {
        Ok((status, _, _)) if status.success() => {}
        Ok((_, out, err)) => {
            return skip(format!("{} -m venv failed (python3-venv missing?): {out}{err}", python.display()));
        }
        Err(e) => return skip(format!("{} -m venv: {e}", python.display())),
    }
    let made = started.elapsed();
    let mut pip = Command::new(venv.join("bin/python"));
    pip.args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-input", "--timeout", "60", "-r"])
        .arg(requirements());
    match run_bounded(pip, INSTALL_TIMEOUT) {
        Ok((status, _, _)) if status.success() => {}
        Ok((_, out, err)) => return skip(format!("pip install -r tests/moto/requirements.txt failed: {out}{err}")),
        Err(e) => return skip(format!("pip install: {e}")),
    }
    std::fs::write(&marker, &wanted).expect("write the venv's requirements marker");
    eprintln!(
        "moto: venv made with {} in {made:.1?}, packages installed in {:.1?}",
        python.display(),
        started.elapsed() - made
    );
    Some(Moto { venv })
}

/// Python 3.11 to 3.14 (what the pinned set installs on): `python3` on PATH (Debian's 3.11 in CI),
/// `/usr/bin/python3`, `python3.11`..`python3.14` on PATH, then pyenv's versions, newest first.
fn find_python() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = on_path("python3").into_iter().collect();
    candidates.push(PathBuf::from("/usr/bin/python3"));
    candidates.extend(["python3.11", "python3.12", "python3.13", "python3.14"].iter().filter_map(|n| on_path(n)));
    candidates.extend(pyenv_pythons(|minor| (11..15).contains(&minor)));
    first_python(candidates, "import sys, venv, ensurepip; print((3, 11) <= sys.version_info[:2] < (3, 15))")
}

/// An exclusive `flock` on a file next to the venv, held until dropped (the kernel drops it if
/// the process dies).
struct Lock(std::fs::File);

impl Lock {
    fn take(path: &Path, timeout: Duration) -> Result<Lock, String> {
        use std::os::fd::AsRawFd as _;
        std::fs::create_dir_all(path.parent().expect("lock dir")).map_err(|e| format!("create the target dir: {e}"))?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| format!("open {}: {e}", path.display()))?;
        let deadline = Instant::now() + timeout;
        loop {
            // SAFETY: flock on a descriptor this File owns.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return Ok(Lock(file));
            }
            if Instant::now() > deadline {
                return Err(format!("{} still locked after {timeout:?} (another venv build hung?)", path.display()));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd as _;
        // SAFETY: as above; closing the file would release it too.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// Takes out of `command`'s environment what would change moto's or boto3's behaviour here: a
/// developer's `AWS_PROFILE` (boto3 fails on an unknown one even with explicit keys), shared
/// config files, `MOTO_*` settings, and `INITIAL_NO_AUTH_ACTION_COUNT` (auth on from the start
/// would refuse the seeding).
fn clean_env(command: &mut Command) -> &mut Command {
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("AWS_") || name.starts_with("MOTO_") || name == "INITIAL_NO_AUTH_ACTION_COUNT" {
            command.env_remove(&*name);
        }
    }
    command.env("AWS_CONFIG_FILE", "/dev/null").env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
}

fn run_bounded(command: Command, timeout: Duration) -> Result<(ExitStatus, String, String), String> {
    run_input(command, None, timeout)
}

impl Moto {
    /// The venv's python (with boto3 1.44.8 and moto 5.2.5).
    pub fn python(&self) -> PathBuf {
        self.venv.join("bin/python")
    }

    /// Starts `moto_server -H 127.0.0.1 -p <free port>` and waits until it answers (a panic after
    /// [`START_TIMEOUT`] or five port clashes). Auth is off until [`MotoServer::seed`] turns it on.
    pub fn start(&self) -> MotoServer {
        let mut last = String::new();
        for _ in 0..5 {
            match self.try_start() {
                Ok(server) => return server,
                Err(why) => {
                    eprintln!("moto: start failed, retrying on another port: {why}");
                    last = why;
                }
            }
        }
        panic!("moto_server did not start: {last}");
    }

    fn try_start(&self) -> Result<MotoServer, String> {
        let started = Instant::now();
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let log = tempfile::Builder::new().prefix("moto-server-").suffix(".log").tempfile().expect("a log file");
        let output = |f: &tempfile::NamedTempFile| Stdio::from(f.as_file().try_clone().expect("dup the log file"));
        let child = clean_env(&mut Command::new(self.venv.join("bin/moto_server")))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(output(&log))
            .stderr(output(&log))
            .spawn()
            .map_err(|e| format!("moto_server did not run: {e}"))?;
        let mut server = MotoServer { child, port, log, python: self.python() };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = server.child.try_wait().expect("wait for moto_server") {
                return Err(format!("moto_server on port {port} exited with {status}:\n{}", server.log()));
            }
            // Werkzeug says "Running on" only once it is listening, so an answer on the port is
            // from this process and not from whoever took the port in between.
            if server.log().contains("Running on") && answers(port) {
                eprintln!("moto: server up on 127.0.0.1:{port} in {:.0?}", started.elapsed());
                return Ok(server);
            }
            if Instant::now() > deadline {
                panic!("moto_server on port {port} did not answer within {START_TIMEOUT:?}:\n{}", server.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Whether `GET /moto-api/` on the port gets an HTTP 200.
fn answers(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    if stream.write_all(b"GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") && &head[9..12] == b"200"
}

/// One running moto_server, killed and reaped when dropped. Its stdout and stderr go to a temp
/// log file ([`MotoServer::log`]).
pub struct MotoServer {
    child: Child,
    port: u16,
    log: tempfile::NamedTempFile,
    python: PathBuf,
}

/// What [`MotoServer::seed`] made (`tests/moto/seed.py`'s output). Keys and secrets are moto's
/// test data.
#[derive(Debug, Clone, Deserialize)]
pub struct Seeded {
    /// `exporter`, `exporter-no-ce`, `assumer`.
    pub users: BTreeMap<String, User>,
    /// `cdn-exporter` (trusts `assumer` with [`Seeded::external_id`]) and `cdn-exporter-web`
    /// (trusts [`Seeded::oidc_provider`]), by name, to their ARNs.
    pub roles: BTreeMap<String, String>,
    pub external_id: String,
    pub oidc_provider: String,
    pub distributions: Vec<Distribution>,
    pub account_id: String,
}

/// An IAM user and its access key.
#[derive(Debug, Clone, Deserialize)]
pub struct User {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub arn: String,
}

/// A CloudFront distribution the seed created.
#[derive(Debug, Clone, Deserialize)]
pub struct Distribution {
    pub id: String,
    pub domain_name: String,
    pub aliases: Vec<String>,
}

impl MotoServer {
    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The process id (gone once this is dropped).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the server printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_else(|e| format!("(log unreadable: {e})"))
    }

    /// Runs `tests/moto/seed.py` with `spec` (`endpoint` and `policy_file` filled in when
    /// absent); panics with its stderr and the server's log if it fails.
    pub fn seed(&self, spec: &Value) -> Seeded {
        let mut spec = spec.clone();
        let fields = spec.as_object_mut().expect("the seed spec is a JSON object");
        fields.entry("endpoint").or_insert_with(|| json!(self.endpoint()));
        fields.entry("policy_file").or_insert_with(|| {
            json!(repo().join("deploy/aws/cloudfront-exporter-policy.json").to_str().expect("a UTF-8 repo path"))
        });
        let started = Instant::now();
        let out = self.script("seed.py", &spec);
        let seeded = serde_json::from_str(&out).unwrap_or_else(|e| panic!("seed.py's output: {e}\n{out}"));
        eprintln!("moto: seeded in {:.0?}", started.elapsed());
        seeded
    }

    /// Runs `tests/moto/probe.py` with these `calls` (see that script) against this server;
    /// returns one result per call (`{"ok": …}`, `{"error": {"code", …}}` or `{"exception": …}`).
    pub fn probe(&self, calls: &Value) -> Vec<Value> {
        let out = self.script("probe.py", &json!({"endpoint": self.endpoint(), "calls": calls}));
        let mut parsed: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("probe.py's output: {e}\n{out}"));
        match parsed["results"].take() {
            Value::Array(results) => results,
            other => panic!("probe.py printed no results: {other}"),
        }
    }

    fn script(&self, name: &str, input: &Value) -> String {
        let mut command = Command::new(&self.python);
        clean_env(&mut command).arg(repo().join("tests/moto").join(name)).env("PYTHONIOENCODING", "utf-8");
        let input = serde_json::to_vec(input).expect("serialise the spec");
        match run_input(command, Some(&input), SCRIPT_TIMEOUT) {
            Ok((status, out, err)) if status.success() => {
                if !err.trim().is_empty() {
                    eprintln!("{}", err.trim());
                }
                out
            }
            Ok((status, out, err)) => panic!("{name} exited with {status}:\n{out}{err}\nserver log:\n{}", self.log()),
            Err(e) => panic!("{name}: {e}\nserver log:\n{}", self.log()),
        }
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- tests of the harness itself ----

fn creds(user: &User) -> Value {
    json!({"access_key_id": user.access_key_id, "secret_access_key": user.secret_access_key})
}

fn ce_result(day: &str, amount: &str) -> Value {
    json!({
        "ResultsByTime": [{
            "TimePeriod": {"Start": day, "End": "2025-12-05"},
            "Total": {"UnblendedCost": {"Amount": amount, "Unit": "USD"}},
            "Groups": [],
            "Estimated": true
        }],
        "DimensionValueAttributes": []
    })
}

fn ce_request(granularity: &str) -> Value {
    json!({"TimePeriod": {"Start": "2025-12-04", "End": "2025-12-05"}, "Granularity": granularity,
           "Metrics": ["UnblendedCost"]})
}

const T0: i64 = 1_764_806_400; // 2025-12-04T00:00:00Z

fn metric_query(distribution: &str, name: &str) -> Value {
    json!({
        "MetricDataQueries": [{"Id": "m", "MetricStat": {
            "Metric": {"Namespace": "AWS/CloudFront", "MetricName": name, "Dimensions": [
                {"Name": "DistributionId", "Value": distribution}, {"Name": "Region", "Value": "Global"}]},
            "Period": 300, "Stat": "Sum"}}],
        "StartTime": T0, "EndTime": T0 + 900, "ScanBy": "TimestampAscending"
    })
}

fn ok<'a>(result: &'a Value, what: &str, server: &MotoServer) -> &'a Value {
    result.get("ok").unwrap_or_else(|| panic!("{what}: {result}\nserver log:\n{}", server.log()))
}

fn error_code(result: &Value) -> &str {
    result["error"]["code"].as_str().unwrap_or_else(|| panic!("expected an error, got {result}"))
}

#[test]
fn moto_auth_on_checks_keys_policies_and_the_role_trust() {
    let Some(moto) = moto() else { return };
    let server = moto.start();
    let daily = ce_result("2025-12-04", "1.23");
    let monthly = ce_result("2025-12-01", "45.60");
    let s = server.seed(&json!({
        "distributions": 2,
        "metrics": [
            {"distribution": 0, "name": "BytesDownloaded", "timestamp": T0, "value": 12345.0},
            {"distribution": 0, "name": "BytesDownloaded", "timestamp": T0 + 300, "value": 55.0},
            {"distribution": 1, "name": "BytesDownloaded", "timestamp": T0, "value": 7.0},
        ],
        "ce_results": [daily, monthly],
        "auth": true
    }));
    assert_eq!(s.account_id, "123456789012");
    let (d0, d1) = (&s.distributions[0].id, &s.distributions[1].id);
    let exporter = creds(&s.users["exporter"]);
    let no_ce = creds(&s.users["exporter-no-ce"]);
    let assumer = creds(&s.users["assumer"]);
    let mut wrong = exporter.clone();
    wrong["secret_access_key"] = json!("not-the-secret-0000000000000000000000000");
    let role = &s.roles["cdn-exporter"];
    let assume = |external_id: Option<&str>| {
        let mut params = json!({"RoleArn": role, "RoleSessionName": "cdn-exporter-test"});
        if let Some(id) = external_id {
            params["ExternalId"] = json!(id);
        }
        json!({"service": "sts", "operation": "AssumeRole", "params": params, "credentials": assumer})
    };
    let call = |service: &str, operation: &str, params: Value, credentials: &Value| json!({"service": service, "operation": operation, "params": params, "credentials": credentials});
    let r = server.probe(&json!([
        call("ce", "GetCostAndUsage", ce_request("DAILY"), &exporter),
        call("ce", "GetCostAndUsage", ce_request("MONTHLY"), &exporter),
        call("ce", "GetCostAndUsage", ce_request("DAILY"), &exporter),
        call("cloudwatch", "GetMetricData", metric_query(d0, "BytesDownloaded"), &exporter),
        call("cloudwatch", "GetMetricData", metric_query(d1, "BytesDownloaded"), &exporter),
        call("ce", "GetCostAndUsage", ce_request("DAILY"), &wrong),
        call("ce", "GetCostAndUsage", ce_request("DAILY"), &no_ce),
        call("cloudwatch", "GetMetricData", metric_query(d0, "BytesDownloaded"), &no_ce),
        call("ce", "GetCostAndUsage", ce_request("DAILY"), &assumer),
        assume(Some(&s.external_id)),
        assume(Some("ext-9999")),
        assume(None),
        call("cloudfront", "ListDistributions", json!({}), &exporter),
        call("sts", "AssumeRole", json!({"RoleArn": s.roles["cdn-exporter-web"], "RoleSessionName": "web"}), &assumer),
    ]));
    // The queue, in the order of distinct bodies; the same body again gets the same result.
    assert_eq!(ok(&r[0], "exporter CE daily", &server), &daily);
    assert_eq!(ok(&r[1], "exporter CE monthly", &server), &monthly);
    assert_eq!(ok(&r[2], "exporter CE daily again", &server), &daily);
    let values = |result: &Value| ok(result, "GetMetricData", &server)["MetricDataResults"][0]["Values"].clone();
    assert_eq!(values(&r[3]), json!([12345.0, 55.0]));
    assert_eq!(values(&r[4]), json!([7.0]));
    assert_eq!(error_code(&r[5]), "SignatureDoesNotMatch", "{}", r[5]);
    assert_eq!(r[5]["error"]["botocore_code"], "403", "moto's XML error on a JSON service: {}", r[5]);
    assert_eq!(error_code(&r[6]), "AccessDenied", "{}", r[6]);
    let denied = format!("User: {} is not authorized to perform: ce:GetCostAndUsage", s.users["exporter-no-ce"].arn);
    assert_eq!(r[6]["error"]["message"], denied, "{}", r[6]);
    ok(&r[7], "exporter-no-ce may read CloudWatch", &server);
    assert_eq!(error_code(&r[8]), "AccessDenied", "assumer holds only sts:AssumeRole: {}", r[8]);
    let temporary = &ok(&r[9], "AssumeRole with the external id", &server)["Credentials"];
    assert!(temporary["AccessKeyId"].as_str().unwrap().starts_with("ASIA"), "{temporary}");
    assert_eq!(error_code(&r[10]), "AccessDenied", "a wrong external id: {}", r[10]);
    // Quirk: moto skips a trust condition whose key the request does not carry, so AssumeRole
    // without an ExternalId passes (real AWS refuses it).
    ok(&r[11], "AssumeRole without an external id (moto allows it)", &server);
    // Quirk: body-less signed requests never pass moto's signature check.
    assert_eq!(r[12]["error"]["status"], 403, "ListDistributions with auth on: {}", r[12]);
    assert_eq!(error_code(&r[13]), "AccessDenied", "a role outside the assumer's Resource: {}", r[13]);

    let session = json!({
        "access_key_id": temporary["AccessKeyId"],
        "secret_access_key": temporary["SecretAccessKey"],
        "session_token": temporary["SessionToken"],
    });
    let mut tokenless = session.clone();
    tokenless.as_object_mut().unwrap().remove("session_token");
    let r = server.probe(&json!([
        call("ce", "GetCostAndUsage", ce_request("DAILY"), &session),
        call("sts", "GetCallerIdentity", json!({}), &session),
        call("ce", "GetCostAndUsage", ce_request("DAILY"), &tokenless),
    ]));
    assert_eq!(ok(&r[0], "CE with the role's temporary credentials", &server), &daily);
    let arn = ok(&r[1], "GetCallerIdentity", &server)["Arn"].as_str().unwrap().to_owned();
    assert_eq!(arn, "arn:aws:sts::123456789012:assumed-role/cdn-exporter/cdn-exporter-test");
    assert_eq!(error_code(&r[2]), "InvalidClientTokenId", "{}", r[2]);
}

#[test]
fn moto_auth_off_lists_distributions_and_takes_any_web_identity_token() {
    let Some(moto) = moto() else { return };
    let server = moto.start();
    let s = server.seed(&json!({"distributions": 3, "auth": false}));
    assert_eq!(s.distributions.len(), 3);
    assert_eq!(s.distributions[0].aliases, ["cdn0.example.test"]);
    assert!(s.distributions[1].aliases.is_empty());
    let anyone = json!({"access_key_id": "AKIAANYONE0000000000", "secret_access_key": "anything"});
    let r = server.probe(&json!([
        {"service": "cloudfront", "operation": "ListDistributions", "params": {}, "credentials": anyone},
        {"service": "sts", "operation": "AssumeRoleWithWebIdentity", "credentials": null, "params": {
            "RoleArn": s.roles["cdn-exporter-web"], "RoleSessionName": "irsa", "WebIdentityToken": "not-a-jwt"}},
    ]));
    let list = &ok(&r[0], "ListDistributions", &server)["DistributionList"];
    let listed: Vec<(String, String, Vec<String>)> = list["Items"]
        .as_array()
        .unwrap_or_else(|| panic!("no Items: {list}"))
        .iter()
        .map(|d| {
            let aliases = d["Aliases"]["Items"]
                .as_array()
                .map_or(vec![], |a| a.iter().map(|x| x.as_str().unwrap().to_owned()).collect::<Vec<_>>());
            (d["Id"].as_str().unwrap().to_owned(), d["DomainName"].as_str().unwrap().to_owned(), aliases)
        })
        .collect();
    let seeded: Vec<(String, String, Vec<String>)> =
        s.distributions.iter().map(|d| (d.id.clone(), d.domain_name.clone(), d.aliases.clone())).collect();
    assert_eq!(listed, seeded);
    assert!(seeded.iter().all(|(_, domain, _)| domain.ends_with(".cloudfront.net")), "{seeded:?}");
    let web = ok(&r[1], "AssumeRoleWithWebIdentity", &server);
    assert!(s.oidc_provider.starts_with("arn:aws:iam::123456789012:oidc-provider/"), "{}", s.oidc_provider);
    assert!(web["Credentials"]["AccessKeyId"].as_str().unwrap().starts_with("ASIA"), "{web}");
    assert_eq!(web["AssumedRoleUser"]["Arn"], "arn:aws:sts::123456789012:assumed-role/cdn-exporter-web/irsa");
}

#[test]
fn moto_server_is_gone_after_drop() {
    let Some(moto) = moto() else { return };
    let server = moto.start();
    let (pid, port) = (server.pid(), server.port);
    assert!(answers(port));
    drop(server);
    // Reaped, so the pid no longer exists (not even as a zombie) and the port is closed.
    assert!(!Path::new(&format!("/proc/{pid}")).exists(), "moto_server {pid} still there after drop");
    assert!(!answers(port), "port {port} still answers after drop");
}
