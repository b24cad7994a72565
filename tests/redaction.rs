//! No secret reaches a log line or a metric: the process-wide JSON subscriber (at TRACE)
//! writes to a buffer, and the tests look for known secret values in it.
//!
//! The subscriber is global (set once for this test binary): a thread-local one would
//! race with tests on other threads that log without a subscriber.

use std::sync::{Arc, OnceLock};

use foundry_lambda::app::Ctx;
use foundry_lambda::logging::{subscriber, BufferWriter};
use foundry_lambda::testing::{fake_app, invoke};
use serde_json::{json, Value};
use tracing_subscriber::EnvFilter;

const T0: i64 = 1_795_773_600;
const UID: &str = "123456789012345678";

/// The log of this test binary (every test's lines).
fn log() -> BufferWriter {
    static LOG: OnceLock<BufferWriter> = OnceLock::new();
    LOG.get_or_init(|| {
        let buf = BufferWriter::default();
        tracing::subscriber::set_global_default(subscriber(EnvFilter::new("trace"), buf.clone()))
            .expect("the only global subscriber of this binary");
        buf
    })
    .clone()
}

#[tokio::test]
async fn the_log_of_a_create_never_contains_a_secret() {
    let (app, fake, _) = fake_app(T0);
    let buf = log();
    let password = "Pa55-word-that-must-stay-hidden";
    let (code, body) = invoke(
        &app,
        json!({"action":"create","userId":UID,"sanitizedUsername":"alice","foundryUsername":"gm@example.com","foundryPassword":password}),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    // A failing create logs its error too.
    invoke(
        &app,
        json!({"action":"create","userId":"42","sanitizedUsername":"Bad Name","foundryUsername":"x","foundryPassword":password}),
    )
    .await;
    let kofi_token = "kofi-test-token";
    invoke(
        &app,
        json!({"action":"kofi-webhook","userId":"system","body":format!("{{\"verification_token\":\"{kofi_token}\"}}")}),
    )
    .await;
    let log = buf.contents();
    assert!(log.lines().count() >= 3, "{log}");
    assert!(log.contains("\"action\":\"create\""), "{log}");
    let admin_key = body["adminKey"].as_str().unwrap();
    let s3_secret = fake.iam.access_keys("foundry-alice-12345678")[0]
        .secret_access_key
        .expose()
        .to_string();
    for secret in [password, admin_key, s3_secret.as_str(), kofi_token] {
        assert!(!log.contains(secret), "the log contains a secret: {secret}");
    }
    for line in log.lines() {
        let v: Value = serde_json::from_str(line).expect("every line is JSON");
        assert!(v.get("level").is_some() && v.get("timestamp").is_some(), "{line}");
    }
}

#[tokio::test]
async fn no_metric_or_log_line_contains_a_secret() {
    let (app, fake, _) = fake_app(T0);
    let metrics = BufferWriter::default();
    let logs = log();
    let app = app.with_metrics(Arc::new(metrics.clone()));
    let password = "hunter2-but-longer-XYZ";
    let kofi_token = "kofi-test-token";
    let ctx = Ctx::default();
    let created = app
        .handle(
            &json!({"action":"create","userId":UID,"sanitizedUsername":"alice","foundryUsername":"gm@example.com","foundryPassword":password}),
            &ctx,
        )
        .await;
    let admin_key = created.envelope.body_json().unwrap()["adminKey"]
        .as_str()
        .unwrap()
        .to_string();
    let keys = fake.iam.access_keys("foundry-alice-12345678");
    assert_eq!(keys.len(), 1);
    for e in [
        json!({"action":"start","userId":UID}),
        json!({"action":"status","userId":UID}),
        json!({"action":"list-all","userId":"system"}),
        json!({"action":"kofi-webhook","userId":"system","body":format!("{{\"verification_token\":\"{kofi_token}\",\"message\":\"Discord: {UID}\"}}")}),
        json!({"action":"destroy","userId":UID}),
    ] {
        app.handle(&e, &ctx).await;
    }
    let text = format!("{}\n{}", metrics.contents(), logs.contents());
    assert!(text.contains("\"Action\":\"destroy\""), "the records were captured");
    let mut secrets = vec![password.to_string(), admin_key, kofi_token.to_string()];
    secrets.extend(keys.iter().map(|k| k.secret_access_key.expose().to_string()));
    for secret in &secrets {
        assert!(
            !text.contains(secret.as_str()),
            "a secret leaked into metrics or logs: {secret}"
        );
    }
}
