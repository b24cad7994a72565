//! Per-invocation counters, the AWS-call hook, and the CloudWatch Embedded Metric
//! Format (EMF) records the function writes to stdout.
//!
//! Every AWS call (from the SDK interceptor, or from a fake in tests) goes through
//! [`aws_call`], which logs it at DEBUG and counts it for the invocation in scope.
//! Actions add their own counts ([`count`], [`resource_created`], [`resource_deleted`]);
//! `App::handle` turns them into EMF records once the invocation is answered. Metrics
//! cost no AWS call and no latency: CloudWatch extracts them from the log stream.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::time::Duration;

tokio::task_local! {
    static CALLS: RefCell<CallStats>;
    static COUNTERS: RefCell<Counters>;
}

/// The default CloudWatch namespace (`METRICS_NAMESPACE` overrides it).
pub const DEFAULT_NAMESPACE: &str = "FoundryVTT/InstanceManagement";

/// What an invocation counted besides its AWS calls.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Counters {
    /// Sweep counts (`InstancesRunning`, `InstancesStopped`, `SessionsStarted`,
    /// `ConflictsResolved`, …), summed by name, in first-use order.
    pub counts: Vec<(&'static str, f64)>,
    /// `(resource kind, created, deleted)`, in first-use order.
    pub resources: Vec<(&'static str, u64, u64)>,
}

/// Adds `value` to the invocation's metric `name` (a no-op outside an invocation).
pub fn count(name: &'static str, value: f64) {
    let _ = COUNTERS.try_with(|c| {
        let mut c = c.borrow_mut();
        match c.counts.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => *v += value,
            None => c.counts.push((name, value)),
        }
    });
}

fn resource(kind: &'static str, created: u64, deleted: u64) {
    let _ = COUNTERS.try_with(|c| {
        let mut c = c.borrow_mut();
        match c.resources.iter_mut().find(|(k, _, _)| *k == kind) {
            Some((_, cr, de)) => {
                *cr += created;
                *de += deleted;
            }
            None => c.resources.push((kind, created, deleted)),
        }
    });
}

/// One AWS resource of `kind` (`AccessPoint`, `S3Bucket`, …) was made.
pub fn resource_created(kind: &'static str) {
    resource(kind, 1, 0);
}

/// One AWS resource of `kind` was removed.
pub fn resource_deleted(kind: &'static str) {
    resource(kind, 0, 1);
}

/// Runs the future `make` returns with fresh AWS-call and metric counters, and returns
/// its output with both.
///
/// The future is made inside the scopes: an invocation's future is large (several KB),
/// and passing it in by value would copy it into each scope.
pub async fn measure<F, M>(make: M) -> (F::Output, CallStats, Counters)
where
    F: std::future::Future,
    M: FnOnce() -> F,
{
    COUNTERS
        .scope(
            RefCell::new(Counters::default()),
            CALLS.scope(RefCell::new(CallStats::default()), async move {
                let out = make().await;
                let calls = CALLS.with(|c| std::mem::take(&mut *c.borrow_mut()));
                let counters = COUNTERS.with(|c| std::mem::take(&mut *c.borrow_mut()));
                (out, calls, counters)
            }),
        )
        .await
}

/// The facts of one invocation that its EMF records carry.
#[derive(Debug, Clone)]
pub struct InvocationMetrics<'a> {
    pub timestamp_ms: i64,
    pub action: &'a str,
    /// `success`, `client_error` or `server_error`.
    pub outcome: &'a str,
    pub duration: Duration,
    pub cold_start: bool,
    pub request_id: &'a str,
    pub calls: &'a CallStats,
    pub counters: &'a Counters,
}

/// Writes `s` as a JSON string (the values we write are names and ids).
fn json_str(out: &mut String, s: &str) {
    out.push('"');
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push_str(s);
    } else {
        for ch in s.chars() {
            match ch {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if (c as u32) < 0x20 => {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                c => out.push(c),
            }
        }
    }
    out.push('"');
}

fn json_num(out: &mut String, v: f64) {
    match crate::domain::jsnum::format(v) {
        Some(s) => out.push_str(&s),
        None => out.push_str("null"),
    }
}

fn metric_def(out: &mut String, name: &str) {
    out.push_str(",{\"Name\":");
    json_str(out, name);
    out.push_str(",\"Unit\":\"Count\"}");
}

/// Renders EMF records. The constant parts (namespace, dimensions, the standard metric
/// definitions) are rendered once, so that an invocation pays only for its values.
#[derive(Debug, Clone)]
pub struct Emf {
    /// From `,"CloudWatchMetrics"` to the last standard metric definition.
    main_head: String,
    /// The whole directive of a resource record, up to `"Action":`.
    resource_head: String,
}

impl Emf {
    pub fn new(namespace: &str) -> Self {
        let mut ns = String::new();
        json_str(&mut ns, namespace);
        let main_head = format!(
            ",\"CloudWatchMetrics\":[{{\"Namespace\":{ns},\"Dimensions\":[[\"Action\",\"Outcome\"]],\"Metrics\":[\
             {{\"Name\":\"Invocations\",\"Unit\":\"Count\"}},{{\"Name\":\"Errors\",\"Unit\":\"Count\"}},\
             {{\"Name\":\"DurationMs\",\"Unit\":\"Milliseconds\"}},{{\"Name\":\"ColdStart\",\"Unit\":\"Count\"}},\
             {{\"Name\":\"AwsCalls\",\"Unit\":\"Count\"}},{{\"Name\":\"AwsCallErrors\",\"Unit\":\"Count\"}}"
        );
        let resource_head = format!(
            ",\"CloudWatchMetrics\":[{{\"Namespace\":{ns},\"Dimensions\":[[\"Action\",\"ResourceKind\"]],\"Metrics\":[\
             {{\"Name\":\"ResourcesCreated\",\"Unit\":\"Count\"}},{{\"Name\":\"ResourcesDeleted\",\"Unit\":\"Count\"}}]}}]}},\"Action\":"
        );
        Emf {
            main_head,
            resource_head,
        }
    }

    /// Calls `emit` with each record (one JSON object, no newline): the invocation record
    /// (dimensions `Action`, `Outcome`), then one record per resource kind the invocation
    /// created or deleted (dimensions `Action`, `ResourceKind`).
    pub fn render(&self, m: &InvocationMetrics<'_>, mut emit: impl FnMut(&str)) {
        let created: u64 = m.counters.resources.iter().map(|r| r.1).sum();
        let deleted: u64 = m.counters.resources.iter().map(|r| r.2).sum();
        let mut out = String::with_capacity(768);
        let _ = write!(out, "{{\"_aws\":{{\"Timestamp\":{}", m.timestamp_ms);
        out.push_str(&self.main_head);
        if created > 0 || deleted > 0 {
            metric_def(&mut out, "ResourcesCreated");
            metric_def(&mut out, "ResourcesDeleted");
        }
        for (name, _) in &m.counters.counts {
            metric_def(&mut out, name);
        }
        out.push_str("]}]},\"Action\":");
        json_str(&mut out, m.action);
        out.push_str(",\"Outcome\":");
        json_str(&mut out, m.outcome);
        let micros = m.duration.as_micros();
        let _ = write!(
            out,
            ",\"Invocations\":1,\"Errors\":{},\"DurationMs\":{}.{:03},\"ColdStart\":{},\"AwsCalls\":{},\"AwsCallErrors\":{}",
            u8::from(m.outcome == "server_error"),
            micros / 1000,
            micros % 1000,
            u8::from(m.cold_start),
            m.calls.total,
            m.calls.failed
        );
        if created > 0 || deleted > 0 {
            let _ = write!(out, ",\"ResourcesCreated\":{created},\"ResourcesDeleted\":{deleted}");
        }
        for (name, value) in &m.counters.counts {
            out.push(',');
            json_str(&mut out, name);
            out.push(':');
            json_num(&mut out, *value);
        }
        out.push_str(",\"requestId\":");
        json_str(&mut out, m.request_id);
        out.push('}');
        emit(&out);

        for (kind, created, deleted) in &m.counters.resources {
            out.clear();
            let _ = write!(out, "{{\"_aws\":{{\"Timestamp\":{}", m.timestamp_ms);
            out.push_str(&self.resource_head);
            json_str(&mut out, m.action);
            out.push_str(",\"ResourceKind\":");
            json_str(&mut out, kind);
            let _ = write!(
                out,
                ",\"ResourcesCreated\":{created},\"ResourcesDeleted\":{deleted},\"requestId\":"
            );
            json_str(&mut out, m.request_id);
            out.push('}');
            emit(&out);
        }
    }

    /// The records as strings (tests).
    pub fn records(&self, m: &InvocationMetrics<'_>) -> Vec<String> {
        let mut v = Vec::new();
        self.render(m, |r| v.push(r.to_string()));
        v
    }
}

/// Where EMF records go: stdout in Lambda, a buffer in tests.
pub trait MetricsSink: Send + Sync {
    fn emit(&self, record: &str);
}

/// Writes each record as one line to stdout, where the Lambda platform picks it up.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdoutSink;

impl MetricsSink for StdoutSink {
    fn emit(&self, record: &str) {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(record.as_bytes());
        let _ = out.write_all(b"\n");
    }
}

impl MetricsSink for crate::logging::BufferWriter {
    fn emit(&self, record: &str) {
        use std::io::Write;
        let mut w = self.clone();
        let _ = w.write_all(record.as_bytes());
        let _ = w.write_all(b"\n");
    }
}

/// Discards every record (benchmarks measure the rendering alone).
#[derive(Debug, Default, Clone, Copy)]
pub struct NullSink;

impl MetricsSink for NullSink {
    fn emit(&self, record: &str) {
        std::hint::black_box(record);
    }
}

/// AWS calls made by one invocation.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CallStats {
    pub total: u64,
    pub failed: u64,
}

/// Runs `fut` with a fresh AWS-call counter and returns its output with the counts.
pub async fn with_call_stats<F: std::future::Future>(fut: F) -> (F::Output, CallStats) {
    CALLS
        .scope(RefCell::new(CallStats::default()), async move {
            let out = fut.await;
            let stats = CALLS.with(|c| c.borrow().clone());
            (out, stats)
        })
        .await
}

/// Records one AWS call: a DEBUG line (service, operation, duration, outcome; never
/// parameters) and the invocation's counter.
pub fn aws_call(service: &str, operation: &str, duration: Duration, ok: bool) {
    tracing::debug!(
        service,
        operation,
        duration_ms = duration.as_secs_f64() * 1000.0,
        outcome = if ok { "ok" } else { "error" },
        "aws call"
    );
    let _ = CALLS.try_with(|c| {
        let mut c = c.borrow_mut();
        c.total += 1;
        if !ok {
            c.failed += 1;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn measure_collects_counts_and_resources() {
        count("SessionsStarted", 1.0); // outside: ignored
        let ((), calls, counters) = measure(|| async {
            aws_call("efs", "CreateAccessPoint", Duration::ZERO, true);
            count("SessionsStarted", 2.0);
            count("ConflictsResolved", 1.0);
            count("SessionsStarted", 1.0);
            resource_created("S3Bucket");
            resource_created("S3Bucket");
            resource_deleted("Task");
        })
        .await;
        assert_eq!(calls.total, 1);
        assert_eq!(
            counters.counts,
            vec![("SessionsStarted", 3.0), ("ConflictsResolved", 1.0)]
        );
        assert_eq!(counters.resources, vec![("S3Bucket", 2, 0), ("Task", 0, 1)]);
    }

    #[test]
    fn emf_records_are_valid_and_name_every_metric() {
        let calls = CallStats { total: 5, failed: 1 };
        let counters = Counters {
            counts: vec![("InstancesStopped", 2.0)],
            resources: vec![("S3Bucket", 1, 0)],
        };
        let m = InvocationMetrics {
            timestamp_ms: 1_795_773_600_000,
            action: "create",
            outcome: "server_error",
            duration: Duration::from_micros(12_345),
            cold_start: true,
            request_id: "req-\"1\"",
            calls: &calls,
            counters: &counters,
        };
        let records = Emf::new(DEFAULT_NAMESPACE).records(&m);
        assert_eq!(records.len(), 2);
        let main: serde_json::Value = serde_json::from_str(&records[0]).unwrap();
        let cwm = &main["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(cwm["Namespace"], DEFAULT_NAMESPACE);
        assert_eq!(cwm["Dimensions"], serde_json::json!([["Action", "Outcome"]]));
        for def in cwm["Metrics"].as_array().unwrap() {
            let name = def["Name"].as_str().unwrap();
            assert!(main.get(name).is_some_and(|v| v.is_number()), "{name} has no value");
        }
        assert_eq!(main["Action"], "create");
        assert_eq!(main["Outcome"], "server_error");
        assert_eq!(main["Errors"], 1);
        assert_eq!(main["ColdStart"], 1);
        assert_eq!(main["AwsCalls"], 5);
        assert_eq!(main["AwsCallErrors"], 1);
        assert_eq!(main["DurationMs"], 12.345);
        assert_eq!(main["InstancesStopped"], 2);
        assert_eq!(main["ResourcesCreated"], 1);
        assert_eq!(main["requestId"], "req-\"1\"");
        let res: serde_json::Value = serde_json::from_str(&records[1]).unwrap();
        assert_eq!(
            res["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            serde_json::json!([["Action", "ResourceKind"]])
        );
        assert_eq!(
            (res["ResourceKind"].as_str(), res["ResourcesCreated"].as_u64()),
            (Some("S3Bucket"), Some(1))
        );
    }

    #[tokio::test]
    async fn counts_calls_inside_the_scope_only() {
        aws_call("s3", "HeadBucket", Duration::ZERO, true); // outside: ignored
        let ((), stats) = with_call_stats(async {
            aws_call("s3", "HeadBucket", Duration::ZERO, true);
            aws_call("s3", "CreateBucket", Duration::ZERO, false);
        })
        .await;
        assert_eq!(stats, CallStats { total: 2, failed: 1 });
    }
}
