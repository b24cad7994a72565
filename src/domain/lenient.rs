//! Lenient reading of stored attributes, as JavaScript read them.
//!
//! The original stored request values verbatim, so an attribute may hold a string where
//! a number belongs (`"2"`), a fraction (`1.5`), or something else entirely. One odd
//! attribute must not make a whole item unreadable: numbers are taken from numbers and
//! numeric strings, flags by JavaScript truthiness, and text from strings and numbers;
//! anything else reads as absent.

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// Any stored value, as far as these readers care.
enum Loose {
    Number(f64),
    Text(String),
    Flag(bool),
    Absent,
    Other,
}

impl<'de> serde::Deserialize<'de> for Loose {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LooseVisitor)
    }
}

struct LooseVisitor;

impl<'de> Visitor<'de> for LooseVisitor {
    type Value = Loose;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Loose, E> {
        Ok(Loose::Flag(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Loose, E> {
        Ok(Loose::Number(v as f64))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Loose, E> {
        Ok(Loose::Number(v as f64))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Loose, E> {
        Ok(Loose::Number(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Loose, E> {
        Ok(Loose::Text(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Loose, E> {
        Ok(Loose::Text(v))
    }
    fn visit_bytes<E>(self, _: &[u8]) -> Result<Loose, E> {
        Ok(Loose::Other)
    }
    fn visit_none<E>(self) -> Result<Loose, E> {
        Ok(Loose::Absent)
    }
    fn visit_unit<E>(self) -> Result<Loose, E> {
        Ok(Loose::Absent)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Loose, D::Error> {
        d.deserialize_any(LooseVisitor)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Loose, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Loose::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Loose, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Loose::Other)
    }
}

/// JavaScript `Number(text)` for the forms that matter: trimmed decimal text.
fn number_of(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|n| n.is_finite())
}

impl Loose {
    fn number(self) -> Option<f64> {
        match self {
            Loose::Number(n) if n.is_finite() => Some(n),
            Loose::Text(t) => number_of(&t),
            _ => None,
        }
    }
}

/// A whole number (a fraction is cut toward zero).
pub fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(Loose::deserialize(d)?.number().map(|n| n.trunc() as i64))
}

/// A whole number, 0 when absent or not a number.
pub fn i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    Ok(opt_i64(d)?.unwrap_or(0))
}

/// A number.
pub fn opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Ok(Loose::deserialize(d)?.number())
}

/// A flag: a boolean, or any other value by JavaScript truthiness.
pub fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    Ok(match Loose::deserialize(d)? {
        Loose::Flag(b) => Some(b),
        Loose::Number(n) => Some(n != 0.0 && !n.is_nan()),
        Loose::Text(t) => Some(!t.is_empty()),
        Loose::Other => Some(true),
        Loose::Absent => None,
    })
}

/// Text: a string, or a number written as JavaScript prints it.
pub fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Loose::deserialize(d)? {
        Loose::Text(t) => Some(t),
        Loose::Number(n) => super::jsnum::format(n),
        Loose::Flag(b) => Some(b.to_string()),
        Loose::Absent | Loose::Other => None,
    })
}

/// Text, empty when absent.
pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(opt_string(d)?.unwrap_or_default())
}

use serde::Deserialize;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, Default, serde::Deserialize, PartialEq)]
    #[serde(default)]
    struct Probe {
        #[serde(deserialize_with = "opt_i64")]
        n: Option<i64>,
        #[serde(deserialize_with = "opt_bool")]
        b: Option<bool>,
        #[serde(deserialize_with = "opt_string")]
        s: Option<String>,
    }

    fn probe(v: serde_json::Value) -> Probe {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn numbers_come_from_numbers_and_numeric_text_and_nothing_else() {
        assert_eq!(probe(json!({"n": 2})).n, Some(2));
        assert_eq!(probe(json!({"n": "2"})).n, Some(2));
        assert_eq!(probe(json!({"n": 1.5})).n, Some(1));
        assert_eq!(probe(json!({"n": "lots"})).n, None);
        assert_eq!(probe(json!({"n": {"x": 1}})).n, None);
        assert_eq!(probe(json!({"n": null})).n, None);
        assert_eq!(probe(json!({})).n, None);
    }

    #[test]
    fn flags_follow_javascript_truthiness() {
        assert_eq!(probe(json!({"b": true})).b, Some(true));
        assert_eq!(probe(json!({"b": "yes"})).b, Some(true));
        assert_eq!(probe(json!({"b": ""})).b, Some(false));
        assert_eq!(probe(json!({"b": 0})).b, Some(false));
        assert_eq!(probe(json!({"b": null})).b, None);
    }

    #[test]
    fn text_comes_from_strings_and_numbers() {
        assert_eq!(probe(json!({"s": "byol"})).s.as_deref(), Some("byol"));
        assert_eq!(probe(json!({"s": 13})).s.as_deref(), Some("13"));
        assert_eq!(probe(json!({"s": [1]})).s, None);
    }
}
