//! `ecs-task-state-change`: an EventBridge `ECS Task State Change` event for the cluster.
//!
//! Only the task the user's record names counts, and only two of its states:
//! * `RUNNING` finishes the routing a start left (target, rule, usage start), through the
//!   same [`settle`] as the `status` refresh, and activates the session the run is for;
//! * `STOPPED` ends the run through the one run-end path, and records why the task
//!   stopped (`lastStopReason`).
//!
//! Anything else is a no-op that answers 200 and says why: an event for another cluster, a
//! task of another family (the EFS cleanup task), a task the record no longer names (an
//! old run), another state, a repeated or late event, or an event that cannot be read.
//! Repeats and reorderings are harmless because every write is conditional on the task ARN
//! the record names (and routing on the record not being `running` yet).

use serde::Serialize;
use serde_json::{Map, Value};
use serde_with::skip_serializing_none;

use crate::context::Services;
use crate::domain::model::{Instance, InstanceStatus};
use crate::domain::{names, taskdef};
use crate::error::Result;
use crate::managers::ecs::{ContainerState, TaskInfo};

use super::refresh::{refresh, settle};

/// The answer: what the event did.
#[skip_serializing_none]
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskEventOutcome {
    message: String,
    /// `routed`, `ended`, `unchanged` (the record names the task, and nothing was left to
    /// do) or `ignored` (the event is not about the task the record names).
    outcome: &'static str,
    /// Why nothing changed (`unchanged`, `ignored`).
    reason: Option<String>,
    user_id: Option<String>,
    task_arn: Option<String>,
    last_status: Option<String>,
    /// The instance's status after the event.
    status: Option<String>,
}

impl TaskEventOutcome {
    fn ignored(reason: impl Into<String>, event: Option<&TaskEvent>) -> Self {
        let reason = reason.into();
        tracing::info!(reason = %reason, task = ?event.map(|e| &e.task.task_arn), "ECS task event ignored");
        TaskEventOutcome {
            message: "ECS task event ignored".into(),
            outcome: "ignored",
            reason: Some(reason),
            user_id: event.and_then(|e| e.user_id.clone()),
            task_arn: event.map(|e| e.task.task_arn.clone()),
            last_status: event.map(|e| e.task.last_status.clone()),
            status: None,
        }
    }
}

/// What the function reads of an ECS task-state event.
#[derive(Debug)]
struct TaskEvent {
    cluster_arn: String,
    task: TaskInfo,
    stop_code: Option<String>,
    /// The family of the task's definition.
    family: Option<String>,
    /// The user whose server the task is (from the family `foundry-<userId>`).
    user_id: Option<String>,
}

fn text<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    m.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// The family of `…:task-definition/<family>:<revision>`, or of `family:<family>`.
fn family_of(detail: &Map<String, Value>) -> Option<String> {
    if let Some(arn) = text(detail, "taskDefinitionArn") {
        let tail = arn.rsplit('/').next().unwrap_or(arn);
        return Some(tail.rsplit_once(':').map_or(tail, |(f, _)| f).to_string());
    }
    text(detail, "group")
        .and_then(|g| g.strip_prefix("family:"))
        .map(str::to_string)
}

/// The private IPv4 of the task's ENI (`eni` in events, `ElasticNetworkInterface` in
/// DescribeTasks), else of a container's network interface.
fn private_ip(detail: &Map<String, Value>) -> Option<String> {
    let from_attachments = detail
        .get("attachments")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|a| {
            a.get("type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.eq_ignore_ascii_case("eni") || t == "ElasticNetworkInterface")
        })
        .filter_map(|a| a.get("details").and_then(Value::as_array))
        .flatten()
        .find(|d| d.get("name").and_then(Value::as_str) == Some("privateIPv4Address"))
        .and_then(|d| d.get("value").and_then(Value::as_str));
    let from_containers = || {
        detail
            .get("containers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| c.get("networkInterfaces").and_then(Value::as_array))
            .flatten()
            .find_map(|n| n.get("privateIpv4Address").and_then(Value::as_str))
    };
    from_attachments
        .or_else(from_containers)
        .filter(|ip| !ip.is_empty())
        .map(str::to_string)
}

impl TaskEvent {
    /// The event, or why it cannot be read.
    fn read(detail: &Map<String, Value>) -> std::result::Result<TaskEvent, String> {
        if let Some(kind) = text(detail, "detailType").filter(|k| *k != "ECS Task State Change") {
            return Err(format!("not a task-state change ({kind})"));
        }
        let task_arn = text(detail, "taskArn").ok_or("the event names no taskArn")?;
        let last_status = text(detail, "lastStatus").ok_or("the event has no lastStatus")?;
        let cluster_arn = text(detail, "clusterArn").ok_or("the event names no clusterArn")?;
        let containers = detail
            .get("containers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| {
                Some(ContainerState {
                    name: c.get("name")?.as_str()?.to_string(),
                    exit_code: c
                        .get("exitCode")
                        .and_then(Value::as_i64)
                        .and_then(|n| i32::try_from(n).ok()),
                })
            })
            .collect();
        let family = family_of(detail);
        let user_id = family
            .as_deref()
            .filter(|f| *f != taskdef::CLEANUP_FAMILY)
            .and_then(|f| f.strip_prefix("foundry-"))
            .filter(|u| names::validate_user_id(u).is_ok())
            .map(str::to_string);
        Ok(TaskEvent {
            cluster_arn: cluster_arn.to_string(),
            task: TaskInfo {
                task_arn: task_arn.to_string(),
                last_status: last_status.to_ascii_uppercase(),
                desired_status: text(detail, "desiredStatus").map(str::to_ascii_uppercase),
                private_ip: private_ip(detail),
                stopped_reason: text(detail, "stoppedReason").map(str::to_string),
                containers,
                started_at: None,
                stopped_at: None,
            },
            stop_code: text(detail, "stopCode").map(str::to_string),
            family,
            user_id,
        })
    }
}

/// Whether `cluster_arn` (an ARN or a name) is the cluster `configured` names.
fn same_cluster(cluster_arn: &str, configured: &str) -> bool {
    let name = |c: &str| c.rsplit_once(":cluster/").map_or(c, |(_, n)| n).to_string();
    name(cluster_arn) == name(configured)
}

/// `ecs-task-state-change`: applies one ECS task-state event to the record of the task's
/// user. Never fails on the event's content; an AWS failure while acting on it is an error.
pub async fn task_state_change(svc: &Services, detail: &Map<String, Value>) -> Result<Value> {
    let outcome = apply(svc, detail).await?;
    crate::response::to_body(&outcome)
}

async fn apply(svc: &Services, detail: &Map<String, Value>) -> Result<TaskEventOutcome> {
    let event = match TaskEvent::read(detail) {
        Ok(event) => event,
        Err(why) => return Ok(TaskEventOutcome::ignored(format!("malformed event: {why}"), None)),
    };
    if !same_cluster(&event.cluster_arn, &svc.config.cluster_name) {
        return Ok(TaskEventOutcome::ignored("another cluster", Some(&event)));
    }
    if event.family.as_deref() == Some(taskdef::BACKUP_FAMILY) {
        return backup_stopped(svc, detail, &event).await;
    }
    let Some(user_id) = event.user_id.clone() else {
        let family = event.family.as_deref().unwrap_or("unknown");
        return Ok(TaskEventOutcome::ignored(
            format!("not a Foundry server task (family {family})"),
            Some(&event),
        ));
    };
    let acts = matches!(event.task.last_status.as_str(), "RUNNING" | "STOPPED");
    if !acts {
        return Ok(TaskEventOutcome::ignored(
            "only RUNNING and STOPPED change the record",
            Some(&event),
        ));
    }
    if event.task.last_status == "RUNNING" && event.task.desired_status.as_deref() == Some("STOPPED") {
        return Ok(TaskEventOutcome::ignored("the task is being stopped", Some(&event)));
    }
    let Some(inst) = svc.store.instances.get_latest(&user_id).await? else {
        return Ok(TaskEventOutcome::ignored("the user has no instance", Some(&event)));
    };
    if inst.task_arn.as_deref() != Some(event.task.task_arn.as_str()) {
        return Ok(TaskEventOutcome::ignored(
            "the instance does not run this task (an old run, or one already ended)",
            Some(&event),
        ));
    }
    let before = inst.clone();
    let applied = if event.task.last_status == "RUNNING" && event.task.private_ip.is_none() {
        // The event lacks the ENI's address: read the task as `status` does.
        refresh(svc, inst).await
    } else {
        settle(svc, inst, &event.task, event.stop_code.as_deref()).await
    };
    let after = match applied {
        Ok(after) => after,
        Err(e) => {
            // Another invocation (a stop, a destroy) may have ended the run meanwhile: then
            // the event has nothing left to act on, and that is no failure.
            let latest = svc.store.instances.get_latest(&user_id).await?;
            if latest.and_then(|l| l.task_arn).as_deref() != Some(event.task.task_arn.as_str()) {
                return Ok(TaskEventOutcome::ignored(
                    format!("the run ended while the event was applied ({e})"),
                    Some(&event),
                ));
            }
            return Err(e);
        }
    };
    let (outcome, reason) = judge(&before, &after, &event);
    if outcome == "routed" {
        if let Some(session) = after.linked_session_id.as_deref() {
            // The run a session's start handed over runs now: the session is active.
            if let Err(e) = svc.store.sessions.activate(session, &user_id, svc.now()).await {
                tracing::warn!(error = %e, session, "could not mark the session active; the next sweep will");
            }
        }
    }
    tracing::info!(outcome, reason = ?reason, task = %event.task.task_arn, status = %after.status, "ECS task event applied");
    Ok(TaskEventOutcome {
        message: format!("ECS task event: {outcome}"),
        outcome,
        reason,
        user_id: Some(user_id),
        task_arn: Some(event.task.task_arn.clone()),
        last_status: Some(event.task.last_status.clone()),
        status: Some(after.status.as_str().to_string()),
    })
}

/// A world backup task's event: once it has stopped, how it ended is recorded on its user's
/// record at once (a failure with its reason; see `resources::settle_recorded`), rather than
/// at the next end of a run. Only the backup task the record names counts.
async fn backup_stopped(svc: &Services, detail: &Map<String, Value>, event: &TaskEvent) -> Result<TaskEventOutcome> {
    if event.task.last_status != "STOPPED" {
        return Ok(TaskEventOutcome::ignored(
            "a backup task: only its STOPPED event is recorded",
            Some(event),
        ));
    }
    let Some(user_id) = text(detail, "startedBy")
        .and_then(|s| s.strip_prefix("backup-"))
        .filter(|u| names::validate_user_id(u).is_ok())
    else {
        return Ok(TaskEventOutcome::ignored(
            "a backup task that names no user",
            Some(event),
        ));
    };
    let Some(inst) = svc.store.instances.get_latest(user_id).await? else {
        return Ok(TaskEventOutcome::ignored("the user has no instance", Some(event)));
    };
    if inst.backup_task_arn.as_deref() != Some(event.task.task_arn.as_str()) {
        return Ok(TaskEventOutcome::ignored(
            "not the backup task the instance names (already recorded, or a restore)",
            Some(event),
        ));
    }
    crate::actions::resources::settle_recorded(svc, &inst).await;
    tracing::info!(task = %event.task.task_arn, "backup task outcome recorded");
    Ok(TaskEventOutcome {
        message: "ECS task event: backup-recorded".into(),
        outcome: "backup-recorded",
        reason: None,
        user_id: Some(user_id.to_string()),
        task_arn: Some(event.task.task_arn.clone()),
        last_status: Some(event.task.last_status.clone()),
        status: Some(inst.status.as_str().to_string()),
    })
}

/// What applying the event did to the record.
fn judge(before: &Instance, after: &Instance, event: &TaskEvent) -> (&'static str, Option<String>) {
    let named = after.task_arn.as_deref() == Some(event.task.task_arn.as_str());
    if event.task.last_status == "STOPPED" {
        if named {
            return ("unchanged", Some(format!("the instance is {}", after.status)));
        }
        return ("ended", None);
    }
    let was_routed = before.status == InstanceStatus::Running && before.alb_rule_arn.is_some();
    if named && after.status == InstanceStatus::Running && !was_routed {
        return ("routed", None);
    }
    let why = if was_routed {
        "the run is routed already".to_string()
    } else if matches!(before.status, InstanceStatus::Creating | InstanceStatus::Destroying) {
        format!("the instance is {}", before.status)
    } else if before.lease_until.is_some() && after.status == InstanceStatus::Starting {
        "a start at work is routing it".to_string()
    } else {
        format!("the instance is {}", after.status)
    };
    ("unchanged", Some(why))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn members(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn an_event_is_read_with_its_user_ip_reason_and_exit_code() {
        let e = TaskEvent::read(&members(json!({
            "detailType": "ECS Task State Change",
            "clusterArn": "arn:aws:ecs:us-east-1:123456789012:cluster/foundry-vtt-cluster",
            "taskArn": "arn:aws:ecs:us-east-1:123456789012:task/foundry-vtt-cluster/abc",
            "taskDefinitionArn": "arn:aws:ecs:us-east-1:123456789012:task-definition/foundry-123:4",
            "lastStatus": "STOPPED", "desiredStatus": "STOPPED", "stopCode": "EssentialContainerExited",
            "stoppedReason": "Essential container in task exited",
            "containers": [{"name": "foundry", "exitCode": 137}, {"name": "x"}],
            "attachments": [{"type": "eni", "details": [{"name": "privateIPv4Address", "value": "10.0.1.9"}]}]
        })))
        .unwrap();
        assert_eq!(e.user_id.as_deref(), Some("123"));
        assert_eq!(e.task.private_ip.as_deref(), Some("10.0.1.9"));
        assert_eq!(e.task.containers[0].exit_code, Some(137));
        assert_eq!(e.stop_code.as_deref(), Some("EssentialContainerExited"));
    }

    #[test]
    fn the_cleanup_task_and_odd_families_name_no_user() {
        for family in ["foundry-efs-cleanup", "other-123", "foundry-"] {
            let e = TaskEvent::read(&members(json!({
                "clusterArn": "c", "taskArn": "t", "lastStatus": "RUNNING", "group": format!("family:{family}")
            })))
            .unwrap();
            assert_eq!(e.user_id, None, "{family}");
        }
    }

    #[test]
    fn events_without_a_task_status_or_cluster_cannot_be_read() {
        for v in [
            json!({}),
            json!({"taskArn": "t", "lastStatus": "RUNNING"}),
            json!({"taskArn": 5, "lastStatus": "RUNNING", "clusterArn": "c"}),
            json!({"taskArn": "t", "clusterArn": "c"}),
            json!({"detailType": "ECS Container Instance State Change", "taskArn": "t", "lastStatus": "RUNNING", "clusterArn": "c"}),
        ] {
            assert!(TaskEvent::read(&members(v.clone())).is_err(), "{v}");
        }
    }

    #[test]
    fn clusters_compare_by_name() {
        assert!(same_cluster("arn:aws:ecs:us-east-1:1:cluster/foundry", "foundry"));
        assert!(same_cluster("foundry", "arn:aws:ecs:us-east-1:1:cluster/foundry"));
        assert!(!same_cluster("arn:aws:ecs:us-east-1:1:cluster/other", "foundry"));
    }
}
