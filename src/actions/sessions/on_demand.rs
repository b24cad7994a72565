//! "Play now" for pooled users: `request-license` books a window that starts now on a
//! free pooled license (through the license's ledger, as `schedule-session` books), `start`
//! then runs the user's server on it, and `release-license` ends the window early.
//!
//! A window is a scheduled session marked `onDemand`: it holds the license in the ledger
//! like any booking, the sweep never starts it (its user's `start` does), and its server
//! stops at its end.

use serde::Serialize;
use serde_json::Value;
use serde_with::skip_serializing_none;

use crate::actions::run::{self, Started};
use crate::context::{Ctx, Services};
use crate::domain::model::{Instance, InstanceStatus, ScheduledSession, SessionStatus};
use crate::domain::schedule::{
    holds_license, play_now_until, run_limit, with_booking, BookingRequest, LicenseKind, MIN_PLAY_NOW_SECONDS,
};
use crate::error::{Error, Result};

use super::booking::{free_pooled, new_booking};
use super::cancel::cancel;
use super::starting::start_session;

/// How many free licenses a request tries before it gives up.
const LICENSES_TRIED: usize = 5;
/// How often a request reads a license's ledger again after losing a race on it.
const BOOKING_ATTEMPTS: usize = 5;

/// The answer of `request-license` and `release-license`.
#[skip_serializing_none]
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct LicenseAnswer {
    success: bool,
    license_id: Option<String>,
    message: &'static str,
    session_id: Option<String>,
    until: Option<i64>,
}

const ASSIGNED: &str = "License assigned successfully";

impl LicenseAnswer {
    /// The answer for the window `w` the user holds.
    fn assigned(w: ScheduledSession) -> Self {
        LicenseAnswer {
            success: true,
            license_id: w.license_id,
            message: ASSIGNED,
            session_id: Some(w.session_id),
            until: Some(w.end_time),
        }
    }
}

/// How long a window may last: the on-demand run limit of a pooled instance, and never
/// more than a session may last.
fn window_limit(svc: &Services) -> i64 {
    run_limit("pooled").min(svc.config.max_session_seconds)
}

/// The user's window that holds a license now, if any.
async fn held_window(svc: &Services, user_id: &str) -> Result<Option<ScheduledSession>> {
    let now = svc.now();
    Ok(svc
        .store
        .sessions
        .of_user(user_id)
        .await?
        .into_iter()
        .filter(|s| s.on_demand() && holds_license(&s.status) && s.start_time <= now && now < s.end_time)
        .min_by_key(|s| s.start_time))
}

/// The pooled user's instance, or the 400 that says why `request-license` is not for them.
async fn pooled_instance(svc: &Services, user_id: &str) -> Result<Instance> {
    let inst = svc
        .store
        .instances
        .get(user_id)
        .await?
        .ok_or_else(|| Error::BadRequest("User must have an instance to request a license".into()))?;
    if inst.license_type.as_deref() != Some("pooled") {
        return Err(Error::BadRequest(
            "Only pooled license users request a license; a BYOL instance starts on its own license with 'start'"
                .into(),
        ));
    }
    Ok(inst)
}

/// `request-license`: books a window from now on the first free pooled license, up to the
/// on-demand limit or the license's next booking → the license and the window's end. A
/// user who already holds a window gets it again.
pub async fn request_license(svc: &Services, user_id: &str) -> Result<Value> {
    let inst = pooled_instance(svc, user_id).await?;
    if let Some(w) = held_window(svc, user_id).await? {
        return crate::response::to_body(&LicenseAnswer::assigned(w));
    }
    let now = svc.now();
    // Licenses that no session holds for at least the shortest window, as booking finds
    // them; each one's ledger decides.
    let shortest = BookingRequest {
        start: now,
        end: now + MIN_PLAY_NOW_SECONDS,
        kind: LicenseKind::Pooled,
    };
    for license in free_pooled(svc, &shortest, user_id)
        .await?
        .into_iter()
        .take(LICENSES_TRIED)
    {
        if run::license_runner(svc, &license).await?.is_some() {
            continue; // its owner plays on it now
        }
        if let Some(w) = book_window(svc, &inst, &license).await? {
            tracing::info!(license = %license, until = w.end_time, "license assigned for play now");
            return crate::response::to_body(&LicenseAnswer::assigned(w));
        }
    }
    crate::response::to_body(&LicenseAnswer {
        success: false,
        license_id: None,
        message: "No license is free now",
        session_id: None,
        until: None,
    })
}

/// Books a window from now on `license` → the window, or `None` when the license is not
/// free now (a lost race on its ledger reads it again).
async fn book_window(svc: &Services, inst: &Instance, license: &str) -> Result<Option<ScheduledSession>> {
    for _ in 0..BOOKING_ATTEMPTS {
        let now = svc.now();
        let read = svc.store.sessions.ledger(license, now).await?;
        let Some(until) = play_now_until(&read.ledger, now, window_limit(svc)) else {
            return Ok(None);
        };
        let (mut session, reservation) = new_booking(inst, license, "pooled", now, until, now);
        session.title = Some("Play now".into());
        session.on_demand = Some(true);
        let next = with_booking(&read.ledger, &session, now);
        if svc.store.sessions.book(&read, &next, &session, &reservation).await? {
            return Ok(Some(session));
        }
    }
    Ok(None)
}

/// `release-license`: ends the user's window now: its server stops (hours booked) and
/// the session completes, or, before its server began, the window is cancelled; either
/// way the license is free again.
pub async fn release_license(svc: &Services, user_id: &str) -> Result<Value> {
    let Some(w) = held_window(svc, user_id).await? else {
        return Err(Error::BadRequest(
            "You hold no license to release: 'request-license' assigns one".into(),
        ));
    };
    let inst = svc.store.instances.get_latest(user_id).await?;
    match inst {
        Some(inst) if inst.linked_session_id.as_deref() == Some(w.session_id.as_str()) => {
            // Its server runs (or starts): the end of the run completes the window.
            run::end_run_because(svc, &inst, crate::domain::notify::StopCause::User).await?;
            if svc
                .store
                .sessions
                .get(&w.session_id)
                .await?
                .is_some_and(|s| holds_license(&s.status))
            {
                cancel(svc, &w, "released").await?;
            }
        }
        _ => {
            cancel(svc, &w, "released").await?;
        }
    }
    crate::response::to_body(&LicenseAnswer {
        success: true,
        license_id: w.license_id,
        message: "License released successfully",
        session_id: None,
        until: None,
    })
}

/// The `start` of a pooled user: runs the user's server on the window `request-license`
/// gave them → `None` when they hold none (the caller refuses the start).
pub async fn start_in_window(svc: &Services, ctx: &Ctx, user_id: &str) -> Result<Option<Started>> {
    let Some(w) = held_window(svc, user_id).await? else {
        return Ok(None);
    };
    if w.status == SessionStatus::Scheduled {
        let (outcome, _) = start_session(svc, ctx, &w.session_id).await;
        if !outcome.success {
            return Err(Error::failed(outcome.message));
        }
    }
    match svc.store.instances.get_latest(user_id).await? {
        Some(i) if i.status == InstanceStatus::Running => Ok(Some(Started::running(svc, &i))),
        Some(i) => Ok(Some(Started::starting(svc, &i))),
        None => Err(Error::failed("Instance not found or missing target group")),
    }
}
