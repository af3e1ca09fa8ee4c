//! The `[[bunny]]` section: one table per bunny.net account, validated into a [`BunnyAccount`].
//! The bounds on what one account's answers may hold are keys of this table (with documented
//! defaults), not of the shared `[answer_limits]`, so that they travel with the provider.

use std::time::Duration;

use serde_json::Value;

use crate::secret::Secret;
use crate::validate::{Table, Validator, join, show};

/// The most ids `pull_zones` may list, and the highest `max_pull_zones` (1000).
pub const MAX_PULL_ZONES_LIMIT: usize = 1000;
/// The default `max_pull_zones` (100): zones broken down when `pull_zones` is empty.
pub const DEFAULT_MAX_PULL_ZONES: usize = 100;
/// The default `max_storage_zones` (100).
pub const DEFAULT_MAX_STORAGE_ZONES: usize = 100;
/// The default `answer_bytes` (4 MiB): the most bytes of one answer.
pub const DEFAULT_ANSWER_BYTES: usize = 4 << 20;
/// The default `list_entries` (10,000): the most entries of one list or chart of an answer.
pub const DEFAULT_LIST_ENTRIES: usize = 10_000;
/// The default `max_pages` (20): pages of `/pullzone` or `/storagezone` read in one poll.
pub const DEFAULT_MAX_PAGES: usize = 20;
/// The default and the largest `page_size` (1000, the API's `perPage` maximum; its minimum is 5).
pub const MAX_PAGE_SIZE: usize = 1000;

/// One `[[bunny]]` account.
#[derive(Debug, Clone, PartialEq)]
pub struct BunnyAccount {
    /// `name` (required): the `account` label.
    pub name: String,
    /// `api_key`, `api_key_env` or `api_key_file` (one required): the account API key, sent as
    /// the `AccessKey` header.
    pub api_key: Secret,
    /// `base_url` (default `https://api.bunny.net`).
    pub base_url: String,
    /// `pull_zones` (default empty: every zone, at most `max_pull_zones`): the ids of the pull
    /// zones broken down.
    pub pull_zones: Vec<i64>,
    /// `max_pull_zones` (default 100, at most 1000): with `pull_zones` empty, an account with
    /// more zones fails its per-zone polls rather than growing without bound.
    pub max_pull_zones: usize,
    /// `max_storage_zones` (default 100, at most 1000): storage zones exported.
    pub max_storage_zones: usize,
    /// `billing_interval` (default 15m): `/billing` and `/billing/summary`.
    pub billing_interval: Duration,
    /// `stats_interval` (default 1h): `/statistics`, one request per pull zone.
    pub stats_interval: Duration,
    /// `storage_interval` (default 1h): `/storagezone`.
    pub storage_interval: Duration,
    /// `timeout` (default 30s): per request.
    pub timeout: Duration,
    /// `max_age` (default: 3 × each job's interval): samples older than this leave `/metrics`.
    pub max_age: Option<Duration>,
    /// `budget_usd` (optional): exported as `cdn_billing_budget_usd`.
    pub budget_usd: Option<f64>,
    /// `answer_bytes` (default 4 MiB, 1 KiB to 256 MiB): the most bytes of one answer.
    pub answer_bytes: usize,
    /// `list_entries` (default 10,000, 1 to 1,000,000): the most entries of one list (billing
    /// records, summary items, a page of zones) or one chart (buckets) of an answer.
    pub list_entries: usize,
    /// `max_pages` (default 20, 1 to 1000): pages of one listing read in one poll.
    pub max_pages: usize,
    /// `page_size` (default 1000, 5 to 1000): the `perPage` asked for.
    pub page_size: usize,
}

/// Validates one `[[bunny]]` table.
pub fn parse_account(v: &mut Validator, t: &mut Table<'_>) -> Option<BunnyAccount> {
    let before = v.count();
    let name = v.name(t);
    let api_key = v.secret(t, "api_key");
    let base_url = v.base_url(t, super::DEFAULT_BASE_URL);
    let pull_zones = pull_zones(v, t);
    let max_pull_zones = v.integer(t, "max_pull_zones", 1, MAX_PULL_ZONES_LIMIT as i64);
    let max_storage_zones = v.integer(t, "max_storage_zones", 1, MAX_PULL_ZONES_LIMIT as i64);
    let billing_interval = v.duration(t, "billing_interval", Duration::from_secs(15 * 60));
    let stats_interval = v.duration(t, "stats_interval", Duration::from_secs(3600));
    let storage_interval = v.duration(t, "storage_interval", Duration::from_secs(3600));
    let timeout = v.duration(t, "timeout", Duration::from_secs(30));
    let max_age = v.optional_duration(t, "max_age");
    let budget_usd = v.number(t, "budget_usd");
    let answer_bytes = v.integer(t, "answer_bytes", 1024, 256 << 20);
    let list_entries = v.integer(t, "list_entries", 1, 1_000_000);
    let max_pages = v.integer(t, "max_pages", 1, 1000);
    let page_size = v.integer(t, "page_size", 5, MAX_PAGE_SIZE as i64);
    if v.count() > before {
        return None;
    }
    Some(BunnyAccount {
        name: name?,
        api_key: api_key?,
        base_url: base_url?,
        pull_zones,
        max_pull_zones: max_pull_zones.map_or(DEFAULT_MAX_PULL_ZONES, |n| n as usize),
        max_storage_zones: max_storage_zones.map_or(DEFAULT_MAX_STORAGE_ZONES, |n| n as usize),
        billing_interval: billing_interval?,
        stats_interval: stats_interval?,
        storage_interval: storage_interval?,
        timeout: timeout?,
        max_age: max_age?,
        budget_usd,
        answer_bytes: answer_bytes.map_or(DEFAULT_ANSWER_BYTES, |n| n as usize),
        list_entries: list_entries.map_or(DEFAULT_LIST_ENTRIES, |n| n as usize),
        max_pages: max_pages.map_or(DEFAULT_MAX_PAGES, |n| n as usize),
        page_size: page_size.map_or(MAX_PAGE_SIZE, |n| n as usize),
    })
}

/// `pull_zones`: positive whole ids, each once, at most [`MAX_PULL_ZONES_LIMIT`].
fn pull_zones(v: &mut Validator, t: &mut Table<'_>) -> Vec<i64> {
    let path = join(&t.path, "pull_zones");
    let items = match t.take("pull_zones") {
        None => return Vec::new(),
        Some(Value::Array(items)) if items.len() > MAX_PULL_ZONES_LIMIT => {
            v.problem(
                path,
                format!(
                    "{} pull zones; the limit is {MAX_PULL_ZONES_LIMIT}. List fewer, or split them over accounts.",
                    items.len()
                ),
            );
            return Vec::new();
        }
        Some(Value::Array(items)) => items,
        Some(other) => {
            v.problem(
                path,
                format!("{} is not a list of pull zone ids. Write it like `pull_zones = [112233]`.", show(other)),
            );
            return Vec::new();
        }
    };
    let mut ids: Vec<i64> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match item.as_i64() {
            Some(id) if id > 0 && !ids.contains(&id) => ids.push(id),
            Some(id) if id > 0 => {
                v.problem(format!("{path}[{i}]"), format!("{id} is listed twice. List each pull zone once."))
            }
            _ => v.problem(
                format!("{path}[{i}]"),
                format!(
                    "{} is not a pull zone id. Use the zone's positive numeric id (its Id in the bunny.net API).",
                    show(item)
                ),
            ),
        }
    }
    ids
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closures return figment::Error
mod tests {
    use super::*;
    use crate::config::Config;

    const MINIMAL: &str = "[[bunny]]\nname = \"b\"\napi_key = \"k-123\"\n";

    #[test]
    fn defaults_apply() {
        let c = Config::from_toml_str(MINIMAL, "test").unwrap();
        let a = c.accounts_of::<BunnyAccount>()[0];
        assert_eq!(a.base_url, "https://api.bunny.net");
        assert_eq!(a.api_key.expose(), "k-123");
        assert!(a.pull_zones.is_empty());
        assert_eq!((a.max_pull_zones, a.max_storage_zones), (100, 100));
        assert_eq!(a.billing_interval, Duration::from_secs(900));
        assert_eq!((a.stats_interval, a.storage_interval), (Duration::from_secs(3600), Duration::from_secs(3600)));
        assert_eq!(a.timeout, Duration::from_secs(30));
        assert_eq!((a.max_age, a.budget_usd), (None, None));
        assert_eq!((a.answer_bytes, a.list_entries, a.max_pages, a.page_size), (4 << 20, 10_000, 20, 1000));
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let toml = "[[bunny]]\nname = \"b\"\napi_key = \"k\"\napi_key_env = \"X\"\npull_zones = [1, 1, -3, \"x\"]\n\
                    billing_interval = \"soon\"\npage_size = 2\nbudget_usd = -1\nmax_pull_zones = 0\nzones = 1\n";
        let err = Config::from_toml_str(toml, "test").unwrap_err();
        let paths: Vec<&str> = err.problems.iter().map(|p| p.path.as_str()).collect();
        for p in [
            "bunny[0].api_key",
            "bunny[0].pull_zones[1]",
            "bunny[0].pull_zones[2]",
            "bunny[0].pull_zones[3]",
            "bunny[0].billing_interval",
            "bunny[0].page_size",
            "bunny[0].budget_usd",
            "bunny[0].max_pull_zones",
            "bunny[0].zones",
        ] {
            assert!(paths.contains(&p), "{p} not in {paths:?}");
        }
        assert!(!err.to_string().contains("\"k\""), "the key is never shown: {err}");
        let many: Vec<String> = (1..=MAX_PULL_ZONES_LIMIT + 1).map(|i| i.to_string()).collect();
        let err = Config::from_toml_str(&format!("{MINIMAL}pull_zones = [{}]\n", many.join(",")), "t").unwrap_err();
        assert!(err.problems[0].message.contains("the limit is 1000"), "{err}");
    }

    #[test]
    fn the_key_comes_from_env_or_file_and_never_prints() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("BUNNY_TEST_KEY", "from-env-7f");
            jail.create_file("key.txt", "from-file-9a\n")?;
            let c = Config::from_toml_str("[[bunny]]\nname = \"b\"\napi_key_env = \"BUNNY_TEST_KEY\"\n", "t")
                .map_err(|e| e.to_string())?;
            let a = c.accounts_of::<BunnyAccount>()[0];
            assert_eq!(a.api_key.expose(), "from-env-7f");
            assert!(!format!("{a:?}").contains("from-env-7f"));
            let c = Config::from_toml_str("[[bunny]]\nname = \"b\"\napi_key_file = \"key.txt\"\n", "t")
                .map_err(|e| e.to_string())?;
            assert_eq!(c.accounts_of::<BunnyAccount>()[0].api_key.expose(), "from-file-9a");
            Ok(())
        });
    }
}
