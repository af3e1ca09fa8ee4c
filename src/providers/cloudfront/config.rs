//! The `[[cloudfront]]` section: one table per AWS account, validated into a
//! [`CloudFrontAccount`]. Credentials are resolved here, in the order of precedence:
//! the table's keys, else the environment's `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` /
//! `AWS_SESSION_TOKEN`, else web identity (`AWS_ROLE_ARN` + `AWS_WEB_IDENTITY_TOKEN_FILE`, as
//! EKS sets them); then, with `role_arn`, `AssumeRole` into that role.

use std::time::Duration;

use serde_json::Value;

use crate::secret::Secret;
use crate::validate::{Table, Validator, join, quote, show};

/// The most ids `distributions` may list, and the highest `max_distributions` (1000).
pub const MAX_DISTRIBUTIONS_LIMIT: usize = 1000;
/// The default `max_distributions` (100): distributions broken down when `distributions` is
/// empty (one `ListDistributions` page).
pub const DEFAULT_MAX_DISTRIBUTIONS: usize = 100;
/// The default `answer_bytes` (8 MiB): the most bytes of one answer.
pub const DEFAULT_ANSWER_BYTES: usize = 8 << 20;
/// The default `max_items` (300): usage types (the `item` label) kept from one Cost Explorer
/// answer; the rest are summed into `item="other"`.
pub const DEFAULT_MAX_ITEMS: usize = 300;
/// The default `max_pages` (5): pages of one Cost Explorer or `ListDistributions` answer read
/// in one poll. Each Cost Explorer page is a billed request ($0.01).
pub const DEFAULT_MAX_PAGES: usize = 5;
/// The session name `AssumeRole` and `AssumeRoleWithWebIdentity` are called with by default.
pub const DEFAULT_SESSION_NAME: &str = "cdn-usage-exporter";
/// The Cost Explorer `SERVICE` value of CloudFront's charges.
pub const DEFAULT_SERVICE: &str = "Amazon CloudFront";

/// Which Cost Explorer figure is spend (`cost_metric`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CostMetric {
    /// `UnblendedCost` (default): before discounts; what member accounts may always read.
    Unblended,
    /// `NetUnblendedCost`: after discounts and credits.
    NetUnblended,
    /// `AmortizedCost`: upfront fees spread over the term.
    Amortized,
    /// `NetAmortizedCost`.
    NetAmortized,
}

impl CostMetric {
    /// Every metric, with its configuration name.
    pub const ALL: [(CostMetric, &'static str); 4] = [
        (CostMetric::Unblended, "UnblendedCost"),
        (CostMetric::NetUnblended, "NetUnblendedCost"),
        (CostMetric::Amortized, "AmortizedCost"),
        (CostMetric::NetAmortized, "NetAmortizedCost"),
    ];

    /// The name in `GetCostAndUsage` (`UnblendedCost`).
    pub fn name(self) -> &'static str {
        Self::ALL.iter().find(|(m, _)| *m == self).map_or("UnblendedCost", |(_, n)| n)
    }

    /// The name in `GetCostForecast` (`UNBLENDED_COST`).
    pub fn forecast_name(self) -> &'static str {
        match self {
            CostMetric::Unblended => "UNBLENDED_COST",
            CostMetric::NetUnblended => "NET_UNBLENDED_COST",
            CostMetric::Amortized => "AMORTIZED_COST",
            CostMetric::NetAmortized => "NET_AMORTIZED_COST",
        }
    }
}

/// Long-lived keys: from the table or from the environment.
#[derive(Debug, Clone, PartialEq)]
pub struct StaticKeys {
    /// `AKIA…` (or `ASIA…` with a session token).
    pub access_key_id: Secret,
    /// The secret access key.
    pub secret_access_key: Secret,
    /// The session token, for temporary keys.
    pub session_token: Option<Secret>,
}

/// Where the account's first credentials come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// The table's keys (`"config"`) or the environment's (`"environment"`).
    Keys {
        /// The keys.
        keys: StaticKeys,
        /// `config` or `environment`, for the status page.
        from: &'static str,
    },
    /// `AssumeRoleWithWebIdentity` with the token in a file (re-read at every renewal).
    WebIdentity {
        /// `AWS_ROLE_ARN`.
        role_arn: String,
        /// `AWS_WEB_IDENTITY_TOKEN_FILE`.
        token_file: String,
        /// `AWS_ROLE_SESSION_NAME`, else [`DEFAULT_SESSION_NAME`].
        session_name: Secret,
    },
}

/// `role_arn` and its companions: the role assumed with the first credentials.
#[derive(Debug, Clone, PartialEq)]
pub struct AssumeRole {
    /// `role_arn`.
    pub role_arn: String,
    /// `external_id` (optional; a shared secret with the role's owner, never printed).
    pub external_id: Option<Secret>,
    /// `role_session_name` (default `cdn-usage-exporter`; never printed: it names the
    /// session in the account's CloudTrail).
    pub session_name: Secret,
    /// `role_duration` (default 1h, 15m to 12h): how long the temporary credentials last.
    pub duration: Duration,
}

/// One `[[cloudfront]]` account.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudFrontAccount {
    /// `name` (required): the `account` label.
    pub name: String,
    /// The first credentials.
    pub source: Source,
    /// `role_arn` (optional): the role assumed with them.
    pub assume_role: Option<AssumeRole>,
    /// `endpoint_url` (optional): one URL for every AWS API of the account (tests, VPC
    /// endpoints); absent, each API's public endpoint in `us-east-1`.
    pub endpoint_url: Option<String>,
    /// `distributions` (default empty: every distribution `ListDistributions` returns, at most
    /// `max_distributions`).
    pub distributions: Vec<String>,
    /// `max_distributions` (default 100, at most 1000).
    pub max_distributions: usize,
    /// `cost_metric` (default `UnblendedCost`).
    pub cost_metric: CostMetric,
    /// `service` (default `Amazon CloudFront`): the Cost Explorer `SERVICE` filtered on.
    pub service: String,
    /// `forecast` (default true): ask Cost Explorer's `GetCostForecast` (two billed requests a
    /// `cost_interval`).
    pub forecast: bool,
    /// `cost_interval` (default 6h): Cost Explorer (refreshed by AWS up to three times a day;
    /// $0.01 per request).
    pub cost_interval: Duration,
    /// `usage_interval` (default 1h): CloudWatch `GetMetricData`.
    pub usage_interval: Duration,
    /// `timeout` (default 30s): per request.
    pub timeout: Duration,
    /// `max_age` (default: 3 × each job's interval).
    pub max_age: Option<Duration>,
    /// `budget_usd` (optional).
    pub budget_usd: Option<f64>,
    /// `answer_bytes` (default 8 MiB, 1 KiB to 256 MiB): the most bytes of one answer.
    pub answer_bytes: usize,
    /// `max_items` (default 300, 1 to 10,000): usage types kept per answer.
    pub max_items: usize,
    /// `max_pages` (default 5, 1 to 100): pages of one answer read in one poll.
    pub max_pages: usize,
}

/// Reads `name` from the process environment; blank counts as unset (as the AWS SDKs do).
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// Validates one `[[cloudfront]]` table.
pub fn parse_account(v: &mut Validator, t: &mut Table<'_>) -> Option<CloudFrontAccount> {
    let before = v.count();
    let name = v.name(t);
    let source = source(v, t);
    let assume_role = assume_role(v, t);
    let endpoint_url =
        if t.has("endpoint_url") { v.url(t, "endpoint_url", "https://ce.us-east-1.amazonaws.com") } else { None };
    let distributions = distributions(v, t);
    let max_distributions = v.integer(t, "max_distributions", 1, MAX_DISTRIBUTIONS_LIMIT as i64);
    let cost_metric = cost_metric(v, t);
    let service = v.bounded_string(t, "service", 256);
    let forecast = v.boolean(t, "forecast", true);
    let cost_interval = v.duration(t, "cost_interval", Duration::from_secs(6 * 3600));
    let usage_interval = v.duration(t, "usage_interval", Duration::from_secs(3600));
    let timeout = v.duration(t, "timeout", Duration::from_secs(30));
    let max_age = v.optional_duration(t, "max_age");
    let budget_usd = v.number(t, "budget_usd");
    let answer_bytes = v.integer(t, "answer_bytes", 1024, 256 << 20);
    let max_items = v.integer(t, "max_items", 1, 10_000);
    let max_pages = v.integer(t, "max_pages", 1, 100);
    if let Some(i) = cost_interval.filter(|i| *i < Duration::from_secs(3600)) {
        v.problem(
            join(&t.path, "cost_interval"),
            format!(
                "{} is shorter than 1h. Cost Explorer bills $0.01 a request and refreshes its data up to three \
                 times a day; poll it every few hours (default 6h).",
                humantime::format_duration(i)
            ),
        );
    }
    if v.count() > before {
        return None;
    }
    Some(CloudFrontAccount {
        name: name?,
        source: source?,
        assume_role: assume_role?,
        endpoint_url,
        distributions,
        max_distributions: max_distributions.map_or(DEFAULT_MAX_DISTRIBUTIONS, |n| n as usize),
        cost_metric: cost_metric?,
        service: service.unwrap_or_else(|| DEFAULT_SERVICE.to_owned()),
        forecast: forecast?,
        cost_interval: cost_interval?,
        usage_interval: usage_interval?,
        timeout: timeout?,
        max_age: max_age?,
        budget_usd,
        answer_bytes: answer_bytes.map_or(DEFAULT_ANSWER_BYTES, |n| n as usize),
        max_items: max_items.map_or(DEFAULT_MAX_ITEMS, |n| n as usize),
        max_pages: max_pages.map_or(DEFAULT_MAX_PAGES, |n| n as usize),
    })
}

/// The first credentials, in order of precedence (see the module doc).
fn source(v: &mut Validator, t: &mut Table<'_>) -> Option<Source> {
    let id = v.secret_opt(t, "access_key_id");
    let secret = v.secret_opt(t, "secret_access_key");
    let token = v.secret_opt(t, "session_token");
    let (Ok(id), Ok(secret), Ok(token)) = (id, secret, token) else { return None };
    match (id, secret) {
        (Some(access_key_id), Some(secret_access_key)) => {
            return Some(Source::Keys {
                keys: StaticKeys { access_key_id, secret_access_key, session_token: token },
                from: "config",
            });
        }
        (Some(_), None) | (None, Some(_)) => {
            v.problem(
                t.path.clone(),
                "access_key_id and secret_access_key go together: give both (each inline, _env or _file), or \
                 neither to use the environment's credentials.",
            );
            return None;
        }
        (None, None) if token.is_some() => {
            v.problem(
                join(&t.path, "session_token"),
                "given without access_key_id and secret_access_key. A session token belongs to temporary keys: \
                 give all three.",
            );
            return None;
        }
        (None, None) => {}
    }
    if let (Some(id), Some(secret)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        let keys = StaticKeys {
            access_key_id: Secret::new(id),
            secret_access_key: Secret::new(secret),
            session_token: env("AWS_SESSION_TOKEN").map(Secret::new),
        };
        return Some(Source::Keys { keys, from: "environment" });
    }
    if let (Some(role_arn), Some(token_file)) = (env("AWS_ROLE_ARN"), env("AWS_WEB_IDENTITY_TOKEN_FILE")) {
        if !is_role_arn(&role_arn) {
            v.problem(
                t.path.clone(),
                format!(
                    "the environment's AWS_ROLE_ARN {} is not a role ARN (arn:aws:iam::<account>:role/<name>).",
                    quote(&role_arn)
                ),
            );
            return None;
        }
        let session_name = env("AWS_ROLE_SESSION_NAME").unwrap_or_else(|| DEFAULT_SESSION_NAME.to_owned());
        return Some(Source::WebIdentity { role_arn, token_file, session_name: Secret::new(session_name) });
    }
    v.problem(
        t.path.clone(),
        "no AWS credentials: set access_key_id and secret_access_key (each inline, _env or _file), or export \
         AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run with web identity (AWS_ROLE_ARN and \
         AWS_WEB_IDENTITY_TOKEN_FILE, as EKS sets them).",
    );
    None
}

/// `arn:<partition>:iam::<12 digits>:role/<path and name>`.
pub fn is_role_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    matches!(parts.as_slice(), ["arn", partition, "iam", "", account, resource]
        if partition.starts_with("aws")
            && account.len() == 12
            && account.bytes().all(|b| b.is_ascii_digit())
            && resource.strip_prefix("role/").is_some_and(|n| !n.is_empty() && n.len() <= 512))
}

/// A session name: 2 to 64 of `[A-Za-z0-9_+=,.@-]` (STS's rule).
fn is_session_name(s: &str) -> bool {
    (2..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b))
}

/// `role_arn`, `external_id`, `role_session_name`, `role_duration`.
fn assume_role(v: &mut Validator, t: &mut Table<'_>) -> Option<Option<AssumeRole>> {
    let before = v.count();
    let role_arn = v.bounded_string(t, "role_arn", 2048);
    let external_id = v.secret_opt(t, "external_id").ok()?;
    let session_name = v.bounded_string(t, "role_session_name", 64);
    let duration = v.duration(t, "role_duration", Duration::from_secs(3600));
    if v.count() > before {
        return None;
    }
    let Some(role_arn) = role_arn else {
        for (key, given) in [
            ("external_id", external_id.is_some()),
            ("role_session_name", session_name.is_some()),
            ("role_duration", duration != Some(Duration::from_secs(3600))),
        ] {
            if given {
                v.problem(join(&t.path, key), "given without role_arn. Set role_arn to the role to assume.");
            }
        }
        return if v.count() > before { None } else { Some(None) };
    };
    if !is_role_arn(&role_arn) {
        v.problem(
            join(&t.path, "role_arn"),
            format!(
                "{} is not a role ARN. Write it like \"arn:aws:iam::123456789012:role/cdn-exporter\".",
                quote(&role_arn)
            ),
        );
    }
    if let Some(id) = &external_id {
        let ok = (2..=1224).contains(&id.expose().len())
            && id.expose().bytes().all(|b| b.is_ascii_alphanumeric() || b"_+=,.@:/-".contains(&b));
        if !ok {
            v.problem(
                join(&t.path, "external_id"),
                "is not an external id STS accepts: 2 to 1224 of letters, digits and _+=,.@:/-.",
            );
        }
    }
    let session_name = session_name.unwrap_or_else(|| DEFAULT_SESSION_NAME.to_owned());
    if !is_session_name(&session_name) {
        v.problem(
            join(&t.path, "role_session_name"),
            "is not a session name STS accepts: 2 to 64 of letters, digits and _+=,.@-.",
        );
    }
    let duration = duration?;
    if !(Duration::from_secs(900)..=Duration::from_secs(12 * 3600)).contains(&duration) {
        v.problem(
            join(&t.path, "role_duration"),
            format!(
                "{} is outside what STS grants (15m to 12h, and at most the role's maximum session).",
                humantime::format_duration(duration)
            ),
        );
    }
    if v.count() > before {
        return None;
    }
    Some(Some(AssumeRole { role_arn, external_id, session_name: Secret::new(session_name), duration }))
}

/// `cost_metric`: one of [`CostMetric::ALL`]'s names.
fn cost_metric(v: &mut Validator, t: &mut Table<'_>) -> Option<CostMetric> {
    let path = join(&t.path, "cost_metric");
    let Some(name) = v.bounded_string(t, "cost_metric", 64) else {
        return (!v.reported(&path)).then_some(CostMetric::Unblended);
    };
    match CostMetric::ALL.iter().find(|(_, n)| *n == name) {
        Some((m, _)) => Some(*m),
        None => {
            let names: Vec<&str> = CostMetric::ALL.iter().map(|(_, n)| *n).collect();
            v.problem(path, format!("{} is not a cost metric. Use one of {}.", quote(&name), names.join(", ")));
            None
        }
    }
}

/// Whether `id` looks like a distribution id: 1 to 64 upper-case letters and digits.
pub fn is_distribution_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// `distributions`: distribution ids, each once, at most [`MAX_DISTRIBUTIONS_LIMIT`].
fn distributions(v: &mut Validator, t: &mut Table<'_>) -> Vec<String> {
    let path = join(&t.path, "distributions");
    let items = match t.take("distributions") {
        None => return Vec::new(),
        Some(Value::Array(items)) if items.len() > MAX_DISTRIBUTIONS_LIMIT => {
            v.problem(
                path,
                format!(
                    "{} distributions; the limit is {MAX_DISTRIBUTIONS_LIMIT}. List fewer, or split them over accounts.",
                    items.len()
                ),
            );
            return Vec::new();
        }
        Some(Value::Array(items)) => items,
        Some(other) => {
            v.problem(
                path,
                format!(
                    "{} is not a list of distribution ids. Write it like `distributions = [\"E2ABC…\"]`.",
                    show(other)
                ),
            );
            return Vec::new();
        }
    };
    let mut ids: Vec<String> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match item.as_str() {
            Some(id) if is_distribution_id(id) && !ids.iter().any(|d| d == id) => ids.push(id.to_owned()),
            Some(id) if is_distribution_id(id) => {
                v.problem(format!("{path}[{i}]"), format!("{id} is listed twice. List each distribution once."))
            }
            _ => v.problem(
                format!("{path}[{i}]"),
                format!(
                    "{} is not a distribution id. Use the id CloudFront shows (upper-case letters and digits, like \
                     \"E2QWRUHAPOMQZL\").",
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

    const MINIMAL: &str =
        "[[cloudfront]]\nname = \"aws\"\naccess_key_id = \"AKIAEXAMPLE1\"\nsecret_access_key = \"s3cr3t-x\"\n";

    fn clear_env(jail: &mut figment::Jail) {
        for k in [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_ROLE_ARN",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_ROLE_SESSION_NAME",
        ] {
            jail.set_env(k, "");
        }
    }

    #[test]
    fn defaults_apply() {
        figment::Jail::expect_with(|jail| {
            clear_env(jail);
            let c = Config::from_toml_str(MINIMAL, "test").map_err(|e| e.to_string())?;
            let a = c.accounts_of::<CloudFrontAccount>()[0];
            let Source::Keys { keys, from } = &a.source else { panic!("keys expected") };
            assert_eq!((keys.access_key_id.expose(), *from), ("AKIAEXAMPLE1", "config"));
            assert_eq!(a.assume_role, None);
            assert_eq!((a.endpoint_url.as_deref(), a.distributions.len()), (None, 0));
            assert_eq!(
                (a.max_distributions, a.cost_metric, a.service.as_str()),
                (100, CostMetric::Unblended, "Amazon CloudFront")
            );
            assert!(a.forecast);
            assert_eq!((a.cost_interval, a.usage_interval), (Duration::from_secs(6 * 3600), Duration::from_secs(3600)));
            assert_eq!((a.timeout, a.max_age, a.budget_usd), (Duration::from_secs(30), None, None));
            assert_eq!((a.answer_bytes, a.max_items, a.max_pages), (8 << 20, 300, 5));
            assert!(!format!("{a:?}").contains("s3cr3t-x"), "Debug never shows the secret");
            Ok(())
        });
    }

    #[test]
    fn every_problem_is_reported_with_its_path_and_no_secret() {
        figment::Jail::expect_with(|jail| {
            clear_env(jail);
            let toml = "[[cloudfront]]\nname = \"aws\"\naccess_key_id = \"AKIAEXAMPLE1\"\nsecret_access_key = \"s3cr3t-x\"\n\
                        role_arn = \"arn:aws:iam::1234:user/x\"\nexternal_id = \"bad id!\"\nrole_session_name = \"a b\"\n\
                        role_duration = \"13h\"\ncost_metric = \"BlendedCost\"\ndistributions = [\"E1\", \"E1\", \"e2\", 3]\n\
                        cost_interval = \"5m\"\nendpoint_url = \"ftp://x\"\nmax_pages = 0\nregion = \"eu-west-1\"\n";
            let err = Config::from_toml_str(toml, "test").unwrap_err();
            let paths: Vec<&str> = err.problems.iter().map(|p| p.path.as_str()).collect();
            for p in [
                "cloudfront[0].role_arn",
                "cloudfront[0].external_id",
                "cloudfront[0].role_session_name",
                "cloudfront[0].role_duration",
                "cloudfront[0].cost_metric",
                "cloudfront[0].distributions[1]",
                "cloudfront[0].distributions[2]",
                "cloudfront[0].distributions[3]",
                "cloudfront[0].cost_interval",
                "cloudfront[0].endpoint_url",
                "cloudfront[0].max_pages",
                "cloudfront[0].region",
            ] {
                assert!(paths.contains(&p), "{p} not in {paths:?}");
            }
            let text = err.to_string();
            for secret in ["s3cr3t-x", "bad id!", "a b"] {
                assert!(!text.contains(secret), "{secret} printed: {text}");
            }
            let half = "[[cloudfront]]\nname = \"aws\"\naccess_key_id = \"AKIAEXAMPLE1\"\n";
            let err = Config::from_toml_str(half, "t").unwrap_err();
            assert!(err.to_string().contains("go together"), "{err}");
            let none = "[[cloudfront]]\nname = \"aws\"\n";
            let err = Config::from_toml_str(none, "t").unwrap_err();
            assert!(err.to_string().contains("no AWS credentials"), "{err}");
            let orphan = format!("{none}external_id = \"abc\"\naccess_key_id = \"A\"\nsecret_access_key = \"B\"\n");
            let err = Config::from_toml_str(&orphan, "t").unwrap_err();
            assert!(err.to_string().contains("without role_arn"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn credentials_come_in_the_documented_order() {
        figment::Jail::expect_with(|jail| {
            clear_env(jail);
            jail.create_file("secret.txt", "from-file-secret\n")?;
            jail.set_env("CF_TEST_ID", "AKIAFROMENVVAR");
            let toml = "[[cloudfront]]\nname = \"aws\"\naccess_key_id_env = \"CF_TEST_ID\"\nsecret_access_key_file = \"secret.txt\"\n\
                        role_arn = \"arn:aws:iam::123456789012:role/cdn-exporter\"\nexternal_id = \"ext-1234\"\n";
            let c = Config::from_toml_str(toml, "t").map_err(|e| e.to_string())?;
            let a = c.accounts_of::<CloudFrontAccount>()[0];
            let Source::Keys { keys, from } = &a.source else { panic!("keys expected") };
            assert_eq!(
                (keys.access_key_id.expose(), keys.secret_access_key.expose(), *from),
                ("AKIAFROMENVVAR", "from-file-secret", "config")
            );
            let role = a.assume_role.as_ref().expect("role");
            assert_eq!((role.session_name.expose(), role.duration), ("cdn-usage-exporter", Duration::from_secs(3600)));
            // The environment's keys, when the table has none; they win over web identity.
            jail.set_env("AWS_ACCESS_KEY_ID", "AKIAENVKEY");
            jail.set_env("AWS_SECRET_ACCESS_KEY", "env-secret");
            jail.set_env("AWS_SESSION_TOKEN", "env-token");
            jail.set_env("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/web");
            jail.set_env("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/token");
            let c = Config::from_toml_str("[[cloudfront]]\nname = \"aws\"\n", "t").map_err(|e| e.to_string())?;
            let a = c.accounts_of::<CloudFrontAccount>()[0];
            let Source::Keys { keys, from } = &a.source else { panic!("keys expected") };
            assert_eq!(
                (keys.access_key_id.expose(), keys.session_token.as_ref().map(Secret::expose), *from),
                ("AKIAENVKEY", Some("env-token"), "environment")
            );
            // Web identity when no keys are anywhere; blank variables count as unset.
            jail.set_env("AWS_ACCESS_KEY_ID", "  ");
            let c = Config::from_toml_str("[[cloudfront]]\nname = \"aws\"\n", "t").map_err(|e| e.to_string())?;
            let a = c.accounts_of::<CloudFrontAccount>()[0];
            let Source::WebIdentity { role_arn, token_file, session_name } = &a.source else {
                panic!("web identity expected")
            };
            assert_eq!(
                (role_arn.as_str(), token_file.as_str(), session_name.expose()),
                ("arn:aws:iam::123456789012:role/web", "/var/run/token", "cdn-usage-exporter")
            );
            Ok(())
        });
    }

    #[test]
    fn role_arns_are_checked() {
        assert!(is_role_arn("arn:aws:iam::123456789012:role/cdn-exporter"));
        assert!(is_role_arn("arn:aws-cn:iam::123456789012:role/path/name"));
        for bad in [
            "arn:aws:iam::1234:role/x",
            "arn:aws:iam::123456789012:user/x",
            "arn:aws:iam::123456789012:role/",
            "role/x",
            "",
        ] {
            assert!(!is_role_arn(bad), "{bad}");
        }
    }
}
