//! The world backup task: after a run ends, an archive of the user's directory goes to the
//! deployment's backup bucket (see `domain::backup` for the scripts and the object layout).
//!
//! The same helper mechanism as the cleanup task: a fingerprinted definition reused for the
//! life of the process, the EFS file system mounted (read-only), `startedBy` naming the user.
//! The task runs with its own role (`BACKUP_TASK_ROLE_ARN`: write to the backup bucket and
//! describe the cluster's tasks), never with the user's IAM keys.

use crate::config::BackupSettings;
use crate::context::Services;
use crate::domain::backup::{self, Cause};
use crate::domain::model::InstanceStatus;
use crate::domain::taskdef::{self, BackupTarget, ContainerOverride};
use crate::error::{AwsErrorKind, Result};

use super::cleanup_task::helper_definition;

/// What a backup request came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupLaunch {
    /// Backups are off (`BACKUPS` is not `on`).
    Off,
    /// Not launched, and why (a run has begun, a backup already runs, the instance is gone).
    Skipped(&'static str),
    /// The backup task, launched.
    Launched(String),
}

/// Launches a backup of `user_id`'s directory after the run that used `ended_tasks` ended
/// (those tasks were told to stop; the backup task waits until they have). Never waits for
/// the backup itself. Records the launch, and the time of the latest good backup, on the
/// instance record.
///
/// The guard: no backup while a run of the user is under way. The record is read again
/// (strongly consistent) and must say `stopped`: a start that came after the end has begun
/// a run, whose server will write the world.
pub async fn launch_after_run(
    svc: &Services,
    user_id: &str,
    ended_tasks: &[String],
    cause: Cause,
) -> Result<BackupLaunch> {
    let Some(settings) = svc.config.backups.as_ref() else {
        return Ok(BackupLaunch::Off);
    };
    match svc.store.instances.get_latest(user_id).await? {
        None => return Ok(BackupLaunch::Skipped("the instance is gone")),
        Some(inst) if inst.status != InstanceStatus::Stopped => {
            return Ok(BackupLaunch::Skipped("a run of the user is under way"));
        }
        Some(_) => {}
    }
    let cluster = &svc.config.cluster_name;
    if !svc
        .aws
        .ecs
        .list_tasks_started_by(cluster, &taskdef::backup_started_by(user_id))
        .await?
        .is_empty()
    {
        return Ok(BackupLaunch::Skipped("a backup of the user is running"));
    }
    // The run's tasks that ECS has not stopped yet: the task's first container waits for them.
    let mut still_stopping = Vec::new();
    for arn in ended_tasks {
        match svc.aws.ecs.describe_task(cluster, arn).await? {
            Some(t) if t.last_status.eq_ignore_ascii_case("STOPPED") => {}
            Some(_) => still_stopping.push(arn.clone()),
            None => {}
        }
    }
    let key = backup::object_key(user_id);
    let latest = svc.aws.s3.head_object(&settings.bucket, &key, None).await?;
    let previous_manifest = latest
        .as_ref()
        .and_then(|h| h.metadata.get(backup::MANIFEST_METADATA))
        .filter(|m| backup::valid_manifest(m))
        .cloned()
        .unwrap_or_default();
    let task = launch(svc, settings, user_id, &still_stopping, &previous_manifest, cause).await?;
    let now = svc.now();
    svc.store
        .instances
        .note_backup(user_id, &task, now, latest.map(|h| h.last_modified))
        .await?;
    Ok(BackupLaunch::Launched(task))
}

/// RunTask of the backup task → its ARN.
async fn launch(
    svc: &Services,
    settings: &BackupSettings,
    user_id: &str,
    after_tasks: &[String],
    previous_manifest: &str,
    cause: Cause,
) -> Result<String> {
    let env = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
    };
    let overrides = vec![
        ContainerOverride {
            name: taskdef::BACKUP_WAIT_CONTAINER.into(),
            environment: env(&[("AFTER_TASKS", &after_tasks.join(" "))]),
        },
        ContainerOverride {
            name: taskdef::BACKUP_ARCHIVE_CONTAINER.into(),
            environment: env(&[("USER_ID", user_id), ("PREVIOUS_MANIFEST", previous_manifest)]),
        },
        ContainerOverride {
            name: taskdef::BACKUP_UPLOAD_CONTAINER.into(),
            environment: env(&[("USER_ID", user_id), ("BACKUP_CAUSE", cause.as_str())]),
        },
    ];
    let deployment = svc.config.deployment();
    let target = BackupTarget {
        bucket: &settings.bucket,
        task_role_arn: &settings.task_role_arn,
    };
    let mut fresh = false;
    loop {
        let arn = helper_definition(svc, fresh, || taskdef::backup_task_definition(&deployment, &target)).await?;
        let mut req = taskdef::run_task(&deployment, &arn, overrides.clone());
        req.started_by = Some(taskdef::backup_started_by(user_id));
        match svc.aws.ecs.run_task(&req).await {
            Ok(task) => return Ok(task),
            // The cached revision was deregistered behind our back: register again, once.
            Err(e) if !fresh && matches!(e.kind, AwsErrorKind::NotFound | AwsErrorKind::Invalid) => {
                tracing::info!(error = %e, "backup task definition unusable; registering it again");
                fresh = true;
            }
            Err(e) => return Err(e.into()),
        }
    }
}
