//! One license never runs two servers: an owner's on-demand start and a borrower's
//! session start on the owner's license, forced to interleave in both orders.
//!
//! The owner's start reads the license's sessions (the on-demand gate) 31 minutes before
//! the session, when nothing stops it, and is then held inside its own start (a blocking
//! hook on one of its calls) while the clock moves on and the session starts. What keeps
//! the two runs apart is the run's claim on the license, written with the move to
//! `starting`: with that claim made unconditional, the first test runs two servers.
//!
//! The last two tests are the same hold against the user's own `stop` (and next `start`):
//! a stop during a start wins (the start loses its lease), and a start that was abandoned
//! undoes only its own run.

mod fake_env;

use std::sync::mpsc;

use foundry_lambda::app::App;
use foundry_lambda::testing::{fake_app, invoke, ops, FakeAws};
use serde_json::{json, Value};

use fake_env::*;

const OWNER: &str = "100000000000000011";
const BORROWER: &str = "100000000000000022";
const HOUR: i64 = 3_600;
const SESSION_START: i64 = T0 + 2 * HOUR;

async fn world() -> (App, FakeAws, std::sync::Arc<foundry_lambda::clock::ManualClock>, String) {
    let (app, fake, clock) = fake_app(T0);
    let owner = json!({"action":"create","userId":OWNER,"sanitizedUsername":"owner","foundryUsername":"owner@example.com",
                       "foundryPassword":"owner-Pa55word","licenseType":"byol","allowLicenseSharing":true,"maxConcurrentUsers":1});
    let borrower = json!({"action":"create","userId":BORROWER,"sanitizedUsername":"borrower","licenseType":"pooled"});
    assert_eq!(invoke(&app, owner).await.0, 200);
    assert_eq!(invoke(&app, borrower).await.0, 200);
    let booking = json!({"action":"schedule-session","userId":BORROWER,"startTime":SESSION_START,
                         "endTime":SESSION_START + HOUR,"licenseType":"pooled"});
    let (code, body) = invoke(&app, booking).await;
    assert_eq!((code, &body["success"]), (200, &json!(true)), "{body}");
    let session = body["sessionId"].as_str().unwrap().to_string();
    // Outside the on-demand gate's half hour: the owner may start.
    clock.set(SESSION_START - 31 * 60);
    (app, fake, clock, session)
}

/// Holds the `nth` call of `operation` until the test lets it go; returns (a receiver
/// that fires when the call is held, the sender that lets it go).
fn hold(fake: &FakeAws, operation: &str, nth: usize) -> (mpsc::Receiver<()>, mpsc::Sender<()>) {
    let (held_tx, held_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    fake.before_call(operation, nth, move || {
        let _ = held_tx.send(());
        // A blocking wait on this worker thread: the other invocation runs on another.
        let _ = go_rx.recv_timeout(std::time::Duration::from_secs(20));
    });
    (held_rx, go_tx)
}

async fn held(rx: mpsc::Receiver<()>) {
    tokio::task::spawn_blocking(move || rx.recv_timeout(std::time::Duration::from_secs(20)))
        .await
        .expect("join")
        .expect("the owner's start reached the held call");
}

/// The owner's on-demand `start`, as an invocation of its own.
fn owner_start_in_background(app: &App) -> tokio::task::JoinHandle<(u16, Value)> {
    let app = app.clone();
    tokio::spawn(async move { invoke(&app, ev("start", OWNER)).await })
}

fn live_tasks(fake: &FakeAws) -> usize {
    fake.ecs.running_tasks().len()
}

fn start_session(app: &App, session: &str) -> impl std::future::Future<Output = (u16, Value)> {
    let app = app.clone();
    let event = json!({"action":"start-scheduled-session","userId":"system","sessionId":session});
    async move { invoke(&app, event).await }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_owners_start_held_before_it_begins_cannot_begin_once_the_session_runs_on_the_license() {
    let (app, fake, clock, session) = world().await;
    // The owner's start is held at the write that would begin its run.
    let nth = fake.faults.count(ops::TRANSACT_WRITE_ITEMS) + 1;
    let (held_rx, go) = hold(&fake, ops::TRANSACT_WRITE_ITEMS, nth);
    let owner_start = owner_start_in_background(&app);
    held(held_rx).await;

    clock.set(SESSION_START - 60);
    let (code, body) = start_session(&app, &session).await;
    assert_eq!((code, &body["success"]), (200, &json!(true)), "{body}");
    assert_eq!(live_tasks(&fake), 1);

    go.send(()).expect("release the owner's start");
    let (code, body) = owner_start.await.expect("the owner's start");
    assert_eq!(
        (code, body),
        (
            500,
            json!({"error":"Internal error: A scheduled session is currently using this license"})
        )
    );
    assert_eq!(live_tasks(&fake), 1, "one server on the license");
    let owner = fake.dynamo.item(INSTANCES, OWNER).unwrap();
    assert!(
        !owner.contains_key("taskArn"),
        "the owner's record names no task: {owner:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_session_start_ends_the_owners_run_that_began_first_and_its_task_never_outlives_it() {
    let (app, fake, clock, session) = world().await;
    // The owner's run begins; it is held right after RunTask, at the write that records
    // its task (its second UpdateItem: the first records the task definition).
    let nth = fake.faults.count(ops::UPDATE_ITEM) + 2;
    let (held_rx, go) = hold(&fake, ops::UPDATE_ITEM, nth);
    let owner_start = owner_start_in_background(&app);
    held(held_rx).await;
    assert_eq!(live_tasks(&fake), 1, "held after its RunTask");
    assert_eq!(
        fake.dynamo.item(INSTANCES, OWNER).unwrap()["status"],
        foundry_lambda::managers::dynamodb::AttributeValue::S("starting".into())
    );

    clock.set(SESSION_START - 60);
    let (code, body) = start_session(&app, &session).await;
    assert_eq!((code, &body["success"]), (200, &json!(true)), "{body}");
    assert_eq!(
        live_tasks(&fake),
        1,
        "the owner's task was stopped before the session's ran"
    );

    go.send(()).expect("release the owner's start");
    let (code, body) = owner_start.await.expect("the owner's start");
    assert_eq!(code, 500, "the owner's start was abandoned: {body}");
    assert_eq!(live_tasks(&fake), 1, "one server on the license");
    let borrower = fake.dynamo.item(INSTANCES, BORROWER).unwrap();
    let running = fake.ecs.running_tasks();
    assert_eq!(
        borrower["taskArn"],
        foundry_lambda::managers::dynamodb::AttributeValue::S(running[0].arn.clone()),
        "the server left is the session's"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_start_abandoned_by_a_stop_never_undoes_the_users_next_run() {
    let (app, fake, _clock, _session) = world().await;
    // The owner's first start is held right after its RunTask, at the write that records
    // its task (its second UpdateItem).
    let nth = fake.faults.count(ops::UPDATE_ITEM) + 2;
    let (held_rx, go) = hold(&fake, ops::UPDATE_ITEM, nth);
    let first = owner_start_in_background(&app);
    held(held_rx).await;
    // The user stops (the first start loses its lease, its task is stopped) and starts again.
    assert_eq!(invoke(&app, ev("stop", OWNER)).await.0, 200);
    assert_eq!(live_tasks(&fake), 0);
    let (code, body) = invoke(&app, ev("start", OWNER)).await;
    assert_eq!((code, &body["status"]), (200, &json!("running")), "{body}");
    let second_task = body["taskArn"].clone();

    go.send(()).expect("release the first start");
    let (code, body) = first.await.expect("the first start");
    assert_eq!(code, 500, "the first start was abandoned: {body}");
    let owner = fake.dynamo.item(INSTANCES, OWNER).unwrap();
    assert_eq!(
        owner["status"],
        foundry_lambda::managers::dynamodb::AttributeValue::S("running".into()),
        "the second run is untouched: {owner:?}"
    );
    assert_eq!(live_tasks(&fake), 1);
    assert_eq!(json!(fake.ecs.running_tasks()[0].arn), second_task);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stop_during_a_start_wins_and_the_start_launches_nothing() {
    let (app, fake, _clock, _session) = world().await;
    // The start has begun (the record is `starting`, its lease taken) and is held at its
    // first progress write (the task definition), before RunTask.
    let nth = fake.faults.count(ops::UPDATE_ITEM) + 1;
    let (held_rx, go) = hold(&fake, ops::UPDATE_ITEM, nth);
    let start = owner_start_in_background(&app);
    held(held_rx).await;
    assert_eq!(invoke(&app, ev("stop", OWNER)).await.0, 200);

    go.send(()).expect("release the start");
    let (code, body) = start.await.expect("the start");
    assert_eq!(code, 500, "the start lost its lease to the stop: {body}");
    assert_eq!(live_tasks(&fake), 0, "the stop wins: no server runs");
    assert_eq!(
        fake.dynamo.item(INSTANCES, OWNER).unwrap()["status"],
        foundry_lambda::managers::dynamodb::AttributeValue::S("stopped".into())
    );
}
