//! CDNetworks request authentication: the API-key scheme of the domain-usage doc (HTTP Basic
//! over an HMAC-SHA1 of the `Date` header) and the AK/SK scheme of the vendor's SDK
//! (CNC-HMAC-SHA256 over a canonical request).

use sha2::{Digest, Sha256};

use crate::providers::common::sign::{self, hex};

/// The API-key scheme's password: `base64(HMAC-SHA1(api_key, date))`, where `date` is the
/// request's own `Date` header.
pub fn api_key_password(api_key: &str, date: &str) -> String {
    sign::base64(&sign::hmac_sha1(api_key.as_bytes(), date.as_bytes()))
}

/// `Basic base64(username:password)`.
pub fn basic_authorization(username: &str, password: &str) -> String {
    format!("Basic {}", sign::base64(format!("{username}:{password}").as_bytes()))
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// What the AK/SK signature covers.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    /// `POST`.
    pub method: &'a str,
    /// `/api/domain-usage`.
    pub path: &'a str,
    /// The query string (empty for POST).
    pub query: &'a str,
    /// The `Content-Type` header value.
    pub content_type: &'a str,
    /// The `Host` header value (`host` or `host:port` as sent).
    pub host: &'a str,
    /// The body.
    pub body: &'a [u8],
    /// Unix seconds, also sent as `x-cnc-timestamp`.
    pub timestamp: i64,
}

/// The AK/SK signature (lowercase hex) of `req` with `secret_key`.
pub fn aksk_signature(secret_key: &str, req: &SignedRequest<'_>) -> String {
    let canonical = format!(
        "{}\n{}\n{}\ncontent-type:{}\nhost:{}\n\ncontent-type;host\n{}",
        req.method,
        req.path,
        req.query,
        req.content_type.trim().to_lowercase(),
        req.host.trim().to_lowercase(),
        sha256_hex(req.body)
    );
    let string_to_sign = format!("CNC-HMAC-SHA256\n{}\n{}", req.timestamp, sha256_hex(canonical.as_bytes()));
    hex(&sign::hmac_sha256(secret_key.as_bytes(), string_to_sign.as_bytes()))
}

/// The AK/SK `Authorization` header value.
pub fn aksk_authorization(access_key: &str, signature: &str) -> String {
    format!("CNC-HMAC-SHA256 Credential={access_key}, SignedHeaders=content-type;host, Signature={signature}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_key_password_matches_the_docs_shell_recipe() {
        // date="Sun, 22 Nov 2026 10:00:00 GMT"
        // echo -en "$date" | openssl dgst -sha1 -hmac example_apiKey -binary | openssl enc -base64
        assert_eq!(api_key_password("example_apiKey", "Sun, 22 Nov 2026 10:00:00 GMT"), "CFACq23Y8qubKteiOEnavgUtVBI=");
    }

    #[test]
    fn aksk_signature_matches_an_openssl_computation() {
        // body hash, canonical request hash and HMAC each computed with `openssl dgst -sha256`
        // (see tests/it/signing.rs for the same recipe run live).
        let body = br#"{"dateFrom":"2022-08-01","dateTo":"2022-08-05","domain":"edu.xxx.net","contract":"xxxxxx-xxx","type":"d"}"#;
        assert_eq!(sha256_hex(body), "a649e62f031b5afdb179e833867f63691b713e28e21ccfebbdbedaafb8d36487");
        let req = SignedRequest {
            method: "POST",
            path: "/api/domain-usage",
            query: "",
            content_type: "application/json",
            host: "api.cdnetworks.com",
            body,
            timestamp: 1_795_341_600,
        };
        assert_eq!(
            aksk_signature("example_secretKey", &req),
            "605e08cff8b98a1ec63f5165f617b6651896a586740c2d42496cd32161b28c62"
        );
    }
}
