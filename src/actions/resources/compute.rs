//! What runs and routes the user's server: the target group, the task definitions, the
//! log groups, and a task's target.

use crate::context::Services;
use crate::domain::model::Instance;
use crate::domain::names;
use crate::domain::taskdef::FOUNDRY_PORT;
use crate::error::{AwsError, AwsErrorKind, Error, Result};
use crate::managers::alb::TargetGroupSpec;

use super::kind::{in_time, removed, Leftovers, ResourceKind};

/// The target group: HTTP on the Foundry port, health-checked on `/`.
pub fn target_group_spec(svc: &Services, username: &str) -> TargetGroupSpec {
    TargetGroupSpec {
        name: names::target_group_name(username),
        vpc_id: svc.config.vpc_id.clone(),
        port: FOUNDRY_PORT,
        health_check_path: "/".into(),
        health_check_interval_seconds: 30,
        health_check_timeout_seconds: 10,
        healthy_threshold: 2,
        unhealthy_threshold: 3,
        matcher: "200,302".into(),
        tags: vec![
            ("Name".into(), names::target_group_name(username)),
            ("SanitizedUsername".into(), username.to_string()),
            ("Application".into(), "FoundryVTT".into()),
        ],
    }
}

/// The user's target group → its ARN.
pub async fn ensure_target_group(svc: &Services, username: &str) -> Result<String> {
    let spec = target_group_spec(svc, username);
    match svc.aws.alb.create_target_group(&spec).await {
        Ok(arn) => {
            ResourceKind::TargetGroup.created();
            Ok(arn)
        }
        // Left by a create of ours that died (the subdomain claim makes the name ours).
        Err(e) if e.is_already_exists() => svc
            .aws
            .alb
            .find_target_group(&spec.name)
            .await?
            .ok_or_else(|| Error::Failed(format!("Target group {} exists but cannot be found", spec.name))),
        Err(e) => Err(e.into()),
    }
}

/// Makes sure a log group exists with the configured retention → whether it does.
/// Best effort: when it fails, the task definition lets the awslogs driver create the
/// group (without retention), so a missing `logs:*` permission degrades instead of
/// failing the start.
pub async fn ensure_log_group(svc: &Services, name: &str) -> bool {
    let tags = vec![("Application".to_string(), "FoundryVTT".to_string())];
    match svc
        .aws
        .logs
        .ensure_log_group(name, svc.config.log_retention_days, &tags)
        .await
    {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, log_group = name, "could not set the log group's retention");
            false
        }
    }
}

/// The target group (the recorded one, or, for a create that died before recording it,
/// the one its name says), after the listener rules that still forward to it.
pub(super) async fn remove_target_group(svc: &Services, inst: &Instance, left: &mut Leftovers) {
    let tg = match inst.target_group_arn.clone() {
        Some(arn) => Some(arn),
        None => match svc
            .aws
            .alb
            .find_target_group(&names::target_group_name(&inst.sanitized_username))
            .await
        {
            Ok(found) => found,
            Err(e) => {
                left.push(format!("{}: {e}", ResourceKind::TargetGroup.label()));
                return;
            }
        },
    };
    let Some(tg) = tg else { return };
    remove_target_group_arn(svc, &tg, left).await;
}

/// A target group by ARN, after the listener rules that still forward to it.
pub(crate) async fn remove_target_group_arn(svc: &Services, tg: &str, left: &mut Leftovers) {
    let tg = tg.to_string();
    match svc.aws.alb.delete_target_group(&tg).await {
        // Rules still forwarding to the group (ones the original orphaned) block its
        // deletion: remove them, then the group.
        Err(e) if e.kind == AwsErrorKind::Conflict => {
            match svc.aws.alb.list_rules(&svc.config.alb_https_listener_arn).await {
                Ok(rules) => {
                    for rule in rules.iter().filter(|r| r.target_group_arns.contains(&tg)) {
                        left.note(ResourceKind::ListenerRule, svc.aws.alb.delete_rule(&rule.arn).await);
                    }
                }
                Err(e) => left.push(format!("listener rules: {e}")),
            }
            left.note(ResourceKind::TargetGroup, svc.aws.alb.delete_target_group(&tg).await);
        }
        other => {
            left.note(ResourceKind::TargetGroup, other);
        }
    }
}

/// Every task-definition revision of the user's family (the original left one per
/// start), while the invocation has time.
pub(crate) async fn remove_task_definitions(svc: &Services, until_ms: i64, user_id: &str, left: &mut Leftovers) {
    match svc.aws.ecs.list_task_definitions(&names::task_family(user_id)).await {
        Ok(arns) => {
            for arn in arns {
                if !in_time(svc, until_ms, "every task definition", left) {
                    return;
                }
                left.note(
                    ResourceKind::TaskDefinition,
                    svc.aws.ecs.deregister_task_definition(&arn).await,
                );
            }
        }
        Err(e) => left.push(format!("task definitions: {e}")),
    }
}

/// A log group. A deployment whose role may not delete log groups still destroys (the
/// group's retention bounds what stays); any other failure is left for the next call.
pub(crate) async fn remove_log_group(svc: &Services, name: &str, left: &mut Leftovers) {
    match removed(ResourceKind::LogGroup, svc.aws.logs.delete_log_group(name).await) {
        Ok(_) => {}
        Err(e) if e.kind == AwsErrorKind::AccessDenied => {
            tracing::warn!(error = %e, log_group = name, "not allowed to delete the log group; its retention still applies");
        }
        Err(e) => left.push(format!("{}: {e}", ResourceKind::LogGroup.label())),
    }
}

/// Deregisters a task's IP from the user's target group (not found: already gone).
pub async fn deregister_target(svc: &Services, target_group: &str, ip: &str) -> std::result::Result<(), AwsError> {
    match svc.aws.alb.deregister_target(target_group, ip, FOUNDRY_PORT).await {
        Err(e) if e.is_not_found() => Ok(()),
        other => other,
    }
}

/// A listener rule by ARN.
pub(crate) async fn remove_rule(svc: &Services, rule_arn: &str, left: &mut Leftovers) {
    left.note(ResourceKind::ListenerRule, svc.aws.alb.delete_rule(rule_arn).await);
}
