//! The actions the original's API reference documents but never built, on the fakes:
//! `get-scheduled-sessions` and `license-pool-status`.

mod fake_env;

use std::collections::HashMap;
use std::sync::Arc;

use fake_env::*;
use foundry_lambda::app::App;
use foundry_lambda::app::Ctx;
use foundry_lambda::clock::Clock;
use foundry_lambda::clock::ManualClock;
use foundry_lambda::error::AwsErrorKind;
use foundry_lambda::managers::dynamodb::AttributeValue;
use foundry_lambda::testing::{fake_app, invoke, invoke_with, ops, FakeAws};
use serde_json::{json, Value};

/// Two BYOL owners who share their licenses, and a pooled user.
const OWNER: &str = "100000000000000011";
const OWNER2: &str = "100000000000000033";
const BORROWER: &str = "100000000000000022";
const ADMIN: &str = "000000000000000001";
const RESERVATIONS: &str = "foundry-vtt-instances-license-reservations";
const HOUR: i64 = 3_600;

fn owner_create(uid: &str, san: &str) -> Value {
    json!({"action":"create","userId":uid,"sanitizedUsername":san,"foundryUsername":"owner@example.com",
           "foundryPassword":"owner-Pa55word","licenseType":"byol","allowLicenseSharing":true,"maxConcurrentUsers":1})
}

fn schedule(uid: &str, kind: &str, start: i64, end: i64) -> Value {
    json!({"action":"schedule-session","userId":uid,"startTime":start,"endTime":end,"licenseType":kind})
}

async fn world() -> (App, FakeAws, Arc<ManualClock>) {
    let (app, fake, clock) = fake_app(T0);
    assert_eq!(invoke(&app, owner_create(OWNER, "owner")).await.0, 200);
    assert_eq!(invoke(&app, owner_create(OWNER2, "second")).await.0, 200);
    let borrower = json!({"action":"create","userId":BORROWER,"sanitizedUsername":"borrower","licenseType":"pooled"});
    assert_eq!(invoke(&app, borrower).await.0, 200);
    (app, fake, clock)
}

async fn booked(app: &App, uid: &str, kind: &str, start: i64, end: i64) -> String {
    let (code, body) = invoke(app, schedule(uid, kind, start, end)).await;
    assert_eq!((code, &body["success"]), (200, &json!(true)), "{body}");
    body["sessionId"].as_str().expect("a session id").to_string()
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

// ------------------------------------------------------------------ get-scheduled-sessions

#[tokio::test]
async fn scheduled_sessions_answer_the_documented_shape_earliest_first_with_minutes_and_mapped_states() {
    let (app, _fake, clock) = world().await;
    let later = booked(&app, OWNER, "byol", T0 + 10 * HOUR, T0 + 10 * HOUR + 5_430).await;
    let first = booked(&app, OWNER, "byol", T0 + HOUR, T0 + 3 * HOUR).await;
    let cancelled = booked(&app, OWNER, "byol", T0 + 5 * HOUR, T0 + 6 * HOUR).await;
    let (code, _) = invoke(
        &app,
        json!({"action":"cancel-session","userId":OWNER,"sessionId":cancelled}),
    )
    .await;
    assert_eq!(code, 200);
    clock.set(T0 + HOUR);
    let (code, body) = invoke(
        &app,
        json!({"action":"start-scheduled-session","userId":OWNER,"sessionId":first}),
    )
    .await;
    assert_eq!((code, &body["success"]), (200, &json!(true)), "{body}");

    let (code, body) = invoke(&app, ev("get-scheduled-sessions", OWNER)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(keys(&body), ["success", "sessions"]);
    assert_eq!(body["success"], true);
    let sessions = body["sessions"].as_array().expect("a list");
    assert_eq!(sessions.len(), 3);
    for s in sessions {
        assert_eq!(keys(s), ["sessionId", "startTime", "duration", "status"]);
    }
    let rows: Vec<(String, i64, i64, String)> = sessions
        .iter()
        .map(|s| {
            (
                s["sessionId"].as_str().unwrap_or_default().to_string(),
                s["startTime"].as_i64().unwrap_or_default(),
                s["duration"].as_i64().unwrap_or_default(),
                s["status"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            (first, T0 + HOUR, 120, "running".to_string()),
            (cancelled, T0 + 5 * HOUR, 60, "cancelled".to_string()),
            // 5,430 s is 90.5 minutes: whole minutes, rounded down.
            (later, T0 + 10 * HOUR, 90, "scheduled".to_string()),
        ]
    );
}

#[tokio::test]
async fn scheduled_sessions_show_an_ended_session_as_completed_and_a_starting_one_as_preparing() {
    let (app, fake, clock) = world().await;
    let ended = booked(&app, OWNER, "byol", T0 + HOUR, T0 + 2 * HOUR).await;
    let next = booked(&app, OWNER, "byol", T0 + 3 * HOUR, T0 + 4 * HOUR).await;
    clock.set(T0 + HOUR);
    let start = |id: &str| json!({"action":"start-scheduled-session","userId":OWNER,"sessionId":id});
    let (code, body) = invoke(&app, start(&ended)).await;
    assert_eq!((code, &body["success"]), (200, &json!(true)), "{body}");
    let end = json!({"action":"end-scheduled-session","userId":OWNER,"sessionId":ended});
    let (code, body) = invoke(&app, end).await;
    assert_eq!((code, &body["success"]), (200, &json!(true)), "{body}");

    // The next session's task stays pending past the invocation's deadline: the session
    // is claimed, its server not yet running.
    clock.set(T0 + 3 * HOUR);
    fake.ecs.set_launch_script(vec!["PROVISIONING", "PENDING"]);
    let ctx = Ctx {
        request_id: "r1".into(),
        deadline_ms: Some(clock.now_ms() + 30_000),
    };
    let (code, body) = invoke_with(&app, start(&next), &ctx).await;
    assert_eq!(code, 200, "{body}");

    let (_, body) = invoke(&app, ev("get-scheduled-sessions", OWNER)).await;
    let statuses: Vec<&str> = body["sessions"]
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|s| s["status"].as_str())
        .collect();
    assert_eq!(statuses, ["completed", "preparing"], "{body}");
}

#[tokio::test]
async fn scheduled_sessions_are_only_the_callers_own() {
    let (app, _fake, _) = world().await;
    booked(&app, OWNER, "byol", T0 + HOUR, T0 + 2 * HOUR).await;
    let mine = booked(&app, BORROWER, "pooled", T0 + 3 * HOUR, T0 + 4 * HOUR).await;
    let (code, body) = invoke(&app, ev("get-scheduled-sessions", BORROWER)).await;
    assert_eq!(code, 200);
    let ids: Vec<&str> = body["sessions"]
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|s| s["sessionId"].as_str())
        .collect();
    assert_eq!(ids, [mine.as_str()]);
}

#[tokio::test]
async fn scheduled_sessions_of_a_user_without_any_are_an_empty_list() {
    let (app, _fake, _) = fake_app(T0);
    let (code, body) = invoke(&app, ev("get-scheduled-sessions", UID)).await;
    assert_eq!(code, 200);
    assert_eq!(body, json!({"success": true, "sessions": []}));
}

#[tokio::test]
async fn scheduled_sessions_fail_with_the_error_when_the_sessions_cannot_be_read() {
    let (app, fake, _) = world().await;
    booked(&app, OWNER, "byol", T0 + HOUR, T0 + 2 * HOUR).await;
    fake.faults.fail_always(ops::QUERY, AwsErrorKind::Other);
    let (code, body) = invoke(&app, ev("get-scheduled-sessions", OWNER)).await;
    assert_eq!(code, 500, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .starts_with("Internal error: "),
        "{body}"
    );
}

// ------------------------------------------------------------------ license-pool-status

fn entry<'a>(body: &'a Value, license: &str) -> &'a Value {
    body["pools"]
        .as_array()
        .and_then(|p| p.iter().find(|e| e["licenseId"] == license))
        .unwrap_or_else(|| panic!("no entry {license} in {body}"))
}

fn counts(body: &Value) -> (i64, i64, i64, i64) {
    let n = |k: &str| body[k].as_i64().unwrap_or(-1);
    (
        n("totalLicenses"),
        n("availableLicenses"),
        n("inUseLicenses"),
        n("reservedLicenses"),
    )
}

/// The borrower's session on the first owner's license has begun but its server has not
/// (reserved); the second owner runs on demand on their own (in use).
async fn busy_pool() -> (App, FakeAws, Arc<ManualClock>, String) {
    let (app, fake, clock) = world().await;
    let session = booked(&app, BORROWER, "pooled", T0 + HOUR, T0 + 3 * HOUR).await;
    clock.set(T0 + HOUR + 60);
    let (code, body) = invoke(&app, ev("start", OWNER2)).await;
    assert_eq!(code, 200, "{body}");
    (app, fake, clock, session)
}

#[tokio::test]
async fn pool_status_shows_an_admin_every_entry_from_the_ledger_and_the_run_claims() {
    let (app, _fake, _, _) = busy_pool().await;
    let (code, body) = invoke(&app, ev("license-pool-status", ADMIN)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        keys(&body),
        [
            "success",
            "totalLicenses",
            "availableLicenses",
            "inUseLicenses",
            "reservedLicenses",
            "pools"
        ]
    );
    assert_eq!(body["success"], true);
    assert_eq!(counts(&body), (2, 0, 1, 1));
    let own = format!("byol-{OWNER}");
    let other = format!("byol-{OWNER2}");
    assert_eq!(
        entry(&body, &own),
        &json!({"licenseId": own, "ownerId": OWNER, "status": "reserved", "currentUser": BORROWER,
                "reservedUntil": T0 + 3 * HOUR}),
        "the borrower's session covers now, its server not yet started"
    );
    assert_eq!(
        entry(&body, &other),
        &json!({"licenseId": other, "ownerId": OWNER2, "status": "in-use", "currentUser": OWNER2}),
        "the owner's on-demand run holds their license without a booking"
    );
}

#[tokio::test]
async fn pool_status_is_open_to_the_system_as_to_an_admin() {
    let (app, _fake, _, _) = busy_pool().await;
    let (code, body) = invoke(&app, ev("license-pool-status", "system")).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["pools"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn pool_status_shows_anyone_else_the_counts_and_their_own_license_only() {
    let (app, _fake, _, _) = busy_pool().await;
    let (code, body) = invoke(&app, ev("license-pool-status", BORROWER)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(counts(&body), (2, 0, 1, 1));
    assert_eq!(body["pools"], json!([]), "a pooled user owns no license");

    let (code, body) = invoke(&app, ev("license-pool-status", OWNER)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        body["pools"],
        json!([{"licenseId": format!("byol-{OWNER}"), "ownerId": OWNER, "status": "reserved",
                "reservedUntil": T0 + 3 * HOUR}]),
        "the owner sees their license, not who borrows it"
    );
    assert!(!body.to_string().contains(BORROWER) && !body.to_string().contains(OWNER2));

    let (_, body) = invoke(&app, ev("license-pool-status", OWNER2)).await;
    assert_eq!(
        body["pools"],
        json!([{"licenseId": format!("byol-{OWNER2}"), "ownerId": OWNER2, "status": "in-use", "currentUser": OWNER2}]),
        "the caller's own run names the caller"
    );
}

#[tokio::test]
async fn pool_status_agrees_with_booking_a_reserved_license_cannot_be_booked_now() {
    let (app, _fake, clock, _) = busy_pool().await;
    // The second owner's run ends: their license is free, the borrowed one still reserved.
    assert_eq!(invoke(&app, ev("stop", OWNER2)).await.0, 200);
    let (_, body) = invoke(&app, ev("license-pool-status", ADMIN)).await;
    assert_eq!(counts(&body), (2, 1, 0, 1), "{body}");
    assert_eq!(entry(&body, &format!("byol-{OWNER2}"))["status"], "available");
    assert_eq!(entry(&body, &format!("byol-{OWNER}"))["status"], "reserved");
    // A pooled booking over the next hour gets the available one, and then none is left
    // (the first owner's own license is tried first, and is taken).
    let now = clock.now();
    let (_, first) = invoke(&app, schedule(OWNER, "pooled", now + 60, now + HOUR)).await;
    assert_eq!(first["success"], true, "{first}");
    let (_, second) = invoke(&app, schedule(OWNER, "pooled", now + 60, now + HOUR)).await;
    assert_eq!(second["success"], false, "{second}");
}

#[tokio::test]
async fn pool_status_counts_a_stale_run_claim_as_no_run() {
    let (app, fake, _) = world().await;
    // A claim left by a run whose record no longer names it (a crash): the next start
    // takes it over, so the license is not in use.
    let mut claim: HashMap<String, AttributeValue> = HashMap::new();
    let s = |v: &str| AttributeValue::S(v.to_string());
    claim.insert("reservationId".into(), s(&format!("license-run#byol-{OWNER}")));
    claim.insert("runner".into(), s(BORROWER));
    claim.insert("attemptId".into(), s("a-run-that-ended"));
    fake.dynamo.put_raw(RESERVATIONS, "reservationId", claim);
    let (_, body) = invoke(&app, ev("license-pool-status", ADMIN)).await;
    assert_eq!(counts(&body), (2, 2, 0, 0), "{body}");
}

#[tokio::test]
async fn pool_status_of_an_empty_pool_is_zero_counts() {
    let (app, _fake, _) = fake_app(T0);
    let (code, body) = invoke(&app, ev("license-pool-status", ADMIN)).await;
    assert_eq!(code, 200);
    assert_eq!(
        body,
        json!({"success":true,"totalLicenses":0,"availableLicenses":0,"inUseLicenses":0,"reservedLicenses":0,"pools":[]})
    );
}

#[tokio::test]
async fn pool_status_leaves_out_a_withdrawn_license() {
    let (app, _fake, _) = world().await;
    let withdraw = json!({"action":"set-license-sharing","userId":OWNER2,"allowLicenseSharing":false});
    assert_eq!(invoke(&app, withdraw).await.0, 200);
    let (_, body) = invoke(&app, ev("license-pool-status", ADMIN)).await;
    assert_eq!(counts(&body), (1, 1, 0, 0), "{body}");
    assert_eq!(entry(&body, &format!("byol-{OWNER}"))["status"], "available");
}

#[tokio::test]
async fn pool_status_fails_when_the_pool_or_a_ledger_cannot_be_read() {
    let (app, fake, _) = world().await;
    fake.faults.fail_always(ops::SCAN, AwsErrorKind::Other);
    let (code, body) = invoke(&app, ev("license-pool-status", ADMIN)).await;
    assert_eq!(code, 500, "{body}");

    let (app, fake, _) = world().await;
    fake.faults.fail_always(ops::GET_ITEM, AwsErrorKind::Transient);
    let (code, body) = invoke(&app, ev("license-pool-status", ADMIN)).await;
    assert_eq!(code, 500, "{body}");
}

// ------------------------------------------------------------------ request-license / release-license

const BORROWER2: &str = "100000000000000044";
const SESSIONS: &str = "foundry-vtt-instances-scheduled-sessions";
/// The on-demand run limit of a pooled instance: 4 hours.
const POOLED_LIMIT: i64 = 4 * HOUR;

/// One owner who shares their license, and two pooled users.
async fn one_license() -> (App, FakeAws, Arc<ManualClock>) {
    let (app, fake, clock) = fake_app(T0);
    assert_eq!(invoke(&app, owner_create(OWNER, "owner")).await.0, 200);
    for (uid, san) in [(BORROWER, "borrower"), (BORROWER2, "borrower2")] {
        let create = json!({"action":"create","userId":uid,"sanitizedUsername":san,"licenseType":"pooled"});
        assert_eq!(invoke(&app, create).await.0, 200);
    }
    (app, fake, clock)
}

fn text_of(item: &HashMap<String, AttributeValue>, attr: &str) -> Option<String> {
    match item.get(attr) {
        Some(AttributeValue::S(v)) => Some(v.clone()),
        _ => None,
    }
}

/// The session ids the license's ledger books.
fn ledger_bookings(fake: &FakeAws, license: &str) -> Vec<String> {
    let Some(item) = fake.dynamo.item(RESERVATIONS, &format!("license#{license}")) else {
        return Vec::new();
    };
    match item.get("bookings") {
        Some(AttributeValue::L(list)) => list
            .iter()
            .filter_map(|b| match b {
                AttributeValue::M(m) => text_of(m, "sessionId"),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

async fn requested(app: &App, uid: &str) -> Value {
    let (code, body) = invoke(app, ev("request-license", uid)).await;
    assert_eq!((code, &body["success"]), (200, &json!(true)), "{body}");
    body
}

#[tokio::test]
async fn a_request_books_a_window_from_now_to_the_on_demand_limit_through_the_ledger() {
    let (app, fake, clock) = one_license().await;
    let now = clock.now();
    let body = requested(&app, BORROWER).await;
    let license = format!("byol-{OWNER}");
    assert_eq!(keys(&body), ["success", "licenseId", "message", "sessionId", "until"]);
    assert_eq!(body["licenseId"], license.as_str());
    assert_eq!(body["message"], "License assigned successfully");
    assert_eq!(body["until"], now + POOLED_LIMIT);
    let id = body["sessionId"].as_str().expect("a session id").to_string();
    assert_eq!(ledger_bookings(&fake, &license), std::slice::from_ref(&id));
    let session = fake.dynamo.item(SESSIONS, &id).expect("the window's session");
    assert_eq!(text_of(&session, "status").as_deref(), Some("scheduled"));
    assert_eq!(session.get("onDemand"), Some(&AttributeValue::Bool(true)));
    assert_eq!(session.get("startTime"), Some(&AttributeValue::N(now.to_string())));
    // The pool shows it reserved until the window's end, and nothing runs yet.
    let (_, pool) = invoke(&app, ev("license-pool-status", ADMIN)).await;
    assert_eq!(entry(&pool, &license)["status"], "reserved");
    assert_eq!(entry(&pool, &license)["reservedUntil"], now + POOLED_LIMIT);
    assert!(fake.ecs.running_tasks().is_empty());
}

#[tokio::test]
async fn a_request_window_ends_at_the_licenses_next_booking_when_that_comes_sooner() {
    let (app, _fake, _) = one_license().await;
    booked(&app, OWNER, "byol", T0 + 2 * HOUR, T0 + 3 * HOUR).await;
    let body = requested(&app, BORROWER).await;
    assert_eq!(body["until"], T0 + 2 * HOUR);
}

#[tokio::test]
async fn a_second_request_answers_the_window_already_held() {
    let (app, fake, _) = one_license().await;
    let first = requested(&app, BORROWER).await;
    let again = requested(&app, BORROWER).await;
    assert_eq!(first, again);
    assert_eq!(ledger_bookings(&fake, &format!("byol-{OWNER}")).len(), 1);
}

#[tokio::test]
async fn start_runs_a_pooled_user_on_the_requested_license_until_the_windows_end() {
    let (app, fake, _) = one_license().await;
    let window = requested(&app, BORROWER).await;
    let until = window["until"].as_i64().expect("the window's end");
    let (code, body) = invoke(&app, ev("start", BORROWER)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["status"], "running", "{body}");
    assert_eq!(body["url"], "https://borrower.foundry.example.com", "{body}");
    let id = window["sessionId"].as_str().unwrap_or_default();
    let inst = fake.dynamo.item(INSTANCES, BORROWER).expect("the record");
    assert_eq!(text_of(&inst, "linkedSessionId").as_deref(), Some(id));
    assert_eq!(
        inst.get("autoShutdownAt"),
        Some(&AttributeValue::N(until.to_string())),
        "the server stops at the window's end"
    );
    assert_eq!(fake.ecs.running_tasks().len(), 1);
    let (_, sessions) = invoke(&app, ev("get-scheduled-sessions", BORROWER)).await;
    assert_eq!(sessions["sessions"][0]["status"], "running");
    let (_, pool) = invoke(&app, ev("license-pool-status", ADMIN)).await;
    assert_eq!(
        entry(&pool, &format!("byol-{OWNER}")),
        &json!({"licenseId": format!("byol-{OWNER}"), "ownerId": OWNER, "status": "in-use",
                "currentUser": BORROWER, "reservedUntil": until})
    );
    // The owner cannot take their license back on demand while it is lent.
    let (code, body) = invoke(&app, ev("start", OWNER)).await;
    assert_eq!(code, 500, "{body}");
    assert_eq!(
        body["error"],
        "Internal error: A scheduled session is currently using this license"
    );
}

#[tokio::test]
async fn start_of_a_pooled_user_without_a_window_keeps_the_pooled_refusal() {
    let (app, fake, _) = one_license().await;
    let (code, body) = invoke(&app, ev("start", BORROWER)).await;
    assert_eq!(code, 500);
    assert_eq!(
        body["error"],
        "Internal error: Pooled license users must schedule sessions - use 'Schedule Session' instead of on-demand start"
    );
    assert!(fake.ecs.tasks().is_empty());
}

#[tokio::test]
async fn the_sweep_never_starts_a_requested_window() {
    let (app, fake, _) = one_license().await;
    let window = requested(&app, BORROWER).await;
    let (code, body) = invoke(&app, ev("prepare-sessions", "system")).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["sessionsStarted"], 0, "{body}");
    let id = window["sessionId"].as_str().unwrap_or_default();
    let session = fake.dynamo.item(SESSIONS, id).expect("the window");
    assert_eq!(text_of(&session, "status").as_deref(), Some("scheduled"));
    assert!(fake.ecs.tasks().is_empty());
}

#[tokio::test]
async fn release_stops_the_server_books_the_hours_and_frees_the_license() {
    let (app, fake, clock) = one_license().await;
    let window = requested(&app, BORROWER).await;
    assert_eq!(invoke(&app, ev("start", BORROWER)).await.0, 200);
    clock.set(clock.now() + HOUR);
    let (code, body) = invoke(&app, ev("release-license", BORROWER)).await;
    assert_eq!(code, 200, "{body}");
    let license = format!("byol-{OWNER}");
    assert_eq!(
        body,
        json!({"success":true,"licenseId":license,"message":"License released successfully"})
    );
    assert!(fake.ecs.running_tasks().is_empty(), "the server stopped");
    let id = window["sessionId"].as_str().unwrap_or_default();
    let session = fake.dynamo.item(SESSIONS, id).expect("the window");
    assert_eq!(text_of(&session, "status").as_deref(), Some("completed"));
    assert!(ledger_bookings(&fake, &license).is_empty());
    let hours: Vec<f64> = fake
        .dynamo
        .items(USAGE)
        .iter()
        .filter_map(|u| match u.get("hoursThisMonth") {
            Some(AttributeValue::N(h)) => h.parse().ok(),
            _ => None,
        })
        .collect();
    assert!(
        hours.len() == 1 && (hours[0] - 1.0).abs() < 0.01,
        "the hour of play is booked: {hours:?}"
    );
    // Free again: the other pooled user gets it at once.
    let other = requested(&app, BORROWER2).await;
    assert_eq!(other["licenseId"], license.as_str());
}

#[tokio::test]
async fn auto_shutdown_stops_a_window_at_its_end_and_frees_the_license() {
    let (app, fake, clock) = one_license().await;
    let window = requested(&app, BORROWER).await;
    let until = window["until"].as_i64().expect("the window's end");
    assert_eq!(invoke(&app, ev("start", BORROWER)).await.0, 200);
    clock.set(until - 60);
    let (code, _) = invoke(&app, ev("auto-shutdown-check", "system")).await;
    assert_eq!(code, 200);
    assert_eq!(fake.ecs.running_tasks().len(), 1, "not before the window's end");
    clock.set(until);
    let (code, body) = invoke(&app, ev("auto-shutdown-check", "system")).await;
    assert_eq!(code, 200, "{body}");
    assert!(
        fake.ecs.running_tasks().is_empty(),
        "stopped at the window's end: {body}"
    );
    let id = window["sessionId"].as_str().unwrap_or_default();
    let session = fake.dynamo.item(SESSIONS, id).expect("the window");
    assert_eq!(text_of(&session, "status").as_deref(), Some("completed"));
    assert!(ledger_bookings(&fake, &format!("byol-{OWNER}")).is_empty());
}

#[tokio::test]
async fn stop_ends_the_window_too_and_a_new_request_is_needed_to_play_again() {
    let (app, fake, _) = one_license().await;
    let window = requested(&app, BORROWER).await;
    assert_eq!(invoke(&app, ev("start", BORROWER)).await.0, 200);
    assert_eq!(invoke(&app, ev("stop", BORROWER)).await.0, 200);
    let id = window["sessionId"].as_str().unwrap_or_default();
    let session = fake.dynamo.item(SESSIONS, id).expect("the window");
    assert_eq!(text_of(&session, "status").as_deref(), Some("completed"));
    assert!(ledger_bookings(&fake, &format!("byol-{OWNER}")).is_empty());
    assert_eq!(invoke(&app, ev("start", BORROWER)).await.0, 500, "no window, no start");
    let again = requested(&app, BORROWER).await;
    assert_ne!(again["sessionId"], window["sessionId"]);
    assert_eq!(invoke(&app, ev("start", BORROWER)).await.0, 200);
}

#[tokio::test]
async fn release_before_start_cancels_the_window() {
    let (app, fake, _) = one_license().await;
    let window = requested(&app, BORROWER).await;
    let (code, body) = invoke(&app, ev("release-license", BORROWER)).await;
    assert_eq!((code, &body["success"]), (200, &json!(true)), "{body}");
    let id = window["sessionId"].as_str().unwrap_or_default();
    let session = fake.dynamo.item(SESSIONS, id).expect("the window");
    assert_eq!(text_of(&session, "status").as_deref(), Some("cancelled"));
    assert_eq!(text_of(&session, "cancelReason").as_deref(), Some("released"));
    assert!(ledger_bookings(&fake, &format!("byol-{OWNER}")).is_empty());
    // And start refuses again.
    assert_eq!(invoke(&app, ev("start", BORROWER)).await.0, 500);
}

#[tokio::test]
async fn release_without_a_window_is_a_400() {
    let (app, _fake, _) = one_license().await;
    let (code, body) = invoke(&app, ev("release-license", BORROWER)).await;
    assert_eq!(code, 400);
    assert_eq!(
        body["error"],
        "You hold no license to release: 'request-license' assigns one"
    );
}

#[tokio::test]
async fn a_request_by_a_byol_user_or_a_user_without_an_instance_is_a_400() {
    let (app, fake, _) = one_license().await;
    let (code, body) = invoke(&app, ev("request-license", OWNER)).await;
    assert_eq!(code, 400);
    assert_eq!(
        body["error"],
        "Only pooled license users request a license; a BYOL instance starts on its own license with 'start'"
    );
    let (code, body) = invoke(&app, ev("request-license", UID)).await;
    assert_eq!(code, 400);
    assert_eq!(body["error"], "User must have an instance to request a license");
    assert!(ledger_bookings(&fake, &format!("byol-{OWNER}")).is_empty());
}

#[tokio::test]
async fn a_request_finds_no_license_while_the_owner_plays_or_another_user_holds_it() {
    let (app, fake, _) = one_license().await;
    assert_eq!(invoke(&app, ev("start", OWNER)).await.0, 200);
    let (code, body) = invoke(&app, ev("request-license", BORROWER)).await;
    assert_eq!(code, 200);
    assert_eq!(body, json!({"success":false,"message":"No license is free now"}));
    assert_eq!(invoke(&app, ev("stop", OWNER)).await.0, 200);
    requested(&app, BORROWER).await;
    let (_, body) = invoke(&app, ev("request-license", BORROWER2)).await;
    assert_eq!(body["success"], false, "{body}");
    assert_eq!(ledger_bookings(&fake, &format!("byol-{OWNER}")).len(), 1);
}

/// Two pooled users request the one free license at once → (the winner's answer, the
/// loser's answer).
async fn race_for_the_last_license(app: &App, fake: &FakeAws) -> (Value, Value) {
    // Both have read the ledger before either writes: only the ledger's condition (on
    // the version read, or on there being no ledger yet) can keep the second booking out.
    fake.race_at(ops::TRANSACT_WRITE_ITEMS, 2);
    let answers = concurrently(
        app,
        vec![ev("request-license", BORROWER), ev("request-license", BORROWER2)],
    )
    .await;
    assert!(answers.iter().all(|(code, _)| *code == 200), "{answers:?}");
    let (won, lost): (Vec<_>, Vec<_>) = answers.into_iter().map(|(_, b)| b).partition(|b| b["success"] == true);
    assert_eq!((won.len(), lost.len()), (1, 1), "exactly one wins: {won:?} {lost:?}");
    (won[0].clone(), lost[0].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_requests_for_the_last_free_license_one_wins() {
    let (app, fake, _) = one_license().await;
    let (won, lost) = race_for_the_last_license(&app, &fake).await;
    assert_eq!(lost, json!({"success":false,"message":"No license is free now"}));
    let license = format!("byol-{OWNER}");
    assert_eq!(
        ledger_bookings(&fake, &license),
        [won["sessionId"].as_str().unwrap_or_default().to_string()]
    );
    assert_eq!(fake.dynamo.items(SESSIONS).len(), 1, "one window booked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_requests_for_the_last_free_license_one_wins_on_a_stored_ledger() {
    let (app, fake, _) = one_license().await;
    // A later booking: the ledger is stored, and each request is conditional on its version.
    let later = booked(&app, OWNER, "byol", T0 + 10 * HOUR, T0 + 11 * HOUR).await;
    let (won, _) = race_for_the_last_license(&app, &fake).await;
    let mut bookings = ledger_bookings(&fake, &format!("byol-{OWNER}"));
    bookings.sort();
    let mut expected = vec![later, won["sessionId"].as_str().unwrap_or_default().to_string()];
    expected.sort();
    assert_eq!(bookings, expected);
    assert_eq!(fake.dynamo.items(SESSIONS).len(), 2);
}

#[tokio::test]
async fn a_request_whose_booking_fails_books_nothing_and_reports_the_error() {
    let (app, fake, _) = one_license().await;
    fake.faults.fail_always(ops::TRANSACT_WRITE_ITEMS, AwsErrorKind::Other);
    let (code, body) = invoke(&app, ev("request-license", BORROWER)).await;
    assert_eq!(code, 500, "{body}");
    assert!(ledger_bookings(&fake, &format!("byol-{OWNER}")).is_empty());
    assert!(fake.dynamo.items(SESSIONS).is_empty());
}

#[tokio::test]
async fn a_window_whose_server_fails_to_start_is_cancelled_and_the_license_freed() {
    let (app, fake, _) = one_license().await;
    requested(&app, BORROWER).await;
    fake.faults.fail_always(ops::RUN_TASK, AwsErrorKind::Other);
    let (code, body) = invoke(&app, ev("start", BORROWER)).await;
    assert_eq!(code, 500, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .starts_with("Internal error: Failed to start instance: "),
        "{body}"
    );
    assert!(ledger_bookings(&fake, &format!("byol-{OWNER}")).is_empty());
}

#[tokio::test]
async fn release_fails_with_the_error_when_the_windows_cannot_be_read() {
    let (app, fake, _) = one_license().await;
    requested(&app, BORROWER).await;
    fake.faults.fail_always(ops::QUERY, AwsErrorKind::Other);
    let (code, body) = invoke(&app, ev("release-license", BORROWER)).await;
    assert_eq!(code, 500, "{body}");
    assert_eq!(ledger_bookings(&fake, &format!("byol-{OWNER}")).len(), 1);
}

// ------------------------------------------------------------------ health-check

const CHECKS: [&str; 6] = ["dynamodb", "ecs", "efs", "alb", "route53", "secretsmanager"];

async fn health(app: &App) -> Value {
    let (code, body) = invoke(app, ev("health-check", ADMIN)).await;
    assert_eq!(code, 200, "{body}");
    body
}

#[tokio::test]
async fn health_check_probes_every_dependency_and_answers_healthy() {
    let (app, fake, _) = fake_app(T0);
    let body = health(&app).await;
    assert_eq!(
        keys(&body),
        ["success", "status", "checks"],
        "no details when all is well"
    );
    assert_eq!((&body["success"], &body["status"]), (&json!(true), &json!("healthy")));
    assert_eq!(keys(&body["checks"]), CHECKS);
    for check in CHECKS {
        assert_eq!(body["checks"][check]["status"], "ok", "{check}: {body}");
        assert!(body["checks"][check]["latencyMs"].is_u64(), "{check}: {body}");
    }
    let tables = body["checks"]["dynamodb"]["tables"].as_object().expect("the tables");
    assert_eq!(tables.len(), 5, "{body}");
    assert!(tables.values().all(|t| t["status"] == "ok" && t["state"] == "ACTIVE"));
    assert_eq!(body["checks"]["ecs"]["state"], "ACTIVE");
    assert_eq!(body["checks"]["efs"]["state"], "available");
    let mut made = fake.faults.calls();
    made.sort();
    assert_eq!(
        made,
        [
            "DescribeClusters",
            "DescribeFileSystems",
            "DescribeListeners",
            "DescribeTable",
            "DescribeTable",
            "DescribeTable",
            "DescribeTable",
            "DescribeTable",
            "GetHostedZone",
            "ListSecrets"
        ],
        "one probe per dependency and table, nothing else"
    );
}

#[tokio::test]
async fn health_check_is_degraded_with_the_error_code_when_a_service_fails() {
    let (app, fake, _) = fake_app(T0);
    fake.faults
        .fail_always(ops::DESCRIBE_CLUSTERS, AwsErrorKind::AccessDenied);
    let body = health(&app).await;
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(body["checks"]["ecs"]["status"], "failed");
    assert_eq!(body["checks"]["ecs"]["errorCode"], "InjectedFault");
    assert_eq!(body["checks"]["efs"]["status"], "ok");
    assert_eq!(body["details"], json!(["ecs: InjectedFault"]));
}

#[tokio::test]
async fn health_check_is_unhealthy_when_a_table_does_not_answer() {
    let (app, fake, _) = fake_app(T0);
    fake.faults.fail_nth(ops::DESCRIBE_TABLE, 2, AwsErrorKind::Transient);
    let body = health(&app).await;
    assert_eq!(body["status"], "unhealthy", "{body}");
    assert_eq!(body["checks"]["dynamodb"]["status"], "failed");
    let failed: Vec<&String> = body["checks"]["dynamodb"]["tables"]
        .as_object()
        .expect("the tables")
        .iter()
        .filter(|(_, t)| t["status"] == "failed")
        .map(|(name, _)| name)
        .collect();
    assert_eq!(failed.len(), 1, "{body}");
    assert_eq!(body["checks"]["ecs"]["status"], "ok", "the other checks still ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_check_probes_at_once_and_a_slow_dependency_times_out() {
    let (app, fake, _) = fake_app(T0);
    // Ten probes of 300 ms each would take 3 s one after the other.
    fake.set_latency(std::time::Duration::from_millis(300));
    fake.set_operation_latency(ops::GET_HOSTED_ZONE, std::time::Duration::from_secs(5));
    let started = std::time::Instant::now();
    let body = health(&app).await;
    let took = started.elapsed();
    assert!(took < std::time::Duration::from_millis(2_900), "took {took:?}");
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(body["checks"]["route53"]["status"], "timeout");
    assert!(body["checks"]["route53"]["latencyMs"]
        .as_u64()
        .is_some_and(|ms| ms >= 2_000));
    assert_eq!(body["checks"]["ecs"]["status"], "ok");
    assert_eq!(body["details"], json!(["route53: no answer within 2000 ms"]));
}

#[tokio::test]
async fn health_check_emits_a_metric_per_check() {
    let (app, fake, _) = fake_app(T0);
    let sink = foundry_lambda::logging::BufferWriter::default();
    let app = app.with_metrics(Arc::new(sink.clone()));
    fake.faults.fail_always(ops::LIST_SECRETS, AwsErrorKind::AccessDenied);
    let handled = app
        .handle(&ev("health-check", "system"), &foundry_lambda::app::Ctx::default())
        .await;
    assert_eq!(handled.envelope.status_code, 200);
    let record: Value = sink
        .contents()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|r| r["Action"] == "health-check")
        .expect("the invocation's EMF record");
    for (ok, value) in [
        ("HealthDynamoDbOk", 1),
        ("HealthEcsOk", 1),
        ("HealthEfsOk", 1),
        ("HealthAlbOk", 1),
        ("HealthRoute53Ok", 1),
        ("HealthSecretsManagerOk", 0),
        ("HealthHealthy", 0),
    ] {
        assert_eq!(record[ok], value, "{ok}: {record}");
    }
    for latency in [
        "HealthDynamoDbLatencyMs",
        "HealthEcsLatencyMs",
        "HealthEfsLatencyMs",
        "HealthAlbLatencyMs",
        "HealthRoute53LatencyMs",
        "HealthSecretsManagerLatencyMs",
    ] {
        assert!(record[latency].is_number(), "{latency}: {record}");
    }
    let names: Vec<&str> = record["_aws"]["CloudWatchMetrics"][0]["Metrics"]
        .as_array()
        .expect("the metric definitions")
        .iter()
        .filter_map(|m| m["Name"].as_str())
        .collect();
    assert!(
        names.contains(&"HealthEcsOk") && names.contains(&"HealthSecretsManagerLatencyMs"),
        "{names:?}"
    );
}

#[tokio::test]
async fn health_check_is_for_an_admin_or_the_system_only() {
    let (app, fake, _) = fake_app(T0);
    let (code, body) = invoke(&app, ev("health-check", UID)).await;
    assert_eq!(code, 403);
    assert_eq!(body["error"], "Only an admin or the system may call health-check");
    assert!(fake.faults.calls().is_empty(), "a refusal probes nothing");
    assert_eq!(health(&app).await["status"], "healthy");
}
