//! The XML answers of the query and rest-xml protocols (STS, CloudFront, every error body of
//! those), read as a flat walk of elements with bounds on depth, element count and text size,
//! so that an answer's size alone decides memory. Namespaces are ignored (local names only),
//! unknown elements pass by.

use quick_xml::Reader;
use quick_xml::events::Event;

use crate::job::PollError;

/// The deepest nesting accepted (AWS's answers nest under 10).
pub const MAX_DEPTH: usize = 32;
/// The most bytes of one element's text.
pub const MAX_TEXT: usize = 64 * 1024;

/// One step of the walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step<'a> {
    /// An element opens; the path (local names from the root) includes it.
    Open(&'a [String]),
    /// The text of the element at the end of the path (whole, entities resolved).
    Text(&'a [String], &'a str),
    /// The element at the end of the path closes.
    Close(&'a [String]),
}

/// Walks `body`, calling `each` for every step; more than `max_elements` elements, a nesting
/// past [`MAX_DEPTH`], a text past [`MAX_TEXT`] or malformed XML fail as not data (`what` names
/// the answer).
pub fn walk(
    body: &[u8],
    max_elements: usize,
    what: &str,
    mut each: impl FnMut(Step<'_>) -> Result<(), PollError>,
) -> Result<(), PollError> {
    let text = std::str::from_utf8(body).map_err(|_| PollError::parse(format!("{what} is not UTF-8 text")))?;
    let mut reader = Reader::from_str(text);
    let bad = |e: String| PollError::parse(format!("{what} is not well-formed XML: {}", crate::text::message(&e)));
    let mut path: Vec<String> = Vec::new();
    let mut buf = String::new();
    let mut elements = 0usize;
    let local = |name: &[u8]| {
        let name = String::from_utf8_lossy(name);
        name.rsplit(':').next().unwrap_or_default().to_owned()
    };
    let mut open = |path: &mut Vec<String>, name: String, each: &mut dyn FnMut(Step<'_>) -> Result<(), PollError>| {
        elements += 1;
        if elements > max_elements {
            return Err(PollError::parse(format!(
                "{what} has more than {max_elements} elements: refused. If that is real, raise `answer_bytes`"
            )));
        }
        if path.len() >= MAX_DEPTH {
            return Err(PollError::parse(format!("{what} nests deeper than {MAX_DEPTH}: refused")));
        }
        path.push(name);
        each(Step::Open(path))
    };
    loop {
        match reader.read_event().map_err(|e| bad(e.to_string()))? {
            Event::Start(e) => {
                buf.clear();
                open(&mut path, local(e.local_name().as_ref()), &mut each)?;
            }
            Event::Empty(e) => {
                buf.clear();
                open(&mut path, local(e.local_name().as_ref()), &mut each)?;
                each(Step::Close(&path))?;
                path.pop();
            }
            Event::Text(t) => push_text(&mut buf, &t.decode().map_err(|e| bad(e.to_string()))?, what)?,
            Event::CData(t) => push_text(&mut buf, &t.decode().map_err(|e| bad(e.to_string()))?, what)?,
            Event::GeneralRef(r) => {
                let c = match r.resolve_char_ref().map_err(|e| bad(e.to_string()))? {
                    Some(c) => c,
                    None => match r.decode().map_err(|e| bad(e.to_string()))?.as_ref() {
                        "amp" => '&',
                        "lt" => '<',
                        "gt" => '>',
                        "quot" => '"',
                        "apos" => '\'',
                        other => return Err(bad(format!("unknown entity &{other};"))),
                    },
                };
                push_text(&mut buf, c.encode_utf8(&mut [0; 4]), what)?;
            }
            Event::End(_) => {
                if !buf.trim().is_empty() {
                    each(Step::Text(&path, buf.trim()))?;
                }
                buf.clear();
                each(Step::Close(&path))?;
                path.pop();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if elements == 0 {
        return Err(PollError::parse(format!("{what} holds no XML element")));
    }
    Ok(())
}

fn push_text(buf: &mut String, text: &str, what: &str) -> Result<(), PollError> {
    if buf.len() + text.len() > MAX_TEXT {
        return Err(PollError::parse(format!("{what} has a text of more than {MAX_TEXT} bytes: refused")));
    }
    buf.push_str(text);
    Ok(())
}

/// The text of the first element named `name` at any depth (an error body's `Code`).
pub fn first(body: &[u8], name: &str) -> Option<String> {
    let mut found = None;
    let _ = walk(body, 10_000, "answer", |step| {
        if let (Step::Text(path, text), None) = (step, &found)
            && path.last().is_some_and(|l| l == name)
        {
            found = Some(text.to_owned());
        }
        Ok(())
    });
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_paths_and_resolves_entities() {
        let body =
            br#"<?xml version="1.0"?><a xmlns="urn:x"><b><c>1 &amp; 2&#x21;</c><d/></b><e><![CDATA[<raw>]]></e></a>"#;
        let mut seen = Vec::new();
        walk(body, 100, "test", |s| {
            if let Step::Text(p, t) = s {
                seen.push(format!("{}={t}", p.join("/")));
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, ["a/b/c=1 & 2!", "a/e=<raw>"]);
        assert_eq!(first(body, "c").as_deref(), Some("1 & 2!"));
        assert_eq!(
            first(b"<ErrorResponse><Errors><Error><Code>X</Code></Error></Errors></ErrorResponse>", "Code").as_deref(),
            Some("X")
        );
    }

    #[test]
    fn hostile_xml_is_bounded() {
        let deep = "<a>".repeat(MAX_DEPTH + 1);
        assert!(walk(deep.as_bytes(), 1000, "t", |_| Ok(())).unwrap_err().message.contains("nests deeper"));
        let many = format!("<a>{}</a>", "<b/>".repeat(50));
        assert!(walk(many.as_bytes(), 10, "t", |_| Ok(())).unwrap_err().message.contains("more than 10 elements"));
        let long = format!("<a>{}</a>", "x".repeat(MAX_TEXT + 1));
        assert!(walk(long.as_bytes(), 10, "t", |_| Ok(())).unwrap_err().message.contains("text of more than"));
        for bad in [&b"<a><b></a>"[..], b"not xml", b"", b"<a>&bogus;</a>", b"\xff\xfe"] {
            assert!(walk(bad, 10, "t", |_| Ok(())).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
