//! The EventBridge sweeps and their statistics (spec/SCHEDULING.md §7, §8, §10).

use serde_json::Value;

use super::Obj;
use crate::app::App;
use crate::domain::model::{Instance, InstanceStatus};
use crate::error::Result;

/// Shutdown statistics over `instances` at `now` (spec/SCHEDULING.md §10).
pub fn shutdown_stats_of(instances: &[Instance], now: i64) -> Value {
    let running: Vec<&Instance> = instances
        .iter()
        .filter(|i| i.status == InstanceStatus::Running)
        .collect();
    let with_timer = running
        .iter()
        .filter(|i| i.auto_shutdown_at.is_some_and(|t| t != 0))
        .count();
    let overdue = running
        .iter()
        .filter(|i| i.auto_shutdown_at.is_some_and(|t| t <= now))
        .count();
    let next = running
        .iter()
        .filter_map(|i| i.auto_shutdown_at)
        .filter(|t| *t > now)
        .map(|t| t - now)
        .min();
    Obj::new()
        .set("totalRunning", running.len())
        .set("scheduledForShutdown", with_timer)
        .set("overdue", overdue)
        .set("nextShutdownIn", next.map(Value::from).unwrap_or(Value::Null))
        .build()
}

/// `shutdown-stats` (§4.19).
pub async fn shutdown_stats(app: &App) -> Result<Value> {
    let instances = app.store.scan_instances().await?;
    let stats = shutdown_stats_of(&instances, app.clock.now());
    Ok(Obj::new()
        .set("message", "Auto-shutdown statistics")
        .set("stats", stats)
        .build())
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
            shutdown_stats_of(&list, now),
            json!({"totalRunning":4,"scheduledForShutdown":3,"overdue":1,"nextShutdownIn":100})
        );
        assert_eq!(
            shutdown_stats_of(&[], now),
            json!({"totalRunning":0,"scheduledForShutdown":0,"overdue":0,"nextShutdownIn":null})
        );
    }
}
