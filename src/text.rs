//! Provider text made bounded and inert before it reaches a log line, the status page, an error
//! message or a label: cut to a byte bound on a char boundary (with a marker saying so), and
//! every control or line-breaking character written as an escape, so that no answer can forge a
//! log line, flood a page or grow a label without bound.

use std::fmt::Write as _;

/// The most bytes of provider text (an error message, a body preview) kept in an error message.
pub const MESSAGE_BYTES: usize = 1024;

/// The most bytes of a label value taken from an answer (`url`, `item`, `user`).
pub const LABEL_BYTES: usize = 256;

/// The most bytes of a whole poll error message (our words around the provider's text).
pub const ERROR_BYTES: usize = 2 * MESSAGE_BYTES;

/// Whether `c` must not appear raw: controls (C0, DEL, C1) and the characters that break or
/// reorder lines in terminals and log viewers (line and paragraph separators, bidi controls).
fn dangerous(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Appends `c`, escaped if it is dangerous: `\n`, `\r`, `\t`, else `\u{1b}` style.
fn push_inert(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if dangerous(c) => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        c => out.push(c),
    }
}

/// `text` with every dangerous character escaped (`\n`, `\r`, `\t`, else `\u{1b}` style) and cut
/// to at most `max` bytes on a char boundary; a cut text ends in `…[N bytes cut]`.
pub fn inert(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max) + 24);
    for (i, c) in text.char_indices() {
        let before = out.len();
        push_inert(&mut out, c);
        if out.len() > max {
            out.truncate(before);
            let _ = write!(out, "…[{} bytes cut]", text.len() - i);
            return out;
        }
    }
    out
}

/// Provider text for an error message: inert, at most [`MESSAGE_BYTES`].
pub fn message(text: &str) -> String {
    inert(text.trim(), MESSAGE_BYTES)
}

/// A label value taken from an answer: inert, at most [`LABEL_BYTES`] (a cut value ends in `…`).
pub fn label(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(LABEL_BYTES));
    for c in text.chars() {
        let before = out.len();
        push_inert(&mut out, c);
        if out.len() > LABEL_BYTES {
            out.truncate(before);
            // Make room for the marker on a char boundary.
            while out.len() + '…'.len_utf8() > LABEL_BYTES {
                out.pop();
            }
            out.push('…');
            return out;
        }
    }
    out
}

/// A URL for a message: without userinfo, query or fragment (which may carry credentials),
/// inert and bounded. Text that is not a URL is kept up to its first `?` or `#`.
pub fn url(raw: &str) -> String {
    let shown = match reqwest::Url::parse(raw) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => raw.split(['?', '#']).next().unwrap_or_default().to_owned(),
    };
    inert(&shown, LABEL_BYTES)
}

/// A provider's row or item name as an `item` label value: ASCII letters and digits in lower
/// case, every run of anything else one `_`, at most [`LABEL_BYTES`]:
/// `"Origin I/O Transactions:"` → `origin_i_o_transactions`.
pub fn slug(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.trim().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let mut out = out.trim_matches('_').to_owned();
    // ASCII only, so any byte is a char boundary.
    out.truncate(LABEL_BYTES);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_escaped_and_nothing_else_changes() {
        assert_eq!(inert("plain text, ünïcödé ☃", 100), "plain text, ünïcödé ☃");
        assert_eq!(inert("a\nb\r\tc\u{1b}[31md\u{7f}\u{85}", 100), "a\\nb\\r\\tc\\u{1b}[31md\\u{7f}\\u{85}");
        assert_eq!(inert("x\u{2028}y\u{202e}z", 100), "x\\u{2028}y\\u{202e}z");
        assert!(!inert("level=info msg=\"forged\"\n", 100).contains('\n'));
    }

    #[test]
    fn cuts_on_a_char_boundary_with_a_marker() {
        let long = "é".repeat(1000);
        let out = inert(&long, 101);
        assert!(out.starts_with(&"é".repeat(50)), "{out}");
        assert!(out.ends_with("…[1900 bytes cut]"), "{out}");
        assert!(out.len() <= 101 + 24, "{}", out.len());
        // An escape is never cut in half.
        let out = inert(&"\u{1b}".repeat(100), 20);
        assert!(out.starts_with("\\u{1b}\\u{1b}\\u{1b}…"), "{out}");
        assert_eq!(message(&"x".repeat(5_000_000)).len(), MESSAGE_BYTES + "…[4998976 bytes cut]".len());
    }

    #[test]
    fn labels_are_bounded_including_the_marker() {
        let long = "☃".repeat(200);
        let out = label(&long);
        assert!(out.len() <= LABEL_BYTES && out.ends_with('…'), "{} {out}", out.len());
        assert_eq!(label("a/b.mp4"), "a/b.mp4");
        assert_eq!(label(&"a".repeat(LABEL_BYTES)), "a".repeat(LABEL_BYTES));
        assert_eq!(label("a\nb"), "a\\nb");
    }

    #[test]
    fn urls_lose_credentials_query_and_fragment() {
        assert_eq!(url("http://u:p@evil.example:81/x/y?token=SECRET#f"), "http://evil.example:81/x/y");
        assert_eq!(url("/relative?api_key=SECRET"), "/relative");
        assert_eq!(url("http://h/\nforged"), "http://h/forged");
        assert_eq!(url("not a url\u{1b}\n?token=x"), "not a url\\u{1b}\\n");
    }
}
