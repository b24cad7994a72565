//! Idle detection: what the auto-shutdown sweep does with each instance it lists. Every
//! running server is probed (`GET /api/status`, a few at a time, each within a short
//! budget, all within the invocation's deadline), what the probe found is recorded, and
//! the idle rule (`domain::idle::decide`) says which servers stop and which deadlines
//! move. The sweep stops them through the one run-end path.
//!
//! A probe that fails, or that there was no time left for, is unknown: only the deadline
//! applies to that server. A slow server can never make the sweep miss its deadline or
//! skip another instance: every instance past its deadline is stopped, probed or not.

use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use tokio::time::Instant;

use crate::context::{Ctx, Services};
use crate::domain::idle::{decide, idle_anchor, status_url, Decision, Probe};
use crate::domain::model::{Instance, InstanceStatus};
use crate::domain::notify::{self, Notice};
use crate::domain::schedule::{shutdown_deadline, shutdown_reason};
use crate::store::{Lease, ProbeNote};

/// How many servers are probed at once.
pub const PROBE_CONCURRENCY: usize = 32;

/// The share of the invocation's remaining time the probes may use; the rest is left to
/// the stops.
const PROBE_SHARE: i64 = 2;

/// An instance the sweep stops, and why.
#[derive(Debug, Clone)]
pub struct Stop {
    pub instance: Instance,
    pub reason: String,
}

/// What the sweep does: the instances it stops, and the warnings it sends about the
/// others.
#[derive(Debug, Default)]
pub struct Plan {
    pub stops: Vec<Stop>,
    pub notices: Vec<Notice>,
}

/// The warnings about a server the sweep keeps running at `now`, each once per run (its id
/// is the run's task): its deadline is within the warning time; nobody plays and its idle
/// stop is within the warning time (`idle_stop_at`); players are connected, so its deadline
/// moved (`moved_to`).
fn warnings(
    svc: &Services,
    inst: &Instance,
    now: i64,
    idle_stop_at: Option<i64>,
    moved_to: Option<i64>,
) -> Vec<Notice> {
    let Some(window) = svc.config.notifications.as_ref().map(|n| n.warning_minutes * 60) else {
        return Vec::new();
    };
    let Some(task) = inst
        .task_arn
        .as_deref()
        .filter(|_| inst.status == InstanceStatus::Running)
    else {
        return Vec::new();
    };
    let url = crate::domain::names::url(&inst.sanitized_username, &svc.config.domain_name);
    let soon = |t: i64| window > 0 && t > now && t - now <= window;
    let mut out = Vec::new();
    if let Some(until) = moved_to {
        out.push(notify::deadline_moved(&inst.user_id, task, until, Some(&url)));
        return out;
    }
    if let Some(deadline) = shutdown_deadline(inst).filter(|t| soon(*t)) {
        out.push(notify::deadline_warning(&inst.user_id, task, deadline, Some(&url)));
    }
    if let Some(at) = idle_stop_at.filter(|t| soon(*t)) {
        out.push(notify::idle_warning(&inst.user_id, task, at, Some(&url)));
    }
    out
}

/// Whether the sweep stops `inst` at `now` by its deadline alone: the deadline has passed,
/// and no start or destroy holds it right now.
pub fn due(inst: &Instance, now: i64) -> bool {
    shutdown_deadline(inst).is_some_and(|t| t <= now) && Lease::is_free(inst, now)
}

/// Whether the sweep probes `inst`: a routed, running server that no invocation holds.
fn probed(inst: &Instance, now: i64) -> bool {
    inst.status == InstanceStatus::Running && inst.task_arn.is_some() && Lease::is_free(inst, now)
}

/// What the sweep does with `instances` at `now`: the ones to stop, with their reasons.
///
/// With idle detection off, the instances past their deadline. With it on, every running
/// server is also probed, the result recorded on its record (conditionally on the run, so
/// that a probe never brings back a run that ended meanwhile), deadlines extended where
/// players are connected, and servers idle for the idle time stopped.
pub async fn plan(svc: &Services, ctx: &Ctx, instances: Vec<Instance>, now: i64) -> Plan {
    let rule = svc.config.idle_rule();
    let (to_probe, rest): (Vec<Instance>, Vec<Instance>) =
        instances.into_iter().partition(|i| rule.on() && probed(i, now));
    let mut plan = Plan::default();
    for i in rest {
        if due(&i, now) {
            plan.stops.push(Stop {
                reason: shutdown_reason(&i, now),
                instance: i,
            });
        } else {
            plan.notices.extend(warnings(svc, &i, now, None, None));
        }
    }
    if to_probe.is_empty() {
        return plan;
    }
    // The probes end halfway to the invocation's deadline (a real-time budget).
    let clock = &*svc.clock;
    let left_ms = (ctx.wait_until_ms(clock) - clock.now_ms()).max(0);
    let probes_end = Instant::now() + Duration::from_millis(u64::try_from(left_ms / PROBE_SHARE).unwrap_or(0));
    let per_probe = Duration::from_millis(svc.config.foundry_status_timeout_ms);
    let reviewed: Vec<(Option<Stop>, Vec<Notice>)> = stream::iter(to_probe)
        .map(|inst| review(svc, inst, now, probes_end, per_probe))
        .buffer_unordered(PROBE_CONCURRENCY)
        .collect()
        .await;
    for (stop, notices) in reviewed {
        plan.stops.extend(stop);
        plan.notices.extend(notices);
    }
    plan
}

/// Probes the server of `inst` (if time is left before `probes_end`), decides, and
/// records the probe → the stop, if the rule says so, and the warnings about it otherwise.
async fn review(
    svc: &Services,
    inst: Instance,
    now: i64,
    probes_end: Instant,
    per_probe: Duration,
) -> (Option<Stop>, Vec<Notice>) {
    match review_one(svc, &inst, now, probes_end, per_probe).await {
        Reviewed::Stop(reason) => (Some(Stop { instance: inst, reason }), Vec::new()),
        Reviewed::Kept { idle_stop_at, moved_to } => {
            let notices = warnings(svc, &inst, now, idle_stop_at, moved_to);
            (None, notices)
        }
    }
}

/// What [`review_one`] found.
enum Reviewed {
    Stop(String),
    /// Kept running: when its idle stop comes if nobody connects, or where its deadline
    /// moved to.
    Kept {
        idle_stop_at: Option<i64>,
        moved_to: Option<i64>,
    },
}

async fn review_one(svc: &Services, inst: &Instance, now: i64, probes_end: Instant, per_probe: Duration) -> Reviewed {
    let by_deadline = || {
        if due(inst, now) {
            Reviewed::Stop(shutdown_reason(inst, now))
        } else {
            Reviewed::Kept {
                idle_stop_at: None,
                moved_to: None,
            }
        }
    };
    let probe = probe(svc, inst, probes_end, per_probe).await;
    let rule = svc.config.idle_rule();
    let session_start = match (&inst.linked_session_id, probe.players()) {
        // Only an idle session's server needs its session's start.
        (Some(id), Some(0)) => match svc.store.sessions.get(id).await {
            Ok(s) => s.map(|s| s.start_time),
            Err(e) => {
                tracing::warn!(user = %inst.user_id, error = %e, "could not read the session of an idle server; only its deadline applies");
                return by_deadline();
            }
        },
        _ => None,
    };
    let decision = decide(inst, &probe, session_start, now, &rule);
    if let Decision::Stop(reason) = decision {
        return Reviewed::Stop(reason);
    }
    let extend_to = match decision {
        Decision::Extend(until) => Some(until),
        _ => None,
    };
    let Some(task) = inst.task_arn.as_deref() else {
        return Reviewed::Kept {
            idle_stop_at: None,
            moved_to: None,
        };
    };
    let note = ProbeNote {
        at: now,
        players: probe.players(),
        outcome: probe.outcome(),
        extend_to,
    };
    match svc.store.instances.note_probe(&inst.user_id, task, &note).await {
        Ok(_) => {
            if let Some(until) = extend_to {
                tracing::info!(user = %inst.user_id, until, "players are connected: the deadline follows play");
            }
            let idle_stop_at = (probe.players() == Some(0))
                .then(|| idle_anchor(inst, session_start))
                .flatten()
                .map(|anchor| anchor + rule.idle_seconds);
            Reviewed::Kept {
                idle_stop_at,
                moved_to: extend_to,
            }
        }
        Err(e) => {
            // The deadline could not move: the players keep their server this time; any
            // other instance is left as the deadline says.
            tracing::warn!(user = %inst.user_id, error = %e, "could not record the probe of a server");
            if extend_to.is_none() {
                by_deadline()
            } else {
                Reviewed::Kept {
                    idle_stop_at: None,
                    moved_to: None,
                }
            }
        }
    }
}

/// The status of the server of `inst`, within `per_probe` and before `probes_end`.
async fn probe(svc: &Services, inst: &Instance, probes_end: Instant, per_probe: Duration) -> Probe {
    let left = probes_end.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Probe::Unknown("no-time".into());
    }
    let Some(url) = status_url(&svc.config.foundry_status_url_template, inst, &svc.config.domain_name) else {
        return Probe::Unknown("no-url".into());
    };
    let budget = per_probe.min(left);
    // The probe's own budget, enforced here too: an implementation that ignored it still
    // could not hold the sweep.
    match tokio::time::timeout(budget, svc.aws.foundry.probe(&url, budget)).await {
        Ok(probe) => probe,
        Err(_) => Probe::Unknown("timeout".into()),
    }
}
