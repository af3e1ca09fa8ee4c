//! Configuration: defaults < TOML file < environment (`CDN_EXPORTER_*`), merged by figment,
//! then validated field by field so that every problem is reported at once, each with its
//! field path, its line and column in the file, and how to fix it.
//!
//! The top level (listen address, logs, limits, `[answer_limits]`, `shard`) is read here; each
//! provider reads its own `[[name]]` tables (`providers/<p>/config.rs`), reached through
//! [`registry`]. Every section reports into the same [`Validator`] (see [`crate::validate`] for
//! what a problem may and may not quote).

mod positions;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde_json::Value;

pub use crate::providers::common::limits::{AnswerLimits, RequestLimits};
use crate::providers::registry;
use crate::providers::{Account, AccountRef, CheckLimits};
use crate::shard::Shard;
pub use crate::validate::{Position, Problem, quote};
use crate::validate::{Table, Validator};

/// Prefix of environment variables that override top-level settings.
pub const ENV_PREFIX: &str = "CDN_EXPORTER_";

/// The default port (unassigned in the Prometheus default port allocations list).
pub const DEFAULT_PORT: u16 = 9862;

/// The largest configuration file read (1 MiB); a bigger one is refused before it is parsed.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;
/// The longest `log_level` directive (1024 bytes).
pub const MAX_LOG_LEVEL_BYTES: usize = 1024;

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
#[derive(Debug, Clone)]
pub struct Config {
    /// `listen_address`: where `/metrics` is served, if set in the file or environment.
    pub listen_address: Option<SocketAddr>,
    /// `log_level`: a level or an `EnvFilter` directive.
    pub log_level: Option<String>,
    /// `log_format`: `text` or `json`.
    pub log_format: Option<LogFormat>,
    /// Every provider's accounts: the providers in registry order, each one's in file order.
    pub accounts: Vec<AccountRef>,
    /// Limits on upstream requests and on the series served.
    pub limits: Limits,
    /// `shard` (default `"1/1"`): poll only the accounts whose name hashes into this shard
    /// (docs/scaling.md); `--shard` and `CDN_EXPORTER_SHARD` take precedence.
    pub shard: Shard,
    /// `[exchange_rates]`: US dollars per unit of each currency an account may bill in.
    pub rates: crate::currency::Rates,
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

impl Limits {
    /// The limits every upstream request passes.
    pub fn requests(&self) -> RequestLimits {
        RequestLimits {
            max_in_flight: self.max_in_flight,
            max_in_flight_per_provider: self.max_in_flight_per_provider,
            retries: self.retries,
            answers: self.answers,
        }
    }
}

impl PartialEq for Config {
    fn eq(&self, other: &Self) -> bool {
        self.listen_address == other.listen_address
            && self.log_level == other.log_level
            && self.log_format == other.log_format
            && self.limits == other.limits
            && self.shard == other.shard
            && self.rates == other.rates
            && self.accounts.len() == other.accounts.len()
            && self.accounts.iter().zip(&other.accounts).all(|(a, b)| a.same(&**b))
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
        let doc = toml_edit::ImDocument::parse(toml).map_err(|e| fail(positions::syntax_problem(toml, &e)))?;
        let positions = positions::key_positions(toml, &doc);
        let figment = Figment::new().merge(Toml::string(toml)).merge(env_provider());
        Self::from_figment(figment, source_name).map_err(|mut e| {
            e.locate(&positions);
            e
        })
    }

    /// Validates whatever `figment` holds.
    pub fn from_figment(figment: Figment, source_name: &str) -> Result<Config, ConfigError> {
        let root: Value = figment.extract().map_err(|e| ConfigError {
            source_name: source_name.to_owned(),
            problems: vec![positions::figment_problem(&e)],
        })?;
        let mut v = Validator::default();
        let config = validate_root(&mut v, &root);
        match config {
            Some(c) if v.problems.is_empty() => Ok(c),
            _ => Err(ConfigError { source_name: source_name.to_owned(), problems: v.problems }),
        }
    }

    /// Number of accounts of every provider.
    pub fn account_count(&self) -> usize {
        self.accounts.len()
    }

    /// The accounts this process polls: those of its [`Config::shard`].
    pub fn sharded_accounts(&self) -> impl Iterator<Item = &AccountRef> {
        self.accounts.iter().filter(|a| self.shard.owns(a.name()))
    }

    /// How many accounts this process polls: those of its [`Config::shard`].
    pub fn sharded_account_count(&self) -> usize {
        self.sharded_accounts().count()
    }

    /// The accounts of one concrete type (one provider's), in file order.
    pub fn accounts_of<A: Account>(&self) -> Vec<&A> {
        self.accounts.iter().filter_map(|a| a.as_any().downcast_ref::<A>()).collect()
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

/// Validates the top level and, through the registry, every provider's section.
fn validate_root(v: &mut Validator, root: &Value) -> Option<Config> {
    let mut table = v.table(String::new(), root)?;
    let t = &mut table;
    let listen_address = v.string(t, "listen_address").and_then(|s| match s.parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            v.problem(
                "listen_address",
                format!("{} is not an address. Write it as host:port, e.g. \"0.0.0.0:{DEFAULT_PORT}\".", quote(&s)),
            );
            None
        }
    });
    let log_level = v.bounded_string(t, "log_level", MAX_LOG_LEVEL_BYTES);
    let log_format = v.string(t, "log_format").and_then(|s| match s.as_str() {
        "text" => Some(LogFormat::Text),
        "json" => Some(LogFormat::Json),
        _ => {
            v.problem("log_format", format!("{} is not a log format. Use \"text\" or \"json\".", quote(&s)));
            None
        }
    });
    let shard = v.string(t, "shard").map_or(Shard::ALL, |s| match s.parse::<Shard>() {
        Ok(shard) => shard,
        Err(e) => {
            v.problem("shard", format!("{} {e}.", quote(&s)));
            Shard::ALL
        }
    });
    let d = Limits::default();
    let max_in_flight = v.integer(t, "max_in_flight", 1, 10_000).map_or(d.max_in_flight, |n| n as usize);
    let max_in_flight_per_provider =
        v.integer(t, "max_in_flight_per_provider", 1, 10_000).map_or(d.max_in_flight_per_provider, |n| n as usize);
    let retries = v.integer(t, "retries", 0, 10).map_or(d.retries, |n| n as u32);
    let max_series = v.integer(t, "max_series", 1, 100_000_000).map_or(d.max_series, |n| n as usize);
    let max_traffic_domains =
        v.integer(t, "max_traffic_domains", 1, 1_000_000).map_or(d.max_traffic_domains, |n| n as usize);
    let answers = answer_limits(v, t);
    let rates = crate::currency::parse(v, t.take("exchange_rates"));
    let limits =
        Limits { max_in_flight, max_in_flight_per_provider, retries, max_series, max_traffic_domains, answers };
    let accounts = registry::parse_accounts(v, t);
    v.unknown(table);
    registry::check_accounts(v, &accounts, &CheckLimits { max_traffic_domains });
    let config = Config { listen_address, log_level, log_format, accounts, limits, shard, rates };
    if config.account_count() == 0 && v.problems.is_empty() {
        let tables: Vec<String> = registry::NAMES.iter().map(|n| format!("[[{n}]]")).collect();
        v.problem(
            registry::NAMES[0],
            format!("no account is configured. Add a {} table (see deploy/config.example.toml).", tables.join(" or ")),
        );
    }
    Some(config)
}

/// `[answer_limits]`: each key optional, each a whole number in a range that keeps the
/// exporter useful (an answer of a few KiB at least) and bounded (1 GiB at most).
fn answer_limits(v: &mut Validator, root: &mut Table<'_>) -> AnswerLimits {
    let d = AnswerLimits::default();
    let Some(value) = root.take("answer_limits") else {
        return d;
    };
    let Some(mut t) = v.table("answer_limits".into(), value) else {
        return d;
    };
    let mut bytes = |v: &mut Validator, key: &str, default: usize| {
        v.integer(&mut t, key, 4096, 1 << 30).map_or(default, |n| n as usize)
    };
    let summary_bytes = bytes(v, "summary_bytes", d.summary_bytes);
    let billing_bytes = bytes(v, "billing_bytes", d.billing_bytes);
    let disk_bytes = bytes(v, "disk_bytes", d.disk_bytes);
    let video_page_bytes = bytes(v, "video_page_bytes", d.video_page_bytes);
    let domain_usage_bytes = bytes(v, "domain_usage_bytes", d.domain_usage_bytes);
    let traffic_bytes = bytes(v, "traffic_bytes", d.traffic_bytes);
    let table_rows = v.integer(&mut t, "table_rows", 1, 1_000_000).map_or(d.table_rows, |n| n as usize);
    let page_entries = v.integer(&mut t, "page_entries", 1, 1_000_000).map_or(d.page_entries, |n| n as usize);
    let video_pages = v.integer(&mut t, "video_pages", 1, 100_000).map_or(d.video_pages, |n| n as usize);
    v.unknown(t);
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

#[cfg(test)]
pub(crate) mod tests;
