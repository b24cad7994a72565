//! Starting and ending a session's server: `start-scheduled-session` and
//! `end-scheduled-session`, and the start that `prepare-sessions` makes for each due session.

use serde::Serialize;
use serde_json::Value;
use serde_with::skip_serializing_none;

use crate::actions::run::{self, SessionStartError};
use crate::context::{Ctx, Services};
use crate::domain::model::{InstanceStatus, ScheduledSession, SessionStatus};
use crate::domain::names;
use crate::domain::schedule::{session_deadline, SESSION_GRACE_SECONDS};
use crate::error::{Error, Result};
use crate::store::SessionRun;

use super::cancel::cancel;

/// The answer when a session has already left `scheduled` (e.g. another sweep claimed it).
pub(super) const NOT_SCHEDULED: &str = "Session is not in scheduled state";

/// The answer of `start-scheduled-session` and `end-scheduled-session`.
#[skip_serializing_none]
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionOutcome {
    pub(super) success: bool,
    pub(super) message: String,
    instance_url: Option<String>,
}

impl SessionOutcome {
    fn failed(message: impl Into<String>) -> Self {
        SessionOutcome {
            success: false,
            message: message.into(),
            instance_url: None,
        }
    }
}

/// Refuses a caller who is neither the session's owner, an admin, nor the system.
async fn may_act_on(svc: &Services, caller: &str, session_id: &str, verb: &str) -> Result<()> {
    if crate::auth::is_system(caller) || crate::auth::is_admin(&svc.config, caller) {
        return Ok(());
    }
    match svc.store.sessions.get(session_id).await? {
        Some(s) if s.user_id != caller => Err(Error::Forbidden(format!("You can only {verb} your own sessions"))),
        _ => Ok(()),
    }
}

/// `start-scheduled-session`.
pub async fn start_scheduled_session(
    svc: &Services,
    ctx: &Ctx,
    caller: &str,
    session_id: Option<&str>,
) -> Result<Value> {
    let session_id = session_id.unwrap_or_default();
    may_act_on(svc, caller, session_id, "start").await?;
    let (outcome, _) = start_session(svc, ctx, session_id).await;
    crate::response::to_body(&outcome)
}

/// Starts a scheduled session's server, once: the session is claimed with a conditional
/// move to `starting`, the servers that use its license are stopped, and the server
/// starts through the full start pipeline (wait, route, book usage) with the login of
/// the license the session booked → the outcome, and how many conflicting servers were
/// stopped.
pub(super) async fn start_session(svc: &Services, ctx: &Ctx, session_id: &str) -> (SessionOutcome, usize) {
    let now = svc.now();
    let session = match svc.store.sessions.get(session_id).await {
        Ok(Some(s)) => s,
        Ok(None) => return (SessionOutcome::failed("Session not found"), 0),
        Err(e) => return (SessionOutcome::failed(format!("Failed to start session: {e}")), 0),
    };
    if session.status != SessionStatus::Scheduled {
        return (SessionOutcome::failed(NOT_SCHEDULED), 0);
    }
    if now < session.start_time - svc.config.session_lead_seconds {
        return (SessionOutcome::failed("Session start time has not arrived"), 0);
    }
    // A backup or restore of the user's worlds ends before the session is claimed: one that
    // outlasts this invocation leaves the session scheduled, and the next sweep starts it.
    if let Err(e) = worlds_ready(svc, ctx, &session.user_id).await {
        return (SessionOutcome::failed(format!("Failed to start session: {e}")), 0);
    }
    let claimed = match svc.store.sessions.claim_start(session_id, now).await {
        Ok(Some(s)) => s,
        Ok(None) => return (SessionOutcome::failed(NOT_SCHEDULED), 0),
        Err(e) => return (SessionOutcome::failed(format!("Failed to start session: {e}")), 0),
    };
    let license = claimed
        .license_id
        .clone()
        .unwrap_or_else(|| names::license_id(&claimed.user_id));
    let resolved = match stop_other_servers(svc, &claimed, &license).await {
        Ok(n) => n,
        Err(e) => return (give_up(svc, &claimed, format!("Failed to start session: {e}")).await, 0),
    };
    let run = SessionRun {
        session_id: claimed.session_id.clone(),
        license_id: license,
        auto_shutdown_at: session_deadline(&claimed),
    };
    match run::start_for_session(svc, ctx, &claimed.user_id, &run).await {
        Ok(started) => {
            if started.running {
                if let Err(e) = svc
                    .store
                    .sessions
                    .activate(session_id, &claimed.user_id, svc.now())
                    .await
                {
                    tracing::warn!(error = %e, "could not mark the session active; the next sweep will");
                }
            }
            notify_ready(&claimed, &started.url);
            let outcome = SessionOutcome {
                success: true,
                message: "Scheduled session started successfully".into(),
                instance_url: Some(started.url),
            };
            (outcome, resolved)
        }
        Err(SessionStartError::NoInstance) => (
            give_up(
                svc,
                &claimed,
                "User must register an instance before starting a scheduled session".into(),
            )
            .await,
            resolved,
        ),
        Err(SessionStartError::Failed(e)) => (
            give_up(svc, &claimed, format!("Failed to start instance: {e}")).await,
            resolved,
        ),
    }
}

/// A session whose start failed is cancelled with its reservation, and its user is told.
/// With backups on: no backup or restore task of the user runs (waited for within the
/// deadline), and no restore is unfinished.
async fn worlds_ready(svc: &Services, ctx: &Ctx, user_id: &str) -> Result<()> {
    if svc.config.backups.is_none() {
        return Ok(());
    }
    crate::actions::resources::wait_for_world_tasks(svc, ctx, user_id).await?;
    if svc
        .store
        .instances
        .get_latest(user_id)
        .await?
        .is_some_and(|i| i.restore_state.is_some())
    {
        return Err(Error::failed(run::RESTORE_UNFINISHED));
    }
    Ok(())
}

async fn give_up(svc: &Services, session: &ScheduledSession, message: String) -> SessionOutcome {
    if let Err(e) = cancel(svc, session, "start-failed").await {
        tracing::warn!(error = %e, session = %session.session_id, "could not cancel the session that failed to start");
    }
    tracing::info!(
        notificationType = "session-failed",
        targetUserId = %session.user_id,
        sessionId = %session.session_id,
        "notification queued (log only: no delivery channel is configured)"
    );
    SessionOutcome::failed(message)
}

fn notify_ready(session: &ScheduledSession, url: &str) {
    tracing::info!(
        notificationType = "session-ready",
        targetUserId = %session.user_id,
        sessionId = %session.session_id,
        instanceUrl = url,
        "notification queued (log only: no delivery channel is configured)"
    );
}

/// Stops every server other than the session user's that uses `license`: the owner's
/// on-demand run, and a run of an earlier session still in its grace period → how many.
async fn stop_other_servers(svc: &Services, session: &ScheduledSession, license: &str) -> Result<usize> {
    let mut users: Vec<String> = Vec::new();
    if let Some(owner) = names::license_owner(license) {
        users.push(owner.to_string());
    }
    let now = svc.now();
    let recent = svc
        .store
        .sessions
        .on_license(
            license,
            now - svc.config.max_session_seconds - SESSION_GRACE_SECONDS,
            now,
        )
        .await?;
    users.extend(
        recent
            .into_iter()
            .filter(|s| s.session_id != session.session_id)
            .map(|s| s.user_id),
    );
    users.sort();
    users.dedup();
    let mut stopped = 0;
    for user in users.iter().filter(|u| **u != session.user_id) {
        let Some(inst) = svc.store.instances.get_latest(user).await? else {
            continue;
        };
        let runs = inst.task_arn.is_some() || matches!(inst.status, InstanceStatus::Running | InstanceStatus::Starting);
        if runs && inst.license_in_use().as_deref() == Some(license) {
            tracing::info!(user = %user, "stopping a server that uses the session's license");
            run::end_run_because(svc, &inst, crate::domain::notify::StopCause::License).await?;
            stopped += 1;
        }
    }
    Ok(stopped)
}

/// `end-scheduled-session`: stops the session's server; the session completes.
pub async fn end_scheduled_session(svc: &Services, caller: &str, session_id: Option<&str>) -> Result<Value> {
    let session_id = session_id.unwrap_or_default();
    may_act_on(svc, caller, session_id, "end").await?;
    let outcome = match end_session(svc, session_id).await {
        Ok(o) => o,
        Err(e) => SessionOutcome::failed(format!("Failed to end session: {e}")),
    };
    crate::response::to_body(&outcome)
}

async fn end_session(svc: &Services, session_id: &str) -> Result<SessionOutcome> {
    let Some(session) = svc.store.sessions.get(session_id).await? else {
        return Ok(SessionOutcome::failed("Session not found"));
    };
    if session.status != SessionStatus::Active {
        return Ok(SessionOutcome::failed("Session is not active"));
    }
    let owner = session.instance_id.clone().unwrap_or_else(|| session.user_id.clone());
    match svc.store.instances.get_latest(&owner).await? {
        Some(inst) if inst.linked_session_id.as_deref() == Some(session_id) => {
            run::end_run_because(svc, &inst, crate::domain::notify::StopCause::Session).await?;
        }
        _ => {
            run::complete(svc, session_id).await?;
        }
    }
    Ok(SessionOutcome {
        success: true,
        message: "Scheduled session ended successfully".into(),
        instance_url: None,
    })
}
