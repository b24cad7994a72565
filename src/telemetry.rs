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

/// Runs `fut` with fresh AWS-call and metric counters, and returns all three.
pub async fn measure<F: std::future::Future>(fut: F) -> (F::Output, CallStats, Counters) {
    COUNTERS
        .scope(RefCell::new(Counters::default()), async move {
            let (out, calls) = with_call_stats(fut).await;
            let counters = COUNTERS.with(|c| c.borrow().clone());
            (out, calls, counters)
        })
        .await
}

/// The facts of one invocation that its EMF records carry.
#[derive(Debug, Clone)]
pub struct InvocationMetrics<'a> {
    pub namespace: &'a str,
    pub timestamp_ms: i64,
    pub action: &'a str,
    /// `success`, `client_error` or `server_error`.
    pub outcome: &'a str,
    pub duration_ms: f64,
    pub cold_start: bool,
    pub request_id: &'a str,
    pub calls: &'a CallStats,
    pub counters: &'a Counters,
}

/// Writes `s` as a JSON string (the values we write are names and ids).
fn json_str(out: &mut String, s: &str) {
    out.push('"');
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
    out.push('"');
}

fn json_num(out: &mut String, v: f64) {
    match crate::domain::jsnum::format(v) {
        Some(s) => out.push_str(&s),
        None => out.push_str("null"),
    }
}

fn directive_head(out: &mut String, m: &InvocationMetrics<'_>, dims: &str) {
    let _ = write!(
        out,
        "{{\"_aws\":{{\"Timestamp\":{},\"CloudWatchMetrics\":[{{\"Namespace\":",
        m.timestamp_ms
    );
    json_str(out, m.namespace);
    let _ = write!(out, ",\"Dimensions\":[[{dims}]],\"Metrics\":[");
}

fn metric_def(out: &mut String, first: &mut bool, name: &str, unit: &str) {
    if !*first {
        out.push(',');
    }
    *first = false;
    out.push_str("{\"Name\":");
    json_str(out, name);
    let _ = write!(out, ",\"Unit\":\"{unit}\"}}");
}

impl InvocationMetrics<'_> {
    /// The EMF records (one JSON line each, without the newline): the invocation record
    /// (dimensions `Action`, `Outcome`), then one record per resource kind the invocation
    /// created or deleted (dimensions `Action`, `ResourceKind`).
    pub fn records(&self) -> Vec<String> {
        let mut lines = Vec::with_capacity(1 + self.counters.resources.len());
        let created: u64 = self.counters.resources.iter().map(|r| r.1).sum();
        let deleted: u64 = self.counters.resources.iter().map(|r| r.2).sum();

        let mut out = String::with_capacity(640);
        directive_head(&mut out, self, "\"Action\",\"Outcome\"");
        let mut first = true;
        for (name, unit) in [
            ("Invocations", "Count"),
            ("Errors", "Count"),
            ("DurationMs", "Milliseconds"),
            ("ColdStart", "Count"),
            ("AwsCalls", "Count"),
            ("AwsCallErrors", "Count"),
        ] {
            metric_def(&mut out, &mut first, name, unit);
        }
        if created > 0 || deleted > 0 {
            metric_def(&mut out, &mut first, "ResourcesCreated", "Count");
            metric_def(&mut out, &mut first, "ResourcesDeleted", "Count");
        }
        for (name, _) in &self.counters.counts {
            metric_def(&mut out, &mut first, name, "Count");
        }
        out.push_str("]}]},\"Action\":");
        json_str(&mut out, self.action);
        out.push_str(",\"Outcome\":");
        json_str(&mut out, self.outcome);
        let errors = u8::from(self.outcome == "server_error");
        let _ = write!(out, ",\"Invocations\":1,\"Errors\":{errors},\"DurationMs\":");
        json_num(&mut out, (self.duration_ms * 1000.0).round() / 1000.0);
        let _ = write!(
            out,
            ",\"ColdStart\":{},\"AwsCalls\":{},\"AwsCallErrors\":{}",
            u8::from(self.cold_start),
            self.calls.total,
            self.calls.failed
        );
        if created > 0 || deleted > 0 {
            let _ = write!(out, ",\"ResourcesCreated\":{created},\"ResourcesDeleted\":{deleted}");
        }
        for (name, value) in &self.counters.counts {
            out.push(',');
            json_str(&mut out, name);
            out.push(':');
            json_num(&mut out, *value);
        }
        out.push_str(",\"requestId\":");
        json_str(&mut out, self.request_id);
        out.push('}');
        lines.push(out);

        for (kind, created, deleted) in &self.counters.resources {
            let mut out = String::with_capacity(320);
            directive_head(&mut out, self, "\"Action\",\"ResourceKind\"");
            let mut first = true;
            metric_def(&mut out, &mut first, "ResourcesCreated", "Count");
            metric_def(&mut out, &mut first, "ResourcesDeleted", "Count");
            out.push_str("]}]},\"Action\":");
            json_str(&mut out, self.action);
            out.push_str(",\"ResourceKind\":");
            json_str(&mut out, kind);
            let _ = write!(
                out,
                ",\"ResourcesCreated\":{created},\"ResourcesDeleted\":{deleted},\"requestId\":"
            );
            json_str(&mut out, self.request_id);
            out.push('}');
            lines.push(out);
        }
        lines
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
        let ((), calls, counters) = measure(async {
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
            namespace: DEFAULT_NAMESPACE,
            timestamp_ms: 1_795_773_600_000,
            action: "create",
            outcome: "server_error",
            duration_ms: 12.3456,
            cold_start: true,
            request_id: "req-\"1\"",
            calls: &calls,
            counters: &counters,
        };
        let records = m.records();
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
        assert_eq!(main["DurationMs"], 12.346);
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
