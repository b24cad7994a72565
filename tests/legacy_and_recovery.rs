//! The lifecycle's second pass, on the fakes: each test names a defect users would hit
//! and proves it is gone.

mod fake_env;

use std::collections::BTreeMap;
use std::time::Duration;

use fake_env::*;
use foundry_lambda::app::{App, Ctx};
use foundry_lambda::config::Config;
use foundry_lambda::domain::taskdef::{
    self, ContainerOverride, RunTask, TaskDefinition, CLEANUP_CONTAINER, CLEANUP_FAMILY,
};
use foundry_lambda::error::AwsErrorKind;
use foundry_lambda::managers::dynamodb::AttributeValue;
use foundry_lambda::managers::route53::AliasRecord;
use foundry_lambda::managers::Ecs;
use foundry_lambda::testing::{fake_app, invoke, invoke_with, ops, FakeAws};
use serde_json::{json, Value};

const DOMAIN: &str = "foundry.example.com";
const ZONE: &str = "Z0123456789ABCDEFGHIJ";
const ALB_DNS: &str = "foundry-vtt-alb-1234567890.us-east-1.elb.amazonaws.com";

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

/// Changes attributes of the stored instance of `uid` as another writer (the original)
/// would have left them; `None` removes one.
fn patch_instance(fake: &FakeAws, uid: &str, changes: &[(&str, Option<AttributeValue>)]) {
    let mut item = fake.dynamo.item(INSTANCES, uid).expect("an instance item");
    for (attr, value) in changes {
        match value {
            Some(v) => item.insert(attr.to_string(), v.clone()),
            None => item.remove(*attr),
        };
    }
    fake.dynamo.put_raw(INSTANCES, "userId", item);
}

fn task_arn(fake: &FakeAws, uid: &str) -> String {
    match fake.dynamo.item(INSTANCES, uid).and_then(|i| i.get("taskArn").cloned()) {
        Some(AttributeValue::S(arn)) => arn,
        other => panic!("no task recorded: {other:?}"),
    }
}

fn hours_booked(fake: &FakeAws, uid: &str) -> f64 {
    fake.dynamo
        .items(USAGE)
        .iter()
        .filter(|u| matches!(u.get("usageKey"), Some(AttributeValue::S(k)) if k.starts_with(uid)))
        .filter_map(|u| match u.get("hoursThisMonth") {
            Some(AttributeValue::N(n)) => n.parse::<f64>().ok(),
            _ => None,
        })
        .sum()
}

// ------------------------------------------------------------------ one task per user

#[tokio::test]
async fn a_start_from_stopping_adopts_the_healthy_task_it_still_names() {
    let (app, fake, _) = fake_app(T0);
    running(&app).await;
    let task = task_arn(&fake, UID);
    // The original wrote `stopping` while a task still ran.
    patch_instance(&fake, UID, &[("status", Some(s("stopping")))]);
    let (code, body) = invoke(&app, ev("start", UID)).await;
    assert_eq!((code, body["status"].as_str()), (200, Some("running")), "{body}");
    assert_eq!(body["taskArn"], task.as_str(), "the live task was adopted");
    assert_eq!(fake.ecs.running_tasks().len(), 1);
    assert_eq!(fake.ecs.tasks().len(), 1, "no second task was launched");
}

#[tokio::test]
async fn a_start_from_unknown_stops_the_task_it_still_names_books_it_and_runs_one() {
    let (app, fake, clock) = fake_app(T0);
    running(&app).await;
    let old = task_arn(&fake, UID);
    let tg = fake.alb.target_groups()[0].arn.clone();
    clock.advance(Duration::from_secs(7_200));
    // The original wrote `unknown` for a task that was still provisioning.
    assert!(fake.ecs.set_task_status(&old, "PROVISIONING"));
    patch_instance(&fake, UID, &[("status", Some(s("unknown")))]);
    let (code, body) = invoke(&app, ev("start", UID)).await;
    assert_eq!((code, body["status"].as_str()), (200, Some("running")), "{body}");
    assert_ne!(body["taskArn"], old.as_str());
    assert_eq!(fake.ecs.running_tasks().len(), 1, "one user, one task");
    assert_eq!(fake.ecs.task(&old).unwrap().status, "STOPPED");
    let ip = match &fake.dynamo.item(INSTANCES, UID).unwrap()["taskPrivateIp"] {
        AttributeValue::S(ip) => ip.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        fake.alb.targets(&tg),
        vec![(ip, 30000)],
        "only the new task is a target"
    );
    assert!(
        (hours_booked(&fake, UID) - 2.0).abs() < 1e-9,
        "the old run's 2 hours are booked"
    );
}

// ------------------------------------------------------------------ status degrades

#[tokio::test]
async fn status_of_an_existing_instance_answers_its_record_when_aws_fails() {
    let (app, fake, _) = fake_app(T0);
    running(&app).await;
    fake.faults.fail_always(ops::DESCRIBE_TASKS, AwsErrorKind::Transient);
    fake.faults.fail_always(ops::QUERY, AwsErrorKind::Transient);
    let (code, body) = invoke(&app, ev("status", UID)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["status"], "running");
    assert_eq!(body["nextScheduledSession"], Value::Null);
    assert!(!body.to_string().contains("not found"));
    assert_eq!(fake.ecs.running_tasks().len(), 1, "nothing was torn down");
}

#[tokio::test]
async fn a_routing_error_during_status_leaves_the_starting_task_alone() {
    let (app, fake, clock) = fake_app(T0);
    created(&app).await;
    fake.ecs.set_launch_script(vec!["PROVISIONING"]);
    let ctx = Ctx {
        request_id: "r".into(),
        deadline_ms: Some(clock_ms(&clock) + 20_000),
    };
    let (code, body) = invoke_with(&app, ev("start", UID), &ctx).await;
    assert_eq!((code, body["status"].as_str()), (200, Some("starting")), "{body}");
    let task = body["taskArn"].as_str().unwrap().to_string();
    assert!(fake.ecs.set_task_status(&task, "RUNNING"));

    fake.faults.fail_always(ops::REGISTER_TARGETS, AwsErrorKind::Transient);
    let (code, body) = invoke(&app, ev("status", UID)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["status"], "starting");
    assert!(!body.to_string().contains("not found"), "{body}");
    assert_eq!(fake.ecs.task(&task).unwrap().status, "RUNNING", "the task lives on");

    fake.faults.clear();
    let (_, body) = invoke(&app, ev("status", UID)).await;
    assert_eq!(body["status"], "running", "the next refresh routes it");
}

fn clock_ms(clock: &foundry_lambda::clock::ManualClock) -> i64 {
    use foundry_lambda::clock::Clock;
    clock.now_ms()
}

// ------------------------------------------------------------------ DNS

#[tokio::test]
async fn destroy_converges_when_the_alias_target_was_changed_behind_our_back() {
    let (app, fake, _) = fake_app(T0);
    created(&app).await;
    fake.route53.put_record(AliasRecord {
        hosted_zone_id: ZONE.into(),
        name: format!("alice.{DOMAIN}"),
        target_dns_name: "dualstack.new-alb-42.us-east-1.elb.amazonaws.com".into(),
        target_hosted_zone_id: "Z35SXDOTRQ7X7K".into(),
    });
    let (code, body) = invoke(&app, ev("destroy", UID)).await;
    assert_eq!(code, 200, "{body}");
    assert!(leftovers(&fake).is_empty(), "{:?}", leftovers(&fake));
}

#[tokio::test]
async fn create_never_takes_a_reserved_name_or_another_dns_record() {
    let (app, fake, _) = fake_app(T0);
    let (code, body) = invoke(&app, create_event(UID, "www")).await;
    assert_eq!(
        (code, body),
        (
            500,
            json!({"error":"Internal error: The subdomain 'www' is reserved; choose another username"})
        )
    );
    let foreign = AliasRecord {
        hosted_zone_id: ZONE.into(),
        name: format!("shop.{DOMAIN}"),
        target_dns_name: "shop-frontend.example.net".into(),
        target_hosted_zone_id: "Z2FDTNDATAQYW2".into(),
    };
    fake.route53.put_record(foreign.clone());
    let (code, body) = invoke(&app, create_event(UID, "shop")).await;
    assert_eq!(code, 500);
    assert_eq!(
        body["error"],
        "Internal error: The subdomain 'shop' is already in use by another DNS record; choose another username"
    );
    assert_eq!(fake.route53.records(), vec![foreign], "the record is untouched");
    let mut left = leftovers(&fake);
    left.remove("dns records");
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn a_dead_creates_own_alias_is_taken_over_not_refused() {
    let (app, fake, clock) = fake_app(T0);
    fake.before_call("EnsureBucket", 1, || panic!("the invocation died"));
    let dying = app.clone();
    assert!(
        tokio::spawn(async move { invoke(&dying, create_event(UID, "alice")).await })
            .await
            .is_err()
    );
    clock.advance(Duration::from_secs(3_600));
    let (code, body) = invoke(&app, create_event(UID, "alice")).await;
    assert_eq!(code, 200, "{body}");
    let r = &fake.route53.records()[0];
    assert_eq!(
        (r.target_dns_name.as_str(), r.name.as_str()),
        (ALB_DNS, "alice.foundry.example.com")
    );
}

// ------------------------------------------------------------------ legacy S3 keys

fn legacy_definition(uid: &str, secret_key: &str) -> TaskDefinition {
    TaskDefinition {
        family: format!("foundry-{uid}"),
        cpu: "1024".into(),
        memory: "2048".into(),
        execution_role_arn: "arn:aws:iam::123456789012:role/x".into(),
        task_role_arn: "arn:aws:iam::123456789012:role/x".into(),
        containers: vec![foundry_lambda::domain::taskdef::ContainerDef {
            name: "aws-config-creator".into(),
            image: "alpine:latest".into(),
            memory_mib: Some(128),
            command: vec!["sh".into(), "-c".into(), format!("echo {secret_key}")],
            ..Default::default()
        }],
        volumes: vec![],
        scratch_volumes: Vec::new(),
        tags: vec![],
    }
}

#[tokio::test]
async fn a_legacy_plain_text_s3_key_is_rotated_and_every_revision_that_embeds_it_goes() {
    let (app, fake, _) = fake_app(T0);
    created(&app).await;
    let iam_user = "foundry-alice-12345678";
    let old = fake.iam.access_keys(iam_user)[0].clone();
    // The original kept the secret key in the table and in its sidecar's command.
    patch_instance(
        &fake,
        UID,
        &[("s3SecretAccessKey", Some(s(old.secret_access_key.expose())))],
    );
    for _ in 0..3 {
        fake.ecs
            .register_task_definition(&legacy_definition(UID, old.secret_access_key.expose()))
            .await
            .unwrap();
    }
    let (code, body) = invoke(&app, ev("start", UID)).await;
    assert_eq!(code, 200, "{body}");

    let item = fake.dynamo.item(INSTANCES, UID).unwrap();
    assert!(!item.contains_key("s3SecretAccessKey"));
    let keys = fake.iam.access_keys(iam_user);
    assert_eq!(keys.len(), 1);
    assert_ne!(keys[0].access_key_id, old.access_key_id, "the exposed key is gone");
    assert_eq!(item["s3AccessKeyId"], s(&keys[0].access_key_id));
    let secret = fake.secrets.secret(&format!("foundry-credentials-{UID}")).unwrap();
    let stored: Value = serde_json::from_str(secret.value.expose()).unwrap();
    assert_eq!(stored["s3_access_key_id"], keys[0].access_key_id.as_str());
    let active: Vec<_> = fake
        .ecs
        .task_definitions()
        .into_iter()
        .filter(|d| d.active && d.family == format!("foundry-{UID}"))
        .collect();
    assert_eq!(active.len(), 1, "only the new revision stays active");
    assert!(!format!("{:?}", active[0].definition).contains(old.secret_access_key.expose()));
}

// ------------------------------------------------------------------ lenient reads

#[tokio::test]
async fn one_odd_legacy_item_never_breaks_the_fleet_view() {
    let (app, fake, _) = fake_app(T0);
    let item = |pairs: &[(&str, AttributeValue)]| -> BTreeMap<String, AttributeValue> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    };
    let n = |v: &str| AttributeValue::N(v.to_string());
    let rows = [
        item(&[
            ("userId", s("100000000000000001")),
            ("sanitizedUsername", s("ann")),
            ("status", s("stopped")),
            ("maxConcurrentUsers", s("2")),
            ("allowLicenseSharing", s("true")),
            ("createdAt", n("1700000000")),
        ]),
        item(&[
            ("userId", s("100000000000000002")),
            ("sanitizedUsername", s("ben")),
            ("status", s("unknown")),
            ("maxConcurrentUsers", n("1.5")),
        ]),
        item(&[("userId", s("100000000000000003")), ("status", s("created"))]),
        // Nothing of this one can be read as an instance.
        item(&[
            ("userId", s("100000000000000004")),
            ("status", AttributeValue::M(Default::default())),
        ]),
    ];
    for row in rows {
        fake.dynamo.put_raw(INSTANCES, "userId", row.into_iter().collect());
    }
    let (code, body) = invoke(&app, ev("list-all", "system")).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["count"], 3, "{body}");
    let first = &body["instances"][0];
    assert_eq!(first["maxConcurrentUsers"], 2);
    assert_eq!(first["allowLicenseSharing"], true);
    assert_eq!(body["instances"][1]["maxConcurrentUsers"], 1);
    assert_eq!(body["instances"][2]["sanitizedUsername"], "");
    assert_eq!(invoke(&app, ev("shutdown-stats", "system")).await.0, 200);
}

// ------------------------------------------------------------------ deadlines

#[tokio::test]
async fn a_destroy_out_of_time_says_what_is_left_and_the_next_one_finishes() {
    let (app, fake, clock) = fake_app(T0);
    created(&app).await;
    for _ in 0..30 {
        fake.ecs
            .register_task_definition(&legacy_definition(UID, "x"))
            .await
            .unwrap();
    }
    let deadline = clock_ms(&clock) + 60_000;
    let late = clock.clone();
    fake.before_call(ops::DEREGISTER_TASK_DEFINITION, 3, move || {
        late.advance(Duration::from_secs(60))
    });
    let ctx = Ctx {
        request_id: "short".into(),
        deadline_ms: Some(deadline),
    };
    let (code, body) = invoke_with(&app, ev("destroy", UID), &ctx).await;
    assert_eq!(code, 500);
    let error = body["error"].as_str().unwrap();
    assert!(
        error.starts_with("Internal error: Destroy incomplete: time ran out before removing")
            && error.ends_with("Call destroy again to finish."),
        "{error}"
    );
    let (code, body) = invoke(&app, ev("destroy", UID)).await;
    assert_eq!(code, 200, "{body}");
    assert!(leftovers(&fake).is_empty(), "{:?}", leftovers(&fake));
}

// ------------------------------------------------------------------ what is left behind

#[tokio::test]
async fn destroy_removes_the_legacy_sidecar_log_group_and_helper_revisions_do_not_pile_up() {
    let (app, fake, _) = fake_app(T0);
    for round in 0..3 {
        created(&app).await;
        if round == 0 {
            // A record the original made: no claim marker, and its sidecar's log group.
            patch_instance(&fake, UID, &[("dnsRecord", None)]);
            fake.logs.insert_group(&format!("/ecs/foundry-{UID}"), None);
        }
        let (code, body) = invoke(&app, ev("destroy", UID)).await;
        assert_eq!(code, 200, "{body}");
    }
    assert!(fake.logs.group(&format!("/ecs/foundry-{UID}")).is_none());
    let cleanup: Vec<_> = fake
        .ecs
        .task_definitions()
        .into_iter()
        .filter(|d| d.active && d.family == "foundry-efs-cleanup")
        .collect();
    assert_eq!(cleanup.len(), 1, "one cleanup revision, registered once per process");
}

// ------------------------------------------------------------------ the cleanup task

/// The cleanup task definition this build registers, with its fingerprint tag.
fn cleanup_definition() -> TaskDefinition {
    taskdef::fingerprinted(taskdef::cleanup_task_definition(&Config::for_tests().deployment()))
}

/// Another process on the same fakes: nothing cached in it yet.
fn another_process(fake: &FakeAws, clock: std::sync::Arc<foundry_lambda::clock::ManualClock>) -> App {
    App::new(Config::for_tests(), clock, fake.managers())
}

/// The RunTask requests of `uid`'s cleanup task.
fn cleanup_runs(fake: &FakeAws, uid: &str) -> Vec<RunTask> {
    let by = format!("efs-cleanup-{uid}");
    fake.ecs
        .run_requests()
        .into_iter()
        .filter(|r| r.started_by.as_deref() == Some(by.as_str()))
        .collect()
}

/// The cleanup tasks ECS has seen, in launch order.
fn cleanup_tasks(fake: &FakeAws) -> Vec<String> {
    fake.ecs
        .tasks()
        .into_iter()
        .filter(|t| t.family == CLEANUP_FAMILY)
        .map(|t| t.arn)
        .collect()
}

/// Every revision of the cleanup family the fake ECS knows, oldest first.
fn cleanup_revisions(fake: &FakeAws) -> Vec<foundry_lambda::testing::FakeTaskDefinition> {
    fake.ecs
        .task_definitions()
        .into_iter()
        .filter(|d| d.family == CLEANUP_FAMILY)
        .collect()
}

fn stored(fake: &FakeAws, uid: &str, attr: &str) -> Option<AttributeValue> {
    fake.dynamo.item(INSTANCES, uid).and_then(|i| i.get(attr).cloned())
}

#[tokio::test]
async fn the_active_cleanup_definition_is_reused_when_its_fingerprint_matches() {
    let (app, fake, _) = fake_app(T0);
    created(&app).await;
    // Registered by another process of this build.
    let active = fake.ecs.register_task_definition(&cleanup_definition()).await.unwrap();
    let registered = fake.faults.count(ops::REGISTER_TASK_DEFINITION);
    let deregistered = fake.faults.count(ops::DEREGISTER_TASK_DEFINITION);
    let (code, body) = invoke(&app, ev("destroy", UID)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(fake.faults.count(ops::DESCRIBE_TASK_DEFINITION), 1);
    assert_eq!(
        fake.faults.count(ops::REGISTER_TASK_DEFINITION),
        registered,
        "nothing registered"
    );
    let runs = cleanup_runs(&fake, UID);
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].task_definition, active);
    assert!(fake.ecs.task_definition(&active).unwrap().active);
    // Only the user's own revisions (none here) were deregistered.
    assert_eq!(fake.faults.count(ops::DEREGISTER_TASK_DEFINITION), deregistered);

    // The process keeps it: its next destroy does not even describe it.
    created(&app).await;
    let registered = fake.faults.count(ops::REGISTER_TASK_DEFINITION);
    assert_eq!(invoke(&app, ev("destroy", UID)).await.0, 200);
    assert_eq!(fake.faults.count(ops::DESCRIBE_TASK_DEFINITION), 1);
    assert_eq!(fake.faults.count(ops::REGISTER_TASK_DEFINITION), registered);
    assert_eq!(cleanup_runs(&fake, UID)[1].task_definition, active);
}

#[tokio::test]
async fn a_cleanup_definition_that_differs_is_registered_again_and_the_older_one_deregistered() {
    let (app, fake, _) = fake_app(T0);
    // What an earlier build registered: another image.
    let mut older = taskdef::cleanup_task_definition(&Config::for_tests().deployment());
    older.containers[0].image = "alpine:3.19".into();
    let older = fake
        .ecs
        .register_task_definition(&taskdef::fingerprinted(older))
        .await
        .unwrap();
    created(&app).await;
    let registered = fake.faults.count(ops::REGISTER_TASK_DEFINITION);
    let (code, body) = invoke(&app, ev("destroy", UID)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(fake.faults.count(ops::DESCRIBE_TASK_DEFINITION), 1);
    assert_eq!(fake.faults.count(ops::REGISTER_TASK_DEFINITION), registered + 1);
    let revisions = cleanup_revisions(&fake);
    assert_eq!(revisions.len(), 2);
    assert_eq!(revisions[0].arn, older);
    assert!(!revisions[0].active, "the older revision is deregistered");
    assert!(revisions[1].active);
    assert_eq!(
        revisions[1].definition,
        cleanup_definition(),
        "registered with its fingerprint"
    );
    assert_eq!(cleanup_runs(&fake, UID)[0].task_definition, revisions[1].arn);
}

#[tokio::test]
async fn a_missing_cleanup_definition_is_registered_once_and_other_processes_reuse_it() {
    let (app, fake, clock) = fake_app(T0);
    created(&app).await;
    assert_eq!(invoke(&app, ev("destroy", UID)).await.0, 200);
    assert_eq!(fake.faults.count(ops::DESCRIBE_TASK_DEFINITION), 1);
    let revisions = cleanup_revisions(&fake);
    assert_eq!(revisions.len(), 1);
    assert_eq!(revisions[0].definition, cleanup_definition());

    // A cold process describes the family and reuses the revision.
    let cold = another_process(&fake, clock);
    created(&cold).await;
    let registered = fake.faults.count(ops::REGISTER_TASK_DEFINITION);
    assert_eq!(invoke(&cold, ev("destroy", UID)).await.0, 200);
    assert_eq!(fake.faults.count(ops::DESCRIBE_TASK_DEFINITION), 2);
    assert_eq!(fake.faults.count(ops::REGISTER_TASK_DEFINITION), registered);
    assert_eq!(cleanup_runs(&fake, UID)[1].task_definition, revisions[0].arn);
}

#[tokio::test]
async fn a_resumed_destroy_waits_for_the_cleanup_task_still_running_and_launches_no_other() {
    let (app, fake, _) = fake_app(T0);
    created(&app).await;
    // The cleanup takes longer than a destroy may wait.
    fake.ecs.set_family_script(CLEANUP_FAMILY, vec!["PENDING", "RUNNING"]);
    let (code, body) = invoke(&app, ev("destroy", UID)).await;
    assert_eq!(code, 500);
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("EFS cleanup is still running"), "{error}");
    assert_eq!(
        fake.faults.count(ops::LIST_TASKS),
        0,
        "a fresh destroy does not look for one"
    );
    let launched = cleanup_tasks(&fake);
    assert_eq!(launched.len(), 1);
    assert_eq!(stored(&fake, UID, "status"), Some(s("destroying")));
    assert_eq!(
        stored(&fake, UID, "cleanupTaskArn"),
        None,
        "found by its startedBy instead"
    );
    assert!(
        fake.efs.access_points().iter().any(|ap| ap.spec.path.ends_with(UID)),
        "kept while the files are there"
    );

    // The task ends while the next destroy waits for it.
    let ecs = fake.ecs.clone();
    let task = launched[0].clone();
    let next_describe = fake.faults.count(ops::DESCRIBE_TASKS) + 1;
    fake.before_call(ops::DESCRIBE_TASKS, next_describe, move || {
        assert!(ecs.set_task_status(&task, "STOPPED"));
    });
    let runs = fake.faults.count(ops::RUN_TASK);
    let (code, body) = invoke(&app, ev("destroy", UID)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(fake.faults.count(ops::LIST_TASKS), 1);
    assert_eq!(fake.faults.count(ops::RUN_TASK), runs, "no second cleanup task");
    assert_eq!(cleanup_tasks(&fake), launched);
    assert!(leftovers(&fake).is_empty(), "{:?}", leftovers(&fake));
}

#[tokio::test]
async fn a_resumed_destroy_launches_a_new_cleanup_task_when_the_earlier_one_failed() {
    let (app, fake, _) = fake_app(T0);
    created(&app).await;
    fake.ecs.set_exit_code(CLEANUP_FAMILY, CLEANUP_CONTAINER, 1);
    let (code, body) = invoke(&app, ev("destroy", UID)).await;
    assert_eq!(code, 500);
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("EFS cleanup failed (exit code 1)"), "{error}");
    assert_eq!(fake.faults.count(ops::LIST_TASKS), 0);
    assert_eq!(stored(&fake, UID, "cleanupTaskArn"), None);

    fake.ecs.set_exit_code(CLEANUP_FAMILY, CLEANUP_CONTAINER, 0);
    let (code, body) = invoke(&app, ev("destroy", UID)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(fake.faults.count(ops::LIST_TASKS), 1, "it looked for a running one");
    assert_eq!(cleanup_runs(&fake, UID).len(), 2);
    assert!(leftovers(&fake).is_empty(), "{:?}", leftovers(&fake));
}

/// A cleanup task launched as the previous version did: no startedBy, its ARN recorded.
async fn legacy_cleanup(fake: &FakeAws) -> String {
    let config = Config::for_tests();
    let def = fake.ecs.register_task_definition(&cleanup_definition()).await.unwrap();
    let overrides = vec![ContainerOverride {
        name: CLEANUP_CONTAINER.into(),
        environment: vec![("USER_ID".into(), UID.into())],
    }];
    let task = fake
        .ecs
        .run_task(&taskdef::run_task(&config.deployment(), &def, overrides))
        .await
        .unwrap();
    patch_instance(
        fake,
        UID,
        &[("status", Some(s("destroying"))), ("cleanupTaskArn", Some(s(&task)))],
    );
    task
}

#[tokio::test]
async fn a_destroy_left_by_the_previous_version_waits_for_the_cleanup_task_it_recorded() {
    let (app, fake, _) = fake_app(T0);
    created(&app).await;
    let legacy = legacy_cleanup(&fake).await;
    let (code, body) = invoke(&app, ev("destroy", UID)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(cleanup_tasks(&fake), vec![legacy.clone()], "no new cleanup task");
    assert_eq!(fake.ecs.task(&legacy).unwrap().status, "STOPPED");
    assert!(
        fake.dynamo.item(INSTANCES, UID).is_none(),
        "the record, and the ARN in it, are gone"
    );
}

#[tokio::test]
async fn a_recorded_cleanup_task_that_is_gone_is_replaced_by_a_new_one() {
    let (app, fake, _) = fake_app(T0);
    created(&app).await;
    let legacy = legacy_cleanup(&fake).await;
    fake.ecs.forget_task(&legacy);
    let (code, body) = invoke(&app, ev("destroy", UID)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(cleanup_runs(&fake, UID).len(), 1);
    assert_eq!(fake.faults.count(ops::LIST_TASKS), 1);
    assert!(leftovers(&fake).is_empty(), "{:?}", leftovers(&fake));
}

/// The AWS calls of `destroy` of a stopped instance whose user has no sessions, on the fakes.
/// The fakes count IAM's user deletion as one call (`DeleteUser`), which is three against
/// AWS here (DeleteAccessKey, DeleteUserPolicy, DeleteUser): 18 fake calls are 20 AWS calls,
/// 17 are 19.
#[tokio::test]
async fn destroying_a_stopped_instance_without_sessions_makes_20_aws_calls_cold_and_19_warm() {
    let (app, fake, clock) = fake_app(T0);
    // An earlier process registered the cleanup definition (its own destroy).
    assert_eq!(invoke(&app, create_event(UID2, "bob")).await.0, 200);
    assert_eq!(invoke(&app, ev("destroy", UID2)).await.0, 200);
    let process = another_process(&fake, clock);
    let head = ["Query", "Query", "UpdateItem", "DeleteTargetGroup", "DeleteAlias"];
    let tail = [
        "RunTask",
        "DescribeTasks",
        "DescribeTasks",
        "DescribeTasks",
        "DeleteAccessPoint",
        "DeleteBucket",
        "DeleteUser",
        "DeleteSecret",
        "ListTaskDefinitions",
        "DeregisterTaskDefinition",
        "DeleteLogGroup",
        // The record, and its claim on the subdomain, in one transaction.
        "TransactWriteItems",
    ];
    for (round, definition) in [("cold", &["DescribeTaskDefinition"][..]), ("warm", &[][..])] {
        running(&process).await;
        assert_eq!(invoke(&process, ev("stop", UID)).await.0, 200);
        let before = fake.faults.calls().len();
        let (code, body) = invoke(&process, ev("destroy", UID)).await;
        assert_eq!(code, 200, "{body}");
        let calls = fake.faults.calls()[before..].to_vec();
        let expected: Vec<&str> = head.iter().chain(definition).chain(&tail).copied().collect();
        assert_eq!(calls, expected, "{round}");
    }
}

// ------------------------------------------------------------------ one log line per error

#[tokio::test]
async fn a_failed_action_is_logged_once() {
    let (app, fake, _) = fake_app(T0);
    let (_guard, buf) = foundry_lambda::logging::capture("info");
    fake.faults.fail_always(ops::CREATE_TARGET_GROUP, AwsErrorKind::Other);
    let (code, _) = invoke(&app, create_event(UID, "alice")).await;
    assert_eq!(code, 500);
    let log = buf.contents();
    let failures = log
        .lines()
        .filter(|l| l.contains("injected Other failure of CreateTargetGroup"))
        .count();
    assert_eq!(failures, 1, "{log}");
}
