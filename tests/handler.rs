//! The invocation contract on fakes: every fixture in `events/` parses and dispatches,
//! the read-only actions answer in the contract's shapes, and secrets never reach the log.

use std::path::Path;

use foundry_lambda::app::Ctx;
use foundry_lambda::managers::dynamodb::AttributeValue;
use foundry_lambda::testing::{fake_app, invoke};
use serde_json::{json, Value};

const T0: i64 = 1_795_773_600; // 2026-11-27T10:00:00Z
const UID: &str = "123456789012345678";

fn fixtures() -> Vec<(String, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("events");
    let mut out: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .expect("events/ exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&p).expect("readable fixture");
            (name, serde_json::from_str(&text).expect("fixture is JSON"))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[tokio::test]
async fn every_fixture_parses_and_dispatches() {
    let all = fixtures();
    assert!(
        all.len() >= 40,
        "one fixture per action and envelope kind: {}",
        all.len()
    );
    let mut actions_seen = std::collections::BTreeSet::new();
    for (name, event) in all {
        let (app, _fake, _) = fake_app(T0);
        let handled = app.handle(&event, &Ctx::default()).await;
        let body = handled.envelope.body_json().expect("the body is JSON text");
        match name.as_str() {
            "guard-empty" => {
                assert_eq!(handled.envelope.status_code, 400);
                assert_eq!(body, json!({"error":"Missing required parameters: action, userId"}));
            }
            "unknown-action" => {
                assert_eq!(handled.envelope.status_code, 400);
                assert_eq!(body, json!({"error":"Unknown action: teleport-instance"}));
            }
            _ => {
                assert_ne!(handled.action, "(invalid)", "{name} did not parse: {body}");
                // In an empty world these two answer their documented 400 (no instance; no
                // license held), and list-backups and restore-backup their 400 of a deployment
                // without backups: they parsed and dispatched all the same.
                if !matches!(
                    name.as_str(),
                    "request-license" | "release-license" | "list-backups" | "restore-backup"
                ) {
                    assert_ne!(handled.envelope.status_code, 400, "{name}: {body}");
                }
                actions_seen.insert(handled.action);
            }
        }
    }
    for name in foundry_lambda::event::Action::NAMES {
        assert!(actions_seen.contains(name), "no fixture dispatches {name}");
    }
}

#[tokio::test]
async fn envelopes_are_byte_exact_for_the_guard_and_unknown_actions() {
    let (app, _, _) = fake_app(T0);
    let out = app.handle(&json!({}), &Ctx::default()).await;
    assert_eq!(
        serde_json::to_string(&out.envelope).unwrap(),
        r#"{"statusCode":400,"headers":{"Content-Type":"application/json"},"body":"{\"error\":\"Missing required parameters: action, userId\"}"}"#
    );
    let out = app
        .handle(&json!({"action":"teleport-instance","userId":"1"}), &Ctx::default())
        .await;
    assert_eq!(
        serde_json::to_string(&out.envelope).unwrap(),
        r#"{"statusCode":400,"headers":{"Content-Type":"application/json"},"body":"{\"error\":\"Unknown action: teleport-instance\"}"}"#
    );
}

#[tokio::test]
async fn a_wrong_field_type_is_a_400_naming_the_field() {
    let (app, _, _) = fake_app(T0);
    let (code, body) = invoke(
        &app,
        json!({"action":"create","userId":UID,"maxConcurrentUsers":"many"}),
    )
    .await;
    assert_eq!(code, 400);
    assert!(
        body["error"].as_str().unwrap().contains("'maxConcurrentUsers'"),
        "{body}"
    );
}

#[tokio::test]
async fn list_all_of_an_empty_table() {
    let (app, _, _) = fake_app(T0);
    assert_eq!(
        invoke(&app, json!({"action":"list-all","userId":"system"})).await,
        (200, json!({"instances":[],"count":0}))
    );
}

fn seed_session(fake: &foundry_lambda::testing::FakeAws, id: &str, uid: &str, start: i64, status: &str) {
    let mut item = std::collections::HashMap::new();
    let s = |v: &str| AttributeValue::S(v.to_string());
    let n = |v: i64| AttributeValue::N(v.to_string());
    item.insert("sessionId".to_string(), s(id));
    item.insert("userId".to_string(), s(uid));
    item.insert("username".to_string(), s("alice"));
    item.insert("licenseType".to_string(), s("byol"));
    item.insert("licenseId".to_string(), s(&format!("byol-{uid}")));
    item.insert("startTime".to_string(), n(start));
    item.insert("endTime".to_string(), n(start + 3600));
    item.insert("status".to_string(), s(status));
    item.insert("title".to_string(), s("Gaming Session"));
    item.insert("createdAt".to_string(), n(T0 - 100));
    item.insert("updatedAt".to_string(), n(T0 - 100));
    fake.dynamo
        .put_raw("foundry-vtt-instances-scheduled-sessions", "sessionId", item);
}

#[tokio::test]
async fn list_sessions_returns_every_session_of_the_caller() {
    let (app, fake, _) = fake_app(T0);
    seed_session(&fake, "s-1", UID, T0 + 7200, "scheduled");
    seed_session(&fake, "s-2", UID, T0 - 7200, "completed");
    seed_session(&fake, "s-3", "999", T0 + 7200, "scheduled");
    let (code, body) = invoke(&app, json!({"action":"list-sessions","userId":UID})).await;
    assert_eq!(code, 200);
    assert_eq!(body["count"], 2);
    let ids: Vec<&str> = body["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["sessionId"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&"s-1") && ids.contains(&"s-2"));
    let s1 = body["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["sessionId"] == "s-1")
        .unwrap();
    assert_eq!(
        s1,
        &json!({"sessionId":"s-1","userId":UID,"username":"alice","licenseType":"byol","licenseId":format!("byol-{UID}"),
                "startTime":T0 + 7200,"endTime":T0 + 10800,"status":"scheduled","title":"Gaming Session",
                "createdAt":T0 - 100,"updatedAt":T0 - 100})
    );
}

#[tokio::test]
async fn status_reports_the_next_scheduled_session() {
    let (app, fake, _) = fake_app(T0);
    let (code, _) = invoke(
        &app,
        json!({"action":"create","userId":UID,"sanitizedUsername":"alice","foundryUsername":"u","foundryPassword":"p"}),
    )
    .await;
    assert_eq!(code, 200);
    seed_session(&fake, "later", UID, T0 + 90_000, "scheduled");
    seed_session(&fake, "sooner", UID, T0 + 9_000, "scheduled");
    seed_session(&fake, "cancelled", UID, T0 + 1_000, "cancelled");
    let (_, body) = invoke(&app, json!({"action":"status","userId":UID})).await;
    assert_eq!(body["nextScheduledSession"]["sessionId"], "sooner");
}

fn seed_instance(fake: &foundry_lambda::testing::FakeAws, uid: &str, status: &str, auto_shutdown_at: Option<i64>) {
    let mut item = std::collections::HashMap::new();
    item.insert("userId".to_string(), AttributeValue::S(uid.to_string()));
    item.insert("sanitizedUsername".to_string(), AttributeValue::S(format!("u{uid}")));
    item.insert("status".to_string(), AttributeValue::S(status.to_string()));
    if let Some(at) = auto_shutdown_at {
        item.insert("autoShutdownAt".to_string(), AttributeValue::N(at.to_string()));
    }
    if status == "running" || status == "starting" {
        // As a start writes it: the record is in the index of runs while it has a run.
        let shard = foundry_lambda::store::run_shard(uid);
        item.insert("runShard".to_string(), AttributeValue::N(shard.to_string()));
        let deadline = auto_shutdown_at.unwrap_or_default();
        item.insert("runDeadline".to_string(), AttributeValue::N(deadline.to_string()));
    }
    fake.dynamo.put_raw("foundry-vtt-instances", "userId", item);
}

#[tokio::test]
async fn shutdown_stats_answers_the_contracts_shape() {
    let (app, fake, _) = fake_app(T0);
    seed_instance(&fake, "1", "running", Some(T0 - 60));
    seed_instance(&fake, "2", "running", Some(T0 + 600));
    seed_instance(&fake, "3", "running", None);
    seed_instance(&fake, "4", "stopped", Some(T0 + 5));
    let (code, body) = invoke(&app, json!({"action":"shutdown-stats","userId":"system"})).await;
    assert_eq!(code, 200);
    assert_eq!(
        body,
        // "3" runs without a deadline and without a start time: the sweep stops it (no
        // server may run forever), so it counts as overdue.
        json!({"message":"Auto-shutdown statistics","stats":{"totalRunning":3,"scheduledForShutdown":2,"overdue":2,"nextShutdownIn":600}})
    );
}

fn seed_usage(
    fake: &foundry_lambda::testing::FakeAws,
    key: &str,
    hours: Option<&str>,
    donations: Option<&str>,
    donor: Option<&str>,
) {
    let mut item = std::collections::HashMap::new();
    item.insert("usageKey".to_string(), AttributeValue::S(key.to_string()));
    if let Some(h) = hours {
        item.insert("hoursThisMonth".to_string(), AttributeValue::N(h.to_string()));
    }
    if let Some(d) = donations {
        item.insert("donationsThisMonth".to_string(), AttributeValue::N(d.to_string()));
    }
    if let Some(n) = donor {
        item.insert("lastDonorName".to_string(), AttributeValue::S(n.to_string()));
    }
    fake.dynamo.put_raw("foundry-vtt-usage", "usageKey", item);
}

#[tokio::test]
async fn get_user_costs_answers_the_contracts_shape() {
    let (app, fake, _) = fake_app(T0);
    seed_usage(&fake, &format!("{UID}#2026-11"), Some("2.5"), Some("1"), Some("Jo"));
    seed_usage(&fake, &format!("{UID}#2026-10"), Some("99"), None, None);
    let (code, body) = invoke(&app, json!({"action":"get-user-costs","userId":UID})).await;
    assert_eq!(code, 200);
    assert_eq!(
        body,
        json!({"userId":UID,"hoursUsed":2.5,"totalCost":2.5,"uncoveredCost":1.5,"donationsReceived":1,"lastDonorName":"Jo","costPerHour":1})
    );
    let (_, body) = invoke(&app, json!({"action":"get-user-costs","userId":"555"})).await;
    assert_eq!(
        body,
        json!({"userId":"555","hoursUsed":0,"totalCost":0,"uncoveredCost":0,"donationsReceived":0,"costPerHour":1})
    );
}

#[tokio::test]
async fn get_all_costs_aggregates_the_current_month() {
    let (app, fake, _) = fake_app(T0);
    seed_usage(&fake, "1#2026-11", Some("3"), Some("1"), None);
    seed_usage(&fake, "2#2026-11", Some("1"), Some("5"), None);
    seed_usage(&fake, "3#2026-11", Some("0"), None, None);
    seed_usage(&fake, "4#2026-10", Some("50"), Some("50"), None);
    let (code, body) = invoke(&app, json!({"action":"get-all-costs","userId":"system"})).await;
    assert_eq!(code, 200);
    assert_eq!(
        body,
        json!({"totalUsers":2,"totalHours":4,"totalCosts":4,"totalDonations":6,"totalUncovered":0,
               "topContributors":[{"userId":"2","donations":5,"uncovered":0},{"userId":"1","donations":1,"uncovered":2}]})
    );
}

#[tokio::test]
async fn send_notification_acknowledges_or_names_the_missing_fields() {
    let (app, _, _) = fake_app(T0);
    let (code, body) = invoke(
        &app,
        json!({"action":"send-notification","userId":"system","notificationType":"session-ready","targetUserId":UID}),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(
        body,
        json!({"success":true,"message":"Notification queued successfully","notificationType":"session-ready","targetUserId":UID})
    );
    let (code, body) = invoke(&app, json!({"action":"send-notification","userId":"system"})).await;
    assert_eq!(
        (code, body),
        (
            500,
            json!({"error":"Internal error: Missing required fields: notificationType, targetUserId"})
        )
    );
}

#[tokio::test]
async fn an_admin_action_of_a_non_admin_is_refused_before_anything_is_done() {
    let (app, fake, _) = fake_app(T0);
    let (code, body) = invoke(&app, json!({"action":"admin-system-maintenance","userId":"1"})).await;
    assert_eq!(
        (code, body),
        (403, json!({"error":"Only an admin may call admin-system-maintenance"}))
    );
    assert!(
        fake.faults.calls().is_empty(),
        "nothing was done: {:?}",
        fake.faults.calls()
    );
}

#[tokio::test]
async fn http_invocations_may_only_post_kofi_webhooks() {
    let (app, _, _) = fake_app(T0);
    let event = json!({"version":"2.0","routeKey":"$default","rawPath":"/","headers":{"content-type":"application/json"},
                       "requestContext":{"http":{"method":"POST"}},"body":"{\"action\":\"list-all\",\"userId\":\"system\"}","isBase64Encoded":false});
    let (code, body) = invoke(&app, event).await;
    assert_eq!(code, 403);
    assert_eq!(
        body["error"],
        "Action 'list-all' cannot be called over HTTP; only kofi-webhook can"
    );
}
