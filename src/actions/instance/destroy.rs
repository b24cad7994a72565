//! `destroy` and `delete`, convergent.
//!
//! Every step treats AWS "not found" as done, and a failing step does not stop the
//! others. The record is deleted only when everything is gone; otherwise `destroy`
//! reports what is left and a second call finishes the job.

use serde::Serialize;
use serde_json::Value;
use serde_with::skip_serializing_none;

use crate::actions::resources::{self, removed, Files, ResourceKind, SecretFate};
use crate::actions::run;
use crate::actions::sessions::{cancel_borrowers, cancel_sessions_of_user};
use crate::context::{Ctx, Services};
use crate::domain::backup::Cause;
use crate::domain::model::{Instance, InstanceStatus};
use crate::domain::names;
use crate::error::{Error, Result};
use crate::store::credentials::get_credentials;
use crate::store::{BackupSettled, Lease};

/// The answer of `destroy`.
#[skip_serializing_none]
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Destroyed<'a> {
    message: String,
    user_id: &'a str,
    license_pool_deactivated: Option<bool>,
    instance_found: Option<bool>,
    cancelled_sessions_count: usize,
    /// New (backups on): until when the final backup is kept, and a `create` with
    /// `restoreBackup` restores it (Unix seconds).
    restorable_until: Option<i64>,
}

pub async fn destroy(svc: &Services, ctx: &Ctx, user_id: &str, keep_sharing: bool) -> Result<Value> {
    let mut left: Vec<String> = Vec::new();
    let cancelled = cancel_sessions_of_user(svc, user_id, &mut left).await?;
    if !keep_sharing {
        // The owner's license leaves with the owner: the sessions others booked on it
        // could only fail.
        cancel_borrowers(svc, user_id, &mut left).await?;
    }

    let lease = Lease::new(ctx.lease_until(svc.clock.as_ref()));
    let now = svc.now();
    let Some(taken) = svc.store.instances.begin_destroy(user_id, &lease, now).await? else {
        return match svc.store.instances.get_latest(user_id).await? {
            None => no_instance(svc, user_id, keep_sharing, cancelled).await,
            Some(busy) => Err(Error::failed(match busy.status {
                InstanceStatus::Creating => "The instance is still being created; try again in a few minutes",
                InstanceStatus::Destroying => "The instance is already being destroyed",
                _ => "The instance is busy starting; try again in a few minutes",
            })),
        };
    };
    let mut inst = taken.instance;

    if inst.task_arn.is_some() || inst.alb_rule_arn.is_some() || inst.task_private_ip.is_some() {
        match run::end_run_because(svc, &inst, crate::domain::notify::StopCause::User).await {
            Ok(i) => inst = i,
            Err(e) => left.push(format!("stopping the task: {e}")),
        }
    }
    // The final backup comes before anything of the user's goes: the files stay until it
    // is done (a destroy that answers before then is called again, and waits for it).
    let mut restorable_until = None;
    if left.is_empty() {
        restorable_until = keep_final_backup(svc, ctx, &inst, &lease, &mut left).await;
        if !left.is_empty() {
            return Err(incomplete(svc, user_id, &lease, &left).await);
        }
    }
    let secret = if keep_sharing {
        SecretFate::Keep
    } else {
        SecretFate::Delete
    };
    let files = Files::Erase { resumed: taken.resumed };
    let removal = resources::remove_all(svc, ctx, &inst, secret, files).await;
    if !removal.is_empty() {
        left.push(removal.describe());
    }
    if inst.allow_license_sharing == Some(true) && !keep_sharing {
        if let Err(e) = svc.store.pools.deactivate(&names::license_id(user_id), svc.now()).await {
            left.push(format!("license pool: {e}"));
        }
    }

    if !left.is_empty() {
        return Err(incomplete(svc, user_id, &lease, &left).await);
    }
    match svc
        .store
        .instances
        .remove(user_id, &inst.sanitized_username, &lease)
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            return Err(Error::failed(
                "Another invocation took over this instance; its operation was abandoned",
            ))
        }
        Err(e) => {
            svc.store.instances.release(user_id, &lease).await;
            return Err(e);
        }
    }
    let message = if cancelled > 0 {
        format!("Instance destroyed successfully ({cancelled} sessions cancelled)")
    } else {
        "Instance destroyed successfully".to_string()
    };
    crate::response::to_body(&Destroyed {
        message,
        user_id,
        license_pool_deactivated: None,
        instance_found: None,
        cancelled_sessions_count: cancelled,
        restorable_until,
    })
}

/// A destroy that must be called again: its lease is given up, and the answer says what is
/// left.
async fn incomplete(svc: &Services, user_id: &str, lease: &Lease, left: &[String]) -> Error {
    svc.store.instances.release(user_id, lease).await;
    Error::Failed(format!(
        "Destroy incomplete: {}. Call destroy again to finish.",
        left.join("; ")
    ))
}

/// The final backup, then its versions tagged for the retention of destroyed users → until
/// when it can be restored. What stands in the way is added to `left` (the files are kept).
async fn keep_final_backup(
    svc: &Services,
    ctx: &Ctx,
    inst: &Instance,
    lease: &Lease,
    left: &mut Vec<String>,
) -> Option<i64> {
    match final_backup(svc, ctx, inst, lease).await {
        Ok(true) => {
            // Kept BACKUP_RETENTION_DAYS, by the lifecycle rule of the tagged versions.
            match resources::mark_destroyed(svc, &inst.user_id).await {
                Ok(latest) => {
                    let days = svc.config.backups.as_ref().map_or(0, |b| b.retention_days);
                    return latest.map(|t| t + days * 86_400);
                }
                Err(e) => left.push(format!("the final backup could not be marked for its retention: {e}")),
            }
        }
        Ok(false) => left.push("the final backup is still running; the user's files are kept until it is done".into()),
        Err(e) => left.push(format!("the final backup: {e}; the user's files are kept")),
    }
    None
}

/// With backups on, the final backup of the user's files (cause `pre-destroy`), recorded
/// on the record once done → whether it is done (false: still running at the deadline).
/// A destroy that resumes waits for the one it launched before, and takes none when it
/// was done. Backups off: nothing to do.
async fn final_backup(svc: &Services, ctx: &Ctx, inst: &Instance, lease: &Lease) -> Result<bool> {
    if svc.config.backups.is_none() || inst.final_backup_at.is_some() {
        return Ok(true);
    }
    let recorded = inst
        .backup_task_arn
        .as_deref()
        .filter(|_| inst.backup_cause.as_deref() == Some(Cause::PreDestroy.as_str()));
    let outcome = match recorded {
        Some(task) => resources::resume_backup(svc, ctx, &inst.user_id, task).await?,
        None => resources::backup_before(svc, ctx, &inst.user_id, Cause::PreDestroy).await?,
    };
    match outcome {
        None => Ok(false),
        Some(BackupSettled::Good { .. }) => {
            svc.store
                .instances
                .note_final_backup(&inst.user_id, lease, svc.now())
                .await?;
            Ok(true)
        }
        Some(BackupSettled::Failed { why, .. }) => Err(Error::Failed(format!("it failed ({why})"))),
    }
}

/// `destroy` of a user without an instance: an orphaned pool entry is deactivated.
async fn no_instance(svc: &Services, user_id: &str, keep_sharing: bool, cancelled: usize) -> Result<Value> {
    if !keep_sharing
        && svc
            .store
            .pools
            .deactivate(&names::license_id(user_id), svc.now())
            .await?
    {
        let message = if cancelled > 0 {
            format!(
                "No instance found, but orphaned license pool has been deactivated and {cancelled} sessions cancelled"
            )
        } else {
            "No instance found, but orphaned license pool has been deactivated".to_string()
        };
        return crate::response::to_body(&Destroyed {
            message,
            user_id,
            license_pool_deactivated: Some(true),
            instance_found: None,
            cancelled_sessions_count: cancelled,
            restorable_until: None,
        });
    }
    let message = if cancelled > 0 {
        format!("No instance found to destroy, but {cancelled} sessions cancelled")
    } else {
        "No instance found to destroy".to_string()
    };
    crate::response::to_body(&Destroyed {
        message,
        user_id,
        license_pool_deactivated: None,
        instance_found: Some(false),
        cancelled_sessions_count: cancelled,
        restorable_until: None,
    })
}

/// The answer of `delete`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Deleted<'a> {
    message: &'static str,
    user_id: &'a str,
    note: &'static str,
}

/// `delete`: destroys the instance (if any), then the user's secret and pool entry.
pub async fn delete(svc: &Services, ctx: &Ctx, user_id: &str) -> Result<Value> {
    if svc.store.instances.get(user_id).await?.is_some() {
        destroy(svc, ctx, user_id, false).await?;
    }
    if get_credentials(svc.aws.secrets.as_ref(), user_id).await?.is_some() {
        let deleted = svc.aws.secrets.delete_secret(&names::secret_name(user_id), true).await;
        // The user is gone either way; a secret that could not be deleted is reported
        // in the log for an operator.
        if let Err(e) = removed(ResourceKind::Secret, deleted) {
            tracing::warn!(error = %e, "could not delete the user's secret");
        }
    }
    // Same: a pool entry left active only offers a license whose owner has left, and a
    // booking on it fails without the owner's credentials.
    if let Err(e) = svc.store.pools.deactivate(&names::license_id(user_id), svc.now()).await {
        tracing::warn!(error = %e, "could not deactivate the user's license pool");
    }
    crate::response::to_body(&Deleted {
        message: "User deleted successfully",
        user_id,
        note: "All user data, credentials, and infrastructure have been permanently removed",
    })
}
