//! No secret reaches a log line or a metric: the process-wide JSON subscriber (at TRACE)
//! writes to a buffer, and the tests look for known secret values in it.
//!
//! The subscriber is global (set once for this test binary): a thread-local one would
//! race with tests on other threads that log without a subscriber.

mod discord_stub;

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

#[tokio::test]
async fn the_discord_token_webhook_url_admin_key_and_password_never_reach_a_message_an_answer_or_a_log_line() {
    use foundry_lambda::config::{test_vars, Config};
    use foundry_lambda::managers::Secrets;
    use foundry_lambda::secret::Sensitive;
    use foundry_lambda::testing::fake_app_with;

    let logs = log();
    let stub = discord_stub::start().await;
    let token = "discord-bot-token-NEVER-SHOWN-0123456789";
    let mut vars: Vec<(&str, String)> = test_vars().into_iter().map(|(k, v)| (k, v.to_string())).collect();
    vars.extend([
        ("NOTIFICATIONS", "on".to_string()),
        ("DISCORD_TOKEN_SECRET", "discord-bot-token".to_string()),
        ("DISCORD_WEBHOOK_SECRET", "discord-webhook".to_string()),
        ("DISCORD_API_BASE_URL", stub.base()),
        ("NOTIFY_BUDGET_MS", "500".to_string()),
    ]);
    let config = Config::from_lookup(|k| vars.iter().rev().find(|(n, _)| *n == k).map(|(_, v)| v.clone())).unwrap();
    let (app, fake, clock) = fake_app_with(T0, config);
    fake.secrets
        .create_secret("discord-bot-token", "", &[], &Sensitive::new(token))
        .await
        .unwrap();
    fake.secrets
        .create_secret("discord-webhook", "", &[], &Sensitive::new(stub.webhook()))
        .await
        .unwrap();
    let password = "Foundry-Pa55word-NEVER-SHOWN";
    let (code, created) = invoke(
        &app,
        json!({"action":"create","userId":UID,"sanitizedUsername":"alice","foundryUsername":"gm@example.com","foundryPassword":password}),
    )
    .await;
    assert_eq!(code, 200, "{created}");
    let admin_key = created["adminKey"].as_str().unwrap().to_string();
    let mut answers = Vec::new();
    // Every kind of delivery: a DM (ready), a refused DM and the webhook (stopped), a 429
    // and a 500 (left pending, then the sweep), and send-notification.
    answers.push(invoke(&app, json!({"action":"start","userId":UID})).await.1);
    stub.script(&[discord_stub::Answer::DmRefused]);
    clock.advance(std::time::Duration::from_secs(3_600));
    answers.push(invoke(&app, json!({"action":"stop","userId":UID})).await.1);
    stub.script(&[discord_stub::Answer::Fails]);
    answers.push(
        invoke(
            &app,
            json!({"action":"send-notification","userId":"system","notificationType":"instance-shutdown",
                   "targetUserId":UID,"message":format!("{password} {admin_key}"),"instanceUrl":"https://alice.foundry.example.com"}),
        )
        .await
        .1,
    );
    clock.advance(std::time::Duration::from_secs(60));
    answers.push(
        invoke(&app, json!({"action":"auto-shutdown-check","userId":"system"}))
            .await
            .1,
    );
    // (`create` and the owner's `status` answer the admin key by contract: not checked here.)

    let requests = stub.requests();
    assert!(requests.iter().any(|r| r.is_webhook()), "the webhook was used");
    assert!(requests.iter().filter(|r| r.is_message()).count() >= 3);
    let bodies: Vec<String> = requests.iter().map(|r| r.body.to_string()).collect();
    let answers: Vec<String> = answers.iter().map(Value::to_string).collect();
    let log = logs.contents();
    assert!(log.contains("notification sent"), "the delivery was logged");
    let webhook = stub.webhook();
    let webhook_secret = "webhook-secret-token";
    for secret in [token, webhook.as_str(), webhook_secret, password, admin_key.as_str()] {
        assert!(!log.contains(secret), "a log line holds {secret}");
        for body in &bodies {
            assert!(!body.contains(secret), "a message holds {secret}: {body}");
        }
        for answer in &answers {
            assert!(!answer.contains(secret), "an answer holds {secret}: {answer}");
        }
    }
    // Only the bot's own requests carry the token, in their Authorization header.
    for r in &requests {
        let carries = r.raw.contains(token);
        assert_eq!(carries, !r.is_webhook(), "{}", r.path);
    }
}
