//! `destroy` and `delete` (spec/ACTIONS.md §4.4–§4.5), convergent (W25, W26, W41).
//!
//! Every step treats AWS "not found" as done and removes its attribute from the record
//! as soon as its resource is gone; a failing step does not stop the others. The record
//! is deleted only when everything is gone; otherwise `destroy` reports what is left and
//! a second call finishes the job.

use serde_json::Value;

use super::lifecycle::{self, cond_lease, deleted, gone_ok, lease_free, new_id, progress, teardown, Failures, Kind};
use crate::actions::Obj;
use crate::app::{App, Ctx};
use crate::domain::model::{Instance, InstanceStatus, ReservationStatus, ScheduledSession, SessionStatus};
use crate::domain::names;
use crate::domain::taskdef::{self, CLEANUP_CONTAINER};
use crate::error::{Error, Result};
use crate::managers::credentials::get_credentials;
use crate::managers::dynamodb::{Cond, Update};
use crate::managers::ecs::ContainerOverride;
use crate::managers::route53::AliasRecord;
use crate::store::{av, n};

/// Cancels the user's scheduled and active sessions and their reservations → how many.
async fn cancel_sessions(app: &App, user_id: &str, errors: &mut Vec<String>) -> Result<usize> {
    let now = app.clock.now();
    let mut cancelled = 0;
    for s in app.store.sessions_of_user(user_id).await? {
        if !matches!(s.status, SessionStatus::Scheduled | SessionStatus::Active) {
            continue;
        }
        let update = Update::new()
            .set_s("status", SessionStatus::Cancelled.as_str())
            .set("updatedAt", n(now));
        match app
            .store
            .update_session(&s.session_id, &update, Cond::exists("sessionId"))
            .await
        {
            Ok(_) => {
                cancelled += 1;
                if let Err(e) = cleanup_reservations(app, &s, ReservationStatus::Cancelled).await {
                    errors.push(format!(
                        "reservations of session {}: {}",
                        s.session_id,
                        e.client_message()
                    ));
                }
            }
            Err(e) => errors.push(format!("session {}: {}", s.session_id, e.client_message())),
        }
    }
    Ok(cancelled)
}

/// RESERVATION-CLEANUP (spec/ACTIONS.md §3.4).
pub async fn cleanup_reservations(app: &App, s: &ScheduledSession, to: ReservationStatus) -> Result<()> {
    let Some(license) = s.license_id.as_deref() else {
        return Ok(());
    };
    for r in app
        .store
        .reservations_of_license(license, s.start_time, s.end_time)
        .await?
    {
        if r.session_id == s.session_id && r.status == ReservationStatus::Active {
            let update = Update::new().set("status", av(to.as_str())?);
            app.store
                .update_reservation(&r.reservation_id, &update, Cond::exists("reservationId"))
                .await?;
        }
    }
    Ok(())
}

/// DEACTIVATE-OWN-POOL (spec §3.5) → whether one was deactivated.
pub async fn deactivate_own_pool(app: &App, user_id: &str) -> Result<bool> {
    deactivate_pool(app, &names::license_id(user_id)).await
}

/// Sets an existing, active pool entry inactive (W41: never creates a stub) → whether
/// there was one.
pub async fn deactivate_pool(app: &App, license_id: &str) -> Result<bool> {
    let update = Update::new()
        .set_bool("isActive", false)
        .set("updatedAt", n(app.clock.now()));
    let cond = Cond::And(vec![Cond::exists("licenseId"), Cond::Eq("isActive".into(), av(&true)?)]);
    match app.store.update_pool(license_id, &update, cond).await {
        Ok(_) => Ok(true),
        Err(Error::Aws(e)) if e.is_condition_failed() => Ok(false),
        Err(e) => Err(e),
    }
}

pub async fn destroy(app: &App, ctx: &Ctx, user_id: &str, keep_sharing: bool) -> Result<Value> {
    let mut errors: Vec<String> = Vec::new();
    let cancelled = cancel_sessions(app, user_id, &mut errors).await?;

    let Some(inst) = app.store.get_instance_consistent(user_id).await? else {
        if !keep_sharing && deactivate_own_pool(app, user_id).await? {
            let message = if cancelled > 0 {
                format!(
                    "No instance found, but orphaned license pool has been deactivated and {cancelled} sessions cancelled"
                )
            } else {
                "No instance found, but orphaned license pool has been deactivated".to_string()
            };
            return Ok(Obj::new()
                .set("message", message)
                .set("userId", user_id)
                .set("licensePoolDeactivated", true)
                .set("cancelledSessionsCount", cancelled)
                .build());
        }
        let message = if cancelled > 0 {
            format!("No instance found to destroy, but {cancelled} sessions cancelled")
        } else {
            "No instance found to destroy".to_string()
        };
        return Ok(Obj::new()
            .set("message", message)
            .set("userId", user_id)
            .set("instanceFound", false)
            .set("cancelledSessionsCount", cancelled)
            .build());
    };

    let now = app.clock.now();
    if !lease_free(&inst, now) {
        return Err(Error::failed(match inst.status {
            InstanceStatus::Creating => "The instance is still being created; try again in a few minutes",
            InstanceStatus::Destroying => "The instance is already being destroyed",
            _ => "The instance is busy starting; try again in a few minutes",
        }));
    }
    let lease_id = new_id();
    let update = Update::new()
        .set_s("status", InstanceStatus::Destroying.as_str())
        .set_s("leaseId", lease_id.as_str())
        .set("leaseUntil", n(lifecycle::lease_until(app, ctx)))
        .set("updatedAt", n(now));
    let cond = Cond::And(vec![Cond::exists("userId"), lifecycle::cond_lease_free(now)]);
    let mut inst = match app.store.update_instance(user_id, &update, cond).await {
        Ok(i) => i,
        Err(Error::Aws(e)) if e.is_condition_failed() => {
            return Err(Error::failed("The instance is busy; try again in a few minutes"))
        }
        Err(e) => return Err(e),
    };

    if inst.task_arn.is_some() || inst.alb_rule_arn.is_some() || inst.task_private_ip.is_some() {
        match teardown(app, &inst).await {
            Ok(i) => inst = i,
            Err(e) => errors.push(format!("stopping the task: {}", e.client_message())),
        }
    }
    let steps = teardown_resources(app, ctx, &inst, &lease_id, keep_sharing).await;
    errors.extend(steps);

    if !errors.is_empty() {
        lifecycle::release(app, user_id, &lease_id).await;
        return Err(Error::Failed(format!(
            "Destroy incomplete: {}. Call destroy again to finish.",
            errors.join("; ")
        )));
    }
    if let Err(e) = app.store.delete_instance(user_id, cond_lease(&lease_id)).await {
        lifecycle::release(app, user_id, &lease_id).await;
        return Err(e);
    }
    let message = if cancelled > 0 {
        format!("Instance destroyed successfully ({cancelled} sessions cancelled)")
    } else {
        "Instance destroyed successfully".to_string()
    };
    Ok(Obj::new()
        .set("message", message)
        .set("userId", user_id)
        .set("cancelledSessionsCount", cancelled)
        .build())
}

/// Removes every per-user resource the record names → the failures.
async fn teardown_resources(app: &App, ctx: &Ctx, inst: &Instance, lease_id: &str, keep_sharing: bool) -> Vec<String> {
    let uid = inst.user_id.as_str();
    let san = inst.sanitized_username.as_str();
    let mut errors = Failures::default();
    // Records the original let two users share (W17): their names are not ours alone.
    let shared_name = match app.store.scan_instances().await {
        Ok(all) => all.iter().any(|i| i.user_id != uid && i.sanitized_username == san),
        Err(e) => {
            errors.push(format!("checking for a shared subdomain: {}", e.client_message()));
            return errors.0;
        }
    };

    // Target group and DNS record (kept when another user's record shares the name).
    if let Some(tg) = inst.target_group_arn.as_deref().filter(|_| !shared_name) {
        // Rules still forwarding to the group (one the original orphaned, W16) block its deletion.
        match app.aws.alb.list_rules(&app.config.alb_https_listener_arn).await {
            Ok(rules) => {
                for rule in rules.iter().filter(|r| r.target_group_arns.iter().any(|t| t == tg)) {
                    errors.step(Kind::ListenerRule, app.aws.alb.delete_rule(&rule.arn).await);
                }
            }
            Err(e) => errors.push(format!("listener rules: {e}")),
        }
    }
    if let Some(tg) = inst.target_group_arn.as_deref() {
        let ok = shared_name || errors.step(Kind::TargetGroup, app.aws.alb.delete_target_group(tg).await);
        if ok {
            let _ = progress(app, uid, lease_id, Update::new().remove("targetGroupArn")).await;
        }
    }
    if !shared_name {
        let record = AliasRecord {
            hosted_zone_id: app.config.route53_hosted_zone_id.clone(),
            name: names::host(san, &app.config.domain_name),
            target_dns_name: app.config.alb_dns_name.clone(),
            target_hosted_zone_id: app.config.alb_zone_id.clone(),
        };
        let comment = format!("Delete DNS record for Foundry user {san}");
        if errors.step(Kind::DnsRecord, app.aws.route53.delete_alias(&record, &comment).await) {
            let _ = progress(app, uid, lease_id, Update::new().remove("dnsRecord")).await;
        }
    }

    // EFS: the files go first; the access point only when they are gone (W26).
    if let Some(ap) = inst.access_point_id.as_deref() {
        match clean_efs(app, ctx, inst, lease_id).await {
            Ok(()) => {
                if errors.step(Kind::AccessPoint, app.aws.efs.delete_access_point(ap).await) {
                    let _ = progress(app, uid, lease_id, Update::new().remove("accessPointId")).await;
                }
            }
            Err(e) => errors.push(e.client_message().trim_start_matches("Internal error: ").to_string()),
        }
    }

    if let Some(bucket) = inst.s3_bucket_name.as_deref() {
        match deleted(Kind::S3Bucket, app.aws.s3.delete_bucket(bucket).await) {
            Ok(_) => {
                let _ = progress(app, uid, lease_id, Update::new().remove("s3BucketName")).await;
            }
            Err(e) if e.code.as_deref() == Some("BucketNotEmpty") || e.to_string().contains("BucketNotEmpty") => errors.push(
                "S3 bucket deletion failed: Bucket still contains objects after emptying. This may be due to eventual consistency - please try again in a few minutes.",
            ),
            Err(e) => errors.push(format!("S3 bucket deletion failed: {e}")),
        }
    }

    if inst.s3_access_key_id.is_some() || inst.iam_user_name.is_some() {
        let user = inst
            .iam_user_name
            .clone()
            .unwrap_or_else(|| names::iam_user_name(san, uid));
        match deleted(Kind::IamUser, app.aws.iam.delete_user(&user).await) {
            Ok(_) => {
                let update = Update::new()
                    .remove("iamUserName")
                    .remove("s3AccessKeyId")
                    .remove("s3SecretAccessKey");
                let _ = progress(app, uid, lease_id, update).await;
            }
            Err(e) => errors.push(format!("IAM user deletion failed: {e}")),
        }
    }

    if inst.secret_arn.is_some() && !keep_sharing {
        let secret = names::secret_name(uid);
        if errors.step(Kind::Secret, app.aws.secrets.delete_secret(&secret, true).await) {
            let _ = progress(app, uid, lease_id, Update::new().remove("secretArn")).await;
        }
    }

    // Every task-definition revision of the user (W51).
    match app.aws.ecs.list_task_definitions(&names::task_family(uid)).await {
        Ok(arns) => {
            for arn in arns {
                errors.step(Kind::TaskDefinition, app.aws.ecs.deregister_task_definition(&arn).await);
            }
        }
        Err(e) => errors.push(format!("task definitions: {e}")),
    }

    // The user's log group (W51). A deployment whose role lacks logs:DeleteLogGroup
    // still destroys (the retention bounds what stays); any other failure is retried.
    match deleted(
        Kind::LogGroup,
        app.aws.logs.delete_log_group(&names::log_group(uid)).await,
    ) {
        Ok(_) => {}
        Err(e) if e.code.as_deref().is_some_and(|c| c.contains("AccessDenied")) => {
            tracing::warn!(error = %e, "not allowed to delete the user's log group; its retention still applies");
        }
        Err(e) => errors.push(format!("{}: {e}", Kind::LogGroup.label())),
    }

    if inst.allow_license_sharing == Some(true) && !keep_sharing {
        if let Err(e) = deactivate_own_pool(app, uid).await {
            errors.push(format!("license pool: {}", e.client_message()));
        }
    }
    errors.0
}

/// Runs (or keeps waiting for) the EFS cleanup task of the user.
async fn clean_efs(app: &App, ctx: &Ctx, inst: &Instance, lease_id: &str) -> Result<()> {
    let uid = inst.user_id.as_str();
    let task_arn = match inst.cleanup_task_arn.clone() {
        Some(arn) => arn,
        None => {
            let def = taskdef::cleanup_task_definition(&app.config);
            let _ = lifecycle::ensure_log_group(app, &taskdef::helper_log_group(taskdef::CLEANUP_FAMILY)).await;
            let td = app.aws.ecs.register_task_definition(&def).await?;
            let req = taskdef::run_task(
                &app.config,
                &td,
                vec![ContainerOverride {
                    name: CLEANUP_CONTAINER.into(),
                    environment: vec![("USER_ID".into(), uid.to_string())],
                }],
            );
            let arn = app.aws.ecs.run_task(&req).await?;
            // Only lets a later destroy wait for this task instead of starting another:
            // losing this write is harmless.
            if let Err(e) = progress(app, uid, lease_id, Update::new().set_s("cleanupTaskArn", arn.as_str())).await {
                tracing::warn!(error = %e.client_message(), "could not record the cleanup task");
            }
            arn
        }
    };
    let until = lifecycle::wait_until_ms(app, ctx);
    let result = wait_for_helper_task(app, &task_arn, CLEANUP_CONTAINER, until).await;
    match &result {
        // Still running, or we could not look: a later destroy waits for this task.
        Err(HelperWait::StillRunning) | Err(HelperWait::Aws(_)) => {}
        _ => {
            let _ = progress(app, uid, lease_id, Update::new().remove("cleanupTaskArn")).await;
        }
    }
    result.map_err(|e| match e {
        HelperWait::StillRunning => {
            Error::failed("EFS cleanup is still running; the access point is kept until it finishes")
        }
        HelperWait::Failed(why) => Error::Failed(format!(
            "EFS cleanup failed ({why}); the access point and the user's files are kept"
        )),
        HelperWait::Aws(e) => e,
    })
}

/// Why a helper task did not succeed.
pub enum HelperWait {
    StillRunning,
    Failed(String),
    Aws(Error),
}

/// Waits for a helper task (cleanup, permission reset) to stop, and checks that its
/// container exited with 0. A non-zero exit or a vanished task fails at once (W24).
pub async fn wait_for_helper_task(
    app: &App,
    task_arn: &str,
    container: &str,
    until_ms: i64,
) -> std::result::Result<(), HelperWait> {
    loop {
        let task = app
            .aws
            .ecs
            .describe_task(&app.config.cluster_name, task_arn)
            .await
            .map_err(|e| HelperWait::Aws(e.into()))?
            .ok_or_else(|| HelperWait::Failed(format!("task {task_arn} not found")))?;
        if task.last_status.eq_ignore_ascii_case("STOPPED") {
            let exit = task
                .containers
                .iter()
                .find(|c| c.name == container)
                .and_then(|c| c.exit_code);
            return match exit {
                Some(0) => Ok(()),
                Some(code) => Err(HelperWait::Failed(format!("exit code {code}"))),
                None => Err(HelperWait::Failed(format!(
                    "task stopped without an exit code: {}",
                    task.stopped_reason.unwrap_or_default()
                ))),
            };
        }
        if app.clock.now_ms() + lifecycle::SLOW_POLL.as_millis() as i64 > until_ms {
            return Err(HelperWait::StillRunning);
        }
        app.clock.sleep(lifecycle::SLOW_POLL).await;
    }
}

/// `delete` (§4.5).
pub async fn delete(app: &App, ctx: &Ctx, user_id: &str) -> Result<Value> {
    if app.store.get_instance(user_id).await?.is_some() {
        destroy(app, ctx, user_id, false).await?;
    }
    if get_credentials(app.aws.secrets.as_ref(), user_id).await?.is_some() {
        if let Err(e) = gone_ok(app.aws.secrets.delete_secret(&names::secret_name(user_id), true).await) {
            tracing::warn!(error = %e, "could not delete the user's secret");
        }
    }
    if let Err(e) = deactivate_own_pool(app, user_id).await {
        tracing::warn!(error = %e.client_message(), "could not deactivate the user's license pool");
    }
    Ok(Obj::new()
        .set("message", "User deleted successfully")
        .set("userId", user_id)
        .set(
            "note",
            "All user data, credentials, and infrastructure have been permanently removed",
        )
        .build())
}
