//! Keeping the record in line with ECS (the `status` refresh, a start or session sweep
//! that finds a run left by an earlier invocation, and the ECS task-state events).

use crate::context::Services;
use crate::domain::model::{Instance, InstanceStatus, StopReason};
use crate::domain::taskdef::FOUNDRY_CONTAINER;
use crate::error::Result;
use crate::managers::ecs::TaskInfo;
use crate::store::Lease;

use super::end::{end_run, end_stopped_run};
use super::routing;

/// Brings the record in line with ECS (the `status` refresh): a task that died or
/// vanished is torn down and its usage booked; a RUNNING task that is not routed yet is
/// routed (a failure to route is an error and changes nothing); every ECS state is mapped
/// and `unknown` is never written.
pub async fn refresh(svc: &Services, inst: Instance) -> Result<Instance> {
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
    settle(svc, inst, &task, None).await
}

/// Brings a record that names `task` in line with what ECS reports of it (by DescribeTasks
/// or by a task-state event): STOPPED ends the run and records why (`stop_code`: ECS's
/// `stopCode`, when the report carried one); RUNNING routes a run not routed yet, unless
/// a live start is routing it right now; another state is stored as the record's status.
/// A record being created or destroyed belongs to that invocation and is left as it is.
/// The caller has checked that the record names `task`.
pub async fn settle(svc: &Services, inst: Instance, task: &TaskInfo, stop_code: Option<&str>) -> Result<Instance> {
    if matches!(inst.status, InstanceStatus::Creating | InstanceStatus::Destroying) {
        return Ok(inst);
    }
    let held = !Lease::is_free(&inst, svc.now());
    match InstanceStatus::of_task(&task.last_status) {
        InstanceStatus::Stopped => end_stopped_run(svc, &inst, stop_reason(svc, task, stop_code)).await,
        InstanceStatus::Running => {
            let routed =
                inst.status == InstanceStatus::Running && inst.alb_rule_arn.is_some() && inst.task_private_ip.is_some();
            if routed || held {
                return Ok(inst); // routed, or a live start is routing it right now
            }
            // A failure here (a transient ALB error) leaves the healthy task to the next
            // refresh: only a task that ECS reports dead or missing is torn down.
            routing::route(svc, &inst, task).await
        }
        other if other != inst.status => {
            svc.store
                .instances
                .set_task_status(&inst.user_id, &task.task_arn, &other)
                .await
        }
        _ => Ok(inst),
    }
}

/// Why `task` stopped, as ECS reports it, with the Foundry container's exit code.
fn stop_reason(svc: &Services, task: &TaskInfo, stop_code: Option<&str>) -> StopReason {
    StopReason {
        reason: task.stopped_reason.clone(),
        stop_code: stop_code.map(str::to_string),
        exit_code: task
            .containers
            .iter()
            .find(|c| c.name == FOUNDRY_CONTAINER)
            .and_then(|c| c.exit_code)
            .map(i64::from),
        task_arn: Some(task.task_arn.clone()),
        at: Some(svc.now()),
    }
}
