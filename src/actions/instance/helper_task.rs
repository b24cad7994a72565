//! The helper tasks that work on a user's files: the EFS cleanup (destroy) and the
//! permission reset (update-version).
//!
//! Each helper's task definition is registered once per process and reused; when it is
//! registered, the revision before it is deregistered, so that a family never gathers
//! active revisions.

use crate::context::{Ctx, Services};
use crate::domain::taskdef::{self, ContainerOverride, TaskDefinition};
use crate::error::{AwsErrorKind, Error, Result};

use super::waits::watch_task;

/// A helper task kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HelperTask {
    Cleanup,
    PermissionReset,
}

impl HelperTask {
    fn family(self) -> &'static str {
        match self {
            HelperTask::Cleanup => taskdef::CLEANUP_FAMILY,
            HelperTask::PermissionReset => taskdef::RESET_FAMILY,
        }
    }

    fn container(self) -> &'static str {
        match self {
            HelperTask::Cleanup => taskdef::CLEANUP_CONTAINER,
            HelperTask::PermissionReset => taskdef::RESET_CONTAINER,
        }
    }

    fn definition(self, svc: &Services) -> TaskDefinition {
        let deployment = svc.config.deployment();
        match self {
            HelperTask::Cleanup => taskdef::cleanup_task_definition(&deployment),
            HelperTask::PermissionReset => taskdef::permission_reset_task_definition(&deployment),
        }
    }
}

/// How a helper task ended, when it did not succeed.
#[derive(Debug)]
pub enum Outcome {
    /// Still running when the wait had to end.
    StillRunning,
    /// It stopped with a non-zero exit code, without one, or vanished.
    Failed(String),
    /// We could not look.
    Aws(Error),
}

/// The helper's task definition: the one this process registered, or a new one.
async fn definition(svc: &Services, helper: HelperTask, fresh: bool) -> Result<String> {
    if !fresh {
        if let Some(arn) = svc.registered.get(helper.family()) {
            return Ok(arn);
        }
    }
    let arn = svc.aws.ecs.register_task_definition(&helper.definition(svc)).await?;
    super::resources::ResourceKind::TaskDefinition.created();
    if let Some(previous) = previous_revision(&arn) {
        // Best effort: an older revision left active is only clutter, never used again.
        if let Err(e) = svc.aws.ecs.deregister_task_definition(&previous).await {
            if !e.is_not_found() {
                tracing::warn!(error = %e, "could not deregister the previous helper revision");
            }
        }
    }
    svc.registered.set(helper.family(), &arn);
    Ok(arn)
}

/// `…:family:N` → `…:family:N-1` (none for revision 1).
fn previous_revision(arn: &str) -> Option<String> {
    let (base, rev) = arn.rsplit_once(':')?;
    let rev: u64 = rev.parse().ok()?;
    (rev > 1).then(|| format!("{base}:{}", rev - 1))
}

/// Launches `helper` for `user_id` (its `USER_ID`, plus `env`) → the task ARN.
pub async fn launch(svc: &Services, helper: HelperTask, user_id: &str, env: Vec<(String, String)>) -> Result<String> {
    let mut environment = vec![("USER_ID".to_string(), user_id.to_string())];
    environment.extend(env);
    let overrides = vec![ContainerOverride {
        name: helper.container().into(),
        environment,
    }];
    let deployment = svc.config.deployment();
    let mut fresh = false;
    loop {
        let arn = definition(svc, helper, fresh).await?;
        let req = taskdef::run_task(&deployment, &arn, overrides.clone());
        match svc.aws.ecs.run_task(&req).await {
            Ok(task) => return Ok(task),
            // The cached revision was deregistered behind our back: register again, once.
            Err(e) if !fresh && matches!(e.kind, AwsErrorKind::NotFound | AwsErrorKind::Invalid) => {
                tracing::info!(error = %e, "helper task definition unusable; registering it again");
                fresh = true;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Waits for a helper task to stop and checks that its container exited with 0. A
/// non-zero exit or a vanished task fails at once.
pub async fn wait(svc: &Services, ctx: &Ctx, helper: HelperTask, task_arn: &str) -> std::result::Result<(), Outcome> {
    let settled = watch_task(svc, ctx, task_arn, |task| {
        let Some(task) = task else {
            return Some(Err(Outcome::Failed(format!("task {task_arn} not found"))));
        };
        if !task.last_status.eq_ignore_ascii_case("STOPPED") {
            return None;
        }
        let exit = task
            .containers
            .iter()
            .find(|c| c.name == helper.container())
            .and_then(|c| c.exit_code);
        Some(match exit {
            Some(0) => Ok(()),
            Some(code) => Err(Outcome::Failed(format!("exit code {code}"))),
            None => Err(Outcome::Failed(format!(
                "task stopped without an exit code: {}",
                task.stopped_reason.unwrap_or_default()
            ))),
        })
    })
    .await
    .map_err(|e| Outcome::Aws(e.into()))?;
    settled.unwrap_or(Err(Outcome::StillRunning))
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
