//! Ending a run, and keeping the record in line with ECS.

use crate::context::Services;
use crate::domain::model::{Instance, InstanceStatus};
use crate::error::Result;
use crate::store::{Lease, RunEnd};

use super::resources::{self, removed, ResourceKind};
use super::routing;

/// The one teardown of every transition out of a run: deregisters the target, deletes
/// the rule, stops the task, clears the run's fields and, in the same transaction, books
/// the run's hours per UTC month → the record after it. A lease on the record is left
/// to its holder.
///
/// "Not found" counts as done. A target or rule that cannot be removed stays recorded
/// (so the next teardown retries it); a task that cannot be stopped aborts the stop.
pub async fn end_run(svc: &Services, inst: &Instance) -> Result<Instance> {
    let target_gone = match (inst.task_private_ip.as_deref(), inst.target_group_arn.as_deref()) {
        (Some(ip), Some(tg)) => match resources::deregister_target(svc, tg, ip).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "could not deregister the target; it stays recorded");
                false
            }
        },
        _ => true,
    };
    let rule_gone = match inst.alb_rule_arn.as_deref() {
        Some(rule) => match removed(ResourceKind::ListenerRule, svc.aws.alb.delete_rule(rule).await) {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(error = %e, "could not delete the listener rule; it stays recorded");
                false
            }
        },
        None => true,
    };
    if let Some(task) = inst.task_arn.as_deref() {
        removed(
            ResourceKind::Task,
            svc.aws
                .ecs
                .stop_task(&svc.config.cluster_name, task, "User requested stop")
                .await,
        )?;
    }
    let end = RunEnd {
        at: svc.now(),
        target_gone,
        rule_gone,
    };
    let Some(after) = svc.store.instances.end_run(inst, &end).await? else {
        tracing::info!("the run was already ended by another invocation");
        return Ok(svc
            .store
            .instances
            .get_latest(&inst.user_id)
            .await?
            .unwrap_or_else(|| Instance {
                status: InstanceStatus::Stopped,
                ..inst.clone()
            }));
    };
    after_run(svc, inst).await;
    Ok(after)
}

/// What follows the end of a run: its session is over, and a login borrowed for it goes.
async fn after_run(svc: &Services, inst: &Instance) {
    if let Some(session) = inst.linked_session_id.as_deref() {
        // The run is over either way; a session left active is completed by the next
        // sweep, which finds it without a running server.
        if let Err(e) = crate::actions::sessions::complete(svc, session).await {
            tracing::warn!(error = %e, session, "could not complete the run's session");
        }
    }
    let borrowed = inst
        .active_license_id
        .as_deref()
        .is_some_and(|l| l != crate::domain::names::license_id(&inst.user_id));
    if borrowed {
        let name = crate::domain::names::session_secret_name(&inst.user_id);
        // The owner's login must not outlive the run; one that could not be deleted here
        // is logged for an operator, and overwritten by the next borrowed run.
        if let Err(e) = removed(ResourceKind::Secret, svc.aws.secrets.delete_secret(&name, true).await) {
            tracing::warn!(error = %e, "could not delete the borrowed login of the run");
        }
    }
}

/// Brings the record in line with ECS (the `status` refresh): a task that died or
/// vanished is torn down and its usage booked; a RUNNING task that is not routed yet is
/// routed (a failure to route is an error and changes nothing); every ECS state is mapped
/// and `unknown` is never written.
pub async fn reconcile(svc: &Services, inst: Instance) -> Result<Instance> {
    let held = !Lease::is_free(&inst, svc.now());
    let Some(task_arn) = inst.task_arn.clone() else {
        // No task: a start that died before RunTask returned, or a legacy `unknown`.
        let stale = matches!(inst.status, InstanceStatus::Unknown | InstanceStatus::Running)
            || (matches!(inst.status, InstanceStatus::Starting | InstanceStatus::Stopping) && !held);
        if stale {
            return end_run(svc, &inst).await;
        }
        return Ok(inst);
    };
    if matches!(inst.status, InstanceStatus::Creating | InstanceStatus::Destroying) {
        return Ok(inst);
    }
    let Some(task) = svc.aws.ecs.describe_task(&svc.config.cluster_name, &task_arn).await? else {
        tracing::info!(task = %task_arn, "task vanished; tearing down");
        return end_run(svc, &inst).await;
    };
    match InstanceStatus::of_task(&task.last_status) {
        InstanceStatus::Stopped => end_run(svc, &inst).await,
        InstanceStatus::Running => {
            let routed =
                inst.status == InstanceStatus::Running && inst.alb_rule_arn.is_some() && inst.task_private_ip.is_some();
            if routed || held {
                return Ok(inst); // routed, or a live start is routing it right now
            }
            // A failure here (a transient ALB error) leaves the healthy task to the next
            // refresh: only a task that ECS reports dead or missing is torn down.
            routing::route(svc, &inst, &task).await
        }
        other if other != inst.status => {
            svc.store
                .instances
                .set_task_status(&inst.user_id, &task_arn, &other)
                .await
        }
        _ => Ok(inst),
    }
}
