//! JSON encoded exactly as PHP's `json_encode` does by default, because the ScaleEngine API
//! recomputes the request signature over its own re-encoding of the request: keys in insertion
//! order, no whitespace, `/` as `\/`, non-ASCII as lowercase `\uXXXX` (surrogate pairs above
//! U+FFFF), integers as integers.

use std::fmt::Write as _;

use serde_json::Value;

/// Encodes `value` the way PHP's `json_encode($value)` does with no flags.
pub fn encode(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if n.is_i64() || n.is_u64() {
                let _ = write!(out, "{n}");
            } else if let Some(f) = n.as_f64() {
                // PHP >= 7.1 (serialize_precision -1) writes the shortest round-trip form and,
                // without JSON_PRESERVE_ZERO_FRACTION, drops ".0" from integral floats.
                let _ = write!(out, "{f}");
            }
        }
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, k);
                out.push(':');
                write_value(out, v);
            }
            out.push('}');
        }
    }
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' => out.push_str("\\/"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7f => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn matches_php_escaping() {
        // Expected strings were produced by PHP 8.2: php -r 'echo json_encode([...]);'
        let v = json!({"url": "sestore/jb/my video.mp4", "name": "café ☃ 😀", "ctl": "a\u{1}\t\"\\"});
        assert_eq!(
            encode(&v),
            r#"{"url":"sestore\/jb\/my video.mp4","name":"caf\u00e9 \u2603 \ud83d\ude00","ctl":"a\u0001\t\"\\"}"#
        );
    }

    #[test]
    fn keeps_key_order_and_integer_types() {
        let v = json!({"command": "usage.summary", "timestamp": 1700000000, "cdn": 158, "list": [1, "2"], "f": 1.5, "g": 2.0});
        assert_eq!(
            encode(&v),
            r#"{"command":"usage.summary","timestamp":1700000000,"cdn":158,"list":[1,"2"],"f":1.5,"g":2}"#
        );
    }
}
