//! Scheduling arithmetic: booking requests, half-open windows, conflicts, the order in
//! which pooled licenses are offered, and the session state machine's transitions.

use super::model::{Booking, Instance, InstanceStatus, Ledger, ScheduledSession, SessionStatus};
use super::names;

/// How long a server may run after its session's end before auto-shutdown stops it.
pub const SESSION_GRACE_SECONDS: i64 = 3_600;

/// How long an on-demand run lasts before auto-shutdown stops it: 6 h for a BYOL owner.
pub const BYOL_RUN_LIMIT: i64 = 21_600;
/// The same for any other license type: 4 h.
pub const OTHER_RUN_LIMIT: i64 = 14_400;

/// The run limit of an instance of `license_type`.
pub fn run_limit(license_type: &str) -> i64 {
    if license_type == "byol" {
        BYOL_RUN_LIMIT
    } else {
        OTHER_RUN_LIMIT
    }
}

/// When auto-shutdown stops `inst`: its recorded deadline, or, for a running or
/// starting instance without one, its run limit from when it started (or last changed),
/// so that no server can run forever. `None` for an instance that does not run.
pub fn shutdown_deadline(inst: &Instance) -> Option<i64> {
    if !matches!(inst.status, InstanceStatus::Running | InstanceStatus::Starting) {
        return None;
    }
    inst.auto_shutdown_at.filter(|t| *t != 0).or_else(|| {
        let since = inst.started_at.or(inst.updated_at).or(inst.created_at).unwrap_or(0);
        Some(since + run_limit(inst.license_type_or_default()))
    })
}

/// Why auto-shutdown stops `inst` at `now`.
pub fn shutdown_reason(inst: &Instance, now: i64) -> String {
    let byol = inst.license_type.as_deref() == Some("byol");
    if byol && inst.linked_session_id.is_none() {
        let since = inst.started_at.or(inst.updated_at).unwrap_or(0);
        format!(
            "Auto-shutdown: On-demand instance ran for {} hours (6h limit)",
            (now - since).div_euclid(3600)
        )
    } else if inst.license_type.as_deref() == Some("pooled") || inst.linked_session_id.is_some() {
        "Auto-shutdown: Scheduled session ended + 1 hour grace period".to_string()
    } else {
        "Auto-shutdown: Time limit exceeded".to_string()
    }
}

/// Whether `[a_start, a_end)` and `[b_start, b_end)` share a second: back-to-back
/// windows (one ends when the next starts) do not.
pub fn overlaps(a_start: i64, a_end: i64, b_start: i64, b_end: i64) -> bool {
    a_start < b_end && b_start < a_end
}

/// The kind of license a session is booked on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LicenseKind {
    /// The booking user's own license, `byol-<userId>`.
    Byol,
    /// Any license of the shared pool.
    Pooled,
}

impl LicenseKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LicenseKind::Byol => "byol",
            LicenseKind::Pooled => "pooled",
        }
    }
}

/// A validated request for a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookingRequest {
    pub start: i64,
    pub end: i64,
    pub kind: LicenseKind,
}

/// The raw fields of a booking request.
#[derive(Debug, Clone, Default)]
pub struct BookingFields<'a> {
    pub start: Option<i64>,
    pub end: Option<i64>,
    /// Minutes (as the original's API reference documents it), used when `end` is absent.
    pub duration: Option<i64>,
    pub license_type: Option<&'a str>,
}

/// Why a booking request is refused before anything is read.
pub const MISSING_FIELDS: &str = "Missing required fields: startTime, endTime, licenseType";

/// Checks a booking request at `now` → the request, or the message that says what is
/// wrong. Windows are half-open and must lie in the future and last at most
/// `max_seconds`.
pub fn booking_request(f: &BookingFields<'_>, now: i64, max_seconds: i64) -> Result<BookingRequest, String> {
    let start = f.start.filter(|s| *s != 0);
    let end = f
        .end
        .filter(|e| *e != 0)
        .or_else(|| start?.checked_add(f.duration.filter(|d| *d != 0)?.checked_mul(60)?));
    let (Some(start), Some(end), Some(kind)) = (start, end, f.license_type.filter(|t| !t.is_empty())) else {
        return Err(MISSING_FIELDS.to_string());
    };
    let kind = match kind {
        "byol" => LicenseKind::Byol,
        "pooled" => LicenseKind::Pooled,
        _ => return Err("Invalid license type. Must be 'byol' or 'pooled'".to_string()),
    };
    if end <= start {
        return Err("endTime must be after startTime".to_string());
    }
    if start <= now {
        return Err("startTime must be in the future".to_string());
    }
    if end - start > max_seconds {
        return Err(format!(
            "A session may last at most {max_seconds} seconds ({} hours)",
            max_seconds / 3600
        ));
    }
    Ok(BookingRequest { start, end, kind })
}

/// The license a BYOL booking of `user_id` uses: always the user's own. Another
/// license is refused (a BYOL booking could otherwise block someone else's license).
pub fn own_license(user_id: &str, preferred: Option<&str>) -> Result<String, String> {
    let own = names::license_id(user_id);
    match preferred.filter(|p| !p.is_empty()) {
        None => Ok(own),
        Some(p) if p == own => Ok(own),
        Some(_) => Err(format!("A BYOL session can only use your own license ({own})")),
    }
}

/// Whether a session of this status holds its license.
pub fn holds_license(status: &SessionStatus) -> bool {
    matches!(
        status,
        SessionStatus::Scheduled | SessionStatus::Starting | SessionStatus::Active
    )
}

/// The bookings of `ledger` that still matter at `now` (those that have not ended).
pub fn live_bookings(ledger: &Ledger, now: i64) -> Vec<Booking> {
    ledger.bookings.iter().filter(|b| b.end_time > now).cloned().collect()
}

/// The session ids of `ledger` whose window overlaps `[start, end)`.
pub fn conflicts(ledger: &Ledger, start: i64, end: i64) -> Vec<String> {
    ledger
        .bookings
        .iter()
        .filter(|b| overlaps(b.start_time, b.end_time, start, end))
        .map(|b| b.session_id.clone())
        .collect()
}

/// The ledger after booking `session` at `now`: ended bookings dropped, the new one
/// added, the version incremented.
pub fn with_booking(ledger: &Ledger, session: &ScheduledSession, now: i64) -> Ledger {
    let mut bookings = live_bookings(ledger, now);
    bookings.push(Booking {
        session_id: session.session_id.clone(),
        start_time: session.start_time,
        end_time: session.end_time,
    });
    Ledger {
        version: ledger.version + 1,
        bookings,
    }
}

/// The ledger after `session_id` let go of the license at `now`.
pub fn without_booking(ledger: &Ledger, session_id: &str, now: i64) -> Ledger {
    Ledger {
        version: ledger.version + 1,
        bookings: live_bookings(ledger, now)
            .into_iter()
            .filter(|b| b.session_id != session_id)
            .collect(),
    }
}

/// The pooled licenses free for `[start, end)`, in the order they are offered: the
/// requester's own shared license first, then the others as listed. `busy` holds
/// `(licenseId, start, end)` of every session that holds a license.
pub fn free_licenses(
    active: &[String],
    busy: &[(String, i64, i64)],
    start: i64,
    end: i64,
    requester: &str,
) -> Vec<String> {
    let own = names::license_id(requester);
    let free = |l: &String| {
        !busy
            .iter()
            .any(|(license, s, e)| license == l && overlaps(*s, *e, start, end))
    };
    let mut out: Vec<String> = active.iter().filter(|l| **l == own && free(l)).cloned().collect();
    out.extend(active.iter().filter(|l| **l != own && free(l)).cloned());
    out.dedup();
    out
}

/// Whether the state machine lets a session go from `from` to `to`.
pub fn may_move(from: &SessionStatus, to: &SessionStatus) -> bool {
    use SessionStatus::*;
    matches!(
        (from, to),
        (Scheduled, Starting) | (Starting, Active) | (Scheduled | Starting | Active, Cancelled) | (Active, Completed)
    )
}

/// When auto-shutdown stops the server of `session`: the grace hour after its end, or, for
/// a `request-license` window, its end (the window may run up to the license's next
/// booking).
pub fn session_deadline(session: &ScheduledSession) -> i64 {
    if session.on_demand() {
        session.end_time
    } else {
        session.end_time + SESSION_GRACE_SECONDS
    }
}

/// A "play now" window is not offered when it would be shorter than this.
pub const MIN_PLAY_NOW_SECONDS: i64 = 900;

/// The end of a "play now" window on the license whose ledger is `ledger`, starting at
/// `now` and lasting up to `limit` seconds or until the license's next booking, whichever
/// comes first → `None` when a booking covers now, or the window would be shorter than
/// [`MIN_PLAY_NOW_SECONDS`].
pub fn play_now_until(ledger: &Ledger, now: i64, limit: i64) -> Option<i64> {
    if !conflicts(ledger, now, now + 1).is_empty() {
        return None;
    }
    let next = ledger
        .bookings
        .iter()
        .filter(|b| b.start_time > now)
        .map(|b| b.start_time)
        .min();
    let until = next.map_or(now + limit, |n| n.min(now + limit));
    (until - now >= MIN_PLAY_NOW_SECONDS).then_some(until)
}

/// The status the original's API reference documents for a session in `status`:
/// `starting` is `preparing`, `active` is `running`; the other three keep their names (a
/// status written by hand outside the five is passed through as it is).
pub fn documented_status(status: &SessionStatus) -> &str {
    match status {
        SessionStatus::Starting => "preparing",
        SessionStatus::Active => "running",
        other => other.as_str(),
    }
}

/// What a pooled license is doing at `now`, as `license-pool-status` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolUse {
    /// No live run holds it and no booking covers now.
    Available,
    /// A live run holds it (`runner`); `until` is the end of the booking that covers now,
    /// if one does (an owner's on-demand run has none).
    InUse { runner: String, until: Option<i64> },
    /// No run holds it, but a booking covers now (a session about to start, or a
    /// `request-license` window before its server starts).
    Reserved { session_id: String, until: i64 },
}

/// How a license is used at `now`: from its ledger and the runner of its live run claim.
pub fn pool_use(ledger: &Ledger, live_runner: Option<&str>, now: i64) -> PoolUse {
    let covering = ledger
        .bookings
        .iter()
        .filter(|b| b.start_time <= now && now < b.end_time)
        .min_by_key(|b| b.start_time);
    match (live_runner, covering) {
        (Some(runner), b) => PoolUse::InUse {
            runner: runner.to_string(),
            until: b.map(|b| b.end_time),
        },
        (None, Some(b)) => PoolUse::Reserved {
            session_id: b.session_id.clone(),
            until: b.end_time,
        },
        (None, None) => PoolUse::Available,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(start: i64, end: Option<i64>, duration: Option<i64>, kind: &str) -> BookingFields<'_> {
        BookingFields {
            start: Some(start),
            end,
            duration,
            license_type: Some(kind),
        }
    }

    #[test]
    fn windows_are_half_open() {
        assert!(overlaps(0, 10, 5, 15));
        assert!(overlaps(0, 10, 2, 3));
        assert!(!overlaps(0, 10, 10, 20), "back to back");
        assert!(!overlaps(10, 20, 0, 10));
    }

    #[test]
    fn a_booking_request_is_checked_and_says_what_is_wrong() {
        let now = 1_000;
        let ok = booking_request(&fields(2_000, Some(5_600), None, "byol"), now, 86_400).unwrap();
        assert_eq!((ok.start, ok.end, ok.kind), (2_000, 5_600, LicenseKind::Byol));
        let by_duration = booking_request(&fields(2_000, None, Some(60), "pooled"), now, 86_400).unwrap();
        assert_eq!(
            (by_duration.end, by_duration.kind),
            (5_600, LicenseKind::Pooled),
            "60 minutes"
        );
        assert_eq!(
            booking_request(&fields(2_000, None, Some(-30), "byol"), now, 86_400).unwrap_err(),
            "endTime must be after startTime",
            "a negative duration ends before it starts"
        );
        assert_eq!(
            booking_request(&fields(2_000, None, Some(1_441), "byol"), now, 86_400).unwrap_err(),
            "A session may last at most 86400 seconds (24 hours)",
            "a day and a minute is too long"
        );
        assert_eq!(
            booking_request(&fields(2_000, None, Some(i64::MAX), "byol"), now, 86_400).unwrap_err(),
            MISSING_FIELDS,
            "a duration that overflows gives no end"
        );
        let err = |f: BookingFields<'_>| booking_request(&f, now, 86_400).unwrap_err();
        assert_eq!(err(BookingFields::default()), MISSING_FIELDS);
        assert_eq!(err(fields(2_000, None, None, "byol")), MISSING_FIELDS);
        assert_eq!(
            err(fields(2_000, Some(3_000), None, "gold")),
            "Invalid license type. Must be 'byol' or 'pooled'"
        );
        assert_eq!(
            err(fields(2_000, Some(2_000), None, "byol")),
            "endTime must be after startTime"
        );
        assert_eq!(
            err(fields(500, Some(2_000), None, "byol")),
            "startTime must be in the future"
        );
        assert_eq!(
            err(fields(2_000, Some(2_000 + 86_401), None, "byol")),
            "A session may last at most 86400 seconds (24 hours)"
        );
    }

    #[test]
    fn a_byol_booking_uses_the_users_own_license_only() {
        assert_eq!(own_license("7", None).unwrap(), "byol-7");
        assert_eq!(own_license("7", Some("byol-7")).unwrap(), "byol-7");
        assert_eq!(
            own_license("7", Some("byol-8")).unwrap_err(),
            "A BYOL session can only use your own license (byol-7)"
        );
    }

    #[test]
    fn the_ledger_keeps_live_bookings_and_counts_versions() {
        let s = |id: &str, start, end| ScheduledSession {
            session_id: id.into(),
            start_time: start,
            end_time: end,
            ..Default::default()
        };
        let l = with_booking(&Ledger::default(), &s("a", 100, 200), 50);
        let l = with_booking(&l, &s("b", 200, 300), 60);
        assert_eq!(l.version, 2);
        assert_eq!(conflicts(&l, 150, 250), vec!["a".to_string(), "b".to_string()]);
        assert!(conflicts(&l, 300, 400).is_empty(), "back to back is free");
        // At 250, `a` has ended and is dropped with the next change.
        let l = without_booking(&l, "b", 250);
        assert_eq!((l.version, l.bookings.len()), (3, 0));
    }

    #[test]
    fn pooled_licenses_are_offered_own_first_and_only_when_free() {
        let active: Vec<String> = ["byol-1", "byol-2", "byol-3"].iter().map(|s| s.to_string()).collect();
        let busy = vec![("byol-1".to_string(), 0, 100), ("byol-2".to_string(), 100, 200)];
        assert_eq!(free_licenses(&active, &busy, 100, 150, "3"), vec!["byol-3", "byol-1"]);
        assert_eq!(free_licenses(&active, &busy, 50, 150, "9"), vec!["byol-3"]);
    }

    #[test]
    fn every_running_instance_has_a_shutdown_deadline() {
        let inst = |status: InstanceStatus, at: Option<i64>, kind: &str| Instance {
            status,
            auto_shutdown_at: at,
            started_at: Some(1_000),
            license_type: Some(kind.into()),
            ..Default::default()
        };
        assert_eq!(
            shutdown_deadline(&inst(InstanceStatus::Running, Some(5_000), "byol")),
            Some(5_000)
        );
        assert_eq!(
            shutdown_deadline(&inst(InstanceStatus::Running, None, "byol")),
            Some(22_600)
        );
        assert_eq!(
            shutdown_deadline(&inst(InstanceStatus::Starting, None, "pooled")),
            Some(15_400)
        );
        assert_eq!(
            shutdown_deadline(&inst(InstanceStatus::Stopped, Some(5_000), "byol")),
            None
        );
        assert_eq!(
            shutdown_reason(&inst(InstanceStatus::Running, None, "byol"), 1_000 + 7 * 3600 + 5),
            "Auto-shutdown: On-demand instance ran for 7 hours (6h limit)"
        );
        let mut linked = inst(InstanceStatus::Running, None, "byol");
        linked.linked_session_id = Some("s".into());
        assert_eq!(
            shutdown_reason(&linked, 0),
            "Auto-shutdown: Scheduled session ended + 1 hour grace period"
        );
        assert_eq!(
            shutdown_reason(&inst(InstanceStatus::Running, None, "other"), 0),
            "Auto-shutdown: Time limit exceeded"
        );
    }

    #[test]
    fn the_state_machine_allows_only_forward_moves() {
        use SessionStatus::*;
        assert!(may_move(&Scheduled, &Starting));
        assert!(may_move(&Active, &Completed));
        assert!(may_move(&Active, &Cancelled));
        assert!(!may_move(&Completed, &Cancelled));
        assert!(!may_move(&Cancelled, &Active));
        assert!(!may_move(&Scheduled, &Completed));
    }

    #[test]
    fn documented_status_names_starting_preparing_and_active_running() {
        use SessionStatus::*;
        let names: Vec<&str> = [Scheduled, Starting, Active, Completed, Cancelled]
            .iter()
            .map(documented_status)
            .collect();
        assert_eq!(names, ["scheduled", "preparing", "running", "completed", "cancelled"]);
        assert_eq!(documented_status(&SessionStatus::from("paused".to_string())), "paused");
    }

    fn ledger_of(bookings: &[(&str, i64, i64)]) -> Ledger {
        Ledger {
            version: 3,
            bookings: bookings
                .iter()
                .map(|(id, s, e)| Booking {
                    session_id: id.to_string(),
                    start_time: *s,
                    end_time: *e,
                })
                .collect(),
        }
    }

    #[test]
    fn pool_use_is_in_use_when_a_live_run_holds_the_license() {
        let ledger = ledger_of(&[("s1", 100, 200)]);
        assert_eq!(
            pool_use(&ledger, Some("u1"), 150),
            PoolUse::InUse {
                runner: "u1".into(),
                until: Some(200)
            }
        );
        assert_eq!(
            pool_use(&ledger, Some("owner"), 250),
            PoolUse::InUse {
                runner: "owner".into(),
                until: None
            }
        );
    }

    #[test]
    fn pool_use_is_reserved_while_a_booking_covers_now_without_a_run() {
        let ledger = ledger_of(&[("later", 300, 400), ("now", 100, 200)]);
        assert_eq!(
            pool_use(&ledger, None, 100),
            PoolUse::Reserved {
                session_id: "now".into(),
                until: 200
            }
        );
        assert_eq!(
            pool_use(&ledger, None, 200),
            PoolUse::Available,
            "windows are half-open"
        );
        assert_eq!(
            pool_use(&ledger, None, 50),
            PoolUse::Available,
            "a later booking leaves it free now"
        );
    }

    #[test]
    fn a_play_now_window_runs_to_the_limit_or_the_next_booking() {
        let free = ledger_of(&[("past", 0, 50)]);
        assert_eq!(play_now_until(&free, 100, 14_400), Some(14_500));
        let booked_later = ledger_of(&[("next", 3_700, 7_300), ("after", 9_000, 9_600)]);
        assert_eq!(play_now_until(&booked_later, 100, 14_400), Some(3_700));
        let booked_soon = ledger_of(&[("soon", 100 + MIN_PLAY_NOW_SECONDS - 1, 9_000)]);
        assert_eq!(play_now_until(&booked_soon, 100, 14_400), None, "too short to play");
        let taken = ledger_of(&[("now", 50, 150)]);
        assert_eq!(play_now_until(&taken, 100, 14_400), None);
        let just_ended = ledger_of(&[("ended", 50, 100)]);
        assert_eq!(
            play_now_until(&just_ended, 100, 600 + MIN_PLAY_NOW_SECONDS),
            Some(700 + MIN_PLAY_NOW_SECONDS)
        );
    }

    #[test]
    fn a_play_now_window_stops_at_its_end_a_session_an_hour_later() {
        let mut s = ScheduledSession {
            end_time: 1_000,
            ..Default::default()
        };
        assert_eq!(session_deadline(&s), 1_000 + SESSION_GRACE_SECONDS);
        s.on_demand = Some(true);
        assert_eq!(session_deadline(&s), 1_000);
    }
}
