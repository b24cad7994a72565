//! The `bootstrap` binary: a `lambda_runtime` custom runtime.

use std::sync::Arc;

use foundry_lambda::app::{App, Ctx};
use foundry_lambda::clock::{Clock, SystemClock};
use foundry_lambda::config::Config;
use foundry_lambda::managers::Managers;
use foundry_lambda::telemetry::StdoutSink;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::value::RawValue;
use serde_json::Value;
use tracing::Instrument;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    foundry_lambda::logging::init();

    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cold start failed");
            report_init_error(&e.to_string()).await;
            return Err(e.into());
        }
    };

    // One SdkConfig and one HTTPS client for every SDK client, each client built on its
    // first use (src/managers/sdk.rs): the cold start pays only for what it needs.
    let sdk = foundry_lambda::managers::sdk::load_config(&config.region).await;
    let app =
        Arc::new(App::new(config, Arc::new(SystemClock), Managers::from_sdk(&sdk)).with_metrics(Arc::new(StdoutSink)));

    // The event arrives as JSON text, read by the handler: an event nested deeper than a
    // `Value` can be read is answered with an envelope, not a runtime error.
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Box<RawValue>>| {
        let app = app.clone();
        async move {
            let ctx = Ctx::from_runtime(
                event.context.request_id.clone(),
                event.context.deadline,
                SystemClock.now_ms(),
            );
            let span = tracing::info_span!("invocation", requestId = %ctx.request_id);
            let handled = app.handle_text(event.payload.get(), &ctx).instrument(span).await;
            // Always an envelope, never a handler error: the AWS CLI retries on function
            // errors, and the original's contract is the envelope.
            Ok::<Value, lambda_runtime::Error>(serde_json::to_value(&handled.envelope)?)
        }
    }))
    .await
}

/// Tells the Lambda service why initialisation failed (`/runtime/init/error`), so the
/// invoker sees one clear `Runtime.InitError` instead of a timeout.
async fn report_init_error(message: &str) {
    let Ok(api) = std::env::var("AWS_LAMBDA_RUNTIME_API") else {
        return; // not running under a Lambda Runtime API
    };
    let Ok(uri) = format!("http://{api}").parse::<http::Uri>() else {
        return;
    };
    let Ok(client) = lambda_runtime_api_client::Client::builder().with_endpoint(uri).build() else {
        return;
    };
    let body = serde_json::json!({"errorMessage": message, "errorType": "Runtime.InitError"}).to_string();
    let req = lambda_runtime_api_client::build_request()
        .method(http::Method::POST)
        .uri("/2018-06-01/runtime/init/error")
        .header("lambda-runtime-function-error-type", "Runtime.InitError")
        .header("content-type", "application/json")
        .body(lambda_runtime_api_client::body::Body::from(body));
    if let Ok(req) = req {
        if let Err(e) = client.call(req).await {
            tracing::error!(error = %e, "could not report the init error to the Runtime API");
        }
    }
}
