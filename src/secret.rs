//! A string that must never reach a log line.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Holds a password, admin key, access key, token or secret value.
///
/// `Debug` prints `[REDACTED]`, and there is no `Display`, so a `{:?}` or a tracing
/// field can never leak the value. Serialization is transparent: the value is written
/// where the contract needs it (the secret's JSON, a response's `adminKey`).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sensitive(String);

impl Sensitive {
    pub fn new(value: impl Into<String>) -> Self {
        Sensitive(value.into())
    }

    /// The value itself. Call sites are easy to audit with `grep expose`.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Sensitive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl From<String> for Sensitive {
    fn from(value: String) -> Self {
        Sensitive(value)
    }
}

impl From<&str> for Sensitive {
    fn from(value: &str) -> Self {
        Sensitive(value.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_the_value() {
        let s = Sensitive::new("hunter2");
        assert_eq!(format!("{s:?}"), "[REDACTED]");
        assert_eq!(format!("{:?}", Some(s.clone())), "Some([REDACTED])");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn serializes_transparently() {
        let s = Sensitive::new("k");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"k\"");
        let back: Sensitive = serde_json::from_str("\"k\"").unwrap();
        assert_eq!(back, s);
    }
}
