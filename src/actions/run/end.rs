//! The end of a run: every path that ends one (stop, deadline, admin, a session's end or
//! cancel, a task found dead, a failed start, destroy) comes here, and whatever must happen
//! whenever a run ends happens here.

use crate::context::Services;
use crate::domain::model::{Instance, InstanceStatus, StopReason};
use crate::domain::notify::{self, StopCause};
use crate::error::Result;
use crate::store::RunEnd;

use crate::actions::resources::{self, removed, ResourceKind};

use super::sessions;

/// The one teardown of every transition out of a run: deregisters the target, deletes
/// the rule, stops the task, clears the run's fields and, in the same transaction, books
/// the run's hours per UTC month → the record after it. A lease on the record is left
/// to its holder.
///
/// "Not found" counts as done. A target or rule that cannot be removed stays recorded
/// (so the next teardown retries it); a task that cannot be stopped aborts the stop.
pub async fn end_run(svc: &Services, inst: &Instance) -> Result<Instance> {
    end_run_with(svc, inst, None, StopCause::Other).await
}

/// [`end_run`], saying why: the user is told, with that cause, that the server stopped.
pub async fn end_run_because(svc: &Services, inst: &Instance, cause: StopCause) -> Result<Instance> {
    end_run_with(svc, inst, None, cause).await
}

/// [`end_run`] of a run whose task ECS reports stopped: the same teardown (without a
/// StopTask for the task that is already stopped), and `why` is recorded as the
/// instance's `lastStopReason` in the same transaction.
pub async fn end_stopped_run(svc: &Services, inst: &Instance, why: StopReason) -> Result<Instance> {
    let cause = StopCause::Crash(why.reason.clone());
    end_run_with(svc, inst, Some(why), cause).await
}

async fn end_run_with(
    svc: &Services,
    inst: &Instance,
    stop_reason: Option<StopReason>,
    cause: StopCause,
) -> Result<Instance> {
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
    let mut tasks: Vec<String> = inst.task_arn.iter().cloned().collect();
    if tasks.is_empty() && inst.status == InstanceStatus::Starting {
        // A start at work may have launched its task and not recorded it yet: the task
        // carries the start's id, and must not outlive the run.
        if let Some(attempt) = inst.attempt_id.as_deref() {
            let started_by: String = attempt.chars().take(36).collect();
            tasks = svc
                .aws
                .ecs
                .list_tasks_started_by(&svc.config.cluster_name, &started_by)
                .await?;
        }
    }
    if stop_reason.is_some() {
        // ECS reported the record's task stopped: nothing is left to stop.
        tasks.retain(|t| Some(t.as_str()) != inst.task_arn.as_deref());
    }
    for task in &tasks {
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
        stop_reason,
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
    backup_after_run(svc, inst, &tasks).await;
    notify_stopped(svc, inst, &cause, end.at).await;
    Ok(after)
}

/// Tells the user their server stopped, why, and for how long it ran: once per run (the
/// notice is keyed by the run's task), and only for a run that was running (or that ECS
/// reports stopped while it started: a crash the user should hear of).
async fn notify_stopped(svc: &Services, inst: &Instance, cause: &StopCause, at: i64) {
    if svc.config.notifications.is_none() {
        return;
    }
    let Some(task) = inst.task_arn.as_deref() else { return };
    let was_running = inst.status == InstanceStatus::Running;
    if !(was_running || matches!(cause, StopCause::Crash(_))) {
        return;
    }
    let seconds = inst.started_at.filter(|_| was_running).map(|s| at - s);
    let url = crate::domain::names::url(&inst.sanitized_username, &svc.config.domain_name);
    let notice = notify::stopped(&inst.user_id, task, cause, seconds, Some(&url));
    crate::actions::deliver::notify_one(svc, notice).await;
}

/// With backups on, a backup of the user's directory once the run's tasks have stopped
/// (the backup task waits for them; the end of the run does not wait for the backup). A
/// backup that cannot be launched is logged: the run has ended either way, and the next
/// end of a run tries again.
async fn backup_after_run(svc: &Services, inst: &Instance, tasks: &[String]) {
    use crate::domain::backup::Cause;
    match resources::launch_backup_after_run(svc, &inst.user_id, tasks, Cause::RunEnd).await {
        Ok(resources::BackupLaunch::Off) => {}
        Ok(resources::BackupLaunch::Launched(task)) => tracing::info!(task = %task, "backup launched"),
        Ok(resources::BackupLaunch::Skipped(why)) => tracing::info!(why, "no backup after this run"),
        Err(e) => tracing::warn!(error = %e, "could not launch the backup after the run"),
    }
}

/// What follows the end of a run: the license it used is free, its session is over, and a
/// login borrowed for it goes.
async fn after_run(svc: &Services, inst: &Instance) {
    if let (Some(license), Some(attempt)) = (inst.license_in_use(), inst.attempt_id.as_deref()) {
        svc.store.claims.release_run(&license, &inst.user_id, attempt).await;
    }
    if let Some(session) = inst.linked_session_id.as_deref() {
        // The run is over either way; a session left active is completed by the next
        // sweep, which finds it without a running server.
        if let Err(e) = sessions::complete(svc, session).await {
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
