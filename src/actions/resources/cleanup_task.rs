//! The EFS cleanup task, which erases a user's files on EFS when the user's instance is
//! destroyed.
//!
//! Its task definition carries a fingerprint of its content in a tag. The first use in a
//! process describes the family's active revision and reuses it when its fingerprint is the
//! one of the definition this build would register; otherwise it registers the definition
//! and deregisters the revision before it, so that the family never gathers active
//! revisions. Either way the revision is then reused for the life of the process.
//!
//! The task is launched with a `startedBy` naming the user, so that a destroy that resumes
//! one cut short can find the cleanup task still running and wait for it.

use crate::context::{Ctx, Services};
use crate::domain::taskdef::{self, ContainerOverride};
use crate::error::{AwsErrorKind, Error, Result};

use super::waits::watch_task;

/// How the cleanup task ended, when it did not succeed.
#[derive(Debug)]
pub enum CleanupOutcome {
    /// Still running when the wait had to end.
    StillRunning,
    /// It stopped with a non-zero exit code, without one, or vanished.
    Failed(String),
    /// We could not look.
    Aws(Error),
}

/// The cleanup task definition: the one this process uses already, the family's active
/// revision when it is the same definition, or a new revision. `fresh`: the revision in use
/// turned out to be unusable, register a new one.
/// A helper task's definition (`build` makes it; its family names it): the one this process
/// uses already, the family's active revision when it is the same definition (by its
/// fingerprint), or a new revision, after which the one before is deregistered. `fresh`:
/// the revision in use turned out to be unusable, register a new one.
pub(super) async fn helper_definition(
    svc: &Services,
    fresh: bool,
    build: impl FnOnce() -> taskdef::TaskDefinition,
) -> Result<String> {
    let def = taskdef::fingerprinted(build());
    let family = def.family.clone();
    if !fresh {
        if let Some(arn) = svc.registered.get(&family) {
            return Ok(arn);
        }
        if let Some(arn) = active_revision_like(svc, &def).await {
            svc.registered.set(&family, &arn);
            return Ok(arn);
        }
    }
    let arn = svc.aws.ecs.register_task_definition(&def).await?;
    super::kind::ResourceKind::TaskDefinition.created();
    if let Some(previous) = previous_revision(&arn) {
        // Best effort: an older revision left active is only clutter, never used again.
        if let Err(e) = svc.aws.ecs.deregister_task_definition(&previous).await {
            if !e.is_not_found() {
                tracing::warn!(error = %e, "could not deregister the previous helper revision");
            }
        }
    }
    svc.registered.set(&family, &arn);
    Ok(arn)
}

/// The ARN of the family's active revision when its fingerprint tag is the one of `def`.
/// A failed look is only logged: registering the definition is always right.
async fn active_revision_like(svc: &Services, def: &taskdef::TaskDefinition) -> Option<String> {
    let wanted = def.tags.iter().find(|(k, _)| k == taskdef::FINGERPRINT_TAG)?;
    match svc.aws.ecs.describe_task_definition(&def.family).await {
        Ok(Some(active)) if active.tags.contains(wanted) => Some(active.arn),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(error = %e, "could not describe the helper task definition; registering it");
            None
        }
    }
}

/// `…:family:N` → `…:family:N-1` (none for revision 1).
fn previous_revision(arn: &str) -> Option<String> {
    let (base, rev) = arn.rsplit_once(':')?;
    let rev: u64 = rev.parse().ok()?;
    (rev > 1).then(|| format!("{base}:{}", rev - 1))
}

/// Launches the cleanup of `user_id`'s files → the task ARN.
pub async fn launch(svc: &Services, user_id: &str) -> Result<String> {
    let overrides = vec![ContainerOverride {
        name: taskdef::CLEANUP_CONTAINER.into(),
        environment: vec![("USER_ID".to_string(), user_id.to_string())],
    }];
    run_helper(
        svc,
        || taskdef::cleanup_task_definition(&svc.config.deployment()),
        overrides,
        taskdef::cleanup_started_by(user_id),
    )
    .await
}

/// RunTask of a helper task (`build` makes its definition, see [`helper_definition`]) with
/// `overrides`, started by `started_by` → the task ARN. A cached revision that was
/// deregistered behind our back is registered again, once.
pub(super) async fn run_helper(
    svc: &Services,
    build: impl Fn() -> taskdef::TaskDefinition,
    overrides: Vec<ContainerOverride>,
    started_by: String,
) -> Result<String> {
    let deployment = svc.config.deployment();
    let mut fresh = false;
    loop {
        let arn = helper_definition(svc, fresh, &build).await?;
        let mut req = taskdef::run_task(&deployment, &arn, overrides.clone());
        req.started_by = Some(started_by.clone());
        match svc.aws.ecs.run_task(&req).await {
            Ok(task) => return Ok(task),
            Err(e) if !fresh && matches!(e.kind, AwsErrorKind::NotFound | AwsErrorKind::Invalid) => {
                tracing::info!(error = %e, "helper task definition unusable; registering it again");
                fresh = true;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The cleanup tasks of `user_id` that ECS still runs (or has yet to start): what a destroy
/// cut short launched.
pub async fn running(svc: &Services, user_id: &str) -> Result<Vec<String>> {
    Ok(svc
        .aws
        .ecs
        .list_tasks_started_by(&svc.config.cluster_name, &taskdef::cleanup_started_by(user_id))
        .await?)
}

/// Waits for the cleanup task to stop and checks that its container exited with 0. A
/// non-zero exit or a vanished task fails at once.
pub async fn wait(svc: &Services, ctx: &Ctx, task_arn: &str) -> std::result::Result<(), CleanupOutcome> {
    let settled = watch_task(svc, ctx, task_arn, |task| {
        let Some(task) = task else {
            return Some(Err(CleanupOutcome::Failed(format!("task {task_arn} not found"))));
        };
        if !task.last_status.eq_ignore_ascii_case("STOPPED") {
            return None;
        }
        let exit = task
            .containers
            .iter()
            .find(|c| c.name == taskdef::CLEANUP_CONTAINER)
            .and_then(|c| c.exit_code);
        Some(match exit {
            Some(0) => Ok(()),
            Some(code) => Err(CleanupOutcome::Failed(format!("exit code {code}"))),
            None => Err(CleanupOutcome::Failed(format!(
                "task stopped without an exit code: {}",
                task.stopped_reason.unwrap_or_default()
            ))),
        })
    })
    .await
    .map_err(|e| CleanupOutcome::Aws(e.into()))?;
    settled.unwrap_or(Err(CleanupOutcome::StillRunning))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_previous_revision_is_the_one_before() {
        assert_eq!(
            previous_revision("arn:aws:ecs:us-east-1:1:task-definition/foundry-efs-cleanup:7").as_deref(),
            Some("arn:aws:ecs:us-east-1:1:task-definition/foundry-efs-cleanup:6")
        );
        assert_eq!(previous_revision("arn:aws:ecs:us-east-1:1:task-definition/f:1"), None);
        assert_eq!(previous_revision("garbage"), None);
    }
}
