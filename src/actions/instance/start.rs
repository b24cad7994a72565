//! `start`: an on-demand run, safe under double clicks and timeouts. The run itself
//! begins in [`crate::actions::run`]; this action decides whether the user may start now.

use serde_json::Value;

use crate::actions::run::{self, Started};
use crate::actions::sessions;
use crate::context::{Ctx, Services};
use crate::domain::model::{Instance, InstanceStatus, SessionStatus};
use crate::domain::names;
use crate::domain::schedule::SESSION_GRACE_SECONDS;
use crate::error::{Error, Result};
use crate::store::Lease;

use super::status::found;

/// On-demand starts are refused this long before a session on the same license.
const SESSION_PROTECTION: i64 = 1_800;

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
            // A pooled user runs on the window `request-license` gave them, or not at all.
            if let Some(started) = sessions::start_in_window(svc, ctx, &inst.user_id).await? {
                return Ok(started);
            }
            return Err(Error::failed(
                "Pooled license users must schedule sessions - use 'Schedule Session' instead of on-demand start",
            ));
        }
        _ => {}
    }

    run::launch_run(svc, ctx, inst, None).await
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
    let inst = match run::refresh(svc, inst).await {
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
        return Ok(Settled::Gone(run::end_run(svc, &inst).await?));
    }
    Ok(Settled::Gone(inst))
}

/// A start that returned early or died after RunTask: finish what it began.
async fn resume(svc: &Services, inst: Instance) -> Result<Started> {
    let inst = run::refresh(svc, inst).await?;
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
/// session is starting or runs on it. (The run's claim on the license is what makes two
/// runs on it impossible; this gate answers the common case before anything is written.) A session is active until its server stops, which may be up to
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
        if matches!(s.status, SessionStatus::Starting | SessionStatus::Active) && s.user_id != inst.user_id {
            return Err(Error::failed("A scheduled session is currently using this license"));
        }
    }
    Ok(())
}
