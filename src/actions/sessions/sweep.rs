//! `prepare-sessions`: the sweep that expires, follows up and starts sessions.

use futures_util::stream::{self, StreamExt};
use serde::Serialize;
use serde_json::Value;

use crate::actions::{deliver, run};
use crate::context::{Ctx, Services};
use crate::domain::model::{InstanceStatus, ScheduledSession, SessionStatus};
use crate::domain::notify;
use crate::error::Result;

use super::cancel::cancel;
use super::starting::{start_session, SessionOutcome, NOT_SCHEDULED};

/// How many sessions a sweep starts at once.
const SWEEP_CONCURRENCY: usize = 4;
/// A session claimed for starting whose server never began is given up after this long.
const STALE_CLAIM_SECONDS: i64 = 600;

/// The answer of `prepare-sessions`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Prepared {
    message: String,
    sessions_started: usize,
    conflicts_resolved: usize,
}

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
        // A `request-license` window starts when its user calls `start`, not here.
        .filter(|s| s.end_time > now && !s.on_demand())
        .collect();
    let results: Vec<(SessionOutcome, usize)> = stream::iter(due)
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
                    let notice = notify::session_failed(&s.user_id, &s.session_id, s.title.as_deref(), &outcome.message);
                    deliver::notify_one(svc, notice).await;
                }
            }
            (outcome, resolved)
        })
        .buffer_unordered(SWEEP_CONCURRENCY)
        .collect()
        .await;
    let started = results.iter().filter(|(o, _)| o.success).count();
    let resolved: usize = results.iter().map(|(_, n)| n).sum();
    remind(svc, now).await;
    // The notifications earlier invocations left pending (none while they are off).
    deliver::retry_pending(svc, ctx, Vec::new()).await;
    crate::telemetry::count("SessionsStarted", started as f64);
    crate::telemetry::count("ConflictsResolved", resolved as f64);
    crate::response::to_body(&Prepared {
        message: format!("Prepared {started} sessions, resolved {resolved} conflicts"),
        sessions_started: started,
        conflicts_resolved: resolved,
    })
}

/// Reminds the users whose booked sessions start within `SESSION_REMINDER_MINUTES` (and
/// after the sweep's lead, so that a session about to start gets its "ready" instead).
/// Once per session: the reminder's id is the session's.
async fn remind(svc: &Services, now: i64) {
    let Some(minutes) = svc.config.notifications.as_ref().map(|n| n.reminder_minutes) else {
        return;
    };
    if minutes == 0 {
        return;
    }
    let soon = match svc
        .store
        .sessions
        .in_status(&SessionStatus::Scheduled, now + minutes * 60)
        .await
    {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the sessions to remind");
            return;
        }
    };
    let notices = soon
        .iter()
        .filter(|s| !s.on_demand() && s.start_time > now + svc.config.session_lead_seconds)
        .map(|s| notify::session_reminder(&s.user_id, &s.session_id, s.title.as_deref(), s.start_time))
        .collect();
    deliver::notify(svc, notices).await;
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
    let inst = run::refresh(svc, inst.clone()).await?;
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
