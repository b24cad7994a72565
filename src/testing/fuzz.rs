//! Fuzzing the event parser and the checks before an action runs, on stable Rust.
//!
//! [`Mutator`] makes events from seeds (the realistic events of `events/`) by random
//! mutation: values of the wrong type, missing and extra members, other and aliased
//! action names, odd strings and numbers, deep nesting, and mangled HTTP bodies.
//! [`check`] runs one event's text through what every invocation goes through before an
//! action runs, and says what is wrong with the answer, if anything.

use base64::Engine;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};

use crate::app::App;
use crate::event::{self, Action};
use crate::response::Envelope;

/// Makes fuzz inputs from seed events.
pub struct Mutator {
    rng: StdRng,
    seeds: Vec<Value>,
}

const ODD_STRINGS: &[&str] = &[
    "",
    " ",
    "system",
    "000000000000000001",
    "123456789012345678",
    "byol-123456789012345678",
    "../../etc/passwd",
    "\u{0}",
    "\u{202e}evil",
    "٣٣٣",
    "Discord: 123",
    "data=%7B%7D",
    "{\"action\":\"status\"}",
    "null",
    "NaN",
    "1e309",
    "🦀🦀🦀",
];

impl Mutator {
    /// A mutator seeded with `seed` over `seeds`.
    pub fn new(seed: u64, seeds: Vec<Value>) -> Self {
        let seeds = if seeds.is_empty() {
            vec![json!({"action":"status","userId":"1"})]
        } else {
            seeds
        };
        Mutator {
            rng: StdRng::seed_from_u64(seed),
            seeds,
        }
    }

    /// The seed events of a checkout: every `events/*.json`.
    pub fn seeds_from(dir: &std::path::Path) -> Vec<Value> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut seeds: Vec<(String, Value)> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| {
                let text = std::fs::read_to_string(e.path()).ok()?;
                Some((e.path().display().to_string(), serde_json::from_str(&text).ok()?))
            })
            .collect();
        seeds.sort_by(|a, b| a.0.cmp(&b.0));
        seeds.into_iter().map(|(_, v)| v).collect()
    }

    /// The next input, as JSON text.
    pub fn next_input(&mut self) -> String {
        let i = self.rng.random_range(0..self.seeds.len());
        let mut v = self.seeds[i].clone();
        let rounds = self.rng.random_range(1..=4);
        for _ in 0..rounds {
            self.mutate(&mut v, 0);
        }
        let text = serde_json::to_string(&v).unwrap_or_default();
        if self.rng.random_ratio(1, 50) {
            return self.nest(text);
        }
        text
    }

    /// `text` wrapped in arrays and objects, as text (a deep `Value` would overflow the
    /// stack of whoever built or dropped it).
    fn nest(&mut self, text: String) -> String {
        let depth = *[10usize, 63, 64, 65, 129, 200, 5_000]
            .get(self.rng.random_range(0..7))
            .unwrap_or(&10);
        let (open, close) = if self.rng.random_bool(0.5) {
            ("[", "]")
        } else {
            ("{\"x\":", "}")
        };
        let deep = format!("{}{text}{}", open.repeat(depth), close.repeat(depth));
        if self.rng.random_bool(0.5) {
            format!(r#"{{"action":"status","userId":"1","deep":{deep}}}"#)
        } else {
            deep
        }
    }

    fn random_value(&mut self, depth: usize) -> Value {
        match self.rng.random_range(0..10) {
            0 => Value::Null,
            1 => Value::Bool(self.rng.random()),
            2 => json!(self.rng.random::<i64>()),
            3 => json!(self.rng.random::<f64>() * 1e12 - 5e11),
            4 => [
                json!(0),
                json!(1),
                json!(-1),
                json!(i64::MAX),
                json!(i64::MIN),
                json!(u64::MAX),
            ][self.rng.random_range(0..6)]
            .clone(),
            5 => json!(0.5),
            6 => Value::String(ODD_STRINGS[self.rng.random_range(0..ODD_STRINGS.len())].to_string()),
            7 => Value::String(
                (0..self.rng.random_range(0..40))
                    .map(|_| char::from_u32(self.rng.random_range(0..0x2FFFF)).unwrap_or('?'))
                    .collect(),
            ),
            8 if depth < 4 => Value::Array(
                (0..self.rng.random_range(0..3))
                    .map(|_| self.random_value(depth + 1))
                    .collect(),
            ),
            _ if depth < 4 => {
                let mut m = Map::new();
                for _ in 0..self.rng.random_range(0..3) {
                    let k = ODD_STRINGS[self.rng.random_range(0..ODD_STRINGS.len())].to_string();
                    m.insert(k, self.random_value(depth + 1));
                }
                Value::Object(m)
            }
            _ => Value::Null,
        }
    }

    fn action_name(&mut self) -> Value {
        let names = Action::NAMES;
        match self.rng.random_range(0..6) {
            0 => Value::String("create-instance".into()),
            1 => Value::String("cancel-scheduled-session".into()),
            2 => self.random_value(0),
            _ => Value::String(names[self.rng.random_range(0..names.len())].to_string()),
        }
    }

    fn mutate(&mut self, v: &mut Value, depth: usize) {
        match v {
            Value::Object(m) => {
                let keys: Vec<String> = m.keys().cloned().collect();
                match self.rng.random_range(0..8) {
                    0 if !keys.is_empty() => {
                        let k = &keys[self.rng.random_range(0..keys.len())];
                        m.remove(k);
                    }
                    1 => {
                        m.insert("action".into(), self.action_name());
                    }
                    2 => {
                        let field = [
                            "userId",
                            "sanitizedUsername",
                            "startTime",
                            "endTime",
                            "duration",
                            "licenseType",
                            "sessionId",
                            "licenseId",
                            "foundryPassword",
                            "body",
                            "targetUserId",
                            "maxConcurrentUsers",
                            "allowLicenseSharing",
                            "licenseStateOperation",
                            "isBase64Encoded",
                            "headers",
                        ][self.rng.random_range(0..16)];
                        let value = self.random_value(depth);
                        m.insert(field.into(), value);
                    }
                    3 if m.contains_key("body") => {
                        let body = self.mangle_body(m.get("body"));
                        m.insert("body".into(), body);
                    }
                    _ if !keys.is_empty() => {
                        let k = keys[self.rng.random_range(0..keys.len())].clone();
                        if let Some(child) = m.get_mut(&k) {
                            if depth < 6 && self.rng.random_bool(0.5) {
                                self.mutate(child, depth + 1);
                            } else {
                                *child = self.random_value(depth);
                            }
                        }
                    }
                    _ => {}
                }
            }
            Value::Array(items) if !items.is_empty() => {
                let i = self.rng.random_range(0..items.len());
                self.mutate(&mut items[i], depth + 1);
            }
            other => *other = self.random_value(depth),
        }
    }

    /// An HTTP body: base64 or not, form-encoded or JSON, whole or cut short.
    fn mangle_body(&mut self, body: Option<&Value>) -> Value {
        let text = body.and_then(Value::as_str).unwrap_or("").to_string();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(&text)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .unwrap_or(text.clone());
        let payload = match self.rng.random_range(0..5) {
            0 => {
                let cut = self.rng.random_range(0..=decoded.len());
                decoded.get(..cut).unwrap_or("").to_string()
            }
            1 => format!("data={}", self.random_value(1)),
            2 => self.random_value(1).to_string(),
            3 => form_urlencoded::Serializer::new(String::new())
                .append_pair("data", &self.random_value(2).to_string())
                .finish(),
            _ => decoded,
        };
        if self.rng.random_bool(0.5) {
            Value::String(base64::engine::general_purpose::STANDARD.encode(payload))
        } else {
            Value::String(payload)
        }
    }
}

/// Runs one input through what an invocation goes through before an action runs: the
/// nesting check, the parser, the guard, the HTTP and caller checks → what is wrong with
/// the outcome (an envelope whose body is not JSON text), if anything. `Ok(true)` when an
/// action would run.
pub fn check(app: &App, raw: &str) -> Result<bool, String> {
    let screened = event::from_text(raw).and_then(|event| app.screen(&event));
    match screened {
        Ok(_) => Ok(true),
        Err(e) => {
            let envelope = Envelope::error(&e);
            let wire = serde_json::to_value(&envelope).map_err(|e| format!("envelope: {e}"))?;
            let body = wire
                .get("body")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("the body is not a string: {wire}"))?;
            let parsed: Value = serde_json::from_str(body).map_err(|e| format!("the body is not JSON: {e}: {body}"))?;
            if !parsed.get("error").is_some_and(Value::is_string) {
                return Err(format!("no error message: {body}"));
            }
            if !(400..600).contains(&envelope.status_code) {
                return Err(format!("status {}", envelope.status_code));
            }
            Ok(false)
        }
    }
}
