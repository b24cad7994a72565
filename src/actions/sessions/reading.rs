//! Reading sessions: `list-sessions`, `get-scheduled-sessions` and
//! `get-sessions-for-license`.

use serde::Serialize;
use serde_json::Value;

use crate::context::Services;
use crate::domain::model::ScheduledSession;
use crate::domain::schedule::{documented_status, holds_license};
use crate::error::Result;

/// The answer of `list-sessions`.
#[derive(Debug, Serialize)]
struct SessionList<'a> {
    sessions: &'a [ScheduledSession],
    count: usize,
}

/// The answer of `get-sessions-for-license`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct LicenseSessions<'a> {
    license_id: &'a str,
    sessions: Vec<ScheduledSession>,
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

/// One session as `get-scheduled-sessions` shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ScheduledView<'a> {
    session_id: &'a str,
    start_time: i64,
    /// Whole minutes, rounded down.
    duration: i64,
    status: &'a str,
}

/// The answer of `get-scheduled-sessions`.
#[derive(Debug, Serialize)]
struct ScheduledSessions<'a> {
    success: bool,
    sessions: Vec<ScheduledView<'a>>,
}

/// `get-scheduled-sessions`: the caller's sessions (the same read as `list-sessions`) in
/// the shape of the original's API reference, earliest start first.
pub async fn get_scheduled_sessions(svc: &Services, user_id: &str) -> Result<Value> {
    let mut sessions = svc.store.sessions.of_user(user_id).await?;
    sessions.sort_by(|a, b| (a.start_time, &a.session_id).cmp(&(b.start_time, &b.session_id)));
    let sessions = sessions
        .iter()
        .map(|s| ScheduledView {
            session_id: &s.session_id,
            start_time: s.start_time,
            duration: s.end_time.saturating_sub(s.start_time).max(0) / 60,
            status: documented_status(&s.status),
        })
        .collect();
    crate::response::to_body(&ScheduledSessions {
        success: true,
        sessions,
    })
}

/// The sessions that hold `license_id` now or later.
pub(super) async fn holding(svc: &Services, license_id: &str) -> Result<Vec<ScheduledSession>> {
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
