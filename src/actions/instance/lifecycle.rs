//! Shared lifecycle machinery: leases, bounded waits, routing a running task, and the
//! one teardown every stop path uses.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::app::{App, Ctx};
use crate::domain::model::{Instance, InstanceStatus};
use crate::domain::names;
use crate::domain::taskdef::FOUNDRY_PORT;
use crate::error::{AwsError, AwsErrorKind, Error, Result};
use crate::managers::dynamodb::{Cond, TransactOp, Update};
use crate::managers::ecs::TaskInfo;
use crate::managers::usage;
use crate::store::{av, n};

/// Poll interval of the task wait (spec/SCHEDULING.md §13).
pub const TASK_POLL: Duration = Duration::from_secs(5);
/// Poll interval of the access-point and helper-task waits.
pub const SLOW_POLL: Duration = Duration::from_secs(10);
/// Upper bound of any wait, as in the original.
pub const MAX_WAIT_MS: i64 = 300_000;
/// What an invocation keeps in hand after its last wait, to record state and answer.
pub const DEADLINE_MARGIN_MS: i64 = 15_000;
/// Lease of an invocation without a deadline (tests, local runs).
pub const DEFAULT_LEASE_SECONDS: i64 = 900;
/// First listener-rule priority and step (spec/DATA.md §3.6).
pub const FIRST_PRIORITY: i64 = 100;
pub const PRIORITY_STEP: i64 = 10;
/// How often a rule creation is retried after `PriorityInUse`.
const PRIORITY_ATTEMPTS: usize = 8;

/// Unix milliseconds by which every wait of this invocation must end: the deadline
/// minus a margin, and never more than [`MAX_WAIT_MS`] from now (W23).
pub fn wait_until_ms(app: &App, ctx: &Ctx) -> i64 {
    let cap = app.clock.now_ms() + MAX_WAIT_MS;
    match ctx.deadline_ms {
        Some(d) => (d - DEADLINE_MARGIN_MS).min(cap),
        None => cap,
    }
}

/// When this invocation's lease ends (Unix seconds).
pub fn lease_until(app: &App, ctx: &Ctx) -> i64 {
    match ctx.deadline_ms {
        Some(d) => d.div_euclid(1000) + 1,
        None => app.clock.now() + DEFAULT_LEASE_SECONDS,
    }
}

/// Whether no live invocation holds the record.
pub fn lease_free(i: &Instance, now: i64) -> bool {
    i.lease_until.is_none_or(|t| t < now)
}

/// DynamoDB form of [`lease_free`].
pub fn cond_lease_free(now: i64) -> Cond {
    Cond::Or(vec![
        Cond::not_exists("leaseUntil"),
        Cond::Lt("leaseUntil".into(), n(now)),
    ])
}

/// The record is still held by `lease_id`.
pub fn cond_lease(lease_id: &str) -> Cond {
    Cond::eq_s("leaseId", lease_id)
}

/// A fresh random id (leases, attempts).
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Gives the record's lease up (best effort: an expired lease is free anyway).
pub async fn release(app: &App, user_id: &str, lease_id: &str) {
    let update = Update::new().remove("leaseId").remove("leaseUntil");
    if let Err(e) = app.store.update_instance(user_id, &update, cond_lease(lease_id)).await {
        let benign = matches!(&e, Error::Aws(a) if a.is_condition_failed());
        if !benign {
            tracing::warn!(error = %e.client_message(), "could not release the lease");
        }
    }
}

/// Writes a progress update under our lease. Losing the lease means another
/// invocation took the record over: stop at once.
pub async fn progress(app: &App, user_id: &str, lease_id: &str, update: Update) -> Result<Instance> {
    let update = update.set("updatedAt", n(app.clock.now()));
    match app.store.update_instance(user_id, &update, cond_lease(lease_id)).await {
        Err(Error::Aws(e)) if e.is_condition_failed() => Err(Error::failed(
            "Another invocation took over this instance; its operation was abandoned",
        )),
        other => other,
    }
}

/// Makes sure a task's log group exists with the configured retention (W51) → whether
/// it does. Best effort: when it fails, the task definition lets the awslogs driver
/// create the group (without retention), so a missing `logs:*` permission degrades
/// instead of failing the start.
pub async fn ensure_log_group(app: &App, name: &str) -> bool {
    let tags = vec![("Application".to_string(), "FoundryVTT".to_string())];
    match app
        .aws
        .logs
        .ensure_log_group(name, app.config.log_retention_days, &tags)
        .await
    {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, log_group = name, "could not set the log group's retention");
            false
        }
    }
}

/// `Ok(())` for success and for AWS "not found" (idempotent teardown).
pub fn gone_ok(r: std::result::Result<(), AwsError>) -> std::result::Result<(), AwsError> {
    match r {
        Err(e) if e.is_not_found() => Ok(()),
        other => other,
    }
}

/// The kinds of per-user AWS resources, for messages and the `Resources*` metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    AccessPoint,
    S3Bucket,
    IamUser,
    Secret,
    TargetGroup,
    DnsRecord,
    ListenerRule,
    Task,
    TaskDefinition,
    LogGroup,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::AccessPoint => "access point",
            Kind::S3Bucket => "S3 bucket",
            Kind::IamUser => "IAM user",
            Kind::Secret => "secret",
            Kind::TargetGroup => "target group",
            Kind::DnsRecord => "DNS record",
            Kind::ListenerRule => "listener rule",
            Kind::Task => "task",
            Kind::TaskDefinition => "task definition",
            Kind::LogGroup => "log group",
        }
    }

    /// The `ResourceKind` dimension value.
    pub fn metric(self) -> &'static str {
        match self {
            Kind::AccessPoint => "AccessPoint",
            Kind::S3Bucket => "S3Bucket",
            Kind::IamUser => "IamUser",
            Kind::Secret => "Secret",
            Kind::TargetGroup => "TargetGroup",
            Kind::DnsRecord => "DnsRecord",
            Kind::ListenerRule => "ListenerRule",
            Kind::Task => "Task",
            Kind::TaskDefinition => "TaskDefinition",
            Kind::LogGroup => "LogGroup",
        }
    }

    pub fn created(self) {
        crate::telemetry::resource_created(self.metric());
    }

    pub fn deleted(self) {
        crate::telemetry::resource_deleted(self.metric());
    }
}

/// Runs a delete: `Ok(true)` when it removed something (counted), `Ok(false)` when AWS
/// said "not found", an error otherwise.
pub fn deleted(kind: Kind, r: std::result::Result<(), AwsError>) -> std::result::Result<bool, AwsError> {
    match r {
        Ok(()) => {
            kind.deleted();
            Ok(true)
        }
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e),
    }
}

/// The failures of a convergent teardown: each step is tried, "not found" is success.
#[derive(Debug, Default)]
pub struct Failures(pub Vec<String>);

impl Failures {
    /// Records the outcome of deleting a `kind` → whether it is gone.
    pub fn step(&mut self, kind: Kind, r: std::result::Result<(), AwsError>) -> bool {
        match deleted(kind, r) {
            Ok(_) => true,
            Err(e) => {
                self.0.push(format!("{}: {e}", kind.label()));
                false
            }
        }
    }

    pub fn push(&mut self, message: impl Into<String>) {
        self.0.push(message.into());
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn joined(&self) -> String {
        self.0.join("; ")
    }
}

/// What a wait for a task ended with.
pub enum TaskWait {
    Running(TaskInfo),
    /// Still provisioning/pending when the wait had to end.
    Pending,
}

/// Polls the task until it runs, stops, vanishes or `until_ms` passes.
pub async fn wait_for_task(app: &App, task_arn: &str, until_ms: i64) -> Result<TaskWait> {
    loop {
        let task = app
            .aws
            .ecs
            .describe_task(&app.config.cluster_name, task_arn)
            .await?
            .ok_or_else(|| Error::failed(format!("Task {task_arn} not found")))?;
        match task.last_status.to_ascii_uppercase().as_str() {
            "RUNNING" => return Ok(TaskWait::Running(task)),
            "STOPPED" | "DELETED" | "STOPPING" | "DEACTIVATING" | "DEPROVISIONING" => {
                return Err(Error::failed(format!("Task {task_arn} stopped unexpectedly")))
            }
            _ => {}
        }
        if app.clock.now_ms() + TASK_POLL.as_millis() as i64 > until_ms {
            return Ok(TaskWait::Pending);
        }
        app.clock.sleep(TASK_POLL).await;
    }
}

/// Routes a RUNNING task and marks the instance running: registers the target, makes
/// (or finds) the listener rule, and in one transaction sets the record `running` and
/// books the usage start. On failure everything is undone by the caller's teardown.
pub async fn finish_registration(app: &App, inst: &Instance, task: &TaskInfo) -> Result<Instance> {
    let arn = task.task_arn.as_str();
    let tg = inst
        .target_group_arn
        .as_deref()
        .ok_or_else(|| Error::failed("Instance not found or missing target group"))?;
    let ip = task
        .private_ip
        .as_deref()
        .ok_or_else(|| Error::failed(format!("Private IP not found for task {arn}")))?;
    // Persist the IP first, so that a failure below deregisters it.
    let mut update = Update::new().set_s("taskPrivateIp", ip);
    app.store
        .update_instance(&inst.user_id, &update, Cond::eq_s("taskArn", arn))
        .await?;
    app.aws.alb.register_target(tg, ip, FOUNDRY_PORT).await?;
    let (rule_arn, priority) = ensure_rule(app, inst, tg).await?;
    // Persist the rule at once, so that a failure below deletes it.
    update = Update::new().set_s("albRuleArn", rule_arn.as_str());
    app.store
        .update_instance(&inst.user_id, &update, Cond::eq_s("taskArn", arn))
        .await?;

    let now = app.clock.now();
    let limit = if inst.license_type_or_default() == "byol" {
        21_600
    } else {
        14_400
    };
    let auto_shutdown_at = match (inst.linked_session_id.as_ref(), inst.auto_shutdown_at) {
        (Some(_), Some(at)) => at, // a scheduled session set its own deadline
        _ => now + limit,
    };
    update = Update::new()
        .set_s("status", InstanceStatus::Running.as_str())
        .set_s("taskPrivateIp", ip)
        .set_s("albRuleArn", rule_arn.as_str())
        .set("albRulePriority", n(priority))
        .set("startedAt", n(now))
        .set("autoShutdownAt", n(auto_shutdown_at))
        .set("updatedAt", n(now))
        .remove("leaseId")
        .remove("leaseUntil");
    let mut ops = vec![TransactOp::Update {
        table: app.store.instances.clone(),
        key: inst.user_id.clone(),
        update,
        cond: Cond::And(vec![
            Cond::eq_s("taskArn", arn),
            Cond::ne_s("status", InstanceStatus::Running.as_str()),
        ]),
    }];
    ops.extend(usage::start_ops(&app.store, &inst.user_id, now));
    match app.store.transact(ops).await {
        Ok(()) => {}
        // Another invocation finished the same registration first: nothing to book twice.
        Err(Error::Aws(e)) if e.is_condition_failed() => {}
        Err(e) => return Err(e),
    }
    app.store
        .get_instance_consistent(&inst.user_id)
        .await?
        .ok_or_else(|| Error::failed("Instance not found"))
}

/// The listener rule routing the user's host to the target group → `(arn, priority)`.
///
/// Priorities are allocated at start, by retrying on `PriorityInUse` (W15, W16).
/// Rules exist only while instances run, so the stored `albRulePriority` is only a
/// hint: we try it first, and when it (or the lowest free value we computed) is taken by
/// a concurrent start, we re-read the listener and take the next free one. ELBv2
/// itself is the arbiter, so two starts can never share a priority, and no table of
/// reservations can drift from the listener's real state. A rule left behind for our
/// host (a crashed start, the original's scheduler shutdowns) is reused, not duplicated.
pub async fn ensure_rule(app: &App, inst: &Instance, tg: &str) -> Result<(String, i64)> {
    let listener = &app.config.alb_https_listener_arn;
    let host = names::host(&inst.sanitized_username, &app.config.domain_name);
    let mut preferred = inst.alb_rule_priority;
    for _ in 0..PRIORITY_ATTEMPTS {
        let rules = app.aws.alb.list_rules(listener).await?;
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
        match app.aws.alb.create_rule(listener, p32, &host, tg, &tags).await {
            Ok(arn) => {
                Kind::ListenerRule.created();
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

/// The lowest of 100, 110, 120, … not in `used`.
pub fn lowest_free_priority(used: &BTreeSet<i64>) -> i64 {
    let mut p = FIRST_PRIORITY;
    while used.contains(&p) {
        p += PRIORITY_STEP;
    }
    p
}

/// FULL-STOP, the one teardown of every transition out of a run (W16, W42, W43):
/// deregisters the target, deletes the rule, stops the task, clears the run fields and,
/// in the same transaction, books the run's hours per UTC month. A lease on the record
/// is left to its holder.
///
/// "Not found" counts as done. A target or rule that cannot be removed stays recorded
/// (so the next teardown retries it); a task that cannot be stopped aborts the stop.
pub async fn teardown(app: &App, inst: &Instance) -> Result<Instance> {
    let mut update = Update::new();
    if inst.status != InstanceStatus::Destroying {
        update = update.set_s("status", InstanceStatus::Stopped.as_str());
    }
    if let (Some(ip), Some(tg)) = (inst.task_private_ip.as_deref(), inst.target_group_arn.as_deref()) {
        match gone_ok(app.aws.alb.deregister_target(tg, ip, FOUNDRY_PORT).await) {
            Ok(()) => update = update.remove("taskPrivateIp"),
            Err(e) => tracing::warn!(error = %e, "could not deregister the target; it stays recorded"),
        }
    } else {
        update = update.remove("taskPrivateIp");
    }
    if let Some(rule) = inst.alb_rule_arn.as_deref() {
        match deleted(Kind::ListenerRule, app.aws.alb.delete_rule(rule).await) {
            Ok(_) => update = update.remove("albRuleArn"),
            Err(e) => tracing::warn!(error = %e, "could not delete the listener rule; it stays recorded"),
        }
    }
    if let Some(task) = inst.task_arn.as_deref() {
        deleted(
            Kind::Task,
            app.aws
                .ecs
                .stop_task(&app.config.cluster_name, task, "User requested stop")
                .await,
        )?;
    }
    let now = app.clock.now();
    update = update
        .set("updatedAt", n(now))
        .remove("taskArn")
        .remove("autoShutdownAt")
        .remove("startedAt")
        .remove("linkedSessionId");
    let mut ops = vec![TransactOp::Update {
        table: app.store.instances.clone(),
        key: inst.user_id.clone(),
        update,
        // Only the run we are ending: a concurrent stop already booked it.
        cond: match inst.task_arn.as_deref() {
            Some(task) => Cond::eq_s("taskArn", task),
            None => Cond::exists("userId"),
        },
    }];
    if let Some(started) = inst.started_at {
        ops.extend(usage::run_ops(&app.store, &inst.user_id, started, now));
    }
    match app.store.transact(ops).await {
        Ok(()) => {}
        Err(Error::Aws(e)) if e.is_condition_failed() => {
            tracing::info!("the run was already ended by another invocation");
        }
        Err(e) => return Err(e),
    }
    Ok(app
        .store
        .get_instance_consistent(&inst.user_id)
        .await?
        .unwrap_or_else(|| Instance {
            status: InstanceStatus::Stopped,
            ..inst.clone()
        }))
}

/// Brings the record in line with ECS (the `status` refresh, W43): a task that died or
/// vanished is torn down and its usage booked; a RUNNING task that is not routed yet
/// is routed; every ECS state is mapped and `unknown` is never written.
pub async fn reconcile(app: &App, inst: Instance) -> Result<Instance> {
    let now = app.clock.now();
    let held = !lease_free(&inst, now);
    let Some(task_arn) = inst.task_arn.clone() else {
        // No task: a start that died before RunTask returned, or a legacy `unknown`.
        let stale = matches!(inst.status, InstanceStatus::Unknown | InstanceStatus::Running)
            || (matches!(inst.status, InstanceStatus::Starting | InstanceStatus::Stopping) && !held);
        if stale {
            return teardown(app, &inst).await;
        }
        return Ok(inst);
    };
    if matches!(inst.status, InstanceStatus::Creating | InstanceStatus::Destroying) {
        return Ok(inst);
    }
    let task = app.aws.ecs.describe_task(&app.config.cluster_name, &task_arn).await?;
    let Some(task) = task else {
        tracing::info!(task = %task_arn, "task vanished; tearing down");
        return teardown(app, &inst).await;
    };
    let mapped = super::map_task_status(&task.last_status);
    match mapped {
        InstanceStatus::Stopped => teardown(app, &inst).await,
        InstanceStatus::Running => {
            let routed =
                inst.status == InstanceStatus::Running && inst.alb_rule_arn.is_some() && inst.task_private_ip.is_some();
            if routed || held {
                return Ok(inst); // routed, or a live start is routing it right now
            }
            match finish_registration(app, &inst, &task).await {
                Ok(i) => Ok(i),
                Err(e) => {
                    let latest = app.store.get_instance_consistent(&inst.user_id).await?.unwrap_or(inst);
                    if let Err(undo) = teardown(app, &latest).await {
                        tracing::error!(error = %undo, "teardown after a failed registration failed");
                    }
                    Err(e)
                }
            }
        }
        other if other != inst.status => {
            let update = Update::new().set("status", av(other.as_str())?);
            app.store
                .update_instance(&inst.user_id, &update, Cond::eq_s("taskArn", &task_arn))
                .await
        }
        _ => Ok(inst),
    }
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
