//! Notifications against moto: the outbox item is written by a conditional put and marked
//! sent, a duplicate sends nothing, the sparse index of pending notifications answers the
//! sweep's query, and the bot's token is read from Secrets Manager. Discord is a stub on
//! 127.0.0.1.

mod discord_stub;
mod moto_env;

use std::sync::Arc;

use discord_stub::Answer;
use foundry_lambda::app::{App, Ctx};
use foundry_lambda::clock::SystemClock;
use foundry_lambda::config::Config;
use foundry_lambda::managers::dynamodb::SdkDynamo;
use foundry_lambda::managers::Managers;
use foundry_lambda::store::Store;
use serde_json::{json, Value};

const TOKEN: &str = "moto-bot-token-that-must-stay-hidden";

async fn call(app: &App, event: Value) -> (u16, Value) {
    let handled = app.handle(&event, &Ctx::default()).await;
    (
        handled.envelope.status_code,
        handled.envelope.body_json().unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn the_outbox_item_is_put_once_marked_sent_and_pending_ones_are_found_by_the_index() {
    let aws = moto_env::local_aws();
    let sdk = moto_env::sdk_config().await;
    let stub = discord_stub::start().await;
    let secret = format!("discord-bot-token-{}", moto_env::unique_user_id());
    aws_sdk_secretsmanager::Client::new(&sdk)
        .create_secret()
        .name(&secret)
        .secret_string(TOKEN)
        .send()
        .await
        .expect("CreateSecret");
    let mut env = aws.env.clone();
    env.insert("NOTIFICATIONS".into(), "on".into());
    env.insert("DISCORD_TOKEN_SECRET".into(), secret.clone());
    env.insert("DISCORD_API_BASE_URL".into(), stub.base());
    let config = Config::from_lookup(|k| env.get(k).cloned()).expect("config");
    let table = config.notification_table.clone();
    let app = App::new(config.clone(), Arc::new(SystemClock), Managers::from_sdk(&sdk));

    let user = moto_env::unique_user_id();
    let session = format!("moto-session-{user}");
    let event = json!({"action":"send-notification","userId":"system","notificationType":"session-ready",
                       "targetUserId":user,"sessionId":session,"instanceUrl":"https://alice.foundry.test"});
    let first = call(&app, event.clone()).await;
    let second = call(&app, event).await;
    assert_eq!(first, second);
    assert_eq!(first.0, 200, "{:?}", first.1);
    let sent = stub.deliveries();
    assert_eq!(sent.len(), 1, "one message for two invocations");
    assert_eq!(sent[0].authorization.as_deref(), Some(format!("Bot {TOKEN}").as_str()));

    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let id = format!("session-ready#{session}");
    let item = ddb
        .get_item()
        .table_name(&table)
        .key("notificationId", aws_sdk_dynamodb::types::AttributeValue::S(id.clone()))
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem")
        .item
        .expect("the outbox item");
    assert!(item.contains_key("sentAt"), "{item:?}");
    assert_eq!(
        item.get("via").and_then(|v| v.as_s().ok()).map(String::as_str),
        Some("dm")
    );
    assert!(!item.contains_key("pendingShard"));
    assert!(item.contains_key("expiresAt"));

    // A notification Discord refuses for now stays pending, and the sweep's query of the
    // sparse index finds it once it is due (never before).
    stub.always(Answer::Fails);
    let failing = format!("moto-failing-{user}");
    let (code, _) = call(
        &app,
        json!({"action":"send-notification","userId":"system","notificationType":"session-failed",
               "targetUserId":user,"sessionId":failing}),
    )
    .await;
    assert_eq!(code, 200);
    let store = Store::new(Arc::new(SdkDynamo::new(&sdk)), &config);
    let now = chrono_now();
    let pending_id = format!("session-failed#{failing}");
    let due_now: Vec<String> = store
        .outbox
        .due(now)
        .await
        .expect("Query")
        .into_iter()
        .map(|p| p.notification_id)
        .collect();
    assert!(!due_now.contains(&pending_id), "not due before its backoff");
    let due_later: Vec<String> = store
        .outbox
        .due(now + 60)
        .await
        .expect("Query")
        .into_iter()
        .map(|p| p.notification_id)
        .collect();
    assert!(due_later.contains(&pending_id), "{due_later:?}");
    assert!(!due_later.contains(&id), "a sent notification is not in the index");
    // Only one claimer gets the next attempt.
    let a = store
        .outbox
        .claim(&pending_id, now + 60, now + 120)
        .await
        .expect("claim");
    let b = store
        .outbox
        .claim(&pending_id, now + 60, now + 120)
        .await
        .expect("claim");
    assert!(a.is_some() && b.is_none(), "{a:?} {b:?}");
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}
