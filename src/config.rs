//! Configuration: defaults < TOML file < environment (`CDN_EXPORTER_*`), merged by figment,
//! then validated field by field so that every problem is reported at once, each with its
//! field path, its line and column in the file, and how to fix it.
//!
//! A configuration holds credentials, and its errors reach the log, `check-config` and the
//! answer of `POST /-/reload`. So no error quotes a line of the file, and none prints the value
//! of a credential, of an unknown key or of a `base_url`; only short values of plain settings
//! (durations, zones, enums) are quoted, escaped and cut (see [`quote`]).

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
use crate::shard::Shard;

/// Prefix of environment variables that override top-level settings.
pub const ENV_PREFIX: &str = "CDN_EXPORTER_";

/// The default port (unassigned in the Prometheus default port allocations list).
pub const DEFAULT_PORT: u16 = 9862;

/// The largest configuration file read (1 MiB); a bigger one is refused before it is parsed.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;
/// The largest credential file read through a `*_file` key (64 KiB).
pub const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;
/// The longest credential, once trimmed (4096 bytes).
pub const MAX_SECRET_BYTES: usize = 4096;
/// The longest account name (128 bytes): it becomes the `account` label of every series.
pub const MAX_NAME_BYTES: usize = 128;
/// The longest domain (253 bytes, the DNS limit).
pub const MAX_DOMAIN_BYTES: usize = 253;
/// The longest CDNetworks contract id and username (128 bytes).
pub const MAX_CONTRACT_BYTES: usize = 128;
/// The longest video app name (256 bytes).
pub const MAX_APP_NAME_BYTES: usize = 256;
/// The longest `base_url` (2048 bytes).
pub const MAX_URL_BYTES: usize = 2048;
/// The longest `log_level` directive (1024 bytes).
pub const MAX_LOG_LEVEL_BYTES: usize = 1024;
/// The most accounts per provider (1000): beyond it, shard (`--shard`, docs/scaling.md).
pub const MAX_ACCOUNTS: usize = 1000;
/// The most domains per CDNetworks account (1000).
pub const MAX_DOMAINS: usize = 1000;
/// The longest `traffic_settle` (7 days): each settle day costs a request per poll.
pub const MAX_TRAFFIC_SETTLE: Duration = Duration::from_secs(7 * 86_400);
/// The most entries in `video_apps` (100).
pub const MAX_VIDEO_APPS: usize = 100;
/// Values quoted in an error are cut to this many characters.
const QUOTE_CHARS: usize = 32;

/// Top-level keys that may come from the environment (`CDN_EXPORTER_LISTEN_ADDRESS`, …).
pub const ENV_KEYS: &[&str] = &[
    "listen_address",
    "log_level",
    "log_format",
    "max_in_flight",
    "max_in_flight_per_provider",
    "retries",
    "max_series",
    "max_traffic_domains",
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
    /// `shard` (default `"1/1"`): poll only the accounts whose name hashes into this shard
    /// (docs/scaling.md); `--shard` and `CDN_EXPORTER_SHARD` take precedence.
    pub shard: Shard,
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
    /// `max_traffic_domains` (default 2000): domains whose month of 5-minute slices the
    /// CDNetworks traffic jobs keep in memory, all accounts of the file together (about 36 KB each).
    pub max_traffic_domains: usize,
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
    /// `traffic_bytes` (default 32 MiB): one CDNetworks `traffic-request` answer (one day of
    /// 5-minute slices for up to 1,000 domains).
    pub traffic_bytes: usize,
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
            traffic_bytes: 32 << 20,
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
            max_traffic_domains: 2000,
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
    /// `traffic` (default true): whether the traffic job (`traffic-request`) runs.
    pub traffic: bool,
    /// `traffic_interval` (default 15m).
    pub traffic_interval: Duration,
    /// `traffic_max_age` (default 3 × traffic_interval): traffic samples older than this leave
    /// `/metrics`.
    pub traffic_max_age: Option<Duration>,
    /// `traffic_settle` (default 1d, at most 7d): a day that ended longer ago than this, once
    /// fetched, is final and not fetched again.
    pub traffic_settle: Duration,
    /// `bandwidth_commit_mbps` (optional): the committed bandwidth of the contract, in Mbit/s,
    /// exported as `cdn_bandwidth_commit_bytes_per_second`.
    pub bandwidth_commit_mbps: Option<f64>,
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

/// Where in the file a problem is: 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// The line, from 1.
    pub line: usize,
    /// The column, from 1, in characters.
    pub column: usize,
}

impl Position {
    /// The position of byte `offset` of `text`.
    fn of(text: &str, offset: usize) -> Position {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Position { line: before.matches('\n').count() + 1, column: before[line_start..].chars().count() + 1 }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where: `scaleengine[1].api_secret`; empty for a syntax error (see `at`).
    pub path: String,
    /// What is wrong, and how to fix it. Never a line of the file, never a credential.
    pub message: String,
    /// Where in the file, when the problem is in the file (not in the environment).
    pub at: Option<Position>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.at, self.path.is_empty()) {
            (Some(at), true) => write!(f, "{at}: {}", self.message),
            (Some(at), false) => write!(f, "{}: {} (at {at})", self.path, self.message),
            (None, _) => write!(f, "{}: {}", self.path, self.message),
        }
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
        let refuse = |message: String| ConfigError {
            source_name: source_name.clone(),
            problems: vec![Problem { path: "--config".into(), message, at: None }],
        };
        if !path.is_file() {
            return Err(refuse(format!(
                "no file at {}. Pass the path of a TOML file (see deploy/config.example.toml).",
                path.display()
            )));
        }
        let text = match crate::secret::read_bounded(path, MAX_CONFIG_BYTES) {
            Ok(text) => text,
            Err(e) => {
                return Err(refuse(format!(
                    "cannot read {}: {e}. Check the file and its permissions.",
                    path.display()
                )));
            }
        };
        Self::from_toml_str(&text, &source_name)
    }

    /// Loads and validates TOML text, with environment overrides (used by `demo` and tests).
    pub fn from_toml_str(toml: &str, source_name: &str) -> Result<Config, ConfigError> {
        let fail = |problem: Problem| ConfigError { source_name: source_name.to_owned(), problems: vec![problem] };
        if toml.len() as u64 > MAX_CONFIG_BYTES {
            return Err(fail(Problem {
                path: "(file)".into(),
                message: format!("larger than {MAX_CONFIG_BYTES} bytes. A configuration is a few KiB; check the file."),
                at: None,
            }));
        }
        // Parsed here first for two things figment does not give: a syntax error's position
        // without the line's text, and the position of every key for later problems.
        let doc = toml_edit::ImDocument::parse(toml).map_err(|e| fail(syntax_problem(toml, &e)))?;
        let positions = key_positions(toml, &doc);
        let figment = Figment::new().merge(Toml::string(toml)).merge(env_provider());
        Self::from_figment(figment, source_name).map_err(|mut e| {
            e.locate(&positions);
            e
        })
    }

    /// Validates whatever `figment` holds.
    pub fn from_figment(figment: Figment, source_name: &str) -> Result<Config, ConfigError> {
        let root: Value = figment
            .extract()
            .map_err(|e| ConfigError { source_name: source_name.to_owned(), problems: vec![figment_problem(&e)] })?;
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

    /// How many accounts this process polls: those of its [`Config::shard`].
    pub fn sharded_account_count(&self) -> usize {
        let names =
            self.scaleengine.iter().map(|a| a.name.as_str()).chain(self.cdnetworks.iter().map(|a| a.name.as_str()));
        names.filter(|n| self.shard.owns(n)).count()
    }
}

fn env_provider() -> Env {
    Env::prefixed(ENV_PREFIX).only(ENV_KEYS)
}

impl ConfigError {
    /// The same text on one line, for a log line.
    pub fn one_line(&self) -> String {
        self.to_string().replace("\n  - ", " - ")
    }

    /// Gives every problem the position of its key in the file (or of the closest enclosing
    /// table for a missing key), unless the environment set that key.
    fn locate(&mut self, positions: &BTreeMap<String, Position>) {
        for p in &mut self.problems {
            if p.at.is_some() || from_env(&p.path) {
                continue;
            }
            let mut path = p.path.as_str();
            p.at = loop {
                if let Some(at) = positions.get(path) {
                    break Some(*at);
                }
                match path.rfind(['.', '[']) {
                    Some(i) => path = &path[..i],
                    None => break None,
                }
            };
        }
    }
}

/// Whether a top-level key's value comes from its `CDN_EXPORTER_*` variable.
fn from_env(path: &str) -> bool {
    ENV_KEYS.contains(&path) && std::env::var_os(format!("{ENV_PREFIX}{}", path.to_uppercase())).is_some()
}

/// A TOML syntax error: where, and what the parser expected. toml's own `Display` prints the
/// offending line, which may hold a credential; its `message()` holds only the grammar's words
/// and key names, and is escaped and cut all the same.
fn syntax_problem(text: &str, e: &toml_edit::TomlError) -> Problem {
    let what: String = e.message().lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ");
    Problem {
        path: String::new(),
        message: format!(
            "TOML syntax error: {}. Fix the syntax at this position (the line is not shown here, so that no credential is printed).",
            escape_cut(&what, 200)
        ),
        at: e.span().map(|span| Position::of(text, span.start)),
    }
}

/// A figment error described by its kind and key path only: its `Display` can carry values
/// (`invalid type: found string "…"`).
fn figment_problem(e: &figment::Error) -> Problem {
    use figment::error::Kind;
    let what = match &e.kind {
        Kind::Message(_) => "cannot be read",
        Kind::InvalidType(..) => "has the wrong type",
        Kind::InvalidValue(..) => "has an invalid value",
        Kind::InvalidLength(..) => "has the wrong length",
        Kind::UnknownVariant(..) | Kind::UnknownField(..) => "is not known",
        Kind::MissingField(_) => "is missing",
        Kind::DuplicateField(_) => "is given twice",
        Kind::ISizeOutOfRange(_) | Kind::USizeOutOfRange(_) => "is out of range",
        Kind::Unsupported(_) | Kind::UnsupportedKey(..) => "is not supported",
    };
    let path = if e.path.is_empty() { "(file)".to_owned() } else { escape_cut(&e.path.join("."), 200) };
    Problem {
        path,
        message: format!("the configuration {what}. Check the file and the {ENV_PREFIX}* environment variables."),
        at: None,
    }
}

/// The position of every key of the document, under the paths the validator uses
/// (`scaleengine[0].cdn`, `cdnetworks[1].domains[2].contract`).
fn key_positions(text: &str, doc: &toml_edit::ImDocument<&str>) -> BTreeMap<String, Position> {
    let mut out = BTreeMap::new();
    let mut spans: Vec<(String, usize)> = Vec::new();
    walk_table(String::new(), doc.as_table().iter().map(|(k, v)| (k, doc.as_table().key(k), v)), &mut spans);
    for (path, offset) in spans {
        out.entry(path).or_insert_with(|| Position::of(text, offset));
    }
    out
}

type Entry<'a> = (&'a str, Option<&'a toml_edit::Key>, &'a toml_edit::Item);

fn walk_table<'a>(prefix: String, entries: impl Iterator<Item = Entry<'a>>, out: &mut Vec<(String, usize)>) {
    for (name, key, item) in entries {
        let path = join(&prefix, name);
        if let Some(start) = key.and_then(toml_edit::Key::span).or_else(|| item.span()).map(|s| s.start) {
            out.push((path.clone(), start));
        }
        walk_item(path, item, out);
    }
}

fn walk_item(path: String, item: &toml_edit::Item, out: &mut Vec<(String, usize)>) {
    match item {
        toml_edit::Item::Table(t) => walk_table(path, t.iter().map(|(k, v)| (k, t.key(k), v)), out),
        toml_edit::Item::ArrayOfTables(a) => {
            for (i, t) in a.iter().enumerate() {
                let at = format!("{path}[{i}]");
                if let Some(span) = t.span() {
                    out.push((at.clone(), span.start));
                }
                walk_table(at, t.iter().map(|(k, v)| (k, t.key(k), v)), out);
            }
        }
        toml_edit::Item::Value(v) => walk_value(path, v, out),
        toml_edit::Item::None => {}
    }
}

fn walk_value(path: String, value: &toml_edit::Value, out: &mut Vec<(String, usize)>) {
    match value {
        toml_edit::Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                let at = format!("{path}[{i}]");
                if let Some(span) = v.span() {
                    out.push((at.clone(), span.start));
                }
                walk_value(at, v, out);
            }
        }
        toml_edit::Value::InlineTable(t) => {
            for (k, v) in t.iter() {
                let at = join(&path, k);
                if let Some(start) = t.key(k).and_then(toml_edit::Key::span).or_else(|| v.span()).map(|s| s.start) {
                    out.push((at.clone(), start));
                }
                walk_value(at, v, out);
            }
        }
        _ => {}
    }
}

/// `s` with control characters escaped and cut to `max` characters (with `…`).
fn escape_cut(s: &str, max: usize) -> String {
    let mut out = String::new();
    for (n, c) in s.chars().enumerate() {
        if n == max {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// A plain setting's value (a duration, a zone) for an error message: quoted, escaped, and cut
/// to a few characters so that a huge value cannot flood the log. Never used for credentials,
/// unknown keys, URLs or names.
pub fn quote(s: &str) -> String {
    let mut out: String = format!("{:?}", s.chars().take(QUOTE_CHARS).collect::<String>());
    if s.chars().nth(QUOTE_CHARS).is_some() {
        out.insert(out.len() - 1, '…');
    }
    out
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
        self.problems.push(Problem { path: path.into(), message: message.into(), at: None });
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
            // The key is the file's text: escaped and cut, like any text quoted in an error.
            self.problem(join(&table.path, &escape_cut(key, 64)), format!("unknown key. {hint}"));
        }
    }

    fn string(&mut self, t: &mut Table<'_>, key: &str) -> Option<String> {
        self.bounded_string(t, key, usize::MAX)
    }

    /// A string of at most `max` bytes (the message names the bound, never the value).
    fn bounded_string(&mut self, t: &mut Table<'_>, key: &str, max: usize) -> Option<String> {
        let v = t.take(key)?;
        match v {
            Value::String(s) if s.len() > max => {
                self.problem(
                    join(&t.path, key),
                    format!("is {} bytes long; the limit is {max} bytes. Shorten it.", s.len()),
                );
                None
            }
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

    /// `true` or `false`; `default` when absent, `None` after a problem.
    fn boolean(&mut self, t: &mut Table<'_>, key: &str, default: bool) -> Option<bool> {
        let Some(v) = t.take(key) else {
            return Some(default);
        };
        match v {
            Value::Bool(b) => Some(*b),
            other => {
                self.problem(
                    join(&t.path, key),
                    format!(
                        "expected true or false, found {}. Write it without quotes, e.g. `{key} = false`.",
                        kind(other)
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
            Some(n) => {
                self.problem(join(&t.path, key), format!("expected a number of at least 0, found {n}."));
                None
            }
            None => {
                self.problem(
                    join(&t.path, key),
                    format!("expected a number of at least 0, found {}. Write it like `{key} = 500`.", kind(v)),
                );
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
            match crate::secret::read_bounded(Path::new(&file), MAX_SECRET_FILE_BYTES) {
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
        if value.len() > MAX_SECRET_BYTES {
            self.problem(
                path,
                format!(
                    "is longer than {MAX_SECRET_BYTES} bytes. Give the credential from the provider's control panel."
                ),
            );
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
                    format!("{} is not an address. Write it as host:port, e.g. \"0.0.0.0:{DEFAULT_PORT}\".", quote(&s)),
                );
                None
            }
        });
        let log_level = self.bounded_string(&mut t, "log_level", MAX_LOG_LEVEL_BYTES);
        let log_format = self.string(&mut t, "log_format").and_then(|s| match s.as_str() {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => {
                self.problem("log_format", format!("{} is not a log format. Use \"text\" or \"json\".", quote(&s)));
                None
            }
        });
        let shard = self.string(&mut t, "shard").map_or(Shard::ALL, |s| match s.parse::<Shard>() {
            Ok(shard) => shard,
            Err(e) => {
                self.problem("shard", format!("{} {e}.", quote(&s)));
                Shard::ALL
            }
        });
        let d = Limits::default();
        let max_in_flight = self.integer(&mut t, "max_in_flight", 1, 10_000).map_or(d.max_in_flight, |n| n as usize);
        let max_in_flight_per_provider = self
            .integer(&mut t, "max_in_flight_per_provider", 1, 10_000)
            .map_or(d.max_in_flight_per_provider, |n| n as usize);
        let retries = self.integer(&mut t, "retries", 0, 10).map_or(d.retries, |n| n as u32);
        let max_series = self.integer(&mut t, "max_series", 1, 100_000_000).map_or(d.max_series, |n| n as usize);
        let max_traffic_domains =
            self.integer(&mut t, "max_traffic_domains", 1, 1_000_000).map_or(d.max_traffic_domains, |n| n as usize);
        let answers = self.answer_limits(&mut t);
        let limits =
            Limits { max_in_flight, max_in_flight_per_provider, retries, max_series, max_traffic_domains, answers };
        let scaleengine = self.accounts(&mut t, "scaleengine", Self::scaleengine);
        let cdnetworks = self.accounts(&mut t, "cdnetworks", Self::cdnetworks);
        self.unknown(t);
        let traffic_domains: usize = cdnetworks.iter().filter(|a| a.traffic).map(|a| a.domains.len()).sum();
        if traffic_domains > max_traffic_domains {
            self.problem(
                "max_traffic_domains",
                format!(
                    "the CDNetworks traffic jobs would keep {traffic_domains} domains in memory (about 36 KB each); \
                     the limit is {max_traffic_domains}. Raise max_traffic_domains, set `traffic = false` on some \
                     accounts, or shard the accounts over several exporters."
                ),
            );
        }
        let config = Config { listen_address, log_level, log_format, scaleengine, cdnetworks, limits, shard };
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
        let traffic_bytes = bytes(self, "traffic_bytes", d.traffic_bytes);
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
            traffic_bytes,
        }
    }

    fn accounts<T>(&mut self, t: &mut Table<'_>, key: &str, one: fn(&mut Self, usize, &Value) -> Option<T>) -> Vec<T> {
        let mut accounts = Vec::new();
        match t.take(key) {
            None => {}
            Some(Value::Array(items)) if items.len() > MAX_ACCOUNTS => self.problem(
                key,
                format!("{} accounts; the limit is {MAX_ACCOUNTS}. Split them across exporters with --shard (docs/scaling.md).", items.len()),
            ),
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
                    format!("{} is already the name of {provider}[{j}]. Give every account its own name.", quote(name)),
                );
            } else {
                first.insert(name, i);
            }
        }
    }

    fn name(&mut self, t: &mut Table<'_>) -> Option<String> {
        let path = join(&t.path, "name");
        match self.bounded_string(t, "name", MAX_NAME_BYTES) {
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

    /// An http(s) URL without credentials in it: a user:password@ or a query string would show
    /// wherever the URL does (status page, logs, errors), so it is refused, and never printed.
    fn base_url(&mut self, t: &mut Table<'_>, default: &str) -> Option<String> {
        let path = join(&t.path, "base_url");
        let url = match t.has("base_url") {
            true => self.bounded_string(t, "base_url", MAX_URL_BYTES)?,
            false => default.to_owned(),
        };
        match reqwest::Url::parse(&url) {
            Ok(u) if !u.username().is_empty() || u.password().is_some() => {
                self.problem(
                    path,
                    "carries credentials (user:password@). Remove them: give credentials in the account's \
                     credential fields (api_key, api_secret, username, access_key, secret_key, or their _env/_file forms).",
                );
                None
            }
            Ok(u) if u.query().is_some() || u.fragment().is_some() => {
                self.problem(
                    path,
                    "has a query string or fragment (?… or #…), which may carry a token. Remove it: give \
                     credentials in the account's credential fields (or their _env/_file forms).",
                );
                None
            }
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Some(url),
            _ => {
                self.problem(path, format!("is not an http(s) URL. Write it like \"{default}\"."));
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
            self.problem(
                zone_path,
                format!("{} is not a zone. Write it as GMT±HH:MM, e.g. \"GMT+09:00\".", quote(&time_zone)),
            );
        }
        let granularity = match self.string(&mut t, "granularity").as_deref() {
            None | Some("h") => Some(Granularity::Hourly),
            Some("d") => Some(Granularity::Daily),
            Some(other) => {
                self.problem(
                    join(&t.path, "granularity"),
                    format!("{} is not a granularity. Use \"h\" (hourly) or \"d\" (daily).", quote(other)),
                );
                None
            }
        };
        let domains = self.cdnetworks_domains(&mut t);
        let interval = self.duration(&mut t, "interval", Duration::from_secs(3600));
        let timeout = self.duration(&mut t, "timeout", Duration::from_secs(30));
        let max_age = self.optional_duration(&mut t, "max_age");
        let traffic = self.boolean(&mut t, "traffic", true);
        let traffic_interval = self.duration(&mut t, "traffic_interval", Duration::from_secs(15 * 60));
        let traffic_max_age = self.optional_duration(&mut t, "traffic_max_age");
        let settle_path = join(&t.path, "traffic_settle");
        let traffic_settle = self.duration(&mut t, "traffic_settle", Duration::from_secs(86_400));
        if traffic_settle.is_some_and(|d| d > MAX_TRAFFIC_SETTLE) {
            self.problem(
                settle_path,
                "is longer than 7d. Each day of the settle window is fetched again on every poll; use at most \"7d\".",
            );
        }
        let bandwidth_commit_mbps = self.number(&mut t, "bandwidth_commit_mbps");
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
            traffic: traffic?,
            traffic_interval: traffic_interval?,
            traffic_max_age: traffic_max_age?,
            traffic_settle: traffic_settle?,
            bandwidth_commit_mbps,
        })
    }

    fn cdnetworks_auth(&mut self, t: &mut Table<'_>) -> Option<CdnetworksAuth> {
        let username = self.bounded_string(t, "username", MAX_CONTRACT_BYTES);
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
                (Some(username), Some(api_key))
                    if !username.trim().is_empty() && !username.chars().any(char::is_control) =>
                {
                    Some(CdnetworksAuth::ApiKey { username, api_key })
                }
                (None, _) | (Some(_), Some(_)) => {
                    self.problem(
                        join(&t.path, "username"),
                        format!("missing, empty or with control characters. {fix}"),
                    );
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
            Some(Value::Array(items)) if items.len() > MAX_DOMAINS => {
                self.problem(
                    path,
                    format!("{} domains; the limit is {MAX_DOMAINS}. Split them over several accounts.", items.len()),
                );
                return Vec::new();
            }
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
            let required = |v: &mut Self, d: &mut Table<'_>, key: &str, max: usize| {
                let p = join(&d.path, key);
                match v.bounded_string(d, key, max) {
                    Some(s) if key == "domain" && !is_domain(&s) => {
                        v.problem(
                            p,
                            "is not a domain name. Use letters, digits, '-', '_', '.' (and '*' for a wildcard), e.g. \"cdn.example.com\".",
                        );
                        None
                    }
                    Some(s) if !s.trim().is_empty() && !s.chars().any(|c| c.is_whitespace() || c.is_control()) => {
                        Some(s)
                    }
                    Some(_) => {
                        v.problem(p, format!("is not a {key}: it is empty or has spaces. Give it without spaces."));
                        None
                    }
                    None if v.problems.iter().any(|x| x.path == p) => None,
                    None => {
                        v.problem(p, "missing. Every entry needs a domain and its contract.");
                        None
                    }
                }
            };
            let domain = required(self, &mut d, "domain", MAX_DOMAIN_BYTES);
            let contract = required(self, &mut d, "contract", MAX_CONTRACT_BYTES);
            let entry_path = d.path.clone();
            self.unknown(d);
            if let (Some(domain), Some(contract)) = (domain, contract) {
                if let Some(k) = domains.iter().position(|x| x.domain == domain) {
                    let first = positions[k];
                    self.problem(
                        format!("{entry_path}.domain"),
                        format!("{} is listed twice (also {path}[{first}]). List each domain once.", quote(&domain)),
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
        if items.len() > MAX_VIDEO_APPS {
            self.problem(path, format!("{} apps; the limit is {MAX_VIDEO_APPS}. List fewer apps.", items.len()));
            return Vec::new();
        }
        let mut apps = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            match item {
                Value::String(s) if s.len() > MAX_APP_NAME_BYTES => self.problem(
                    format!("{path}[{i}]"),
                    format!("is {} bytes long; the limit is {MAX_APP_NAME_BYTES} bytes. Use the app's name.", s.len()),
                ),
                Value::String(s) if s.chars().any(char::is_control) => self.problem(
                    format!("{path}[{i}]"),
                    "has a control character. Use the app's name as the ScaleEngine panel shows it.",
                ),
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

/// A DNS name (or a `*.` wildcard), as CDNetworks lists them.
fn is_domain(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && s.split('.').all(|label| label.len() <= 63)
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '*'))
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") }
}

fn kind(v: &Value) -> &'static str {
    match v {
        // TOML has no null: a NaN or an infinity is what becomes one on the way through figment.
        Value::Null => "nan or inf, which is not a finite number",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "a table",
    }
}

/// A plain setting's value for a message: strings through [`quote`], other kinds by kind.
fn show(v: &Value) -> String {
    match v {
        Value::String(s) => quote(s),
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
    fn cdnetworks_traffic_keys_have_defaults_bounds_and_a_domain_guard() {
        let account = |extra: &str, domains: usize| {
            let list: Vec<String> =
                (0..domains).map(|i| format!("{{ domain = \"d{i}.example.net\", contract = \"C\" }}")).collect();
            format!(
                "[[cdnetworks]]\nname = \"cn\"\nusername = \"u\"\napi_key = \"k\"\n{extra}\ndomains = [{}]\n",
                list.join(", ")
            )
        };
        let c = Config::from_toml_str(&account("", 1), "test").unwrap();
        let a = &c.cdnetworks[0];
        assert!(a.traffic);
        assert_eq!(a.traffic_interval, Duration::from_secs(900));
        assert_eq!(a.traffic_settle, Duration::from_secs(86_400));
        assert_eq!((a.traffic_max_age, a.bandwidth_commit_mbps), (None, None));
        assert_eq!(c.limits.max_traffic_domains, 2000);
        assert_eq!(c.limits.answers.traffic_bytes, 32 << 20);
        let c = Config::from_toml_str(
            &account(
                "traffic = false\ntraffic_interval = \"5m\"\ntraffic_settle = \"2d\"\nbandwidth_commit_mbps = 750",
                1,
            ),
            "test",
        )
        .unwrap();
        let a = &c.cdnetworks[0];
        assert!(!a.traffic);
        assert_eq!((a.traffic_interval, a.traffic_settle), (Duration::from_secs(300), Duration::from_secs(2 * 86_400)));
        assert_eq!(a.bandwidth_commit_mbps, Some(750.0));
        for (extra, path, needle) in [
            ("traffic = \"no\"", "cdnetworks[0].traffic", "true or false"),
            ("traffic_settle = \"8d\"", "cdnetworks[0].traffic_settle", "at most \"7d\""),
            ("traffic_interval = \"0s\"", "cdnetworks[0].traffic_interval", "1s to 31d"),
            ("bandwidth_commit_mbps = -1", "cdnetworks[0].bandwidth_commit_mbps", "at least 0"),
        ] {
            let err = Config::from_toml_str(&account(extra, 1), "test").unwrap_err();
            assert_eq!(err.problems[0].path, path, "{extra}: {err}");
            assert!(err.problems[0].message.contains(needle), "{extra}: {err}");
        }
        // 3 accounts of 1,000 domains: 3,000 > 2,000 unless one turns traffic off or the limit rises.
        let three = |first: &str| {
            (0..3)
                .map(|i| {
                    account(if i == 0 { first } else { "" }, 1000)
                        .replace("name = \"cn\"", &format!("name = \"cn{i}\""))
                })
                .collect::<String>()
        };
        let err = Config::from_toml_str(&three(""), "test").unwrap_err();
        assert_eq!(err.problems[0].path, "max_traffic_domains", "{err}");
        assert!(
            err.problems[0].message.contains("3000 domains") && err.problems[0].message.contains("limit is 2000"),
            "{err}"
        );
        Config::from_toml_str(&three("traffic = false"), "test").unwrap();
        Config::from_toml_str(&format!("max_traffic_domains = 3000\n{}", three("")), "test").unwrap();
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

    const HUNTER: &str = "hunter2-s3cr3t";

    /// A good file whose `api_secret` line is broken by `line`.
    fn with_secret_line(line: &str) -> String {
        GOOD.replace("api_secret = \"s\"", line)
    }

    #[test]
    fn broken_secret_lines_name_line_and_column_but_never_the_value() {
        let cases = [
            // A syntax error on the secret's line (unterminated string, missing quote, bad escape).
            (format!("api_secret = \"{HUNTER}"), "TOML syntax error"),
            (format!("api_secret = {HUNTER}\""), "TOML syntax error"),
            (format!("api_secret = \"{HUNTER}\\q\""), "TOML syntax error"),
            // A duplicate key on the secret's line.
            (format!("api_secret = \"{HUNTER}\"\napi_secret = \"{HUNTER}\""), "duplicate key `api_secret`"),
            // A wrong type for a secret.
            (format!("api_secret = [\"{HUNTER}\"]"), "scaleengine[0].api_secret: expected a string, found an array"),
            (format!("api_secret = {{ v = \"{HUNTER}\" }}"), "scaleengine[0].api_secret: expected a string"),
            // A misspelled secret key.
            (format!("api_secert = \"{HUNTER}\""), "Did you mean `api_secret`?"),
            // A secret in a key that takes a duration, a number, a name.
            (format!("api_secret = \"s\"\ntimeout = [\"{HUNTER}\"]"), "scaleengine[0].timeout"),
            (format!("api_secret = \"s\"\nvideo_top_n = \"{HUNTER}\""), "scaleengine[0].video_top_n"),
            // Weird characters in the value do not break out of the message either.
            ("api_secret = \"a\\u0000b\\nc\\u001b[31m\"\ntimeout = true".to_owned(), "scaleengine[0].timeout"),
            (format!("api_secret = \"{HUNTER}\\u0000\\u001b[31m\\n\" x"), "TOML syntax error"),
        ];
        for (line, expect) in cases {
            let toml = with_secret_line(&line);
            let text = Config::from_toml_str(&toml, "test.toml").unwrap_err().to_string();
            assert!(!text.contains(HUNTER) && !text.contains("hunter2"), "value echoed for {line:?}:\n{text}");
            assert!(!text.contains('\u{1b}') && !text.contains('\0'), "raw control character for {line:?}:\n{text}");
            assert!(text.contains(expect), "{line:?}: expected {expect:?} in:\n{text}");
            assert!(text.contains("line ") && text.contains(", column "), "no position for {line:?}:\n{text}");
        }
    }

    #[test]
    fn a_syntax_error_points_at_its_line_and_column() {
        let toml = format!("[[scaleengine]]\nname = \"main\"\napi_secret = \"{HUNTER}\n");
        let err = Config::from_toml_str(&toml, "f.toml").unwrap_err();
        assert_eq!(err.problems.len(), 1, "{err}");
        let at = err.problems[0].at.unwrap();
        assert_eq!(at.line, 3, "{err}");
        assert!(at.column > 1, "{err}");
        assert!(err.to_string().starts_with("the configuration in f.toml has 1 problem:\n  - line 3, column "));
    }

    #[test]
    fn validation_problems_carry_the_position_of_their_key() {
        let toml = "\n[[scaleengine]]\nname = \"main\"\ncdn = \"158\"\napi_key = \"k\"\napi_secret = \"s\"\n";
        let err = Config::from_toml_str(toml, "f.toml").unwrap_err();
        assert_eq!(err.problems[0].path, "scaleengine[0].cdn");
        assert_eq!(err.problems[0].at, Some(Position { line: 4, column: 1 }), "{err}");
        // A missing key points at its table.
        let err = Config::from_toml_str(&toml.replace("api_key = \"k\"\n", ""), "f.toml").unwrap_err();
        let missing = err.problems.iter().find(|p| p.path == "scaleengine[0].api_key").unwrap();
        assert_eq!(missing.at, Some(Position { line: 2, column: 1 }), "{err}");
        // Inline tables in arrays too.
        let cn = "[[cdnetworks]]\nname = \"c\"\nusername = \"u\"\napi_key = \"k\"\ndomains = [\n  { domain = \"a.example\", contract = \"C\" },\n  { domain = \"b example\", contract = \"C\" },\n]\n";
        let err = Config::from_toml_str(cn, "f.toml").unwrap_err();
        assert_eq!(err.problems[0].path, "cdnetworks[0].domains[1].domain", "{err}");
        assert_eq!(err.problems[0].at, Some(Position { line: 7, column: 5 }), "{err}");
    }

    #[test]
    fn names_domains_and_apps_are_bounded() {
        let long = |n: usize| "a".repeat(n);
        let ok = GOOD.replace("name = \"main\"", &format!("name = \"{}\"", long(MAX_NAME_BYTES)));
        assert!(Config::from_toml_str(&ok, "t").is_ok());
        let err = Config::from_toml_str(&GOOD.replace("\"main\"", &format!("\"{}\"", long(MAX_NAME_BYTES + 1))), "t")
            .unwrap_err();
        assert_eq!(err.problems[0].path, "scaleengine[0].name");
        assert!(err.problems[0].message.contains("the limit is 128 bytes"), "{err}");
        assert!(!err.to_string().contains(&long(40)), "the value is not echoed: {err}");
        let err = Config::from_toml_str(&GOOD.replace("\"main\"", "\"a\\u0007b\""), "t").unwrap_err();
        assert!(err.problems[0].message.contains("control characters"), "{err}");

        let apps = GOOD.replace("[\"live\", 42]", &format!("[\"{}\", \"x\\ty\"]", long(MAX_APP_NAME_BYTES + 1)));
        let err = Config::from_toml_str(&apps, "t").unwrap_err();
        let paths: Vec<&str> = err.problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["scaleengine[0].video_apps[0]", "scaleengine[0].video_apps[1]"], "{err}");
        let many: Vec<String> = (0..=MAX_VIDEO_APPS).map(|i| i.to_string()).collect();
        let err =
            Config::from_toml_str(&GOOD.replace("[\"live\", 42]", &format!("[{}]", many.join(","))), "t").unwrap_err();
        assert!(err.problems[0].message.contains("the limit is 100"), "{err}");

        let cn = |domain: &str| {
            format!(
                "[[cdnetworks]]\nname = \"c\"\nusername = \"u\"\napi_key = \"k\"\ndomains = [{{ domain = \"{domain}\", contract = \"C-1\" }}]\n"
            )
        };
        assert!(Config::from_toml_str(&cn("*.cdn-1.example.com"), "t").is_ok());
        let max = format!("{}.{}.{}.{}", long(63), long(63), long(63), long(61));
        assert_eq!(max.len(), MAX_DOMAIN_BYTES);
        assert!(Config::from_toml_str(&cn(&max), "t").is_ok());
        for bad in [format!("{max}a"), long(64), "a/b".into(), "a\\u0000b".into(), "".into()] {
            let err = Config::from_toml_str(&cn(&bad), "t").unwrap_err();
            assert_eq!(err.problems[0].path, "cdnetworks[0].domains[0].domain", "{bad}: {err}");
        }
        let domains: Vec<String> =
            (0..=MAX_DOMAINS).map(|i| format!("{{ domain = \"d{i}.example\", contract = \"C\" }}")).collect();
        let err = Config::from_toml_str(
            &cn("x").replace("[{ domain = \"x\", contract = \"C-1\" }]", &format!("[{}]", domains.join(","))),
            "t",
        )
        .unwrap_err();
        assert!(err.problems[0].message.contains("the limit is 1000"), "{err}");

        let accounts: String = (0..=MAX_ACCOUNTS)
            .map(|i| format!("[[scaleengine]]\nname = \"a{i}\"\ncdn = 1\napi_key = \"k\"\napi_secret = \"s\"\n"))
            .collect();
        let err = Config::from_toml_str(&accounts, "t").unwrap_err();
        assert_eq!(err.problems[0].path, "scaleengine");
        assert!(err.problems[0].message.contains(&format!("the limit is {MAX_ACCOUNTS}")), "{err}");
    }

    #[test]
    fn unknown_keys_are_escaped_and_cut() {
        let toml = format!("\"a\\u001b[2Jb\\nc\" = 1\n\"{}\" = 2\n{GOOD}", "k".repeat(10_000));
        let err = Config::from_toml_str(&toml, "t").unwrap_err();
        let text = err.to_string();
        assert!(!text.contains('\u{1b}') && text.contains("a\\u{1b}[2Jb\\nc: unknown key"), "{text}");
        assert!(text.len() < 2_000, "{}", text.len());
    }

    #[test]
    fn non_finite_numbers_are_refused_by_name() {
        for (value, path) in [
            ("budget_usd = nan", "scaleengine[0].budget_usd"),
            ("budget_usd = inf", "scaleengine[0].budget_usd"),
            ("budget_usd = -inf", "scaleengine[0].budget_usd"),
            ("budget_usd = 500\nvideo_top_n = nan", "scaleengine[0].video_top_n"),
            ("budget_usd = 500\ntimeout = inf", "scaleengine[0].timeout"),
        ] {
            let err = Config::from_toml_str(&GOOD.replace("budget_usd = 500", value), "t").unwrap_err();
            assert_eq!(err.problems.len(), 1, "{value}: {err}");
            assert_eq!(err.problems[0].path, path, "{err}");
            assert!(err.problems[0].message.contains("nan or inf, which is not a finite number"), "{value}: {err}");
        }
        // A float too big for f64 is a syntax error of TOML's own.
        let err = Config::from_toml_str(&GOOD.replace("500", "1e400"), "t").unwrap_err();
        assert!(err.to_string().contains("invalid floating-point number"), "{err}");
        let err = Config::from_toml_str(&format!("max_series = nan\n{GOOD}"), "t").unwrap_err();
        assert!(err.to_string().contains("max_series: expected a whole number, found nan or inf"), "{err}");
    }

    #[test]
    fn base_url_credentials_are_refused_and_never_printed() {
        for url in [
            "https://user:pa55word@api.example.com/",
            "https://token123@api.example.com/",
            "https://api.example.com/?token=pa55word",
            "https://api.example.com/#pa55word",
        ] {
            let toml = GOOD.replace("budget_usd = 500", &format!("base_url = \"{url}\""));
            let err = Config::from_toml_str(&toml, "t").unwrap_err();
            let text = err.to_string();
            assert_eq!(err.problems[0].path, "scaleengine[0].base_url", "{text}");
            assert!(text.contains("credential fields"), "{text}");
            assert!(!text.contains("pa55word") && !text.contains("token123"), "{text}");
        }
        let err = Config::from_toml_str(&GOOD.replace("budget_usd = 500", "base_url = \"ftp://x/\""), "t").unwrap_err();
        assert!(err.to_string().contains("is not an http(s) URL"), "{err}");
    }

    #[test]
    fn big_files_and_secret_files_are_refused_unread() {
        figment::Jail::expect_with(|jail| {
            let big = format!("{GOOD}\n#{}\n", "x".repeat(MAX_CONFIG_BYTES as usize));
            jail.create_file("big.toml", &big)?;
            let err = Config::load(Path::new("big.toml")).unwrap_err();
            assert!(err.to_string().contains("larger than 1048576 bytes"), "{err}");
            let err = Config::from_toml_str(&big, "t").unwrap_err();
            assert!(err.to_string().contains("larger than 1048576 bytes"), "{err}");
            jail.create_file("secret.txt", &"k".repeat(MAX_SECRET_FILE_BYTES as usize + 1))?;
            let toml = GOOD.replace("api_key = \"k\"", "api_key_file = \"secret.txt\"");
            let err = Config::from_toml_str(&toml, "t").unwrap_err();
            assert_eq!(err.problems[0].path, "scaleengine[0].api_key_file", "{err}");
            assert!(err.to_string().contains("larger than 65536 bytes"), "{err}");
            jail.create_file("secret.txt", &"k".repeat(MAX_SECRET_BYTES + 1))?;
            let err = Config::from_toml_str(&toml, "t").unwrap_err();
            assert!(err.to_string().contains("longer than 4096 bytes"), "{err}");
            assert!(!err.to_string().contains("kkkk"), "{err}");
            Ok(())
        });
    }
}
