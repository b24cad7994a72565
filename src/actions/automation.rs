//! The EventBridge sweeps and their statistics.

use serde::Serialize;
use serde_json::Value;

use crate::context::Services;
use crate::domain::model::{Instance, InstanceStatus};
use crate::error::Result;

/// Auto-shutdown statistics over the running instances.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ShutdownStats {
    pub total_running: usize,
    pub scheduled_for_shutdown: usize,
    pub overdue: usize,
    /// Seconds until the next deadline, `null` when no running instance has one ahead.
    pub next_shutdown_in: Option<i64>,
}

impl ShutdownStats {
    /// The statistics of `instances` at `now`.
    pub fn of(instances: &[Instance], now: i64) -> Self {
        let running: Vec<&Instance> = instances
            .iter()
            .filter(|i| i.status == InstanceStatus::Running)
            .collect();
        ShutdownStats {
            total_running: running.len(),
            scheduled_for_shutdown: running
                .iter()
                .filter(|i| i.auto_shutdown_at.is_some_and(|t| t != 0))
                .count(),
            overdue: running
                .iter()
                .filter(|i| i.auto_shutdown_at.is_some_and(|t| t <= now))
                .count(),
            next_shutdown_in: running
                .iter()
                .filter_map(|i| i.auto_shutdown_at)
                .filter(|t| *t > now)
                .map(|t| t - now)
                .min(),
        }
    }
}

#[derive(Debug, Serialize)]
struct StatsAnswer {
    message: &'static str,
    stats: ShutdownStats,
}

/// `shutdown-stats`.
pub async fn shutdown_stats(svc: &Services) -> Result<Value> {
    let instances = svc.store.instances.all().await?;
    crate::response::to_body(&StatsAnswer {
        message: "Auto-shutdown statistics",
        stats: ShutdownStats::of(&instances, svc.now()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn inst(status: InstanceStatus, at: Option<i64>) -> Instance {
        Instance {
            status,
            auto_shutdown_at: at,
            ..Default::default()
        }
    }

    #[test]
    fn stats_count_running_timers_overdue_and_next() {
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
    }
}
