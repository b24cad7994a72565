//! SDK instrumentation: every AWS operation an SDK client performs is reported once to
//! [`telemetry::aws_call`](crate::telemetry::aws_call) with its service, operation name,
//! duration and outcome — never with request or response parameters.
//!
//! Every adapter registers the interceptor on its client's config:
//!
//! ```ignore
//! let mut conf = aws_sdk_ecs::config::Builder::from(sdk);
//! conf.push_interceptor(instrument::interceptor());
//! let client = aws_sdk_ecs::Client::from_conf(conf.build());
//! ```
//!
//! ## What is one call
//!
//! One *operation* (one `send().await`), after all its retries: that is what `AwsCalls` counts.
//! The duration runs from `read_before_execution` to `read_after_execution`, so it includes
//! retries and their backoff; when there was more than one attempt a second DEBUG line
//! (`aws call retried`, with `attempts`) says so. The outcome is ok when the operation returned
//! a successful output; a service error, timeout, dispatch or response failure is an error.
//! A call whose future is dropped mid-flight (a `select!` or `tokio::time::timeout` around it)
//! is still reported once, as an error, when the SDK drops its state.
//!
//! ## Cost
//!
//! Per operation: two `Instant::now()`, one small value put in the operation's `ConfigBag` (one
//! allocation), a few `ConfigBag` lookups. Names are borrowed from the SDK's static
//! [`Metadata`]; nothing is formatted unless DEBUG is enabled. The interceptor is registered as
//! *permanent*, which spares the SDK an "is it disabled?" lookup before each hook (release builds).
//!
//! ## Recording requests (tests only)
//!
//! Built with the `test-util` feature (as every test build is), the interceptor also records
//! each HTTP request attempt to the file named by `FOUNDRY_AWS_REQUEST_LOG`, one JSON object a
//! line: the service and operation, the method and URI, the answer's status, and the fields
//! of the request that name a resource (table, index, cluster, task definition, role ARNs,
//! log group, secret id, file system, access point, record name and type, IAM user and path,
//! target group, tags …). It keeps only those: values such as a secret's string, a policy
//! document, container environment or an item's attributes are never written. The IAM coverage
//! check (`tools/iam_check.py`) holds the template's roles against these records.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::{Intercept, SharedInterceptor};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::retries::RequestAttempts;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};

use crate::telemetry;

/// Reports each SDK operation to [`telemetry::aws_call`]. Stateless: per-operation state lives
/// in the operation's `ConfigBag`, so one instance serves every client and concurrent call.
#[derive(Debug, Clone, Copy, Default)]
pub struct TelemetryInterceptor;

/// The interceptor, ready for `config::Builder::push_interceptor` of any SDK client.
pub fn interceptor() -> SharedInterceptor {
    SharedInterceptor::permanent(TelemetryInterceptor)
}

const UNKNOWN: (&str, &str) = ("unknown", "unknown");

fn names(metadata: Option<&Metadata>) -> (&str, &str) {
    metadata.map_or(UNKNOWN, |m| (m.service(), m.name()))
}

/// One operation in flight, stored in its `ConfigBag` by `read_before_execution`.
#[derive(Debug)]
struct InFlight {
    start: Instant,
    /// The operation's names, kept for the report on drop (the bag is gone by then).
    metadata: OnceLock<Metadata>,
    reported: AtomicBool,
}

impl Storable for InFlight {
    type Storer = StoreReplace<Self>;
}

impl Drop for InFlight {
    fn drop(&mut self) {
        // Normally `read_after_execution` has reported. If not, the operation's future was
        // dropped before it completed: the request may well have gone out, and it did not
        // succeed, so it counts as a failed call.
        if !*self.reported.get_mut() {
            let (service, operation) = names(self.metadata.get());
            telemetry::aws_call(service, operation, self.start.elapsed(), false);
        }
    }
}

impl Intercept for TelemetryInterceptor {
    fn name(&self) -> &'static str {
        "TelemetryInterceptor"
    }

    fn read_before_execution(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        cfg.interceptor_state().store_put(InFlight {
            start: Instant::now(),
            metadata: OnceLock::new(),
            reported: AtomicBool::new(false),
        });
        Ok(())
    }

    // A client-level interceptor's `read_before_execution` runs before the operation's config
    // (and its `Metadata`) is in the bag; this hook runs after, before the first await point.
    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let (Some(in_flight), Some(metadata)) = (cfg.load::<InFlight>(), cfg.load::<Metadata>()) {
            // A clone of `Cow::Borrowed` names: no allocation.
            let _ = in_flight.metadata.set(metadata.clone());
        }
        Ok(())
    }

    #[cfg(feature = "test-util")]
    fn read_before_transmit(
        &self,
        context: &aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if recording::enabled() {
            let (service, operation) = names(cfg.load::<Metadata>());
            let pending = recording::Pending::of_request(service, operation, context.request());
            cfg.interceptor_state().store_put(pending);
        }
        Ok(())
    }

    // After deserialization: before it, the answer's body is still a stream.
    #[cfg(feature = "test-util")]
    fn read_after_deserialization(
        &self,
        context: &aws_smithy_runtime_api::client::interceptors::context::AfterDeserializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(pending) = cfg.load::<recording::Pending>() {
            pending.add_response(context.response());
        }
        Ok(())
    }

    #[cfg(feature = "test-util")]
    fn read_after_attempt(
        &self,
        _context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(pending) = cfg.load::<recording::Pending>() {
            pending.write();
        }
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let duration = match cfg.load::<InFlight>() {
            Some(in_flight) if in_flight.reported.swap(true, Ordering::Relaxed) => return Ok(()),
            Some(in_flight) => in_flight.start.elapsed(),
            None => Duration::ZERO,
        };
        let ok = matches!(context.output_or_error(), Some(Ok(_)));
        let (service, operation) = names(cfg.load::<Metadata>());
        telemetry::aws_call(service, operation, duration, ok);
        if let Some(attempts) = cfg.load::<RequestAttempts>().map(|a| a.attempts()).filter(|&a| a > 1) {
            tracing::debug!(service, operation, attempts, "aws call retried");
        }
        Ok(())
    }
}

/// The request recorder of the IAM coverage check (see the module's documentation).
#[cfg(feature = "test-util")]
pub mod recording {
    use std::io::Write as _;
    use std::sync::{Mutex, OnceLock};

    use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
    use aws_smithy_types::config_bag::{Storable, StoreReplace};
    use serde_json::{json, Map, Value};

    /// The variable naming the file that records are appended to.
    pub const ENV: &str = "FOUNDRY_AWS_REQUEST_LOG";

    fn file() -> Option<&'static Mutex<std::fs::File>> {
        static FILE: OnceLock<Option<Mutex<std::fs::File>>> = OnceLock::new();
        FILE.get_or_init(|| {
            let path = std::env::var_os(ENV).filter(|p| !p.is_empty())?;
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .unwrap_or_else(|e| panic!("{ENV}: cannot open {}: {e}", path.to_string_lossy()));
            Some(Mutex::new(file))
        })
        .as_ref()
    }

    /// Whether requests are recorded (the variable is set).
    pub fn enabled() -> bool {
        file().is_some()
    }

    /// JSON keys whose values name a resource or a condition's value. Any other key's value is
    /// dropped, except under a `tags`/`Tags` key, where every string is a tag key or value.
    const JSON_KEYS: &[&str] = &[
        // DynamoDB (TransactItems' items carry their own TableName)
        "TableName",
        "IndexName",
        // ECS
        "cluster",
        "clusters",
        "taskDefinition",
        "family",
        "familyPrefix",
        "tasks",
        "task",
        "startedBy",
        "taskRoleArn",
        "executionRoleArn",
        "resourceArn",
        "include",
        "launchType",
        "valueFrom",
        "awslogs-group",
        "awslogs-create-group",
        "awslogs-region",
        "fileSystemId",
        "accessPointId",
        "iam",
        "rootDirectory",
        "image",
        // EFS
        "FileSystemId",
        "AccessPointId",
        // Secrets Manager
        "SecretId",
        "Name",
        // CloudWatch Logs
        "logGroupName",
        "logGroupNamePrefix",
    ];

    /// XML elements (S3, Route 53) whose text names a resource or a condition's value.
    const XML_ELEMENTS: &[&str] = &["Action", "Name", "Type", "Key", "VersionId"];

    /// Query-protocol parameters (IAM, ELBv2) that are dropped: a policy document is neither a
    /// resource nor a condition value of the call.
    const QUERY_DROPPED: &[&str] = &["PolicyDocument"];

    fn walk(value: &Value, path: &mut Vec<String>, in_tags: bool, out: &mut Vec<Value>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    let keep = in_tags || JSON_KEYS.contains(&k.as_str());
                    let tags = in_tags || k == "tags" || k == "Tags";
                    path.push(k.clone());
                    if keep && !v.is_object() && !v.is_array() {
                        out.push(json!([path.join("."), v]));
                    } else {
                        walk(v, path, tags, out);
                    }
                    path.pop();
                }
            }
            Value::Array(items) => {
                let last_kept = path.last().is_some_and(|k| in_tags || JSON_KEYS.contains(&k.as_str()));
                for (i, v) in items.iter().enumerate() {
                    path.push(i.to_string());
                    if last_kept && !v.is_object() && !v.is_array() {
                        out.push(json!([path.join("."), v]));
                    } else {
                        walk(v, path, in_tags, out);
                    }
                    path.pop();
                }
            }
            _ => {}
        }
    }

    fn xml_fields(text: &str, out: &mut Vec<Value>) {
        let mut rest = text;
        while let Some(start) = rest.find('<') {
            rest = &rest[start + 1..];
            let Some(end) = rest.find('>') else { break };
            let tag = &rest[..end];
            rest = &rest[end + 1..];
            if tag.starts_with('/') || tag.ends_with('/') {
                continue;
            }
            let name = tag.split_whitespace().next().unwrap_or("");
            if XML_ELEMENTS.contains(&name) {
                let text = &rest[..rest.find('<').unwrap_or(rest.len())];
                out.push(json!([name, text.trim()]));
            }
        }
    }

    /// The resource-naming fields of a body, whatever its protocol.
    fn fields(content_type: Option<&str>, body: Option<&[u8]>) -> Vec<Value> {
        let mut out = Vec::new();
        let Some(body) = body.filter(|b| !b.is_empty()) else {
            return out;
        };
        let ct = content_type.unwrap_or("");
        if ct.contains("x-www-form-urlencoded") {
            for (k, v) in form_urlencoded::parse(body) {
                if !QUERY_DROPPED.contains(&k.as_ref()) {
                    out.push(json!([k, v]));
                }
            }
        } else if let Ok(value) = serde_json::from_slice::<Value>(body) {
            walk(&value, &mut Vec::new(), false, &mut out);
        } else if let Ok(text) = std::str::from_utf8(body) {
            if text.trim_start().starts_with('<') {
                xml_fields(text, &mut out);
            }
        }
        out
    }

    /// One attempt's record, kept in the operation's `ConfigBag` until the attempt ends.
    #[derive(Debug)]
    pub struct Pending(Mutex<Option<Map<String, Value>>>);

    impl Storable for Pending {
        type Storer = StoreReplace<Self>;
    }

    impl Pending {
        pub fn of_request(service: &str, operation: &str, request: &HttpRequest) -> Self {
            let mut m = Map::new();
            m.insert("service".into(), service.into());
            m.insert("operation".into(), operation.into());
            m.insert("method".into(), request.method().into());
            m.insert("uri".into(), request.uri().into());
            let ct = request.headers().get("content-type");
            m.insert("fields".into(), Value::Array(fields(ct, request.body().bytes())));
            Pending(Mutex::new(Some(m)))
        }

        /// Adds the answer's status and, for EFS (whose access points are known by id only) and
        /// ECS DescribeTaskDefinition (a task definition registered before the recording began),
        /// the resource-naming fields of the answer.
        pub fn add_response(&self, response: &HttpResponse) {
            let mut guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(m) = guard.as_mut() {
                m.insert("status".into(), response.status().as_u16().into());
                let service = m.get("service").and_then(Value::as_str);
                let operation = m.get("operation").and_then(Value::as_str);
                if service == Some("EFS") || (service == Some("ECS") && operation == Some("DescribeTaskDefinition")) {
                    let ct = response.headers().get("content-type");
                    m.insert(
                        "response".into(),
                        Value::Array(fields(ct.or(Some("")), response.body().bytes())),
                    );
                }
            }
        }

        /// Appends the record to the file (once).
        pub fn write(&self) {
            let Some(m) = self.0.lock().unwrap_or_else(|e| e.into_inner()).take() else {
                return;
            };
            if let Some(file) = file() {
                let mut line = Value::Object(m).to_string();
                line.push('\n');
                let mut f = file.lock().unwrap_or_else(|e| e.into_inner());
                let _ = f.write_all(line.as_bytes());
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn json_keeps_resource_names_and_tags_and_drops_everything_else() {
            let body =
                br#"{"Name":"foundry-credentials-1","SecretString":"hunter2","Tags":[{"Key":"UserId","Value":"1"}],
                "containerDefinitions":[{"environment":[{"name":"A","value":"secret-env"}],
                "secrets":[{"name":"P","valueFrom":"arn:x:password::"}]}]}"#;
            let f = fields(Some("application/x-amz-json-1.1"), Some(body));
            let text = Value::Array(f.clone()).to_string();
            assert!(!text.contains("hunter2") && !text.contains("secret-env"), "{text}");
            assert!(f.contains(&json!(["Name", "foundry-credentials-1"])), "{text}");
            assert!(f.contains(&json!(["Tags.0.Key", "UserId"])), "{text}");
            assert!(f.contains(&json!(["Tags.0.Value", "1"])), "{text}");
            assert!(
                f.contains(&json!([
                    "containerDefinitions.0.secrets.0.valueFrom",
                    "arn:x:password::"
                ])),
                "{text}"
            );
        }

        #[test]
        fn query_and_xml_bodies() {
            let f = fields(
                Some("application/x-www-form-urlencoded"),
                Some(b"Action=PutUserPolicy&UserName=u&PolicyDocument=%7B%7D"),
            );
            assert_eq!(f, vec![json!(["Action", "PutUserPolicy"]), json!(["UserName", "u"])]);
            let xml =
                br#"<ChangeResourceRecordSetsRequest xmlns="x"><ChangeBatch><Changes><Change><Action>CREATE</Action>
                <ResourceRecordSet><Name>a.foundry.test</Name><Type>A</Type><AliasTarget><DNSName>d</DNSName>
                </AliasTarget></ResourceRecordSet></Change></Changes></ChangeBatch></ChangeResourceRecordSetsRequest>"#;
            let f = fields(Some("application/xml"), Some(xml));
            assert_eq!(
                f,
                vec![
                    json!(["Action", "CREATE"]),
                    json!(["Name", "a.foundry.test"]),
                    json!(["Type", "A"])
                ]
            );
        }
    }
}

#[cfg(test)]
mod tests {
    //! The interceptor on a real SDK client (DynamoDB) over a canned HTTP connector: no network,
    //! no moto. tests/aws_telemetry.rs covers the adapters against moto.

    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
    use aws_sdk_dynamodb::types::AttributeValue;
    use aws_smithy_runtime_api::client::http::{
        http_client_fn, HttpConnector, HttpConnectorFuture, SharedHttpConnector,
    };
    use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::retry::RetryConfig;
    use serde_json::Value;

    use super::*;
    use crate::telemetry::{with_call_stats, CallStats};

    /// Answers the i-th request with `replies[i]` (the last one repeats); `None` never answers.
    #[derive(Debug)]
    struct Canned {
        replies: Vec<Option<(u16, &'static str)>>,
        seen: AtomicUsize,
    }

    impl HttpConnector for Canned {
        fn call(&self, _request: HttpRequest) -> HttpConnectorFuture {
            let i = self.seen.fetch_add(1, Ordering::SeqCst);
            match self.replies[i.min(self.replies.len() - 1)] {
                Some((status, body)) => {
                    let mut resp = HttpResponse::new(status.try_into().unwrap(), SdkBody::from(body));
                    resp.headers_mut().insert("content-type", "application/x-amz-json-1.0");
                    HttpConnectorFuture::ready(Ok(resp))
                }
                None => HttpConnectorFuture::new(std::future::pending()),
            }
        }
    }

    fn client(
        replies: Vec<Option<(u16, &'static str)>>,
        instrumented: bool,
    ) -> (aws_sdk_dynamodb::Client, Arc<Canned>) {
        let canned = Arc::new(Canned {
            replies,
            seen: AtomicUsize::new(0),
        });
        let connector = SharedHttpConnector::new(ArcConnector(canned.clone()));
        let mut conf = aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url("http://127.0.0.1:1")
            .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(3)
                    .with_initial_backoff(Duration::from_millis(1)),
            )
            .http_client(http_client_fn(move |_, _| connector.clone()));
        if instrumented {
            conf.push_interceptor(interceptor());
        }
        (aws_sdk_dynamodb::Client::from_conf(conf.build()), canned)
    }

    #[derive(Debug)]
    struct ArcConnector(Arc<Canned>);

    impl HttpConnector for ArcConnector {
        fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
            self.0.call(request)
        }
    }

    const SECRET_KEY: &str = "key-value-that-must-not-be-logged-7f3a";

    async fn get_item(client: &aws_sdk_dynamodb::Client) -> bool {
        client
            .get_item()
            .table_name("t")
            .key("k", AttributeValue::S(SECRET_KEY.into()))
            .send()
            .await
            .is_ok()
    }

    /// Runs `fut` with a DEBUG capture of this crate's log; returns its output, the call
    /// counts and the "aws call…" lines.
    async fn observed<F: std::future::Future>(fut: F) -> (F::Output, CallStats, Vec<Value>) {
        let (_guard, buf) = crate::logging::capture("foundry_lambda=debug");
        let (out, stats) = with_call_stats(fut).await;
        let log = buf.contents();
        assert!(!log.contains(SECRET_KEY), "a request parameter was logged:\n{log}");
        let lines = log
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|v| v["message"].as_str().is_some_and(|m| m.starts_with("aws call")))
            .collect();
        (out, stats, lines)
    }

    #[tokio::test]
    async fn a_successful_operation_is_one_ok_call_with_its_names_and_duration() {
        let (client, _) = client(vec![Some((200, r#"{"Item":{"k":{"S":"x"}}}"#))], true);
        let (ok, stats, lines) = observed(get_item(&client)).await;
        assert!(ok);
        assert_eq!(stats, CallStats { total: 1, failed: 0 });
        assert_eq!(lines.len(), 1, "{lines:?}");
        let line = &lines[0];
        assert_eq!(line["level"], "DEBUG");
        assert_eq!(line["message"], "aws call");
        assert_eq!(line["service"], "DynamoDB");
        assert_eq!(line["operation"], "GetItem");
        assert_eq!(line["outcome"], "ok");
        assert!(line["duration_ms"].as_f64().is_some_and(|d| d >= 0.0), "{line}");
    }

    #[tokio::test]
    async fn a_service_error_is_one_failed_call() {
        let body = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException","message":"no table"}"#;
        let (client, canned) = client(vec![Some((400, body))], true);
        let (ok, stats, lines) = observed(get_item(&client)).await;
        assert!(!ok);
        assert_eq!(canned.seen.load(Ordering::SeqCst), 1, "not retryable");
        assert_eq!(stats, CallStats { total: 1, failed: 1 });
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0]["outcome"], "error");
        assert_eq!(lines[0]["operation"], "GetItem");
    }

    #[tokio::test]
    async fn retries_are_one_call_reported_after_the_last_attempt() {
        let throttled = r#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"try again"}"#;
        let (client, canned) = client(
            vec![Some((500, throttled)), Some((500, throttled)), Some((200, "{}"))],
            true,
        );
        let (ok, stats, lines) = observed(get_item(&client)).await;
        assert!(ok);
        assert_eq!(canned.seen.load(Ordering::SeqCst), 3);
        assert_eq!(stats, CallStats { total: 1, failed: 0 });
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[0]["message"], "aws call");
        assert_eq!(lines[0]["outcome"], "ok");
        assert_eq!(lines[1]["message"], "aws call retried");
        assert_eq!(lines[1]["attempts"], 3);
    }

    #[tokio::test]
    async fn exhausted_retries_are_one_failed_call() {
        let (client, canned) = client(vec![Some((500, r#"{"__type":"InternalServerError"}"#))], true);
        let (ok, stats, lines) = observed(get_item(&client)).await;
        assert!(!ok);
        assert_eq!(canned.seen.load(Ordering::SeqCst), 3);
        assert_eq!(stats, CallStats { total: 1, failed: 1 });
        assert_eq!(lines[0]["outcome"], "error");
        assert_eq!(lines[1]["attempts"], 3);
    }

    #[tokio::test]
    async fn a_call_dropped_mid_flight_is_one_failed_call() {
        let (client, _) = client(vec![None], true);
        let (res, stats, lines) =
            observed(async { tokio::time::timeout(Duration::from_millis(20), get_item(&client)).await }).await;
        assert!(res.is_err(), "the call never answers");
        assert_eq!(stats, CallStats { total: 1, failed: 1 });
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0]["service"], "DynamoDB");
        assert_eq!(lines[0]["operation"], "GetItem");
        assert_eq!(lines[0]["outcome"], "error");
    }

    #[tokio::test]
    async fn calls_count_per_operation_across_clients_and_concurrency() {
        let (a, _) = client(vec![Some((200, "{}"))], true);
        let (b, _) = client(vec![Some((400, r#"{"__type":"ValidationException"}"#))], true);
        let ((), stats, lines) = observed(async {
            let (x, y, z) = tokio::join!(get_item(&a), get_item(&b), get_item(&a));
            assert_eq!((x, y, z), (true, false, true));
        })
        .await;
        assert_eq!(stats, CallStats { total: 3, failed: 1 });
        assert_eq!(lines.len(), 3);
    }
}
