//! Cancelling: the one path by which a session is cancelled ([`cancel`]), and the actions
//! and bulk moves built on it.

use serde::Serialize;
use serde_json::Value;

use crate::actions::{deliver, run};
use crate::context::Services;
use crate::domain::model::{ScheduledSession, SessionStatus};
use crate::domain::names;
use crate::domain::notify;
use crate::domain::schedule::holds_license;
use crate::error::{Error, Result};

use super::reading::holding;

/// The answer of `cancel-session`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Cancelled<'a> {
    message: &'static str,
    session_id: &'a str,
}

/// The answer of `cancel-sessions-for-license`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct LicenseCancelled<'a> {
    message: String,
    license_id: &'a str,
    cancelled_count: usize,
}

/// Cancels `session` with its reservation and booking, and stops a server still running
/// for it → whether this call cancelled it.
pub async fn cancel(svc: &Services, session: &ScheduledSession, reason: &str) -> Result<bool> {
    if !svc
        .store
        .sessions
        .settle(session, SessionStatus::Cancelled, Some(reason), svc.now())
        .await?
    {
        return Ok(false);
    }
    if let Some(inst) = svc.store.instances.get_latest(&session.user_id).await? {
        if inst.linked_session_id.as_deref() == Some(session.session_id.as_str()) {
            run::end_run_because(svc, &inst, notify::StopCause::Session).await?;
        }
    }
    run::released(svc, session).await;
    notify_cancelled(svc, session, reason).await;
    Ok(true)
}

/// Tells the session's user it was cancelled by someone else (its license's owner or an
/// admin), or that it could not start; a user's own cancel, an expiry or a release is
/// news to nobody.
async fn notify_cancelled(svc: &Services, s: &ScheduledSession, reason: &str) {
    let title = s.title.as_deref();
    let notice = match reason {
        "admin" => notify::session_cancelled(&s.user_id, &s.session_id, title, "an administrator"),
        "owner-left" | "license-withdrawn" => {
            notify::session_cancelled(&s.user_id, &s.session_id, title, "the license's owner")
        }
        "start-failed" => notify::session_failed(&s.user_id, &s.session_id, title, "its server did not start"),
        _ => return,
    };
    deliver::notify_one(svc, notice).await;
}

/// Cancels the user's sessions that still hold a license → how many; what failed is
/// added to `errors`.
pub async fn cancel_sessions_of_user(svc: &Services, user_id: &str, errors: &mut Vec<String>) -> Result<usize> {
    let mut cancelled = 0;
    for s in svc.store.sessions.of_user(user_id).await? {
        if !holds_license(&s.status) {
            continue;
        }
        match cancel(svc, &s, "user").await {
            Ok(true) => cancelled += 1,
            Ok(false) => {}
            Err(e) => errors.push(format!("session {}: {e}", s.session_id)),
        }
    }
    Ok(cancelled)
}

/// Cancels the other users' sessions on `owner`'s license (the owner leaves, or stops
/// sharing) → how many; what failed is added to `errors`.
pub async fn cancel_borrowers(svc: &Services, owner: &str, errors: &mut Vec<String>) -> Result<usize> {
    let mut cancelled = 0;
    for s in holding(svc, &names::license_id(owner)).await? {
        if s.user_id == owner {
            continue;
        }
        match cancel(svc, &s, "owner-left").await {
            Ok(true) => cancelled += 1,
            Ok(false) => {}
            Err(e) => errors.push(format!("session {}: {e}", s.session_id)),
        }
    }
    Ok(cancelled)
}

/// `cancel-session`: the session's owner (or an admin) cancels it; an active session's
/// server stops.
pub async fn cancel_session(svc: &Services, caller: &str, session_id: Option<&str>) -> Result<Value> {
    let session_id = session_id.filter(|s| !s.is_empty()).unwrap_or_default();
    let session = match session_id {
        "" => None,
        id => svc.store.sessions.get(id).await?,
    }
    .ok_or_else(|| Error::failed("Session not found"))?;
    if session.user_id != caller && !crate::auth::is_admin(&svc.config, caller) {
        return Err(Error::Forbidden("You can only cancel your own sessions".into()));
    }
    match session.status {
        SessionStatus::Cancelled => {}
        SessionStatus::Completed => return Err(Error::failed("Session has already ended")),
        _ => {
            cancel(svc, &session, "user").await?;
        }
    }
    crate::response::to_body(&Cancelled {
        message: "Session cancelled successfully",
        session_id,
    })
}

/// `cancel-sessions-for-license`: every session that still holds the license.
pub async fn cancel_sessions_for_license(svc: &Services, license_id: &str) -> Result<Value> {
    let mut cancelled = 0;
    for s in holding(svc, license_id).await? {
        if cancel(svc, &s, "license-withdrawn").await? {
            cancelled += 1;
        }
    }
    crate::response::to_body(&LicenseCancelled {
        message: format!("Cancelled {cancelled} sessions"),
        license_id,
        cancelled_count: cancelled,
    })
}
