//! Paths the IAM coverage check (`make iam-check`) must see, against moto: requests whose
//! authorization depends on state the other tests never reach. The check holds the
//! template's role against what these make the function request (see docs/deployment.md,
//! "What the check found").

mod moto_env;

use std::sync::Arc;

use foundry_lambda::app::{App, Ctx};
use foundry_lambda::clock::SystemClock;
use foundry_lambda::config::Config;
use foundry_lambda::managers::efs::{Efs, SdkEfs};
use foundry_lambda::managers::Managers;
use serde_json::{json, Value};

async fn app() -> App {
    let aws = moto_env::local_aws();
    let config = Config::from_lookup(|k| aws.env.get(k).cloned()).expect("the env file is a complete configuration");
    let sdk = moto_env::sdk_config().await;
    App::new(config, Arc::new(SystemClock), Managers::from_sdk(&sdk))
}

async fn call(app: &App, event: Value) -> (u16, Value) {
    let handled = app.handle(&event, &Ctx::default()).await;
    (
        handled.envelope.status_code,
        handled.envelope.body_json().unwrap_or(Value::Null),
    )
}

/// A destroy cut short right after it deleted the access point leaves the record pointing at
/// an access point that no longer exists. The next destroy asks EFS about it and deletes it
/// again; EFS answers AccessPointNotFound, which must count as done. (On AWS that answer needs
/// the role's tag condition to allow a request on an access point without tags: the check
/// holds the role against these very requests.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destroy_after_the_access_point_is_gone_finishes() {
    let app = app().await;
    let uid = moto_env::unique_user_id();
    let san = format!("apgone{}", &uid[uid.len() - 8..]);
    let (code, body) = call(
        &app,
        json!({"action":"create","userId":uid,"sanitizedUsername":san,"foundryUsername":"gm@example.com",
               "foundryPassword":"moto-pw-123"}),
    )
    .await;
    assert_eq!(code, 200, "create: {body}");
    let access_point = body["accessPointId"].as_str().expect("an access point").to_string();

    // The cut-short destroy's own DeleteAccessPoint (through the function's adapter, so that
    // the recording has it).
    SdkEfs::new(&moto_env::sdk_config().await)
        .delete_access_point(&access_point)
        .await
        .expect("DeleteAccessPoint");

    let (code, body) = call(&app, json!({"action":"destroy","userId":uid})).await;
    assert_eq!(code, 200, "destroy: {body}");
    assert_eq!(body["message"], "Instance destroyed successfully", "{body}");
    let (code, body) = call(&app, json!({"action":"status","userId":uid})).await;
    assert_eq!(code, 500, "{body}");
    assert_eq!(body["error"], "Internal error: Instance not found");
}
