//! The account's credentials, as the AWS SDKs resolve them: the first credentials from the
//! configuration's source (keys, or web identity through STS `AssumeRoleWithWebIdentity`, with
//! the token file read anew at every renewal, as kubelet rotates it), then, with `role_arn`,
//! STS `AssumeRole` into the role. Temporary credentials are kept until 15 minutes before they
//! expire (botocore's advisory refresh) and renewed by the next request after that; an
//! `ExpiredToken` answer drops them at once. One renewal at a time: concurrent jobs wait for it
//! rather than each asking STS.
//!
//! Hand-written on the project's HTTP path rather than `aws-config`: the two STS calls are a
//! form each, while `aws-config` brings its own HTTP stack (outside the permits, bounds and
//! counting every request here passes), the STS, SSO and OIDC SDKs, and a second TLS setup.

use tokio::sync::Mutex;

use crate::job::{PollContext, PollError, Reason};
use crate::providers::common::sigv4::Credentials;
use crate::secret::Secret;
use crate::timeutil;

use super::client::{Api, Call, Client};
use super::config::{AssumeRole, CloudFrontAccount, Source, StaticKeys};
use super::xml::{self, Step};

/// Temporary credentials are renewed this long before they expire.
pub const RENEW_BEFORE_SECS: i64 = 15 * 60;
/// The most bytes of a web identity token file (EKS's are about 1 KiB).
pub const MAX_TOKEN_BYTES: u64 = 16 * 1024;
/// STS's API version.
const STS_VERSION: &str = "2011-06-15";

/// Credentials that expire.
#[derive(Clone)]
struct Temporary {
    credentials: Credentials,
    expires: i64,
}

#[derive(Default)]
struct Cache {
    web: Option<Temporary>,
    role: Option<Temporary>,
}

/// One account's credential chain.
pub struct Chain {
    source: Source,
    role: Option<AssumeRole>,
    cache: Mutex<Cache>,
}

fn keys(k: &StaticKeys) -> Credentials {
    Credentials {
        access_key_id: k.access_key_id.clone(),
        secret_access_key: k.secret_access_key.clone(),
        session_token: k.session_token.clone(),
    }
}

fn fresh(t: &Option<Temporary>, now: i64) -> Option<Credentials> {
    t.as_ref().filter(|t| t.expires - RENEW_BEFORE_SECS > now).map(|t| t.credentials.clone())
}

impl Chain {
    /// The chain of `account`.
    pub fn new(account: &CloudFrontAccount) -> Self {
        Chain { source: account.source.clone(), role: account.assume_role.clone(), cache: Mutex::default() }
    }

    /// What must never appear in an error message: the session names and the external id
    /// (AWS's access-denied text names the assumed role's session).
    pub fn scrub(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Source::WebIdentity { session_name, .. } = &self.source {
            out.push(session_name.expose().to_owned());
        }
        if let Some(r) = &self.role {
            out.push(r.session_name.expose().to_owned());
            out.extend(r.external_id.as_ref().map(|e| e.expose().to_owned()));
        }
        out
    }

    /// Whether the credentials signed with are temporary ones the chain renews.
    pub fn temporary(&self) -> bool {
        self.role.is_some() || matches!(self.source, Source::WebIdentity { .. })
    }

    /// Drops the temporary credentials (AWS said they expired).
    pub async fn forget(&self) {
        *self.cache.lock().await = Cache::default();
    }

    /// The credentials to sign with now, renewing temporary ones that are near their end.
    pub async fn credentials(&self, client: &Client, ctx: &PollContext) -> Result<Credentials, PollError> {
        let _ = ctx;
        let mut cache = self.cache.lock().await;
        let now = timeutil::now_unix();
        let base = match &self.source {
            Source::Keys { keys: k, .. } => keys(k),
            Source::WebIdentity { role_arn, token_file, session_name } => match fresh(&cache.web, now) {
                Some(c) => c,
                None => {
                    let t = web_identity(client, role_arn, token_file, session_name).await?;
                    cache.web = Some(t.clone());
                    t.credentials
                }
            },
        };
        let Some(role) = &self.role else { return Ok(base) };
        if let Some(c) = fresh(&cache.role, now) {
            return Ok(c);
        }
        let t = assume_role(client, &base, role).await?;
        cache.role = Some(t.clone());
        Ok(t.credentials)
    }
}

async fn web_identity(
    client: &Client,
    role_arn: &str,
    token_file: &str,
    session: &Secret,
) -> Result<Temporary, PollError> {
    let token = crate::secret::read_bounded(std::path::Path::new(token_file), MAX_TOKEN_BYTES).map_err(|e| {
        PollError::new(
            Reason::Auth,
            format!(
                "cannot read the web identity token file named by AWS_WEB_IDENTITY_TOKEN_FILE ({}): {e}. Check the \
                 service account's token projection",
                crate::text::label(token_file)
            ),
        )
    })?;
    let token = token.trim();
    if token.is_empty() {
        return Err(PollError::new(Reason::Auth, "the web identity token file is empty"));
    }
    let params = [("RoleArn", role_arn), ("RoleSessionName", session.expose()), ("WebIdentityToken", token)];
    let mut call = Call::query(Api::Sts, "AssumeRoleWithWebIdentity", STS_VERSION, &params);
    // AssumeRoleWithWebIdentity is unsigned: the token is the proof.
    call.anonymous = true;
    let body = client.send(&call, None).await?;
    parse_credentials(&body, "AssumeRoleWithWebIdentity answer")
}

async fn assume_role(client: &Client, base: &Credentials, role: &AssumeRole) -> Result<Temporary, PollError> {
    let duration = role.duration.as_secs().to_string();
    let mut params = vec![
        ("RoleArn", role.role_arn.as_str()),
        ("RoleSessionName", role.session_name.expose()),
        ("DurationSeconds", duration.as_str()),
    ];
    if let Some(id) = &role.external_id {
        params.push(("ExternalId", id.expose()));
    }
    let call = Call::query(Api::Sts, "AssumeRole", STS_VERSION, &params);
    let body = client.send(&call, Some(base)).await?;
    parse_credentials(&body, "AssumeRole answer")
}

/// The `Credentials` element of an `AssumeRole` or `AssumeRoleWithWebIdentity` answer.
fn parse_credentials(body: &[u8], what: &str) -> Result<Temporary, PollError> {
    let (mut id, mut secret, mut token, mut expiration) = (None, None, None, None);
    xml::walk(body, 1000, what, |step| {
        if let Step::Text(path, text) = step
            && path.len() >= 2
            && path[path.len() - 2] == "Credentials"
        {
            let slot = match path[path.len() - 1].as_str() {
                "AccessKeyId" => &mut id,
                "SecretAccessKey" => &mut secret,
                "SessionToken" => &mut token,
                "Expiration" => &mut expiration,
                _ => return Ok(()),
            };
            *slot = Some(text.to_owned());
        }
        Ok(())
    })?;
    let (Some(id), Some(secret), Some(token), Some(expiration)) = (id, secret, token, expiration) else {
        return Err(PollError::parse(format!(
            "{what} lacks one of Credentials' AccessKeyId, SecretAccessKey, SessionToken and Expiration"
        )));
    };
    let expires = timeutil::parse_utc(&expiration)
        .ok_or_else(|| PollError::parse(format!("{what}: Expiration is not an ISO 8601 time")))?;
    if [&id, &secret, &token].iter().any(|s| s.len() > 16 * 1024) {
        return Err(PollError::parse(format!("{what}: a credential is implausibly long: refused")));
    }
    Ok(Temporary {
        credentials: Credentials {
            access_key_id: Secret::new(id),
            secret_access_key: Secret::new(secret),
            session_token: Some(Secret::new(token)),
        },
        expires,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sts_answers_are_read_whatever_their_fraction_digits() {
        let body = br#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult><AssumedRoleUser><Arn>arn:aws:sts::1:assumed-role/r/s</Arn><AssumedRoleId>ARO:s</AssumedRoleId></AssumedRoleUser><Credentials><AccessKeyId>ASIAEXAMPLE</AccessKeyId><SecretAccessKey>sec/ret+1</SecretAccessKey><SessionToken>tok==</SessionToken><Expiration>2026-12-04T11:41:18.123456Z</Expiration></Credentials></AssumeRoleResult></AssumeRoleResponse>"#;
        let t = parse_credentials(body, "t").unwrap();
        assert_eq!(t.credentials.access_key_id.expose(), "ASIAEXAMPLE");
        assert_eq!(t.credentials.secret_access_key.expose(), "sec/ret+1");
        assert_eq!(t.credentials.session_token.as_ref().map(Secret::expose), Some("tok=="));
        assert_eq!(t.expires, timeutil::days_from_civil(2026, 12, 4) * 86_400 + 11 * 3600 + 41 * 60 + 18);
        let e = parse_credentials(b"<AssumeRoleResponse><AssumeRoleResult/></AssumeRoleResponse>", "t").err().unwrap();
        assert!(e.message.contains("lacks one of"), "{}", e.message);
        let bad = String::from_utf8_lossy(body).replace("2026-12-04T11:41:18.123456Z", "soon");
        assert!(parse_credentials(bad.as_bytes(), "t").is_err());
    }

    #[test]
    fn credentials_are_fresh_until_fifteen_minutes_before_they_expire() {
        let c =
            Credentials { access_key_id: Secret::new("a"), secret_access_key: Secret::new("b"), session_token: None };
        let t = Some(Temporary { credentials: c, expires: 10_000 });
        assert!(fresh(&t, 10_000 - RENEW_BEFORE_SECS - 1).is_some());
        assert!(fresh(&t, 10_000 - RENEW_BEFORE_SECS).is_none());
        assert!(fresh(&None, 0).is_none());
    }
}
