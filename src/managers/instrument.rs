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
