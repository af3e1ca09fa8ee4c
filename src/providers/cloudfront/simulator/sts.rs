//! STS's `AssumeRole` (signed) and `AssumeRoleWithWebIdentity` (unsigned): the role's trust
//! (the caller's key, the external id, the web identity token), the session name and duration
//! rules, and temporary credentials (`ASIA…`, a secret, a session token) that the other APIs
//! accept, signed with their token, until they expire by the state's clock.

use axum::http::StatusCode;
use sha2::{Digest, Sha256};

use super::data;
use super::wire::{AwsError, STS_NS, request_id, xml_escape};
use super::{SimAccount, SimRole};

/// What every issued secret access key starts with (so that tests can look for leaks).
pub const SECRET_PREFIX: &str = "simTmpSecret";

/// What every issued session token starts with.
pub const TOKEN_PREFIX: &str = "SimSessionToken";

/// Temporary credentials STS issued.
#[derive(Clone, PartialEq, Eq)]
pub struct Session {
    /// `ASIA…`.
    pub access_key_id: String,
    /// The secret access key.
    pub secret: String,
    /// The session token (`X-Amz-Security-Token`).
    pub token: String,
    /// When they stop working, Unix seconds.
    pub expires: i64,
    /// The index of the role's account.
    pub account: usize,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("access_key_id", &self.access_key_id)
            .field("expires", &self.expires)
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

fn validation(message: impl Into<String>) -> AwsError {
    AwsError::coded(StatusCode::BAD_REQUEST, "ValidationError", "ValidationError", message)
}

fn access_denied(message: impl Into<String>) -> AwsError {
    AwsError::new(StatusCode::FORBIDDEN, "AccessDenied", message)
}

/// The form's value of `key`.
fn field<'a>(form: &'a [(String, String)], key: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn required<'a>(form: &'a [(String, String)], key: &str) -> Result<&'a str, AwsError> {
    field(form, key).ok_or_else(|| {
        AwsError::new(
            StatusCode::BAD_REQUEST,
            "MissingParameter",
            format!("The request must contain the parameter {key}."),
        )
    })
}

/// The session name and duration, checked.
fn session_params(form: &[(String, String)]) -> Result<(String, i64), AwsError> {
    let name = required(form, "RoleSessionName")?;
    let name_ok = (2..=64).contains(&name.chars().count())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c));
    if !name_ok {
        return Err(validation(format!(
            "1 validation error detected: Value '{name}' at 'roleSessionName' failed to satisfy constraint: Member must have length between 2 and 64 and satisfy regular expression pattern: [\\w+=,.@-]*"
        )));
    }
    let duration = match field(form, "DurationSeconds") {
        None => 3600,
        Some(v) => match v.parse::<i64>() {
            Ok(d) if (900..=43_200).contains(&d) => d,
            _ => {
                return Err(validation(format!(
                    "1 validation error detected: Value '{v}' at 'durationSeconds' failed to satisfy constraint: Member must have value between 900 and 43200"
                )));
            }
        },
    };
    Ok((name.to_owned(), duration))
}

/// The role an ARN names, with its account's index.
fn role<'a>(accounts: &'a [SimAccount], arn: &str) -> Option<(usize, &'a SimRole)> {
    accounts.iter().enumerate().find_map(|(i, a)| a.roles.iter().find(|r| r.arn == arn).map(|r| (i, r)))
}

/// New credentials: derived from the role, the session, the time and a serial number, so that
/// two sessions never share them.
pub fn issue(role_arn: &str, session_name: &str, now: i64, serial: u64, duration: i64, account: usize) -> Session {
    let digest = Sha256::digest(format!("{role_arn}|{session_name}|{now}|{serial}").as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    const BASE32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let id: String = digest.iter().take(16).map(|b| BASE32[usize::from(b % 32)] as char).collect();
    Session {
        access_key_id: format!("ASIA{id}"),
        secret: format!("{SECRET_PREFIX}{}", &hex[..28]),
        token: format!("{TOKEN_PREFIX}{}{}", &hex[28..], serial),
        expires: now + duration,
        account,
    }
}

fn role_name(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

fn credentials_xml(s: &Session, role_arn: &str, account_id: &str, session_name: &str) -> String {
    let role_id = format!("AROA{}", &s.access_key_id[4..].chars().rev().collect::<String>());
    format!(
        "<Credentials><AccessKeyId>{}</AccessKeyId><SecretAccessKey>{}</SecretAccessKey><SessionToken>{}</SessionToken><Expiration>{}</Expiration></Credentials><AssumedRoleUser><AssumedRoleId>{role_id}:{name}</AssumedRoleId><Arn>arn:aws:sts::{account_id}:assumed-role/{role}/{name}</Arn></AssumedRoleUser>",
        s.access_key_id,
        s.secret,
        s.token,
        data::iso(s.expires),
        name = xml_escape(session_name),
        role = xml_escape(role_name(role_arn)),
    )
}

/// `AssumeRole` by the caller holding `caller_key`: `Ok` with the session and the answer.
pub fn assume_role(
    accounts: &[SimAccount],
    caller_key: &str,
    form: &[(String, String)],
    now: i64,
    serial: u64,
) -> Result<(Session, String), AwsError> {
    let arn = required(form, "RoleArn")?;
    let (name, duration) = session_params(form)?;
    let denied =
        || access_denied(format!("User: {caller_key} is not authorized to perform: sts:AssumeRole on resource: {arn}"));
    let (account, role) = role(accounts, arn).ok_or_else(denied)?;
    if !role.trusted_access_keys.iter().any(|k| k == caller_key) {
        return Err(denied());
    }
    // A role without an external id in its trust policy ignores one sent.
    if role.external_id.as_deref().is_some_and(|id| field(form, "ExternalId") != Some(id)) {
        return Err(denied());
    }
    let session = issue(arn, &name, now, serial, duration, account);
    let xml = format!(
        "<AssumeRoleResponse xmlns=\"{STS_NS}\"><AssumeRoleResult>{}</AssumeRoleResult><ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></AssumeRoleResponse>",
        credentials_xml(&session, arn, &accounts[account].account_id, &name),
        request_id()
    );
    Ok((session, xml))
}

/// `AssumeRoleWithWebIdentity` (unsigned): the token must be the role's.
pub fn assume_role_with_web_identity(
    accounts: &[SimAccount],
    form: &[(String, String)],
    now: i64,
    serial: u64,
) -> Result<(Session, String), AwsError> {
    let arn = required(form, "RoleArn")?;
    let (name, duration) = session_params(form)?;
    let token = required(form, "WebIdentityToken")?;
    let (account, role) = role(accounts, arn).ok_or_else(|| {
        access_denied(format!("Not authorized to perform sts:AssumeRoleWithWebIdentity on resource: {arn}"))
    })?;
    if role.web_identity_token.as_deref() != Some(token) {
        return Err(AwsError::new(
            StatusCode::BAD_REQUEST,
            "InvalidIdentityToken",
            "The web identity token that was passed could not be validated by AWS. Get a new identity token from the identity provider and then retry the request.",
        ));
    }
    let session = issue(arn, &name, now, serial, duration, account);
    let xml = format!(
        "<AssumeRoleWithWebIdentityResponse xmlns=\"{STS_NS}\"><AssumeRoleWithWebIdentityResult>{}<SubjectFromWebIdentityToken>system:serviceaccount:monitoring:cdn-usage-exporter</SubjectFromWebIdentityToken><Audience>sts.amazonaws.com</Audience><Provider>arn:aws:iam::{}:oidc-provider/oidc.sim.invalid</Provider></AssumeRoleWithWebIdentityResult><ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></AssumeRoleWithWebIdentityResponse>",
        credentials_xml(&session, arn, &accounts[account].account_id, &name),
        accounts[account].account_id,
        request_id()
    );
    Ok((session, xml))
}
