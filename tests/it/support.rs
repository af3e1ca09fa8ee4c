//! Test helpers: a label-aware exposition parser, bounded waiting, tool discovery, and a
//! simulator plus exporter started on loopback.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use cdn_usage_exporter::app::{self, Running};
use cdn_usage_exporter::config::Config;
use cdn_usage_exporter::providers::scaleengine::simulator::{SeAccount, VideoAppSpec};
use cdn_usage_exporter::simulator::{SimState, Simulator};

/// One parsed sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed scrape.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    pub series: Vec<Series>,
    pub types: BTreeMap<String, String>,
}

impl Scrape {
    /// Parses Prometheus text format, unescaping label values; panics on a malformed line.
    pub fn parse(text: &str) -> Scrape {
        let mut scrape = Scrape::default();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut parts = rest.splitn(2, ' ');
                let name = parts.next().unwrap_or_default().to_owned();
                scrape.types.insert(name, parts.next().unwrap_or_default().to_owned());
                continue;
            }
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            scrape.series.push(parse_line(line).unwrap_or_else(|| panic!("malformed exposition line: {line:?}")));
        }
        scrape
    }

    /// Every series of `name` whose labels include all of `labels`.
    pub fn all(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Series> {
        self.series
            .iter()
            .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
            .collect()
    }

    /// The value of the one series of `name` matching `labels`; `None` if there is none,
    /// a panic if there are several.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let found = self.all(name, labels);
        assert!(found.len() <= 1, "{name}{labels:?} matches {} series", found.len());
        found.first().map(|s| s.value)
    }

    /// Like [`Scrape::get`], but the series must exist.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or_else(|| panic!("no series {name}{labels:?}"))
    }
}

fn parse_line(line: &str) -> Option<Series> {
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_owned();
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(after) = rest.strip_prefix('{') {
        let mut chars = after.char_indices().peekable();
        let end;
        loop {
            // label name
            let (start, c) = chars.next()?;
            if c == '}' {
                end = start + 1;
                break;
            }
            let mut key = String::from(c);
            loop {
                let (_, c) = chars.next()?;
                if c == '=' {
                    break;
                }
                key.push(c);
            }
            if chars.next()?.1 != '"' {
                return None;
            }
            let mut value = String::new();
            loop {
                let (_, c) = chars.next()?;
                match c {
                    '\\' => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    '"' => break,
                    c => value.push(c),
                }
            }
            labels.insert(key, value);
            match chars.next()? {
                (_, ',') => {}
                (i, '}') => {
                    end = i + 1;
                    break;
                }
                _ => return None,
            }
        }
        rest = &after[end..];
    }
    let value_text = rest.trim().split(' ').next()?;
    let value = match value_text {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().ok()?,
    };
    Some(Series { name, labels, value })
}

/// Polls `check` every 20 ms until it returns `Some`, or panics after `timeout` naming `what`.
pub async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Each provider's simulator part, for [`SimState::builder`](cdn_usage_exporter::simulator::SimState::builder).
pub use cdn_usage_exporter::providers::bunny::simulator::part as bunny_part;
pub use cdn_usage_exporter::providers::cdnetworks::simulator::part as cdn_part;
pub use cdn_usage_exporter::providers::fastly::simulator::part as fastly_part;
pub use cdn_usage_exporter::providers::scaleengine::simulator::part as se_part;

/// Finds an outside tool. Without it the test is skipped with a notice, unless
/// `CDN_EXPORTER_REQUIRE_TOOLS=1`, under which a missing tool fails the test.
pub fn require_tool(name: &str) -> Option<std::path::PathBuf> {
    let found = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|p| p.join(name)).find(|p| p.is_file()));
    if found.is_none() {
        let required = std::env::var("CDN_EXPORTER_REQUIRE_TOOLS").is_ok_and(|v| v == "1");
        assert!(!required, "{name} is not installed and CDN_EXPORTER_REQUIRE_TOOLS=1");
        eprintln!("SKIPPED: {name} is not installed (CI installs it; see .ci/run)");
    }
    found
}

pub const KEY: &str = "TESTKEY0000000000000000000000001";
pub const SECRET: &str = "test-secret-ab/cd+é";

/// Jobs of a ScaleEngine account with video apps (`account_toml`): usage.summary,
/// usage.billing.live, usage.billing (last month), disk.usage, video.usage.
pub const SE_JOBS: usize = 5;

/// A simulated account with small, fast data.
pub fn sim_account() -> SeAccount {
    SeAccount {
        cdn: 4242,
        api_key: KEY.into(),
        api_secret: SECRET.into(),
        monthly_edge_gb: 1_000.0,
        users: vec![],
        video_apps: vec![
            VideoAppSpec { name: "live".into(), urls: 3 },
            VideoAppSpec { name: "vod/è".into(), urls: 2_345 },
        ],
    }
}

/// TOML for one account against `base_url`, polling every `interval`.
pub fn account_toml(name: &str, base_url: &str, interval: &str) -> String {
    format!(
        r#"
[[scaleengine]]
name = "{name}"
cdn = 4242
api_key = "{KEY}"
api_secret = "{SECRET}"
base_url = "{base_url}"
summary_interval = "{interval}"
billing_interval = "{interval}"
last_month_interval = "{interval}"
disk_interval = "{interval}"
video_interval = "{interval}"
timeout = "2s"
video_apps = ["live", "vod/è"]
video_top_n = 5
budget_usd = 123.5
"#
    )
}

/// A simulator and an exporter wired to it.
pub struct Harness {
    pub sim: Simulator,
    pub exporter: Running,
    pub http: reqwest::Client,
}

impl Harness {
    /// Starts both on loopback port 0, polling every `interval`.
    pub async fn start(interval: &str) -> Harness {
        Self::start_with(interval, "").await
    }

    /// [`Harness::start`] with more keys (`extra`) for the account's table.
    pub async fn start_with(interval: &str, extra: &str) -> Harness {
        let sim = Simulator::start(loopback(), SimState::builder().with(se_part(vec![sim_account()])).build())
            .await
            .expect("simulator starts");
        let toml = account_toml("main", &sim.scaleengine_url(), interval) + extra;
        let config = Config::from_toml_str(&toml, "test").expect("valid config");
        let exporter = app::start(&config, loopback()).await.expect("exporter starts");
        Harness { sim, exporter, http: reqwest::Client::new() }
    }

    pub async fn scrape(&self) -> Scrape {
        Scrape::parse(&self.metrics_text().await)
    }

    pub async fn metrics_text(&self) -> String {
        let url = format!("http://{}/metrics", self.exporter.addr);
        self.http.get(url).send().await.expect("scrape answers").text().await.expect("text body")
    }

    /// Waits until every job of account `main` has succeeded at least once.
    pub async fn wait_all_up(&self) -> Scrape {
        wait_for(Duration::from_secs(10), "every job up", || async {
            let s = self.scrape().await;
            let up = s.all("cdn_exporter_poll_up", &[("account", "main")]);
            (up.len() == SE_JOBS && up.iter().all(|x| x.value == 1.0)).then_some(s)
        })
        .await
    }

    pub async fn stop(self) {
        self.exporter.stop().await;
        self.sim.stop().await;
    }
}

/// A child process killed and reaped on drop, so that a failing test leaves nothing running.
pub struct Kill(pub std::process::Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cdn-usage-exporter demo` on a free loopback port; returns it with its /metrics URL.
pub fn start_demo() -> (Kill, String) {
    use std::io::BufRead as _;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cdn-usage-exporter"))
        .args(["demo", "--web.listen-address", "127.0.0.1:0", "--log.level", "warn"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("demo starts");
    let stdout = child.stdout.take().expect("stdout");
    let demo = Kill(child);
    let mut line = String::new();
    std::io::BufReader::new(stdout).read_line(&mut line).expect("demo prints its URL");
    let url = line
        .split_whitespace()
        .find(|w| w.ends_with("/metrics"))
        .unwrap_or_else(|| panic!("no /metrics URL in {line:?}"))
        .to_owned();
    (demo, url)
}

/// Runs `promtool check metrics` on `body` and asserts it has nothing to say.
pub fn assert_promtool_silent(promtool: &std::path::Path, body: &str) {
    use std::io::Write as _;
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool runs");
    child.stdin.take().expect("stdin").write_all(body.as_bytes()).expect("promtool reads");
    let out = child.wait_with_output().expect("promtool ends");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "promtool check metrics: {said}");
}

pub fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

#[test]
fn parser_reads_escaped_labels() {
    let s = Scrape::parse("# TYPE m gauge\nm{a=\"x\\\"y\",b=\"1,2}\"} 3.5\nn 1\n");
    assert_eq!(s.value("m", &[("a", "x\"y"), ("b", "1,2}")]), 3.5);
    assert_eq!(s.value("n", &[]), 1.0);
    assert_eq!(s.types["m"], "gauge");
}

/// How to start the exporter binary ([`Binary::start`]): arguments after `--config FILE
/// --web.listen-address 127.0.0.1:0`, environment to set or remove, an open-files limit.
#[derive(Debug, Default)]
pub struct Launch<'a> {
    pub args: Vec<&'a str>,
    pub env: Vec<(&'a str, &'a str)>,
    pub env_remove: Vec<&'a str>,
    pub nofile: Option<u64>,
}

/// The exporter binary as a child process, killed when dropped. Its stderr is kept line by line
/// as raw lines (split on `\n` only, so a forged line would show as a line of its own).
pub struct Binary {
    pub child: std::process::Child,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Binary {
    /// Starts the binary on `config`; returns once it is spawned (see [`Binary::addr`]).
    pub fn start(config: &std::path::Path, launch: Launch<'_>) -> Binary {
        use std::io::{BufRead as _, BufReader};
        use std::process::{Command, Stdio};
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cdn-usage-exporter"));
        cmd.args(["--config", config.to_str().unwrap(), "--web.listen-address", "127.0.0.1:0"])
            .args(&launch.args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for k in &launch.env_remove {
            cmd.env_remove(k);
        }
        for (k, v) in &launch.env {
            cmd.env(k, v);
        }
        if let Some(n) = launch.nofile {
            use std::os::unix::process::CommandExt as _;
            // SAFETY: setrlimit is async-signal-safe; between fork and exec it only sets a limit.
            unsafe {
                cmd.pre_exec(move || {
                    let limit = libc::rlimit { rlim_cur: n as libc::rlim_t, rlim_max: n as libc::rlim_t };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        let mut child = cmd.spawn().expect("exporter starts");
        let stderr = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).split(b'\n').map_while(Result::ok) {
                sink.lock().unwrap().push(String::from_utf8_lossy(&line).into_owned());
            }
        });
        Binary { child, log }
    }

    /// The address it serves on, from its `Serving /metrics` line (waits up to 30 s for it).
    pub fn addr(&self) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let found = self.log_lines().iter().find(|l| l.contains("Serving /metrics")).and_then(|l| {
                l.split("addr=").nth(1).map(|a| a.split_whitespace().next().unwrap_or_default().to_owned())
            });
            if let Some(addr) = found {
                return addr;
            }
            assert!(std::time::Instant::now() < deadline, "the exporter logs its address:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every line of its log so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Its log so far, each line ending in `\n`.
    pub fn log(&self) -> String {
        self.log_lines().iter().map(|l| format!("{l}\n")).collect()
    }

    /// Sends it a signal by name (`HUP`, `TERM`).
    pub fn signal(&self, name: &str) {
        let pid = self.child.id().to_string();
        let ok = std::process::Command::new("kill").args([&format!("-{name}"), &pid]).status().unwrap();
        assert!(ok.success(), "kill -{name}");
    }

    /// A number field of its `/proc/PID/status` (`VmHWM:`, `VmRSS:`), in the unit shown (kB).
    pub fn status_field(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("/proc status");
        let line = status.lines().find(|l| l.starts_with(field)).unwrap_or_else(|| panic!("no {field}"));
        line[field.len()..].split_whitespace().next().unwrap().parse().unwrap()
    }

    /// Its log once `what` appears in it `count` times.
    pub async fn wait_log(&self, what: &str, count: usize) -> String {
        wait_for(Duration::from_secs(20), what, || {
            let log = self.log();
            async move { (log.matches(what).count() >= count).then_some(log) }
        })
        .await
    }
}

/// `name` on the PATH, if there.
pub fn on_path(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| std::env::split_paths(&paths).map(|p| p.join(name)).find(|p| p.is_file()))
}

/// Whether `program args` runs and succeeds (its output discarded).
pub fn run_ok(program: &std::path::Path, args: &[&str]) -> bool {
    std::process::Command::new(program)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// pyenv's Python 3 interpreters (`$PYENV_ROOT`, else `~/.pyenv`) whose minor version `keep`
/// accepts, newest first.
pub fn pyenv_pythons(keep: impl Fn(u32) -> bool) -> Vec<std::path::PathBuf> {
    let pyenv = std::env::var_os("PYENV_ROOT")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".pyenv")));
    let versions = pyenv.map(|p| p.join("versions")).unwrap_or_default();
    let Ok(entries) = std::fs::read_dir(&versions) else { return Vec::new() };
    let mut found: Vec<((u32, u32), String)> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|name| {
            let mut parts = name.split('.');
            let (major, minor, patch) = (parts.next()?, parts.next()?, parts.next()?);
            (major == "3").then_some(())?;
            Some(((minor.parse().ok()?, patch.parse().ok()?), name))
        })
        .filter(|((minor, _), _)| keep(*minor))
        .collect();
    found.sort();
    found.into_iter().rev().map(|(_, name)| versions.join(name).join("bin/python3")).collect()
}

/// The first of `candidates` that runs `check` (Python printing `True`). pyenv's shims exist
/// for every installed version but fail unless that version is selected: only running the
/// candidate tells.
pub fn first_python(candidates: Vec<std::path::PathBuf>, check: &str) -> Option<std::path::PathBuf> {
    candidates.into_iter().find(|p| {
        std::process::Command::new(p)
            .args(["-c", check])
            .stderr(std::process::Stdio::null())
            .output()
            .is_ok_and(|o| o.status.success() && o.stdout.starts_with(b"True"))
    })
}

/// Collects backfill samples by timestamp.
#[derive(Default)]
pub struct Collect(pub std::collections::BTreeMap<i64, Vec<cdn_usage_exporter::job::Sample>>);

impl cdn_usage_exporter::providers::SampleSink for Collect {
    fn write(
        &mut self,
        samples: &[cdn_usage_exporter::job::Sample],
        timestamp: i64,
    ) -> Result<(), cdn_usage_exporter::providers::SinkError> {
        self.0.entry(timestamp).or_default().extend_from_slice(samples);
        Ok(())
    }
}

/// `None` after a `SKIPPED: <tool>: <why>` notice (with `hint`), or a panic under
/// `CDN_EXPORTER_REQUIRE_TOOLS=1`, where a missing tool fails the test.
pub fn skip_tool<T>(tool: &str, why: &str, hint: &str) -> Option<T> {
    let required = std::env::var("CDN_EXPORTER_REQUIRE_TOOLS").is_ok_and(|v| v == "1");
    assert!(!required, "{tool}: {why} and CDN_EXPORTER_REQUIRE_TOOLS=1");
    eprintln!("SKIPPED: {tool}: {why} ({hint})");
    None
}

/// Runs `command` (stdin closed unless `input` is given) to the end, or kills and reaps it after
/// `timeout`; returns its status, stdout and stderr.
pub fn run_input(
    mut command: std::process::Command,
    input: Option<&[u8]>,
    timeout: Duration,
) -> Result<(std::process::ExitStatus, String, String), String> {
    command.stdin(if input.is_some() { std::process::Stdio::piped() } else { std::process::Stdio::null() });
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("did not start: {e}"))?;
    let drain = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = std::io::Read::read_to_end(&mut pipe, &mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("stdout")));
    let err = drain(Box::new(child.stderr.take().expect("stderr")));
    if let Some(input) = input {
        let mut stdin = child.stdin.take().expect("stdin");
        let input = input.to_vec();
        // A writer thread, so that a child that does not read cannot block us past the timeout.
        std::thread::spawn(move || {
            let _ = std::io::Write::write_all(&mut stdin, &input);
        });
    }
    let deadline = std::time::Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| format!("wait: {e}"))? {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("ran over {timeout:?} and was killed"));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok((status, out.join().expect("stdout reader"), err.join().expect("stderr reader")))
}
