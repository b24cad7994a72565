//! ECS task-state events against moto. moto's ECS emits no events, so each event is built
//! from moto's DescribeTasks of the task, in the shape EventBridge delivers: a start that
//! does not wait (`START_WAIT=events`) is routed by its `RUNNING` event, and a task stopped
//! behind the function's back (StopTask straight to ECS) is torn down by its `STOPPED`
//! event, with nothing left running or routed.

mod moto_env;

use std::sync::Arc;

use foundry_lambda::app::{App, Ctx};
use foundry_lambda::clock::SystemClock;
use foundry_lambda::config::{Config, StartWait};
use foundry_lambda::managers::Managers;
use serde_json::{json, Value};

async fn app() -> App {
    let aws = moto_env::local_aws();
    let mut config =
        Config::from_lookup(|k| aws.env.get(k).cloned()).expect("the env file is a complete configuration");
    config.start_wait = StartWait::Events;
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

/// The task-state event of `task_arn` as EventBridge would deliver it, from moto's
/// DescribeTasks.
async fn event_from_describe_tasks(task_arn: &str) -> Value {
    let aws = moto_env::local_aws();
    let ecs = aws_sdk_ecs::Client::new(&moto_env::sdk_config().await);
    let out = ecs
        .describe_tasks()
        .cluster(aws.var("CLUSTER_NAME"))
        .tasks(task_arn)
        .send()
        .await
        .expect("DescribeTasks");
    let t = out.tasks().first().expect("moto knows the task");
    let family = t
        .task_definition_arn()
        .and_then(|a| a.rsplit('/').next())
        .and_then(|f| f.rsplit_once(':'))
        .map(|(f, _)| f.to_string())
        .expect("a task definition");
    let containers: Vec<Value> = t
        .containers()
        .iter()
        .map(|c| {
            let mut v = json!({"name": c.name(), "lastStatus": c.last_status()});
            if let Some(code) = c.exit_code() {
                v["exitCode"] = json!(code);
            }
            v
        })
        .collect();
    let attachments: Vec<Value> = t
        .attachments()
        .iter()
        .map(|a| {
            json!({"id": a.id(), "type": "eni", "status": a.status(),
                   "details": a.details().iter().map(|d| json!({"name": d.name(), "value": d.value()})).collect::<Vec<_>>()})
        })
        .collect();
    let mut detail = json!({
        "clusterArn": t.cluster_arn(),
        "taskArn": t.task_arn(),
        "taskDefinitionArn": t.task_definition_arn(),
        "group": format!("family:{family}"),
        "lastStatus": t.last_status(),
        "desiredStatus": t.desired_status(),
        "launchType": "FARGATE",
        "containers": containers,
        "attachments": attachments,
    });
    if let Some(reason) = t.stopped_reason() {
        detail["stoppedReason"] = json!(reason);
    }
    json!({"version":"0","id":format!("moto-{}", t.last_status().unwrap_or("")),"detail-type":"ECS Task State Change",
           "source":"aws.ecs","account":"123456789012","time":"2026-01-01T00:00:00Z","region":aws.var("AWS_REGION"),
           "resources":[task_arn],"detail":detail})
}

/// The listener rules routing `host`, and the targets of the user's target group.
async fn routing(san: &str) -> (usize, usize) {
    let aws = moto_env::local_aws();
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&moto_env::sdk_config().await);
    let host = format!("{san}.{}", aws.var("DOMAIN_NAME"));
    let rules = elb
        .describe_rules()
        .listener_arn(aws.var("ALB_HTTPS_LISTENER_ARN"))
        .send()
        .await
        .expect("DescribeRules");
    let rules = rules
        .rules()
        .iter()
        .filter(|r| format!("{:?}", r.conditions()).contains(&host))
        .count();
    let tg = elb
        .describe_target_groups()
        .names(format!("foundry-{san}"))
        .send()
        .await
        .expect("DescribeTargetGroups");
    let tg_arn = tg.target_groups()[0].target_group_arn().expect("an ARN").to_string();
    let health = elb
        .describe_target_health()
        .target_group_arn(tg_arn)
        .send()
        .await
        .expect("DescribeTargetHealth");
    (rules, health.target_health_descriptions().len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_is_routed_by_its_running_event_and_a_task_killed_behind_the_back_is_torn_down_by_its_stopped_event() {
    let app = app().await;
    let uid = moto_env::unique_user_id();
    let san = format!("ev{}", &uid[uid.len() - 10..]);
    let family = format!("foundry-{uid}");
    let (code, body) = call(
        &app,
        json!({"action":"create","userId":uid,"sanitizedUsername":san,"foundryUsername":"gm@example.com",
               "foundryPassword":"moto-pw-123","licenseType":"byol","allowLicenseSharing":false}),
    )
    .await;
    assert_eq!(code, 200, "create: {body}");

    // The start answers at once; the task is held before RUNNING.
    moto_env::hold_ecs_tasks(&family);
    let (code, body) = call(&app, json!({"action":"start","userId":uid})).await;
    assert_eq!((code, &body["status"]), (200, &json!("starting")), "{body}");
    let task = body["taskArn"].as_str().expect("the task ARN").to_string();
    assert_eq!(routing(&san).await, (0, 0), "nothing routed before the task runs");

    moto_env::set_task_status(&task, "RUNNING", None);
    let (code, body) = call(&app, event_from_describe_tasks(&task).await).await;
    assert_eq!((code, &body["outcome"]), (200, &json!("routed")), "{body}");
    assert_eq!(routing(&san).await, (1, 1), "rule and target");
    let (_, status) = call(&app, json!({"action":"status","userId":uid})).await;
    assert_eq!(status["status"], "running", "{status}");
    // Delivered again: nothing more.
    let (code, body) = call(&app, event_from_describe_tasks(&task).await).await;
    assert_eq!((code, &body["outcome"]), (200, &json!("unchanged")), "{body}");

    // Behind the function's back: StopTask straight to ECS, and the task dies.
    let aws = moto_env::local_aws();
    let ecs = aws_sdk_ecs::Client::new(&moto_env::sdk_config().await);
    ecs.stop_task()
        .cluster(aws.var("CLUSTER_NAME"))
        .task(&task)
        .reason("killed by an operator")
        .send()
        .await
        .expect("StopTask");
    moto_env::set_task_status(&task, "STOPPED", Some(137));
    let stopped = event_from_describe_tasks(&task).await;
    assert_eq!(stopped["detail"]["lastStatus"], "STOPPED", "{stopped}");
    let (code, body) = call(&app, stopped.clone()).await;
    assert_eq!((code, &body["outcome"]), (200, &json!("ended")), "{body}");

    assert_eq!(routing(&san).await, (0, 0), "no rule and no target left");
    let running = ecs
        .list_tasks()
        .cluster(aws.var("CLUSTER_NAME"))
        .family(&family)
        .desired_status(aws_sdk_ecs::types::DesiredStatus::Running)
        .send()
        .await
        .expect("ListTasks");
    assert!(running.task_arns().is_empty(), "{:?}", running.task_arns());
    let (_, status) = call(&app, json!({"action":"status","userId":uid})).await;
    assert_eq!(status["status"], "stopped", "{status}");
    assert_eq!(status["lastStopReason"]["taskArn"], json!(task), "{status}");
    assert_eq!(status["lastStopReason"]["exitCode"], 137, "{status}");
    // The same STOPPED event again changes nothing.
    let (code, body) = call(&app, stopped).await;
    assert_eq!((code, &body["outcome"]), (200, &json!("ignored")), "{body}");

    let (code, body) = call(&app, json!({"action":"destroy","userId":uid})).await;
    assert_eq!(code, 200, "destroy: {body}");
    moto_env::unset_ecs_transition(Some(&family));
}
