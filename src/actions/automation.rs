//! Auto-shutdown: the EventBridge sweep every five minutes, and its statistics.

use futures_util::stream::{self, StreamExt};
use serde::Serialize;
use serde_json::Value;
use serde_with::skip_serializing_none;

use crate::actions::run;
use crate::actions::{deliver, idle};
use crate::context::{Ctx, Services};
use crate::domain::model::{Instance, InstanceStatus};
use crate::domain::schedule::shutdown_deadline;
use crate::error::Result;
use crate::store::Lease;

/// How many instances the sweep stops at once.
const SWEEP_CONCURRENCY: usize = 16;

/// Auto-shutdown statistics, by the same deadlines the sweep uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ShutdownStats {
    pub total_running: usize,
    /// Running instances with a recorded deadline.
    pub scheduled_for_shutdown: usize,
    /// Instances the next sweep stops.
    pub overdue: usize,
    /// Seconds until the next deadline, `null` when no running instance has one ahead.
    pub next_shutdown_in: Option<i64>,
}

impl ShutdownStats {
    /// The statistics of `instances` at `now`.
    pub fn of(instances: &[Instance], now: i64) -> Self {
        let running = instances.iter().filter(|i| i.status == InstanceStatus::Running);
        ShutdownStats {
            total_running: running.clone().count(),
            scheduled_for_shutdown: running
                .clone()
                .filter(|i| i.auto_shutdown_at.is_some_and(|t| t != 0))
                .count(),
            overdue: instances.iter().filter(|i| due(i, now)).count(),
            next_shutdown_in: running
                .filter_map(shutdown_deadline)
                .filter(|t| *t > now)
                .map(|t| t - now)
                .min(),
        }
    }
}

/// Whether the sweep stops `inst` at `now`: its deadline has passed, and no start or
/// destroy holds it right now.
fn due(inst: &Instance, now: i64) -> bool {
    shutdown_deadline(inst).is_some_and(|t| t <= now) && Lease::is_free(inst, now)
}

#[derive(Debug, Serialize)]
struct StatsAnswer {
    message: &'static str,
    stats: ShutdownStats,
}

/// `shutdown-stats`, over the index of runs (every running instance is in it).
pub async fn shutdown_stats(svc: &Services) -> Result<Value> {
    let instances = svc.store.instances.running().await?;
    crate::response::to_body(&StatsAnswer {
        message: "Auto-shutdown statistics",
        stats: ShutdownStats::of(&instances, svc.now()),
    })
}

/// One instance the sweep handled.
#[skip_serializing_none]
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Stopped {
    user_id: String,
    reason: String,
    success: bool,
    error: Option<String>,
}

/// The answer of `auto-shutdown-check`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Sweep {
    message: String,
    shutdown_count: usize,
    results: Vec<Stopped>,
}

/// `auto-shutdown-check`: every instance past its deadline (read from the index of runs,
/// every shard and page, so the sweep reads the runs and not the whole table; a running or
/// starting one without a deadline by its run limit) and, with idle detection on, every
/// server without players for the idle time (see `idle::plan`) is stopped through the full
/// teardown, which books its hours and completes an active session, a few at a time. One
/// failure never stops the sweep: it is reported in `results`.
pub async fn auto_shutdown_check(svc: &Services, ctx: &Ctx) -> Result<Value> {
    let now = svc.now();
    let instances = svc.store.instances.running().await?;
    unlist_without_run(svc, &instances).await;
    let running = instances.iter().filter(|i| i.status == InstanceStatus::Running).count();
    let idle::Plan { stops, notices } = idle::plan(svc, ctx, instances, now).await;
    // Every notification of the sweep (the stops', the warnings) is recorded as it happens
    // and sent below, at most NOTIFY_MAX_PER_RUN of them: a sweep that stops many servers
    // never spends a budget per stop, nor hammers Discord.
    let stopping = stream::iter(stops)
        .map(|idle::Stop { instance: inst, reason }| async move {
            let cause = if reason.to_ascii_lowercase().contains("idle") {
                crate::domain::notify::StopCause::Idle(reason.clone())
            } else {
                crate::domain::notify::StopCause::Deadline(reason.clone())
            };
            match run::end_run_because(svc, &inst, cause).await {
                Ok(_) => Stopped {
                    user_id: inst.user_id,
                    reason,
                    success: true,
                    error: None,
                },
                Err(e) => {
                    tracing::warn!(user = %inst.user_id, error = %e, "auto-shutdown of an instance failed");
                    Stopped {
                        user_id: inst.user_id,
                        reason: "Auto-shutdown failed".into(),
                        success: false,
                        error: Some(e.to_string()),
                    }
                }
            }
        })
        .buffered(SWEEP_CONCURRENCY)
        .collect::<Vec<Stopped>>();
    let (results, recorded) = deliver::record_only(async {
        let results = stopping.await;
        deliver::notify(svc, notices).await;
        results
    })
    .await;
    let stopped = results.iter().filter(|r| r.success).count();
    // What this sweep recorded, and what earlier invocations left pending.
    deliver::retry_pending(svc, ctx, recorded).await;
    crate::telemetry::count("InstancesRunning", running as f64);
    crate::telemetry::count("InstancesStopped", stopped as f64);
    crate::response::to_body(&Sweep {
        message: format!("Auto-shutdown check completed. {stopped} instances shut down."),
        shutdown_count: stopped,
        results,
    })
}

/// Takes out of the index of runs the entries whose record has no run (none of this
/// version's writes leaves one; an item edited by hand might). Best effort: the sweep
/// skips such an entry anyway, since it has no deadline.
async fn unlist_without_run(svc: &Services, entries: &[Instance]) {
    let stale: Vec<String> = entries
        .iter()
        .filter(|i| !crate::store::has_run(i))
        .map(|i| i.user_id.clone())
        .collect();
    stream::iter(stale)
        .for_each_concurrent(SWEEP_CONCURRENCY, |user| async move {
            match svc.store.instances.unlist_ended(&user).await {
                Ok(true) => tracing::info!(user = %user, "took a record without a run out of the index of runs"),
                Ok(false) => {}
                Err(e) => tracing::warn!(user = %user, error = %e, "could not take a record out of the index of runs"),
            }
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn inst(status: InstanceStatus, at: Option<i64>) -> Instance {
        Instance {
            status,
            auto_shutdown_at: at,
            started_at: Some(500),
            license_type: Some("byol".into()),
            ..Default::default()
        }
    }

    #[test]
    fn stats_count_running_timers_overdue_and_next_by_the_sweeps_deadlines() {
        let now = 1_000;
        let list = vec![
            inst(InstanceStatus::Running, Some(900)),
            inst(InstanceStatus::Running, Some(1_300)),
            inst(InstanceStatus::Running, Some(1_100)),
            inst(InstanceStatus::Running, None),
            inst(InstanceStatus::Stopped, Some(1_050)),
        ];
        assert_eq!(
            serde_json::to_value(ShutdownStats::of(&list, now)).unwrap(),
            json!({"totalRunning":4,"scheduledForShutdown":3,"overdue":1,"nextShutdownIn":100})
        );
        assert_eq!(
            serde_json::to_value(ShutdownStats::of(&[], now)).unwrap(),
            json!({"totalRunning":0,"scheduledForShutdown":0,"overdue":0,"nextShutdownIn":null})
        );
        // A running instance without a deadline is overdue after its run limit.
        let late = 500 + 21_600;
        assert_eq!(
            ShutdownStats::of(&[inst(InstanceStatus::Running, None)], late).overdue,
            1
        );
    }
}
