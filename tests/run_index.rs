//! The sparse index of runs on the fakes: a record is in it exactly while it has a run, by
//! the deadline the sweep applies; the sweep and `shutdown-stats` read the index, not the
//! table; an entry whose record has no run is tolerated and taken out; the one-off backfill
//! lists the runs of records written before the index existed.

mod fake_env;

use std::time::Duration;

use fake_env::*;
use foundry_lambda::app::Ctx;
use foundry_lambda::clock::Clock;
use foundry_lambda::error::AwsErrorKind;
use foundry_lambda::managers::dynamodb::{AttributeValue, Item};
use foundry_lambda::store::{run_shard, RUN_SHARDS};
use foundry_lambda::testing::{fake_app, invoke, invoke_with, ops, FakeAws};
use serde_json::{json, Value};

const ADMIN: &str = "000000000000000001";
const HOUR: i64 = 3_600;

fn sweep() -> Value {
    json!({"action":"auto-shutdown-check","userId":"system"})
}

fn num(item: &Item, attr: &str) -> Option<i64> {
    match item.get(attr) {
        Some(AttributeValue::N(n)) => n.parse().ok(),
        _ => None,
    }
}

fn text<'a>(item: &'a Item, attr: &str) -> Option<&'a str> {
    match item.get(attr) {
        Some(AttributeValue::S(s)) => Some(s),
        _ => None,
    }
}

/// Whether the record has a run: starting or running, or naming a task.
fn has_run(item: &Item) -> bool {
    matches!(text(item, "status"), Some("starting" | "running")) || item.contains_key("taskArn")
}

/// The invariant of the index of runs, over every instance item: the record is listed
/// (both `runShard` and `runDeadline`) exactly when it has a run, in its user's shard, and
/// a running record's deadline in the index is the sweep's (its `autoShutdownAt`).
fn assert_index_matches_runs(fake: &FakeAws, when: &str) {
    for item in fake.dynamo.items(INSTANCES) {
        let uid = text(&item, "userId").unwrap_or("?").to_string();
        let shard = num(&item, "runShard");
        let deadline = num(&item, "runDeadline");
        assert_eq!(
            (shard.is_some(), deadline.is_some()),
            (has_run(&item), has_run(&item)),
            "{when}: {uid} is {:?} with task {:?}, and runShard {shard:?}, runDeadline {deadline:?}",
            text(&item, "status"),
            text(&item, "taskArn"),
        );
        if let Some(shard) = shard {
            assert_eq!(shard, i64::from(run_shard(&uid)), "{when}: {uid}'s shard");
            assert!((0..i64::from(RUN_SHARDS)).contains(&shard));
        }
        if text(&item, "status") == Some("running") && item.contains_key("autoShutdownAt") {
            assert_eq!(
                deadline,
                num(&item, "autoShutdownAt"),
                "{when}: {uid}'s deadline in the index is the sweep's"
            );
        }
    }
}

fn listed(fake: &FakeAws, uid: &str) -> bool {
    fake.dynamo
        .item(INSTANCES, uid)
        .is_some_and(|i| i.contains_key("runShard") && i.contains_key("runDeadline"))
}

fn user(i: usize) -> String {
    format!("7{i:017}")
}

#[tokio::test]
async fn start_lists_the_run_by_its_deadline_and_stop_takes_it_out() {
    let (app, fake, _) = fake_app(T0);
    created(&app).await;
    assert!(!listed(&fake, UID), "a created instance has no run");
    assert_index_matches_runs(&fake, "after create");
    invoke(&app, ev("start", UID)).await;
    let item = fake.dynamo.item(INSTANCES, UID).unwrap();
    let started = num(&item, "startedAt").expect("started");
    assert_eq!(num(&item, "runDeadline"), Some(started + 6 * HOUR), "{item:?}");
    assert_index_matches_runs(&fake, "after start");
    let (code, body) = invoke(&app, ev("stop", UID)).await;
    assert_eq!(code, 200, "{body}");
    assert!(!listed(&fake, UID));
    assert_index_matches_runs(&fake, "after stop");
}

#[tokio::test]
async fn a_start_left_starting_is_listed_and_routing_it_later_moves_its_deadline() {
    let (app, fake, clock) = fake_app(T0);
    created(&app).await;
    fake.ecs.set_launch_script(vec!["PROVISIONING"]);
    let ctx = Ctx {
        request_id: "r".into(),
        deadline_ms: Some(clock.now_ms() + 20_000),
    };
    let (code, body) = invoke_with(&app, ev("start", UID), &ctx).await;
    assert_eq!((code, body["status"].as_str()), (200, Some("starting")), "{body}");
    assert!(listed(&fake, UID), "the run exists from the start's begin");
    assert_index_matches_runs(&fake, "while starting");
    // Routed ten minutes later by `status`: the deadline counts from the run's start.
    clock.advance(Duration::from_secs(600));
    let task = body["taskArn"].as_str().unwrap().to_string();
    assert!(fake.ecs.set_task_status(&task, "RUNNING"));
    let (_, s) = invoke(&app, ev("status", UID)).await;
    assert_eq!(s["status"], "running", "{s}");
    let item = fake.dynamo.item(INSTANCES, UID).unwrap();
    assert_eq!(num(&item, "runDeadline"), Some(clock.now() + 6 * HOUR));
    assert_index_matches_runs(&fake, "after routing");
    // The task dies: the next `status` ends the run, and the index lets it go.
    assert!(fake.ecs.set_task_status(&task, "STOPPED"));
    invoke(&app, ev("status", UID)).await;
    assert!(!listed(&fake, UID));
    assert_index_matches_runs(&fake, "after the task died");
}

#[tokio::test]
async fn every_path_that_ends_a_run_takes_it_out_of_the_index() {
    let (app, fake, clock) = fake_app(T0);
    for (i, san) in ["stopme", "sweepme", "forceme", "destroyme"].iter().enumerate() {
        assert_eq!(invoke(&app, create_event(&user(i), san)).await.0, 200);
        assert_eq!(invoke(&app, ev("start", &user(i))).await.0, 200);
    }
    assert_index_matches_runs(&fake, "four runs");
    assert!((0..4).all(|i| listed(&fake, &user(i))));

    invoke(&app, ev("stop", &user(0))).await;
    assert_index_matches_runs(&fake, "after stop");

    let force = json!({"action":"admin-force-shutdown","userId":ADMIN,"targetUserId":user(2)});
    let (code, body) = invoke(&app, force).await;
    assert_eq!(code, 200, "{body}");
    assert_index_matches_runs(&fake, "after admin-force-shutdown");

    let destroy = json!({"action":"destroy","userId":user(3),"confirmDeletion":"DELETE"});
    let (code, body) = invoke(&app, destroy).await;
    assert_eq!(code, 200, "{body}");
    assert!(fake.dynamo.item(INSTANCES, &user(3)).is_none());

    clock.advance(Duration::from_secs(6 * HOUR as u64 + 1));
    let (_, body) = invoke(&app, sweep()).await;
    assert_eq!(body["shutdownCount"], 1, "{body}");
    assert_eq!(body["results"][0]["userId"], user(1).as_str());
    assert_index_matches_runs(&fake, "after the deadline sweep");
    assert!((0..3).all(|i| !listed(&fake, &user(i))));
}

#[tokio::test]
async fn a_failed_start_leaves_nothing_in_the_index() {
    let (app, fake, _) = fake_app(T0);
    created(&app).await;
    fake.ecs.push_run_task_failure("RESOURCE:MEMORY");
    let (code, body) = invoke(&app, ev("start", UID)).await;
    assert_eq!(code, 500, "{body}");
    assert!(!listed(&fake, UID));
    assert_index_matches_runs(&fake, "after a failed RunTask");
    // A failure after the task exists (routing) ends that run too.
    fake.faults.fail_always(ops::REGISTER_TARGETS, AwsErrorKind::Other);
    let (code, body) = invoke(&app, ev("start", UID)).await;
    assert_eq!(code, 500, "{body}");
    assert!(!listed(&fake, UID));
    assert_index_matches_runs(&fake, "after a failed routing");
}

#[tokio::test]
async fn a_session_run_is_listed_by_its_end_plus_grace_and_leaves_with_the_session() {
    let (app, fake, clock) = fake_app(T0);
    created(&app).await;
    let start = T0 + HOUR;
    let (code, body) = invoke(
        &app,
        json!({"action":"schedule-session","userId":UID,"startTime":start,"endTime":start + HOUR,"licenseType":"byol"}),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let id = body["sessionId"].as_str().unwrap().to_string();
    clock.set(start);
    let call = |action: &str| json!({"action":action,"userId":"system","sessionId":id});
    let (_, body) = invoke(&app, call("start-scheduled-session")).await;
    assert_eq!(body["success"], true, "{body}");
    let item = fake.dynamo.item(INSTANCES, UID).unwrap();
    assert_eq!(num(&item, "runDeadline"), num(&item, "autoShutdownAt"));
    assert_eq!(
        num(&item, "runDeadline"),
        Some(start + 2 * HOUR),
        "the end plus the grace hour"
    );
    assert_index_matches_runs(&fake, "session running");
    let (_, body) = invoke(&app, call("end-scheduled-session")).await;
    assert_eq!(body["success"], true, "{body}");
    assert!(!listed(&fake, UID));
    assert_index_matches_runs(&fake, "session ended");
}

#[tokio::test]
async fn the_sweep_and_the_stats_read_the_runs_not_the_table() {
    let (app, fake, clock) = fake_app(T0);
    for i in 0..30 {
        assert_eq!(invoke(&app, create_event(&user(i), &format!("fleet{i}"))).await.0, 200);
    }
    for i in 0..3 {
        assert_eq!(invoke(&app, ev("start", &user(i))).await.0, 200);
    }
    let calls_before = fake.faults.calls().len();
    let read_before = fake.dynamo.items_read();
    let (code, stats) = invoke(&app, json!({"action":"shutdown-stats","userId":"system"})).await;
    assert_eq!(code, 200, "{stats}");
    let first = num(&fake.dynamo.item(INSTANCES, &user(0)).unwrap(), "runDeadline").unwrap();
    assert_eq!(
        stats["stats"],
        json!({"totalRunning":3,"scheduledForShutdown":3,"overdue":0,"nextShutdownIn":first - clock.now()})
    );
    assert_eq!(
        fake.dynamo.items_read() - read_before,
        3,
        "the stats read the three runs"
    );
    let (_, body) = invoke(&app, sweep()).await;
    assert_eq!(body["shutdownCount"], 0);
    assert_eq!(fake.dynamo.items_read() - read_before, 6, "and so does the sweep");
    let calls: Vec<String> = fake.faults.calls()[calls_before..]
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert!(!calls.iter().any(|c| c.contains("Scan")), "{calls:?}");
    assert_eq!(
        calls.iter().filter(|c| c.contains("Query")).count(),
        2 * RUN_SHARDS as usize,
        "one Query per shard, twice: {calls:?}"
    );

    clock.advance(Duration::from_secs(7 * HOUR as u64));
    let (_, body) = invoke(&app, sweep()).await;
    assert_eq!(body["shutdownCount"], 3, "{body}");
    assert_index_matches_runs(&fake, "after the sweep");
}

#[tokio::test]
async fn an_entry_whose_record_has_no_run_is_skipped_and_taken_out() {
    let (app, fake, clock) = fake_app(T0);
    created(&app).await;
    // An item edited by hand: stopped, but still in the index, with a deadline long past.
    let mut item = fake.dynamo.item(INSTANCES, UID).unwrap();
    item.insert("runShard".into(), AttributeValue::N(run_shard(UID).to_string()));
    item.insert("runDeadline".into(), AttributeValue::N((T0 - HOUR).to_string()));
    item.insert("status".into(), AttributeValue::S("stopped".into()));
    fake.dynamo.put_raw(INSTANCES, "userId", item);
    clock.advance(Duration::from_secs(60));
    let (code, body) = invoke(&app, sweep()).await;
    assert_eq!(
        (code, body),
        (
            200,
            json!({"message":"Auto-shutdown check completed. 0 instances shut down.","shutdownCount":0,"results":[]})
        )
    );
    assert!(!listed(&fake, UID), "the dead entry left the index");
    assert_eq!(
        fake.dynamo.item(INSTANCES, UID).unwrap()["status"],
        AttributeValue::S("stopped".into())
    );
}

/// A record the original wrote: running, without the attributes of the index.
fn legacy_running(fake: &FakeAws, uid: &str, started_at: i64) {
    let mut item = fake.dynamo.item(INSTANCES, uid).unwrap();
    item.remove("runShard");
    item.remove("runDeadline");
    item.remove("autoShutdownAt");
    item.insert("status".into(), AttributeValue::S("running".into()));
    item.insert("startedAt".into(), AttributeValue::N(started_at.to_string()));
    fake.dynamo.put_raw(INSTANCES, "userId", item);
}

#[tokio::test]
async fn the_backfill_lists_a_legacy_run_which_the_sweep_then_stops() {
    let (app, fake, clock) = fake_app(T0);
    running(&app).await;
    assert_eq!(invoke(&app, create_event(UID2, "bob")).await.0, 200);
    legacy_running(&fake, UID, T0);
    clock.advance(Duration::from_secs(7 * HOUR as u64));
    let (_, body) = invoke(&app, sweep()).await;
    assert_eq!(body["shutdownCount"], 0, "unlisted, the sweep cannot see it: {body}");

    let backfill = json!({"action":"admin-backfill-run-index","userId":ADMIN});
    let (code, body) = invoke(&app, backfill.clone()).await;
    assert_eq!(
        (code, body),
        (
            200,
            json!({"message":"Run index backfilled","scanned":2,"withRun":1,"listed":1})
        )
    );
    let item = fake.dynamo.item(INSTANCES, UID).unwrap();
    assert_eq!(
        num(&item, "runDeadline"),
        Some(T0 + 6 * HOUR),
        "its start plus the run limit"
    );
    assert_index_matches_runs(&fake, "after the backfill");
    let (_, body) = invoke(&app, backfill.clone()).await;
    assert_eq!(body["listed"], 0, "twice is harmless: {body}");

    let (_, body) = invoke(&app, sweep()).await;
    assert_eq!(body["shutdownCount"], 1, "{body}");
    assert!(fake.ecs.running_tasks().is_empty());
    assert!(!listed(&fake, UID));
    assert_index_matches_runs(&fake, "after the sweep");

    let (code, body) = invoke(&app, json!({"action":"admin-backfill-run-index","userId":UID2})).await;
    assert_eq!(code, 403, "admins only: {body}");
}
