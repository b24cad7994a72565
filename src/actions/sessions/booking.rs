//! Booking: `check-availability` and `schedule-session`, through the license's ledger.

use serde::Serialize;
use serde_json::Value;
use serde_with::skip_serializing_none;

use crate::context::Services;
use crate::domain::model::{Instance, Reservation, ReservationStatus, ScheduledSession, SessionStatus};
use crate::domain::schedule::{
    booking_request, conflicts, free_licenses, own_license, with_booking, BookingFields, BookingRequest, LicenseKind,
};
use crate::error::{Error, Result};
use crate::event::{AvailabilityFields, ScheduleFields};

/// How many free licenses a booking tries before it gives up.
const LICENSES_TRIED: usize = 5;
/// How often a booking reads a license's ledger again after losing a race on it.
const BOOKING_ATTEMPTS: usize = 5;

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
pub(super) async fn free_pooled(svc: &Services, req: &BookingRequest, user_id: &str) -> Result<Vec<String>> {
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

/// A new `scheduled` session of `inst`'s user on `license` for `[start, end)`, and its
/// reservation: what a booking writes with the license's ledger.
pub(super) fn new_booking(
    inst: &Instance,
    license: &str,
    kind: &str,
    start: i64,
    end: i64,
    now: i64,
) -> (ScheduledSession, Reservation) {
    let session_id = uuid::Uuid::new_v4().to_string();
    let reservation_id = uuid::Uuid::new_v4().to_string();
    let session = ScheduledSession {
        session_id: session_id.clone(),
        user_id: inst.user_id.clone(),
        username: Some(inst.sanitized_username.clone()),
        license_type: Some(kind.to_string()),
        license_id: Some(license.to_string()),
        start_time: start,
        end_time: end,
        status: SessionStatus::Scheduled,
        reservation_id: Some(reservation_id.clone()),
        created_at: Some(now),
        updated_at: Some(now),
        ..Default::default()
    };
    let reservation = Reservation {
        reservation_id,
        license_id: license.to_string(),
        session_id,
        user_id: inst.user_id.clone(),
        start_time: start,
        end_time: end,
        status: ReservationStatus::Active,
        created_at: Some(now),
    };
    (session, reservation)
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
        let (mut session, reservation) = new_booking(inst, license, req.kind.as_str(), req.start, req.end, now);
        session.title = f.session_title.clone();
        session.description = f.session_description.clone();
        let session_id = session.session_id.clone();
        let next = with_booking(&read.ledger, &session, now);
        if svc.store.sessions.book(&read, &next, &session, &reservation).await? {
            return Ok(Some(session_id));
        }
    }
    Ok(None)
}
