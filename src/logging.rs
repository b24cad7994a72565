//! JSON log lines for the Lambda platform, each carrying the invocation's request id.
//!
//! One line per event: `{"timestamp","level","message",…fields,"target","requestId"}`.
//! `level` is upper case (`INFO`, `DEBUG`, …) as the platform's JSON log format expects.
//! Fields whose name looks sensitive (passwords, keys, tokens, secrets) are printed as
//! `[REDACTED]` whatever their value — a safety net; the code never logs such values.

use std::fmt;
use std::io;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// The request id of the span it is attached to.
#[derive(Debug, Clone)]
struct RequestId(String);

/// Remembers the `requestId` field of every span that has one (ours, and the
/// runtime's `Lambda runtime invoke` span).
struct RequestIdLayer;

impl<S> Layer<S> for RequestIdLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        struct Find(Option<String>);
        impl Visit for Find {
            fn record_str(&mut self, field: &Field, value: &str) {
                if field.name() == "requestId" {
                    self.0 = Some(value.to_string());
                }
            }
            fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
                if field.name() == "requestId" {
                    self.0 = Some(format!("{value:?}").trim_matches('"').to_string());
                }
            }
        }
        let mut find = Find(None);
        attrs.record(&mut find);
        if let (Some(rid), Some(span)) = (find.0, ctx.span(id)) {
            span.extensions_mut().insert(RequestId(rid));
        }
    }
}

/// Does a field of this name hold something that must never be logged?
pub fn is_sensitive_name(name: &str) -> bool {
    let n: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase();
    [
        "password",
        "secret",
        "token",
        "adminkey",
        "accesskey",
        "credential",
        "authorization",
    ]
    .iter()
    .any(|s| n.contains(s))
}

struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl JsonVisitor<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        let name = field.name();
        let value = if is_sensitive_name(name) {
            Value::String("[REDACTED]".into())
        } else {
            value
        };
        self.0.insert(name.to_string(), value);
    }
}

impl Visit for JsonVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(
            field,
            serde_json::Number::from_f64(value)
                .map(Value::Number)
                .unwrap_or(Value::Null),
        );
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::from(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::from(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, Value::from(format!("{value:?}")));
    }
}

/// Formats each event as one JSON line.
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let meta = event.metadata();
        let mut fields = Map::new();
        event.record(&mut JsonVisitor(&mut fields));
        let mut line = Map::new();
        let now = time::OffsetDateTime::now_utc();
        let ts = now
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        line.insert("timestamp".into(), Value::String(ts));
        line.insert("level".into(), Value::String(meta.level().as_str().to_string()));
        line.insert(
            "message".into(),
            fields.remove("message").unwrap_or(Value::String(String::new())),
        );
        for (k, v) in fields {
            line.insert(k, v);
        }
        line.insert("target".into(), Value::String(meta.target().to_string()));
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                if let Some(RequestId(rid)) = span.extensions().get::<RequestId>() {
                    line.insert("requestId".into(), Value::String(rid.clone()));
                }
            }
        }
        let text = serde_json::to_string(&Value::Object(line)).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

/// The filter: `AWS_LAMBDA_LOG_LEVEL` (the Lambda console's "application log level"),
/// then `RUST_LOG`, else INFO. Dependencies never log above INFO, whatever is asked (see
/// `within_the_cap`).
pub fn filter_from(lambda_level: Option<&str>, rust_log: Option<&str>) -> EnvFilter {
    if let Some(level) = lambda_level.map(str::trim).filter(|l| !l.is_empty()) {
        let level = level.to_ascii_lowercase();
        let level = match level.as_str() {
            "fatal" => "error",
            other => other,
        };
        if let Ok(f) = EnvFilter::try_new(format!("info,foundry_lambda={level},bootstrap={level}")) {
            return f;
        }
    }
    if let Some(directives) = rust_log.map(str::trim).filter(|l| !l.is_empty()) {
        if let Ok(f) = EnvFilter::try_new(directives) {
            return f;
        }
    }
    EnvFilter::new("info")
}

/// A subscriber writing JSON lines to `writer` (tests pass a buffer).
pub fn subscriber<W>(filter: EnvFilter, writer: W) -> impl Subscriber + Send + Sync
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let fmt_layer = tracing_subscriber::fmt::layer()
        .event_format(JsonLines)
        .with_writer(writer);
    tracing_subscriber::registry()
        .with(RequestIdLayer)
        .with(filter)
        .with(tracing_subscriber::filter::filter_fn(within_the_cap))
        .with(fmt_layer)
}

/// Whether an event or span may be logged whatever the configured level: the runtime,
/// the SDK and the HTTP stack log whole events and request bodies (a Foundry password, a
/// secret's value) at DEBUG and TRACE, so they are held to INFO. This crate's own lines
/// never carry a body, at any level.
fn within_the_cap(meta: &tracing::Metadata<'_>) -> bool {
    let ours = meta.target().starts_with("foundry_lambda") || meta.target().starts_with("bootstrap");
    ours || *meta.level() <= tracing::Level::INFO
}

/// Installs the JSON subscriber on stdout for the process.
pub fn init() {
    let filter = filter_from(
        std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().as_deref(),
        std::env::var("RUST_LOG").ok().as_deref(),
    );
    let _ = tracing::subscriber::set_global_default(subscriber(filter, io::stdout));
}

/// A `MakeWriter` that appends to a shared buffer (for tests that read the log).
#[derive(Clone, Default)]
pub struct BufferWriter(pub std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl BufferWriter {
    pub fn contents(&self) -> String {
        let buf = self.0.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&buf).into_owned()
    }
}

impl io::Write for BufferWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BufferWriter {
    type Writer = BufferWriter;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Captures this thread's log lines into a buffer while the guard lives (tests).
///
/// A thread-local subscriber alone is not enough when other threads of the process log
/// without one: tracing computes a callsite's interest once, on the thread that reaches
/// it first, and caches "never" for the whole process. A process-wide anchor subscriber
/// (which keeps nothing) makes every callsite interesting, so the capture sees every
/// event of its thread.
#[cfg(any(test, feature = "test-util"))]
pub fn capture(filter: &str) -> (tracing::subscriber::DefaultGuard, BufferWriter) {
    static ANCHOR: std::sync::Once = std::sync::Once::new();
    ANCHOR.call_once(|| {
        let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry());
    });
    let buf = BufferWriter::default();
    let guard = tracing::subscriber::set_default(subscriber(EnvFilter::new(filter), buf.clone()));
    tracing::callsite::rebuild_interest_cache();
    (guard, buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_json_with_level_message_fields_and_request_id() {
        let (guard, buf) = capture("info");
        {
            let span = tracing::info_span!("invocation", requestId = "req-123");
            let _g = span.enter();
            tracing::info!(action = "status", count = 3, "handled");
            tracing::debug!("hidden at info");
        }
        drop(guard);
        let out = buf.contents();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 1, "{out}");
        let v: Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["message"], "handled");
        assert_eq!(v["action"], "status");
        assert_eq!(v["count"], 3);
        assert_eq!(v["requestId"], "req-123");
        assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn sensitive_field_names_are_redacted() {
        let buf = BufferWriter::default();
        tracing::subscriber::with_default(subscriber(EnvFilter::new("info"), buf.clone()), || {
            tracing::info!(
                foundryPassword = "pw-1",
                admin_key = "ak-1",
                s3SecretAccessKey = "sk-1",
                user = "bob",
                "x"
            );
        });
        let out = buf.contents();
        for secret in ["pw-1", "ak-1", "sk-1"] {
            assert!(!out.contains(secret), "{out}");
        }
        assert!(out.contains("bob"));
    }

    #[test]
    fn log_level_comes_from_lambda_then_rust_log() {
        assert_eq!(
            filter_from(Some("DEBUG"), Some("error")).to_string(),
            "foundry_lambda=debug,bootstrap=debug,info"
        );
        assert_eq!(filter_from(None, Some("warn")).to_string(), "warn");
        assert_eq!(filter_from(None, None).to_string(), "info");
        assert_eq!(filter_from(Some(""), None).to_string(), "info");
    }
}
