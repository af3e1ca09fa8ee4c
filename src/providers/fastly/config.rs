//! The `[[fastly]]` section: one table per account, validated into a [`FastlyAccount`].

use std::time::Duration;

use serde_json::Value;

use crate::secret::Secret;
use crate::validate::{Table, Validator, join, kind, quote};

/// The longest service id (64 bytes; Fastly's are 22 characters).
pub const MAX_SERVICE_ID_BYTES: usize = 64;
/// The longest area name (32 bytes; Fastly's longest is `southamerica_std`).
pub const MAX_AREA_BYTES: usize = 32;
/// The most `areas` (32): each costs up to two requests per stats poll.
pub const MAX_AREAS: usize = 32;
/// The areas asked for by default: the `region` values of the newest historical-stats spec.
/// Traffic in any other area (`latam` and `south_africa` of older docs, or a new one) is
/// exported as `area="other"`, the account's total less these.
pub const DEFAULT_AREAS: &[&str] =
    &["usa", "europe", "anzac", "asia", "asia_india", "asia_southkorea", "africa_std", "southamerica_std", "mexico"];
/// `max_services` default (100) and ceiling (1000).
pub const DEFAULT_MAX_SERVICES: usize = 100;
/// The highest `max_services`.
pub const MAX_SERVICES: usize = 1000;
/// `max_line_items` default (1000): line items of one invoice.
pub const DEFAULT_MAX_LINE_ITEMS: usize = 1000;
/// `max_pages` default (20): pages of one listing (`/service`, `/billing/v3/invoices`) per poll.
pub const DEFAULT_MAX_PAGES: usize = 20;
/// `answer_bytes` default (8 MiB): the most bytes of any one answer.
pub const DEFAULT_ANSWER_BYTES: usize = 8 << 20;
/// The shortest `stats_settle` (3h). The key is still read so that older files load, but it has
/// no effect since usage comes whole from `/stats/usage_by_service` (docs/providers/fastly.md).
pub const MIN_STATS_SETTLE: Duration = Duration::from_secs(3 * 3600);
/// The longest `stats_settle` (7d).
pub const MAX_STATS_SETTLE: Duration = Duration::from_secs(7 * 86_400);

/// One `[[fastly]]` account.
#[derive(Debug, Clone, PartialEq)]
pub struct FastlyAccount {
    /// `name` (required): the `account` label.
    pub name: String,
    /// Where it sits in the file (`fastly[0]`), for error messages.
    pub path: String,
    /// `base_url` (default `https://api.fastly.com`).
    pub base_url: String,
    /// `api_token` (or `_env`, `_file`): sent as `Fastly-Key`.
    pub api_token: Secret,
    /// `services` (default empty: every service `GET /service` lists): the service ids that
    /// usage is broken down by.
    pub services: Vec<String>,
    /// `areas` (default [`DEFAULT_AREAS`]): the stats `region` values usage is broken down by;
    /// empty: one `area="all"` per service.
    pub areas: Vec<String>,
    /// `invoice_interval` (default 1h): the month-to-date and last-month invoice jobs.
    pub invoice_interval: Duration,
    /// `stats_interval` (default 1h): the usage job.
    pub stats_interval: Duration,
    /// `currency` (optional, a three-letter ISO 4217 code): the currency the account is billed
    /// in, for when no answer says it: the month-to-date invoice never does, and an account may
    /// have no end-of-month invoice yet. An invoice that names its currency wins.
    pub currency: Option<String>,
    /// `timeout` (default 30s): per request.
    pub timeout: Duration,
    /// `max_age` (default 3 × the job's interval): samples older than this leave `/metrics`.
    pub max_age: Option<Duration>,
    /// `budget_usd` (optional): exported as `cdn_billing_budget_usd`.
    pub budget_usd: Option<f64>,
    /// `max_services` (default 100, at most 1000): services listed or configured, and services
    /// in one stats answer.
    pub max_services: usize,
    /// `max_line_items` (default 1000): line items of one invoice.
    pub max_line_items: usize,
    /// `max_pages` (default 20): pages of one listing in one poll.
    pub max_pages: usize,
    /// `answer_bytes` (default 8 MiB): the most bytes of one answer.
    pub answer_bytes: usize,
}

/// Validates one `[[fastly]]` table.
pub fn parse_account(v: &mut Validator, t: &mut Table<'_>) -> Option<FastlyAccount> {
    let before = v.count();
    let name = v.name(t);
    let base_url = v.base_url(t, super::DEFAULT_BASE_URL);
    let api_token = v.secret(t, "api_token");
    if api_token.as_ref().is_some_and(|s| s.expose().chars().any(|c| c.is_control() || c == ' ')) {
        v.problem(join(&t.path, "api_token"), "has spaces or control characters. Paste the token alone.");
    }
    let max_services = integer(v, t, "max_services", DEFAULT_MAX_SERVICES, MAX_SERVICES);
    let services = services(v, t, max_services.unwrap_or(MAX_SERVICES));
    let areas = areas(v, t);
    let invoice_interval = v.duration(t, "invoice_interval", Duration::from_secs(3600));
    let stats_interval = v.duration(t, "stats_interval", Duration::from_secs(3600));
    let settle_path = join(&t.path, "stats_settle");
    // Read and checked so that older files load; it no longer changes anything.
    let stats_settle = v.duration(t, "stats_settle", Duration::from_secs(6 * 3600));
    if stats_settle.is_some_and(|d| !(MIN_STATS_SETTLE..=MAX_STATS_SETTLE).contains(&d)) {
        v.problem(
            settle_path,
            "is out of range. Fastly's day buckets appear about 2 hours after the UTC day ends, and \
             younger days are summed from hourly buckets on every poll: use \"3h\" to \"7d\".",
        );
    }
    let currency = currency(v, t);
    let timeout = v.duration(t, "timeout", Duration::from_secs(30));
    let max_age = v.optional_duration(t, "max_age");
    let budget_usd = v.number(t, "budget_usd");
    let max_line_items = integer(v, t, "max_line_items", DEFAULT_MAX_LINE_ITEMS, 100_000);
    let max_pages = integer(v, t, "max_pages", DEFAULT_MAX_PAGES, 1000);
    let answer_bytes = match v.integer(t, "answer_bytes", 1024, 256 << 20) {
        Some(n) => Some(n as usize),
        None if v.reported(&join(&t.path, "answer_bytes")) => None,
        None => Some(DEFAULT_ANSWER_BYTES),
    };
    stats_settle?;
    let path = t.path.clone();
    if v.count() > before {
        return None;
    }
    Some(FastlyAccount {
        name: name?,
        path,
        base_url: base_url?,
        api_token: api_token?,
        services,
        areas,
        invoice_interval: invoice_interval?,
        stats_interval: stats_interval?,
        currency,
        timeout: timeout?,
        max_age: max_age?,
        budget_usd,
        max_services: max_services?,
        max_line_items: max_line_items?,
        max_pages: max_pages?,
        answer_bytes: answer_bytes?,
    })
}

/// `currency`: three ASCII letters, upper-cased; absent: `None`.
fn currency(v: &mut Validator, t: &mut Table<'_>) -> Option<String> {
    let path = join(&t.path, "currency");
    let c = v.bounded_string(t, "currency", 16)?;
    if c.len() == 3 && c.chars().all(|ch| ch.is_ascii_alphabetic()) {
        return Some(c.to_ascii_uppercase());
    }
    v.problem(path, format!("{} is not a currency code. Use the three letters of ISO 4217, e.g. \"USD\".", quote(&c)));
    None
}

/// A whole number from 1 to `max`; `default` when absent.
fn integer(v: &mut Validator, t: &mut Table<'_>, key: &str, default: usize, max: usize) -> Option<usize> {
    match v.integer(t, key, 1, max as i64) {
        Some(n) => Some(n as usize),
        None if v.reported(&join(&t.path, key)) => None,
        None => Some(default),
    }
}

/// A list of strings under `key`, each checked by `valid`, none twice, at most `max`.
fn list(
    v: &mut Validator,
    t: &mut Table<'_>,
    key: &str,
    max: usize,
    max_bytes: usize,
    valid: fn(&str) -> bool,
    what: &str,
) -> Option<Vec<String>> {
    let path = join(&t.path, key);
    let items = match t.take(key)? {
        Value::Array(items) if items.len() > max => {
            v.problem(path, format!("{} entries; the limit is {max}.", items.len()));
            return Some(Vec::new());
        }
        Value::Array(items) => items,
        other => {
            v.problem(path, format!("expected an array of strings, found {}.", kind(other)));
            return Some(Vec::new());
        }
    };
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for (j, item) in items.iter().enumerate() {
        let p = format!("{path}[{j}]");
        match item {
            Value::String(s) if s.len() > max_bytes => {
                v.problem(p, format!("is {} bytes long; the limit is {max_bytes} bytes.", s.len()));
            }
            Value::String(s) if !valid(s) => v.problem(p, format!("{} is not {what}.", quote(s))),
            Value::String(s) if out.contains(s) => {
                v.problem(p, format!("{} is listed twice. List each once.", quote(s)));
            }
            Value::String(s) => out.push(s.clone()),
            other => v.problem(p, format!("expected a string, found {}. Quote it.", kind(other))),
        }
    }
    Some(out)
}

fn services(v: &mut Validator, t: &mut Table<'_>, max: usize) -> Vec<String> {
    let valid = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
    list(
        v,
        t,
        "services",
        max,
        MAX_SERVICE_ID_BYTES,
        valid,
        "a service id (letters, digits, '-' and '_', as in \"SU1Z0isxPaozGVKXdv0eY\"); raise max_services for more",
    )
    .unwrap_or_default()
}

fn areas(v: &mut Validator, t: &mut Table<'_>) -> Vec<String> {
    let valid = |s: &str| {
        !s.is_empty()
            && !matches!(s, "all" | "other")
            && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    };
    list(
        v,
        t,
        "areas",
        MAX_AREAS,
        MAX_AREA_BYTES,
        valid,
        "a Fastly stats region (lowercase letters, digits and '_', e.g. \"europe\"; \"all\" and \"other\" are the exporter's own)",
    )
    .unwrap_or_else(|| DEFAULT_AREAS.iter().map(|a| (*a).to_owned()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const GOOD: &str = "[[fastly]]\nname = \"f\"\napi_token = \"tok-1\"\n";

    #[test]
    fn fastly_defaults() {
        let c = Config::from_toml_str(GOOD, "test").unwrap();
        let a = c.accounts_of::<FastlyAccount>()[0];
        assert_eq!(a.base_url, "https://api.fastly.com");
        assert_eq!(a.api_token.expose(), "tok-1");
        assert!(a.services.is_empty());
        assert_eq!(a.areas, DEFAULT_AREAS);
        assert_eq!((a.invoice_interval, a.stats_interval), (Duration::from_secs(3600), Duration::from_secs(3600)));
        assert_eq!((a.currency.as_deref(), a.timeout), (None, Duration::from_secs(30)));
        assert_eq!((a.max_age, a.budget_usd), (None, None));
        assert_eq!((a.max_services, a.max_line_items, a.max_pages), (100, 1000, 20));
        assert_eq!(a.answer_bytes, 8 << 20);
        let c = Config::from_toml_str(
            &format!(
                "{GOOD}services = [\"SVC_a-1\", \"b\"]\nareas = []\nbudget_usd = 900\nmax_services = 2\ncurrency = \"eur\"\nstats_settle = \"1d\"\n"
            ),
            "test",
        )
        .unwrap();
        let a = c.accounts_of::<FastlyAccount>()[0];
        assert_eq!(a.services, ["SVC_a-1", "b"]);
        assert!(a.areas.is_empty());
        assert_eq!(a.budget_usd, Some(900.0));
        assert_eq!(a.currency.as_deref(), Some("EUR"));
    }

    #[test]
    fn fastly_problems_have_paths_and_the_token_never_shows() {
        let bad = r#"
            [[fastly]]
            name = "f"
            api_token = "secret-token-1"
            api_token_env = "X"
            services = ["ok", "a b", "ok", 7]
            areas = ["europe", "all", "Europe"]
            stats_settle = "1h"
            currency = "US$"
            max_pages = 0
            answer_bytes = 10
            budget_usd = -5
            [[fastly]]
            name = "g"
            max_services = 1
            services = ["a", "b"]
            invoice_interval = "0s"
            extra = 1
        "#;
        let err = Config::from_toml_str(bad, "test").unwrap_err();
        let paths: Vec<&str> = err.problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "fastly[0].api_token",
                "fastly[0].services[1]",
                "fastly[0].services[2]",
                "fastly[0].services[3]",
                "fastly[0].areas[1]",
                "fastly[0].areas[2]",
                "fastly[0].stats_settle",
                "fastly[0].currency",
                "fastly[0].budget_usd",
                "fastly[0].max_pages",
                "fastly[0].answer_bytes",
                "fastly[1].api_token",
                "fastly[1].services",
                "fastly[1].invoice_interval",
                "fastly[1].extra",
            ],
            "{err}"
        );
        assert!(!err.to_string().contains("secret-token-1"), "{err}");
        assert!(err.problems[1].message.contains("service id"), "{err}");
        assert!(err.problems[6].message.contains("\"3h\" to \"7d\""), "{err}");
        assert!(err.problems[7].message.contains("ISO 4217"), "{err}");
    }
}
