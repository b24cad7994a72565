//! Scheduled sessions and their one state machine.
//!
//! ```text
//! (booked) ──► scheduled ──claim──► starting ──server runs──► active ──run ends──► completed
//!                  │                    │                        │
//!                  └────────────────────┴──── cancel ────────────┴──► cancelled
//! ```
//!
//! Every path (cancel, stop, teardown, admin, automation) goes through [`cancel`] and
//! [`complete`], which release the license booking and settle the reservation in the same
//! write as the session, and stop a server still running for a cancelled session.

use futures_util::stream::{self, StreamExt};
use serde::Serialize;
use serde_json::Value;
use serde_with::skip_serializing_none;

use crate::actions::instance::{self, SessionStartError};
use crate::context::{Ctx, Services};
use crate::domain::model::{Instance, InstanceStatus, Reservation, ReservationStatus, ScheduledSession, SessionStatus};
use crate::domain::names;
use crate::domain::schedule::{
    booking_request, conflicts, free_licenses, holds_license, live_bookings, own_license, with_booking, BookingFields,
    BookingRequest, LicenseKind, SESSION_GRACE_SECONDS,
};
use crate::error::{Error, Result};
use crate::event::{AvailabilityFields, ScheduleFields};
use crate::store::{SessionRun, SharingState};

/// How many sessions a sweep starts at once.
const SWEEP_CONCURRENCY: usize = 4;
/// How many free licenses a booking tries before it gives up.
const LICENSES_TRIED: usize = 5;
/// How often a booking reads a license's ledger again after losing a race on it.
const BOOKING_ATTEMPTS: usize = 5;
/// A session claimed for starting whose server never began is given up after this long.
const STALE_CLAIM_SECONDS: i64 = 600;
/// The answer when a session has already left `scheduled` (e.g. another sweep claimed it).
const NOT_SCHEDULED: &str = "Session is not in scheduled state";

// ---------------------------------------------------------------------- answers

/// The answer of `list-sessions`.
#[derive(Debug, Serialize)]
struct SessionList<'a> {
    sessions: &'a [ScheduledSession],
    count: usize,
}

/// The answer of `schedule-session`.
#[skip_serializing_none]
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Scheduled {
    message: &'static str,
    success: bool,
    session_id: Option<String>,
}

/// The answer of `check-availability`.
#[skip_serializing_none]
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Availability {
    available: bool,
    conflicting_sessions: Option<Vec<String>>,
    available_licenses: Option<Vec<String>>,
}

/// The answer of `start-scheduled-session` and `end-scheduled-session`.
#[skip_serializing_none]
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    success: bool,
    message: String,
    instance_url: Option<String>,
}

impl Outcome {
    fn failed(message: impl Into<String>) -> Self {
        Outcome {
            success: false,
            message: message.into(),
            instance_url: None,
        }
    }
}

/// The answer of `cancel-session`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Cancelled<'a> {
    message: &'static str,
    session_id: &'a str,
}

/// The answer of `prepare-sessions`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Prepared {
    message: String,
    sessions_started: usize,
    conflicts_resolved: usize,
}

/// The answer of `get-sessions-for-license`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct LicenseSessions<'a> {
    license_id: &'a str,
    sessions: Vec<ScheduledSession>,
    count: usize,
}

/// The answer of `cancel-sessions-for-license`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct LicenseCancelled<'a> {
    message: String,
    license_id: &'a str,
    cancelled_count: usize,
}

// ---------------------------------------------------------------------- reading

/// `list-sessions`: every session of the caller, every page, every status.
pub async fn list_sessions(svc: &Services, user_id: &str) -> Result<Value> {
    let sessions = svc.store.sessions.of_user(user_id).await?;
    crate::response::to_body(&SessionList {
        sessions: &sessions,
        count: sessions.len(),
    })
}

/// The sessions that hold `license_id` now or later.
async fn holding(svc: &Services, license_id: &str) -> Result<Vec<ScheduledSession>> {
    let now = svc.now();
    Ok(svc
        .store
        .sessions
        .on_license(license_id, i64::MIN / 2, i64::MAX / 2)
        .await?
        .into_iter()
        .filter(|s| holds_license(&s.status) && s.end_time > now)
        .collect())
}

/// `get-sessions-for-license`: the sessions that hold the license now or later.
pub async fn sessions_for_license(svc: &Services, license_id: &str) -> Result<Value> {
    let sessions = holding(svc, license_id).await?;
    crate::response::to_body(&LicenseSessions {
        license_id,
        count: sessions.len(),
        sessions,
    })
}

// ---------------------------------------------------------------------- booking

fn request(
    svc: &Services,
    start: Option<i64>,
    end: Option<i64>,
    duration: Option<i64>,
    kind: Option<&str>,
) -> Result<BookingRequest> {
    let fields = BookingFields {
        start,
        end,
        duration,
        license_type: kind,
    };
    booking_request(&fields, svc.now(), svc.config.max_session_seconds).map_err(Error::BadRequest)
}

/// The pooled licenses free for the request, the requester's own first: one scan of
/// the pool and one query per session state, however many licenses there are.
async fn free_pooled(svc: &Services, req: &BookingRequest, user_id: &str) -> Result<Vec<String>> {
    let active: Vec<String> = svc
        .store
        .pools
        .active()
        .await?
        .into_iter()
        .map(|p| p.license_id)
        .collect();
    let mut busy = Vec::new();
    for status in [SessionStatus::Scheduled, SessionStatus::Starting, SessionStatus::Active] {
        for s in svc.store.sessions.in_status(&status, req.end).await? {
            if let Some(license) = s.license_id {
                busy.push((license, s.start_time, s.end_time));
            }
        }
    }
    Ok(free_licenses(&active, &busy, req.start, req.end, user_id))
}

/// `check-availability`.
pub async fn check_availability(svc: &Services, user_id: &str, f: &AvailabilityFields) -> Result<Value> {
    let req = request(svc, f.start_time, f.end_time, None, f.license_type.as_deref())?;
    let answer = match req.kind {
        LicenseKind::Byol => {
            let license = own_license(user_id, f.preferred_license_id.as_deref()).map_err(Error::BadRequest)?;
            let read = svc.store.sessions.ledger(&license, svc.now()).await?;
            let taken = conflicts(&read.ledger, req.start, req.end);
            Availability {
                available: taken.is_empty(),
                conflicting_sessions: (!taken.is_empty()).then_some(taken),
                available_licenses: None,
            }
        }
        LicenseKind::Pooled => {
            let free = free_pooled(svc, &req, user_id).await?;
            Availability {
                available: !free.is_empty(),
                conflicting_sessions: None,
                available_licenses: Some(free),
            }
        }
    };
    crate::response::to_body(&answer)
}

/// `schedule-session`: books the first free license for the window, atomically.
pub async fn schedule_session(svc: &Services, user_id: &str, f: &ScheduleFields) -> Result<Value> {
    let req = request(svc, f.start_time, f.end_time, f.duration, f.license_type.as_deref())?;
    let inst = svc
        .store
        .instances
        .get(user_id)
        .await?
        .ok_or_else(|| Error::failed("User must have an instance to schedule sessions"))?;
    let candidates = match req.kind {
        LicenseKind::Byol => vec![own_license(user_id, f.preferred_license_id.as_deref()).map_err(Error::BadRequest)?],
        LicenseKind::Pooled => free_pooled(svc, &req, user_id).await?,
    };
    for license in candidates.into_iter().take(LICENSES_TRIED) {
        if let Some(session_id) = book(svc, &inst, &req, &license, f).await? {
            return crate::response::to_body(&Scheduled {
                message: "Session scheduled successfully",
                success: true,
                session_id: Some(session_id),
            });
        }
    }
    crate::response::to_body(&Scheduled {
        message: "No licenses available for the requested time period",
        success: false,
        session_id: None,
    })
}

/// Books `license` for the request → the new session's id, or `None` when the license
/// is taken for the window. A lost race on the license's ledger reads it again.
async fn book(
    svc: &Services,
    inst: &Instance,
    req: &BookingRequest,
    license: &str,
    f: &ScheduleFields,
) -> Result<Option<String>> {
    for _ in 0..BOOKING_ATTEMPTS {
        let now = svc.now();
        let read = svc.store.sessions.ledger(license, now).await?;
        if !conflicts(&read.ledger, req.start, req.end).is_empty() {
            return Ok(None);
        }
        let session_id = uuid::Uuid::new_v4().to_string();
        let reservation_id = uuid::Uuid::new_v4().to_string();
        let session = ScheduledSession {
            session_id: session_id.clone(),
            user_id: inst.user_id.clone(),
            username: Some(inst.sanitized_username.clone()),
            license_type: Some(req.kind.as_str().to_string()),
            license_id: Some(license.to_string()),
            start_time: req.start,
            end_time: req.end,
            status: SessionStatus::Scheduled,
            title: f.session_title.clone(),
            description: f.session_description.clone(),
            reservation_id: Some(reservation_id.clone()),
            created_at: Some(now),
            updated_at: Some(now),
            ..Default::default()
        };
        let reservation = Reservation {
            reservation_id,
            license_id: license.to_string(),
            session_id: session_id.clone(),
            user_id: inst.user_id.clone(),
            start_time: req.start,
            end_time: req.end,
            status: ReservationStatus::Active,
            created_at: Some(now),
        };
        let next = with_booking(&read.ledger, &session, now);
        if svc.store.sessions.book(&read, &next, &session, &reservation).await? {
            return Ok(Some(session_id));
        }
    }
    Ok(None)
}

// ---------------------------------------------------------------------- the state machine

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
            instance::end_run(svc, &inst).await?;
        }
    }
    released(svc, session).await;
    Ok(true)
}

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
async fn released(svc: &Services, session: &ScheduledSession) {
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

// ---------------------------------------------------------------------- cancelling

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

// ---------------------------------------------------------------------- starting and ending

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
async fn start_session(svc: &Services, ctx: &Ctx, session_id: &str) -> (Outcome, usize) {
    let now = svc.now();
    let session = match svc.store.sessions.get(session_id).await {
        Ok(Some(s)) => s,
        Ok(None) => return (Outcome::failed("Session not found"), 0),
        Err(e) => return (Outcome::failed(format!("Failed to start session: {e}")), 0),
    };
    if session.status != SessionStatus::Scheduled {
        return (Outcome::failed(NOT_SCHEDULED), 0);
    }
    if now < session.start_time - svc.config.session_lead_seconds {
        return (Outcome::failed("Session start time has not arrived"), 0);
    }
    let claimed = match svc.store.sessions.claim_start(session_id, now).await {
        Ok(Some(s)) => s,
        Ok(None) => return (Outcome::failed(NOT_SCHEDULED), 0),
        Err(e) => return (Outcome::failed(format!("Failed to start session: {e}")), 0),
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
        auto_shutdown_at: claimed.end_time + SESSION_GRACE_SECONDS,
    };
    match instance::start_for_session(svc, ctx, &claimed.user_id, &run).await {
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
            let outcome = Outcome {
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
async fn give_up(svc: &Services, session: &ScheduledSession, message: String) -> Outcome {
    if let Err(e) = cancel(svc, session, "start-failed").await {
        tracing::warn!(error = %e, session = %session.session_id, "could not cancel the session that failed to start");
    }
    tracing::info!(
        notificationType = "session-failed",
        targetUserId = %session.user_id,
        sessionId = %session.session_id,
        "notification queued (log only: no delivery channel is configured)"
    );
    Outcome::failed(message)
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
            instance::end_run(svc, &inst).await?;
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
        Err(e) => Outcome::failed(format!("Failed to end session: {e}")),
    };
    crate::response::to_body(&outcome)
}

async fn end_session(svc: &Services, session_id: &str) -> Result<Outcome> {
    let Some(session) = svc.store.sessions.get(session_id).await? else {
        return Ok(Outcome::failed("Session not found"));
    };
    if session.status != SessionStatus::Active {
        return Ok(Outcome::failed("Session is not active"));
    }
    let owner = session.instance_id.clone().unwrap_or_else(|| session.user_id.clone());
    match svc.store.instances.get_latest(&owner).await? {
        Some(inst) if inst.linked_session_id.as_deref() == Some(session_id) => {
            instance::end_run(svc, &inst).await?;
        }
        _ => {
            complete(svc, session_id).await?;
        }
    }
    Ok(Outcome {
        success: true,
        message: "Scheduled session ended successfully".into(),
        instance_url: None,
    })
}

// ---------------------------------------------------------------------- the sweep

/// `prepare-sessions` (every minute): expires the sessions whose end passed while they
/// waited, finishes the starts a previous run handed over, and starts every due session
/// `SESSION_LEAD_SECONDS` before its start, a few at a time.
pub async fn prepare_sessions(svc: &Services, ctx: &Ctx) -> Result<Value> {
    let now = svc.now();
    for s in svc.store.sessions.in_status(&SessionStatus::Scheduled, now).await? {
        if s.end_time <= now {
            if let Err(e) = cancel(svc, &s, "expired").await {
                tracing::warn!(error = %e, session = %s.session_id, "could not expire a session");
            }
        }
    }
    let lead = svc.config.session_lead_seconds;
    for s in svc
        .store
        .sessions
        .in_status(&SessionStatus::Starting, now + lead)
        .await?
    {
        if let Err(e) = follow_up(svc, &s).await {
            tracing::warn!(error = %e, session = %s.session_id, "could not follow up a starting session");
        }
    }
    let due: Vec<ScheduledSession> = svc
        .store
        .sessions
        .in_status(&SessionStatus::Scheduled, now + lead)
        .await?
        .into_iter()
        .filter(|s| s.end_time > now)
        .collect();
    let results: Vec<(Outcome, usize)> = stream::iter(due)
        .map(|s| async move {
            let (outcome, resolved) = start_session(svc, ctx, &s.session_id).await;
            if !outcome.success {
                // Another sweep that claimed it first is the expected loser; anything else
                // is a session that did not start, and the operator needs to know why.
                let claimed_elsewhere = outcome.message == NOT_SCHEDULED;
                if claimed_elsewhere {
                    tracing::debug!(session = %s.session_id, "session claimed by another sweep");
                } else {
                    tracing::warn!(session = %s.session_id, reason = %outcome.message, "scheduled session did not start");
                }
            }
            (outcome, resolved)
        })
        .buffer_unordered(SWEEP_CONCURRENCY)
        .collect()
        .await;
    let started = results.iter().filter(|(o, _)| o.success).count();
    let resolved: usize = results.iter().map(|(_, n)| n).sum();
    crate::telemetry::count("SessionsStarted", started as f64);
    crate::telemetry::count("ConflictsResolved", resolved as f64);
    crate::response::to_body(&Prepared {
        message: format!("Prepared {started} sessions, resolved {resolved} conflicts"),
        sessions_started: started,
        conflicts_resolved: resolved,
    })
}

/// A session left `starting` by an earlier run: active once its server runs, cancelled
/// when its server is gone or never began.
async fn follow_up(svc: &Services, session: &ScheduledSession) -> Result<()> {
    let now = svc.now();
    let inst = svc.store.instances.get_latest(&session.user_id).await?;
    let linked = inst
        .as_ref()
        .filter(|i| i.linked_session_id.as_deref() == Some(session.session_id.as_str()));
    let Some(inst) = linked else {
        let stale = session.updated_at.is_none_or(|t| now - t > STALE_CLAIM_SECONDS);
        if stale {
            cancel(svc, session, "start-failed").await?;
        }
        return Ok(());
    };
    if !crate::store::Lease::is_free(inst, now) {
        return Ok(()); // its start is still at work
    }
    let inst = instance::refresh(svc, inst.clone()).await?;
    match inst.status {
        InstanceStatus::Running => {
            svc.store
                .sessions
                .activate(&session.session_id, &session.user_id, now)
                .await?;
        }
        InstanceStatus::Starting => {}
        _ => {
            cancel(svc, session, "start-failed").await?;
        }
    }
    Ok(())
}
