//! What the end of a run does to sessions and licenses: the run's session completes, and
//! the license it let go of may stop being shared.

use crate::context::Services;
use crate::domain::model::{ScheduledSession, SessionStatus};
use crate::domain::names;
use crate::domain::schedule::live_bookings;
use crate::error::Result;
use crate::store::SharingState;

/// Completes the session `session_id` (its run is over) → whether this call completed
/// it. Only an `active` session completes.
pub async fn complete(svc: &Services, session_id: &str) -> Result<bool> {
    let Some(session) = svc.store.sessions.get(session_id).await? else {
        return Ok(false);
    };
    if session.status != SessionStatus::Active {
        return Ok(false);
    }
    let moved = svc
        .store
        .sessions
        .settle(&session, SessionStatus::Completed, None, svc.now())
        .await?;
    if moved {
        released(svc, &session).await;
    }
    Ok(moved)
}

/// After a session let go of its license: an owner who asked to stop sharing once the
/// booked sessions are over stops sharing when none is left.
pub async fn released(svc: &Services, session: &ScheduledSession) {
    let Some(license) = session.license_id.as_deref() else {
        return;
    };
    if let Err(e) = finish_scheduled_stop(svc, license).await {
        tracing::warn!(error = %e, license, "could not carry out the owner's scheduled sharing stop");
    }
}

/// Stops the sharing of `license` when its owner scheduled that and no booking is left →
/// whether it stopped.
pub async fn finish_scheduled_stop(svc: &Services, license: &str) -> Result<bool> {
    let Some(owner) = names::license_owner(license) else {
        return Ok(false);
    };
    let Some(inst) = svc.store.instances.get(owner).await? else {
        return Ok(false);
    };
    if inst.stop_sharing_after_sessions != Some(true) {
        return Ok(false);
    }
    let now = svc.now();
    let read = svc.store.sessions.ledger(license, now).await?;
    if !live_bookings(&read.ledger, now).is_empty() {
        return Ok(false);
    }
    svc.store
        .instances
        .set_sharing_state(owner, SharingState::Stopped, now)
        .await?;
    svc.store.pools.deactivate(license, now).await?;
    Ok(true)
}
