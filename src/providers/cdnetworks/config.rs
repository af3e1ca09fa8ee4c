//! The `[[cdnetworks]]` section: one table per account, validated into a
//! [`CdnetworksAccount`].

use std::time::Duration;

use serde_json::Value;

use crate::secret::Secret;
use crate::validate::{Table, Validator, join, kind, quote};

/// The longest domain (253 bytes, the DNS limit).
pub const MAX_DOMAIN_BYTES: usize = 253;
/// The longest CDNetworks contract id and username (128 bytes).
pub const MAX_CONTRACT_BYTES: usize = 128;
/// The most domains per CDNetworks account (1000).
pub const MAX_DOMAINS: usize = 1000;
/// The longest `traffic_settle` (7 days): each settle day costs a request per poll.
pub const MAX_TRAFFIC_SETTLE: Duration = Duration::from_secs(7 * 86_400);

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
    /// exported as `cdn_bandwidth_commit_bytes_per_second`; also the commit of
    /// `pricing.bandwidth_usd_per_mbps`.
    pub bandwidth_commit_mbps: Option<f64>,
    /// `budget_usd` (optional): exported as `cdn_billing_budget_usd`.
    pub budget_usd: Option<f64>,
    /// `[cdnetworks.pricing]` (optional): the contract the account's spend is priced with.
    pub pricing: Option<super::pricing::Pricing>,
}

/// Validates one `[[cdnetworks]]` table.
pub fn parse_account(v: &mut Validator, t: &mut Table<'_>) -> Option<CdnetworksAccount> {
    let before = v.count();
    let name = v.name(t);
    let base_url = v.base_url(t, super::DEFAULT_BASE_URL);
    let auth = auth(v, t);
    let zone_path = join(&t.path, "time_zone");
    let time_zone = v.string(t, "time_zone").unwrap_or_else(|| "GMT+09:00".into());
    let utc_offset = crate::timeutil::parse_gmt_offset(&time_zone);
    if utc_offset.is_none() {
        v.problem(
            zone_path,
            format!("{} is not a zone. Write it as GMT±HH:MM, e.g. \"GMT+09:00\".", quote(&time_zone)),
        );
    }
    let granularity = match v.string(t, "granularity").as_deref() {
        None | Some("h") => Some(Granularity::Hourly),
        Some("d") => Some(Granularity::Daily),
        Some(other) => {
            v.problem(
                join(&t.path, "granularity"),
                format!("{} is not a granularity. Use \"h\" (hourly) or \"d\" (daily).", quote(other)),
            );
            None
        }
    };
    let domains = domains(v, t);
    let interval = v.duration(t, "interval", Duration::from_secs(3600));
    let timeout = v.duration(t, "timeout", Duration::from_secs(30));
    let max_age = v.optional_duration(t, "max_age");
    let traffic = v.boolean(t, "traffic", true);
    let traffic_interval = v.duration(t, "traffic_interval", Duration::from_secs(15 * 60));
    let traffic_max_age = v.optional_duration(t, "traffic_max_age");
    let settle_path = join(&t.path, "traffic_settle");
    let traffic_settle = v.duration(t, "traffic_settle", Duration::from_secs(86_400));
    if traffic_settle.is_some_and(|d| d > MAX_TRAFFIC_SETTLE) {
        v.problem(
            settle_path,
            "is longer than 7d. Each day of the settle window is fetched again on every poll; use at most \"7d\".",
        );
    }
    let bandwidth_commit_mbps = v.number(t, "bandwidth_commit_mbps");
    let budget_usd = v.number(t, "budget_usd");
    let pricing = t.take("pricing").map(|p| super::pricing::parse(v, &t.path, p, bandwidth_commit_mbps, traffic));
    let path = t.path.clone();
    if v.count() > before {
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
        budget_usd,
        pricing: pricing.flatten(),
    })
}

fn auth(v: &mut Validator, t: &mut Table<'_>) -> Option<CdnetworksAuth> {
    let username = v.bounded_string(t, "username", MAX_CONTRACT_BYTES);
    let api_key = v.secret_opt(t, "api_key");
    let access_key = v.secret_opt(t, "access_key");
    let secret_key = v.secret_opt(t, "secret_key");
    let (Ok(api_key), Ok(access_key), Ok(secret_key)) = (api_key, access_key, secret_key) else {
        return None;
    };
    let api_scheme = username.is_some() || api_key.is_some();
    let aksk_scheme = access_key.is_some() || secret_key.is_some();
    let fix = "Give either username + api_key (API-key auth) or access_key + secret_key (AK/SK auth).";
    match (api_scheme, aksk_scheme) {
        (true, true) => {
            v.problem(join(&t.path, "auth"), format!("both auth schemes are configured. {fix}"));
            None
        }
        (false, false) => {
            v.problem(join(&t.path, "auth"), format!("no credentials. {fix}"));
            None
        }
        (true, false) => match (username, api_key) {
            (Some(username), Some(api_key))
                if !username.trim().is_empty() && !username.chars().any(char::is_control) =>
            {
                Some(CdnetworksAuth::ApiKey { username, api_key })
            }
            (None, _) | (Some(_), Some(_)) => {
                v.problem(join(&t.path, "username"), format!("missing, empty or with control characters. {fix}"));
                None
            }
            (Some(_), None) => {
                v.problem(join(&t.path, "api_key"), format!("missing. {fix}"));
                None
            }
        },
        (false, true) => match (access_key, secret_key) {
            (Some(access_key), Some(secret_key)) => Some(CdnetworksAuth::AkSk { access_key, secret_key }),
            (None, _) => {
                v.problem(join(&t.path, "access_key"), format!("missing. {fix}"));
                None
            }
            (_, None) => {
                v.problem(join(&t.path, "secret_key"), format!("missing. {fix}"));
                None
            }
        },
    }
}

fn domains(v: &mut Validator, t: &mut Table<'_>) -> Vec<CdnetworksDomain> {
    let path = join(&t.path, "domains");
    let items = match t.take("domains") {
        Some(Value::Array(items)) if items.len() > MAX_DOMAINS => {
            v.problem(
                path,
                format!("{} domains; the limit is {MAX_DOMAINS}. Split them over several accounts.", items.len()),
            );
            return Vec::new();
        }
        Some(Value::Array(items)) if !items.is_empty() => items,
        Some(Value::Array(_)) | None => {
            v.problem(
                path,
                "no domain. List them as domains = [{ domain = \"cdn.example.com\", contract = \"C-1\" }].",
            );
            return Vec::new();
        }
        Some(other) => {
            v.problem(path, format!("expected an array of {{ domain, contract }} tables, found {}.", kind(other)));
            return Vec::new();
        }
    };
    let mut domains: Vec<CdnetworksDomain> = Vec::new();
    let mut positions: Vec<usize> = Vec::new();
    for (j, item) in items.iter().enumerate() {
        let Some(mut d) = v.table(format!("{path}[{j}]"), item) else { continue };
        let required = |v: &mut Validator, d: &mut Table<'_>, key: &str, max: usize| {
            let p = join(&d.path, key);
            match v.bounded_string(d, key, max) {
                Some(s) if key == "domain" && !is_domain(&s) => {
                    v.problem(
                        p,
                        "is not a domain name. Use letters, digits, '-', '_', '.' (and '*' for a wildcard), e.g. \"cdn.example.com\".",
                    );
                    None
                }
                Some(s) if !s.trim().is_empty() && !s.chars().any(|c| c.is_whitespace() || c.is_control()) => Some(s),
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
        let domain = required(v, &mut d, "domain", MAX_DOMAIN_BYTES);
        let contract = required(v, &mut d, "contract", MAX_CONTRACT_BYTES);
        let entry_path = d.path.clone();
        v.unknown(d);
        if let (Some(domain), Some(contract)) = (domain, contract) {
            if let Some(k) = domains.iter().position(|x| x.domain == domain) {
                let first = positions[k];
                v.problem(
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

/// A DNS name (or a `*.` wildcard), as CDNetworks lists them.
fn is_domain(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && s.split('.').all(|label| label.len() <= 63)
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '*'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

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
        let a = c.accounts_of::<CdnetworksAccount>()[0];
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
        let a = c.accounts_of::<CdnetworksAccount>()[0];
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
            err.problems[0].message.contains("3000 domain-months") && err.problems[0].message.contains("limit is 2000"),
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
        let a = c.accounts_of::<CdnetworksAccount>()[0];
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
    fn domains_are_bounded() {
        let long = |n: usize| "a".repeat(n);
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
    }
}
