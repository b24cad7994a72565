//! ECS task-state events on the fakes: the `RUNNING` event finishes a start, the `STOPPED`
//! event tears a dead task's run down (hours, session, `lastStopReason`), and every event
//! that is not about the task the record names (stale, repeated, reordered, another
//! cluster, the cleanup task, malformed) changes nothing. The events are built from the
//! fake ECS's view of the task, as EventBridge would deliver them.

mod fake_env;

use std::sync::mpsc;

use fake_env::*;
use foundry_lambda::app::App;
use foundry_lambda::config::{Config, StartWait};
use foundry_lambda::managers::dynamodb::AttributeValue;
use foundry_lambda::testing::{fake_app, fake_app_with, invoke, ops, FakeAws};
use serde_json::{json, Value};

const CLUSTER_ARN: &str = "arn:aws:ecs:us-east-1:123456789012:cluster/foundry-vtt-cluster";
const SESSIONS: &str = "foundry-vtt-instances-scheduled-sessions";

/// The EventBridge `ECS Task State Change` event of `task_arn` at `last_status`, as ECS
/// reports it now in the fakes (its IP once it ran, its stopped reason), with the Foundry
/// container's `exit_code`.
fn task_event(fake: &FakeAws, task_arn: &str, last_status: &str, exit_code: Option<i64>) -> Value {
    let task = fake.ecs.task(task_arn).expect("the fake knows the task");
    let desired = if last_status == "STOPPED" { "STOPPED" } else { "RUNNING" };
    let mut detail = json!({
        "clusterArn": CLUSTER_ARN,
        "taskArn": task.arn,
        "taskDefinitionArn": task.task_definition_arn,
        "group": format!("family:{}", task.family),
        "lastStatus": last_status,
        "desiredStatus": desired,
        "launchType": "FARGATE",
        "containers": task.containers.iter().map(|name| {
            let mut c = json!({"name": name, "lastStatus": last_status, "taskArn": task.arn});
            if let (Some(code), "STOPPED") = (exit_code, last_status) {
                c["exitCode"] = json!(code);
            }
            c
        }).collect::<Vec<_>>(),
        "attachments": [{"id": "a-1", "type": "eni", "status": "ATTACHED", "details": task.private_ip.iter().map(|ip|
            json!({"name": "privateIPv4Address", "value": ip})).collect::<Vec<_>>()}],
    });
    if last_status == "STOPPED" {
        detail["stoppedReason"] = json!(task
            .stopped_reason
            .clone()
            .unwrap_or_else(|| "Essential container in task exited".into()));
        detail["stopCode"] = json!("EssentialContainerExited");
    }
    json!({"version":"0","id":"6a7e8feb-b491-4cf7-a9f1-bf3703467718","detail-type":"ECS Task State Change",
           "source":"aws.ecs","account":"123456789012","time":"2026-01-01T00:01:00Z","region":"us-east-1",
           "resources":[task_arn],"detail":detail})
}

async fn deliver(app: &App, event: Value) -> Value {
    let (code, body) = invoke(app, event).await;
    assert_eq!(code, 200, "{body}");
    body
}

fn events_app() -> (App, FakeAws, std::sync::Arc<foundry_lambda::clock::ManualClock>) {
    let mut config = Config::for_tests();
    config.start_wait = StartWait::Events;
    fake_app_with(T0, config)
}

fn record(fake: &FakeAws) -> std::collections::HashMap<String, AttributeValue> {
    fake.dynamo.item(INSTANCES, UID).expect("the instance item")
}

fn hours(fake: &FakeAws) -> Option<AttributeValue> {
    fake.dynamo
        .item(USAGE, &format!("{UID}#2026-01"))
        .and_then(|u| u.get("hoursThisMonth").cloned())
}

fn sessions_started(fake: &FakeAws) -> Option<AttributeValue> {
    fake.dynamo
        .item(USAGE, &format!("{UID}#2026-01"))
        .and_then(|u| u.get("sessionsStarted").cloned())
}

fn targets(fake: &FakeAws) -> usize {
    fake.alb.target_groups().iter().map(|t| t.targets.len()).sum()
}

/// Nothing of the user's runs is left: no task, target or rule, and the record is stopped.
fn nothing_runs(fake: &FakeAws) {
    assert!(fake.ecs.running_tasks().is_empty(), "{:?}", fake.ecs.running_tasks());
    assert_eq!(targets(fake), 0, "no target left registered");
    assert!(fake.alb.rules(LISTENER).is_empty(), "no listener rule left");
    let item = record(fake);
    assert_eq!(item["status"], AttributeValue::S("stopped".into()));
    assert!(!item.contains_key("taskArn"));
}

/// Starts the instance in events mode → the task ARN; the start answered `starting`.
async fn started_without_waiting(app: &App) -> String {
    created(app).await;
    let (code, body) = invoke(app, ev("start", UID)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["status"], "starting", "{body}");
    body["taskArn"].as_str().expect("the task ARN").to_string()
}

// ------------------------------------------------------------------ in order

#[tokio::test]
async fn in_order_a_start_that_does_not_wait_is_finished_by_running_and_ended_by_stopped() {
    let (app, fake, clock) = events_app();
    let task = started_without_waiting(&app).await;
    assert_eq!(fake.faults.count(ops::DESCRIBE_TASKS), 0, "the start did not poll");
    assert!(fake.alb.rules(LISTENER).is_empty(), "not routed before the task runs");

    // PENDING changes nothing.
    let body = deliver(&app, task_event(&fake, &task, "PENDING", None)).await;
    assert_eq!(body["outcome"], "ignored", "{body}");
    assert_eq!(record(&fake)["status"], AttributeValue::S("starting".into()));

    clock.advance(std::time::Duration::from_secs(60));
    fake.ecs.set_task_status(&task, "RUNNING");
    let body = deliver(&app, task_event(&fake, &task, "RUNNING", None)).await;
    assert_eq!(
        (&body["outcome"], &body["status"], &body["userId"]),
        (&json!("routed"), &json!("running"), &json!(UID)),
        "{body}"
    );
    assert_eq!(targets(&fake), 1);
    assert_eq!(fake.alb.rules(LISTENER).len(), 1);
    assert_eq!(sessions_started(&fake), Some(AttributeValue::N("1".into())));
    let (_, status) = invoke(&app, ev("status", UID)).await;
    assert_eq!(status["status"], "running");
    assert!(status.get("lastStopReason").is_none(), "{status}");

    // Half an hour later Foundry is killed for memory.
    clock.advance(std::time::Duration::from_secs(1_800));
    fake.ecs.set_task_status(&task, "STOPPED");
    let body = deliver(&app, task_event(&fake, &task, "STOPPED", Some(137))).await;
    assert_eq!(
        (&body["outcome"], &body["status"]),
        (&json!("ended"), &json!("stopped")),
        "{body}"
    );
    nothing_runs(&fake);
    assert_eq!(hours(&fake), Some(AttributeValue::N("0.5".into())));
    let (_, status) = invoke(&app, ev("status", UID)).await;
    assert_eq!(
        status["lastStopReason"],
        json!({"reason":"Essential container in task exited","stopCode":"EssentialContainerExited",
               "exitCode":137,"taskArn":task,"at":status["updatedAt"]}),
        "{status}"
    );
}

#[tokio::test]
async fn the_next_stop_by_the_function_clears_the_last_stop_reason() {
    let (app, fake, _) = events_app();
    let task = started_without_waiting(&app).await;
    fake.ecs.set_task_status(&task, "STOPPED");
    deliver(&app, task_event(&fake, &task, "STOPPED", Some(1))).await;
    assert!(record(&fake).contains_key("lastStopReason"));
    // A new run, stopped by the user: its end is not one ECS reported.
    let (_, body) = invoke(&app, ev("start", UID)).await;
    let second = body["taskArn"].as_str().unwrap().to_string();
    fake.ecs.set_task_status(&second, "RUNNING");
    deliver(&app, task_event(&fake, &second, "RUNNING", None)).await;
    assert!(
        record(&fake).contains_key("lastStopReason"),
        "kept while the next run runs"
    );
    assert_eq!(invoke(&app, ev("stop", UID)).await.0, 200);
    assert!(!record(&fake).contains_key("lastStopReason"));
}

#[tokio::test]
async fn with_the_default_setting_a_start_still_waits_and_routes() {
    let (app, fake, _) = fake_app(T0);
    let body = running(&app).await;
    assert_eq!(body["status"], "running", "{body}");
    assert!(fake.faults.count(ops::DESCRIBE_TASKS) > 0);
    // Its RUNNING event, arriving after the start routed it, changes nothing.
    let task = body["taskArn"].as_str().unwrap();
    let body = deliver(&app, task_event(&fake, task, "RUNNING", None)).await;
    assert_eq!(body["outcome"], "unchanged", "{body}");
    assert_eq!(fake.alb.rules(LISTENER).len(), 1);
}

// ------------------------------------------------------------------ reversed, duplicated, stale

#[tokio::test]
async fn reversed_a_stopped_event_before_the_running_one_ends_the_run_and_the_late_running_changes_nothing() {
    let (app, fake, _) = events_app();
    let task = started_without_waiting(&app).await;
    fake.ecs.set_task_status(&task, "RUNNING");
    let running_event = task_event(&fake, &task, "RUNNING", None);
    fake.ecs.set_task_status(&task, "STOPPED");
    let body = deliver(&app, task_event(&fake, &task, "STOPPED", Some(1))).await;
    assert_eq!(body["outcome"], "ended", "{body}");
    let body = deliver(&app, running_event).await;
    assert_eq!(body["outcome"], "ignored", "{body}");
    nothing_runs(&fake);
    assert_eq!(
        fake.faults.count(ops::CREATE_RULE),
        0,
        "the late RUNNING routed nothing"
    );
    assert_eq!(sessions_started(&fake), None, "no usage start was booked");
}

#[tokio::test]
async fn duplicated_events_route_once_book_once_and_never_touch_the_next_run() {
    let (app, fake, clock) = events_app();
    let first = started_without_waiting(&app).await;
    fake.ecs.set_task_status(&first, "RUNNING");
    let running_event = task_event(&fake, &first, "RUNNING", None);
    assert_eq!(deliver(&app, running_event.clone()).await["outcome"], "routed");
    assert_eq!(deliver(&app, running_event.clone()).await["outcome"], "unchanged");
    assert_eq!(fake.faults.count(ops::CREATE_RULE), 1);
    assert_eq!(sessions_started(&fake), Some(AttributeValue::N("1".into())));

    clock.advance(std::time::Duration::from_secs(3_600));
    fake.ecs.set_task_status(&first, "STOPPED");
    let stopped_event = task_event(&fake, &first, "STOPPED", Some(0));
    assert_eq!(deliver(&app, stopped_event.clone()).await["outcome"], "ended");
    assert_eq!(deliver(&app, stopped_event.clone()).await["outcome"], "ignored");
    assert_eq!(hours(&fake), Some(AttributeValue::N("1".into())));

    // The next run: the first run's events, delivered again late, leave it alone.
    let (_, body) = invoke(&app, ev("start", UID)).await;
    let second = body["taskArn"].as_str().unwrap().to_string();
    fake.ecs.set_task_status(&second, "RUNNING");
    assert_eq!(
        deliver(&app, task_event(&fake, &second, "RUNNING", None)).await["outcome"],
        "routed"
    );
    let body = deliver(&app, stopped_event).await;
    assert_eq!(body["outcome"], "ignored", "{body}");
    let body = deliver(&app, running_event).await;
    assert_eq!(body["outcome"], "ignored", "{body}");
    let item = record(&fake);
    assert_eq!(item["status"], AttributeValue::S("running".into()));
    assert_eq!(item["taskArn"], AttributeValue::S(second.clone()));
    assert_eq!(fake.ecs.running_tasks().len(), 1);
    assert_eq!(fake.alb.rules(LISTENER).len(), 1);
    assert_eq!(targets(&fake), 1);
    assert_eq!(
        hours(&fake),
        Some(AttributeValue::N("1".into())),
        "no hours booked twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_copies_of_a_stopped_event_at_once_book_the_hours_once() {
    let (app, fake, clock) = events_app();
    let task = started_without_waiting(&app).await;
    fake.ecs.set_task_status(&task, "RUNNING");
    deliver(&app, task_event(&fake, &task, "RUNNING", None)).await;
    clock.advance(std::time::Duration::from_secs(1_800));
    fake.ecs.set_task_status(&task, "STOPPED");
    let event = task_event(&fake, &task, "STOPPED", Some(137));
    // Both read the record naming the task before either ends the run.
    fake.race_at(ops::TRANSACT_WRITE_ITEMS, 2);
    let answers = concurrently(&app, vec![event.clone(), event]).await;
    assert!(answers.iter().all(|(c, _)| *c == 200), "{answers:?}");
    nothing_runs(&fake);
    assert_eq!(hours(&fake), Some(AttributeValue::N("0.5".into())));
}

#[tokio::test]
async fn events_for_another_cluster_the_cleanup_task_or_no_instance_change_nothing() {
    let (app, fake, _) = events_app();
    let task = started_without_waiting(&app).await;
    fake.ecs.set_task_status(&task, "RUNNING");
    let mut other = task_event(&fake, &task, "RUNNING", None);
    other["detail"]["clusterArn"] = json!("arn:aws:ecs:us-east-1:123456789012:cluster/someone-else");
    let body = deliver(&app, other).await;
    assert_eq!(
        (&body["outcome"], &body["reason"]),
        (&json!("ignored"), &json!("another cluster"))
    );

    let mut cleanup = task_event(&fake, &task, "STOPPED", Some(0));
    cleanup["detail"]["group"] = json!("family:foundry-efs-cleanup");
    cleanup["detail"]["taskDefinitionArn"] =
        json!("arn:aws:ecs:us-east-1:123456789012:task-definition/foundry-efs-cleanup:1");
    let body = deliver(&app, cleanup).await;
    assert_eq!(body["outcome"], "ignored", "{body}");

    let mut stranger = task_event(&fake, &task, "STOPPED", Some(0));
    stranger["detail"]["taskDefinitionArn"] =
        json!("arn:aws:ecs:us-east-1:123456789012:task-definition/foundry-999999999999999999:1");
    assert_eq!(deliver(&app, stranger).await["outcome"], "ignored");

    let item = record(&fake);
    assert_eq!(item["status"], AttributeValue::S("starting".into()));
    assert_eq!(item["taskArn"], AttributeValue::S(task));
    assert!(fake.alb.rules(LISTENER).is_empty());
}

#[tokio::test]
async fn malformed_ecs_events_answer_200_and_change_nothing() {
    let (app, fake, _) = fake_app(T0);
    let before = running(&app).await;
    let calls = fake.faults.calls().len();
    for event in [
        json!({"detail-type":"ECS Task State Change","source":"aws.ecs"}),
        json!({"detail-type":"ECS Task State Change","source":"aws.ecs","detail":"RUNNING"}),
        json!({"detail-type":"ECS Task State Change","source":"aws.ecs","detail":{"taskArn":["x"],"lastStatus":7}}),
        json!({"detail-type":"ECS Task State Change","source":"aws.ecs","detail":{"clusterArn":CLUSTER_ARN,"lastStatus":"STOPPED"}}),
        json!({"detail-type":"ECS Container Instance State Change","source":"aws.ecs","detail":{"clusterArn":CLUSTER_ARN}}),
    ] {
        let (code, body) = invoke(&app, event.clone()).await;
        assert_eq!((code, &body["outcome"]), (200, &json!("ignored")), "{event} → {body}");
        assert!(
            body["reason"].as_str().unwrap().starts_with("malformed event"),
            "{body}"
        );
    }
    assert_eq!(fake.faults.calls().len(), calls, "no AWS call was made");
    assert_eq!(
        record(&fake)["taskArn"],
        AttributeValue::S(before["taskArn"].as_str().unwrap().into())
    );
}

#[tokio::test]
async fn only_system_may_send_a_task_state_change_directly() {
    let (app, _fake, _) = fake_app(T0);
    let (code, body) = invoke(
        &app,
        json!({"action":"ecs-task-state-change","userId":UID,"taskArn":"t"}),
    )
    .await;
    assert_eq!(code, 403, "{body}");
    let (code, body) = invoke(
        &app,
        json!({"action":"ecs-task-state-change","userId":"system","taskArn":"t"}),
    )
    .await;
    assert_eq!((code, &body["outcome"]), (200, &json!("ignored")), "{body}");
}

// ------------------------------------------------------------------ a task killed behind our back

#[tokio::test]
async fn a_task_killed_behind_the_functions_back_is_torn_down_by_its_stopped_event_and_its_session_completes() {
    let (app, fake, clock) = fake_app(T0);
    created(&app).await;
    let start = T0 + 3_600;
    let (_, body) = invoke(
        &app,
        json!({"action":"schedule-session","userId":UID,"startTime":start,"endTime":start + 7_200,"licenseType":"byol"}),
    )
    .await;
    let session = body["sessionId"].as_str().expect("a session").to_string();
    clock.set(start - 60);
    let (_, body) = invoke(&app, ev("prepare-sessions", "system")).await;
    assert_eq!(body["sessionsStarted"], 1, "{body}");
    let task = match &record(&fake)["taskArn"] {
        AttributeValue::S(t) => t.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        fake.dynamo.item(SESSIONS, &session).unwrap()["status"],
        AttributeValue::S("active".into())
    );

    // Fargate retires the host: ECS stops the task, the function did not ask.
    clock.advance(std::time::Duration::from_secs(1_800));
    fake.ecs.set_task_status(&task, "STOPPED");
    let body = deliver(&app, task_event(&fake, &task, "STOPPED", Some(143))).await;
    assert_eq!(body["outcome"], "ended", "{body}");
    nothing_runs(&fake);
    assert_eq!(hours(&fake), Some(AttributeValue::N("0.5".into())));
    assert_eq!(
        fake.dynamo.item(SESSIONS, &session).unwrap()["status"],
        AttributeValue::S("completed".into())
    );
    assert!(
        fake.dynamo
            .item(RESERVATIONS_TABLE, &format!("license-run#byol-{UID}"))
            .is_none(),
        "the license is free"
    );
    let (_, status) = invoke(&app, ev("status", UID)).await;
    assert_eq!(status["lastStopReason"]["exitCode"], 143, "{status}");
    assert_eq!(
        fake.faults.count(ops::STOP_TASK),
        0,
        "a stopped task is not stopped again"
    );
}

const RESERVATIONS_TABLE: &str = "foundry-vtt-instances-license-reservations";

// ------------------------------------------------------------------ races

/// Holds the invocation that makes the `nth` call of `operation` right before it, until
/// released: `arrived` answers once it is held there.
struct Pause {
    arrived: tokio::sync::oneshot::Receiver<()>,
    release: mpsc::Sender<()>,
}

fn pause_at(fake: &FakeAws, operation: &str, nth: usize) -> Pause {
    let (arrived_tx, arrived) = tokio::sync::oneshot::channel();
    let (release, wait) = mpsc::channel::<()>();
    fake.before_call(operation, nth, move || {
        let _ = arrived_tx.send(());
        // Blocks this worker thread (the test runs on several) until the test lets go.
        let _ = wait.recv_timeout(std::time::Duration::from_secs(20));
    });
    Pause { arrived, release }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_during_a_destroy_change_nothing_and_the_destroy_finishes() {
    let (app, fake, _) = events_app();
    let task = started_without_waiting(&app).await;
    fake.ecs.set_task_status(&task, "RUNNING");
    deliver(&app, task_event(&fake, &task, "RUNNING", None)).await;
    let running_event = task_event(&fake, &task, "RUNNING", None);

    // The destroy has taken the record (status `destroying`) and is about to stop the task.
    let pause = pause_at(&fake, ops::STOP_TASK, fake.faults.count(ops::STOP_TASK) + 1);
    let destroying = {
        let app = app.clone();
        tokio::spawn(async move { invoke(&app, ev("destroy", UID)).await })
    };
    pause.arrived.await.expect("the destroy reached StopTask");
    assert_eq!(record(&fake)["status"], AttributeValue::S("destroying".into()));
    let body = deliver(&app, running_event).await;
    assert_eq!(body["outcome"], "unchanged", "{body}");
    fake.ecs.set_task_status(&task, "STOPPED");
    let body = deliver(&app, task_event(&fake, &task, "STOPPED", Some(0))).await;
    assert_eq!(body["outcome"], "unchanged", "{body}");
    assert_eq!(record(&fake)["status"], AttributeValue::S("destroying".into()));
    pause.release.send(()).unwrap();

    let (code, body) = destroying.await.unwrap();
    assert_eq!(code, 200, "{body}");
    assert!(leftovers(&fake).is_empty(), "{:?}", leftovers(&fake));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopped_event_racing_a_stop_ends_the_run_once() {
    let (app, fake, clock) = events_app();
    let task = started_without_waiting(&app).await;
    fake.ecs.set_task_status(&task, "RUNNING");
    deliver(&app, task_event(&fake, &task, "RUNNING", None)).await;
    clock.advance(std::time::Duration::from_secs(1_800));
    fake.ecs.set_task_status(&task, "STOPPED");
    // Both have read the record that names the task before either ends the run.
    fake.race_at(ops::TRANSACT_WRITE_ITEMS, 2);
    let answers = concurrently(
        &app,
        vec![task_event(&fake, &task, "STOPPED", Some(137)), ev("stop", UID)],
    )
    .await;
    assert!(answers.iter().all(|(c, _)| *c == 200), "{answers:?}");
    nothing_runs(&fake);
    assert_eq!(hours(&fake), Some(AttributeValue::N("0.5".into())), "booked once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_running_event_that_a_stop_overtakes_routes_nothing_and_answers_200() {
    let (app, fake, _) = events_app();
    let task = started_without_waiting(&app).await;
    fake.ecs.set_task_status(&task, "RUNNING");
    let event = task_event(&fake, &task, "RUNNING", None);
    // The event has read the record (the task is named, not routed) and is about to
    // record the task's IP; the stop runs to its end before it goes on.
    let pause = pause_at(&fake, ops::UPDATE_ITEM, fake.faults.count(ops::UPDATE_ITEM) + 1);
    let applying = {
        let app = app.clone();
        tokio::spawn(async move { invoke(&app, event).await })
    };
    pause.arrived.await.expect("the event reached its first write");
    let (code, body) = invoke(&app, ev("stop", UID)).await;
    assert_eq!(code, 200, "{body}");
    pause.release.send(()).unwrap();
    let (code, body) = applying.await.unwrap();
    assert_eq!((code, &body["outcome"]), (200, &json!("ignored")), "{body}");
    nothing_runs(&fake);
    assert_eq!(fake.faults.count(ops::CREATE_RULE), 0);
    assert_eq!(sessions_started(&fake), None);
}
