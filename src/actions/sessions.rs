//! Scheduled sessions: listing them, and the transitions other actions apply to them.

use serde::Serialize;
use serde_json::Value;

use crate::context::Services;
use crate::domain::model::{ReservationStatus, ScheduledSession, SessionStatus};
use crate::error::Result;

/// The answer of `list-sessions`.
#[derive(Debug, Serialize)]
struct SessionList<'a> {
    sessions: &'a [ScheduledSession],
    count: usize,
}

/// `list-sessions`: every session of the caller, every page, every status.
pub async fn list_sessions(svc: &Services, user_id: &str) -> Result<Value> {
    let sessions = svc.store.sessions.of_user(user_id).await?;
    crate::response::to_body(&SessionList {
        sessions: &sessions,
        count: sessions.len(),
    })
}

/// Cancels the user's scheduled and active sessions and their reservations → how many
/// were cancelled; what failed is added to `errors`.
pub async fn cancel_sessions_of_user(svc: &Services, user_id: &str, errors: &mut Vec<String>) -> Result<usize> {
    let now = svc.now();
    let mut cancelled = 0;
    for s in svc.store.sessions.of_user(user_id).await? {
        if !matches!(s.status, SessionStatus::Scheduled | SessionStatus::Active) {
            continue;
        }
        match svc.store.sessions.cancel(&s.session_id, now).await {
            Ok(_) => {
                cancelled += 1;
                if let Err(e) = release_reservations(svc, &s, ReservationStatus::Cancelled).await {
                    errors.push(format!("reservations of session {}: {e}", s.session_id));
                }
            }
            Err(e) => errors.push(format!("session {}: {e}", s.session_id)),
        }
    }
    Ok(cancelled)
}

/// Moves the active reservations of `session` to `to`.
pub async fn release_reservations(svc: &Services, session: &ScheduledSession, to: ReservationStatus) -> Result<()> {
    let Some(license) = session.license_id.as_deref() else {
        return Ok(());
    };
    let reservations = svc
        .store
        .reservations
        .of_license(license, session.start_time, session.end_time)
        .await?;
    for r in reservations {
        if r.session_id == session.session_id && r.status == ReservationStatus::Active {
            svc.store.reservations.set_status(&r.reservation_id, to.clone()).await?;
        }
    }
    Ok(())
}
