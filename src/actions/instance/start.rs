//! `start`, safe under double clicks and timeouts.
//!
//! A conditional transition to `starting` comes before RunTask, so two starts launch
//! one task. The task ARN is stored the moment it exists. Every wait ends before the
//! invocation's deadline: if the task is still pending then, `start` answers
//! `starting` and the next `status` finishes the routing. A late failure stops the
//! task and undoes the target and the rule.

use serde::Serialize;
use serde_json::Value;
use serde_with::skip_serializing_none;

use crate::context::{Ctx, Services};
use crate::domain::model::{Credentials, Instance, InstanceStatus, SessionStatus};
use crate::domain::names;
use crate::domain::schedule::SESSION_GRACE_SECONDS;
use crate::domain::taskdef::{self, FoundryTask, SecretKeys};
use crate::error::{Error, Result};
use crate::managers::credentials::{get_credentials, store_credentials, store_secret};
use crate::store::{Lease, Progress, SessionRun};

use super::resources::{self, removed, ResourceKind};
use super::routing::{self, TaskWait};
use super::{found, teardown};

/// On-demand starts are refused this long before a session on the same license.
const SESSION_PROTECTION: i64 = 1_800;

/// The answer of `start`: the instance runs, or is still starting (the next `status`
/// finishes the routing).
#[skip_serializing_none]
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Started {
    message: &'static str,
    user_id: String,
    status: &'static str,
    task_arn: Option<String>,
    url: String,
}

impl Started {
    fn running(svc: &Services, inst: &Instance) -> Self {
        Self::new(svc, inst, "Instance is running", "running")
    }

    fn starting(svc: &Services, inst: &Instance) -> Self {
        Self::new(svc, inst, "Instance is starting", "starting")
    }

    fn new(svc: &Services, inst: &Instance, message: &'static str, status: &'static str) -> Self {
        Started {
            message,
            user_id: inst.user_id.clone(),
            status,
            task_arn: inst.task_arn.clone(),
            url: names::url(&inst.sanitized_username, &svc.config.domain_name),
        }
    }
}

pub async fn start(svc: &Services, ctx: &Ctx, user_id: &str) -> Result<Value> {
    let answer = start_instance(svc, ctx, user_id).await?;
    crate::response::to_body(&answer)
}

async fn start_instance(svc: &Services, ctx: &Ctx, user_id: &str) -> Result<Started> {
    let inst = svc
        .store
        .instances
        .get_latest(user_id)
        .await?
        .ok_or_else(|| Error::failed("Instance not found or missing target group"))?;
    match inst.status {
        InstanceStatus::Creating => return Err(Error::failed("Instance is still being created")),
        InstanceStatus::Destroying => return Err(Error::failed("Instance is being destroyed")),
        _ if inst.target_group_arn.is_none() => {
            return Err(Error::failed("Instance not found or missing target group"))
        }
        _ => {}
    }
    let now = svc.now();
    match inst.status {
        InstanceStatus::Running => return Err(Error::failed("Instance is already running")),
        InstanceStatus::Starting if !Lease::is_free(&inst, now) => return Ok(Started::starting(svc, &inst)),
        InstanceStatus::Starting if inst.task_arn.is_some() => return resume(svc, inst).await,
        _ => {}
    }
    // A record that still names a task (the original wrote `stopping` and `unknown` while
    // its task lived): settle that task first, so that one user never has two.
    let inst = if inst.task_arn.is_some() {
        match settle_previous_task(svc, inst).await? {
            Settled::Adopted(running) => return Ok(Started::running(svc, &running)),
            Settled::Gone(stopped) => stopped,
        }
    } else {
        inst
    };

    match inst.license_type.as_deref() {
        Some("byol") => on_demand_gate(svc, &inst).await?,
        Some("pooled") => {
            return Err(Error::failed(
                "Pooled license users must schedule sessions - use 'Schedule Session' instead of on-demand start",
            ))
        }
        _ => {}
    }

    launch_run(svc, ctx, inst, None).await
}

/// The start pipeline from a record that may start: makes this invocation its only
/// starter (a conditional move to `starting` under a lease), launches the task, waits for
/// it within the deadline and routes it. A failure stops the task and undoes the target
/// and the rule. A session run also links the session and the license it booked.
async fn launch_run(svc: &Services, ctx: &Ctx, inst: Instance, session: Option<&SessionRun>) -> Result<Started> {
    let user_id = inst.user_id.clone();
    let lease = Lease::new(ctx.lease_until(svc.clock.as_ref()));
    let attempt_id = match (&inst.status, &inst.attempt_id) {
        // Retrying a start that died before RunTask answered: same RunTask token.
        (InstanceStatus::Starting, Some(a)) => a.clone(),
        _ => uuid::Uuid::new_v4().to_string(),
    };
    let Some(inst) = svc
        .store
        .instances
        .begin_start(&user_id, &lease, &attempt_id, svc.now(), session)
        .await?
    else {
        return match svc.store.instances.get_latest(&user_id).await? {
            Some(i) if i.status == InstanceStatus::Running => Err(Error::failed("Instance is already running")),
            Some(i) if i.status == InstanceStatus::Starting => Ok(Started::starting(svc, &i)),
            Some(_) => Err(Error::failed("Instance changed while starting; try again")),
            None => Err(Error::failed("Instance not found or missing target group")),
        };
    };

    match launch(svc, ctx, inst, &lease, &attempt_id).await {
        Ok(answer) => Ok(answer),
        Err(e) => {
            tracing::info!("start failed; undoing it");
            if let Some(latest) = svc.store.instances.get_latest(&user_id).await? {
                if let Err(undo) = teardown::end_run(svc, &latest).await {
                    tracing::error!(error = %undo, "teardown after a failed start failed");
                }
            }
            svc.store.instances.release(&user_id, &lease).await;
            Err(e)
        }
    }
}

/// How a session's server start went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionStart {
    pub url: String,
    /// The server runs and is routed (false: it is still starting; the next sweep or
    /// `status` finishes the routing).
    pub running: bool,
}

/// Why a session's server could not start.
#[derive(Debug)]
pub enum SessionStartError {
    /// The session's user has no instance.
    NoInstance,
    /// The start failed.
    Failed(Error),
}

impl From<Error> for SessionStartError {
    fn from(e: Error) -> Self {
        SessionStartError::Failed(e)
    }
}

/// Starts the server of `user_id` for a scheduled session, through the same pipeline as
/// an on-demand start. A run the instance still has (an on-demand run, or another
/// session's) is ended first: one server per user.
pub async fn start_for_session(
    svc: &Services,
    ctx: &Ctx,
    user_id: &str,
    run: &SessionRun,
) -> std::result::Result<SessionStart, SessionStartError> {
    let inst = svc
        .store
        .instances
        .get_latest(user_id)
        .await?
        .ok_or(SessionStartError::NoInstance)?;
    if inst.target_group_arn.is_none() || matches!(inst.status, InstanceStatus::Creating | InstanceStatus::Destroying) {
        return Err(Error::failed(format!("the instance is not ready ({})", inst.status)).into());
    }
    if !Lease::is_free(&inst, svc.now()) {
        return Err(Error::failed("another start or destroy of this instance is in progress").into());
    }
    let inst = if inst.task_arn.is_some() || inst.status == InstanceStatus::Running {
        teardown::end_run(svc, &inst).await?
    } else {
        inst
    };
    let started = launch_run(svc, ctx, inst, Some(run)).await?;
    Ok(SessionStart {
        running: started.status == "running",
        url: started.url,
    })
}

/// What became of the task a record still named.
enum Settled {
    /// It was healthy and running: it is routed and the instance runs on it.
    Adopted(Instance),
    /// It is stopped, its target deregistered and its hours booked.
    Gone(Instance),
}

async fn settle_previous_task(svc: &Services, inst: Instance) -> Result<Settled> {
    let user_id = inst.user_id.clone();
    let inst = match teardown::reconcile(svc, inst).await {
        Ok(inst) => inst,
        // Could not adopt it: stop it instead, and start afresh.
        Err(e) => {
            tracing::info!(error = %e, "the previous task cannot be adopted; stopping it");
            found(svc.store.instances.get_latest(&user_id).await?)?
        }
    };
    if inst.status == InstanceStatus::Running {
        return Ok(Settled::Adopted(inst));
    }
    if inst.task_arn.is_some() {
        return Ok(Settled::Gone(teardown::end_run(svc, &inst).await?));
    }
    Ok(Settled::Gone(inst))
}

/// A start that returned early or died after RunTask: finish what it began.
async fn resume(svc: &Services, inst: Instance) -> Result<Started> {
    let inst = teardown::reconcile(svc, inst).await?;
    match inst.status {
        InstanceStatus::Running => Ok(Started::running(svc, &inst)),
        InstanceStatus::Starting => Ok(Started::starting(svc, &inst)),
        _ => Err(Error::failed(
            "The previous start failed; the instance is stopped. Try again.",
        )),
    }
}

/// The on-demand gate of a BYOL owner: refused while a session on the owner's license
/// `byol-<userId>` is about to start (within 30 minutes), or while another user's
/// session runs on it. A session is active until its server stops, which may be up to
/// the grace period after its end time.
async fn on_demand_gate(svc: &Services, inst: &Instance) -> Result<()> {
    let now = svc.now();
    let license = names::license_id(&inst.user_id);
    let from = now - svc.config.max_session_seconds - SESSION_GRACE_SECONDS;
    let sessions = svc
        .store
        .sessions
        .on_license(&license, from, now + SESSION_PROTECTION)
        .await?;
    for s in &sessions {
        if s.status == SessionStatus::Scheduled && s.end_time > now && s.start_time <= now + SESSION_PROTECTION {
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

/// The user's secret as the task needs it.
struct SecretInUse {
    arn: Option<String>,
    keys: SecretKeys,
    /// The S3 key was just rotated: task-definition revisions of the original that embed
    /// the old key must all go.
    rotated: bool,
}

/// Which keys the secret holds. A record the original wrote keeps the S3 secret key in
/// plain text (and its task definitions embed it): that key is replaced by a new one,
/// which lives only in the secret, and the old one is deleted.
///
/// A run for a session booked on another owner's license reads that owner's login from
/// a secret of its own, written for the run (and deleted when it ends), with the user's
/// own admin key and S3 keys.
async fn secret_in_use(svc: &Services, inst: &Instance, lease: &Lease) -> Result<SecretInUse> {
    let own = own_secret(svc, inst, lease).await?;
    let Some(license) = inst
        .active_license_id
        .as_deref()
        .filter(|l| *l != names::license_id(&inst.user_id))
    else {
        return Ok(own);
    };
    let owner = names::license_owner(license).ok_or_else(|| Error::failed("Invalid license ID format"))?;
    let login = get_credentials(svc.aws.secrets.as_ref(), owner)
        .await?
        .and_then(|c| Some((c.username?, c.password?)))
        .ok_or_else(|| Error::Failed(format!("License owner credentials not found for {license}")))?;
    let mine = match own.arn {
        Some(_) => get_credentials(svc.aws.secrets.as_ref(), &inst.user_id).await?,
        None => None,
    }
    .unwrap_or_default();
    let borrowed = Credentials {
        username: Some(login.0),
        password: Some(login.1),
        admin_key: mine.admin_key.clone().or_else(|| inst.admin_key.clone()),
        s3_access_key_id: mine.s3_access_key_id.clone(),
        s3_secret_access_key: mine.s3_secret_access_key.clone(),
    };
    let name = names::session_secret_name(&inst.user_id);
    let arn = store_secret(svc.aws.secrets.as_ref(), &name, &inst.user_id, &borrowed).await?;
    Ok(SecretInUse {
        arn: Some(arn),
        keys: keys_of(&borrowed),
        rotated: own.rotated,
    })
}

fn keys_of(c: &Credentials) -> SecretKeys {
    SecretKeys {
        foundry_login: c.username.is_some() && c.password.is_some(),
        admin_key: c.admin_key.is_some(),
        s3_keys: c.s3_access_key_id.is_some() && c.s3_secret_access_key.is_some(),
    }
}

/// The user's own secret, its plain-text S3 key (of a record the original wrote) rotated
/// into it first.
async fn own_secret(svc: &Services, inst: &Instance, lease: &Lease) -> Result<SecretInUse> {
    let creds = match inst.secret_arn.as_deref() {
        Some(_) => get_credentials(svc.aws.secrets.as_ref(), &inst.user_id).await?,
        None => None,
    };
    if inst.s3_secret_access_key.is_none() {
        return Ok(SecretInUse {
            arn: inst.secret_arn.clone(),
            keys: creds.as_ref().map(keys_of).unwrap_or_default(),
            rotated: false,
        });
    }
    // Every key of the user goes (the exposed one, and any a rotation that died made),
    // then one new key is made and stored before the record forgets the old one.
    let iam_user = names::iam_user_name(&inst.sanitized_username, &inst.user_id);
    svc.aws.iam.delete_access_keys(&iam_user).await?;
    let key = svc.aws.iam.create_access_key(&iam_user).await?;
    let mut c = creds.unwrap_or_else(|| Credentials {
        admin_key: inst.admin_key.clone(),
        ..Default::default()
    });
    c.s3_access_key_id = Some(key.access_key_id.clone());
    c.s3_secret_access_key = Some(key.secret_access_key);
    let arn = store_credentials(svc.aws.secrets.as_ref(), &inst.user_id, &c).await?;
    let step = Progress::SecretMigrated {
        arn: arn.clone(),
        access_key_id: key.access_key_id,
    };
    svc.store
        .instances
        .record(&inst.user_id, lease, step, svc.now())
        .await?;
    Ok(SecretInUse {
        arn: Some(arn),
        keys: keys_of(&c),
        rotated: true,
    })
}

/// Registers the user's task definition → its ARN. One revision per user stays active;
/// after a key rotation, every older revision goes.
async fn register_task_definition(svc: &Services, inst: &Instance, lease: &Lease) -> Result<String> {
    let uid = inst.user_id.as_str();
    let access_point = inst
        .access_point_id
        .as_deref()
        .ok_or_else(|| Error::failed("Instance has no EFS access point"))?;
    let secret = secret_in_use(svc, inst, lease).await?;
    let log_group_ready = resources::ensure_log_group(svc, &names::log_group(uid)).await;
    let def = taskdef::foundry_task_definition(
        &svc.config.deployment(),
        &FoundryTask {
            user_id: uid,
            sanitized_username: &inst.sanitized_username,
            access_point_id: access_point,
            secret_arn: secret.arn.as_deref(),
            secret_keys: secret.keys,
            foundry_version: inst.foundry_version_or_default(),
            log_group_ready,
        },
    );
    let arn = svc.aws.ecs.register_task_definition(&def).await?;
    let step = Progress::TaskDefinition(arn.clone());
    svc.store.instances.record(uid, lease, step, svc.now()).await?;
    let older = if secret.rotated {
        svc.aws.ecs.list_task_definitions(&names::task_family(uid)).await?
    } else {
        inst.task_definition_arn.iter().cloned().collect()
    };
    for previous in older.into_iter().filter(|p| *p != arn) {
        // Best effort: a revision left active here is removed by destroy.
        if let Err(e) = removed(
            ResourceKind::TaskDefinition,
            svc.aws.ecs.deregister_task_definition(&previous).await,
        ) {
            tracing::warn!(error = %e, "could not deregister an older task definition");
        }
    }
    Ok(arn)
}

async fn launch(svc: &Services, ctx: &Ctx, inst: Instance, lease: &Lease, attempt_id: &str) -> Result<Started> {
    let uid = inst.user_id.clone();
    let td_arn = register_task_definition(svc, &inst, lease).await?;
    let mut req = taskdef::run_task(&svc.config.deployment(), &td_arn, vec![]);
    req.client_token = Some(attempt_id.to_string());
    req.started_by = Some(attempt_id.chars().take(36).collect());
    let task_arn = match svc.aws.ecs.run_task(&req).await {
        Ok(arn) => arn,
        Err(e) if e.code.as_deref() == Some(crate::managers::ecs::RUN_TASK_FAILURE) => {
            return Err(Error::Failed(format!("Failed to start task: {}", e.message)))
        }
        Err(e) => return Err(e.into()),
    };
    ResourceKind::Task.created();
    let inst = svc
        .store
        .instances
        .record(&uid, lease, Progress::Task(task_arn.clone()), svc.now())
        .await?;

    match routing::wait_for_task(svc, ctx, &task_arn).await? {
        TaskWait::Running(task) => {
            let inst = routing::route(svc, &inst, &task).await?;
            Ok(Started::running(svc, &inst))
        }
        TaskWait::Pending => {
            // Out of time: hand the rest to the next `status` call.
            svc.store.instances.release(&uid, lease).await;
            tracing::info!(task = %task_arn, "task still pending at the deadline; status will finish the start");
            Ok(Started::starting(svc, &inst))
        }
    }
}
