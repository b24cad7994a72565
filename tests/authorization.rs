//! Who may call what: every action × {the owner, another user, an admin, the system},
//! with admins configured and without. A refusal is a 403 that changes nothing.

mod fake_env;

use std::collections::BTreeMap;

use fake_env::*;
use foundry_lambda::app::App;
use foundry_lambda::config::{test_vars, Config};
use foundry_lambda::event::Action;
use foundry_lambda::testing::{fake_app_with, invoke, FakeAws};
use serde_json::{json, Value};

const OTHER: &str = "223456789012345670";
const ADMIN: &str = "000000000000000001";
const SYSTEM: &str = "system";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Caller {
    Owner,
    Other,
    Admin,
    System,
}

impl Caller {
    fn id(self) -> &'static str {
        match self {
            Caller::Owner => UID,
            Caller::Other => OTHER,
            Caller::Admin => ADMIN,
            Caller::System => SYSTEM,
        }
    }
}

/// Who may call `action`, with admins configured (`admins`) or not.
fn allowed(action: &str, caller: Caller, admins: bool) -> bool {
    use Caller::*;
    let admin = caller == Admin && admins;
    match action {
        "admin-force-shutdown"
        | "admin-cancel-session"
        | "admin-cancel-all-sessions"
        | "admin-system-maintenance"
        | "admin-maintenance-reset"
        | "admin-reconcile"
        | "admin-backfill-run-index" => admin,
        "list-all" | "admin-overview" | "get-all-costs" | "shutdown-stats" | "send-notification" | "health-check" => {
            admin || caller == System
        }
        // The EventBridge schedules, and the rule on the cluster's task-state events.
        "auto-shutdown-check" | "prepare-sessions" | "ecs-task-state-change" => caller == System,
        "get-sessions-for-license"
        | "cancel-sessions-for-license"
        | "start-scheduled-session"
        | "end-scheduled-session" => admin || caller == System || caller == Owner,
        "cancel-session" => admin || caller == Owner,
        // The event names the owner's backups (targetUserId): the owner, or an admin.
        "list-backups" | "restore-backup" => admin || caller == Owner,
        // Anyone; the answer itself shows other users' entries only to an admin or the system.
        "license-pool-status" => true,
        // Own records: the caller's sessions, the caller's "play now" window.
        "get-scheduled-sessions" | "request-license" | "release-license" => true,
        // The caller's own notification setting.
        "set-notifications" => true,
        // Every other action acts on the caller's own records only.
        _ => true,
    }
}

/// Whether `body` is a 400 its action answers to an allowed caller in this world: no
/// caller here is a pooled user, so `request-license` and `release-license` refuse them.
fn documented_400(action: &str, body: &Value) -> bool {
    let error = body["error"].as_str().unwrap_or_default();
    match action {
        "request-license" => [
            "User must have an instance to request a license",
            "Only pooled license users request a license; a BYOL instance starts on its own license with 'start'",
        ]
        .contains(&error),
        "release-license" => error == "You hold no license to release: 'request-license' assigns one",
        _ => false,
    }
}

/// The event of `action` from `caller`, aimed at the owner's records where it names any.
fn event(action: &str, caller: Caller, session: &str) -> Value {
    let mut e = json!({"action": action, "userId": caller.id()});
    let start = T0 + 7_200;
    let extra = match action {
        "create" => json!({"sanitizedUsername":"newname","foundryUsername":"u","foundryPassword":"p"}),
        "update-version" => json!({"foundryVersion":"12"}),
        "schedule-session" | "check-availability" => {
            json!({"startTime":start,"endTime":start + 3_600,"licenseType":"byol"})
        }
        "cancel-session" | "start-scheduled-session" | "end-scheduled-session" | "admin-cancel-session" => {
            json!({"sessionId": session})
        }
        "manage-license-state" => json!({"licenseStateOperation":"cancel_scheduled_stop"}),
        "set-license-sharing" => json!({"allowLicenseSharing":true}),
        "admin-force-shutdown" => json!({"targetUserId": UID, "forceReason": "test"}),
        "list-backups" => json!({"targetUserId": UID}),
        "restore-backup" => json!({"targetUserId": UID, "backupId": format!("{UID}/v1")}),
        "get-sessions-for-license" | "cancel-sessions-for-license" => json!({"licenseId": format!("byol-{UID}")}),
        "send-notification" => json!({"notificationType":"session-ready","targetUserId":UID}),
        "kofi-webhook" => json!({"body": json!({"verification_token":"kofi-test-token","message_id":"m-1",
                                                 "type":"Donation","amount":"3.00","currency":"USD",
                                                 "from_name":"Ann","message":"Discord: 42"}).to_string()}),
        _ => json!({}),
    };
    if let (Some(e), Some(extra)) = (e.as_object_mut(), extra.as_object()) {
        e.extend(extra.clone());
    }
    e
}

/// A world: the owner's running instance, shared license and booked session.
async fn world(admins: bool) -> (App, FakeAws, String) {
    let mut vars: Vec<(&str, &str)> = test_vars()
        .into_iter()
        .filter(|(k, _)| *k != "ADMIN_USER_IDS")
        .collect();
    if admins {
        vars.push(("ADMIN_USER_IDS", ADMIN));
    }
    vars.extend([
        ("BACKUPS", "on"),
        ("BACKUP_BUCKET", "vtt-world-backups-test"),
        ("BACKUP_TASK_ROLE_ARN", "arn:aws:iam::123456789012:role/backup"),
    ]);
    let config = Config::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string()))
        .expect("a complete configuration");
    let (app, fake, _) = fake_app_with(T0, config);
    fake.s3.put_version(
        "vtt-world-backups-test",
        &format!("{UID}/world.tar.gz"),
        10,
        T0 - 60,
        &[("cause", "run-end")],
    );
    let mut create = create_event(UID, "alice");
    create["allowLicenseSharing"] = json!(true);
    assert_eq!(invoke(&app, create).await.0, 200);
    assert_eq!(invoke(&app, ev("start", UID)).await.0, 200);
    let (_, body) = invoke(
        &app,
        json!({"action":"schedule-session","userId":UID,"startTime":T0 + 36_000,"endTime":T0 + 39_600,"licenseType":"byol"}),
    )
    .await;
    let session = body["sessionId"].as_str().expect("a session").to_string();
    (app, fake, session)
}

/// Every table's items, for "nothing changed".
fn snapshot(fake: &FakeAws) -> BTreeMap<String, String> {
    fake.dynamo
        .table_names()
        .into_iter()
        .map(|t| {
            let mut items: Vec<String> = fake.dynamo.items(&t).iter().map(|i| format!("{i:?}")).collect();
            items.sort();
            (t, items.join("\n"))
        })
        .collect()
}

#[tokio::test]
async fn every_action_for_every_caller_is_allowed_or_refused_and_a_refusal_changes_nothing() {
    let mut refused = 0;
    for admins in [true, false] {
        for action in Action::NAMES {
            for caller in [Caller::Owner, Caller::Other, Caller::Admin, Caller::System] {
                let (app, fake, session) = world(admins).await;
                let before = snapshot(&fake);
                let calls = fake.faults.calls().len();
                let (code, body) = invoke(&app, event(action, caller, &session)).await;
                let expect = allowed(action, caller, admins);
                let case = format!("{action} by {caller:?} (admins configured: {admins}): {code} {body}");
                if expect {
                    assert_ne!(code, 403, "{case}");
                    if code == 400 {
                        assert!(
                            documented_400(action, &body),
                            "an allowed call got a 400 its action does not document: {case}"
                        );
                    }
                } else {
                    refused += 1;
                    assert_eq!(code, 403, "{case}");
                    assert!(body["error"].as_str().is_some_and(|m| !m.is_empty()), "{case}");
                    assert_eq!(snapshot(&fake), before, "a refusal changed a table: {case}");
                    // A refusal decided on the caller alone makes no AWS call; one that
                    // needed the session's owner read the session, and nothing else.
                    let made: Vec<String> = fake.faults.calls()[calls..].to_vec();
                    assert!(made.iter().all(|c| c == "GetItem"), "{case}: {made:?}");
                }
                if caller == Caller::Other && expect {
                    let owner = fake.dynamo.item(INSTANCES, UID);
                    assert!(
                        owner.is_some_and(|i| i.get("status")
                            == Some(&foundry_lambda::managers::dynamodb::AttributeValue::S("running".into()))),
                        "another user's call touched the owner's server: {case}"
                    );
                }
            }
        }
    }
    assert!(refused > 40, "the matrix refuses {refused} calls");
}

#[tokio::test]
async fn without_admins_the_destructive_actions_say_they_are_disabled() {
    let (app, _, _) = world(false).await;
    let (code, body) = invoke(&app, event("admin-system-maintenance", Caller::Admin, "")).await;
    assert_eq!(
        (code, body),
        (
            403,
            json!({"error":"admin-system-maintenance is disabled: no admin is configured (ADMIN_USER_IDS is empty)"})
        )
    );
}
