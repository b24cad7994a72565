//! One async function per action: validates, orchestrates managers, returns the body.

pub mod automation;
pub mod billing;
pub mod instance;
pub mod notify;
pub mod sessions;

use serde_json::{Map, Value};

/// A JSON object built member by member, in insertion order; `opt` skips `None`
/// (JavaScript's "undefined is dropped").
#[derive(Debug, Default, Clone)]
pub struct Obj(Map<String, Value>);

impl Obj {
    pub fn new() -> Self {
        Obj(Map::new())
    }

    pub fn set(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.0.insert(key.to_string(), value.into());
        self
    }

    pub fn opt<T: Into<Value>>(self, key: &str, value: Option<T>) -> Self {
        match value {
            Some(v) => self.set(key, v),
            None => self,
        }
    }

    /// A number that may be NaN (printed as `null`, as JavaScript does).
    pub fn num(self, key: &str, value: f64) -> Self {
        let v = serde_json::Number::from_f64(value)
            .map(Value::Number)
            .unwrap_or(Value::Null);
        self.set(key, v)
    }

    pub fn build(self) -> Value {
        Value::Object(self.0)
    }
}

impl From<Obj> for Value {
    fn from(o: Obj) -> Value {
        o.build()
    }
}
