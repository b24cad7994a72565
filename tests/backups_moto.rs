//! World backups through the handler, against moto, with `BACKUPS=on`: a stop launches the
//! backup task (its definition registered in ECS, `startedBy` naming the user); a start
//! while it runs waits for it and is refused at its deadline; `restore-backup` is refused
//! while the instance runs, and restores after a backup of the current state; `destroy`
//! takes the final backup, tags the user's backups for their lifecycle rule and answers
//! `restorableUntil`; a later `create` with `restoreBackup` restores it.
//!
//! moto does not run containers: a stand-in for ECS's work stops the user's helper tasks
//! (backups, restores, the EFS cleanup) with exit code 0 once they run, as their scripts
//! would; `tests/backup_scripts.rs` runs the scripts themselves. The bucket and the role
//! are the ones `tools/iam_check.py` resolves the template's `BackupBucket` and
//! `BackupTaskRole` to, so these requests are held against the template's grants.

mod moto_env;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use foundry_lambda::app::{App, Ctx};
use foundry_lambda::clock::{Clock, SystemClock};
use foundry_lambda::config::Config;
use foundry_lambda::domain::backup;
use foundry_lambda::managers::Managers;
use serde_json::{json, Value};

/// The backup bucket as the template names it in moto's account and region.
const BUCKET: &str = "vtt-world-backups-123456789012-us-east-1";
/// The backup task role the tests stand in for the template's `BackupTaskRole`.
const BACKUP_ROLE: &str = "arn:aws:iam::123456789012:role/foundry-world-backup-task";

async fn s3() -> aws_sdk_s3::Client {
    let sdk = moto_env::sdk_config().await;
    aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).build())
}

async fn app() -> App {
    let aws = moto_env::local_aws();
    let config = Config::from_lookup(|k| match k {
        "BACKUPS" => Some("on".into()),
        "BACKUP_BUCKET" => Some(BUCKET.into()),
        "BACKUP_TASK_ROLE_ARN" => Some(BACKUP_ROLE.into()),
        _ => aws.env.get(k).cloned(),
    })
    .expect("the env file is a complete configuration");
    let s3 = s3().await;
    // Created once per moto (versioned, as the template makes it); "already owned" is fine.
    let _ = s3.create_bucket().bucket(BUCKET).send().await;
    s3.put_bucket_versioning()
        .bucket(BUCKET)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .expect("versioning");
    let sdk = moto_env::sdk_config().await;
    App::new(config, Arc::new(SystemClock), Managers::from_sdk(&sdk))
}

async fn call(app: &App, event: Value, ctx: &Ctx) -> (u16, Value) {
    let handled = app.handle(&event, ctx).await;
    (
        handled.envelope.status_code,
        handled.envelope.body_json().unwrap_or(Value::Null),
    )
}

/// The value of the `destroyed` tag of one version of a backup, if it has one.
async fn destroyed_tag(s3: &aws_sdk_s3::Client, key: &str, version: &str) -> Option<String> {
    let tags = s3
        .get_object_tagging()
        .bucket(BUCKET)
        .key(key)
        .version_id(version)
        .send()
        .await
        .expect("GetObjectTagging");
    tags.tag_set()
        .iter()
        .find(|t| t.key() == "destroyed")
        .map(|t| t.value().to_string())
}

fn ev(action: &str, uid: &str) -> Value {
    json!({"action": action, "userId": uid})
}

async fn ecs() -> aws_sdk_ecs::Client {
    aws_sdk_ecs::Client::new(&moto_env::sdk_config().await)
}

/// The tasks ECS lists for `started_by` (desired status RUNNING).
async fn listed(started_by: &str) -> Vec<String> {
    let cluster = moto_env::local_aws().var("CLUSTER_NAME").to_string();
    ecs()
        .await
        .list_tasks()
        .cluster(cluster)
        .started_by(started_by)
        .send()
        .await
        .expect("ListTasks")
        .task_arns()
        .to_vec()
}

/// The family of a task.
async fn family_of(task: &str) -> String {
    let cluster = moto_env::local_aws().var("CLUSTER_NAME").to_string();
    let out = ecs()
        .await
        .describe_tasks()
        .cluster(cluster)
        .tasks(task)
        .send()
        .await
        .expect("DescribeTasks");
    let def = out.tasks()[0].task_definition_arn().unwrap_or_default().to_string();
    def.rsplit('/')
        .next()
        .unwrap_or_default()
        .split(':')
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Stands in for the containers of the user's helper tasks: while on, every backup, restore
/// or cleanup task of `uid` that ECS lists is stopped with exit code 0 (its script
/// succeeded). Returns the switch and the families it stopped, in order.
fn helper_runner(uid: &str) -> (Arc<AtomicBool>, Arc<std::sync::Mutex<Vec<String>>>) {
    let on = Arc::new(AtomicBool::new(true));
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (on2, seen2, uid) = (on.clone(), seen.clone(), uid.to_string());
    tokio::spawn(async move {
        while on2.load(Ordering::SeqCst) {
            for by in [format!("backup-{uid}"), format!("efs-cleanup-{uid}")] {
                for task in listed(&by).await {
                    let family = family_of(&task).await;
                    moto_env::set_task_status(&task, "STOPPED", Some(0));
                    seen2.lock().unwrap().push(family);
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
    });
    (on, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_restore_and_undoing_a_destroy_against_moto() {
    let app = app().await;
    let uid = moto_env::unique_user_id();
    let san = format!("bk{}", &uid[uid.len() - 10..]);
    let family = format!("foundry-{uid}");
    let none = Ctx::default();
    let create = json!({"action":"create","userId":uid,"sanitizedUsername":san,"foundryUsername":"gm@example.com",
                        "foundryPassword":"moto-pw-123","licenseType":"byol"});
    let (code, body) = call(&app, create.clone(), &none).await;
    assert_eq!(code, 200, "create: {body}");
    moto_env::set_ecs_transition(Some(&family), r#"{"progression":"immediate"}"#);
    let (code, body) = call(&app, ev("start", &uid), &none).await;
    assert_eq!((code, body["status"].as_str()), (200, Some("running")), "{body}");

    // A stop launches the backup task, which moto keeps RUNNING.
    let (code, body) = call(&app, ev("stop", &uid), &none).await;
    assert_eq!(code, 200, "stop: {body}");
    let backups = listed(&format!("backup-{uid}")).await;
    assert_eq!(backups.len(), 1, "one backup after the run");
    assert_eq!(family_of(&backups[0]).await, "foundry-world-backup");

    // A start while it runs waits for it, and is refused at its deadline.
    let short = Ctx {
        request_id: "backup-busy".into(),
        deadline_ms: Some(SystemClock.now_ms() + 17_000),
    };
    let (code, body) = call(&app, ev("start", &uid), &short).await;
    assert_eq!(code, 500, "{body}");
    assert!(body["error"].as_str().unwrap().contains("still running"), "{body}");
    let (_, s) = call(&app, ev("status", &uid), &none).await;
    assert_eq!(s["status"], "stopped", "{s}");

    // The backup ends; the start goes on; no restore while the instance runs.
    moto_env::set_task_status(&backups[0], "STOPPED", Some(0));
    let (code, body) = call(&app, ev("start", &uid), &none).await;
    assert_eq!((code, body["status"].as_str()), (200, Some("running")), "{body}");
    let s3 = s3().await;
    let key = backup::object_key(&uid);
    let put = s3
        .put_object()
        .bucket(BUCKET)
        .key(&key)
        .metadata("manifest", "ab".repeat(32))
        .metadata("cause", "run-end")
        .body(aws_sdk_s3::primitives::ByteStream::from_static(b"a world"))
        .send()
        .await
        .expect("PutObject");
    let version = put.version_id().expect("a versioned bucket").to_string();
    let backup_id = format!("{uid}/{version}");
    let restore = json!({"action":"restore-backup","userId":uid,"backupId":backup_id});
    let (code, body) = call(&app, restore.clone(), &none).await;
    assert_eq!(code, 500, "{body}");
    assert!(body["error"].as_str().unwrap().contains("Restore refused"), "{body}");

    let (runner, seen) = helper_runner(&uid);
    let (code, body) = call(&app, ev("stop", &uid), &none).await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = call(&app, ev("list-backups", &uid), &none).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["backups"][0]["backupId"], backup_id.as_str(), "{body}");
    assert_eq!(body["backups"][0]["cause"], "run-end");

    // restore-backup: a backup of the current state, then the restore task.
    let (code, body) = call(&app, restore, &none).await;
    assert_eq!(code, 200, "restore: {body}");
    let families = seen.lock().unwrap().clone();
    let restore_at = families
        .iter()
        .position(|f| f == "foundry-world-restore")
        .expect("a restore task ran");
    assert!(
        families[..restore_at]
            .iter()
            .filter(|f| *f == "foundry-world-backup")
            .count()
            >= 2,
        "the run's backup and the pre-restore backup came first: {families:?}"
    );
    let (code, body) = call(&app, ev("status", &uid), &none).await;
    assert!(code == 200 && body.get("restoreInProgress").is_none(), "{body}");

    // destroy: the final backup, the versions tagged for their lifecycle rule.
    let (code, body) = call(&app, ev("destroy", &uid), &none).await;
    assert_eq!(code, 200, "destroy: {body}");
    let until = body["restorableUntil"].as_i64().expect("restorableUntil");
    assert!(until > SystemClock.now() + 29 * 86_400, "{body}");
    assert_eq!(destroyed_tag(&s3, &key, &version).await.as_deref(), Some("true"));

    // A later create restores it.
    let mut again = create.clone();
    again["restoreBackup"] = json!(true);
    let (code, body) = call(&app, again, &none).await;
    assert_eq!(code, 200, "create with restoreBackup: {body}");
    assert_eq!(body["restore"]["status"], "restored", "{body}");
    assert_eq!(body["restore"]["backupId"], backup_id.as_str());
    assert_ne!(
        destroyed_tag(&s3, &key, &version).await.as_deref(),
        Some("true"),
        "the user exists again: no longer under the rule of destroyed users"
    );

    let (code, body) = call(&app, ev("destroy", &uid), &none).await;
    assert_eq!(code, 200, "second destroy: {body}");
    runner.store(false, Ordering::SeqCst);
    moto_env::unset_ecs_transition(Some(&family));
}
