//! The response envelope `{statusCode, headers, body: "<json string>"}` (docs/contract.md, section 1.4).
//!
//! The same envelope answers HTTP-shaped invocations: a Function URL or API Gateway
//! proxy integration reads exactly these three members.

use serde::Serialize;
use serde_json::Value;

use crate::domain::jsnum;
use crate::error::Error;

/// What the function returns for every invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub status_code: u16,
    /// The body object as JSON text.
    pub body: String,
    /// The kind of HTTP event answered, if any. Direct invokes keep the original's three
    /// members; HTTP answers add what the HTTP front ends read.
    pub http: Option<HttpFlavor>,
}

/// Which HTTP front end an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpFlavor {
    /// API Gateway REST (payload 1.0): adds `isBase64Encoded` only (REST rejects
    /// members it does not know).
    V1,
    /// Function URL or API Gateway HTTP API (payload 2.0): adds `isBase64Encoded` and
    /// an empty `cookies` list (which `cargo lambda watch` requires).
    V2,
}

impl Envelope {
    /// 200 with `value` as the body.
    pub fn ok(value: &Value) -> Self {
        Envelope {
            status_code: 200,
            body: to_js_json(value),
            http: None,
        }
    }

    /// The error's status with `{"error": <message>}`.
    pub fn error(err: &Error) -> Self {
        let mut m = serde_json::Map::new();
        m.insert("error".into(), Value::String(err.client_message()));
        Envelope {
            status_code: err.status_code(),
            body: to_js_json(&Value::Object(m)),
            http: None,
        }
    }

    /// This envelope as the answer to an HTTP event (or not).
    pub fn for_http(mut self, http: Option<HttpFlavor>) -> Self {
        self.http = http;
        self
    }

    /// The body parsed back (for tests and logs).
    pub fn body_json(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_str(&self.body)
    }
}

impl Serialize for Envelope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        struct Headers;
        impl Serialize for Headers {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("Content-Type", "application/json")?;
                m.end()
            }
        }
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("statusCode", &self.status_code)?;
        m.serialize_entry("headers", &Headers)?;
        m.serialize_entry("body", &self.body)?;
        if self.http.is_some() {
            m.serialize_entry("isBase64Encoded", &false)?;
        }
        if self.http == Some(HttpFlavor::V2) {
            m.serialize_entry("cookies", &[] as &[&str])?;
        }
        m.end()
    }
}

/// The body of an answer: a typed response as a JSON value, member order kept. A value
/// that cannot be serialized (a map with non-string keys; none of our response types)
/// is an error rather than a wrong answer.
pub fn to_body<T: Serialize>(answer: &T) -> crate::error::Result<Value> {
    serde_json::to_value(answer).map_err(|e| crate::error::Error::Failed(format!("Cannot encode the answer: {e}")))
}

/// JSON text of `v` as JavaScript's `JSON.stringify` would print it: integral floats
/// without a fraction, shortest round-trip digits, NaN/Infinity as `null`, member order kept.
pub fn to_js_json(v: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, v);
    out
}

fn write_value(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if n.is_i64() || n.is_u64() {
                out.push_str(&n.to_string());
            } else {
                match n.as_f64().and_then(jsnum::format) {
                    Some(s) => out.push_str(&s),
                    None => out.push_str("null"),
                }
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
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, k);
                out.push(':');
                write_value(out, item);
            }
            out.push('}');
        }
    }
}

fn write_string(out: &mut String, s: &str) {
    // serde_json's string escaping matches JSON.stringify for every code point we emit.
    match serde_json::to_string(s) {
        Ok(quoted) => out.push_str(&quoted),
        Err(_) => out.push_str("\"\""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn envelope_has_status_headers_and_string_body() {
        let env = Envelope::ok(&json!({"instances": [], "count": 0}));
        let text = serde_json::to_string(&env).unwrap();
        assert_eq!(
            text,
            r#"{"statusCode":200,"headers":{"Content-Type":"application/json"},"body":"{\"instances\":[],\"count\":0}"}"#
        );
    }

    #[test]
    fn guard_error_envelope_is_byte_exact() {
        let env = Envelope::error(&Error::MissingParameters);
        assert_eq!(
            serde_json::to_string(&env).unwrap(),
            r#"{"statusCode":400,"headers":{"Content-Type":"application/json"},"body":"{\"error\":\"Missing required parameters: action, userId\"}"}"#
        );
    }

    #[test]
    fn http_answers_say_the_body_is_not_base64() {
        let env = Envelope::ok(&json!({})).for_http(Some(HttpFlavor::V1));
        assert_eq!(
            serde_json::to_string(&env).unwrap(),
            r#"{"statusCode":200,"headers":{"Content-Type":"application/json"},"body":"{}","isBase64Encoded":false}"#
        );
        let env = Envelope::ok(&json!({})).for_http(Some(HttpFlavor::V2));
        assert_eq!(
            serde_json::to_string(&env).unwrap(),
            r#"{"statusCode":200,"headers":{"Content-Type":"application/json"},"body":"{}","isBase64Encoded":false,"cookies":[]}"#
        );
    }

    #[test]
    fn numbers_are_printed_the_javascript_way() {
        let v = json!({"a": 2.0, "b": 0.4166666666666667, "c": 3, "d": -1.5, "e": f64::NAN, "f": [1e21]});
        assert_eq!(
            to_js_json(&v),
            r#"{"a":2,"b":0.4166666666666667,"c":3,"d":-1.5,"e":null,"f":[1e+21]}"#
        );
    }

    #[test]
    fn member_order_is_insertion_order() {
        let mut m = serde_json::Map::new();
        m.insert("z".into(), json!(1));
        m.insert("a".into(), json!(2));
        assert_eq!(to_js_json(&Value::Object(m)), r#"{"z":1,"a":2}"#);
    }

    #[test]
    fn strings_are_escaped() {
        assert_eq!(to_js_json(&json!("a\"b\\c\n")), r#""a\"b\\c\n""#);
    }
}
