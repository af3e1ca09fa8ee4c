//! A real Prometheus over a TSDB built by promtool: backfill from OpenMetrics, backfill of
//! recording rules level by level (restarting Prometheus to load each level's blocks), queries.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Seconds after the hour at which values are read: the last second of the hour.
pub const READ_LAG: i64 = 3_599;

/// Prometheus on a loopback port, over `data`; stopped (and reaped) when dropped.
pub struct Prometheus {
    binary: PathBuf,
    dir: PathBuf,
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    http: reqwest::Client,
}

/// Runs a tool to completion; its output goes into the error when it fails.
pub fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let tail: String = said.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
    Err(format!("{cmd:?} failed ({}):\n{tail}", out.status))
}

/// Turns an OpenMetrics file into blocks in `data`. The hidden `--max-block-duration` of
/// promtool 2.42 makes ~60-day blocks instead of one per 2 hours (thousands for a year).
pub fn create_blocks(promtool: &Path, openmetrics: &Path, data: &Path) -> Result<(), String> {
    run(Command::new(promtool)
        .args(["tsdb", "create-blocks-from", "openmetrics", "--quiet", "--max-block-duration=1500h"])
        .arg(openmetrics)
        .arg(data))
}

impl Prometheus {
    /// Starts Prometheus over `dir/data` with no scrape targets and waits until it is ready.
    pub async fn start(binary: &Path, dir: &Path) -> Result<Prometheus, String> {
        std::fs::write(dir.join("prometheus.yml"), "scrape_configs: []\n").map_err(|e| format!("config: {e}"))?;
        let mut prom = Prometheus {
            binary: binary.to_owned(),
            dir: dir.to_owned(),
            child: None,
            base: String::new(),
            http: reqwest::Client::new(),
        };
        prom.spawn().await?;
        Ok(prom)
    }

    async fn spawn(&mut self) -> Result<(), String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("free port: {e}"))?
            .port();
        let log = std::fs::File::create(self.dir.join("prometheus.log")).map_err(|e| format!("log: {e}"))?;
        let child = Command::new(&self.binary)
            .arg(format!("--config.file={}", self.dir.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", self.dir.join("data").display()))
            .arg("--storage.tsdb.retention.time=100y")
            // promtool evaluates a rule group at a fixed offset into each interval (a hash of
            // the group's name and file), not on the hour: a 5-minute lookback would never see
            // the hourly samples. With 1 h, the history reads as a series updated hourly.
            .arg("--query.lookback-delta=1h")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("prometheus: {e}"))?;
        self.child = Some(child);
        self.base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = self.http.get(format!("{}/-/ready", self.base)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                return Err(format!("prometheus exited ({status}): {}", self.log()));
            }
            if Instant::now() > deadline {
                return Err(format!("prometheus not ready after 60 s: {}", self.log()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// Stops it with SIGTERM (so it closes its TSDB cleanly), SIGKILL after 30 s.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        if let Ok(pid) = libc::pid_t::try_from(child.id()) {
            // SAFETY: kill(2) on the pid of a child we have not reaped yet.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Backfills one level of recording rules over `[start, end]` (Unix seconds) at a 1-hour
    /// step from this Prometheus, then restarts it so that it serves the new blocks.
    pub async fn backfill_rules(
        &mut self,
        promtool: &Path,
        rules_yaml: &str,
        level: usize,
        start: i64,
        end: i64,
    ) -> Result<(), String> {
        // promtool evaluates a group at an offset into the hour hashed from the group's name
        // and file path as given. One relative path for every level: every level has the same
        // offset (a rule reads the lower level's value of the same instant), the same in every
        // run (a temporary directory's name would change it). A copy per level for reading.
        let file = self.dir.join("rules.yml");
        for path in [file.clone(), self.dir.join(format!("rules-{level}.yml"))] {
            std::fs::write(&path, rules_yaml).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        let out = self.dir.join(format!("blocks-{level}"));
        run(Command::new(promtool)
            .args([
                "tsdb",
                "create-blocks-from",
                "rules",
                "--quiet",
                "--eval-interval=1h",
                "--max-block-duration=1500h",
            ])
            .arg(format!("--start={start}"))
            .arg(format!("--end={end}"))
            .arg(format!("--url={}", self.base))
            .arg(format!("--output-dir={}", out.display()))
            .arg("rules.yml")
            .current_dir(&self.dir))?;
        self.stop();
        let data = self.dir.join("data");
        let entries = std::fs::read_dir(&out).map_err(|e| format!("{}: {e}", out.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("{}: {e}", out.display()))?;
            let to = data.join(entry.file_name());
            std::fs::rename(entry.path(), &to).map_err(|e| format!("{}: {e}", to.display()))?;
        }
        self.spawn().await
    }

    /// Seconds after the hour at which the recording rules were evaluated (promtool's group
    /// offset), from the timestamp of a recorded sample.
    pub async fn rule_offset(&self, record: &str, at: i64) -> Result<Option<i64>, String> {
        let expr = format!("max(timestamp({record}))");
        let found = self.range(&expr, at, at, 3_600).await?;
        Ok(found.values().flat_map(|v| v.values()).next().map(|t| (*t as i64).rem_euclid(3_600)))
    }

    /// `query_range` of `expr` from `start` to `end` (Unix seconds) every `step` seconds: each
    /// series' `account` label with its finite-or-not values by time, read at the end of the
    /// hour ([`READ_LAG`] later) and keyed by the hour. Rules evaluated at an offset into the
    /// hour are thus read once an hour, whatever the offset. Ranges of more than
    /// 10,000 steps are asked in pieces (Prometheus refuses over 11,000 points).
    pub async fn range(
        &self,
        expr: &str,
        start: i64,
        end: i64,
        step: i64,
    ) -> Result<BTreeMap<String, BTreeMap<i64, f64>>, String> {
        let mut out: BTreeMap<String, BTreeMap<i64, f64>> = BTreeMap::new();
        let mut from = start;
        while from <= end {
            let to = end.min(from + step * 10_000);
            let form = [
                ("query", expr.to_owned()),
                ("start", (from + READ_LAG).to_string()),
                ("end", (to + READ_LAG).to_string()),
                ("step", step.to_string()),
            ];
            let url = format!("{}/api/v1/query_range", self.base);
            let response = self.http.post(&url).form(&form).send().await.map_err(|e| format!("{url}: {e}"))?;
            let body = response.bytes().await.map_err(|e| format!("{url}: {e}"))?;
            let json: Value = serde_json::from_slice(&body).map_err(|e| format!("{url}: {e}"))?;
            if json["status"] != "success" {
                return Err(format!("{expr}: {json}"));
            }
            for series in json["data"]["result"].as_array().into_iter().flatten() {
                let account = series["metric"]["account"].as_str().unwrap_or_default().to_owned();
                let values = out.entry(account).or_default();
                for point in series["values"].as_array().into_iter().flatten() {
                    let t = point[0].as_f64().unwrap_or_default() as i64 - READ_LAG;
                    let v = match point[1].as_str().unwrap_or("NaN") {
                        "+Inf" => f64::INFINITY,
                        "-Inf" => f64::NEG_INFINITY,
                        s => s.parse().unwrap_or(f64::NAN),
                    };
                    values.insert(t, v);
                }
            }
            from = to + step;
        }
        Ok(out)
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.stop();
    }
}
