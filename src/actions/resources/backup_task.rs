//! The world backup task: after a run ends, an archive of the user's directory goes to the
//! deployment's backup bucket (see `domain::backup` for the scripts and the object layout).
//!
//! The same helper mechanism as the cleanup task: a fingerprinted definition reused for the
//! life of the process, the EFS file system mounted (read-only), `startedBy` naming the user.
//! The task runs with its own role (`BACKUP_TASK_ROLE_ARN`: write to the backup bucket and
//! describe the cluster's tasks), never with the user's IAM keys.

use crate::config::BackupSettings;
use crate::context::{Ctx, Services};
use crate::domain::backup::{self, Cause};
use crate::domain::model::{Instance, InstanceStatus};
use crate::domain::taskdef::{self, BackupTarget, ContainerOverride};
use crate::error::{Error, Result};
use crate::managers::ecs::TaskInfo;
use crate::store::{BackupLaunched, BackupSettled};

use super::cleanup_task::run_helper;
use super::kind::{removed, ResourceKind};
use super::waits::{watch_task, Backoff};

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

/// Whether `inst` has a run under way (or one that was never ended): its server may
/// write the world, so nothing may read or replace the directory.
pub fn run_under_way(inst: &Instance) -> bool {
    matches!(inst.status, InstanceStatus::Starting | InstanceStatus::Running) || inst.task_arn.is_some()
}

/// Launches a backup of `user_id`'s directory after the run that used `ended_tasks` ended
/// (those tasks were told to stop; the backup task waits until they have). Never waits for
/// the backup itself. Records the launch, and the time of the latest good backup, on the
/// instance record.
///
/// The guard: no backup while a run of the user is under way. The record is read again
/// (strongly consistent) and must have no run: a start that came after the end has begun
/// a run, whose server will write the world. It is read once more after RunTask: a start
/// that began in between has checked for backups before this one existed, so the backup
/// is stopped (the start, for its part, checks again after its own write).
pub async fn launch_after_run(
    svc: &Services,
    user_id: &str,
    ended_tasks: &[String],
    cause: Cause,
) -> Result<BackupLaunch> {
    let Some(settings) = svc.config.backups.as_ref() else {
        return Ok(BackupLaunch::Off);
    };
    let inst = match svc.store.instances.get_latest(user_id).await? {
        None => return Ok(BackupLaunch::Skipped("the instance is gone")),
        Some(inst) if run_under_way(&inst) => {
            return Ok(BackupLaunch::Skipped("a run of the user is under way"));
        }
        // Being created (no files yet) or destroyed (the destroy takes the final backup).
        Some(inst) if !matches!(inst.status, InstanceStatus::Stopped | InstanceStatus::Created) => {
            return Ok(BackupLaunch::Skipped("the instance is being created or destroyed"));
        }
        Some(inst) => inst,
    };
    if inst.restore_state.is_some() {
        // A half-restored directory is not a world; the restore finishes it first.
        return Ok(BackupLaunch::Skipped("a restore of the user's directory is unfinished"));
    }
    // How the backup before this one ended (the next end of a run is its retry).
    settle_recorded(svc, &inst).await;
    let cluster = &svc.config.cluster_name;
    if !world_tasks(svc, user_id).await?.is_empty() {
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
    let (latest, previous_manifest) = latest_backup(svc, settings, user_id).await?;
    let task = launch(svc, settings, user_id, &still_stopping, &previous_manifest, cause).await?;
    let now = svc.now();
    let launched = BackupLaunched {
        task_arn: &task,
        cause: cause.as_str(),
        at: now,
        last_good: latest.map(|h| h.last_modified),
    };
    svc.store.instances.note_backup(user_id, &launched).await?;
    if svc
        .store
        .instances
        .get_latest(user_id)
        .await?
        .is_some_and(|i| run_under_way(&i))
    {
        tracing::info!(task = %task, "a run began while the backup was launched; stopping the backup");
        removed(
            ResourceKind::Task,
            svc.aws.ecs.stop_task(cluster, &task, "A run of the user began").await,
        )?;
        return Ok(BackupLaunch::Skipped("a run of the user began"));
    }
    Ok(BackupLaunch::Launched(task))
}

/// The user's world tasks (backups and restores; both are started by
/// [`taskdef::backup_started_by`]) that ECS still runs or has yet to start.
pub async fn world_tasks(svc: &Services, user_id: &str) -> Result<Vec<String>> {
    Ok(svc
        .aws
        .ecs
        .list_tasks_started_by(&svc.config.cluster_name, &taskdef::backup_started_by(user_id))
        .await?)
}

/// With backups on: waits (within the invocation's deadline) until no backup or restore
/// task of the user runs, so that no server starts on a directory being read or replaced.
/// Still running at the deadline: a clear refusal, nothing started.
pub async fn wait_for_world_tasks(svc: &Services, ctx: &Ctx, user_id: &str) -> Result<()> {
    if svc.config.backups.is_none() {
        return Ok(());
    }
    let until = ctx.wait_until_ms(svc.clock.as_ref());
    let mut backoff = Backoff::standard();
    loop {
        if world_tasks(svc, user_id).await?.is_empty() {
            return Ok(());
        }
        if !backoff.pause(svc.clock.as_ref(), until).await {
            return Err(Error::failed(BACKUP_BUSY));
        }
    }
}

/// The answer of a start that came while a backup or restore of the user's worlds ran and
/// did not end in time.
pub const BACKUP_BUSY: &str = "A backup or restore of this instance's worlds is still running; try again in a minute";

/// How a stopped backup task ended: its upload container exited with 0, or its archive
/// container found nothing to back up (exit code 4: the directory does not exist yet).
pub fn backup_outcome(task: &TaskInfo, now: i64) -> BackupSettled {
    let exit = |name: &str| {
        task.containers
            .iter()
            .find(|c| c.name == name)
            .and_then(|c| c.exit_code)
    };
    if exit(taskdef::BACKUP_UPLOAD_CONTAINER) == Some(0) || exit(taskdef::BACKUP_ARCHIVE_CONTAINER) == Some(4) {
        return BackupSettled::Good { uploaded_at: None };
    }
    let failed = task
        .containers
        .iter()
        .find(|c| c.exit_code.is_some_and(|code| code != 0))
        .map(|c| format!("{} exited with {}", c.name, c.exit_code.unwrap_or_default()));
    let why = failed.unwrap_or_else(|| {
        format!(
            "stopped before it finished: {}",
            task.stopped_reason.as_deref().unwrap_or("no reason given")
        )
    });
    BackupSettled::Failed {
        at: task.stopped_at.unwrap_or(now),
        why,
    }
}

/// A backup task running longer than this is taken for stuck: stopped and recorded as
/// failed (its archive and upload of the largest directories take minutes).
pub const BACKUP_TIMEOUT_SECONDS: i64 = 2 * 3600;

/// Records how the backup task the record names ended, when it has (a failure with its
/// reason; a good one with the time of the version it left), and stops one that ran past
/// [`BACKUP_TIMEOUT_SECONDS`]. Best effort: a failure to look is logged and the record
/// keeps naming the task.
pub async fn settle_recorded(svc: &Services, inst: &Instance) {
    if let Err(e) = try_settle(svc, inst).await {
        tracing::warn!(error = %e, "could not settle the recorded backup task");
    }
}

async fn try_settle(svc: &Services, inst: &Instance) -> Result<()> {
    let (Some(settings), Some(arn)) = (svc.config.backups.as_ref(), inst.backup_task_arn.as_deref()) else {
        return Ok(());
    };
    let now = svc.now();
    let cluster = &svc.config.cluster_name;
    let outcome = match svc.aws.ecs.describe_task(cluster, arn).await? {
        None => BackupSettled::Failed {
            at: now,
            why: "the task is unknown to ECS".into(),
        },
        Some(t) if t.last_status.eq_ignore_ascii_case("STOPPED") => backup_outcome(&t, now),
        Some(_)
            if inst
                .backup_launched_at
                .is_some_and(|t| now - t > BACKUP_TIMEOUT_SECONDS) =>
        {
            removed(
                ResourceKind::Task,
                svc.aws.ecs.stop_task(cluster, arn, "Backup timed out").await,
            )?;
            BackupSettled::Failed {
                at: now,
                why: format!("timed out after {BACKUP_TIMEOUT_SECONDS} s"),
            }
        }
        Some(_) => return Ok(()),
    };
    let outcome = match outcome {
        BackupSettled::Good { .. } => {
            let key = backup::object_key(&inst.user_id);
            let latest = svc.aws.s3.head_object(&settings.bucket, &key, None).await?;
            BackupSettled::Good {
                uploaded_at: latest.map(|h| h.last_modified),
            }
        }
        failed => {
            tracing::warn!(task = arn, outcome = ?failed, "the backup task failed");
            failed
        }
    };
    svc.store.instances.settle_backup(&inst.user_id, arn, &outcome).await
}

/// Launches a backup of `user_id` before something destructive (`cause`), records it, and
/// waits for it within the deadline → `Ok(None)` when it is still running then. A backup
/// already running is waited for instead, and the new one launched after it.
pub async fn backup_before(svc: &Services, ctx: &Ctx, user_id: &str, cause: Cause) -> Result<Option<BackupSettled>> {
    let Some(settings) = svc.config.backups.as_ref() else {
        return Ok(Some(BackupSettled::Good { uploaded_at: None }));
    };
    // The guard: never while a run of the user is under way.
    if svc
        .store
        .instances
        .get_latest(user_id)
        .await?
        .is_some_and(|i| run_under_way(&i))
    {
        return Err(Error::failed("A run of the user is under way; no backup is taken"));
    }
    let running = world_tasks(svc, user_id).await?;
    for arn in &running {
        if watch_backup(svc, ctx, arn).await?.is_none() {
            return Ok(None);
        }
    }
    // How the backup the record names ended, before the record names the new one.
    if let Some(inst) = svc.store.instances.get_latest(user_id).await? {
        settle_recorded(svc, &inst).await;
    }
    let (latest, previous_manifest) = latest_backup(svc, settings, user_id).await?;
    let task = launch(svc, settings, user_id, &[], &previous_manifest, cause).await?;
    let launched = BackupLaunched {
        task_arn: &task,
        cause: cause.as_str(),
        at: svc.now(),
        last_good: latest.map(|h| h.last_modified),
    };
    svc.store.instances.note_backup(user_id, &launched).await?;
    resume_backup(svc, ctx, user_id, &task).await
}

/// Waits for the recorded backup task `task` of `user_id` (within the deadline) and
/// records how it ended → `Ok(None)` when it is still running at the deadline.
pub async fn resume_backup(svc: &Services, ctx: &Ctx, user_id: &str, task: &str) -> Result<Option<BackupSettled>> {
    let Some(outcome) = watch_backup(svc, ctx, task).await? else {
        return Ok(None);
    };
    if let Some(inst) = svc.store.instances.get_latest(user_id).await? {
        settle_recorded(svc, &inst).await;
    }
    Ok(Some(outcome))
}

/// Waits for a backup task to stop → how it ended, or `None` when it still runs at the
/// deadline.
async fn watch_backup(svc: &Services, ctx: &Ctx, task: &str) -> Result<Option<BackupSettled>> {
    let now = svc.now();
    Ok(watch_task(svc, ctx, task, |t| match t {
        None => Some(BackupSettled::Failed {
            at: now,
            why: "the task is unknown to ECS".into(),
        }),
        Some(t) if t.last_status.eq_ignore_ascii_case("STOPPED") => Some(backup_outcome(&t, now)),
        Some(_) => None,
    })
    .await?)
}

/// The latest backup of `user_id` (when there is one) and its manifest digest (empty when
/// there is none, or it is not a digest: the task then archives, which is always safe).
async fn latest_backup(
    svc: &Services,
    settings: &BackupSettings,
    user_id: &str,
) -> Result<(Option<crate::managers::s3::ObjectHead>, String)> {
    let key = backup::object_key(user_id);
    let latest = svc.aws.s3.head_object(&settings.bucket, &key, None).await?;
    let manifest = latest
        .as_ref()
        .and_then(|h| h.metadata.get(backup::MANIFEST_METADATA))
        .filter(|m| backup::valid_manifest(m))
        .cloned()
        .unwrap_or_default();
    Ok((latest, manifest))
}

/// Launches the restore task of `user_id` from the backup version `version` → its ARN.
/// Started by [`taskdef::backup_started_by`], like a backup: one check finds either.
pub async fn launch_restore(svc: &Services, user_id: &str, version: &str) -> Result<String> {
    let Some(settings) = svc.config.backups.as_ref() else {
        return Err(Error::BadRequest(BACKUPS_OFF.into()));
    };
    let env = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
    };
    let overrides = vec![
        ContainerOverride {
            name: taskdef::RESTORE_FETCH_CONTAINER.into(),
            environment: env(&[("USER_ID", user_id), ("BACKUP_VERSION", version)]),
        },
        ContainerOverride {
            name: taskdef::RESTORE_CONTAINER.into(),
            environment: env(&[("USER_ID", user_id)]),
        },
    ];
    let deployment = svc.config.deployment();
    let target = BackupTarget {
        bucket: &settings.bucket,
        task_role_arn: &settings.task_role_arn,
    };
    run_helper(
        svc,
        || taskdef::restore_task_definition(&deployment, &target),
        overrides,
        taskdef::backup_started_by(user_id),
    )
    .await
}

/// Waits for a restore task to stop (within the deadline) → `Some(Ok(()))` when its
/// restore container exited with 0, `Some(Err(why))` when it failed, `None` when it still
/// runs at the deadline.
pub async fn watch_restore(svc: &Services, ctx: &Ctx, task: &str) -> Result<Option<std::result::Result<(), String>>> {
    Ok(watch_task(svc, ctx, task, |t| match t {
        None => Some(Err("the task is unknown to ECS".to_string())),
        Some(t) if t.last_status.eq_ignore_ascii_case("STOPPED") => {
            let exit = |name: &str| t.containers.iter().find(|c| c.name == name).and_then(|c| c.exit_code);
            if exit(taskdef::RESTORE_CONTAINER) == Some(0) {
                return Some(Ok(()));
            }
            let failed = t
                .containers
                .iter()
                .find(|c| c.exit_code.is_some_and(|code| code != 0))
                .map(|c| format!("{} exited with {}", c.name, c.exit_code.unwrap_or_default()));
            Some(Err(failed.unwrap_or_else(|| {
                format!(
                    "stopped before it finished: {}",
                    t.stopped_reason.as_deref().unwrap_or("no reason given")
                )
            })))
        }
        Some(_) => None,
    })
    .await?)
}

/// The tag that puts a version of a user's backup under the lifecycle rule for destroyed
/// instances (`ExpireDestroyedUsers` in template.yaml): the current version expires
/// `BackupRetentionDays` after it was made, earlier ones a day after they were replaced.
pub const DESTROYED_TAG: (&str, &str) = ("destroyed", "true");

/// After a destroy's final backup: tags every version of `user_id`'s backup with
/// [`DESTROYED_TAG`] → the time of the latest (the final backup), `None` when the user has
/// no backup. Idempotent: a destroy that resumes tags them again.
pub async fn mark_destroyed(svc: &Services, user_id: &str) -> Result<Option<i64>> {
    let Some(settings) = svc.config.backups.as_ref() else {
        return Ok(None);
    };
    let key = backup::object_key(user_id);
    let versions = svc.aws.s3.list_versions(&settings.bucket, &key).await?;
    for v in &versions {
        svc.aws
            .s3
            .tag_version(&settings.bucket, &key, &v.version_id, &[DESTROYED_TAG])
            .await?;
    }
    Ok(versions.iter().find(|v| v.is_latest).map(|v| v.last_modified))
}

/// The tag that takes a version back out of the rule for destroyed instances, once its user
/// exists again (a tag set without `destroyed=true`; an empty one would do on S3, which
/// moto cannot parse).
pub const RESTORED_TAG: (&str, &str) = ("destroyed", "false");

/// After a restore finished: every version of `user_id`'s backup is tagged [`RESTORED_TAG`]
/// instead of [`DESTROYED_TAG`], so that the user's backups are kept by the usual rule again
/// (without this, the restored backup would still expire `BackupRetentionDays` after it was
/// made, though its user exists again).
pub async fn mark_restored(svc: &Services, user_id: &str) -> Result<()> {
    let Some(settings) = svc.config.backups.as_ref() else {
        return Ok(());
    };
    let key = backup::object_key(user_id);
    let versions = svc.aws.s3.list_versions(&settings.bucket, &key).await?;
    for v in &versions {
        svc.aws
            .s3
            .tag_version(&settings.bucket, &key, &v.version_id, &[RESTORED_TAG])
            .await?;
    }
    Ok(())
}

/// The backup a `create` with `restoreBackup` restores: the latest version of the user's
/// backup, when it is younger than `BACKUP_RETENTION_DAYS` → its version id and time.
pub async fn restorable_backup(svc: &Services, user_id: &str) -> Result<Option<(String, i64)>> {
    let Some(settings) = svc.config.backups.as_ref() else {
        return Err(Error::BadRequest(BACKUPS_OFF.into()));
    };
    let key = backup::object_key(user_id);
    let versions = svc.aws.s3.list_versions(&settings.bucket, &key).await?;
    let oldest = svc.now() - settings.retention_days * 86_400;
    Ok(versions
        .into_iter()
        .find(|v| v.is_latest)
        .filter(|v| v.last_modified >= oldest)
        .map(|v| (v.version_id, v.last_modified)))
}

/// The answer to an action on backups while they are off.
pub const BACKUPS_OFF: &str = "Backups are not enabled in this deployment (BACKUPS is off)";

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
    run_helper(
        svc,
        || taskdef::backup_task_definition(&deployment, &target),
        overrides,
        taskdef::backup_started_by(user_id),
    )
    .await
}
