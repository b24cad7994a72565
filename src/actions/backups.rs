//! `list-backups`: a user's world backups, newest first (see `domain::backup` for where they
//! live); `restore-backup`: replaces a stopped instance's directory with one of them. An
//! admin may name another user with `targetUserId` (checked in `auth`).

use futures_util::stream::{self, StreamExt};
use serde::Serialize;
use serde_json::Value;

use crate::actions::resources::{self, BACKUPS_OFF};
use crate::context::{Ctx, Services};
use crate::domain::backup::{self, Cause};
use crate::domain::model::InstanceStatus;
use crate::error::{Error, Result};
use crate::event::RestoreBackupFields;
use crate::store::{BackupSettled, Lease, RESTORE_STEP_RESTORE};

/// How many versions' metadata are read at once.
const CONCURRENCY: usize = 8;

/// One backup in the answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct BackupView {
    /// The backup's id: `<userId>/<version id of the user's backup object>`.
    backup_id: String,
    /// When it was made (Unix seconds).
    created_at: i64,
    /// Size of the archive in bytes.
    size: i64,
    /// What caused it (`run-end`), or `unknown` when its metadata could not be read.
    cause: String,
    /// The latest backup.
    latest: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct BackupList {
    user_id: String,
    backups: Vec<BackupView>,
    count: usize,
}

/// `list-backups`: the backups of `target` (the caller, unless an admin named another user),
/// newest first, with time, size and cause.
pub async fn list_backups(svc: &Services, ctx: &Ctx, caller: &str, target: Option<&str>) -> Result<Value> {
    let Some(settings) = svc.config.backups.as_ref() else {
        return Err(Error::BadRequest(BACKUPS_OFF.into()));
    };
    let user_id = target.filter(|t| !t.is_empty()).unwrap_or(caller);
    crate::domain::names::validate_user_id(user_id).map_err(Error::BadRequest)?;
    let key = backup::object_key(user_id);
    let mut versions = svc.aws.s3.list_versions(&settings.bucket, &key).await?;
    versions.sort_by(|a, b| {
        b.last_modified
            .cmp(&a.last_modified)
            .then(b.is_latest.cmp(&a.is_latest))
    });
    let wait_until = ctx.wait_until_ms(svc.clock.as_ref());
    let backups: Vec<BackupView> = stream::iter(versions)
        .map(|v| {
            let (bucket, key, user_id) = (&settings.bucket, &key, user_id);
            async move {
                // Past the deadline, a cause is left unread rather than the answer lost.
                let cause = if svc.clock.now_ms() >= wait_until {
                    None
                } else {
                    match svc.aws.s3.head_object(bucket, key, Some(&v.version_id)).await {
                        Ok(head) => head.and_then(|h| h.metadata.get(backup::CAUSE_METADATA).cloned()),
                        Err(e) => {
                            tracing::warn!(error = %e, "could not read a backup's metadata");
                            None
                        }
                    }
                };
                BackupView {
                    backup_id: format!("{user_id}/{}", v.version_id),
                    created_at: v.last_modified,
                    size: v.size,
                    cause: cause.unwrap_or_else(|| "unknown".into()),
                    latest: v.is_latest,
                }
            }
        })
        .buffered(CONCURRENCY)
        .collect()
        .await;
    crate::response::to_body(&BackupList {
        user_id: user_id.to_string(),
        count: backups.len(),
        backups,
    })
}

/// The answer of `restore-backup`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Restored<'a> {
    message: &'static str,
    user_id: &'a str,
    backup_id: &'a str,
    restored_at: i64,
}

/// The id of a backup of `user_id` → its version id. A bare version id is one of the user's;
/// a qualified one (`<owner>/<version>`) of another user is refused (403).
fn version_of<'a>(user_id: &str, backup_id: &'a str) -> Result<&'a str> {
    let version = match backup_id.split_once('/') {
        Some((owner, _)) if owner != user_id => {
            return Err(Error::Forbidden(format!(
                "Backup {backup_id} is not a backup of user {user_id}"
            )))
        }
        Some((_, version)) => version,
        None => backup_id,
    };
    // S3 version ids are URL-safe tokens; anything else names no backup.
    let plausible = !version.is_empty()
        && version.len() <= 1024
        && version
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+' | b'='));
    if !plausible {
        return Err(Error::Failed(format!("Backup not found: {backup_id}")));
    }
    Ok(version)
}

/// `restore-backup`: replaces the directory of a stopped instance with one of its backups.
///
/// Resumable like `destroy`: a conditional write takes the stopped record under a lease and
/// records `restoreState` (from then on a start is refused), then two steps, each recorded
/// before it begins: a backup of the current state (cause `pre-restore`), then the restore
/// task. A step that outlives the invocation's deadline answers "in progress" and the next
/// call goes on with it; a restore task that failed leaves `restoreState` (the directory
/// may be half restored) until a later call finishes it.
pub async fn restore_backup(svc: &Services, ctx: &Ctx, caller: &str, f: &RestoreBackupFields) -> Result<Value> {
    let Some(settings) = svc.config.backups.as_ref() else {
        return Err(Error::BadRequest(BACKUPS_OFF.into()));
    };
    let user_id = f.target_user_id.as_deref().filter(|t| !t.is_empty()).unwrap_or(caller);
    crate::domain::names::validate_user_id(user_id).map_err(Error::BadRequest)?;
    let Some(requested) = f.backup_id.as_deref().filter(|b| !b.is_empty()) else {
        return Err(Error::BadRequest("Missing required parameter: backupId".into()));
    };
    let version = version_of(user_id, requested)?;
    let backup_id = format!("{user_id}/{version}");
    let inst = svc
        .store
        .instances
        .get_latest(user_id)
        .await?
        .ok_or_else(|| Error::failed("Instance not found"))?;
    // The guard: no restore while a run is under way (or anything else holds the record).
    if resources::run_under_way(&inst) || !matches!(inst.status, InstanceStatus::Stopped | InstanceStatus::Created) {
        return Err(Error::Failed(format!(
            "Restore refused: the instance is {}; stop it first",
            inst.status
        )));
    }
    if let Some(other) = inst.restore_state.as_deref().filter(|s| *s != backup_id) {
        return Err(Error::Failed(format!(
            "A restore of backup {other} is unfinished; call restore-backup with that backupId to finish it"
        )));
    }
    let key = backup::object_key(user_id);
    if svc
        .aws
        .s3
        .head_object(&settings.bucket, &key, Some(version))
        .await?
        .is_none()
    {
        return Err(Error::Failed(format!("Backup not found: {backup_id}")));
    }
    let lease = Lease::new(ctx.lease_until(svc.clock.as_ref()));
    let Some(rec) = svc
        .store
        .instances
        .begin_restore(&inst, &backup_id, &lease, svc.now())
        .await?
    else {
        return Err(Error::failed(
            "The instance changed or is busy (a start, a destroy or another restore); try again",
        ));
    };
    match restore_steps(svc, ctx, &rec, &lease, version).await {
        Ok(()) => {}
        Err(e) => {
            svc.store.instances.release(user_id, &lease).await;
            return Err(e);
        }
    }
    crate::response::to_body(&Restored {
        message: "Backup restored",
        user_id,
        backup_id: &backup_id,
        restored_at: svc.now(),
    })
}

/// The end of a restore that finished: the record's restore state is cleared (a start may
/// come), and the tag of a destroyed user's backups is taken off (the user exists again, so
/// the usual retention applies; a failure is logged, the restore stands).
async fn restored(svc: &Services, user_id: &str, lease: &Lease) -> Result<()> {
    svc.store.instances.end_restore(user_id, lease).await?;
    if let Err(e) = resources::mark_restored(svc, user_id).await {
        tracing::warn!(error = %e, "could not take the destroyed tag off the user's backups");
    }
    Ok(())
}

/// The two steps of a restore under `lease`, from the step the record is at.
async fn restore_steps(
    svc: &Services,
    ctx: &Ctx,
    rec: &crate::domain::model::Instance,
    lease: &Lease,
    version: &str,
) -> Result<()> {
    let user_id = rec.user_id.as_str();
    let instances = &svc.store.instances;
    if rec.restore_step.as_deref() != Some(RESTORE_STEP_RESTORE) {
        // Step 1: the current state is backed up first (the one a call before launched is
        // waited for).
        let recorded = rec
            .backup_task_arn
            .as_deref()
            .filter(|_| rec.backup_cause.as_deref() == Some(Cause::PreRestore.as_str()));
        let outcome = match recorded {
            Some(task) => resources::resume_backup(svc, ctx, user_id, task).await?,
            None => resources::backup_before(svc, ctx, user_id, Cause::PreRestore).await?,
        };
        match outcome {
            None => {
                return Err(Error::failed(
                    "Restore in progress: the backup of the current state is still running. Call restore-backup again to finish.",
                ))
            }
            Some(BackupSettled::Failed { why, .. }) => {
                instances.end_restore(user_id, lease).await?;
                return Err(Error::Failed(format!(
                    "The backup of the current state failed ({why}); nothing was restored"
                )));
            }
            Some(BackupSettled::Good { .. }) => {
                instances
                    .note_restore_step(user_id, lease, RESTORE_STEP_RESTORE, None)
                    .await?
            }
        }
    } else if let Some(task) = rec.restore_task_arn.as_deref() {
        // Step 2 began in a call before: its task is waited for.
        match resources::watch_restore(svc, ctx, task).await? {
            None => return Err(still_restoring()),
            Some(Ok(())) => return restored(svc, user_id, lease).await,
            Some(Err(why)) => tracing::info!(task, why, "the restore task of a call before failed; restoring again"),
        }
    }
    // Step 2: the restore task, recorded before it is waited for.
    if !resources::world_tasks(svc, user_id).await?.is_empty() {
        return Err(Error::failed(resources::BACKUP_BUSY));
    }
    let task = resources::launch_restore(svc, user_id, version).await?;
    instances
        .note_restore_step(user_id, lease, RESTORE_STEP_RESTORE, Some(&task))
        .await?;
    match resources::watch_restore(svc, ctx, &task).await? {
        None => Err(still_restoring()),
        Some(Ok(())) => restored(svc, user_id, lease).await,
        Some(Err(why)) => {
            instances
                .note_restore_step(user_id, lease, RESTORE_STEP_RESTORE, None)
                .await?;
            Err(Error::Failed(format!(
                "Restore failed ({why}); the directory may be half restored, so the instance will not start until restore-backup is called again and succeeds"
            )))
        }
    }
}

fn still_restoring() -> Error {
    Error::failed("Restore in progress: the restore task is still running. Call restore-backup again to finish.")
}

/// A `create` with `restoreBackup`: the new instance's directory restored from `version`
/// (nothing to back up first: the directory is new) → what the create's answer says of it:
/// `{"backupId","status":"restored"}`, or `"status":"unfinished"` with the message, in
/// which case `restore-backup` with that `backupId` finishes it (a start is refused until
/// then). The instance exists either way.
pub async fn restore_after_create(svc: &Services, ctx: &Ctx, user_id: &str, version: &str) -> Value {
    let backup_id = format!("{user_id}/{version}");
    match restore_new(svc, ctx, user_id, &backup_id, version).await {
        Ok(()) => serde_json::json!({"backupId": backup_id, "status": "restored"}),
        Err(e) => {
            tracing::warn!(error = %e, "the restore after the create did not finish");
            serde_json::json!({"backupId": backup_id, "status": "unfinished", "message": e.to_string()})
        }
    }
}

async fn restore_new(svc: &Services, ctx: &Ctx, user_id: &str, backup_id: &str, version: &str) -> Result<()> {
    let inst = svc
        .store
        .instances
        .get_latest(user_id)
        .await?
        .ok_or_else(|| Error::failed("Instance not found"))?;
    let lease = Lease::new(ctx.lease_until(svc.clock.as_ref()));
    let Some(mut rec) = svc
        .store
        .instances
        .begin_restore(&inst, backup_id, &lease, svc.now())
        .await?
    else {
        return Err(Error::failed(
            "The instance changed or is busy; call restore-backup to restore",
        ));
    };
    let steps = async {
        svc.store
            .instances
            .note_restore_step(user_id, &lease, RESTORE_STEP_RESTORE, None)
            .await?;
        rec.restore_step = Some(RESTORE_STEP_RESTORE.to_string());
        rec.restore_task_arn = None;
        restore_steps(svc, ctx, &rec, &lease, version).await
    };
    match steps.await {
        Ok(()) => Ok(()),
        Err(e) => {
            svc.store.instances.release(user_id, &lease).await;
            Err(e)
        }
    }
}
