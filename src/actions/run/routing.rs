//! Routing a running task: its IP becomes a target of the user's target group, a
//! listener rule sends the user's host there, and the record becomes `running`.

use std::collections::BTreeSet;

use crate::context::{Ctx, Services};
use crate::domain::model::Instance;
use crate::domain::names;
use crate::domain::taskdef::FOUNDRY_PORT;
use crate::error::{AwsErrorKind, Error, Result};
use crate::managers::ecs::TaskInfo;
use crate::store::Run;

use crate::actions::resources::{watch_task, ResourceKind};

/// The first listener-rule priority, and the step between two.
pub const FIRST_PRIORITY: i64 = 100;
pub const PRIORITY_STEP: i64 = 10;
/// How often a rule creation is retried after `PriorityInUse`.
const PRIORITY_ATTEMPTS: usize = 8;

/// What a wait for a task ended with.
pub enum TaskWait {
    Running(TaskInfo),
    /// Still provisioning or pending when the wait had to end.
    Pending,
}

/// Polls the task until it runs, stops, vanishes or the invocation's wait is over.
pub async fn wait_for_task(svc: &Services, ctx: &Ctx, task_arn: &str) -> Result<TaskWait> {
    let settled = watch_task(svc, ctx, task_arn, |task| {
        let Some(task) = task else {
            return Some(Err(Error::failed(format!("Task {task_arn} not found"))));
        };
        match task.last_status.to_ascii_uppercase().as_str() {
            "RUNNING" => Some(Ok(TaskWait::Running(task))),
            "STOPPED" | "DELETED" | "STOPPING" | "DEACTIVATING" | "DEPROVISIONING" => {
                Some(Err(Error::failed(format!("Task {task_arn} stopped unexpectedly"))))
            }
            _ => None,
        }
    })
    .await?;
    settled.unwrap_or(Ok(TaskWait::Pending))
}

/// Routes a RUNNING task and marks the instance running: registers the target, makes
/// (or finds) the listener rule, and in one transaction sets the record `running` and
/// books the usage start → the record after it. Each step is recorded before the next,
/// so that a failure is undone by the caller's teardown.
pub async fn route(svc: &Services, inst: &Instance, task: &TaskInfo) -> Result<Instance> {
    let arn = task.task_arn.as_str();
    let uid = inst.user_id.as_str();
    let tg = inst
        .target_group_arn
        .as_deref()
        .ok_or_else(|| Error::failed("Instance not found or missing target group"))?;
    let ip = task
        .private_ip
        .as_deref()
        .ok_or_else(|| Error::failed(format!("Private IP not found for task {arn}")))?;
    svc.store.instances.note_task_ip(uid, arn, ip).await?;
    svc.aws.alb.register_target(tg, ip, FOUNDRY_PORT).await?;
    let (rule_arn, priority) = ensure_rule(svc, inst, tg).await?;
    svc.store.instances.note_rule(uid, arn, &rule_arn).await?;

    let now = svc.now();
    let limit = crate::domain::schedule::run_limit(inst.license_type_or_default());
    let auto_shutdown_at = match (inst.linked_session_id.as_ref(), inst.auto_shutdown_at) {
        (Some(_), Some(at)) => at, // a scheduled session set its own deadline
        _ => now + limit,
    };
    let run = Run {
        task_arn: arn.to_string(),
        private_ip: ip.to_string(),
        rule_arn,
        rule_priority: priority,
        started_at: now,
        auto_shutdown_at,
    };
    match svc.store.instances.mark_running(inst, &run).await? {
        Some(after) => {
            notify_ready(svc, &after, arn).await;
            Ok(after)
        }
        None => {
            tracing::info!("another invocation finished routing this run first");
            svc.store
                .instances
                .get_latest(uid)
                .await?
                .ok_or_else(|| Error::failed("Instance not found"))
        }
    }
}

/// Tells the user their server is ready: once per run (keyed by its task), or once per
/// session for a session's server. Every path that makes a run `running` (a start's poll,
/// the task's `RUNNING` event, a refresh) comes through [`route`].
async fn notify_ready(svc: &Services, inst: &Instance, task_arn: &str) {
    if svc.config.notifications.is_none() {
        return;
    }
    let url = names::url(&inst.sanitized_username, &svc.config.domain_name);
    let notice = match inst.linked_session_id.as_deref() {
        Some(session) => crate::domain::notify::session_ready(&inst.user_id, session, None, Some(&url)),
        None => crate::domain::notify::ready(&inst.user_id, task_arn, Some(&url)),
    };
    crate::actions::deliver::notify_one(svc, notice).await;
}

/// The listener rule routing the user's host to the target group → `(arn, priority)`.
///
/// Priorities are allocated at start, by retrying on `PriorityInUse`. Rules exist only
/// while instances run, so the stored `albRulePriority` is only a hint: we try it first,
/// and when it (or the lowest free value we computed) is taken by a concurrent start, we
/// re-read the listener and take the next free one. ELBv2 itself is the arbiter, so two
/// starts can never share a priority, and no table of reservations can drift from the
/// listener's real state. A rule left behind for our host (a crashed start, or the
/// original's scheduler shutdowns, which orphaned rules) is reused, not duplicated.
pub async fn ensure_rule(svc: &Services, inst: &Instance, tg: &str) -> Result<(String, i64)> {
    let listener = &svc.config.alb_https_listener_arn;
    let host = names::host(&inst.sanitized_username, &svc.config.domain_name);
    let mut preferred = inst.alb_rule_priority;
    for _ in 0..PRIORITY_ATTEMPTS {
        let rules = svc.aws.alb.list_rules(listener).await?;
        if let Some(rule) = rules
            .iter()
            .find(|r| r.host_headers.iter().any(|h| h.eq_ignore_ascii_case(&host)))
        {
            if rule.target_group_arns.iter().any(|t| t == tg) {
                return Ok((rule.arn.clone(), rule.priority.map(i64::from).unwrap_or(FIRST_PRIORITY)));
            }
            return Err(Error::failed(format!(
                "The listener already routes {host} to another target group; refusing to take it over"
            )));
        }
        let used: BTreeSet<i64> = rules.iter().filter_map(|r| r.priority).map(i64::from).collect();
        let priority = preferred
            .filter(|p| !used.contains(p) && (1..=50_000).contains(p))
            .unwrap_or_else(|| lowest_free_priority(&used));
        let tags = vec![("SanitizedUsername".to_string(), inst.sanitized_username.clone())];
        let p32 = i32::try_from(priority).map_err(|_| Error::failed("No listener-rule priority is free"))?;
        match svc.aws.alb.create_rule(listener, p32, &host, tg, &tags).await {
            Ok(arn) => {
                ResourceKind::ListenerRule.created();
                return Ok((arn, priority));
            }
            Err(e) if e.kind == AwsErrorKind::PriorityInUse => {
                tracing::info!(priority, "listener-rule priority taken concurrently; retrying");
                preferred = None;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::failed("Could not find a free listener-rule priority"))
}

/// The lowest free listener-rule priority of the listener, as a hint for a new instance.
pub async fn priority_hint(svc: &Services) -> Result<i64> {
    let used = svc
        .aws
        .alb
        .list_rules(&svc.config.alb_https_listener_arn)
        .await?
        .into_iter()
        .filter_map(|r| r.priority.map(i64::from))
        .collect();
    Ok(lowest_free_priority(&used))
}

/// The lowest of 100, 110, 120, … not in `used`.
pub fn lowest_free_priority(used: &BTreeSet<i64>) -> i64 {
    let mut p = FIRST_PRIORITY;
    while used.contains(&p) {
        p += PRIORITY_STEP;
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowest_free_priority_skips_taken_values() {
        assert_eq!(lowest_free_priority(&BTreeSet::new()), 100);
        assert_eq!(lowest_free_priority(&[100, 110, 130].into_iter().collect()), 120);
        assert_eq!(lowest_free_priority(&[5, 105].into_iter().collect()), 100);
    }
}
