//! Scheduling against moto: concurrent bookings of one license, and concurrent sweeps
//! that start a due session once and route its user's URL.

mod moto_env;

use std::sync::Arc;

use foundry_lambda::app::{App, Ctx};
use foundry_lambda::clock::{Clock, SystemClock};
use foundry_lambda::config::Config;
use foundry_lambda::managers::Managers;
use serde_json::{json, Value};

async fn app() -> App {
    let aws = moto_env::local_aws();
    let config = Config::from_lookup(|k| aws.env.get(k).cloned()).expect("complete configuration");
    App::new(
        config,
        Arc::new(SystemClock),
        Managers::from_sdk(&moto_env::sdk_config().await),
    )
}

async fn call(app: &App, event: Value) -> (u16, Value) {
    let handled = app.handle(&event, &Ctx::default()).await;
    (
        handled.envelope.status_code,
        handled.envelope.body_json().unwrap_or(Value::Null),
    )
}

async fn create(app: &App, uid: &str, san: &str) {
    let event = json!({"action":"create","userId":uid,"sanitizedUsername":san,
                       "foundryUsername":"gm@example.com","foundryPassword":"moto-pw-123"});
    let (code, body) = call(app, event).await;
    assert_eq!(code, 200, "create: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_concurrent_bookings_of_overlapping_windows_give_one_success_and_seven_refusals() {
    let app = Arc::new(app().await);
    let uid = moto_env::unique_user_id();
    let san = format!("book{}", &uid[uid.len() - 10..]);
    create(&app, &uid, &san).await;
    let start = SystemClock.now() + 7 * 86_400;
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let app = app.clone();
            let event = json!({"action":"schedule-session","userId":uid,"startTime":start + i * 300,
                               "endTime":start + 3_600 + i * 300,"licenseType":"byol"});
            tokio::spawn(async move { call(&app, event).await })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.expect("no panic"));
    }
    let won = answers.iter().filter(|a| a.1["success"] == true).count();
    assert_eq!(won, 1, "{answers:?}");
    for (code, body) in answers.iter().filter(|a| a.1["success"] != true) {
        assert_eq!(
            (*code, body.clone()),
            (
                200,
                json!({"message":"No licenses available for the requested time period","success":false})
            )
        );
    }
    let (_, list) = call(&app, json!({"action":"list-sessions","userId":uid})).await;
    assert_eq!(list["count"], 1, "{list}");
    assert_eq!(call(&app, json!({"action":"destroy","userId":uid})).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_concurrent_sweeps_start_a_due_session_once_and_its_url_routes() {
    // The function's logs, shown by the test harness if this test fails.
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(tracing_subscriber::EnvFilter::new("foundry_lambda=info"))
        .try_init();
    let app = Arc::new(app().await);
    let aws = moto_env::local_aws();
    let uid = moto_env::unique_user_id();
    let san = format!("sweep{}", &uid[uid.len() - 10..]);
    let family = format!("foundry-{uid}");
    create(&app, &uid, &san).await;
    moto_env::set_ecs_transition(Some(&family), r#"{"progression":"immediate"}"#);
    // Due within the lead time (five minutes before its start).
    let start = SystemClock.now() + 120;
    let (_, body) = call(
        &app,
        json!({"action":"schedule-session","userId":uid,"startTime":start,"endTime":start + 3_600,"licenseType":"byol"}),
    )
    .await;
    assert_eq!(body["success"], true, "{body}");
    let session = body["sessionId"].as_str().unwrap().to_string();

    let sweeps: Vec<_> = (0..2)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { call(&app, json!({"action":"prepare-sessions","userId":"system"})).await })
        })
        .collect();
    let mut started = 0;
    let mut answers = Vec::new();
    for s in sweeps {
        let (code, body) = s.await.expect("no panic");
        assert_eq!(code, 200, "{body}");
        started += body["sessionsStarted"].as_i64().unwrap_or(0);
        answers.push(body);
    }
    assert_eq!(started, 1, "the session started once: {answers:?}");

    let (_, list) = call(&app, json!({"action":"list-sessions","userId":uid})).await;
    assert_eq!(list["sessions"][0]["sessionId"], session.as_str());
    assert_eq!(list["sessions"][0]["status"], "active", "{list}");
    let (_, status) = call(&app, json!({"action":"status","userId":uid})).await;
    assert_eq!(status["status"], "running", "{status}");
    assert_eq!(status["linkedSessionId"], session.as_str());

    // The URL routes: the task's IP is a target, and a rule sends the host there.
    let sdk = moto_env::sdk_config().await;
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&sdk);
    let tg = elb
        .describe_target_groups()
        .names(format!("foundry-{san}"))
        .send()
        .await
        .expect("DescribeTargetGroups");
    let tg_arn = tg.target_groups()[0].target_group_arn().unwrap().to_string();
    let health = elb
        .describe_target_health()
        .target_group_arn(&tg_arn)
        .send()
        .await
        .expect("DescribeTargetHealth");
    assert_eq!(health.target_health_descriptions().len(), 1, "one target");
    let host = format!("{san}.{}", aws.var("DOMAIN_NAME"));
    let rules = elb
        .describe_rules()
        .listener_arn(aws.var("ALB_HTTPS_LISTENER_ARN"))
        .send()
        .await
        .expect("DescribeRules");
    assert!(
        rules
            .rules()
            .iter()
            .any(|r| format!("{:?}", r.conditions()).contains(&host)),
        "a rule routes {host}"
    );
    let ecs = aws_sdk_ecs::Client::new(&sdk);
    let running = ecs
        .list_tasks()
        .cluster(aws.var("CLUSTER_NAME"))
        .family(&family)
        .send()
        .await
        .expect("ListTasks");
    assert_eq!(running.task_arns().len(), 1, "one task");

    assert_eq!(call(&app, json!({"action":"destroy","userId":uid})).await.0, 200);
    moto_env::unset_ecs_transition(Some(&family));
}
