//! Cells of provider answers that both providers share: numbers that arrive as numbers,
//! numeric strings or Google-table cells ([`Num`]), text that may arrive as a number ([`Text`]),
//! and lists read under a bound ([`Capped`], [`parse_capped`]), so that an answer's size alone
//! decides memory.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::job::PollError;

/// The `v` of a Google-table cell `{"v": …, "f": …}`; `missing` when it has none.
pub fn cell_value<'de, A: MapAccess<'de>, T: Deserialize<'de>>(mut map: A, missing: T) -> Result<T, A::Error> {
    let mut out = missing;
    while let Some(key) = map.next_key::<Cow<'de, str>>()? {
        if key == "v" {
            out = map.next_value()?;
        } else {
            map.next_value::<IgnoredAny>()?;
        }
    }
    Ok(out)
}

/// A number as an answer gives it: JSON number, numeric string (`"5106077"`, `" 1,234 "`,
/// `"$0.00"`) or Google-table cell `{"v": ..., "f": ...}` (the `v` is used; `f` is display text).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Num {
    /// A finite number.
    Value(f64),
    /// A number that is not finite (`"NaN"`, `"Infinity"`, `"1e400"`): never data.
    NonFinite,
    /// No number here (`null`, `"Coming Soon"`, a missing field).
    #[default]
    Missing,
}

impl Num {
    /// The number, if finite.
    pub fn get(self) -> Option<f64> {
        match self {
            Num::Value(v) => Some(v),
            _ => None,
        }
    }

    fn from_f64(v: f64) -> Num {
        if v.is_finite() { Num::Value(v) } else { Num::NonFinite }
    }

    fn from_str(s: &str) -> Num {
        let cleaned: String = s.chars().filter(|c| !matches!(c, ',' | ' ' | '$')).collect();
        match cleaned.parse::<f64>() {
            Ok(v) => Num::from_f64(v),
            Err(_) => Num::Missing,
        }
    }
}

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Num;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number, a numeric string or a {\"v\"} cell")
            }
            fn visit_f64<E>(self, v: f64) -> Result<Num, E> {
                Ok(Num::from_f64(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Num, E> {
                Ok(Num::Value(v as f64))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Num, E> {
                Ok(Num::Value(v as f64))
            }
            fn visit_str<E>(self, v: &str) -> Result<Num, E> {
                Ok(Num::from_str(v))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Num, E> {
                Ok(Num::Missing)
            }
            fn visit_unit<E>(self) -> Result<Num, E> {
                Ok(Num::Missing)
            }
            fn visit_none<E>(self) -> Result<Num, E> {
                Ok(Num::Missing)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Num, D::Error> {
                Num::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Num, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Num::Missing)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Num, A::Error> {
                cell_value(map, Num::Missing)
            }
        }
        d.deserialize_any(V)
    }
}

/// A string field that may also arrive as a number or a `{"v"}` cell; borrowed where the answer
/// has it without escapes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Text<'a>(pub Option<Cow<'a, str>>);

impl<'a> Text<'a> {
    /// The text, if there was one.
    pub fn get(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// The text, or empty.
    pub fn into_cow(self) -> Cow<'a, str> {
        self.0.unwrap_or_default()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, a number or a {\"v\"} cell")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Some(Cow::Owned(v.to_owned()))))
            }
            fn visit_string<E>(self, v: String) -> Result<Text<'de>, E> {
                Ok(Text(Some(Cow::Owned(v))))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Text<'de>, E> {
                Ok(Text(Some(Cow::Owned(serde_json::Number::from_f64(v).map_or_else(String::new, |n| n.to_string())))))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Text<'de>, E> {
                Ok(Text(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Text<'de>, E> {
                Ok(Text(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Text<'de>, E> {
                Ok(Text(None))
            }
            fn visit_unit<E>(self) -> Result<Text<'de>, E> {
                Ok(Text(None))
            }
            fn visit_none<E>(self) -> Result<Text<'de>, E> {
                Ok(Text(None))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Text<'de>, D::Error> {
                Text::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Text<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Text(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Text<'de>, A::Error> {
                cell_value(map, Text(None))
            }
        }
        d.deserialize_any(V)
    }
}

thread_local! {
    /// The most elements a [`Capped`] list may hold in the parse running on this thread.
    static CAP: Cell<usize> = const { Cell::new(usize::MAX) };
    /// Set when a [`Capped`] list went past [`CAP`], so the parse error can name the bound.
    static CAPPED: Cell<bool> = const { Cell::new(false) };
}

/// A JSON array read under the bound of the parse running on this thread (see [`parse_capped`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Capped<T>(pub Vec<T>);

impl<T> Default for Capped<T> {
    fn default() -> Self {
        Capped(Vec::new())
    }
}

struct CappedVisitor<T>(std::marker::PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for CappedVisitor<T> {
    type Value = Capped<T>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Capped<T>, A::Error> {
        let max = CAP.get();
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(max).min(1024));
        while let Some(item) = seq.next_element()? {
            if out.len() == max {
                CAPPED.set(true);
                return Err(de::Error::custom("too many elements"));
            }
            out.push(item);
        }
        Ok(Capped(out))
    }
    // An empty list has been seen as `[]`, `{}` and null.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Capped<T>, A::Error> {
        match map.next_key::<IgnoredAny>()? {
            None => Ok(Capped(Vec::new())),
            Some(_) => Err(de::Error::custom("expected an array, found a non-empty object")),
        }
    }
    fn visit_unit<E>(self) -> Result<Capped<T>, E> {
        Ok(Capped(Vec::new()))
    }
    fn visit_none<E>(self) -> Result<Capped<T>, E> {
        Ok(Capped(Vec::new()))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Capped<T>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Capped<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CappedVisitor(std::marker::PhantomData))
    }
}

/// A [`Capped`] list that must be a JSON array: `{}` and null are refused.
#[derive(Debug, Clone, PartialEq)]
pub struct Array<T>(pub Capped<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Array<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_seq(CappedVisitor(std::marker::PhantomData)).map(Array)
    }
}

/// A bound on the lists of one answer, and how to name it in an error.
#[derive(Debug, Clone, Copy)]
pub struct ListLimit {
    /// The most elements of any one list.
    pub max: usize,
    /// What the elements are (`rows`, `entries`).
    pub items: &'static str,
    /// The config key that sets it.
    pub key: &'static str,
}

/// Parses `body` as `T` with every [`Capped`] list bounded by `limit`; `what` names the answer
/// in errors.
pub fn parse_capped<'a, T: Deserialize<'a>>(body: &'a [u8], limit: ListLimit, what: &str) -> Result<T, PollError> {
    CAP.set(limit.max);
    CAPPED.set(false);
    let parsed = serde_json::from_slice::<T>(body);
    let capped = CAPPED.replace(false);
    CAP.set(usize::MAX);
    parsed.map_err(|e| {
        if capped {
            PollError::parse(format!(
                "{what} has more than {} {}: refused. If that is real, raise `{}`",
                limit.max, limit.items, limit.key
            ))
        } else {
            PollError::parse(format!("{what} is not in the expected form: {e}"))
        }
    })
}

/// Parses an owned value with no list bound (small envelopes).
pub fn parse_owned<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, PollError> {
    serde_json::from_slice(body).map_err(|e| PollError::parse(format!("{what} is not in the expected form: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(json: &str) -> Num {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn numbers_in_every_shape() {
        assert_eq!(num("5"), Num::Value(5.0));
        assert_eq!(num(r#""5106077""#), Num::Value(5_106_077.0));
        assert_eq!(num(r#"" 28,103 ""#), Num::Value(28_103.0));
        assert_eq!(num(r#""$-1.50""#), Num::Value(-1.5));
        assert_eq!(num(r#"{"v": "0.5", "f": "x"}"#), Num::Value(0.5));
        assert_eq!(num(r#"{"f": "Coming Soon", "v": 0}"#), Num::Value(0.0));
        assert_eq!(num(r#""Coming Soon""#), Num::Missing);
        assert_eq!(num("null"), Num::Missing);
        assert_eq!(num("[1]"), Num::Missing);
        for bad in [r#""NaN""#, r#""Infinity""#, r#""-inf""#, r#""1e400""#, r#"{"v": "NaN"}"#] {
            assert_eq!(num(bad), Num::NonFinite, "{bad}");
        }
        // A JSON number too large for a float is not JSON data at all.
        assert!(serde_json::from_str::<Num>("1e400").is_err());
    }
}
