//! The admin actions on the fakes: their answers field by field, and what they change.

mod fake_env;

use std::time::Duration;

use fake_env::*;
use foundry_lambda::clock::Clock;
use foundry_lambda::managers::dynamodb::AttributeValue;
use foundry_lambda::testing::{fake_app, invoke};
use serde_json::{json, Value};

const ADMIN: &str = "000000000000000001";
const SESSIONS: &str = "foundry-vtt-instances-scheduled-sessions";
const POOLS: &str = "foundry-vtt-instances-license-pool";

fn admin(action: &str, extra: Value) -> Value {
    let mut e = json!({"action": action, "userId": ADMIN, "forceReason": "maintenance window"});
    if let (Some(e), Some(x)) = (e.as_object_mut(), extra.as_object()) {
        e.extend(x.clone());
    }
    e
}

fn keys(v: &Value) -> Vec<String> {
    v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default()
}

async fn book(app: &foundry_lambda::app::App, uid: &str, start: i64) -> String {
    let (_, body) = invoke(
        app,
        json!({"action":"schedule-session","userId":uid,"startTime":start,"endTime":start + 3_600,"licenseType":"byol","sessionTitle":"Dragons"}),
    )
    .await;
    body["sessionId"].as_str().expect("booked").to_string()
}

#[tokio::test]
async fn the_overview_answers_every_member_of_the_spec() {
    let (app, fake, clock) = fake_app(T0);
    let mut sharing = create_event(UID, "alice");
    sharing["allowLicenseSharing"] = json!(true);
    assert_eq!(invoke(&app, sharing).await.0, 200);
    assert_eq!(invoke(&app, create_event(UID2, "bob")).await.0, 200);
    assert_eq!(invoke(&app, ev("start", UID2)).await.0, 200);
    let upcoming = book(&app, UID, T0 + 7_200).await;
    clock.advance(Duration::from_secs(1_800));
    assert_eq!(invoke(&app, ev("stop", UID2)).await.0, 200);
    assert_eq!(invoke(&app, ev("start", UID2)).await.0, 200);

    let (code, body) = invoke(&app, json!({"action":"admin-overview","userId":ADMIN})).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        keys(&body),
        [
            "timestamp",
            "summary",
            "instances",
            "sessions",
            "licenses",
            "activity",
            "autoShutdown"
        ]
    );
    assert_eq!(body["timestamp"], clock.now());
    assert_eq!(
        body["summary"],
        json!({"totalInstances":2,"runningInstances":1,"byolInstances":2,"pooledInstances":0,"sharedLicenses":1,
               "activeSessions":0,"upcomingSessions":1,"instancesWithTimers":1,"totalHoursThisMonth":0.5,
               "estimatedMonthlyCost":0.5})
    );
    let running = &body["instances"]["running"][0];
    assert_eq!(
        keys(running),
        [
            "userId",
            "username",
            "status",
            "licenseType",
            "startedAt",
            "autoShutdownAt",
            "foundryVersion"
        ]
    );
    assert_eq!(running["username"], "bob");
    assert_eq!(
        body["instances"]["stopped"],
        json!([]),
        "alice was never started: `created` is not `stopped`"
    );
    let s = &body["sessions"]["upcoming"][0];
    assert_eq!(
        keys(s),
        [
            "sessionId",
            "userId",
            "username",
            "title",
            "startTime",
            "endTime",
            "licenseType",
            "licenseId"
        ]
    );
    assert_eq!(s["sessionId"], upcoming.as_str());
    assert_eq!(
        body["licenses"]["pools"],
        json!([{"licenseId":format!("byol-{UID}"),"ownerId":UID,"ownerUsername":"alice","maxConcurrentUsers":1,"isActive":true}])
    );
    assert_eq!(keys(&body["activity"]), ["recentlyStarted", "recentlyUpdated"]);
    assert_eq!(
        keys(&body["autoShutdown"]),
        ["totalRunning", "scheduledForShutdown", "overdue", "nextShutdownIn"]
    );
    assert!(fake.dynamo.items(SESSIONS).len() == 1);
}

#[tokio::test]
async fn a_force_shutdown_stops_one_running_server() {
    let (app, fake, clock) = fake_app(T0);
    running(&app).await;
    let (code, body) = invoke(&app, admin("admin-force-shutdown", json!({"targetUserId":UID}))).await;
    let now = clock.now();
    assert_eq!(
        (code, body),
        (
            200,
            json!({"message":"Instance force shutdown completed","targetUserId":UID,"targetUsername":"alice",
                   "reason":"maintenance window","timestamp":now})
        )
    );
    assert!(fake.ecs.running_tasks().is_empty());
    assert_eq!(
        invoke(&app, admin("admin-force-shutdown", json!({"targetUserId":UID}))).await,
        (500, json!({"error":"Internal error: Instance is not running"}))
    );
    assert_eq!(
        invoke(&app, admin("admin-force-shutdown", json!({"targetUserId":"999"}))).await,
        (500, json!({"error":"Internal error: Target user instance not found"}))
    );
}

#[tokio::test]
async fn an_admin_cancels_any_session_once() {
    let (app, fake, clock) = fake_app(T0);
    created(&app).await;
    let id = book(&app, UID, T0 + 7_200).await;
    let (code, body) = invoke(&app, admin("admin-cancel-session", json!({"sessionId":id}))).await;
    let now = clock.now();
    assert_eq!(
        (code, body),
        (
            200,
            json!({"message":"Session cancelled successfully","sessionId":id,"userId":UID,"username":"alice",
                   "reason":"maintenance window","timestamp":now})
        )
    );
    let item = fake.dynamo.item(SESSIONS, &id).unwrap();
    assert_eq!(item["status"], AttributeValue::S("cancelled".into()));
    assert_eq!(
        invoke(&app, admin("admin-cancel-session", json!({"sessionId":id}))).await,
        (500, json!({"error":"Internal error: Session is already cancelled"}))
    );
}

#[tokio::test]
async fn the_bulk_actions_cancel_every_session_stop_every_server_and_leave_the_pool_alone() {
    let (app, fake, clock) = fake_app(T0);
    assert_eq!(
        invoke(&app, admin("admin-cancel-all-sessions", json!({}))).await,
        (
            200,
            json!({"message":"No active or scheduled sessions to cancel","cancelledCount":0,"timestamp":T0})
        )
    );
    let mut sharing = create_event(UID, "alice");
    sharing["allowLicenseSharing"] = json!(true);
    assert_eq!(invoke(&app, sharing).await.0, 200);
    // The owner withdrew the license from the pool: a reset must not offer it again.
    invoke(
        &app,
        json!({"action":"set-license-sharing","userId":UID,"allowLicenseSharing":false}),
    )
    .await;
    book(&app, UID, T0 + 7_200).await;
    book(&app, UID, T0 + 14_400).await;
    assert_eq!(invoke(&app, ev("start", UID)).await.0, 200);
    let (code, body) = invoke(&app, admin("admin-system-maintenance", json!({}))).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        keys(&body),
        [
            "message",
            "shutdownCount",
            "cancelledCount",
            "totalInstances",
            "totalSessions",
            "reason",
            "timestamp"
        ]
    );
    assert_eq!(
        (body["cancelledCount"].clone(), body["shutdownCount"].clone()),
        (json!(2), json!(1))
    );
    assert!(fake.ecs.running_tasks().is_empty());
    book(&app, UID, T0 + 20_000).await;
    let (code, body) = invoke(&app, admin("admin-maintenance-reset", json!({}))).await;
    let now = clock.now();
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        body,
        json!({"message":"Maintenance reset completed - sessions cancelled and reservations cleared; license pools left as their owners set them",
               "cancelledCount":1,"reservationsCancelled":0,"resetCount":0,"totalSessions":1,"totalLicensePools":0,
               "reason":"maintenance window","timestamp":now})
    );
    let pool = fake.dynamo.item(POOLS, &format!("byol-{UID}")).unwrap();
    assert_eq!(
        pool["isActive"],
        AttributeValue::Bool(false),
        "left as the owner set it"
    );
    assert!(fake
        .dynamo
        .items(SESSIONS)
        .iter()
        .all(|s| s["status"] == AttributeValue::S("cancelled".into())));
}

#[tokio::test]
async fn maintenance_reset_cancels_active_reservations_left_without_a_session_and_counts_them() {
    const RESERVATIONS: &str = "foundry-vtt-instances-license-reservations";
    let (app, fake, _) = fake_app(T0);
    let s = |v: &str| AttributeValue::S(v.to_string());
    let reservation = |id: &str, status: &str| {
        std::collections::HashMap::from([
            ("reservationId".to_string(), s(id)),
            ("licenseId".to_string(), s("pool-1")),
            ("sessionId".to_string(), s(&format!("gone-{id}"))),
            ("userId".to_string(), s(UID)),
            ("startTime".to_string(), AttributeValue::N((T0 + 3_600).to_string())),
            ("endTime".to_string(), AttributeValue::N((T0 + 7_200).to_string())),
            ("status".to_string(), s(status)),
        ])
    };
    fake.dynamo
        .put_raw(RESERVATIONS, "reservationId", reservation("r-orphan-1", "active"));
    fake.dynamo
        .put_raw(RESERVATIONS, "reservationId", reservation("r-orphan-2", "active"));
    fake.dynamo
        .put_raw(RESERVATIONS, "reservationId", reservation("r-done", "completed"));
    // The per-license ledger item that booking keeps in the same table is no reservation.
    fake.dynamo
        .put_raw(RESERVATIONS, "reservationId", reservation("license#pool-1", "active"));

    let (code, body) = invoke(&app, admin("admin-maintenance-reset", json!({}))).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["reservationsCancelled"], 2, "{body}");
    let status = |id: &str| fake.dynamo.item(RESERVATIONS, id).map(|i| i["status"].clone());
    assert_eq!(status("r-orphan-1"), Some(s("cancelled")));
    assert_eq!(status("r-orphan-2"), Some(s("cancelled")));
    assert_eq!(status("r-done"), Some(s("completed")), "only active ones change");
    assert_eq!(
        status("license#pool-1"),
        Some(s("active")),
        "the ledger item is left alone"
    );
}
