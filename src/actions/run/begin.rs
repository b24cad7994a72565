//! The beginning of a run: the one start pipeline of `start`, `start-scheduled-session`
//! and `prepare-sessions`.
//!
//! A conditional transition to `starting` comes before RunTask, so two starts launch one
//! task, and the same write claims the license the run uses, so one license never runs
//! two servers. The task ARN is stored the moment it exists. Every wait ends before the
//! invocation's deadline: if the task is still pending then, the start answers `starting`
//! and the next `status` finishes the routing. With `START_WAIT=events` it does not wait
//! at all: it answers `starting` right after RunTask, and the task's `RUNNING` event
//! finishes the routing. A late failure stops the task and undoes
//! the target and the rule.

use serde::Serialize;
use serde_with::skip_serializing_none;

use crate::actions::resources::{self, removed, ResourceKind};
use crate::config::StartWait;
use crate::context::{Ctx, Services};
use crate::domain::model::{Credentials, Instance, InstanceStatus};
use crate::domain::names;
use crate::domain::taskdef::{self, FoundryTask, SecretKeys};
use crate::error::{Error, Result};
use crate::store::credentials::{get_credentials, store_credentials, store_secret};
use crate::store::{BeginStart, Lease, Progress, RunClaim, SessionRun};

use super::end::end_run;
use super::routing::{self, TaskWait};

/// The answer of `start`: the instance runs, or is still starting (the next `status`
/// finishes the routing).
#[skip_serializing_none]
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Started {
    message: &'static str,
    user_id: String,
    status: &'static str,
    task_arn: Option<String>,
    url: String,
}

impl Started {
    pub fn running(svc: &Services, inst: &Instance) -> Self {
        Self::new(svc, inst, "Instance is running", "running")
    }

    pub fn starting(svc: &Services, inst: &Instance) -> Self {
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

/// The start pipeline from a record that may start: makes this invocation its only
/// starter (a conditional move to `starting` under a lease), launches the task, waits for
/// it within the deadline and routes it. A failure stops the task and undoes the target
/// and the rule. A session run also links the session and the license it booked.
pub async fn launch_run(svc: &Services, ctx: &Ctx, inst: Instance, session: Option<&SessionRun>) -> Result<Started> {
    match begin(svc, ctx, inst, session).await? {
        Begun::Launched(answer) => Ok(answer),
        Begun::LicenseHeld(_) => Err(Error::failed("A scheduled session is currently using this license")),
    }
}

/// The refusal of a start while a restore of the user's directory is unfinished.
pub const RESTORE_UNFINISHED: &str =
    "A restore of this instance's worlds is unfinished; call restore-backup again to finish it before starting";

/// How often a start tries to take over a stale claim on its license.
const BEGIN_ATTEMPTS: usize = 3;
/// How often a session's start ends the run that holds its license and tries again.
const LICENSE_ATTEMPTS: usize = 3;

/// How a start began.
enum Begun {
    /// It launched (or found the start of another invocation at work): the answer.
    Launched(Started),
    /// Another user's run holds the license this run would use.
    LicenseHeld(RunClaim),
}

/// The begin of [`launch_run`]: claims the record and the license in one write; a stale
/// claim on the license (its runner's record no longer holds that run) is taken over.
async fn begin(svc: &Services, ctx: &Ctx, inst: Instance, session: Option<&SessionRun>) -> Result<Begun> {
    let user_id = inst.user_id.clone();
    if inst.restore_state.is_some() {
        return Err(Error::failed(RESTORE_UNFINISHED));
    }
    // A backup or restore of the user's directory ends before a server uses it.
    resources::wait_for_world_tasks(svc, ctx, &user_id).await?;
    let lease = Lease::new(ctx.lease_until(svc.clock.as_ref()));
    let attempt_id = match (&inst.status, &inst.attempt_id) {
        // Retrying a start that died before RunTask answered: same RunTask token.
        (InstanceStatus::Starting, Some(a)) => a.clone(),
        _ => uuid::Uuid::new_v4().to_string(),
    };
    let license = session.map(|r| r.license_id.clone()).or_else(|| inst.license_in_use());
    let mut over: Option<RunClaim> = None;
    let mut tries = 0;
    let began = loop {
        tries += 1;
        let write = BeginStart {
            lease: &lease,
            attempt_id: &attempt_id,
            now: svc.now(),
            session,
            license: license.as_deref(),
            over: over.as_ref(),
        };
        if let Some(began) = svc.store.instances.begin_start(&inst, &write).await? {
            break began;
        }
        // Lost: to another start of this user, or to another run on the license.
        if let Some(license) = license.as_deref() {
            match svc.store.claims.license_run(license).await? {
                Some(claim) if claim.runner != user_id => {
                    if holds_its_run(svc, &claim).await? {
                        return Ok(Begun::LicenseHeld(claim));
                    }
                    if over.as_ref() != Some(&claim) && tries < BEGIN_ATTEMPTS {
                        tracing::info!(license, runner = %claim.runner, "taking over a stale claim on the license");
                        over = Some(claim);
                        continue;
                    }
                }
                _ => {}
            }
        }
        return Ok(Begun::Launched(
            match svc.store.instances.get_latest(&user_id).await? {
                Some(i) if i.status == InstanceStatus::Running => {
                    return Err(Error::failed("Instance is already running"))
                }
                Some(i) if i.status == InstanceStatus::Starting => Started::starting(svc, &i),
                Some(i) if i.restore_state.is_some() => return Err(Error::failed(RESTORE_UNFINISHED)),
                Some(_) => return Err(Error::failed("Instance changed while starting; try again")),
                None => return Err(Error::failed("Instance not found or missing target group")),
            },
        ));
    };

    match launch(svc, ctx, began, &lease, &attempt_id).await {
        Ok(answer) => Ok(Begun::Launched(answer)),
        Err(e) => {
            tracing::info!("start failed; undoing it");
            // Only this start's run: one that began since (a later start of the user) is not
            // this start's to undo.
            let latest = svc.store.instances.get_latest(&user_id).await?;
            if let Some(latest) = latest.filter(|l| l.attempt_id.as_deref() == Some(attempt_id.as_str())) {
                if let Err(undo) = end_run(svc, &latest).await {
                    tracing::error!(error = %undo, "teardown after a failed start failed");
                }
            }
            svc.store.instances.release(&user_id, &lease).await;
            Err(e)
        }
    }
}

/// The user whose run holds `license_id` now: the claim's runner, when the runner's record
/// still holds the run that claimed it (a stale claim holds nothing). The same test a
/// start makes before it takes a claim over.
pub async fn license_runner(svc: &Services, license_id: &str) -> Result<Option<String>> {
    match svc.store.claims.license_run(license_id).await? {
        Some(claim) if holds_its_run(svc, &claim).await? => Ok(Some(claim.runner)),
        _ => Ok(None),
    }
}

/// Whether the runner of `claim` still holds the run that claimed the license: its record
/// names that start, and the start is at work or its task exists.
async fn holds_its_run(svc: &Services, claim: &RunClaim) -> Result<bool> {
    let Some(runner) = svc.store.instances.get_latest(&claim.runner).await? else {
        return Ok(false);
    };
    Ok(runner.attempt_id.as_deref() == Some(claim.attempt_id.as_str())
        && (runner.task_arn.is_some()
            || runner.status == InstanceStatus::Running
            || (runner.status == InstanceStatus::Starting && !Lease::is_free(&runner, svc.now()))))
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
        // The user's own on-demand run makes way for their session.
        super::end::end_run_because(svc, &inst, crate::domain::notify::StopCause::License).await?
    } else {
        inst
    };
    for _ in 0..LICENSE_ATTEMPTS {
        match begin(svc, ctx, inst.clone(), Some(run)).await? {
            Begun::Launched(started) => {
                return Ok(SessionStart {
                    running: started.status == "running",
                    url: started.url,
                })
            }
            // The session booked the license: the run that holds it now ends.
            Begun::LicenseHeld(claim) => {
                if let Some(holder) = svc.store.instances.get_latest(&claim.runner).await? {
                    tracing::info!(runner = %claim.runner, "stopping the server that holds the session's license");
                    super::end::end_run_because(svc, &holder, crate::domain::notify::StopCause::License).await?;
                }
            }
        }
    }
    Err(Error::failed("the session's license is held by another server that could not be stopped").into())
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
    // Again after the write that began the run: a backup launched in between (its own
    // check after RunTask stops it, or it ends before the server starts).
    resources::wait_for_world_tasks(svc, ctx, &uid).await?;
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
    let recorded = svc
        .store
        .instances
        .record(&uid, lease, Progress::Task(task_arn.clone()), svc.now())
        .await;
    let inst = match recorded {
        Ok(inst) => inst,
        Err(e) => {
            // The run was ended while this start was at work (a stop, or a session that
            // needs the license): its task must not outlive it.
            if let Err(stop) = removed(
                ResourceKind::Task,
                svc.aws
                    .ecs
                    .stop_task(&svc.config.cluster_name, &task_arn, "Start abandoned")
                    .await,
            ) {
                tracing::error!(error = %stop, task = %task_arn, "could not stop the task of an abandoned start");
            }
            return Err(e);
        }
    };

    if svc.config.start_wait == StartWait::Events {
        // The task's RUNNING event (or the next `status`) finishes the run.
        svc.store.instances.release(&uid, lease).await;
        tracing::info!(task = %task_arn, "started without waiting; the task's RUNNING event will finish the start");
        return Ok(Started::starting(svc, &inst));
    }
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
