//! The `[[scaleengine]]` section: one table per account, validated into a
//! [`ScaleEngineAccount`].

use std::fmt;
use std::time::Duration;

use serde_json::Value;

use crate::secret::Secret;
use crate::validate::{Table, Validator, join, show};

/// The longest video app name (256 bytes).
pub const MAX_APP_NAME_BYTES: usize = 256;
/// The most entries in `video_apps` (100).
pub const MAX_VIDEO_APPS: usize = 100;

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
    /// `last_month_interval` (default 6h): how often last month's final bill (`usage.billing`)
    /// is read; it changes only when the month turns.
    pub last_month_interval: Duration,
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

/// Validates one `[[scaleengine]]` table.
pub fn parse_account(v: &mut Validator, t: &mut Table<'_>) -> Option<ScaleEngineAccount> {
    let before = v.count();
    let name = v.name(t);
    let cdn = v.integer(t, "cdn", 1, i64::from(i32::MAX));
    if cdn.is_none() && !v.reported(&join(&t.path, "cdn")) {
        v.problem(join(&t.path, "cdn"), "missing. Set it to your ScaleEngine CDN id, e.g. `cdn = 158`.");
    }
    let api_key = v.secret(t, "api_key");
    let api_secret = v.secret(t, "api_secret");
    let base_url = v.base_url(t, super::DEFAULT_BASE_URL);
    let timeout = v.duration(t, "timeout", Duration::from_secs(30));
    let summary_interval = v.duration(t, "summary_interval", Duration::from_secs(15 * 60));
    let billing_interval = v.duration(t, "billing_interval", Duration::from_secs(15 * 60));
    let last_month_interval = v.duration(t, "last_month_interval", Duration::from_secs(6 * 3600));
    let disk_interval = v.duration(t, "disk_interval", Duration::from_secs(3600));
    let video_interval = v.duration(t, "video_interval", Duration::from_secs(3600));
    let video_apps = video_apps(v, t);
    let video_top_n = v.integer(t, "video_top_n", 1, 10_000).unwrap_or(20) as usize;
    let budget_usd = v.number(t, "budget_usd");
    let max_age = v.optional_duration(t, "max_age");
    if v.count() > before {
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
        last_month_interval: last_month_interval?,
        disk_interval: disk_interval?,
        video_interval: video_interval?,
        video_apps,
        video_top_n,
        budget_usd,
        max_age: max_age?,
    })
}

fn video_apps(v: &mut Validator, t: &mut Table<'_>) -> Vec<VideoApp> {
    let path = join(&t.path, "video_apps");
    let Some(value) = t.take("video_apps") else {
        return Vec::new();
    };
    let items: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        single => vec![single],
    };
    if items.len() > MAX_VIDEO_APPS {
        v.problem(path, format!("{} apps; the limit is {MAX_VIDEO_APPS}. List fewer apps.", items.len()));
        return Vec::new();
    }
    let mut apps = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        match item {
            Value::String(s) if s.len() > MAX_APP_NAME_BYTES => v.problem(
                format!("{path}[{i}]"),
                format!("is {} bytes long; the limit is {MAX_APP_NAME_BYTES} bytes. Use the app's name.", s.len()),
            ),
            Value::String(s) if s.chars().any(char::is_control) => v.problem(
                format!("{path}[{i}]"),
                "has a control character. Use the app's name as the ScaleEngine panel shows it.",
            ),
            Value::String(s) if !s.trim().is_empty() => apps.push(VideoApp::Name(s.clone())),
            Value::Number(n) if n.as_i64().is_some_and(|n| n > 0) => {
                apps.push(VideoApp::Id(n.as_i64().unwrap_or_default()))
            }
            other => v.problem(
                format!("{path}[{i}]"),
                format!("{} is not an app. Use an app name (\"live\") or a positive app id (42).", show(other)),
            ),
        }
    }
    apps
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closures return figment::Error
mod tests {
    use super::*;
    use crate::config::tests::GOOD;
    use crate::config::{AnswerLimits, Config};

    #[test]
    fn defaults_apply() {
        let c = Config::from_toml_str(GOOD, "test").unwrap();
        let a = c.accounts_of::<ScaleEngineAccount>()[0];
        assert_eq!(a.base_url, super::super::DEFAULT_BASE_URL);
        assert_eq!(a.summary_interval, Duration::from_secs(900));
        assert_eq!(a.disk_interval, Duration::from_secs(3600));
        assert_eq!(a.timeout, Duration::from_secs(30));
        assert_eq!(a.video_top_n, 20);
        assert_eq!(a.video_apps, vec![VideoApp::Name("live".into()), VideoApp::Id(42)]);
        assert_eq!(a.budget_usd, Some(500.0));
        assert_eq!(c.limits.answers, AnswerLimits::default());
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
            assert_eq!(c.accounts_of::<ScaleEngineAccount>()[0].api_key.expose(), "from-file");
            assert_eq!(c.accounts_of::<ScaleEngineAccount>()[0].api_secret.expose(), "from-env");
            let missing = toml.replace("SE_TEST_SECRET", "SE_TEST_UNSET");
            let err = Config::from_toml_str(&missing, "test").unwrap_err();
            assert!(err.to_string().contains("SE_TEST_UNSET is not set"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn video_apps_are_bounded() {
        let long = |n: usize| "a".repeat(n);
        let apps = GOOD.replace("[\"live\", 42]", &format!("[\"{}\", \"x\\ty\"]", long(MAX_APP_NAME_BYTES + 1)));
        let err = Config::from_toml_str(&apps, "t").unwrap_err();
        let paths: Vec<&str> = err.problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["scaleengine[0].video_apps[0]", "scaleengine[0].video_apps[1]"], "{err}");
        let many: Vec<String> = (0..=MAX_VIDEO_APPS).map(|i| i.to_string()).collect();
        let err =
            Config::from_toml_str(&GOOD.replace("[\"live\", 42]", &format!("[{}]", many.join(","))), "t").unwrap_err();
        assert!(err.problems[0].message.contains("the limit is 100"), "{err}");
    }
}
