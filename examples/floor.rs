//! The floor: a hello-world `lambda_runtime` binary with the same runtime flavour and
//! release profile as `bootstrap`. `make bench` compares the function's cold start and
//! memory with this one's; it answers every event with a constant envelope.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|_event: LambdaEvent<Value>| async move {
        Ok::<Value, Error>(json!({
            "statusCode": 200,
            "headers": {"Content-Type": "application/json"},
            "body": "{\"hello\":\"world\"}"
        }))
    }))
    .await
}
