//! Scheduled sessions and the license pool on the fakes: booking, availability, the
//! session state machine, scheduled starts that serve, and license sharing.

mod fake_env;

use fake_env::*;
use foundry_lambda::clock::ManualClock;
use foundry_lambda::error::AwsErrorKind;
use foundry_lambda::managers::dynamodb::AttributeValue;
use foundry_lambda::testing::{fake_app, invoke, ops, FakeAws};
use serde_json::{json, Value};

/// A BYOL owner who shares, and a pooled user.
const OWNER: &str = "100000000000000011";
const BORROWER: &str = "100000000000000022";
const SESSIONS: &str = "foundry-vtt-instances-scheduled-sessions";
const RESERVATIONS: &str = "foundry-vtt-instances-license-reservations";
const POOLS: &str = "foundry-vtt-instances-license-pool";
const HOUR: i64 = 3_600;

fn owner_create() -> Value {
    json!({"action":"create","userId":OWNER,"sanitizedUsername":"owner","foundryUsername":"owner@example.com",
           "foundryPassword":"owner-Pa55word","licenseType":"byol","allowLicenseSharing":true,"maxConcurrentUsers":1})
}

fn borrower_create() -> Value {
    json!({"action":"create","userId":BORROWER,"sanitizedUsername":"borrower","licenseType":"pooled"})
}

fn schedule(uid: &str, kind: &str, start: i64, end: i64) -> Value {
    json!({"action":"schedule-session","userId":uid,"startTime":start,"endTime":end,"licenseType":kind,
           "sessionTitle":"Dragons","sessionDescription":"Scheduled from CET timezone"})
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

fn text(item: &std::collections::HashMap<String, AttributeValue>, attr: &str) -> Option<String> {
    match item.get(attr) {
        Some(AttributeValue::S(v)) => Some(v.clone()),
        _ => None,
    }
}

fn session(fake: &FakeAws, id: &str) -> std::collections::HashMap<String, AttributeValue> {
    fake.dynamo.item(SESSIONS, id).expect("a session item")
}

fn reservation_of(fake: &FakeAws, session_id: &str) -> std::collections::HashMap<String, AttributeValue> {
    fake.dynamo
        .items(RESERVATIONS)
        .into_iter()
        .find(|r| text(r, "sessionId").as_deref() == Some(session_id))
        .expect("a reservation")
}

async fn world() -> (foundry_lambda::app::App, FakeAws, std::sync::Arc<ManualClock>) {
    let (app, fake, clock) = fake_app(T0);
    assert_eq!(invoke(&app, owner_create()).await.0, 200);
    assert_eq!(invoke(&app, borrower_create()).await.0, 200);
    (app, fake, clock)
}

async fn booked(app: &foundry_lambda::app::App, uid: &str, kind: &str, start: i64, end: i64) -> String {
    let (code, body) = invoke(app, schedule(uid, kind, start, end)).await;
    assert_eq!((code, &body["success"]), (200, &json!(true)), "{body}");
    body["sessionId"].as_str().unwrap().to_string()
}

// ------------------------------------------------------------------ booking

#[tokio::test]
async fn a_booking_answers_the_contracts_shape_and_writes_session_reservation_and_ledger() {
    let (app, fake, _) = world().await;
    let (code, body) = invoke(&app, schedule(OWNER, "byol", T0 + HOUR, T0 + 3 * HOUR)).await;
    assert_eq!(code, 200, "{body}");
    let keys: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["message", "success", "sessionId"]);
    assert_eq!(body["message"], "Session scheduled successfully");
    let id = body["sessionId"].as_str().unwrap();
    assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 4);
    let item = session(&fake, id);
    for (attr, want) in [
        ("userId", OWNER),
        ("username", "owner"),
        ("licenseType", "byol"),
        ("licenseId", &format!("byol-{OWNER}")),
        ("status", "scheduled"),
        ("title", "Dragons"),
        ("description", "Scheduled from CET timezone"),
    ] {
        assert_eq!(text(&item, attr).as_deref(), Some(want), "{attr}");
    }
    let r = reservation_of(&fake, id);
    assert_eq!(text(&r, "status").as_deref(), Some("active"));
    assert_eq!(text(&r, "licenseId"), text(&item, "licenseId"));
    assert!(
        fake.dynamo
            .item(RESERVATIONS, &format!("license#byol-{OWNER}"))
            .is_some(),
        "the ledger"
    );
    let (_, list) = invoke(&app, ev("list-sessions", OWNER)).await;
    assert_eq!(list["count"], 1);
    assert_eq!(list["sessions"][0]["sessionId"], id);
}

#[tokio::test]
async fn invalid_booking_requests_are_400s_that_say_what_is_wrong() {
    let (app, fake, _) = world().await;
    let cases = [
        (
            json!({"action":"schedule-session","userId":OWNER,"startTime":T0 + HOUR}),
            "Missing required fields: startTime, endTime, licenseType",
        ),
        (
            schedule(OWNER, "gold", T0 + HOUR, T0 + 2 * HOUR),
            "Invalid license type. Must be 'byol' or 'pooled'",
        ),
        (
            schedule(OWNER, "byol", T0 + 2 * HOUR, T0 + HOUR),
            "endTime must be after startTime",
        ),
        (
            schedule(OWNER, "byol", T0 - HOUR, T0 + HOUR),
            "startTime must be in the future",
        ),
        (
            schedule(OWNER, "byol", T0 + HOUR, T0 + 30 * HOUR),
            "A session may last at most 86400 seconds (24 hours)",
        ),
        (
            json!({"action":"schedule-session","userId":BORROWER,"startTime":T0 + HOUR,"endTime":T0 + 2 * HOUR,
                   "licenseType":"byol","preferredLicenseId":format!("byol-{OWNER}")}),
            "A BYOL session can only use your own license (byol-100000000000000022)",
        ),
    ];
    for (event, message) in cases {
        assert_eq!(
            invoke(&app, event.clone()).await,
            (400, json!({"error": message})),
            "{event}"
        );
    }
    assert!(fake.dynamo.items(SESSIONS).is_empty());
}

#[tokio::test]
async fn a_duration_in_minutes_stands_for_the_end() {
    let (app, fake, _) = world().await;
    let (code, body) = invoke(
        &app,
        json!({"action":"schedule-session","userId":OWNER,"startTime":T0 + HOUR,"duration":120,"licenseType":"byol"}),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let item = session(&fake, body["sessionId"].as_str().unwrap());
    assert_eq!(item["endTime"], AttributeValue::N((T0 + 3 * HOUR).to_string()));
}

#[tokio::test]
async fn overlapping_windows_are_refused_and_back_to_back_ones_allowed() {
    let (app, _, _) = world().await;
    booked(&app, OWNER, "byol", T0 + HOUR, T0 + 3 * HOUR).await;
    let (code, body) = invoke(&app, schedule(OWNER, "byol", T0 + 2 * HOUR, T0 + 4 * HOUR)).await;
    assert_eq!(
        (code, body),
        (
            200,
            json!({"message":"No licenses available for the requested time period","success":false})
        )
    );
    booked(&app, OWNER, "byol", T0 + 3 * HOUR, T0 + 4 * HOUR).await;
    booked(&app, OWNER, "byol", T0 + HOUR / 2, T0 + HOUR).await;
}

#[tokio::test]
async fn a_pooled_booking_takes_a_free_shared_license_and_none_when_all_are_taken() {
    let (app, fake, _) = world().await;
    let id = booked(&app, BORROWER, "pooled", T0 + HOUR, T0 + 2 * HOUR).await;
    assert_eq!(
        text(&session(&fake, &id), "licenseId").as_deref(),
        Some(format!("byol-{OWNER}").as_str())
    );
    let (_, body) = invoke(&app, schedule(BORROWER, "pooled", T0 + HOUR, T0 + 2 * HOUR)).await;
    assert_eq!(body["success"], false);
    // The owner's own booking of the license is refused for that window too.
    let (_, body) = invoke(&app, schedule(OWNER, "byol", T0 + HOUR, T0 + 2 * HOUR)).await;
    assert_eq!(body["success"], false);
}

#[tokio::test]
async fn availability_answers_the_contracts_shapes() {
    let (app, _, _) = world().await;
    let check = |uid: &str, kind: &str, start: i64, end: i64| json!({"action":"check-availability","userId":uid,"startTime":start,"endTime":end,"licenseType":kind});
    assert_eq!(
        invoke(&app, check(BORROWER, "pooled", T0 + HOUR, T0 + 2 * HOUR)).await,
        (
            200,
            json!({"available":true,"availableLicenses":[format!("byol-{OWNER}")]})
        )
    );
    let id = booked(&app, OWNER, "byol", T0 + HOUR, T0 + 2 * HOUR).await;
    assert_eq!(
        invoke(&app, check(OWNER, "byol", T0 + HOUR, T0 + 3 * HOUR)).await,
        (200, json!({"available":false,"conflictingSessions":[id]}))
    );
    assert_eq!(
        invoke(&app, check(OWNER, "byol", T0 + 2 * HOUR, T0 + 3 * HOUR)).await,
        (200, json!({"available":true}))
    );
    assert_eq!(
        invoke(&app, check(BORROWER, "pooled", T0 + HOUR, T0 + 2 * HOUR)).await,
        (200, json!({"available":false,"availableLicenses":[]}))
    );
}

// ------------------------------------------------------------------ cancelling

#[tokio::test]
async fn only_the_owner_or_an_admin_cancels_a_session_and_its_reservation_goes_with_it() {
    let (app, fake, _) = world().await;
    let id = booked(&app, OWNER, "byol", T0 + HOUR, T0 + 2 * HOUR).await;
    let cancel = |uid: &str, action: &str| json!({"action":action,"userId":uid,"sessionId":id});
    assert_eq!(
        invoke(&app, cancel(BORROWER, "cancel-session")).await,
        (403, json!({"error":"You can only cancel your own sessions"}))
    );
    assert_eq!(text(&session(&fake, &id), "status").as_deref(), Some("scheduled"));
    assert_eq!(
        invoke(&app, cancel(OWNER, "cancel-scheduled-session")).await,
        (200, json!({"message":"Session cancelled successfully","sessionId":id}))
    );
    assert_eq!(text(&session(&fake, &id), "status").as_deref(), Some("cancelled"));
    assert_eq!(
        text(&reservation_of(&fake, &id), "status").as_deref(),
        Some("cancelled")
    );
    // The window is free again.
    booked(&app, OWNER, "byol", T0 + HOUR, T0 + 2 * HOUR).await;
    let other = booked(&app, OWNER, "byol", T0 + 5 * HOUR, T0 + 6 * HOUR).await;
    let admin = "000000000000000001";
    let (code, _) = invoke(
        &app,
        json!({"action":"cancel-session","userId":admin,"sessionId":other}),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(
        invoke(
            &app,
            json!({"action":"cancel-session","userId":OWNER,"sessionId":"nope"})
        )
        .await,
        (500, json!({"error":"Internal error: Session not found"}))
    );
}

// ------------------------------------------------------------------ starting

/// Advances the clock to `at` and runs the sweep.
async fn sweep_at(app: &foundry_lambda::app::App, clock: &ManualClock, at: i64) -> Value {
    clock.set(at);
    let (code, body) = invoke(app, ev("prepare-sessions", "system")).await;
    assert_eq!(code, 200, "{body}");
    body
}

#[tokio::test]
async fn prepare_sessions_starts_a_due_session_once_five_minutes_early_and_it_serves() {
    let (app, fake, clock) = world().await;
    let start = T0 + 2 * HOUR;
    let id = booked(&app, OWNER, "byol", start, start + 2 * HOUR).await;
    let body = sweep_at(&app, &clock, start - 301).await;
    assert_eq!(
        body,
        json!({"message":"Prepared 0 sessions, resolved 0 conflicts","sessionsStarted":0,"conflictsResolved":0})
    );
    let body = sweep_at(&app, &clock, start - 300).await;
    assert_eq!(body["sessionsStarted"], 1, "{body}");
    assert_eq!(text(&session(&fake, &id), "status").as_deref(), Some("active"));
    let inst = fake.dynamo.item(INSTANCES, OWNER).unwrap();
    assert_eq!(text(&inst, "status").as_deref(), Some("running"));
    assert_eq!(text(&inst, "linkedSessionId").as_deref(), Some(id.as_str()));
    assert_eq!(
        inst["autoShutdownAt"],
        AttributeValue::N((start + 3 * HOUR).to_string())
    );
    assert_eq!(
        text(&inst, "licenseType").as_deref(),
        Some("byol"),
        "the license type never changes"
    );
    // Routed: a target and a rule, as an on-demand start.
    let tg = text(&inst, "targetGroupArn").unwrap();
    assert_eq!(fake.alb.targets(&tg).len(), 1);
    assert_eq!(fake.alb.rules(LISTENER).len(), 1);
    // A second sweep starts nothing again.
    let body = sweep_at(&app, &clock, start).await;
    assert_eq!(body["sessionsStarted"], 0);
    assert_eq!(fake.ecs.running_tasks().len(), 1);
    // The start was booked in the usage table.
    assert!(fake
        .dynamo
        .items(USAGE)
        .iter()
        .any(|u| u.contains_key("sessionsStarted")));
}

#[tokio::test]
async fn a_pooled_session_runs_with_the_reserved_owners_login_and_the_login_goes_with_the_run() {
    let (app, fake, clock) = world().await;
    let start = T0 + HOUR;
    let id = booked(&app, BORROWER, "pooled", start, start + HOUR).await;
    sweep_at(&app, &clock, start).await;
    assert_eq!(text(&session(&fake, &id), "status").as_deref(), Some("active"));
    let borrowed = format!("foundry-credentials-{BORROWER}-session");
    let secret = fake.secrets.secret(&borrowed).expect("the borrowed login");
    let login: Value = serde_json::from_str(secret.value.expose()).unwrap();
    assert_eq!(login["username"], "owner@example.com");
    assert_eq!(login["password"], "owner-Pa55word");
    let own: Value = serde_json::from_str(
        fake.secrets
            .secret(&format!("foundry-credentials-{BORROWER}"))
            .unwrap()
            .value
            .expose(),
    )
    .unwrap();
    assert_eq!(
        login["admin_key"], own["admin_key"],
        "the borrower's own admin key, never a constant"
    );
    let def = fake
        .ecs
        .task_definitions()
        .into_iter()
        .rev()
        .find(|d| d.family == format!("foundry-{BORROWER}"))
        .unwrap();
    let refs: Vec<&str> = def.definition.containers[0]
        .secrets
        .iter()
        .map(|(_, v)| v.as_str())
        .collect();
    assert!(
        !refs.is_empty() && refs.iter().all(|r| r.starts_with(&secret.arn)),
        "{refs:?}"
    );
    let (_, status) = invoke(&app, ev("status", BORROWER)).await;
    assert_eq!(status["licenseType"], "pooled");

    assert_eq!(invoke(&app, ev("stop", BORROWER)).await.0, 200);
    assert!(
        fake.secrets.secret(&borrowed).is_none(),
        "the owner's login does not outlive the run"
    );
    assert_eq!(text(&session(&fake, &id), "status").as_deref(), Some("completed"));
    assert_eq!(
        text(&reservation_of(&fake, &id), "status").as_deref(),
        Some("completed")
    );
}

#[tokio::test]
async fn a_session_start_stops_the_owners_on_demand_server_then_and_not_at_booking() {
    let (app, fake, clock) = world().await;
    assert_eq!(invoke(&app, ev("start", OWNER)).await.0, 200);
    let start = T0 + 3 * HOUR;
    let id = booked(&app, BORROWER, "pooled", start, start + HOUR).await;
    assert_eq!(fake.ecs.running_tasks().len(), 1, "booking stops nothing");
    let body = sweep_at(&app, &clock, start).await;
    assert_eq!(
        (body["sessionsStarted"].clone(), body["conflictsResolved"].clone()),
        (json!(1), json!(1))
    );
    let owner = fake.dynamo.item(INSTANCES, OWNER).unwrap();
    assert_eq!(text(&owner, "status").as_deref(), Some("stopped"));
    assert_eq!(fake.ecs.running_tasks().len(), 1, "one server on the license");
    assert_eq!(text(&session(&fake, &id), "status").as_deref(), Some("active"));
    // While the borrower runs on it, the owner cannot start on demand.
    assert_eq!(
        invoke(&app, ev("start", OWNER)).await,
        (
            500,
            json!({"error":"Internal error: A scheduled session is currently using this license"})
        )
    );
    // Past the session's end its server runs on until it is stopped (up to an hour of
    // grace): the license is still in use.
    clock.set(start + HOUR + 60);
    assert_eq!(invoke(&app, ev("start", OWNER)).await.0, 500);
    assert_eq!(fake.ecs.running_tasks().len(), 1, "one server on the license");
    assert_eq!(invoke(&app, ev("stop", BORROWER)).await.0, 200);
    assert_eq!(
        invoke(&app, ev("start", OWNER)).await.0,
        200,
        "free once the borrower stopped"
    );
}

#[tokio::test]
async fn a_session_that_fails_to_start_is_cancelled_with_its_reservation() {
    let (app, fake, clock) = world().await;
    let start = T0 + HOUR;
    let id = booked(&app, OWNER, "byol", start, start + HOUR).await;
    fake.faults.fail_always(ops::RUN_TASK, AwsErrorKind::Other);
    let body = sweep_at(&app, &clock, start).await;
    assert_eq!(body["sessionsStarted"], 0);
    let item = session(&fake, &id);
    assert_eq!(text(&item, "status").as_deref(), Some("cancelled"));
    assert_eq!(text(&item, "cancelReason").as_deref(), Some("start-failed"));
    assert_eq!(
        text(&reservation_of(&fake, &id), "status").as_deref(),
        Some("cancelled")
    );
    assert!(fake.ecs.running_tasks().is_empty());
}

#[tokio::test]
async fn a_session_whose_end_passed_while_it_waited_is_expired() {
    let (app, fake, clock) = world().await;
    let id = booked(&app, OWNER, "byol", T0 + HOUR, T0 + 2 * HOUR).await;
    sweep_at(&app, &clock, T0 + 3 * HOUR).await;
    let item = session(&fake, &id);
    assert_eq!(text(&item, "status").as_deref(), Some("cancelled"));
    assert_eq!(text(&item, "cancelReason").as_deref(), Some("expired"));
    assert!(fake.ecs.tasks().is_empty());
}

#[tokio::test]
async fn start_and_end_scheduled_session_answer_the_contracts_shapes() {
    let (app, fake, clock) = world().await;
    let start = T0 + HOUR;
    let id = booked(&app, OWNER, "byol", start, start + HOUR).await;
    let call = |action: &str| json!({"action":action,"userId":"system","sessionId":id});
    assert_eq!(
        invoke(&app, call("start-scheduled-session")).await,
        (
            200,
            json!({"success":false,"message":"Session start time has not arrived"})
        )
    );
    assert_eq!(
        invoke(&app, call("end-scheduled-session")).await,
        (200, json!({"success":false,"message":"Session is not active"}))
    );
    clock.set(start);
    assert_eq!(
        invoke(&app, call("start-scheduled-session")).await,
        (
            200,
            json!({"success":true,"message":"Scheduled session started successfully","instanceUrl":"https://owner.foundry.example.com"})
        )
    );
    assert_eq!(
        invoke(&app, call("start-scheduled-session")).await,
        (
            200,
            json!({"success":false,"message":"Session is not in scheduled state"})
        )
    );
    assert_eq!(
        invoke(&app, call("end-scheduled-session")).await,
        (
            200,
            json!({"success":true,"message":"Scheduled session ended successfully"})
        )
    );
    assert_eq!(text(&session(&fake, &id), "status").as_deref(), Some("completed"));
    assert!(fake.ecs.running_tasks().is_empty());
    assert_eq!(
        invoke(
            &app,
            json!({"action":"start-scheduled-session","userId":"system","sessionId":"nope"})
        )
        .await,
        (200, json!({"success":false,"message":"Session not found"}))
    );
}

#[tokio::test]
async fn cancelling_an_active_session_stops_its_server() {
    let (app, fake, clock) = world().await;
    let id = booked(&app, OWNER, "byol", T0 + HOUR, T0 + 2 * HOUR).await;
    sweep_at(&app, &clock, T0 + HOUR).await;
    assert_eq!(fake.ecs.running_tasks().len(), 1);
    let (code, _) = invoke(&app, json!({"action":"cancel-session","userId":OWNER,"sessionId":id})).await;
    assert_eq!(code, 200);
    assert!(fake.ecs.running_tasks().is_empty());
    assert_eq!(text(&session(&fake, &id), "status").as_deref(), Some("cancelled"));
}

// ------------------------------------------------------------------ owners and sharing

#[tokio::test]
async fn an_owner_who_leaves_cancels_the_sessions_others_booked_on_the_license() {
    let (app, fake, _) = world().await;
    let theirs = booked(&app, BORROWER, "pooled", T0 + HOUR, T0 + 2 * HOUR).await;
    let (code, body) = invoke(&app, ev("destroy", OWNER)).await;
    assert_eq!(code, 200, "{body}");
    let item = session(&fake, &theirs);
    assert_eq!(text(&item, "status").as_deref(), Some("cancelled"));
    assert_eq!(text(&item, "cancelReason").as_deref(), Some("owner-left"));
}

#[tokio::test]
async fn an_immediate_stop_withdraws_the_license_and_its_bookings() {
    let (app, fake, _) = world().await;
    let theirs = booked(&app, BORROWER, "pooled", T0 + HOUR, T0 + 2 * HOUR).await;
    let (code, body) = invoke(
        &app,
        json!({"action":"manage-license-state","userId":OWNER,"licenseStateOperation":"immediate_stop"}),
    )
    .await;
    assert_eq!(
        (code, body),
        (
            200,
            json!({"success":true,"message":"License sharing stopped immediately","licenseSharingState":"inactive"})
        )
    );
    assert_eq!(text(&session(&fake, &theirs), "status").as_deref(), Some("cancelled"));
    let pool = fake.dynamo.item(POOLS, &format!("byol-{OWNER}")).unwrap();
    assert_eq!(pool["isActive"], AttributeValue::Bool(false));
}

#[tokio::test]
async fn a_scheduled_sharing_stop_is_carried_out_when_the_last_booked_session_ends() {
    let (app, fake, clock) = world().await;
    let theirs = booked(&app, BORROWER, "pooled", T0 + HOUR, T0 + 2 * HOUR).await;
    let op = |o: &str| json!({"action":"manage-license-state","userId":OWNER,"licenseStateOperation":o});
    let (_, body) = invoke(&app, op("schedule_stop_after_sessions")).await;
    assert_eq!(
        body,
        json!({"success":true,"message":"License sharing scheduled to stop after current sessions end","licenseSharingState":"scheduled_stop"})
    );
    // No new bookings on it meanwhile.
    let (_, body) = invoke(&app, schedule(BORROWER, "pooled", T0 + 5 * HOUR, T0 + 6 * HOUR)).await;
    assert_eq!(body["success"], false);
    sweep_at(&app, &clock, T0 + HOUR).await;
    assert_eq!(text(&session(&fake, &theirs), "status").as_deref(), Some("active"));
    assert_eq!(invoke(&app, ev("stop", BORROWER)).await.0, 200);
    let owner = fake.dynamo.item(INSTANCES, OWNER).unwrap();
    assert_eq!(owner["allowLicenseSharing"], AttributeValue::Bool(false));
    assert_eq!(text(&owner, "licenseSharingState").as_deref(), Some("inactive"));
}

#[tokio::test]
async fn set_license_sharing_patches_only_what_it_names_and_never_the_license_type() {
    let (app, fake, _) = world().await;
    let (code, body) = invoke(
        &app,
        json!({"action":"set-license-sharing","userId":BORROWER,"allowLicenseSharing":false}),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let item = fake.dynamo.item(INSTANCES, BORROWER).unwrap();
    assert_eq!(
        text(&item, "licenseType").as_deref(),
        Some("pooled"),
        "not turned into byol"
    );
    assert!(item.contains_key("maxConcurrentUsers"), "an omitted field is kept");
    let (code, body) = invoke(
        &app,
        json!({"action":"set-license-sharing","userId":OWNER,"licenseType":"byol","allowLicenseSharing":false}),
    )
    .await;
    assert_eq!(
        (code, body),
        (
            200,
            json!({"message":"License sharing settings updated","licenseType":"byol","allowLicenseSharing":false,"instanceFound":true})
        )
    );
    let pool = fake.dynamo.item(POOLS, &format!("byol-{OWNER}")).unwrap();
    assert_eq!(pool["isActive"], AttributeValue::Bool(false));
    let owner = fake.dynamo.item(INSTANCES, OWNER).unwrap();
    assert_eq!(owner["maxConcurrentUsers"], AttributeValue::N("1".into()), "kept");
    invoke(
        &app,
        json!({"action":"set-license-sharing","userId":OWNER,"allowLicenseSharing":true,"maxConcurrentUsers":2}),
    )
    .await;
    let pool = fake.dynamo.item(POOLS, &format!("byol-{OWNER}")).unwrap();
    assert_eq!(pool["isActive"], AttributeValue::Bool(true));
    assert_eq!(pool["maxConcurrentUsers"], AttributeValue::N("2".into()));
}

#[tokio::test]
async fn the_license_wide_actions_list_and_cancel_the_bookings_of_a_license() {
    let (app, fake, _) = world().await;
    let a = booked(&app, BORROWER, "pooled", T0 + HOUR, T0 + 2 * HOUR).await;
    let b = booked(&app, OWNER, "byol", T0 + 3 * HOUR, T0 + 4 * HOUR).await;
    let license = format!("byol-{OWNER}");
    let (code, body) = invoke(
        &app,
        json!({"action":"get-sessions-for-license","userId":OWNER,"licenseId":license}),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["count"], 2);
    assert_eq!(body["licenseId"], license.as_str());
    let ids: Vec<&str> = body["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["sessionId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [a.as_str(), b.as_str()]);
    let (code, body) = invoke(
        &app,
        json!({"action":"cancel-sessions-for-license","userId":OWNER,"licenseId":license}),
    )
    .await;
    assert_eq!(
        (code, body),
        (
            200,
            json!({"message":"Cancelled 2 sessions","licenseId":license,"cancelledCount":2})
        )
    );
    assert!(fake
        .dynamo
        .items(SESSIONS)
        .iter()
        .all(|s| text(s, "status").as_deref() == Some("cancelled")));
}

#[tokio::test]
async fn the_on_demand_gate_refuses_a_start_half_an_hour_before_the_owners_session() {
    let (app, _, clock) = world().await;
    booked(&app, OWNER, "byol", T0 + HOUR, T0 + 2 * HOUR).await;
    clock.set(T0 + HOUR - 1_800);
    assert_eq!(
        invoke(&app, ev("start", OWNER)).await,
        (
            500,
            json!({"error":"Internal error: A scheduled session is about to start using this license"})
        )
    );
}

#[tokio::test]
async fn the_original_sessions_without_a_ledger_still_block_their_windows() {
    let (app, fake, _) = world().await;
    let mut legacy = std::collections::HashMap::new();
    for (k, v) in [
        ("sessionId", s("legacy-1")),
        ("userId", s(BORROWER)),
        ("licenseId", s(&format!("byol-{OWNER}"))),
        ("licenseType", s("pooled")),
        ("status", s("scheduled")),
        ("startTime", AttributeValue::N((T0 + HOUR).to_string())),
        ("endTime", AttributeValue::N((T0 + 2 * HOUR).to_string())),
    ] {
        legacy.insert(k.to_string(), v);
    }
    fake.dynamo.put_raw(SESSIONS, "sessionId", legacy);
    let (_, body) = invoke(&app, schedule(OWNER, "byol", T0 + HOUR, T0 + 3 * HOUR)).await;
    assert_eq!(body["success"], false, "{body}");
    booked(&app, OWNER, "byol", T0 + 2 * HOUR, T0 + 3 * HOUR).await;
}

#[tokio::test]
async fn sharing_without_an_instance_refreshes_an_existing_pool_entry_and_never_makes_one() {
    let (app, fake, _) = world().await;
    let ghost = "100000000000000033";
    let license = format!("byol-{ghost}");
    fake.dynamo.put_raw(
        POOLS,
        "licenseId",
        [
            ("licenseId", AttributeValue::S(license.clone())),
            ("ownerId", AttributeValue::S(ghost.into())),
            ("ownerUsername", AttributeValue::S("ghost".into())),
            ("isActive", AttributeValue::Bool(false)),
            ("maxConcurrentUsers", AttributeValue::N("1".into())),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect(),
    );
    let share = |uid: &str| json!({"action":"set-license-sharing","userId":uid,"allowLicenseSharing":true,"maxConcurrentUsers":3});
    assert_eq!(invoke(&app, share(ghost)).await.0, 200);
    let pool = fake.dynamo.item(POOLS, &license).unwrap();
    assert_eq!(
        pool["isActive"],
        AttributeValue::Bool(true),
        "the entry is offered again"
    );
    assert_eq!(pool["maxConcurrentUsers"], AttributeValue::N("3".into()));
    assert_eq!(text(&pool, "ownerUsername").as_deref(), Some("ghost"));

    let nobody = "100000000000000044";
    assert_eq!(invoke(&app, share(nobody)).await.0, 200);
    assert!(
        fake.dynamo.item(POOLS, &format!("byol-{nobody}")).is_none(),
        "no entry is made up"
    );
}

#[tokio::test]
async fn reactivating_sharing_brings_back_a_pool_entry_that_was_removed() {
    let (app, fake, _) = world().await;
    let op = |o: &str| json!({"action":"manage-license-state","userId":OWNER,"licenseStateOperation":o});
    assert_eq!(invoke(&app, op("immediate_stop")).await.0, 200);
    let license = format!("byol-{OWNER}");
    assert!(fake.dynamo.delete_raw(POOLS, &license));
    let (code, body) = invoke(&app, op("reactivate_sharing")).await;
    assert_eq!(code, 200, "{body}");
    let pool = fake.dynamo.item(POOLS, &license).expect("the entry is made again");
    assert_eq!(pool["isActive"], AttributeValue::Bool(true));
    assert_eq!(text(&pool, "ownerId").as_deref(), Some(OWNER));
}
