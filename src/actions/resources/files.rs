//! The user's files on EFS: the access point that roots them, and their erasure by the
//! cleanup task.

use crate::context::{Ctx, Services};
use crate::domain::model::{Instance, InstanceStatus};
use crate::domain::names;
use crate::error::{Error, Result};
use crate::managers::efs::AccessPointSpec;
use crate::store::{Lease, Progress};

use super::cleanup_task;
use super::kind::{Leftovers, ResourceKind};
use super::waits::Backoff;

/// The user's EFS access point: the recorded one while it lives, else a new one, made
/// idempotently with the create's token and recorded at once.
pub async fn ensure_access_point(svc: &Services, inst: &Instance, lease: &Lease) -> Result<String> {
    if let Some(id) = inst.access_point_id.as_deref() {
        let state = svc.aws.efs.access_point_state(id).await?;
        if state.is_some_and(|s| !matches!(s.as_str(), "deleting" | "deleted" | "error")) {
            return Ok(id.to_string());
        }
    }
    let uid = inst.user_id.as_str();
    let token = inst.attempt_id.clone().unwrap_or_else(|| lease.id.clone());
    let spec = AccessPointSpec {
        file_system_id: svc.config.file_system_id.clone(),
        uid: 1000,
        gid: 1000,
        path: names::efs_path(uid),
        owner_uid: 1000,
        owner_gid: 1000,
        permissions: "755".into(),
        tags: vec![
            ("Name".into(), format!("foundry-{uid}")),
            ("UserId".into(), uid.to_string()),
        ],
        client_token: token.chars().take(64).collect(),
    };
    let id = svc.aws.efs.create_access_point(&spec).await?;
    ResourceKind::AccessPoint.created();
    if id.is_empty() || id.contains("${") {
        return Err(Error::Failed(format!("Invalid access point ID received: {id}")));
    }
    let now = svc.now();
    svc.store
        .instances
        .record(uid, lease, Progress::AccessPoint(id.clone()), now)
        .await?;
    Ok(id)
}

/// Waits until the access point is available (bounded by the invocation's deadline). A
/// terminal state fails at once.
pub async fn wait_for_access_point(svc: &Services, ctx: &Ctx, id: &str) -> Result<()> {
    let until = ctx.wait_until_ms(svc.clock.as_ref());
    let mut backoff = Backoff::standard();
    loop {
        match svc.aws.efs.access_point_state(id).await?.as_deref() {
            Some("available") => return Ok(()),
            Some("error") => return Err(Error::Failed(format!("Access point {id} failed to become available"))),
            None | Some("deleting") | Some("deleted") => {
                return Err(Error::Failed(format!(
                    "Access point {id} disappeared while being created"
                )))
            }
            _ => {}
        }
        if !backoff.pause(svc.clock.as_ref(), until).await {
            return Err(Error::Failed(format!(
                "Access point {id} did not become available in time"
            )));
        }
    }
}

/// How [`remove_all`] treats the user's files on EFS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Files {
    /// Erase them with the cleanup task first; the access point goes only when they are
    /// gone, so that nothing is left on the file system unreferenced. `resumed`: the destroy
    /// goes on with one cut short, whose cleanup task may still run.
    Erase { resumed: bool },
    /// Never written (a create that failed before its first start): remove the access
    /// point at once.
    NeverWritten,
}

/// The user's access points: the recorded one, and for a create that died, any at the
/// user's directory. With [`Files::Erase`], the files go first.
pub(super) async fn remove_access_points(
    svc: &Services,
    ctx: &Ctx,
    inst: &Instance,
    files: Files,
    left: &mut Leftovers,
) {
    let mut ids: Vec<String> = inst.access_point_id.iter().cloned().collect();
    if inst.status == InstanceStatus::Creating {
        match svc
            .aws
            .efs
            .access_points_at(&svc.config.file_system_id, &names::efs_path(&inst.user_id))
            .await
        {
            Ok(found) => {
                for id in found {
                    if !ids.contains(&id) {
                        ids.push(id);
                    }
                }
            }
            Err(e) => {
                left.push(format!("{}: {e}", ResourceKind::AccessPoint.label()));
                return;
            }
        }
    }
    if ids.is_empty() {
        return;
    }
    if let Files::Erase { resumed } = files {
        if let Err(e) = erase_files(svc, ctx, inst, resumed).await {
            left.push(e.to_string());
            return;
        }
    }
    for id in ids {
        left.note(ResourceKind::AccessPoint, svc.aws.efs.delete_access_point(&id).await);
    }
}

/// Erases the user's files with the EFS cleanup task and waits for it: the task an earlier
/// destroy of this instance launched when ECS still runs it, else a new one. `resumed`: this
/// destroy goes on with one cut short (the record was `destroying` already).
async fn erase_files(svc: &Services, ctx: &Ctx, inst: &Instance, resumed: bool) -> Result<()> {
    let uid = inst.user_id.as_str();
    // A destroy of an earlier version recorded the task it launched, which has no startedBy.
    if let Some(arn) = inst.cleanup_task_arn.as_deref() {
        match cleanup_task::wait(svc, ctx, arn).await {
            Err(cleanup_task::CleanupOutcome::Failed(why)) => {
                tracing::info!(task = arn, why, "the recorded cleanup task failed; launching another");
            }
            outcome => return cleaned(outcome),
        }
    }
    // Only a destroy cut short can have left a cleanup task running: a fresh destroy does
    // not look. A task that has stopped (failed, or done before the destroy was cut short)
    // is not listed, and a new one erases whatever is left.
    let mut tasks = if resumed || inst.cleanup_task_arn.is_some() {
        cleanup_task::running(svc, uid).await?
    } else {
        Vec::new()
    };
    if tasks.is_empty() {
        tasks.push(cleanup_task::launch(svc, uid).await?);
    }
    for arn in tasks {
        cleaned(cleanup_task::wait(svc, ctx, &arn).await)?;
    }
    Ok(())
}

/// How the wait for a cleanup task ended, as the destroy reports it.
fn cleaned(outcome: std::result::Result<(), cleanup_task::CleanupOutcome>) -> Result<()> {
    match outcome {
        Ok(()) => Ok(()),
        Err(cleanup_task::CleanupOutcome::StillRunning) => Err(Error::failed(
            "EFS cleanup is still running; the access point is kept until it finishes",
        )),
        // The next destroy does not find it running and launches a new one.
        Err(cleanup_task::CleanupOutcome::Failed(why)) => Err(Error::Failed(format!(
            "EFS cleanup failed ({why}); the access point and the user's files are kept"
        ))),
        Err(cleanup_task::CleanupOutcome::Aws(e)) => Err(e),
    }
}

/// One access point by id. With `erase`, the files at the user's directory go first (the
/// cleanup task, as a destroy runs it; one a call before launched is waited for).
pub(crate) async fn remove_access_point(
    svc: &Services,
    ctx: &Ctx,
    user_id: &str,
    id: &str,
    erase: bool,
    left: &mut Leftovers,
) {
    if erase {
        let owner = Instance {
            user_id: user_id.to_string(),
            ..Instance::default()
        };
        if let Err(e) = erase_files(svc, ctx, &owner, true).await {
            left.push(e.to_string());
            return;
        }
    }
    left.note(ResourceKind::AccessPoint, svc.aws.efs.delete_access_point(id).await);
}
