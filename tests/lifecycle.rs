//! The instance lifecycle on the in-memory fakes: responses field by field, faults at
//! every AWS step, races, deadlines and usage.

mod fake_env;

use std::collections::BTreeMap;

use foundry_lambda::app::Ctx;
use foundry_lambda::clock::Clock;
use foundry_lambda::error::AwsErrorKind;
use foundry_lambda::managers::dynamodb::AttributeValue;
use foundry_lambda::testing::{fake_app, invoke, invoke_with, FakeAws};
use serde_json::{json, Value};

use fake_env::*;

#[tokio::test]
async fn create_answers_every_spec_field_and_records_a_created_instance() {
    let (app, fake, _) = fake_app(T0);
    let body = created(&app).await;
    let obj = body.as_object().unwrap();
    let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "message",
            "userId",
            "status",
            "accessPointId",
            "targetGroupArn",
            "url",
            "adminKey",
            "s3BucketName",
            "s3BucketUrl"
        ]
    );
    assert_eq!(body["message"], "Instance created successfully");
    assert_eq!(body["userId"], UID);
    assert_eq!(body["status"], "created");
    assert!(body["accessPointId"].as_str().unwrap().starts_with("fsap-"));
    assert!(body["targetGroupArn"]
        .as_str()
        .unwrap()
        .contains("targetgroup/foundry-alice/"));
    assert_eq!(body["url"], "https://alice.foundry.example.com");
    assert_eq!(body["s3BucketName"], "foundry-alice-12345678");
    assert_eq!(
        body["s3BucketUrl"],
        "https://foundry-alice-12345678.s3.us-east-1.amazonaws.com"
    );
    let key = body["adminKey"].as_str().unwrap();
    assert!(
        key.len() >= 26 && key.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()),
        "{key}"
    );

    let item = fake.dynamo.item(INSTANCES, UID).unwrap();
    assert_eq!(item["status"], AttributeValue::S("created".into()));
    assert_eq!(item["foundryVersion"], AttributeValue::S("13".into()));
    assert_eq!(item["albRulePriority"], AttributeValue::N("100".into()));
    assert!(
        !item.contains_key("s3SecretAccessKey"),
        "the S3 secret key is not stored in DynamoDB"
    );
    assert!(!item.contains_key("leaseId"));
    // One of each resource, and the DNS record points at the ALB.
    assert_eq!(fake.route53.records().len(), 1);
    assert_eq!(fake.route53.records()[0].name, "alice.foundry.example.com");
    assert_eq!(fake.iam.users(), ["foundry-alice-12345678"]);
    assert_eq!(fake.secrets.secrets(), ["foundry-credentials-123456789012345678"]);
}

#[tokio::test]
async fn the_s3_secret_key_lives_only_in_the_users_secret() {
    let (app, fake, _) = fake_app(T0);
    running(&app).await;
    let key = fake.iam.access_keys("foundry-alice-12345678").pop().unwrap();
    let secret = key.secret_access_key.expose().to_string();
    let secret_json = fake.secrets.secret("foundry-credentials-123456789012345678").unwrap();
    assert!(secret_json.value.expose().contains(&secret));
    for d in fake.ecs.task_definitions() {
        let text = format!("{:?}", d.definition);
        assert!(
            !text.contains(&secret),
            "task definition {} embeds the secret key",
            d.arn
        );
    }
    let td = fake
        .ecs
        .task_definitions()
        .into_iter()
        .find(|d| d.family == format!("foundry-{UID}"))
        .unwrap();
    let c = &td.definition.containers[0];
    assert_eq!(td.definition.containers.len(), 1, "no sidecar");
    assert!(c.environment.contains(&("FOUNDRY_AWS_CONFIG".into(), "true".into())));
    assert!(c
        .secrets
        .iter()
        .any(|(n, v)| n == "AWS_SECRET_ACCESS_KEY" && v.ends_with(":s3_secret_access_key::")));
    for item in fake.dynamo.items(INSTANCES) {
        assert!(!format!("{item:?}").contains(&secret));
    }
}

#[tokio::test]
async fn start_stop_status_and_destroy_answer_the_contracts_shapes() {
    let (app, fake, _) = fake_app(T0);
    let started = running(&app).await;
    assert_eq!(
        started
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        ["message", "userId", "status", "taskArn", "url"]
    );
    assert_eq!(started["message"], "Instance is running");
    assert_eq!(started["status"], "running");
    assert_eq!(started["url"], "https://alice.foundry.example.com");
    assert_eq!(
        fake.logs.groups(),
        [(format!("/aws/ecs/foundry-{UID}"), Some(3))],
        "the user's log group has a retention"
    );
    let task_arn = started["taskArn"].as_str().unwrap().to_string();

    // Routed: target registered, one rule for the host at the stored priority.
    let tg = fake.alb.target_groups().pop().unwrap();
    assert_eq!(tg.targets.len(), 1);
    let rules = fake.alb.rules(LISTENER);
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].host_headers, ["alice.foundry.example.com"]);
    assert_eq!(rules[0].priority, Some(100));

    let (code, status) = invoke(&app, ev("status", UID)).await;
    assert_eq!(code, 200, "{status}");
    assert_eq!(
        status
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        [
            "userId",
            "status",
            "createdAt",
            "updatedAt",
            "url",
            "adminKey",
            "foundryVersion",
            "s3BucketName",
            "s3BucketUrl",
            "licenseType",
            "allowLicenseSharing",
            "autoShutdownAt",
            "nextScheduledSession"
        ]
    );
    assert_eq!(status["status"], "running");
    assert_eq!(status["createdAt"], T0);
    assert_eq!(status["foundryVersion"], "13");
    assert_eq!(status["licenseType"], "byol");
    assert_eq!(status["allowLicenseSharing"], false);
    assert_eq!(status["nextScheduledSession"], Value::Null);
    let started_at = app.services.clock.now();
    assert_eq!(status["autoShutdownAt"], started_at + 21_600);

    let (code, stopped) = invoke(&app, ev("stop", UID)).await;
    assert_eq!(code, 200);
    assert_eq!(
        stopped,
        json!({"message":"Instance is stopped","userId":UID,"status":"stopped"})
    );
    assert_eq!(fake.ecs.task(&task_arn).unwrap().status, "STOPPED");
    assert!(fake.alb.rules(LISTENER).is_empty());
    assert!(fake.alb.target_groups().pop().unwrap().targets.is_empty());

    let (code, destroyed) = invoke(&app, ev("destroy", UID)).await;
    assert_eq!(code, 200, "{destroyed}");
    assert_eq!(
        destroyed,
        json!({"message":"Instance destroyed successfully","userId":UID,"cancelledSessionsCount":0})
    );
    assert!(leftovers(&fake).is_empty(), "{:?}", leftovers(&fake));
    let (code, gone) = invoke(&app, ev("status", UID)).await;
    assert_eq!(
        (code, gone),
        (500, json!({"error":"Internal error: Instance not found"}))
    );
    let (code, again) = invoke(&app, ev("destroy", UID)).await;
    assert_eq!(code, 200);
    assert_eq!(
        again,
        json!({"message":"No instance found to destroy","userId":UID,"instanceFound":false,"cancelledSessionsCount":0})
    );
}

#[tokio::test]
async fn full_round_trip_create_start_status_stop_start_destroy_leaves_nothing() {
    let (app, fake, _) = fake_app(T0);
    running(&app).await;
    assert_eq!(invoke(&app, ev("status", UID)).await.1["status"], "running");
    assert_eq!(invoke(&app, ev("stop", UID)).await.0, 200);
    let (code, again) = invoke(&app, ev("start", UID)).await;
    assert_eq!(code, 200, "{again}");
    // One task definition revision stays active per user.
    let active = fake
        .ecs
        .task_definitions()
        .into_iter()
        .filter(|d| d.active && d.family == format!("foundry-{UID}"))
        .count();
    assert_eq!(active, 1);
    assert_eq!(invoke(&app, ev("destroy", UID)).await.0, 200);
    assert!(leftovers(&fake).is_empty(), "{:?}", leftovers(&fake));
}

#[tokio::test]
async fn destroy_empties_a_bucket_that_holds_the_users_assets_then_deletes_it() {
    let (app, fake, _) = fake_app(T0);
    let created = created(&app).await;
    let bucket = created["s3BucketName"].as_str().unwrap().to_string();
    for key in ["worlds/map.webp", "tokens/hero.png"] {
        assert!(fake.s3.put_object(&bucket, key));
    }
    assert_eq!(invoke(&app, ev("destroy", UID)).await.0, 200);
    assert!(!fake.s3.buckets().contains(&bucket));
    assert!(leftovers(&fake).is_empty(), "{:?}", leftovers(&fake));
}

#[tokio::test]
async fn list_all_never_returns_admin_keys() {
    let (app, _fake, _) = fake_app(T0);
    created(&app).await;
    let (code, body) = invoke(&app, ev("list-all", "system")).await;
    assert_eq!(code, 200);
    assert_eq!(body["count"], 1);
    let inst = &body["instances"][0];
    assert_eq!(
        inst.as_object().unwrap().keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "userId",
            "sanitizedUsername",
            "status",
            "createdAt",
            "updatedAt",
            "url",
            "foundryVersion",
            "s3BucketName",
            "s3BucketUrl",
            "licenseType",
            "allowLicenseSharing",
            "maxConcurrentUsers"
        ]
    );
    assert!(inst.get("adminKey").is_none());
}

#[tokio::test]
async fn update_version_answers_the_contracts_shape_and_validates() {
    let (app, fake, _) = fake_app(T0);
    created(&app).await;
    let (code, body) = invoke(
        &app,
        json!({"action":"update-version","userId":UID,"foundryVersion":"13.346.0"}),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(
        body,
        json!({"message":"Version updated successfully","userId":UID,"foundryVersion":"13.346.0","note":"Restart your instance to use the new version"})
    );
    assert!(
        fake.ecs.run_requests().is_empty(),
        "13 → 13.346.0 keeps the owner: no reset task"
    );
    let (code, body) = invoke(
        &app,
        json!({"action":"update-version","userId":UID,"foundryVersion":"v14"}),
    )
    .await;
    assert_eq!(
        (code, body),
        (500, json!({"error":"Internal error: Invalid version format"}))
    );
    let (code, body) = invoke(
        &app,
        json!({"action":"update-version","userId":"999","foundryVersion":"12"}),
    )
    .await;
    assert_eq!(
        (code, body),
        (500, json!({"error":"Internal error: Instance not found"}))
    );
}

#[tokio::test]
async fn update_version_leaves_the_files_to_the_access_points_user_and_applies_at_the_next_start() {
    let (app, fake, _) = fake_app(T0);
    running(&app).await;
    let before_tasks = fake.ecs.tasks().len();
    for version in ["12", "13", "11"] {
        let (code, body) = invoke(
            &app,
            json!({"action":"update-version","userId":UID,"foundryVersion":version}),
        )
        .await;
        assert_eq!(code, 200, "{body}");
    }
    // No task re-owns the files: the access point runs every file operation as 1000:1000,
    // so a chown to the v11/v12 image's 421 would only lock the server out of its data.
    assert_eq!(fake.ecs.tasks().len(), before_tasks, "no helper task ran");
    let ap = &fake.efs.access_points()[0].spec;
    assert_eq!((ap.uid, ap.gid), (1000, 1000));
    let item = fake.dynamo.item(INSTANCES, UID).unwrap();
    assert_eq!(item["foundryVersion"], AttributeValue::S("11".into()));
    // The running server keeps its image; the next start uses the new one.
    assert_eq!(item["status"], AttributeValue::S("running".into()));
    assert_eq!(invoke(&app, ev("stop", UID)).await.0, 200);
    assert_eq!(invoke(&app, ev("start", UID)).await.0, 200);
    let defs = fake.ecs.task_definitions();
    let current = defs
        .iter()
        .rev()
        .find(|d| d.family == format!("foundry-{UID}"))
        .unwrap();
    assert_eq!(current.definition.containers[0].image, "felddy/foundryvtt:11");
}

#[tokio::test]
async fn create_honours_a_valid_foundry_version_and_refuses_a_bad_one() {
    let (app, fake, _) = fake_app(T0);
    let mut e = create_event(UID, "alice");
    e["foundryVersion"] = json!("12");
    assert_eq!(invoke(&app, e).await.0, 200);
    assert_eq!(
        fake.dynamo.item(INSTANCES, UID).unwrap()["foundryVersion"],
        AttributeValue::S("12".into())
    );
    let mut e = create_event(UID2, "bob");
    e["foundryVersion"] = json!("twelve");
    let (code, body) = invoke(&app, e).await;
    assert_eq!(
        (code, body),
        (500, json!({"error":"Internal error: Invalid version format"}))
    );
    assert!(
        fake.faults
            .calls()
            .iter()
            .filter(|c| c.as_str() == "CreateAccessPoint")
            .count()
            == 1
    );
}

#[tokio::test]
async fn names_are_validated_before_any_resource_is_made() {
    let (app, fake, _) = fake_app(T0);
    for san in ["Alice", "a_b", "-x", "abcdefghijklmnopqrstuvwxy", "www", "mail"] {
        let (code, body) = invoke(&app, create_event(UID, san)).await;
        assert_eq!(code, 500);
        assert!(
            body["error"].as_str().unwrap().contains("Invalid sanitized username")
                || body["error"]
                    .as_str()
                    .unwrap()
                    .contains("is reserved; choose another username"),
            "{body}"
        );
    }
    let (code, body) = invoke(&app, json!({"action":"create","userId":UID,"licenseType":"byol"})).await;
    assert_eq!(
        (code, body),
        (500, json!({"error":"Internal error: Missing sanitized username"}))
    );
    let (code, body) = invoke(
        &app,
        json!({"action":"create","userId":UID,"sanitizedUsername":"a","licenseType":"gold"}),
    )
    .await;
    assert_eq!(
        (code, body),
        (
            500,
            json!({"error":"Internal error: Invalid license type. Must be 'byol' or 'pooled'"})
        )
    );
    // Only the existence check reads the table, as the original did first.
    let calls = fake.faults.calls();
    assert!(calls.iter().all(|c| c == "GetItem"), "{calls:?}");
    let (code, body) = invoke(
        &app,
        json!({"action":"create","userId":"../etc","sanitizedUsername":"a"}),
    )
    .await;
    assert_eq!(code, 500, "{body}");
    assert_eq!(
        fake.faults.calls().len(),
        calls.len(),
        "a bad user id reaches no AWS call"
    );
}

#[tokio::test]
async fn create_checks_for_an_existing_instance_before_its_fields() {
    let (app, _fake, _) = fake_app(T0);
    created(&app).await;
    let (code, body) = invoke(&app, create_event(UID, "Not Valid")).await;
    assert_eq!(
        (code, body),
        (500, json!({"error":"Internal error: User already has an instance"}))
    );
}

#[tokio::test]
async fn a_second_user_cannot_claim_a_taken_subdomain() {
    let (app, fake, _) = fake_app(T0);
    created(&app).await;
    let before = leftovers(&fake);
    let (code, body) = invoke(&app, create_event(UID2, "alice")).await;
    assert_eq!(code, 500);
    assert_eq!(
        body["error"],
        "Internal error: The subdomain 'alice' is already taken by another user; choose another username"
    );
    assert_eq!(leftovers(&fake), before, "the refused create left nothing behind");
    assert_eq!(invoke(&app, create_event(UID2, "bob")).await.0, 200);
}

#[tokio::test]
async fn a_user_with_an_instance_cannot_create_another() {
    let (app, _fake, _) = fake_app(T0);
    created(&app).await;
    let (code, body) = invoke(&app, create_event(UID, "alice")).await;
    assert_eq!(
        (code, body),
        (500, json!({"error":"Internal error: User already has an instance"}))
    );
}

/// The (operation, occurrence) of every AWS call a clean run of `events` makes after `setup`.
async fn call_steps(setup: &[Value], events: &[Value]) -> Vec<(String, usize)> {
    let (app, fake, _) = fake_app(T0);
    for e in setup {
        assert_eq!(invoke(&app, e.clone()).await.0, 200);
    }
    let skip = fake.faults.calls().len();
    for e in events {
        let (code, body) = invoke(&app, e.clone()).await;
        assert_eq!(code, 200, "{body}");
    }
    let calls = fake.faults.calls();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut steps = Vec::new();
    for (i, op) in calls.iter().enumerate() {
        let n = seen.entry(op.clone()).or_insert(0);
        *n += 1;
        if i >= skip {
            steps.push((op.clone(), *n));
        }
    }
    steps
}

#[tokio::test]
async fn a_failure_at_any_create_step_leaves_nothing_and_create_can_be_retried() {
    let steps = call_steps(&[], &[create_event(UID, "alice")]).await;
    assert!(steps.len() > 15, "{steps:?}");
    for (op, nth) in steps {
        for kind in [AwsErrorKind::Transient, AwsErrorKind::Other] {
            let (app, fake, _) = fake_app(T0);
            fake.faults.fail_nth(&op, nth, kind);
            let (code, body) = invoke(&app, create_event(UID, "alice")).await;
            assert_eq!(code, 500, "a failure of {op} #{nth} must fail the create: {body}");
            assert!(
                leftovers(&fake).is_empty(),
                "{op} #{nth} ({kind:?}) left {:?}: {body}",
                leftovers(&fake)
            );
            let (code, body) = invoke(&app, create_event(UID, "alice")).await;
            assert_eq!(code, 200, "retry after {op} #{nth}: {body}");
        }
    }
}

#[tokio::test]
async fn a_failure_at_any_destroy_step_converges_on_a_second_destroy() {
    let setup = [create_event(UID, "alice"), ev("start", UID)];
    let steps = call_steps(&setup, &[ev("destroy", UID)]).await;
    assert!(steps.len() > 10, "{steps:?}");
    for (op, nth) in steps {
        let (app, fake, _) = fake_app(T0);
        for e in &setup {
            assert_eq!(invoke(&app, e.clone()).await.0, 200);
        }
        // `nth` counts from the first call ever, as the faults do; the setup is deterministic.
        fake.faults.fail_nth(&op, nth, AwsErrorKind::Transient);
        let (first, body) = invoke(&app, ev("destroy", UID)).await;
        fake.faults.clear();
        let (code, second) = invoke(&app, ev("destroy", UID)).await;
        assert_eq!(
            code, 200,
            "second destroy after {op} #{nth} (first: {first} {body}): {second}"
        );
        assert!(leftovers(&fake).is_empty(), "{op} #{nth}: {:?}", leftovers(&fake));
    }
}

#[tokio::test]
async fn a_start_out_of_time_returns_starting_and_status_finishes_it() {
    let (app, fake, clock) = fake_app(T0);
    created(&app).await;
    fake.ecs.set_launch_script(vec!["PROVISIONING", "PENDING"]);
    let ctx = Ctx {
        request_id: "r1".into(),
        deadline_ms: Some(clock.now_ms() + 30_000),
    };
    let (code, body) = invoke_with(&app, ev("start", UID), &ctx).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["status"], "starting");
    assert_eq!(body["message"], "Instance is starting");
    let task = body["taskArn"].as_str().unwrap().to_string();
    assert!(
        clock.now_ms() < ctx.deadline_ms.unwrap(),
        "answered before the deadline"
    );
    assert!(fake.alb.rules(LISTENER).is_empty());

    // Still pending: status says so and changes nothing.
    let (_, s) = invoke(&app, ev("status", UID)).await;
    assert_eq!(s["status"], "starting");
    // A second click while it is starting does not launch another task.
    let (_, again) = invoke(&app, ev("start", UID)).await;
    assert_eq!(again["status"], "starting");
    assert_eq!(fake.ecs.tasks().len(), 1);

    fake.ecs.set_task_status(&task, "RUNNING");
    let (code, s) = invoke(&app, ev("status", UID)).await;
    assert_eq!(code, 200);
    assert_eq!(s["status"], "running");
    let tg = fake.alb.target_groups().pop().unwrap();
    assert_eq!(tg.targets.len(), 1, "target registered");
    let rules = fake.alb.rules(LISTENER);
    assert_eq!(rules.len(), 1, "rule present");
    assert_eq!(rules[0].target_group_arns, [tg.arn]);
    assert!(s["autoShutdownAt"].as_i64().is_some());
}

#[tokio::test]
async fn a_task_that_dies_is_torn_down_by_status_and_its_hours_booked() {
    let (app, fake, clock) = fake_app(T0);
    let started = running(&app).await;
    let task = started["taskArn"].as_str().unwrap();
    clock.advance(std::time::Duration::from_secs(1800));
    fake.ecs.set_task_status(task, "STOPPED");
    let (_, s) = invoke(&app, ev("status", UID)).await;
    assert_eq!(s["status"], "stopped");
    assert!(fake.alb.rules(LISTENER).is_empty());
    let usage = fake.dynamo.item(USAGE, &format!("{UID}#2026-01")).unwrap();
    assert_eq!(usage["hoursThisMonth"], AttributeValue::N("0.5".into()));
    assert_eq!(usage["sessionsStarted"], AttributeValue::N("1".into()));
    assert!(
        !usage.contains_key("lastStart"),
        "the end of the run clears its start mark"
    );

    // A task that vanished from ECS is treated the same way.
    invoke(&app, ev("start", UID)).await;
    let item = fake.dynamo.item(INSTANCES, UID).unwrap();
    let AttributeValue::S(task) = &item["taskArn"] else {
        panic!()
    };
    fake.ecs.forget_task(task);
    let (_, s) = invoke(&app, ev("status", UID)).await;
    assert_eq!(s["status"], "stopped");
    assert!(fake.alb.rules(LISTENER).is_empty());
}

#[tokio::test]
async fn status_maps_every_ecs_state_and_never_writes_unknown() {
    let (app, fake, _) = fake_app(T0);
    let started = running(&app).await;
    let task = started["taskArn"].as_str().unwrap();
    for (ecs, want) in [
        ("DEACTIVATING", "stopping"),
        ("DEPROVISIONING", "stopping"),
        ("STOPPING", "stopping"),
    ] {
        fake.ecs.set_task_status(task, ecs);
        let (_, s) = invoke(&app, ev("status", UID)).await;
        assert_eq!(s["status"], want, "{ecs}");
        assert_ne!(
            fake.dynamo.item(INSTANCES, UID).unwrap()["status"],
            AttributeValue::S("unknown".into())
        );
    }
}

#[tokio::test]
async fn usage_of_a_run_across_a_month_boundary_is_split() {
    let jan_31_2330 = 1_769_902_200; // 2026-01-31T23:30:00Z
    let feb_01_0130 = 1_769_909_400; // 2026-02-01T01:30:00Z
    let (app, fake, clock) = fake_app(jan_31_2330);
    fake.ecs.set_launch_script(vec!["RUNNING"]);
    created(&app).await;
    // Creating took a few (simulated) seconds; start looks at its new task after 1 s.
    clock.set(jan_31_2330 - 1);
    assert_eq!(invoke(&app, ev("start", UID)).await.0, 200);
    assert_eq!(clock.now(), jan_31_2330, "the run starts at 23:30");
    clock.set(feb_01_0130);
    assert_eq!(invoke(&app, ev("stop", UID)).await.0, 200);
    let jan = fake.dynamo.item(USAGE, &format!("{UID}#2026-01")).unwrap();
    let feb = fake.dynamo.item(USAGE, &format!("{UID}#2026-02")).unwrap();
    assert_eq!(jan["hoursThisMonth"], AttributeValue::N("0.5".into()));
    assert_eq!(feb["hoursThisMonth"], AttributeValue::N("1.5".into()));
    assert!(!feb.contains_key("lastStart"));
}

#[tokio::test]
async fn priorities_never_collide_between_users() {
    let (app, fake, _) = fake_app(T0);
    fake.ecs.set_launch_script(vec!["RUNNING"]);
    invoke(&app, create_event(UID, "alice")).await;
    invoke(&app, create_event(UID2, "bob")).await;
    // Both were created while no rule existed: both hold the hint 100.
    for uid in [UID, UID2] {
        assert_eq!(
            fake.dynamo.item(INSTANCES, uid).unwrap()["albRulePriority"],
            AttributeValue::N("100".into())
        );
        let (code, body) = invoke(&app, ev("start", uid)).await;
        assert_eq!(code, 200, "{body}");
    }
    let mut prios: Vec<_> = fake.alb.rules(LISTENER).into_iter().map(|r| r.priority).collect();
    prios.sort();
    assert_eq!(prios, [Some(100), Some(110)]);
}

#[tokio::test]
async fn a_late_start_failure_stops_the_task_and_undoes_target_and_rule() {
    let (app, fake, _) = fake_app(T0);
    created(&app).await;
    // The start's second transaction: the one that marks the routed run `running` (the
    // first moved the record to `starting` and claimed the license).
    fake.faults.fail_nth(
        "TransactWriteItems",
        2 + fake.faults.count("TransactWriteItems"),
        AwsErrorKind::Transient,
    );
    let (code, body) = invoke(&app, ev("start", UID)).await;
    assert_eq!(code, 500, "{body}");
    assert!(fake.ecs.running_tasks().is_empty());
    assert!(fake.alb.rules(LISTENER).is_empty());
    assert!(fake.alb.target_groups().pop().unwrap().targets.is_empty());
    assert_eq!(
        fake.dynamo.item(INSTANCES, UID).unwrap()["status"],
        AttributeValue::S("stopped".into())
    );
    assert_eq!(invoke(&app, ev("start", UID)).await.0, 200);
}

#[tokio::test]
async fn read_errors_are_errors_not_not_found() {
    let (app, fake, _) = fake_app(T0);
    created(&app).await;
    fake.faults.fail_always("GetItem", AwsErrorKind::Transient);
    let (code, body) = invoke(&app, ev("status", UID)).await;
    assert_eq!(code, 500);
    assert!(!body["error"].as_str().unwrap().contains("not found"), "{body}");
    let (code, body) = invoke(&app, create_event(UID2, "bob")).await;
    assert_eq!(code, 500, "a create must not proceed when it cannot read: {body}");
}

#[tokio::test]
async fn pooled_instances_cannot_start_on_demand() {
    let (app, _fake, _) = fake_app(T0);
    let (code, _) = invoke(
        &app,
        json!({"action":"create","userId":UID,"sanitizedUsername":"alice","licenseType":"pooled"}),
    )
    .await;
    assert_eq!(code, 200);
    let (code, body) = invoke(&app, ev("start", UID)).await;
    assert_eq!(code, 500);
    assert_eq!(
        body["error"],
        "Internal error: Pooled license users must schedule sessions - use 'Schedule Session' instead of on-demand start"
    );
}

#[tokio::test]
async fn delete_answers_the_contracts_shape_and_removes_everything() {
    let (app, fake, _) = fake_app(T0);
    running(&app).await;
    let (code, body) = invoke(&app, ev("delete", UID)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        body,
        json!({"message":"User deleted successfully","userId":UID,"note":"All user data, credentials, and infrastructure have been permanently removed"})
    );
    assert!(leftovers(&fake).is_empty(), "{:?}", leftovers(&fake));
}

fn seed_session(fake: &FakeAws, id: &str, uid: &str, status: &str) {
    let s = |v: &str| AttributeValue::S(v.to_string());
    let n = |v: i64| AttributeValue::N(v.to_string());
    let item = std::collections::HashMap::from([
        ("sessionId".to_string(), s(id)),
        ("userId".to_string(), s(uid)),
        ("licenseType".to_string(), s("byol")),
        ("licenseId".to_string(), s(&format!("byol-{uid}"))),
        ("startTime".to_string(), n(T0 + 86_400)),
        ("endTime".to_string(), n(T0 + 90_000)),
        ("status".to_string(), s(status)),
    ]);
    fake.dynamo
        .put_raw("foundry-vtt-instances-scheduled-sessions", "sessionId", item);
    let reservation = std::collections::HashMap::from([
        ("reservationId".to_string(), s(&format!("r-{id}"))),
        ("licenseId".to_string(), s(&format!("byol-{uid}"))),
        ("sessionId".to_string(), s(id)),
        ("userId".to_string(), s(uid)),
        ("startTime".to_string(), n(T0 + 86_400)),
        ("endTime".to_string(), n(T0 + 90_000)),
        ("status".to_string(), s("active")),
    ]);
    fake.dynamo.put_raw(
        "foundry-vtt-instances-license-reservations",
        "reservationId",
        reservation,
    );
}

#[tokio::test]
async fn destroy_cancels_the_users_sessions_and_says_how_many() {
    let (app, fake, _) = fake_app(T0);
    created(&app).await;
    seed_session(&fake, "s-1", UID, "scheduled");
    seed_session(&fake, "s-2", UID, "completed");
    let (code, body) = invoke(&app, ev("destroy", UID)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        body,
        json!({"message":"Instance destroyed successfully (1 sessions cancelled)","userId":UID,"cancelledSessionsCount":1})
    );
    let s1 = fake
        .dynamo
        .item("foundry-vtt-instances-scheduled-sessions", "s-1")
        .unwrap();
    assert_eq!(s1["status"], AttributeValue::S("cancelled".into()));
    let s2 = fake
        .dynamo
        .item("foundry-vtt-instances-scheduled-sessions", "s-2")
        .unwrap();
    assert_eq!(s2["status"], AttributeValue::S("completed".into()));
    let r1 = fake
        .dynamo
        .item("foundry-vtt-instances-license-reservations", "r-s-1")
        .unwrap();
    assert_eq!(r1["status"], AttributeValue::S("cancelled".into()));

    // No instance any more: the answer still counts cancelled sessions.
    seed_session(&fake, "s-3", UID, "active");
    let (code, body) = invoke(&app, ev("destroy", UID)).await;
    assert_eq!(code, 200);
    assert_eq!(
        body,
        json!({"message":"No instance found to destroy, but 1 sessions cancelled","userId":UID,"instanceFound":false,"cancelledSessionsCount":1})
    );
}

#[tokio::test]
async fn destroy_without_an_instance_deactivates_an_orphaned_pool_and_never_makes_a_stub() {
    let (app, fake, _) = fake_app(T0);
    let pools = "foundry-vtt-instances-license-pool";
    let (code, body) = invoke(&app, ev("destroy", UID)).await;
    assert_eq!(code, 200);
    assert_eq!(body["instanceFound"], false);
    assert!(fake.dynamo.items(pools).is_empty(), "no stub pool item");

    let pool = std::collections::HashMap::from([
        ("licenseId".to_string(), AttributeValue::S(format!("byol-{UID}"))),
        ("ownerId".to_string(), AttributeValue::S(UID.into())),
        ("isActive".to_string(), AttributeValue::Bool(true)),
    ]);
    fake.dynamo.put_raw(pools, "licenseId", pool);
    let (code, body) = invoke(&app, ev("destroy", UID)).await;
    assert_eq!(code, 200);
    assert_eq!(
        body,
        json!({"message":"No instance found, but orphaned license pool has been deactivated","userId":UID,"licensePoolDeactivated":true,"cancelledSessionsCount":0})
    );
    let item = fake.dynamo.item(pools, &format!("byol-{UID}")).unwrap();
    assert_eq!(item["isActive"], AttributeValue::Bool(false));
}

#[tokio::test]
async fn a_sharing_owner_joins_the_pool_at_create_and_leaves_it_at_destroy() {
    let (app, fake, _) = fake_app(T0);
    let mut e = create_event(UID, "alice");
    e["allowLicenseSharing"] = json!(true);
    assert_eq!(invoke(&app, e).await.0, 200);
    let pool = fake
        .dynamo
        .item("foundry-vtt-instances-license-pool", &format!("byol-{UID}"))
        .unwrap();
    assert_eq!(pool["isActive"], AttributeValue::Bool(true));
    assert_eq!(pool["ownerUsername"], AttributeValue::S("alice".into()));
    assert_eq!(invoke(&app, ev("destroy", UID)).await.0, 200);
    let pool = fake
        .dynamo
        .item("foundry-vtt-instances-license-pool", &format!("byol-{UID}"))
        .unwrap();
    assert_eq!(pool["isActive"], AttributeValue::Bool(false));
}

#[tokio::test]
async fn destroy_keeping_license_sharing_keeps_the_secret_and_the_pool() {
    let (app, fake, _) = fake_app(T0);
    let mut e = create_event(UID, "alice");
    e["allowLicenseSharing"] = json!(true);
    assert_eq!(invoke(&app, e).await.0, 200);
    let (code, _) = invoke(&app, json!({"action":"destroy","userId":UID,"keepLicenseSharing":true})).await;
    assert_eq!(code, 200);
    assert_eq!(fake.secrets.secrets(), [format!("foundry-credentials-{UID}")]);
    let pool = fake
        .dynamo
        .item("foundry-vtt-instances-license-pool", &format!("byol-{UID}"))
        .unwrap();
    assert_eq!(pool["isActive"], AttributeValue::Bool(true));
    // Re-registration reuses the stored credentials (no username/password in the request).
    let (code, body) = invoke(
        &app,
        json!({"action":"create","userId":UID,"sanitizedUsername":"alice","licenseType":"byol","allowLicenseSharing":true}),
    )
    .await;
    assert_eq!(code, 200, "{body}");
}

#[tokio::test]
async fn a_create_that_died_after_making_the_bucket_leaks_nothing_once_the_user_destroys() {
    let (app, fake, clock) = fake_app(T0);
    // The invocation dies (its process crashes) right after the IAM user exists, before
    // the record names the bucket or the user: nothing of it runs any more.
    fake.before_call("PutUserPolicy", 1, || panic!("the invocation died"));
    let dying = app.clone();
    let died = tokio::spawn(async move { invoke(&dying, create_event(UID, "alice")).await }).await;
    assert!(died.is_err(), "the create must have died: {died:?}");
    let left = leftovers(&fake);
    assert!(
        left.contains_key("buckets") && left.contains_key("iam users"),
        "{left:?}"
    );

    // While its lease lasts, the dead create still holds the record.
    let (code, body) = invoke(&app, ev("destroy", UID)).await;
    assert_eq!(code, 500, "{body}");
    clock.advance(std::time::Duration::from_secs(3_600));
    let (code, body) = invoke(&app, ev("destroy", UID)).await;
    assert_eq!(code, 200, "{body}");
    assert!(
        leftovers(&fake).is_empty(),
        "left after destroy: {:?}",
        leftovers(&fake)
    );
}
