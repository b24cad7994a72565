//! `start` (spec/ACTIONS.md §4.2), safe under double clicks and timeouts (W21, W22,
//! W23, W15, W16, W32).
//!
//! A conditional transition to `starting` comes before RunTask, so two starts launch
//! one task. The task ARN is stored the moment it exists. Every wait ends before the
//! invocation's deadline: if the task is still pending then, `start` answers
//! `starting` and the next `status` finishes the routing. A late failure stops the
//! task and undoes the target and the rule.

use serde_json::Value;

use super::lifecycle::{self, ensure_log_group, lease_free, new_id, progress, teardown, Kind, TaskWait};
use crate::actions::Obj;
use crate::app::{App, Ctx};
use crate::domain::model::{Credentials, Instance, InstanceStatus, SessionStatus};
use crate::domain::names;
use crate::domain::taskdef::{self, FoundryTask, SecretKeys};
use crate::error::{Error, Result};
use crate::managers::credentials::{get_credentials, store_credentials};
use crate::managers::dynamodb::{Cond, Update};
use crate::store::n;

/// Statuses a start may begin from.
const STARTABLE: &[&str] = &["created", "stopped", "stopping", "unknown"];
/// On-demand starts are refused this long before a session on the same license.
const SESSION_PROTECTION: i64 = 1_800;

fn running_body(app: &App, inst: &Instance) -> Value {
    Obj::new()
        .set("message", "Instance is running")
        .set("userId", inst.user_id.as_str())
        .set("status", "running")
        .opt("taskArn", inst.task_arn.clone())
        .set("url", names::url(&inst.sanitized_username, &app.config.domain_name))
        .build()
}

fn starting_body(app: &App, inst: &Instance) -> Value {
    Obj::new()
        .set("message", "Instance is starting")
        .set("userId", inst.user_id.as_str())
        .set("status", "starting")
        .opt("taskArn", inst.task_arn.clone())
        .set("url", names::url(&inst.sanitized_username, &app.config.domain_name))
        .build()
}

/// The on-demand gate (spec/SCHEDULING.md §5), comparing with the owner's own license
/// `byol-<userId>` (W32).
async fn on_demand_gate(app: &App, inst: &Instance) -> Result<()> {
    let now = app.clock.now();
    let license = names::license_id(&inst.user_id);
    let sessions = app.store.scan_sessions().await?;
    let on_license = sessions
        .iter()
        .filter(|s| s.license_id.as_deref() == Some(license.as_str()) && s.end_time > now);
    for s in on_license {
        if s.status == SessionStatus::Scheduled && s.start_time <= now + SESSION_PROTECTION {
            return Err(Error::failed(
                "A scheduled session is about to start using this license",
            ));
        }
        if s.status == SessionStatus::Active && s.user_id != inst.user_id {
            return Err(Error::failed("A scheduled session is currently using this license"));
        }
    }
    Ok(())
}

pub async fn start(app: &App, ctx: &Ctx, user_id: &str) -> Result<Value> {
    let inst = app
        .store
        .get_instance_consistent(user_id)
        .await?
        .filter(|i| i.target_group_arn.is_some())
        .ok_or_else(|| Error::failed("Instance not found or missing target group"))?;
    let now = app.clock.now();
    match inst.status {
        InstanceStatus::Running => return Err(Error::failed("Instance is already running")),
        InstanceStatus::Creating => return Err(Error::failed("Instance is still being created")),
        InstanceStatus::Destroying => return Err(Error::failed("Instance is being destroyed")),
        InstanceStatus::Starting if !lease_free(&inst, now) => return Ok(starting_body(app, &inst)),
        InstanceStatus::Starting if inst.task_arn.is_some() => {
            // A start that returned early or died: finish what it began.
            let inst = lifecycle::reconcile(app, inst).await?;
            return Ok(match inst.status {
                InstanceStatus::Running => running_body(app, &inst),
                InstanceStatus::Starting => starting_body(app, &inst),
                _ => {
                    return Err(Error::failed(
                        "The previous start failed; the instance is stopped. Try again.",
                    ))
                }
            });
        }
        _ => {}
    }

    match inst.license_type.as_deref() {
        Some("byol") => on_demand_gate(app, &inst).await?,
        Some("pooled") => {
            return Err(Error::failed(
                "Pooled license users must schedule sessions - use 'Schedule Session' instead of on-demand start",
            ))
        }
        _ => {}
    }

    // The transition that makes this invocation the only starter.
    let lease_id = new_id();
    let attempt_id = match (&inst.status, &inst.attempt_id) {
        // Retrying a start that died before RunTask answered: same RunTask token.
        (InstanceStatus::Starting, Some(a)) => a.clone(),
        _ => new_id(),
    };
    let update = Update::new()
        .set_s("status", InstanceStatus::Starting.as_str())
        .set_s("attemptId", attempt_id.as_str())
        .set_s("leaseId", lease_id.as_str())
        .set("leaseUntil", n(lifecycle::lease_until(app, ctx)))
        .set("updatedAt", n(now));
    let cond = Cond::Or(vec![
        Cond::In("status".into(), STARTABLE.iter().map(|s| crate::store::s(s)).collect()),
        Cond::And(vec![
            Cond::eq_s("status", InstanceStatus::Starting.as_str()),
            Cond::not_exists("taskArn"),
            lifecycle::cond_lease_free(now),
        ]),
    ]);
    let inst = match app.store.update_instance(user_id, &update, cond).await {
        Ok(i) => i,
        Err(Error::Aws(e)) if e.is_condition_failed() => {
            let now_inst = app.store.get_instance_consistent(user_id).await?;
            return match now_inst {
                Some(i) if i.status == InstanceStatus::Running => Err(Error::failed("Instance is already running")),
                Some(i) if i.status == InstanceStatus::Starting => Ok(starting_body(app, &i)),
                Some(_) => Err(Error::failed("Instance changed while starting; try again")),
                None => Err(Error::failed("Instance not found or missing target group")),
            };
        }
        Err(e) => return Err(e),
    };

    match launch(app, ctx, inst, &lease_id, &attempt_id).await {
        Ok(v) => Ok(v),
        Err(e) => {
            tracing::warn!(error = %e, "start failed; undoing it");
            if let Some(latest) = app.store.get_instance_consistent(user_id).await? {
                if let Err(undo) = teardown(app, &latest).await {
                    tracing::error!(error = %undo.client_message(), "teardown after a failed start failed");
                }
            }
            lifecycle::release(app, user_id, &lease_id).await;
            Err(e)
        }
    }
}

/// Which keys the secret holds, moving a plain-text S3 secret key of an old record
/// into it first (W9 migration).
async fn secret_keys(app: &App, inst: &Instance, lease_id: &str) -> Result<(Option<String>, SecretKeys)> {
    let mut creds = match inst.secret_arn.as_deref() {
        Some(_) => get_credentials(app.aws.secrets.as_ref(), &inst.user_id).await?,
        None => None,
    };
    let mut secret_arn = inst.secret_arn.clone();
    if let (Some(secret), Some(key_id)) = (inst.s3_secret_access_key.as_ref(), inst.s3_access_key_id.as_ref()) {
        let mut c = creds.clone().unwrap_or_else(|| Credentials {
            admin_key: inst.admin_key.clone(),
            ..Default::default()
        });
        c.s3_access_key_id = Some(key_id.clone());
        c.s3_secret_access_key = Some(secret.clone());
        let arn = store_credentials(app.aws.secrets.as_ref(), &inst.user_id, &c).await?;
        progress(
            app,
            &inst.user_id,
            lease_id,
            Update::new()
                .set_s("secretArn", arn.as_str())
                .remove("s3SecretAccessKey"),
        )
        .await?;
        secret_arn = Some(arn);
        creds = Some(c);
    }
    let keys = creds
        .map(|c| SecretKeys {
            foundry_login: c.username.is_some() && c.password.is_some(),
            admin_key: c.admin_key.is_some(),
            s3_keys: c.s3_access_key_id.is_some() && c.s3_secret_access_key.is_some(),
        })
        .unwrap_or_default();
    Ok((secret_arn, keys))
}

async fn launch(app: &App, ctx: &Ctx, inst: Instance, lease_id: &str, attempt_id: &str) -> Result<Value> {
    let uid = inst.user_id.clone();
    let access_point = inst
        .access_point_id
        .clone()
        .ok_or_else(|| Error::failed("Instance has no EFS access point"))?;
    let (secret_arn, keys) = secret_keys(app, &inst, lease_id).await?;
    let log_group_ready = ensure_log_group(app, &names::log_group(&uid)).await;
    let def = taskdef::foundry_task_definition(
        &app.config,
        &FoundryTask {
            user_id: &uid,
            sanitized_username: &inst.sanitized_username,
            access_point_id: &access_point,
            secret_arn: secret_arn.as_deref(),
            secret_keys: keys,
            foundry_version: inst.foundry_version_or_default(),
            log_group_ready,
        },
    );
    let td_arn = app.aws.ecs.register_task_definition(&def).await?;
    let previous_td = inst.task_definition_arn.clone().filter(|p| *p != td_arn);
    progress(
        app,
        &uid,
        lease_id,
        Update::new().set_s("taskDefinitionArn", td_arn.as_str()),
    )
    .await?;
    if let Some(prev) = previous_td {
        // One revision per user stays active (W51).
        if let Err(e) = app.aws.ecs.deregister_task_definition(&prev).await {
            tracing::warn!(error = %e, "could not deregister the previous task definition");
        }
    }

    let mut req = taskdef::run_task(&app.config, &td_arn, vec![]);
    req.client_token = Some(attempt_id.to_string());
    req.started_by = Some(attempt_id.chars().take(36).collect());
    let task_arn = match app.aws.ecs.run_task(&req).await {
        Ok(arn) => arn,
        Err(e) if e.code.as_deref() == Some("RunTaskFailure") => {
            return Err(Error::Failed(format!("Failed to start task: {}", e.message)))
        }
        Err(e) => return Err(e.into()),
    };
    Kind::Task.created();
    let inst = progress(app, &uid, lease_id, Update::new().set_s("taskArn", task_arn.as_str())).await?;

    let until = lifecycle::wait_until_ms(app, ctx);
    match lifecycle::wait_for_task(app, &task_arn, until).await? {
        TaskWait::Running(task) => {
            let inst = lifecycle::finish_registration(app, &inst, &task).await?;
            Ok(running_body(app, &inst))
        }
        TaskWait::Pending => {
            // Out of time: hand the rest to the next `status` call.
            lifecycle::release(app, &uid, lease_id).await;
            tracing::info!(task = %task_arn, "task still pending at the deadline; status will finish the start");
            Ok(starting_body(app, &inst))
        }
    }
}
