//! World backups on the fakes: the backup task a run's end launches (its definition,
//! overrides and mount), the guard against backing up while a run is under way, and what
//! `status` shows. The scripts themselves run for real in tests/backup_scripts.rs.

mod fake_env;

use fake_env::{ev, running, T0, UID};
use foundry_lambda::actions::resources::{launch_backup_after_run, BackupLaunch};
use foundry_lambda::clock::Clock;
use foundry_lambda::config::{BackupSettings, Config};
use foundry_lambda::domain::backup::{self, Cause};
use foundry_lambda::domain::taskdef::{self, RunTask, BACKUP_FAMILY};
use foundry_lambda::testing::{fake_app, fake_app_with, invoke, FakeAws};

const BUCKET: &str = "foundry-backups-test";
const BACKUP_ROLE: &str = "arn:aws:iam::123456789012:role/foundry-vtt-backup-task-role";

fn with_backups() -> Config {
    let mut cfg = Config::for_tests();
    cfg.backups = Some(BackupSettings {
        bucket: BUCKET.into(),
        task_role_arn: BACKUP_ROLE.into(),
        retention_days: 30,
    });
    cfg
}

/// The RunTask requests of `uid`'s backup task.
fn backup_runs(fake: &FakeAws, uid: &str) -> Vec<RunTask> {
    let by = taskdef::backup_started_by(uid);
    fake.ecs
        .run_requests()
        .into_iter()
        .filter(|r| r.started_by.as_deref() == Some(by.as_str()))
        .collect()
}

/// The environment override `name` of `container` in `req`.
fn env_of<'a>(req: &'a RunTask, container: &str, name: &str) -> Option<&'a str> {
    req.overrides
        .iter()
        .find(|o| o.name == container)?
        .environment
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn backups_are_off_by_default_and_a_stop_then_launches_none() {
    let (app, fake, _) = fake_app(T0);
    running(&app).await;
    let (code, body) = invoke(&app, ev("stop", UID)).await;
    assert_eq!(code, 200, "{body}");
    assert!(backup_runs(&fake, UID).is_empty());
    assert!(fake.ecs.task_definitions().iter().all(|d| d.family != BACKUP_FAMILY));
    let (_, status) = invoke(&app, ev("status", UID)).await;
    assert!(status.get("lastBackupAt").is_none(), "{status}");
}

#[tokio::test]
async fn a_stop_launches_one_backup_of_the_users_directory_with_the_backup_role() {
    let (app, fake, _) = fake_app_with(T0, with_backups());
    running(&app).await;
    let (code, body) = invoke(&app, ev("stop", UID)).await;
    assert_eq!(code, 200, "{body}");

    let runs = backup_runs(&fake, UID);
    assert_eq!(runs.len(), 1, "one backup per end of a run");
    let req = &runs[0];
    assert_eq!(req.started_by.as_deref(), Some(format!("backup-{UID}").as_str()));
    assert_eq!(env_of(req, taskdef::BACKUP_ARCHIVE_CONTAINER, "USER_ID"), Some(UID));
    assert_eq!(
        env_of(req, taskdef::BACKUP_ARCHIVE_CONTAINER, "PREVIOUS_MANIFEST"),
        Some("")
    );
    assert_eq!(env_of(req, taskdef::BACKUP_UPLOAD_CONTAINER, "USER_ID"), Some(UID));
    assert_eq!(
        env_of(req, taskdef::BACKUP_UPLOAD_CONTAINER, "BACKUP_CAUSE"),
        Some("run-end")
    );
    // The fake stops a task at StopTask: nothing left to wait for.
    assert_eq!(env_of(req, taskdef::BACKUP_WAIT_CONTAINER, "AFTER_TASKS"), Some(""));

    // The definition: the backup role (never the Foundry tasks' role, never user keys),
    // EFS read-only for the archive, a shared scratch volume, pinned images, a fingerprint.
    let defs: Vec<_> = fake
        .ecs
        .task_definitions()
        .into_iter()
        .filter(|d| d.family == BACKUP_FAMILY)
        .collect();
    assert_eq!(defs.len(), 1);
    let def = &defs[0].definition;
    assert_eq!(req.task_definition, defs[0].arn);
    assert_eq!(def.task_role_arn, BACKUP_ROLE);
    assert_ne!(def.task_role_arn, Config::for_tests().task_role_arn);
    assert!(def.tags.iter().any(|(k, _)| k == taskdef::FINGERPRINT_TAG));
    assert_eq!(def.volumes.len(), 1);
    assert_eq!(def.volumes[0].root_directory.as_deref(), Some("/"));
    assert_eq!(def.scratch_volumes, ["scratch"]);
    let names: Vec<_> = def.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["wait", "archive", "upload"]);
    for c in &def.containers {
        assert!(
            !c.image.ends_with(":latest") && c.image.contains(':'),
            "{} is pinned",
            c.image
        );
        assert!(c.secrets.is_empty(), "no secret reaches the backup task");
        assert!(!c.environment.iter().any(|(k, _)| k.starts_with("AWS_ACCESS_KEY")));
    }
    let archive = &def.containers[1];
    assert!(archive.mounts.iter().any(|m| m.container_path == "/efs" && m.read_only));
    assert_eq!(archive.depends_on, [("wait".to_string(), "SUCCESS".to_string())]);
    assert_eq!(archive.command[2], backup::ARCHIVE_SCRIPT);
    let upload = &def.containers[2];
    assert!(upload.essential && !archive.essential && !def.containers[0].essential);
    assert_eq!(upload.depends_on, [("archive".to_string(), "SUCCESS".to_string())]);
    assert!(upload
        .environment
        .contains(&("BACKUP_BUCKET".to_string(), BUCKET.to_string())));
    assert!(
        !upload.mounts.iter().any(|m| m.container_path == "/efs"),
        "the S3 side never sees EFS"
    );

    // Recorded on the instance; no good backup known yet.
    let (_, status) = invoke(&app, ev("status", UID)).await;
    assert!(status.get("lastBackupAt").is_none(), "{status}");
    let item = fake.dynamo.items(fake_env::INSTANCES);
    let rec = item
        .iter()
        .find(|i| format!("{:?}", i.get("userId")).contains(UID))
        .unwrap();
    assert!(format!("{:?}", rec.get("backupTaskArn")).contains("arn:"), "{rec:?}");
}

#[tokio::test]
async fn the_latest_backups_manifest_goes_to_the_archive_and_status_shows_its_time() {
    let (app, fake, _) = fake_app_with(T0, with_backups());
    let manifest = "ab".repeat(32);
    fake.s3.put_version(
        BUCKET,
        &backup::object_key(UID),
        1234,
        T0 - 3600,
        &[("manifest", &manifest), ("cause", "run-end")],
    );
    running(&app).await;
    invoke(&app, ev("stop", UID)).await;
    let runs = backup_runs(&fake, UID);
    assert_eq!(
        env_of(&runs[0], taskdef::BACKUP_ARCHIVE_CONTAINER, "PREVIOUS_MANIFEST"),
        Some(manifest.as_str())
    );
    let (_, status) = invoke(&app, ev("status", UID)).await;
    assert_eq!(status["lastBackupAt"], T0 - 3600, "{status}");
}

#[tokio::test]
async fn a_manifest_that_is_not_a_digest_is_not_passed_on() {
    let (app, fake, _) = fake_app_with(T0, with_backups());
    fake.s3.put_version(
        BUCKET,
        &backup::object_key(UID),
        1,
        T0 - 60,
        &[("manifest", "x; rm -rf /")],
    );
    running(&app).await;
    invoke(&app, ev("stop", UID)).await;
    let runs = backup_runs(&fake, UID);
    assert_eq!(
        env_of(&runs[0], taskdef::BACKUP_ARCHIVE_CONTAINER, "PREVIOUS_MANIFEST"),
        Some("")
    );
}

#[tokio::test]
async fn no_backup_while_a_run_of_the_user_is_under_way() {
    let (app, fake, _) = fake_app_with(T0, with_backups());
    running(&app).await;
    // The end of an earlier run asks for a backup after a new run has begun.
    let got = launch_backup_after_run(&app.services, UID, &[], Cause::RunEnd)
        .await
        .unwrap();
    assert_eq!(got, BackupLaunch::Skipped("a run of the user is under way"));
    assert!(backup_runs(&fake, UID).is_empty());
}

#[tokio::test]
async fn a_task_of_the_run_still_stopping_is_waited_for_by_the_backup() {
    let (app, fake, _) = fake_app_with(T0, with_backups());
    running(&app).await;
    let task = fake.ecs.running_tasks()[0].arn.clone();
    invoke(&app, ev("stop", UID)).await;
    // As on AWS, where a task takes a while to stop after StopTask.
    fake.ecs.set_task_status(&task, "DEACTIVATING");
    let before = backup_runs(&fake, UID).len();
    // The first backup still runs (the fake keeps it RUNNING): the second is not launched.
    let got = launch_backup_after_run(&app.services, UID, std::slice::from_ref(&task), Cause::RunEnd)
        .await
        .unwrap();
    assert_eq!(got, BackupLaunch::Skipped("a backup of the user is running"));
    for t in fake.ecs.running_tasks().iter().filter(|t| t.family == BACKUP_FAMILY) {
        fake.ecs.set_task_status(&t.arn, "STOPPED");
    }
    let got = launch_backup_after_run(&app.services, UID, std::slice::from_ref(&task), Cause::RunEnd)
        .await
        .unwrap();
    assert!(matches!(got, BackupLaunch::Launched(_)), "{got:?}");
    let runs = backup_runs(&fake, UID);
    assert_eq!(runs.len(), before + 1);
    assert_eq!(
        env_of(runs.last().unwrap(), taskdef::BACKUP_WAIT_CONTAINER, "AFTER_TASKS"),
        Some(task.as_str())
    );
}

#[tokio::test]
async fn a_failed_backup_launch_does_not_fail_the_stop() {
    let (app, fake, _) = fake_app_with(T0, with_backups());
    running(&app).await;
    fake.ecs.push_run_task_failure("RESOURCE:MEMORY");
    let (code, body) = invoke(&app, ev("stop", UID)).await;
    assert_eq!(code, 200, "{body}");
    let (_, status) = invoke(&app, ev("status", UID)).await;
    assert_eq!(status["status"], "stopped");
}

#[tokio::test]
async fn list_backups_answers_the_users_backups_newest_first_with_time_size_and_cause() {
    let (app, fake, _) = fake_app_with(T0, with_backups());
    let key = backup::object_key(UID);
    fake.s3
        .put_version(BUCKET, &key, 100, T0 - 7200, &[("cause", "run-end")]);
    let newest = fake.s3.put_version(BUCKET, &key, 300, T0 - 60, &[("cause", "run-end")]);
    fake.s3
        .put_version(BUCKET, &backup::object_key("223456789012345678"), 5, T0, &[]);
    let (code, body) = invoke(&app, ev("list-backups", UID)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["userId"], UID);
    assert_eq!(body["count"], 2);
    let b = body["backups"].as_array().unwrap();
    assert_eq!(b[0]["backupId"], format!("{UID}/{newest}"));
    assert_eq!(
        (
            b[0]["createdAt"].as_i64(),
            b[0]["size"].as_i64(),
            b[0]["latest"].as_bool()
        ),
        (Some(T0 - 60), Some(300), Some(true))
    );
    assert_eq!(b[0]["cause"], "run-end");
    assert_eq!(
        (
            b[1]["createdAt"].as_i64(),
            b[1]["size"].as_i64(),
            b[1]["latest"].as_bool()
        ),
        (Some(T0 - 7200), Some(100), Some(false))
    );
}

#[tokio::test]
async fn list_backups_of_another_user_is_for_an_admin_only() {
    let (app, fake, _) = fake_app_with(T0, with_backups());
    let other = "223456789012345678";
    fake.s3
        .put_version(BUCKET, &backup::object_key(other), 5, T0, &[("cause", "run-end")]);
    let ask = |caller: &str| serde_json::json!({"action":"list-backups","userId":caller,"targetUserId":other});
    let (code, body) = invoke(&app, ask(UID)).await;
    assert_eq!(code, 403, "{body}");
    assert_eq!(body["error"], "Only an admin may list another user's backups");
    let (code, body) = invoke(&app, ask("000000000000000001")).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        (body["userId"].as_str(), body["count"].as_i64()),
        (Some(other), Some(1))
    );
    // Naming oneself needs no admin.
    let (code, _) = invoke(
        &app,
        serde_json::json!({"action":"list-backups","userId":other,"targetUserId":other}),
    )
    .await;
    assert_eq!(code, 200);
}

#[tokio::test]
async fn list_backups_without_backups_is_a_clear_400_and_without_any_an_empty_list() {
    let (app, _, _) = fake_app(T0);
    let (code, body) = invoke(&app, ev("list-backups", UID)).await;
    assert_eq!(code, 400);
    assert_eq!(
        body["error"],
        "Backups are not enabled in this deployment (BACKUPS is off)"
    );
    let (app, fake, _) = fake_app_with(T0, with_backups());
    fake.s3.put_version(BUCKET, "someone-else/world.tar.gz", 1, T0, &[]);
    let (code, body) = invoke(&app, ev("list-backups", UID)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["backups"], serde_json::json!([]));
    assert_eq!(body["count"], 0);
}

// ------------------------------------------------------------------ start and world tasks

/// Sets (or removes, with `None`) a string attribute of `uid`'s instance item, as another
/// writer would.
fn set_record_attr(fake: &FakeAws, uid: &str, name: &str, value: Option<&str>) {
    use foundry_lambda::managers::dynamodb::AttributeValue;
    let mut item = fake.dynamo.item(fake_env::INSTANCES, uid).expect("an instance item");
    match value {
        Some(v) => item.insert(name.to_string(), AttributeValue::S(v.to_string())),
        None => item.remove(name),
    };
    fake.dynamo.put_raw(fake_env::INSTANCES, "userId", item);
}

/// The Foundry tasks (not helper tasks) RunTask launched.
fn foundry_runs(fake: &FakeAws) -> usize {
    fake.ecs
        .run_requests()
        .iter()
        .filter(|r| {
            r.started_by
                .as_deref()
                .is_none_or(|s| !s.starts_with("backup-") && !s.starts_with("cleanup-"))
        })
        .count()
}

/// The backup tasks of `uid` that still run.
fn running_backups(fake: &FakeAws) -> Vec<String> {
    fake.ecs
        .running_tasks()
        .into_iter()
        .filter(|t| t.family == BACKUP_FAMILY)
        .map(|t| t.arn)
        .collect()
}

#[tokio::test]
async fn a_start_waits_for_the_users_running_backup_then_starts() {
    let (app, fake, clock) = fake_app_with(T0, with_backups());
    running(&app).await;
    invoke(&app, ev("stop", UID)).await;
    let backup = running_backups(&fake);
    assert_eq!(backup.len(), 1, "the stop's backup runs (the fake keeps it RUNNING)");
    let starts_before = foundry_runs(&fake);
    // The backup ends while the start waits: right before its second look.
    let ecs = fake.ecs.clone();
    let arn = backup[0].clone();
    let n = fake.faults.count(foundry_lambda::testing::FakeEcs::LIST_TASKS);
    fake.before_call(foundry_lambda::testing::FakeEcs::LIST_TASKS, n + 2, move || {
        ecs.set_task_status(&arn, "STOPPED");
    });
    let t0 = clock.now_ms();
    let (code, body) = invoke(&app, ev("start", UID)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        foundry_runs(&fake),
        starts_before + 1,
        "the server started after the backup"
    );
    assert!(clock.now_ms() - t0 >= 1_000, "the start waited for the backup");
}

#[tokio::test]
async fn a_start_while_a_backup_runs_past_the_deadline_is_refused_and_starts_nothing() {
    let (app, fake, _) = fake_app_with(T0, with_backups());
    running(&app).await;
    invoke(&app, ev("stop", UID)).await;
    assert_eq!(running_backups(&fake).len(), 1);
    let starts_before = foundry_runs(&fake);
    let (code, body) = invoke(&app, ev("start", UID)).await;
    assert_eq!(code, 500, "{body}");
    assert_eq!(
        body["error"],
        format!("Internal error: {}", foundry_lambda::actions::resources::BACKUP_BUSY)
    );
    assert_eq!(
        foundry_runs(&fake),
        starts_before,
        "no server on a directory being read"
    );
    let (_, status) = invoke(&app, ev("status", UID)).await;
    assert_eq!(status["status"], "stopped", "{status}");
}

#[tokio::test]
async fn a_start_is_refused_on_a_half_restored_directory_even_with_backups_off() {
    for cfg in [with_backups(), Config::for_tests()] {
        let (app, fake, _) = fake_app_with(T0, cfg);
        running(&app).await;
        invoke(&app, ev("stop", UID)).await;
        set_record_attr(&fake, UID, "restoreState", Some(&format!("{UID}/v1")));
        let starts_before = foundry_runs(&fake);
        let (code, body) = invoke(&app, ev("start", UID)).await;
        assert_eq!(code, 500, "{body}");
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("restore of this instance's worlds is unfinished"),
            "{body}"
        );
        assert_eq!(foundry_runs(&fake), starts_before);
        let (_, status) = invoke(&app, ev("status", UID)).await;
        assert_eq!(status["restoreInProgress"], format!("{UID}/v1"), "{status}");
    }
}

#[tokio::test]
async fn the_write_that_begins_a_run_refuses_a_half_restored_directory() {
    // The restore began after the start read the record: the conditional write refuses.
    use foundry_lambda::managers::dynamodb::AttributeValue;
    use foundry_lambda::testing::FakeDynamo;
    let (app, fake, _) = fake_app_with(T0, Config::for_tests());
    running(&app).await;
    invoke(&app, ev("stop", UID)).await;
    let starts_before = foundry_runs(&fake);
    let dynamo = fake.dynamo.clone();
    let n = fake.faults.count(FakeDynamo::TRANSACT_WRITE_ITEMS);
    fake.before_call(FakeDynamo::TRANSACT_WRITE_ITEMS, n + 1, move || {
        let mut item = dynamo.item(fake_env::INSTANCES, UID).unwrap();
        item.insert("restoreState".into(), AttributeValue::S(format!("{UID}/v1")));
        dynamo.put_raw(fake_env::INSTANCES, "userId", item);
    });
    let (code, body) = invoke(&app, ev("start", UID)).await;
    assert_eq!(code, 500, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("restore of this instance's worlds is unfinished"),
        "{body}"
    );
    assert_eq!(foundry_runs(&fake), starts_before);
}

#[tokio::test]
async fn a_backup_launched_while_a_run_begins_is_stopped_at_once() {
    // The start's write lands between the backup's first look at the record and its
    // RunTask: the look after RunTask sees the run and stops the backup.
    use foundry_lambda::managers::dynamodb::AttributeValue;
    let (app, fake, _) = fake_app_with(T0, with_backups());
    running(&app).await;
    invoke(&app, ev("stop", UID)).await;
    for t in running_backups(&fake) {
        fake.ecs.set_task_status(&t, "STOPPED");
    }
    let dynamo = fake.dynamo.clone();
    let n = fake.faults.count(foundry_lambda::testing::FakeEcs::RUN_TASK);
    fake.before_call(foundry_lambda::testing::FakeEcs::RUN_TASK, n + 1, move || {
        let mut item = dynamo.item(fake_env::INSTANCES, UID).unwrap();
        item.insert("status".into(), AttributeValue::S("starting".into()));
        dynamo.put_raw(fake_env::INSTANCES, "userId", item);
    });
    let got = launch_backup_after_run(&app.services, UID, &[], Cause::RunEnd)
        .await
        .unwrap();
    assert_eq!(got, BackupLaunch::Skipped("a run of the user began"));
    assert!(running_backups(&fake).is_empty(), "the backup was stopped");
}

// ------------------------------------------------------------------ restore-backup

/// An app with backups on whose backup and restore tasks run to completion by themselves,
/// with `uid`'s instance stopped after one run, and one backup of `uid` → its backupId.
async fn stopped_with_a_backup() -> (foundry_lambda::app::App, FakeAws, String) {
    let (app, fake, _) = fake_app_with(T0, with_backups());
    fake.ecs.set_auto_stop(BACKUP_FAMILY);
    fake.ecs.set_auto_stop(taskdef::RESTORE_FAMILY);
    let version = fake.s3.put_version(
        BUCKET,
        &backup::object_key(UID),
        1234,
        T0 - 3600,
        &[("manifest", &"ab".repeat(32)), ("cause", "run-end")],
    );
    running(&app).await;
    let (code, body) = invoke(&app, ev("stop", UID)).await;
    assert_eq!(code, 200, "{body}");
    // The stop's backup has finished.
    for t in running_backups(&fake) {
        fake.ecs.set_task_status(&t, "STOPPED");
    }
    (app, fake, format!("{UID}/{version}"))
}

fn restore_ev(uid: &str, backup_id: &str) -> serde_json::Value {
    serde_json::json!({"action":"restore-backup","userId":uid,"backupId":backup_id})
}

/// The RunTask requests of restore tasks.
fn restore_runs(fake: &FakeAws) -> Vec<RunTask> {
    fake.ecs
        .run_requests()
        .into_iter()
        .filter(|r| {
            fake.ecs
                .task_definition(&r.task_definition)
                .is_some_and(|d| d.family == taskdef::RESTORE_FAMILY)
        })
        .collect()
}

fn record_attr(fake: &FakeAws, uid: &str, name: &str) -> Option<String> {
    fake.dynamo
        .item(fake_env::INSTANCES, uid)
        .and_then(|i| i.get(name).map(|v| format!("{v:?}")))
}

#[tokio::test]
async fn restore_backup_backs_up_the_current_state_first_then_restores_and_the_instance_starts_again() {
    let (app, fake, backup_id) = stopped_with_a_backup().await;
    let backups_before = backup_runs(&fake, UID).len();
    let (code, body) = invoke(&app, restore_ev(UID, &backup_id)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["message"], "Backup restored");
    assert_eq!(body["backupId"], backup_id.as_str());
    // First the backup of the current state, then the restore of the chosen version.
    let backups = backup_runs(&fake, UID);
    assert_eq!(backups.len(), backups_before + 1 + 1, "{backups:?}");
    let pre = &backups[backups_before];
    assert_eq!(
        env_of(pre, taskdef::BACKUP_UPLOAD_CONTAINER, "BACKUP_CAUSE"),
        Some("pre-restore")
    );
    let restores = restore_runs(&fake);
    assert_eq!(restores.len(), 1);
    let version = backup_id.split_once('/').unwrap().1;
    assert_eq!(
        env_of(&restores[0], taskdef::RESTORE_FETCH_CONTAINER, "BACKUP_VERSION"),
        Some(version)
    );
    assert_eq!(env_of(&restores[0], taskdef::RESTORE_CONTAINER, "USER_ID"), Some(UID));
    let order: Vec<_> = fake
        .ecs
        .run_requests()
        .iter()
        .map(|r| r.task_definition.clone())
        .collect();
    let pre_at = order.iter().position(|d| d == &pre.task_definition).unwrap();
    let restore_at = order.iter().position(|d| d == &restores[0].task_definition).unwrap();
    assert!(pre_at < restore_at, "the backup comes before the restore");
    // The restore task: the backup role, EFS read-write for the restore container only.
    let def = fake
        .ecs
        .task_definition(&restores[0].task_definition)
        .unwrap()
        .definition;
    assert_eq!(def.task_role_arn, BACKUP_ROLE);
    assert!(def.containers[1]
        .mounts
        .iter()
        .any(|m| m.container_path == "/efs" && !m.read_only));
    assert!(!def.containers[0].mounts.iter().any(|m| m.container_path == "/efs"));
    assert_eq!(record_attr(&fake, UID, "restoreState"), None);
    let (code, body) = invoke(&app, ev("start", UID)).await;
    assert_eq!(code, 200, "{body}");
}

#[tokio::test]
async fn no_restore_while_the_instance_runs_and_nothing_changes() {
    let (app, fake, backup_id) = stopped_with_a_backup().await;
    invoke(&app, ev("start", UID)).await;
    let runs_before = fake.ecs.run_requests().len();
    let item_before = fake.dynamo.item(fake_env::INSTANCES, UID);
    let (code, body) = invoke(&app, restore_ev(UID, &backup_id)).await;
    assert_eq!(code, 500, "{body}");
    assert_eq!(
        body["error"],
        "Internal error: Restore refused: the instance is running; stop it first"
    );
    assert_eq!(fake.ecs.run_requests().len(), runs_before, "no task launched");
    assert_eq!(
        fake.dynamo.item(fake_env::INSTANCES, UID),
        item_before,
        "the record is unchanged"
    );
}

#[tokio::test]
async fn restoring_another_users_backup_is_403_and_an_unknown_one_a_not_found() {
    let (app, fake, backup_id) = stopped_with_a_backup().await;
    let other = fake
        .s3
        .put_version(BUCKET, &backup::object_key(fake_env::UID2), 5, T0, &[]);
    let runs_before = fake.ecs.run_requests().len();
    let (code, body) = invoke(&app, restore_ev(UID, &format!("{}/{other}", fake_env::UID2))).await;
    assert_eq!(code, 403, "{body}");
    // Another user's version named bare is not one of the user's backups.
    let (code, body) = invoke(&app, restore_ev(UID, &other)).await;
    assert_eq!(code, 500, "{body}");
    assert_eq!(
        body["error"],
        format!("Internal error: Backup not found: {UID}/{other}")
    );
    let (code, body) = invoke(&app, restore_ev(UID, &format!("{UID}/no-such-version"))).await;
    assert_eq!(code, 500, "{body}");
    assert_eq!(
        body["error"],
        format!("Internal error: Backup not found: {UID}/no-such-version")
    );
    let (code, body) = invoke(&app, restore_ev(UID, "../../etc")).await;
    assert_eq!(code, 403, "{body}");
    // A non-admin naming another user is refused before anything is read.
    let (code, _) = invoke(
        &app,
        serde_json::json!({"action":"restore-backup","userId":fake_env::UID2,"targetUserId":UID,"backupId":backup_id}),
    )
    .await;
    assert_eq!(code, 403);
    assert_eq!(fake.ecs.run_requests().len(), runs_before);
    assert_eq!(record_attr(&fake, UID, "restoreState"), None);
}

#[tokio::test]
async fn restore_backup_without_backups_or_without_a_backup_id_is_a_400() {
    let (app, _, _) = fake_app(T0);
    let (code, body) = invoke(&app, restore_ev(UID, "x/y")).await;
    assert_eq!(code, 400, "{body}");
    let (app, _, _) = stopped_with_a_backup().await;
    let (code, body) = invoke(&app, ev("restore-backup", UID)).await;
    assert_eq!(code, 400, "{body}");
    assert_eq!(body["error"], "Missing required parameter: backupId");
}

#[tokio::test]
async fn a_restore_that_failed_halfway_blocks_start_until_a_later_restore_backup_finishes_it() {
    let (app, fake, backup_id) = stopped_with_a_backup().await;
    fake.ecs
        .set_exit_code(taskdef::RESTORE_FAMILY, taskdef::RESTORE_CONTAINER, 1);
    let (code, body) = invoke(&app, restore_ev(UID, &backup_id)).await;
    assert_eq!(code, 500, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("Restore failed (restore exited with 1)"),
        "{body}"
    );
    let (_, status) = invoke(&app, ev("status", UID)).await;
    assert_eq!(status["restoreInProgress"], backup_id.as_str(), "{status}");
    let (code, body) = invoke(&app, ev("start", UID)).await;
    assert_eq!(code, 500, "{body}");
    assert!(body["error"].as_str().unwrap().contains("unfinished"), "{body}");
    // Another backup cannot be restored over it, and no backup archives half a world.
    let (code, body) = invoke(&app, restore_ev(UID, &format!("{UID}/other"))).await;
    assert_eq!(code, 500, "{body}");
    assert!(body["error"].as_str().unwrap().contains("is unfinished"), "{body}");
    let got = launch_backup_after_run(&app.services, UID, &[], Cause::RunEnd)
        .await
        .unwrap();
    assert_eq!(
        got,
        BackupLaunch::Skipped("a restore of the user's directory is unfinished")
    );

    fake.ecs
        .set_exit_code(taskdef::RESTORE_FAMILY, taskdef::RESTORE_CONTAINER, 0);
    let pre_restore_backups = |f: &FakeAws| {
        backup_runs(f, UID)
            .iter()
            .filter(|r| env_of(r, taskdef::BACKUP_UPLOAD_CONTAINER, "BACKUP_CAUSE") == Some("pre-restore"))
            .count()
    };
    let before = pre_restore_backups(&fake);
    let (code, body) = invoke(&app, restore_ev(UID, &backup_id)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        pre_restore_backups(&fake),
        before,
        "the resume does not back up a half-restored directory"
    );
    assert_eq!(restore_runs(&fake).len(), 2);
    let (code, body) = invoke(&app, ev("start", UID)).await;
    assert_eq!(code, 200, "{body}");
}

#[tokio::test]
async fn a_restore_cut_short_by_the_deadline_is_resumed_without_a_second_task() {
    let (app, fake, backup_id) = stopped_with_a_backup().await;
    // The restore task runs on past the first call's deadline.
    fake.ecs
        .set_family_script(taskdef::RESTORE_FAMILY, vec!["PENDING", "RUNNING"]);
    let (code, body) = invoke(&app, restore_ev(UID, &backup_id)).await;
    assert_eq!(code, 500, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("Restore in progress"),
        "{body}"
    );
    let (code, _) = invoke(&app, ev("start", UID)).await;
    assert_eq!(code, 500, "no start while the restore is unfinished");
    let task = restore_runs(&fake).len();
    assert_eq!(task, 1);
    for t in fake
        .ecs
        .running_tasks()
        .iter()
        .filter(|t| t.family == taskdef::RESTORE_FAMILY)
    {
        fake.ecs.set_task_status(&t.arn, "STOPPED");
    }
    let (code, body) = invoke(&app, restore_ev(UID, &backup_id)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        restore_runs(&fake).len(),
        1,
        "the task of the first call finished the job"
    );
    assert_eq!(record_attr(&fake, UID, "restoreState"), None);
}

#[tokio::test]
async fn a_start_that_lands_between_the_restores_read_and_its_write_wins_and_nothing_is_restored() {
    use foundry_lambda::managers::dynamodb::AttributeValue;
    use foundry_lambda::testing::FakeDynamo;
    let (app, fake, backup_id) = stopped_with_a_backup().await;
    let dynamo = fake.dynamo.clone();
    let n = fake.faults.count(FakeDynamo::UPDATE_ITEM);
    fake.before_call(FakeDynamo::UPDATE_ITEM, n + 1, move || {
        let mut item = dynamo.item(fake_env::INSTANCES, UID).unwrap();
        item.insert("status".into(), AttributeValue::S("starting".into()));
        dynamo.put_raw(fake_env::INSTANCES, "userId", item);
    });
    let runs_before = fake.ecs.run_requests().len();
    let (code, body) = invoke(&app, restore_ev(UID, &backup_id)).await;
    assert_eq!(code, 500, "{body}");
    assert!(body["error"].as_str().unwrap().contains("changed or is busy"), "{body}");
    assert_eq!(fake.ecs.run_requests().len(), runs_before);
    assert_eq!(record_attr(&fake, UID, "restoreState"), None);
}

// ------------------------------------------------------------------ before destructive actions

fn causes(fake: &FakeAws) -> Vec<String> {
    backup_runs(fake, UID)
        .iter()
        .map(|r| {
            env_of(r, taskdef::BACKUP_UPLOAD_CONTAINER, "BACKUP_CAUSE")
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

#[tokio::test]
async fn update_version_backs_up_a_stopped_instance_first_and_the_next_start_waits_for_it() {
    let (app, fake, _) = stopped_with_a_backup().await;
    let before = causes(&fake).len();
    let upd = |v: &str| serde_json::json!({"action":"update-version","userId":UID,"foundryVersion":v});
    let (code, body) = invoke(&app, upd("12")).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(causes(&fake)[before..], ["pre-update"]);
    // The same version again changes nothing and backs nothing up.
    for t in running_backups(&fake) {
        fake.ecs.set_task_status(&t, "STOPPED");
    }
    let (code, _) = invoke(&app, upd("12")).await;
    assert_eq!(code, 200);
    assert_eq!(causes(&fake).len(), before + 1);
    // A running instance: the end of its run backs up before the new version starts.
    invoke(&app, ev("start", UID)).await;
    let (code, _) = invoke(&app, upd("11")).await;
    assert_eq!(code, 200);
    assert_eq!(causes(&fake).len(), before + 1);
}

#[tokio::test]
async fn destroy_takes_the_final_backup_before_the_files_are_erased() {
    let (app, fake, _) = stopped_with_a_backup().await;
    let (code, body) = invoke(&app, ev("destroy", UID)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(causes(&fake).last().map(String::as_str), Some("pre-destroy"));
    let order: Vec<String> = fake
        .ecs
        .run_requests()
        .iter()
        .filter_map(|r| fake.ecs.task_definition(&r.task_definition).map(|d| d.family))
        .collect();
    let backup_at = order.iter().rposition(|f| f == BACKUP_FAMILY).unwrap();
    let cleanup_at = order.iter().position(|f| f == taskdef::CLEANUP_FAMILY).unwrap();
    assert!(backup_at < cleanup_at, "{order:?}");
    assert!(fake.dynamo.item(fake_env::INSTANCES, UID).is_none());
}

#[tokio::test]
async fn a_destroy_whose_final_backup_is_still_running_keeps_the_files_and_the_next_one_finishes() {
    let (app, fake, _) = stopped_with_a_backup().await;
    fake.ecs.set_family_script(BACKUP_FAMILY, vec!["PENDING", "RUNNING"]);
    let (code, body) = invoke(&app, ev("destroy", UID)).await;
    assert_eq!(code, 500, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("the final backup is still running"),
        "{body}"
    );
    let cleanups = |f: &FakeAws| {
        f.ecs
            .run_requests()
            .iter()
            .filter(|r| {
                f.ecs
                    .task_definition(&r.task_definition)
                    .is_some_and(|d| d.family == taskdef::CLEANUP_FAMILY)
            })
            .count()
    };
    assert_eq!(cleanups(&fake), 0, "nothing erased before the final backup");
    assert_eq!(fake.efs.access_points().len(), 1);
    for t in running_backups(&fake) {
        fake.ecs.set_task_status(&t, "STOPPED");
    }
    let finals = causes(&fake).iter().filter(|c| *c == "pre-destroy").count();
    let (code, body) = invoke(&app, ev("destroy", UID)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        causes(&fake).iter().filter(|c| *c == "pre-destroy").count(),
        finals,
        "the resumed destroy waited for its backup, and took no other"
    );
    assert_eq!(cleanups(&fake), 1);
}

#[tokio::test]
async fn a_destroy_whose_final_backup_failed_keeps_the_files() {
    let (app, fake, _) = stopped_with_a_backup().await;
    fake.ecs
        .set_exit_code(BACKUP_FAMILY, taskdef::BACKUP_UPLOAD_CONTAINER, 1);
    let (code, body) = invoke(&app, ev("destroy", UID)).await;
    assert_eq!(code, 500, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("the final backup: it failed (upload exited with 1)"),
        "{body}"
    );
    assert_eq!(fake.efs.access_points().len(), 1, "the files are kept");
    let (_, status) = invoke(&app, ev("status", UID)).await;
    assert!(status["lastBackupFailure"].as_str().is_some(), "{status}");
}

// ------------------------------------------------------------------ destroy can be undone

fn create_restoring(uid: &str) -> serde_json::Value {
    let mut e = fake_env::create_event(uid, "alice");
    e["restoreBackup"] = serde_json::json!(true);
    e
}

#[tokio::test]
async fn destroy_keeps_the_final_backup_for_the_retention_days_and_a_later_create_restores_it() {
    let (app, fake, backup_id) = stopped_with_a_backup().await;
    let version = backup_id.split_once('/').unwrap().1.to_string();
    let (code, body) = invoke(&app, ev("destroy", UID)).await;
    assert_eq!(code, 200, "{body}");
    // The fake's backup task uploads nothing: the latest version is the final state.
    assert_eq!(body["restorableUntil"], T0 - 3600 + 30 * 86_400, "{body}");
    let key = backup::object_key(UID);
    assert_eq!(
        fake.s3.version_tags(BUCKET, &key, &version),
        [("destroyed".to_string(), "true".to_string())],
        "tagged for the lifecycle rule of destroyed users"
    );
    assert!(fake.dynamo.item(fake_env::INSTANCES, UID).is_none());

    let restores_before = restore_runs(&fake).len();
    let (code, body) = invoke(&app, create_restoring(UID)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["restore"]["status"], "restored", "{body}");
    assert_eq!(body["restore"]["backupId"], backup_id.as_str());
    let restores = restore_runs(&fake);
    assert_eq!(restores.len(), restores_before + 1);
    assert_eq!(
        env_of(
            restores.last().unwrap(),
            taskdef::RESTORE_FETCH_CONTAINER,
            "BACKUP_VERSION"
        ),
        Some(version.as_str())
    );
    assert_eq!(record_attr(&fake, UID, "restoreState"), None);
    assert_eq!(
        fake.s3.version_tags(BUCKET, &key, &version),
        [("destroyed".to_string(), "false".to_string())],
        "the user exists again: the restored backup is no longer under the rule of destroyed users"
    );
    let (code, body) = invoke(&app, ev("start", UID)).await;
    assert_eq!(code, 200, "{body}");
}

#[tokio::test]
async fn a_create_that_asks_for_a_restore_without_a_recent_backup_creates_nothing() {
    let (app, fake, _) = fake_app_with(T0, with_backups());
    fake.s3
        .put_version(BUCKET, &backup::object_key(UID), 10, T0 - 31 * 86_400, &[]);
    let (code, body) = invoke(&app, create_restoring(UID)).await;
    assert_eq!(code, 500, "{body}");
    assert_eq!(
        body["error"],
        "Internal error: No backup to restore: this user has no backup younger than 30 days"
    );
    assert!(fake.dynamo.item(fake_env::INSTANCES, UID).is_none());
    assert!(fake.efs.access_points().is_empty());
    let (app, _, _) = fake_app(T0);
    let (code, body) = invoke(&app, create_restoring(UID)).await;
    assert_eq!(code, 400, "{body}");
}

#[tokio::test]
async fn a_restore_after_create_that_does_not_finish_leaves_the_instance_and_restore_backup_finishes_it() {
    let (app, fake, _) = fake_app_with(T0, with_backups());
    let version = fake
        .s3
        .put_version(BUCKET, &backup::object_key(UID), 10, T0 - 86_400, &[]);
    fake.ecs
        .set_family_script(taskdef::RESTORE_FAMILY, vec!["PENDING", "RUNNING"]);
    let (code, body) = invoke(&app, create_restoring(UID)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["restore"]["status"], "unfinished", "{body}");
    let (code, _) = invoke(&app, ev("start", UID)).await;
    assert_eq!(code, 500, "no start on a half-restored directory");
    for t in fake
        .ecs
        .running_tasks()
        .iter()
        .filter(|t| t.family == taskdef::RESTORE_FAMILY)
    {
        fake.ecs.set_task_status(&t.arn, "STOPPED");
    }
    let (code, body) = invoke(&app, restore_ev(UID, &format!("{UID}/{version}"))).await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = invoke(&app, ev("start", UID)).await;
    assert_eq!(code, 200, "{body}");
}

// ------------------------------------------------------------------ failed backups

#[tokio::test]
async fn a_failed_backup_is_recorded_at_the_next_end_of_a_run_which_backs_up_again_and_status_keeps_the_last_good_time()
{
    let (app, fake, _) = stopped_with_a_backup().await;
    let (_, status) = invoke(&app, ev("status", UID)).await;
    let good = status["lastBackupAt"].clone();
    assert_eq!(good, T0 - 3600);
    // The stop's backup failed in its upload.
    fake.ecs
        .set_exit_code(BACKUP_FAMILY, taskdef::BACKUP_UPLOAD_CONTAINER, 1);
    let failed_task = fake
        .ecs
        .tasks()
        .into_iter()
        .rfind(|t| t.family == BACKUP_FAMILY)
        .unwrap()
        .arn;
    // (It stopped before the exit code was set: give it the failed exit code as ECS would.)
    fake.ecs.set_task_status(&failed_task, "RUNNING");
    fake.ecs.set_task_status(&failed_task, "STOPPED");
    let before = backup_runs(&fake, UID).len();
    let (code, body) = invoke(&app, ev("start", UID)).await;
    assert_eq!(code, 200, "{body}");
    invoke(&app, ev("stop", UID)).await;
    assert_eq!(
        backup_runs(&fake, UID).len(),
        before + 1,
        "the next end of a run backs up again"
    );
    let (_, status) = invoke(&app, ev("status", UID)).await;
    assert_eq!(status["lastBackupAt"], good, "{status}");
    assert_eq!(status["lastBackupFailure"], "upload exited with 1", "{status}");
    assert!(status["lastBackupFailedAt"].as_i64().is_some(), "{status}");
}

#[tokio::test]
async fn a_backup_running_past_two_hours_is_stopped_and_recorded_as_timed_out() {
    let (app, fake, clock) = fake_app_with(T0, with_backups());
    running(&app).await;
    invoke(&app, ev("stop", UID)).await;
    let stuck = running_backups(&fake);
    assert_eq!(stuck.len(), 1);
    clock.set(T0 + 3 * 3600);
    let inst = app.services.store.instances.get(UID).await.unwrap().unwrap();
    foundry_lambda::actions::resources::settle_recorded(&app.services, &inst).await;
    assert!(running_backups(&fake).is_empty(), "the stuck backup was stopped");
    let (_, status) = invoke(&app, ev("status", UID)).await;
    assert_eq!(status["lastBackupFailure"], "timed out after 7200 s", "{status}");
}

#[tokio::test]
async fn the_stopped_event_of_a_failed_backup_task_records_the_failure_at_once() {
    let (app, fake, _) = fake_app_with(T0, with_backups());
    running(&app).await;
    invoke(&app, ev("stop", UID)).await;
    let task = running_backups(&fake).pop().expect("the stop's backup");
    fake.ecs
        .set_exit_code(BACKUP_FAMILY, taskdef::BACKUP_UPLOAD_CONTAINER, 1);
    fake.ecs.set_task_status(&task, "STOPPED");
    let event = serde_json::json!({"version":"0","id":"e-1","detail-type":"ECS Task State Change","source":"aws.ecs",
        "account":"123456789012","time":"2026-01-01T00:01:00Z","region":"us-east-1","resources":[task],
        "detail":{"clusterArn":"arn:aws:ecs:us-east-1:123456789012:cluster/foundry-vtt-cluster","taskArn":task,
                  "group":"family:foundry-world-backup","startedBy":format!("backup-{UID}"),
                  "lastStatus":"STOPPED","desiredStatus":"STOPPED",
                  "containers":[{"name":"upload","exitCode":1}]}});
    let (code, body) = invoke(&app, event).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["outcome"], "backup-recorded", "{body}");
    let (_, status) = invoke(&app, ev("status", UID)).await;
    assert_eq!(status["lastBackupFailure"], "upload exited with 1", "{status}");
    assert_eq!(record_attr(&fake, UID, "backupTaskArn"), None);
}

#[tokio::test]
async fn a_failed_run_end_backup_is_recorded_before_a_backup_before_a_destructive_action_replaces_it() {
    let (app, fake, _) = fake_app_with(T0, with_backups());
    fake.ecs.set_auto_stop(BACKUP_FAMILY);
    running(&app).await;
    invoke(&app, ev("stop", UID)).await;
    let task = running_backups(&fake).pop().expect("the stop's backup");
    fake.ecs
        .set_exit_code(BACKUP_FAMILY, taskdef::BACKUP_UPLOAD_CONTAINER, 1);
    fake.ecs.set_task_status(&task, "STOPPED");
    let upd = serde_json::json!({"action":"update-version","userId":UID,"foundryVersion":"12"});
    let (code, body) = invoke(&app, upd).await;
    assert_eq!(code, 200, "{body}");
    let (_, status) = invoke(&app, ev("status", UID)).await;
    assert_eq!(status["lastBackupFailure"], "upload exited with 1", "{status}");
}

#[tokio::test]
async fn a_session_whose_user_has_a_backup_running_stays_scheduled_for_the_next_sweep() {
    let (app, fake, clock) = fake_app_with(T0, with_backups());
    running(&app).await;
    invoke(&app, ev("stop", UID)).await;
    assert_eq!(running_backups(&fake).len(), 1);
    let start = T0 + 3600;
    let (code, body) = invoke(
        &app,
        serde_json::json!({"action":"schedule-session","userId":UID,"startTime":start,"endTime":start + 7200,
                           "licenseType":"byol","sessionTitle":"Dragons"}),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let session = body["sessionId"].as_str().unwrap().to_string();
    clock.set(start);
    let starts_before = foundry_runs(&fake);
    let go = serde_json::json!({"action":"start-scheduled-session","userId":UID,"sessionId":session});
    let (_, body) = invoke(&app, go.clone()).await;
    assert_eq!(body["success"], false, "{body}");
    assert!(body["message"].as_str().unwrap().contains("still running"), "{body}");
    assert_eq!(foundry_runs(&fake), starts_before);
    let item = fake.dynamo.item("foundry-vtt-instances-scheduled-sessions", &session);
    assert!(
        format!("{item:?}").contains("\"scheduled\""),
        "still scheduled: {item:?}"
    );
    // The backup ends: the next try starts the session.
    for t in running_backups(&fake) {
        fake.ecs.set_task_status(&t, "STOPPED");
    }
    let (_, body) = invoke(&app, go).await;
    assert_eq!(body["success"], true, "{body}");
}
