//! Typed readers of one field each: strings (bounded), whole numbers (in a range), booleans,
//! non-negative numbers, durations, credentials (inline, `_env` or `_file`), account names and
//! base URLs. Each reports a problem at the field's path and returns `None`; defaults apply only
//! to keys that are absent.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::{MAX_NAME_BYTES, Reported, Table, Validator, join, kind, show};
use crate::secret::Secret;

/// The largest credential file read through a `*_file` key (64 KiB).
pub const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;
/// The longest credential, once trimmed (4096 bytes).
pub const MAX_SECRET_BYTES: usize = 4096;
/// The longest `base_url` (2048 bytes).
pub const MAX_URL_BYTES: usize = 2048;

impl Validator {
    /// A string, if present.
    pub fn string(&mut self, t: &mut Table<'_>, key: &str) -> Option<String> {
        self.bounded_string(t, key, usize::MAX)
    }

    /// A string of at most `max` bytes (the message names the bound, never the value).
    pub fn bounded_string(&mut self, t: &mut Table<'_>, key: &str, max: usize) -> Option<String> {
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

    /// A whole number from `min` to `max`, if present.
    pub fn integer(&mut self, t: &mut Table<'_>, key: &str, min: i64, max: i64) -> Option<i64> {
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
    pub fn boolean(&mut self, t: &mut Table<'_>, key: &str, default: bool) -> Option<bool> {
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

    /// A finite number of at least 0, if present.
    pub fn number(&mut self, t: &mut Table<'_>, key: &str) -> Option<f64> {
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

    /// A duration from 1s to 31d (`"15m"` or seconds); `default` when absent.
    pub fn duration(&mut self, t: &mut Table<'_>, key: &str, default: Duration) -> Option<Duration> {
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
    pub fn optional_duration(&mut self, t: &mut Table<'_>, key: &str) -> Option<Option<Duration>> {
        if !t.has(key) {
            return Some(None);
        }
        self.duration(t, key, Duration::ZERO).map(Some)
    }

    /// `key`, `key_env` or `key_file`: exactly one, resolved now.
    pub fn secret(&mut self, t: &mut Table<'_>, key: &str) -> Option<Secret> {
        match self.secret_opt(t, key) {
            Ok(Some(s)) => Some(s),
            Ok(None) => {
                self.problem(
                    join(&t.path, key),
                    format!("missing. Set exactly one of {key}, {key}_env or {key}_file."),
                );
                None
            }
            Err(Reported) => None,
        }
    }

    /// `key`, `key_env` or `key_file`: at most one. `Ok(None)` when none is given, `Err` when a
    /// problem was recorded.
    pub fn secret_opt(&mut self, t: &mut Table<'_>, key: &str) -> Result<Option<Secret>, Reported> {
        let env_key = format!("{key}_env");
        let file_key = format!("{key}_file");
        let before = self.problems.len();
        let inline = self.string(t, key);
        let env = self.string(t, &env_key);
        let file = self.string(t, &file_key);
        if self.problems.len() > before {
            return Err(Reported);
        }
        let path = join(&t.path, key);
        let given = [inline.is_some(), env.is_some(), file.is_some()].iter().filter(|b| **b).count();
        if given > 1 {
            self.problem(path, format!("given more than once. Set exactly one of {key}, {env_key} or {file_key}."));
            return Err(Reported);
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
                    return Err(Reported);
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
                    return Err(Reported);
                }
            }
        } else {
            return Ok(None);
        };
        let value = value.trim();
        if value.is_empty() {
            self.problem(path, "is empty. Give the credential from the provider's control panel.");
            return Err(Reported);
        }
        if value.len() > MAX_SECRET_BYTES {
            self.problem(
                path,
                format!(
                    "is longer than {MAX_SECRET_BYTES} bytes. Give the credential from the provider's control panel."
                ),
            );
            return Err(Reported);
        }
        Ok(Some(Secret::new(value)))
    }

    /// The account's `name`: required, non-empty, bounded, without control characters.
    pub fn name(&mut self, t: &mut Table<'_>) -> Option<String> {
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
    pub fn base_url(&mut self, t: &mut Table<'_>, default: &str) -> Option<String> {
        self.url(t, "base_url", default)
    }

    /// [`Validator::base_url`] under another key (`endpoint_url`); `default` is the example the
    /// message gives, and the value when the key is absent.
    pub fn url(&mut self, t: &mut Table<'_>, key: &str, default: &str) -> Option<String> {
        let path = join(&t.path, key);
        let url = match t.has(key) {
            true => self.bounded_string(t, key, MAX_URL_BYTES)?,
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
}
