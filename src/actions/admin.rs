//! The admin actions: the fleet overview, and the emergency actions, which go through
//! the same teardown and session state machine as everything else, a few at a time,
//! and report what failed item by item.

use futures_util::stream::{self, StreamExt};
use serde::Serialize;
use serde_json::Value;
use serde_with::skip_serializing_none;

use crate::actions::automation::ShutdownStats;
use crate::actions::{run, sessions};
use crate::context::Services;
use crate::domain::model::{Instance, InstanceStatus, LicensePool, ReservationStatus, ScheduledSession, SessionStatus};
use crate::domain::money::{self, exact, number, Decimal};
use crate::domain::usage::month_key;
use crate::error::{Error, Result};

/// How many items a bulk action handles at once.
const BULK_CONCURRENCY: usize = 8;
/// The overview shows sessions within a day either side of now.
const OVERVIEW_WINDOW: i64 = 86_400;
/// "Recent" in the overview: the last two hours.
const RECENT: i64 = 7_200;
/// The bulk actions reach sessions that started up to 30 days ago or start within a year.
const BULK_PAST: i64 = 2_592_000;
const BULK_AHEAD: i64 = 31_536_000;
const NO_REASON: &str = "No reason provided";

// ---------------------------------------------------------------------- overview

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Summary {
    total_instances: usize,
    running_instances: usize,
    byol_instances: usize,
    pooled_instances: usize,
    shared_licenses: usize,
    active_sessions: usize,
    upcoming_sessions: usize,
    instances_with_timers: usize,
    total_hours_this_month: f64,
    estimated_monthly_cost: f64,
}

#[skip_serializing_none]
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RunningView<'a> {
    user_id: &'a str,
    username: &'a str,
    status: &'a str,
    license_type: Option<&'a str>,
    started_at: Option<i64>,
    auto_shutdown_at: Option<i64>,
    linked_session_id: Option<&'a str>,
    foundry_version: Option<&'a str>,
    /// New: the players the last probe counted (idle detection).
    players: Option<i64>,
    /// New: since when the server has had no player (Unix seconds).
    idle_since: Option<i64>,
}

#[skip_serializing_none]
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct StoppedView<'a> {
    user_id: &'a str,
    username: &'a str,
    license_type: Option<&'a str>,
    updated_at: Option<i64>,
}

impl<'a> RunningView<'a> {
    fn of(i: &'a Instance) -> Self {
        RunningView {
            user_id: &i.user_id,
            username: &i.sanitized_username,
            status: i.status.as_str(),
            license_type: i.license_type.as_deref(),
            started_at: i.started_at,
            auto_shutdown_at: i.auto_shutdown_at,
            linked_session_id: i.linked_session_id.as_deref(),
            foundry_version: i.foundry_version.as_deref(),
            players: crate::domain::idle::players_now(i),
            idle_since: crate::domain::idle::idle_since(i),
        }
    }
}

impl<'a> StoppedView<'a> {
    fn of(i: &'a Instance) -> Self {
        StoppedView {
            user_id: &i.user_id,
            username: &i.sanitized_username,
            license_type: i.license_type.as_deref(),
            updated_at: i.updated_at,
        }
    }
}

#[derive(Debug, Serialize)]
struct Instances<'a> {
    running: Vec<RunningView<'a>>,
    stopped: Vec<StoppedView<'a>>,
}

#[skip_serializing_none]
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SessionView<'a> {
    session_id: &'a str,
    user_id: &'a str,
    username: Option<&'a str>,
    title: Option<&'a str>,
    start_time: i64,
    end_time: i64,
    license_type: Option<&'a str>,
    license_id: Option<&'a str>,
}

impl<'a> SessionView<'a> {
    fn of(s: &'a ScheduledSession) -> Self {
        SessionView {
            session_id: &s.session_id,
            user_id: &s.user_id,
            username: s.username.as_deref(),
            title: s.title.as_deref(),
            start_time: s.start_time,
            end_time: s.end_time,
            license_type: s.license_type.as_deref(),
            license_id: s.license_id.as_deref(),
        }
    }
}

#[derive(Debug, Serialize)]
struct Sessions<'a> {
    active: Vec<SessionView<'a>>,
    upcoming: Vec<SessionView<'a>>,
}

#[skip_serializing_none]
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PoolView<'a> {
    license_id: &'a str,
    owner_id: Option<&'a str>,
    owner_username: Option<&'a str>,
    max_concurrent_users: Option<i64>,
    is_active: Option<bool>,
}

impl<'a> PoolView<'a> {
    fn of(p: &'a LicensePool) -> Self {
        PoolView {
            license_id: &p.license_id,
            owner_id: p.owner_id.as_deref(),
            owner_username: p.owner_username.as_deref(),
            max_concurrent_users: p.max_concurrent_users,
            is_active: p.is_active,
        }
    }
}

#[derive(Debug, Serialize)]
struct Licenses<'a> {
    pools: Vec<PoolView<'a>>,
}

#[skip_serializing_none]
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Started<'a> {
    user_id: &'a str,
    username: &'a str,
    started_at: Option<i64>,
}

#[skip_serializing_none]
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Updated<'a> {
    user_id: &'a str,
    username: &'a str,
    updated_at: Option<i64>,
    status: &'a str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Activity<'a> {
    recently_started: Vec<Started<'a>>,
    recently_updated: Vec<Updated<'a>>,
}

/// The answer of `admin-overview`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Overview<'a> {
    timestamp: i64,
    summary: Summary,
    instances: Instances<'a>,
    sessions: Sessions<'a>,
    licenses: Licenses<'a>,
    activity: Activity<'a>,
    auto_shutdown: ShutdownStats,
}

/// `admin-overview`: the fleet, the sessions around now, the shared licenses, recent
/// activity, auto-shutdown and this month's hours and cost (exact, rounded to cents).
pub async fn admin_overview(svc: &Services) -> Result<Value> {
    let now = svc.now();
    // Five independent reads, made at once.
    let (all, active_sessions, upcoming, pools, (hours, cost)) = tokio::try_join!(
        svc.store.instances.all(),
        svc.store
            .sessions
            .in_status(&SessionStatus::Active, now + OVERVIEW_WINDOW),
        svc.store
            .sessions
            .in_status(&SessionStatus::Scheduled, now + OVERVIEW_WINDOW),
        svc.store.pools.active(),
        month_hours_and_cost(svc, now),
    )?;
    let active_sessions: Vec<ScheduledSession> = active_sessions
        .into_iter()
        .filter(|s| s.end_time >= now - OVERVIEW_WINDOW)
        .collect();
    let upcoming: Vec<ScheduledSession> = upcoming.into_iter().filter(|s| s.start_time > now).collect();

    let running: Vec<&Instance> = all.iter().filter(|i| i.status == InstanceStatus::Running).collect();
    let count = |p: &dyn Fn(&Instance) -> bool| all.iter().filter(|i| p(i)).count();
    let overview = Overview {
        timestamp: now,
        summary: Summary {
            total_instances: all.len(),
            running_instances: running.len(),
            byol_instances: count(&|i| i.license_type.as_deref() == Some("byol")),
            pooled_instances: count(&|i| i.license_type.as_deref() == Some("pooled")),
            shared_licenses: count(&|i| i.allow_license_sharing == Some(true)),
            active_sessions: active_sessions.len(),
            upcoming_sessions: upcoming.len(),
            instances_with_timers: running
                .iter()
                .filter(|i| i.auto_shutdown_at.is_some_and(|t| t != 0))
                .count(),
            total_hours_this_month: number(hours),
            estimated_monthly_cost: number(cost),
        },
        instances: Instances {
            running: running.iter().map(|i| RunningView::of(i)).collect(),
            stopped: all
                .iter()
                .filter(|i| i.status == InstanceStatus::Stopped)
                .map(StoppedView::of)
                .collect(),
        },
        sessions: Sessions {
            active: active_sessions.iter().map(SessionView::of).collect(),
            upcoming: upcoming.iter().map(SessionView::of).collect(),
        },
        licenses: Licenses {
            pools: pools.iter().map(PoolView::of).collect(),
        },
        activity: Activity {
            recently_started: all
                .iter()
                .filter(|i| i.started_at.is_some_and(|t| t > now - RECENT))
                .map(|i| Started {
                    user_id: &i.user_id,
                    username: &i.sanitized_username,
                    started_at: i.started_at,
                })
                .collect(),
            recently_updated: all
                .iter()
                .filter(|i| i.updated_at.is_some_and(|t| t > now - RECENT))
                .map(|i| Updated {
                    user_id: &i.user_id,
                    username: &i.sanitized_username,
                    updated_at: i.updated_at,
                    status: i.status.as_str(),
                })
                .collect(),
        },
        auto_shutdown: ShutdownStats::of(&all, now),
    };
    crate::response::to_body(&overview)
}

/// This month's hours over every user, and their cost at the configured rate rounded to cents
/// (`None` when a figure is not a finite number).
async fn month_hours_and_cost(svc: &Services, now: i64) -> Result<(Option<Decimal>, Option<Decimal>)> {
    let suffix = format!("#{}", month_key(now));
    let hours = svc
        .store
        .usage
        .all()
        .await?
        .iter()
        .filter(|u| u.usage_key.ends_with(&suffix))
        .filter_map(|u| u.hours_this_month.filter(|h| *h != 0.0))
        .try_fold(Decimal::ZERO, |sum, h| sum.checked_add(exact(h)?));
    let cost = match (hours, exact(svc.config.instance_cost_per_hour)) {
        (Some(h), Some(r)) => money::cents(h.checked_mul(r)),
        _ => None,
    };
    Ok((hours, cost))
}

// ---------------------------------------------------------------------- emergency actions

/// The answer of `admin-force-shutdown`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ForcedShutdown<'a> {
    message: &'static str,
    target_user_id: &'a str,
    target_username: String,
    reason: &'a str,
    timestamp: i64,
}

/// `admin-force-shutdown`: stops one user's running server.
pub async fn force_shutdown(svc: &Services, target: Option<&str>, reason: Option<&str>) -> Result<Value> {
    let target = target.unwrap_or_default();
    let inst = match target {
        "" => None,
        t => svc.store.instances.get_latest(t).await?,
    }
    .ok_or_else(|| Error::failed("Target user instance not found"))?;
    if inst.status != InstanceStatus::Running {
        return Err(Error::failed("Instance is not running"));
    }
    let cause = crate::domain::notify::StopCause::Admin(reason.map(str::to_string));
    run::end_run_because(svc, &inst, cause).await?;
    crate::response::to_body(&ForcedShutdown {
        message: "Instance force shutdown completed",
        target_user_id: target,
        target_username: inst.sanitized_username,
        reason: reason.filter(|r| !r.is_empty()).unwrap_or(NO_REASON),
        timestamp: svc.now(),
    })
}

/// The answer of `admin-cancel-session`.
#[skip_serializing_none]
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SessionCancelled<'a> {
    message: &'static str,
    session_id: &'a str,
    user_id: String,
    username: Option<String>,
    reason: &'a str,
    timestamp: i64,
}

/// `admin-cancel-session`: cancels any session that is not cancelled yet; an active
/// session's server stops.
pub async fn cancel_session(svc: &Services, session_id: Option<&str>, reason: Option<&str>) -> Result<Value> {
    let session_id = session_id.unwrap_or_default();
    let session = match session_id {
        "" => None,
        id => svc.store.sessions.get(id).await?,
    }
    .ok_or_else(|| Error::failed("Session not found"))?;
    match session.status {
        SessionStatus::Cancelled => return Err(Error::failed("Session is already cancelled")),
        SessionStatus::Completed => return Err(Error::failed("Session has already ended")),
        _ => {}
    }
    sessions::cancel(svc, &session, "admin").await?;
    crate::response::to_body(&SessionCancelled {
        message: "Session cancelled successfully",
        session_id,
        user_id: session.user_id,
        username: session.username,
        reason: reason.filter(|r| !r.is_empty()).unwrap_or(NO_REASON),
        timestamp: svc.now(),
    })
}

/// The sessions the bulk actions reach: those that hold a license and started up to 30
/// days ago or start within a year.
async fn bulk_sessions(svc: &Services) -> Result<Vec<ScheduledSession>> {
    let now = svc.now();
    let mut all = Vec::new();
    for status in [SessionStatus::Scheduled, SessionStatus::Starting, SessionStatus::Active] {
        all.extend(
            svc.store
                .sessions
                .in_status(&status, now + BULK_AHEAD)
                .await?
                .into_iter()
                .filter(|s| s.start_time >= now - BULK_PAST),
        );
    }
    Ok(all)
}

/// Cancels `sessions` a few at a time → how many, and the failures as
/// `"<prefix><sessionId>: <error>"`.
async fn cancel_all(svc: &Services, sessions: &[ScheduledSession], prefix: &str) -> (usize, Vec<String>) {
    let outcomes: Vec<(String, Result<bool>)> = stream::iter(sessions.to_vec())
        .map(|s| async move {
            let outcome = sessions::cancel(svc, &s, "admin").await;
            (s.session_id, outcome)
        })
        .buffered(BULK_CONCURRENCY)
        .collect()
        .await;
    let mut cancelled = 0;
    let mut errors = Vec::new();
    for (id, outcome) in outcomes {
        match outcome {
            Ok(true) => cancelled += 1,
            Ok(false) => {}
            Err(e) => errors.push(format!("{prefix}{id}: {e}")),
        }
    }
    (cancelled, errors)
}

/// The answer of the bulk admin actions.
#[skip_serializing_none]
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Bulk<'a> {
    message: String,
    shutdown_count: Option<usize>,
    cancelled_count: usize,
    reservations_cancelled: Option<usize>,
    reset_count: Option<usize>,
    total_instances: Option<usize>,
    total_sessions: Option<usize>,
    total_license_pools: Option<usize>,
    errors: Option<Vec<String>>,
    reason: Option<&'a str>,
    timestamp: i64,
}

impl<'a> Bulk<'a> {
    fn new(message: String, cancelled: usize, now: i64) -> Self {
        Bulk {
            message,
            shutdown_count: None,
            cancelled_count: cancelled,
            reservations_cancelled: None,
            reset_count: None,
            total_instances: None,
            total_sessions: None,
            total_license_pools: None,
            errors: None,
            reason: None,
            timestamp: now,
        }
    }
}

/// `admin-cancel-all-sessions`.
pub async fn cancel_all_sessions(svc: &Services, reason: Option<&str>) -> Result<Value> {
    let sessions = bulk_sessions(svc).await?;
    if sessions.is_empty() {
        return crate::response::to_body(&Bulk::new(
            "No active or scheduled sessions to cancel".into(),
            0,
            svc.now(),
        ));
    }
    let (cancelled, errors) = cancel_all(svc, &sessions, "").await;
    crate::response::to_body(&Bulk {
        total_sessions: Some(sessions.len()),
        errors: (!errors.is_empty()).then_some(errors),
        reason: Some(reason.filter(|r| !r.is_empty()).unwrap_or(NO_REASON)),
        ..Bulk::new(
            format!("Cancelled {cancelled}/{} sessions", sessions.len()),
            cancelled,
            svc.now(),
        )
    })
}

/// `admin-system-maintenance`: cancels every session, then stops every running server.
/// (It sets no lasting maintenance mode: new starts are not blocked.)
pub async fn system_maintenance(svc: &Services, reason: Option<&str>) -> Result<Value> {
    let sessions = bulk_sessions(svc).await?;
    let (cancelled, mut errors) = cancel_all(svc, &sessions, "Session ").await;
    let running: Vec<Instance> = svc
        .store
        .instances
        .all()
        .await?
        .into_iter()
        .filter(|i| i.status == InstanceStatus::Running)
        .collect();
    // The stopped notifications are recorded as the servers stop, and sent afterwards (at
    // most NOTIFY_MAX_PER_RUN; the sweeps send the rest).
    let stopping = stream::iter(running.clone())
        .map(|i| async move {
            let cause = crate::domain::notify::StopCause::Maintenance(reason.map(str::to_string));
            let outcome = run::end_run_because(svc, &i, cause).await;
            (i.sanitized_username, outcome)
        })
        .buffered(BULK_CONCURRENCY)
        .collect::<Vec<(String, Result<Instance>)>>();
    let (outcomes, recorded) = crate::actions::deliver::record_only(stopping).await;
    crate::actions::deliver::retry_pending(svc, &crate::context::Ctx::default(), recorded).await;
    let mut stopped = 0;
    for (name, outcome) in outcomes {
        match outcome {
            Ok(_) => stopped += 1,
            Err(e) => errors.push(format!("Instance {name}: {e}")),
        }
    }
    crate::response::to_body(&Bulk {
        shutdown_count: Some(stopped),
        total_instances: Some(running.len()),
        total_sessions: Some(sessions.len()),
        errors: (!errors.is_empty()).then_some(errors),
        reason: Some(reason.filter(|r| !r.is_empty()).unwrap_or(NO_REASON)),
        ..Bulk::new("System maintenance mode activated".into(), cancelled, svc.now())
    })
}

/// `admin-maintenance-reset`: cancels every session and every reservation still active.
/// The license pool is left as the owners set it.
pub async fn maintenance_reset(svc: &Services, reason: Option<&str>) -> Result<Value> {
    let sessions = bulk_sessions(svc).await?;
    let (cancelled, mut errors) = cancel_all(svc, &sessions, "Session ").await;
    let pools = svc.store.pools.active().await?.len();
    let reservations = svc.store.reservations.active().await?;
    let outcomes: Vec<(String, Result<()>)> = stream::iter(reservations)
        .map(|r| async move {
            let outcome = svc
                .store
                .reservations
                .set_status(&r.reservation_id, ReservationStatus::Cancelled)
                .await;
            (r.reservation_id, outcome)
        })
        .buffered(BULK_CONCURRENCY)
        .collect()
        .await;
    let mut reservations_cancelled = 0;
    for (id, outcome) in outcomes {
        match outcome {
            Ok(()) => reservations_cancelled += 1,
            Err(e) => errors.push(format!("Reservation {id}: {e}")),
        }
    }
    crate::response::to_body(&Bulk {
        reservations_cancelled: Some(reservations_cancelled),
        reset_count: Some(0),
        total_sessions: Some(sessions.len()),
        total_license_pools: Some(pools),
        errors: (!errors.is_empty()).then_some(errors),
        reason: Some(reason.filter(|r| !r.is_empty()).unwrap_or(NO_REASON)),
        ..Bulk::new(
            "Maintenance reset completed - sessions cancelled and reservations cleared; license pools left as their owners set them"
                .into(),
            cancelled,
            svc.now(),
        )
    })
}

// ---------------------------------------------------------------------- the index of runs

/// The answer of `admin-backfill-run-index`.
#[skip_serializing_none]
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Backfill {
    message: &'static str,
    /// Records read (the whole table).
    scanned: usize,
    /// Records that have a run.
    with_run: usize,
    /// Runs put in the index now (the others were in it already, or ended meanwhile).
    listed: usize,
    errors: Option<Vec<String>>,
}

/// `admin-backfill-run-index`: the one-off migration of the index of runs. Every record
/// that has a run (starting, running, or naming a task) and is not in the index, written
/// before the index existed, is put in it by the deadline the sweep applies to it. A
/// conditional write each: a run listed already, or ended since the table was read, is
/// left alone, so running it twice, or while runs begin and end, is harmless.
pub async fn backfill_run_index(svc: &Services) -> Result<Value> {
    let all = svc.store.instances.all().await?;
    let scanned = all.len();
    let with_run: Vec<Instance> = all.into_iter().filter(crate::store::has_run).collect();
    let outcomes: Vec<(String, Result<bool>)> = stream::iter(with_run.iter().cloned())
        .map(|inst| async move {
            let outcome = svc.store.instances.list_unlisted_run(&inst).await;
            (inst.user_id, outcome)
        })
        .buffer_unordered(BULK_CONCURRENCY)
        .collect()
        .await;
    let mut listed = 0;
    let mut errors = Vec::new();
    for (user, outcome) in outcomes {
        match outcome {
            Ok(true) => listed += 1,
            Ok(false) => {}
            Err(e) => errors.push(format!("Instance {user}: {e}")),
        }
    }
    tracing::info!(
        scanned,
        with_run = with_run.len(),
        listed,
        "backfilled the index of runs"
    );
    crate::response::to_body(&Backfill {
        message: "Run index backfilled",
        scanned,
        with_run: with_run.len(),
        listed,
        errors: (!errors.is_empty()).then_some(errors),
    })
}
