//! Configuration: defaults < TOML file < environment (`CDN_EXPORTER_*`), merged by figment,
//! then validated field by field so that every problem is reported at once, each with its
//! field path and how to fix it.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde_json::Value;

use crate::providers::scaleengine;
use crate::secret::Secret;

/// Prefix of environment variables that override top-level settings.
pub const ENV_PREFIX: &str = "CDN_EXPORTER_";

/// The default port (unassigned in the Prometheus default port allocations list).
pub const DEFAULT_PORT: u16 = 9862;

/// Top-level keys that may come from the environment (`CDN_EXPORTER_LISTEN_ADDRESS`, …).
pub const ENV_KEYS: &[&str] = &[
    "listen_address",
    "log_level",
    "log_format",
    "max_in_flight",
    "max_in_flight_per_provider",
    "retries",
    "max_series",
];

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (logfmt-like).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The whole validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `listen_address`: where `/metrics` is served, if set in the file or environment.
    pub listen_address: Option<SocketAddr>,
    /// `log_level`: a level or an `EnvFilter` directive.
    pub log_level: Option<String>,
    /// `log_format`: `text` or `json`.
    pub log_format: Option<LogFormat>,
    /// `[[scaleengine]]` accounts.
    pub scaleengine: Vec<ScaleEngineAccount>,
    /// `[[cdnetworks]]` accounts.
    pub cdnetworks: Vec<CdnetworksAccount>,
    /// Limits on upstream requests and on the series served.
    pub limits: Limits,
}

/// Top-level limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `max_in_flight` (default 32): upstream requests in flight, all providers together.
    pub max_in_flight: usize,
    /// `max_in_flight_per_provider` (default 8): upstream requests in flight per provider.
    pub max_in_flight_per_provider: usize,
    /// `retries` (default 2): retries of a failed request that may succeed on a retry.
    pub retries: u32,
    /// `max_series` (default 50000): series served; new series past it are dropped.
    pub max_series: usize,
    /// `[answer_limits]`: bounds on what one provider answer may hold.
    pub answers: AnswerLimits,
}

/// `[answer_limits]`: the most a provider answer may hold. An answer past a bound is a failed
/// poll (`reason="parse"`) that keeps the last good values; docs/security.md lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnswerLimits {
    /// `summary_bytes` (default 1 MiB): one `usage.summary` answer.
    pub summary_bytes: usize,
    /// `billing_bytes` (default 1 MiB): one `usage.billing.live` answer.
    pub billing_bytes: usize,
    /// `disk_bytes` (default 1 MiB): one `disk.usage` answer.
    pub disk_bytes: usize,
    /// `video_page_bytes` (default 4 MiB): one `video.usage` page.
    pub video_page_bytes: usize,
    /// `domain_usage_bytes` (default 4 MiB): one CDNetworks `domain-usage` answer.
    pub domain_usage_bytes: usize,
    /// `table_rows` (default 1000): rows of a `usage.summary` or `usage.billing.live` table.
    pub table_rows: usize,
    /// `page_entries` (default 10000): entries of one `disk.usage` answer, `video.usage` page or
    /// `domain-usage` answer.
    pub page_entries: usize,
    /// `video_pages` (default 100): `video.usage` pages read in one poll, all apps together.
    pub video_pages: usize,
}

impl Default for AnswerLimits {
    fn default() -> Self {
        AnswerLimits {
            summary_bytes: 1 << 20,
            billing_bytes: 1 << 20,
            disk_bytes: 1 << 20,
            video_page_bytes: 4 << 20,
            domain_usage_bytes: 4 << 20,
            table_rows: 1000,
            page_entries: 10_000,
            video_pages: 100,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_in_flight: 32,
            max_in_flight_per_provider: 8,
            retries: 2,
            max_series: crate::store::DEFAULT_MAX_SERIES,
            answers: AnswerLimits::default(),
        }
    }
}

/// How a CDNetworks account signs its requests.
#[derive(Debug, Clone, PartialEq)]
pub enum CdnetworksAuth {
    /// The domain-usage doc's scheme: HTTP Basic with an HMAC-SHA1 of the `Date` header.
    ApiKey {
        /// `username`.
        username: String,
        /// `api_key` (or `_env`, `_file`).
        api_key: Secret,
    },
    /// The vendor SDK's scheme: CNC-HMAC-SHA256.
    AkSk {
        /// `access_key` (or `_env`, `_file`).
        access_key: Secret,
        /// `secret_key` (or `_env`, `_file`).
        secret_key: Secret,
    },
}

/// Granularity of the storage series asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    /// `h`: hourly points.
    Hourly,
    /// `d`: daily points.
    Daily,
}

impl Granularity {
    /// The `type` field of the request.
    pub fn as_str(self) -> &'static str {
        match self {
            Granularity::Hourly => "h",
            Granularity::Daily => "d",
        }
    }
}

/// One `{ domain, contract }` of a CDNetworks account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CdnetworksDomain {
    /// The domain.
    pub domain: String,
    /// The contract it belongs to.
    pub contract: String,
}

/// One `[[cdnetworks]]` account.
#[derive(Debug, Clone, PartialEq)]
pub struct CdnetworksAccount {
    /// `name` (required): the `account` label.
    pub name: String,
    /// Where it sits in the file (`cdnetworks[0]`), for error messages.
    pub path: String,
    /// `base_url` (default `https://api.cdnetworks.com`).
    pub base_url: String,
    /// `username` + `api_key`, or `access_key` + `secret_key`.
    pub auth: CdnetworksAuth,
    /// `time_zone` (default `GMT+09:00`), sent as `X-Time-Zone`.
    pub time_zone: String,
    /// The zone's offset from UTC, in seconds.
    pub utc_offset: i64,
    /// `granularity`: `h` (default) or `d`.
    pub granularity: Granularity,
    /// `domains` (required, at least one).
    pub domains: Vec<CdnetworksDomain>,
    /// `interval` (default 1h).
    pub interval: Duration,
    /// `timeout` (default 30s): per request.
    pub timeout: Duration,
    /// `max_age` (default 3 × interval): samples older than this leave `/metrics`.
    pub max_age: Option<Duration>,
}

/// A video app named by id or by name (`video_apps = ["live", 42]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoApp {
    /// A numeric application id.
    Id(i64),
    /// An application name.
    Name(String),
}

impl fmt::Display for VideoApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VideoApp::Id(id) => write!(f, "{id}"),
            VideoApp::Name(name) => f.write_str(name),
        }
    }
}

/// One `[[scaleengine]]` account.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaleEngineAccount {
    /// `name` (required): the `account` label.
    pub name: String,
    /// `cdn` (required): the ScaleEngine CDN id.
    pub cdn: i64,
    /// `api_key`, `api_key_env` or `api_key_file` (one required).
    pub api_key: Secret,
    /// `api_secret`, `api_secret_env` or `api_secret_file` (one required).
    pub api_secret: Secret,
    /// `base_url` (default the public endpoint).
    pub base_url: String,
    /// `timeout` (default 30s): per request.
    pub timeout: Duration,
    /// `summary_interval` (default 15m).
    pub summary_interval: Duration,
    /// `billing_interval` (default 15m).
    pub billing_interval: Duration,
    /// `disk_interval` (default 1h).
    pub disk_interval: Duration,
    /// `video_interval` (default 1h).
    pub video_interval: Duration,
    /// `video_apps` (default none: no video job).
    pub video_apps: Vec<VideoApp>,
    /// `video_top_n` (default 20): URLs kept per app.
    pub video_top_n: usize,
    /// `budget_usd` (optional): exported as `cdn_billing_budget_usd`.
    pub budget_usd: Option<f64>,
    /// `max_age` (default: 3 × each endpoint's interval): samples older than this leave `/metrics`.
    pub max_age: Option<Duration>,
}

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where: `scaleengine[1].api_secret`.
    pub path: String,
    /// What is wrong, and how to fix it.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found in a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// Where the configuration came from, for the message.
    pub source_name: String,
    /// The problems, in the order found.
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(f, "the configuration in {} has {n} problem{}:", self.source_name, if n == 1 { "" } else { "s" })?;
        for p in &self.problems {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

impl Config {
    /// Loads and validates the file at `path`, with environment overrides.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let source_name = path.display().to_string();
        if !path.is_file() {
            return Err(ConfigError {
                source_name,
                problems: vec![Problem {
                    path: "--config".into(),
                    message: format!(
                        "no file at {}. Pass the path of a TOML file (see deploy/config.example.toml).",
                        path.display()
                    ),
                }],
            });
        }
        Self::from_figment(Figment::new().merge(Toml::file_exact(path)).merge(env_provider()), &source_name)
    }

    /// Loads and validates TOML text, with environment overrides (used by `demo` and tests).
    pub fn from_toml_str(toml: &str, source_name: &str) -> Result<Config, ConfigError> {
        Self::from_figment(Figment::new().merge(Toml::string(toml)).merge(env_provider()), source_name)
    }

    /// Validates whatever `figment` holds.
    pub fn from_figment(figment: Figment, source_name: &str) -> Result<Config, ConfigError> {
        let fail = |message: String| ConfigError {
            source_name: source_name.to_owned(),
            problems: vec![Problem { path: "(file)".into(), message }],
        };
        let root: Value = figment.extract().map_err(|e| fail(format!("{e}. Fix the TOML syntax.")))?;
        let mut v = Validator::default();
        let config = v.root(&root);
        match config {
            Some(c) if v.problems.is_empty() => Ok(c),
            _ => Err(ConfigError { source_name: source_name.to_owned(), problems: v.problems }),
        }
    }

    /// Number of accounts of every provider.
    pub fn account_count(&self) -> usize {
        self.scaleengine.len() + self.cdnetworks.len()
    }
}

fn env_provider() -> Env {
    Env::prefixed(ENV_PREFIX).only(ENV_KEYS)
}

#[derive(Default)]
struct Validator {
    problems: Vec<Problem>,
}

/// A table's fields, taken one by one; whatever is left at the end is unknown.
struct Table<'a> {
    path: String,
    fields: BTreeMap<&'a str, &'a Value>,
    /// Every key asked for: the known keys, for suggestions.
    known: Vec<String>,
}

impl<'a> Table<'a> {
    fn take(&mut self, key: &str) -> Option<&'a Value> {
        self.known.push(key.to_owned());
        self.fields.remove(key)
    }

    fn has(&mut self, key: &str) -> bool {
        self.known.push(key.to_owned());
        self.fields.contains_key(key)
    }
}

impl Validator {
    fn problem(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem { path: path.into(), message: message.into() });
    }

    fn table<'a>(&mut self, path: String, value: &'a Value) -> Option<Table<'a>> {
        match value {
            Value::Object(map) => {
                Some(Table { path, fields: map.iter().map(|(k, v)| (k.as_str(), v)).collect(), known: Vec::new() })
            }
            _ => {
                self.problem(path, format!("expected a table, found {}. Write it as a TOML table.", kind(value)));
                None
            }
        }
    }

    /// Reports the keys nobody took, with a suggestion among those that were asked for.
    fn unknown(&mut self, table: Table<'_>) {
        let mut known: Vec<&str> = Vec::new();
        for k in &table.known {
            if !known.contains(&k.as_str()) {
                known.push(k);
            }
        }
        for key in table.fields.keys() {
            let hint = closest(key, &known)
                .map(|k| format!("Did you mean `{k}`?"))
                .unwrap_or_else(|| format!("Known keys: {}.", known.join(", ")));
            self.problem(join(&table.path, key), format!("unknown key. {hint}"));
        }
    }

    fn string(&mut self, t: &mut Table<'_>, key: &str) -> Option<String> {
        let v = t.take(key)?;
        match v {
            Value::String(s) => Some(s.clone()),
            other => {
                self.problem(join(&t.path, key), format!("expected a string, found {}. Quote it.", kind(other)));
                None
            }
        }
    }

    fn integer(&mut self, t: &mut Table<'_>, key: &str, min: i64, max: i64) -> Option<i64> {
        let v = t.take(key)?;
        match v.as_i64() {
            Some(n) if (min..=max).contains(&n) => Some(n),
            Some(n) => {
                self.problem(
                    join(&t.path, key),
                    format!("{n} is out of range. Use a whole number from {min} to {max}."),
                );
                None
            }
            None => {
                self.problem(
                    join(&t.path, key),
                    format!(
                        "expected a whole number, found {}. Write it without quotes, e.g. `{key} = {min}`.",
                        kind(v)
                    ),
                );
                None
            }
        }
    }

    fn number(&mut self, t: &mut Table<'_>, key: &str) -> Option<f64> {
        let v = t.take(key)?;
        match v.as_f64() {
            Some(n) if n.is_finite() && n >= 0.0 => Some(n),
            _ => {
                self.problem(join(&t.path, key), format!("expected a number of at least 0, found {}.", show(v)));
                None
            }
        }
    }

    fn duration(&mut self, t: &mut Table<'_>, key: &str, default: Duration) -> Option<Duration> {
        let Some(v) = t.take(key) else {
            return Some(default);
        };
        let parsed = match v {
            Value::String(s) => humantime::parse_duration(s.trim()).ok(),
            Value::Number(n) => n.as_u64().map(Duration::from_secs),
            _ => None,
        };
        match parsed {
            Some(d) if d >= Duration::from_secs(1) && d <= Duration::from_secs(31 * 86_400) => Some(d),
            Some(_) => {
                self.problem(
                    join(&t.path, key),
                    format!("{} is out of range. Use a duration from 1s to 31d.", show(v)),
                );
                None
            }
            None => {
                self.problem(
                    join(&t.path, key),
                    format!("{} is not a duration. Write it like \"90s\", \"15m\" or \"1h\".", show(v)),
                );
                None
            }
        }
    }

    /// A duration that may be absent: `Some(None)` when absent, `None` after a problem.
    fn optional_duration(&mut self, t: &mut Table<'_>, key: &str) -> Option<Option<Duration>> {
        if !t.has(key) {
            return Some(None);
        }
        self.duration(t, key, Duration::ZERO).map(Some)
    }

    /// `key`, `key_env` or `key_file`: exactly one, resolved now.
    fn secret(&mut self, t: &mut Table<'_>, key: &str) -> Option<Secret> {
        match self.secret_opt(t, key) {
            Ok(Some(s)) => Some(s),
            Ok(None) => {
                self.problem(
                    join(&t.path, key),
                    format!("missing. Set exactly one of {key}, {key}_env or {key}_file."),
                );
                None
            }
            Err(()) => None,
        }
    }

    /// `key`, `key_env` or `key_file`: at most one. `Ok(None)` when none is given, `Err` when a
    /// problem was recorded.
    fn secret_opt(&mut self, t: &mut Table<'_>, key: &str) -> Result<Option<Secret>, ()> {
        let env_key = format!("{key}_env");
        let file_key = format!("{key}_file");
        let before = self.problems.len();
        let inline = self.string(t, key);
        let env = self.string(t, &env_key);
        let file = self.string(t, &file_key);
        if self.problems.len() > before {
            return Err(());
        }
        let path = join(&t.path, key);
        let given = [inline.is_some(), env.is_some(), file.is_some()].iter().filter(|b| **b).count();
        if given > 1 {
            self.problem(path, format!("given more than once. Set exactly one of {key}, {env_key} or {file_key}."));
            return Err(());
        }
        let value = if let Some(v) = inline {
            v
        } else if let Some(var) = env {
            match std::env::var(&var) {
                Ok(v) => v,
                Err(_) => {
                    self.problem(
                        join(&t.path, &env_key),
                        format!("environment variable {var} is not set. Export it, or name another variable."),
                    );
                    return Err(());
                }
            }
        } else if let Some(file) = file {
            match std::fs::read_to_string(&file) {
                Ok(v) => v,
                Err(e) => {
                    self.problem(
                        join(&t.path, &file_key),
                        format!("cannot read {file}: {e}. Check the path and its permissions."),
                    );
                    return Err(());
                }
            }
        } else {
            return Ok(None);
        };
        let value = value.trim();
        if value.is_empty() {
            self.problem(path, "is empty. Give the credential from the provider's control panel.");
            return Err(());
        }
        Ok(Some(Secret::new(value)))
    }

    fn root(&mut self, root: &Value) -> Option<Config> {
        let mut t = self.table(String::new(), root)?;
        let listen_address = self.string(&mut t, "listen_address").and_then(|s| match s.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.problem(
                    "listen_address",
                    format!("{s:?} is not an address. Write it as host:port, e.g. \"0.0.0.0:{DEFAULT_PORT}\"."),
                );
                None
            }
        });
        let log_level = self.string(&mut t, "log_level");
        let log_format = self.string(&mut t, "log_format").and_then(|s| match s.as_str() {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => {
                self.problem("log_format", format!("{s:?} is not a log format. Use \"text\" or \"json\"."));
                None
            }
        });
        let d = Limits::default();
        let max_in_flight = self.integer(&mut t, "max_in_flight", 1, 10_000).map_or(d.max_in_flight, |n| n as usize);
        let max_in_flight_per_provider = self
            .integer(&mut t, "max_in_flight_per_provider", 1, 10_000)
            .map_or(d.max_in_flight_per_provider, |n| n as usize);
        let retries = self.integer(&mut t, "retries", 0, 10).map_or(d.retries, |n| n as u32);
        let max_series = self.integer(&mut t, "max_series", 1, 100_000_000).map_or(d.max_series, |n| n as usize);
        let answers = self.answer_limits(&mut t);
        let limits = Limits { max_in_flight, max_in_flight_per_provider, retries, max_series, answers };
        let scaleengine = self.accounts(&mut t, "scaleengine", Self::scaleengine);
        let cdnetworks = self.accounts(&mut t, "cdnetworks", Self::cdnetworks);
        self.unknown(t);
        let config = Config { listen_address, log_level, log_format, scaleengine, cdnetworks, limits };
        if config.account_count() == 0 && self.problems.is_empty() {
            self.problem(
                "scaleengine",
                "no account is configured. Add a [[scaleengine]] or [[cdnetworks]] table (see deploy/config.example.toml).",
            );
        }
        Some(config)
    }

    /// An array of account tables under `key`, each validated by `one`; names must be unique.
    /// `[answer_limits]`: each key optional, each a whole number in a range that keeps the
    /// exporter useful (an answer of a few KiB at least) and bounded (1 GiB at most).
    fn answer_limits(&mut self, root: &mut Table<'_>) -> AnswerLimits {
        let d = AnswerLimits::default();
        let Some(value) = root.take("answer_limits") else {
            return d;
        };
        let Some(mut t) = self.table("answer_limits".into(), value) else {
            return d;
        };
        let mut bytes = |v: &mut Self, key: &str, default: usize| {
            v.integer(&mut t, key, 4096, 1 << 30).map_or(default, |n| n as usize)
        };
        let summary_bytes = bytes(self, "summary_bytes", d.summary_bytes);
        let billing_bytes = bytes(self, "billing_bytes", d.billing_bytes);
        let disk_bytes = bytes(self, "disk_bytes", d.disk_bytes);
        let video_page_bytes = bytes(self, "video_page_bytes", d.video_page_bytes);
        let domain_usage_bytes = bytes(self, "domain_usage_bytes", d.domain_usage_bytes);
        let table_rows = self.integer(&mut t, "table_rows", 1, 1_000_000).map_or(d.table_rows, |n| n as usize);
        let page_entries = self.integer(&mut t, "page_entries", 1, 1_000_000).map_or(d.page_entries, |n| n as usize);
        let video_pages = self.integer(&mut t, "video_pages", 1, 100_000).map_or(d.video_pages, |n| n as usize);
        self.unknown(t);
        AnswerLimits {
            summary_bytes,
            billing_bytes,
            disk_bytes,
            video_page_bytes,
            domain_usage_bytes,
            table_rows,
            page_entries,
            video_pages,
        }
    }

    fn accounts<T>(&mut self, t: &mut Table<'_>, key: &str, one: fn(&mut Self, usize, &Value) -> Option<T>) -> Vec<T> {
        let mut accounts = Vec::new();
        match t.take(key) {
            None => {}
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    if let Some(a) = one(self, i, item) {
                        accounts.push(a);
                    }
                }
                // Names of invalid accounts count too: a clash is a problem of its own.
                let names = items.iter().map(|a| a.get("name").and_then(Value::as_str).unwrap_or_default());
                self.unique_names(key, names);
            }
            Some(other) => self.problem(
                key,
                format!("expected an array of tables, found {}. Write each account as [[{key}]].", kind(other)),
            ),
        }
        accounts
    }

    fn unique_names<'a>(&mut self, provider: &str, names: impl Iterator<Item = &'a str>) {
        let mut first: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, name) in names.enumerate() {
            if name.is_empty() {
                continue;
            }
            if let Some(j) = first.get(name) {
                self.problem(
                    format!("{provider}[{i}].name"),
                    format!("{name:?} is already the name of {provider}[{j}]. Give every account its own name."),
                );
            } else {
                first.insert(name, i);
            }
        }
    }

    fn name(&mut self, t: &mut Table<'_>) -> Option<String> {
        let path = join(&t.path, "name");
        match self.string(t, "name") {
            None if !self.problems.iter().any(|p| p.path == path) => {
                self.problem(path, "missing. Name the account; the name becomes the `account` label.");
                None
            }
            None => None,
            Some(n) if n.trim().is_empty() || n.chars().any(char::is_control) => {
                self.problem(path, "must be a non-empty name without control characters.");
                None
            }
            Some(n) => Some(n),
        }
    }

    fn base_url(&mut self, t: &mut Table<'_>, default: &str) -> Option<String> {
        let url = self.string(t, "base_url").unwrap_or_else(|| default.to_owned());
        match reqwest::Url::parse(&url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Some(url),
            _ => {
                self.problem(
                    join(&t.path, "base_url"),
                    format!("{url:?} is not an http(s) URL. Write it like \"{default}\"."),
                );
                None
            }
        }
    }

    fn scaleengine(&mut self, i: usize, value: &Value) -> Option<ScaleEngineAccount> {
        let mut t = self.table(format!("scaleengine[{i}]"), value)?;
        let before = self.problems.len();
        let name = self.name(&mut t);
        let cdn = self.integer(&mut t, "cdn", 1, i64::from(i32::MAX));
        if cdn.is_none() && !self.problems.iter().any(|p| p.path == join(&t.path, "cdn")) {
            self.problem(join(&t.path, "cdn"), "missing. Set it to your ScaleEngine CDN id, e.g. `cdn = 158`.");
        }
        let api_key = self.secret(&mut t, "api_key");
        let api_secret = self.secret(&mut t, "api_secret");
        let base_url = self.base_url(&mut t, scaleengine::DEFAULT_BASE_URL);
        let timeout = self.duration(&mut t, "timeout", Duration::from_secs(30));
        let summary_interval = self.duration(&mut t, "summary_interval", Duration::from_secs(15 * 60));
        let billing_interval = self.duration(&mut t, "billing_interval", Duration::from_secs(15 * 60));
        let disk_interval = self.duration(&mut t, "disk_interval", Duration::from_secs(3600));
        let video_interval = self.duration(&mut t, "video_interval", Duration::from_secs(3600));
        let video_apps = self.video_apps(&mut t);
        let video_top_n = self.integer(&mut t, "video_top_n", 1, 10_000).unwrap_or(20) as usize;
        let budget_usd = self.number(&mut t, "budget_usd");
        let max_age = self.optional_duration(&mut t, "max_age");
        self.unknown(t);
        if self.problems.len() > before {
            return None;
        }
        Some(ScaleEngineAccount {
            name: name?,
            cdn: cdn?,
            api_key: api_key?,
            api_secret: api_secret?,
            base_url: base_url?,
            timeout: timeout?,
            summary_interval: summary_interval?,
            billing_interval: billing_interval?,
            disk_interval: disk_interval?,
            video_interval: video_interval?,
            video_apps,
            video_top_n,
            budget_usd,
            max_age: max_age?,
        })
    }

    fn cdnetworks(&mut self, i: usize, value: &Value) -> Option<CdnetworksAccount> {
        let mut t = self.table(format!("cdnetworks[{i}]"), value)?;
        let before = self.problems.len();
        let name = self.name(&mut t);
        let base_url = self.base_url(&mut t, crate::providers::cdnetworks::DEFAULT_BASE_URL);
        let auth = self.cdnetworks_auth(&mut t);
        let zone_path = join(&t.path, "time_zone");
        let time_zone = self.string(&mut t, "time_zone").unwrap_or_else(|| "GMT+09:00".into());
        let utc_offset = crate::timeutil::parse_gmt_offset(&time_zone);
        if utc_offset.is_none() {
            self.problem(zone_path, format!("{time_zone:?} is not a zone. Write it as GMT±HH:MM, e.g. \"GMT+09:00\"."));
        }
        let granularity = match self.string(&mut t, "granularity").as_deref() {
            None | Some("h") => Some(Granularity::Hourly),
            Some("d") => Some(Granularity::Daily),
            Some(other) => {
                self.problem(
                    join(&t.path, "granularity"),
                    format!("{other:?} is not a granularity. Use \"h\" (hourly) or \"d\" (daily)."),
                );
                None
            }
        };
        let domains = self.cdnetworks_domains(&mut t);
        let interval = self.duration(&mut t, "interval", Duration::from_secs(3600));
        let timeout = self.duration(&mut t, "timeout", Duration::from_secs(30));
        let max_age = self.optional_duration(&mut t, "max_age");
        let path = t.path.clone();
        self.unknown(t);
        if self.problems.len() > before {
            return None;
        }
        Some(CdnetworksAccount {
            name: name?,
            path,
            base_url: base_url?,
            auth: auth?,
            time_zone,
            utc_offset: utc_offset?,
            granularity: granularity?,
            domains,
            interval: interval?,
            timeout: timeout?,
            max_age: max_age?,
        })
    }

    fn cdnetworks_auth(&mut self, t: &mut Table<'_>) -> Option<CdnetworksAuth> {
        let username = self.string(t, "username");
        let api_key = self.secret_opt(t, "api_key");
        let access_key = self.secret_opt(t, "access_key");
        let secret_key = self.secret_opt(t, "secret_key");
        let (Ok(api_key), Ok(access_key), Ok(secret_key)) = (api_key, access_key, secret_key) else {
            return None;
        };
        let api_scheme = username.is_some() || api_key.is_some();
        let aksk_scheme = access_key.is_some() || secret_key.is_some();
        let fix = "Give either username + api_key (API-key auth) or access_key + secret_key (AK/SK auth).";
        match (api_scheme, aksk_scheme) {
            (true, true) => {
                self.problem(join(&t.path, "auth"), format!("both auth schemes are configured. {fix}"));
                None
            }
            (false, false) => {
                self.problem(join(&t.path, "auth"), format!("no credentials. {fix}"));
                None
            }
            (true, false) => match (username, api_key) {
                (Some(username), Some(api_key)) if !username.trim().is_empty() => {
                    Some(CdnetworksAuth::ApiKey { username, api_key })
                }
                (None, _) | (Some(_), Some(_)) => {
                    self.problem(join(&t.path, "username"), format!("missing or empty. {fix}"));
                    None
                }
                (Some(_), None) => {
                    self.problem(join(&t.path, "api_key"), format!("missing. {fix}"));
                    None
                }
            },
            (false, true) => match (access_key, secret_key) {
                (Some(access_key), Some(secret_key)) => Some(CdnetworksAuth::AkSk { access_key, secret_key }),
                (None, _) => {
                    self.problem(join(&t.path, "access_key"), format!("missing. {fix}"));
                    None
                }
                (_, None) => {
                    self.problem(join(&t.path, "secret_key"), format!("missing. {fix}"));
                    None
                }
            },
        }
    }

    fn cdnetworks_domains(&mut self, t: &mut Table<'_>) -> Vec<CdnetworksDomain> {
        let path = join(&t.path, "domains");
        let items = match t.take("domains") {
            Some(Value::Array(items)) if !items.is_empty() => items,
            Some(Value::Array(_)) | None => {
                self.problem(
                    path,
                    "no domain. List them as domains = [{ domain = \"cdn.example.com\", contract = \"C-1\" }].",
                );
                return Vec::new();
            }
            Some(other) => {
                self.problem(
                    path,
                    format!("expected an array of {{ domain, contract }} tables, found {}.", kind(other)),
                );
                return Vec::new();
            }
        };
        let mut domains: Vec<CdnetworksDomain> = Vec::new();
        let mut positions: Vec<usize> = Vec::new();
        for (j, item) in items.iter().enumerate() {
            let Some(mut d) = self.table(format!("{path}[{j}]"), item) else { continue };
            let required = |v: &mut Self, d: &mut Table<'_>, key: &str| {
                let p = join(&d.path, key);
                match v.string(d, key) {
                    Some(s) if !s.trim().is_empty() && !s.chars().any(char::is_whitespace) => Some(s),
                    Some(s) => {
                        v.problem(p, format!("{s:?} is not a {key}. Give it without spaces."));
                        None
                    }
                    None if v.problems.iter().any(|x| x.path == p) => None,
                    None => {
                        v.problem(p, "missing. Every entry needs a domain and its contract.");
                        None
                    }
                }
            };
            let domain = required(self, &mut d, "domain");
            let contract = required(self, &mut d, "contract");
            let entry_path = d.path.clone();
            self.unknown(d);
            if let (Some(domain), Some(contract)) = (domain, contract) {
                if let Some(k) = domains.iter().position(|x| x.domain == domain) {
                    let first = positions[k];
                    self.problem(
                        format!("{entry_path}.domain"),
                        format!("{domain:?} is listed twice (also {path}[{first}]). List each domain once."),
                    );
                } else {
                    domains.push(CdnetworksDomain { domain, contract });
                    positions.push(j);
                }
            }
        }
        domains
    }

    fn video_apps(&mut self, t: &mut Table<'_>) -> Vec<VideoApp> {
        let path = join(&t.path, "video_apps");
        let Some(v) = t.take("video_apps") else {
            return Vec::new();
        };
        let items: Vec<&Value> = match v {
            Value::Array(items) => items.iter().collect(),
            single => vec![single],
        };
        let mut apps = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            match item {
                Value::String(s) if !s.trim().is_empty() => apps.push(VideoApp::Name(s.clone())),
                Value::Number(n) if n.as_i64().is_some_and(|n| n > 0) => {
                    apps.push(VideoApp::Id(n.as_i64().unwrap_or_default()))
                }
                other => self.problem(
                    format!("{path}[{i}]"),
                    format!("{} is not an app. Use an app name (\"live\") or a positive app id (42).", show(other)),
                ),
            }
        }
        apps
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "a table",
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Number(n) => n.to_string(),
        other => kind(other).to_owned(),
    }
}

/// The known key closest to `key`, if it is close enough to be a typo.
fn closest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    known.iter().map(|k| (edit_distance(key, k), *k)).filter(|(d, k)| *d <= 2.max(k.len() / 4)).min().map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb { prev } else { 1 + prev.min(row[j]).min(cur) };
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closures return figment::Error
mod tests {
    use super::*;

    const GOOD: &str = r#"
        [[scaleengine]]
        name = "main"
        cdn = 158
        api_key = "k"
        api_secret = "s"
        video_apps = ["live", 42]
        budget_usd = 500
    "#;

    #[test]
    fn defaults_apply() {
        let c = Config::from_toml_str(GOOD, "test").unwrap();
        let a = &c.scaleengine[0];
        assert_eq!(a.base_url, scaleengine::DEFAULT_BASE_URL);
        assert_eq!(a.summary_interval, Duration::from_secs(900));
        assert_eq!(a.disk_interval, Duration::from_secs(3600));
        assert_eq!(a.timeout, Duration::from_secs(30));
        assert_eq!(a.video_top_n, 20);
        assert_eq!(a.video_apps, vec![VideoApp::Name("live".into()), VideoApp::Id(42)]);
        assert_eq!(a.budget_usd, Some(500.0));
        assert_eq!(c.limits.answers, AnswerLimits::default());
    }

    #[test]
    fn answer_limits_are_read_and_checked() {
        let ok = format!("{GOOD}\n[answer_limits]\nsummary_bytes = 65536\nvideo_pages = 3\n");
        let c = Config::from_toml_str(&ok, "test").unwrap();
        assert_eq!(c.limits.answers.summary_bytes, 65536);
        assert_eq!(c.limits.answers.video_pages, 3);
        assert_eq!(c.limits.answers.table_rows, AnswerLimits::default().table_rows);
        let bad = format!("{GOOD}\n[answer_limits]\nsummary_bytes = 10\ntable_rowz = 5\npage_entries = \"9\"\n");
        let text = Config::from_toml_str(&bad, "test").unwrap_err().to_string();
        for needle in [
            "answer_limits.summary_bytes",
            "4096",
            "answer_limits.table_rowz",
            "table_rows",
            "answer_limits.page_entries",
        ] {
            assert!(text.contains(needle), "{needle} missing from: {text}");
        }
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let bad = r#"
            listen_address = "nowhere"
            [[scaleengine]]
            name = "main"
            cdn = "158"
            api_key = "k"
            summary_interval = "15x"
            api_secrte = "s"
            [[scaleengine]]
            name = "main"
            cdn = 1
            api_key = "k"
            api_secret = "s"
        "#;
        // In a Jail: another test sets CDN_EXPORTER_LISTEN_ADDRESS, and Jail serializes them.
        figment::Jail::expect_with(|_| {
            let err = Config::from_toml_str(bad, "test").unwrap_err();
            let paths: Vec<&str> = err.problems.iter().map(|p| p.path.as_str()).collect();
            assert_eq!(
                paths,
                [
                    "listen_address",
                    "scaleengine[0].cdn",
                    "scaleengine[0].api_secret",
                    "scaleengine[0].summary_interval",
                    "scaleengine[0].api_secrte",
                    "scaleengine[1].name",
                ],
                "{err}"
            );
            let text = err.to_string();
            assert!(text.contains("has 6 problems"), "{text}");
            assert!(text.contains("Did you mean `api_secret`?"), "{text}");
            Ok(())
        });
    }

    #[test]
    fn secrets_come_from_env_and_file() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("SE_TEST_SECRET", "from-env");
            jail.create_file("key.txt", "from-file\n")?;
            let toml = r#"
                [[scaleengine]]
                name = "x"
                cdn = 1
                api_key_file = "key.txt"
                api_secret_env = "SE_TEST_SECRET"
            "#;
            let c = Config::from_toml_str(toml, "test").map_err(|e| e.to_string())?;
            assert_eq!(c.scaleengine[0].api_key.expose(), "from-file");
            assert_eq!(c.scaleengine[0].api_secret.expose(), "from-env");
            let missing = toml.replace("SE_TEST_SECRET", "SE_TEST_UNSET");
            let err = Config::from_toml_str(&missing, "test").unwrap_err();
            assert!(err.to_string().contains("SE_TEST_UNSET is not set"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn environment_overrides_the_file() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("CDN_EXPORTER_LISTEN_ADDRESS", "127.0.0.1:9999");
            jail.set_env("CDN_EXPORTER_REQUIRE_TOOLS", "1");
            let toml = format!("listen_address = \"0.0.0.0:1\"\n{GOOD}");
            let c = Config::from_toml_str(&toml, "test").map_err(|e| e.to_string())?;
            assert_eq!(c.listen_address, Some("127.0.0.1:9999".parse().unwrap()));
            Ok(())
        });
    }

    #[test]
    fn debug_print_has_no_secret() {
        let c = Config::from_toml_str(&GOOD.replace("\"s\"", "\"topsecretvalue\""), "test").unwrap();
        assert!(!format!("{c:?}").contains("topsecretvalue"));
    }

    #[test]
    fn cdnetworks_accounts_validate_with_paths() {
        let good = r#"
            [[cdnetworks]]
            name = "cn"
            username = "u"
            api_key = "k"
            domains = [{ domain = "a.example.net", contract = "C-1" }]
        "#;
        let c = Config::from_toml_str(good, "test").unwrap();
        let a = &c.cdnetworks[0];
        assert_eq!(a.base_url, "https://api.cdnetworks.com");
        assert_eq!((a.time_zone.as_str(), a.utc_offset), ("GMT+09:00", 9 * 3600));
        assert_eq!(a.granularity, Granularity::Hourly);
        assert_eq!(a.interval, Duration::from_secs(3600));
        assert!(matches!(a.auth, CdnetworksAuth::ApiKey { .. }));

        let bad = r#"
            [[cdnetworks]]
            name = "cn"
            username = "u"
            api_key = "k"
            access_key = "ak"
            time_zone = "Asia/Seoul"
            granularity = "m"
            domains = [
              { domain = "a.example.net", contract = "C-1" },
              { domain = "a.example.net", contract = "C-2" },
              { domain = "b.example.net" },
              { domain = "c.example.net", contract = "C-3", extra = 1 },
            ]
            [[cdnetworks]]
            name = "other"
            access_key = "ak"
            domains = []
        "#;
        let err = Config::from_toml_str(bad, "test").unwrap_err();
        let paths: Vec<&str> = err.problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "cdnetworks[0].auth",
                "cdnetworks[0].time_zone",
                "cdnetworks[0].granularity",
                "cdnetworks[0].domains[1].domain",
                "cdnetworks[0].domains[2].contract",
                "cdnetworks[0].domains[3].extra",
                "cdnetworks[1].secret_key",
                "cdnetworks[1].domains",
            ],
            "{err}"
        );
        assert!(err.to_string().contains("GMT±HH:MM"), "{err}");
    }

    #[test]
    fn typos_get_a_suggestion_among_every_known_key() {
        let err =
            Config::from_toml_str(&GOOD.replace("budget_usd", "max_ag = \"1h\"\nbudget_usd"), "test").unwrap_err();
        assert_eq!(err.problems[0].path, "scaleengine[0].max_ag");
        assert!(err.problems[0].message.contains("Did you mean `max_age`?"), "{err}");
    }

    #[test]
    fn no_account_is_an_error() {
        let err = Config::from_toml_str("", "test").unwrap_err();
        assert_eq!(err.problems[0].path, "scaleengine");
    }
}
