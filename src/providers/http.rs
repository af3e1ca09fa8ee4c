//! HTTP plumbing every provider client shares: bounded body reads, transport errors as poll
//! errors, and printable previews of bodies for error messages.

use crate::job::{PollError, Reason};

/// The largest answer read; a bigger one is an error rather than unbounded memory.
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Reads a response body, refusing more than [`MAX_BODY_BYTES`].
pub async fn read_body(response: &mut reqwest::Response) -> Result<Vec<u8>, PollError> {
    let status = response.status().as_u16();
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| transport_error(&e))? {
        if bytes.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(PollError::new(
                Reason::Http,
                format!("HTTP {status}, answer larger than {MAX_BODY_BYTES} bytes"),
            ));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// A reqwest error as a poll error: timeouts apart, with the cause chain in the message.
pub fn transport_error(e: &reqwest::Error) -> PollError {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    let reason = if e.is_timeout() { Reason::Timeout } else { Reason::Http };
    PollError::new(reason, message)
}

/// The first bytes of a body, printable and on one line, for error messages.
pub fn preview(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(120)]);
    let mut out: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if body.len() > 120 {
        out.push('…');
    }
    if out.trim().is_empty() { "(empty body)".into() } else { out }
}
