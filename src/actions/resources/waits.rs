//! Waiting for AWS: polls that start short and back off, on the injected clock, and
//! never outlive the invocation's deadline.

use std::time::Duration;

use crate::clock::Clock;
use crate::context::{Ctx, Services};
use crate::error::AwsError;
use crate::managers::ecs::TaskInfo;

/// The pause between two polls: starts short and doubles up to a ceiling.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    /// 1 s, 2 s, 4 s, 8 s, then every 10 s: a step that finishes within a second is seen
    /// within a second, and a long one costs a poll every 10 s.
    pub fn standard() -> Self {
        Backoff {
            next: Duration::from_secs(1),
            max: Duration::from_secs(10),
        }
    }

    /// Sleeps for the next pause, cut short at `until_ms` → false when `until_ms` has
    /// already come (the caller's wait is over).
    pub async fn pause(&mut self, clock: &dyn Clock, until_ms: i64) -> bool {
        let remaining = until_ms - clock.now_ms();
        if remaining <= 0 {
            return false;
        }
        let pause = self
            .next
            .min(Duration::from_millis(u64::try_from(remaining).unwrap_or(0)));
        clock.sleep(pause).await;
        self.next = (self.next * 2).min(self.max);
        true
    }
}

/// Describes a task that was just launched until `settle` decides (`Some`) or the
/// invocation's wait is over → `Ok(Some(decision))`, or `Ok(None)` when time ran out.
/// `settle` gets `None` for a task ECS does not know (any more). The first look comes after
/// the first pause: a task is never settled at the moment RunTask answers, so a look then
/// would only cost a call.
pub async fn watch_task<R>(
    svc: &Services,
    ctx: &Ctx,
    task_arn: &str,
    mut settle: impl FnMut(Option<TaskInfo>) -> Option<R>,
) -> Result<Option<R>, AwsError> {
    let until = ctx.wait_until_ms(svc.clock.as_ref());
    let mut backoff = Backoff::standard();
    loop {
        if !backoff.pause(svc.clock.as_ref(), until).await {
            return Ok(None);
        }
        let task = svc.aws.ecs.describe_task(&svc.config.cluster_name, task_arn).await?;
        if let Some(decision) = settle(task) {
            return Ok(Some(decision));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[tokio::test]
    async fn pauses_double_up_to_ten_seconds_and_stop_at_the_deadline() {
        let clock = ManualClock::at(0);
        let mut b = Backoff::standard();
        let until = 30_500;
        let mut seen = Vec::new();
        while b.pause(&clock, until).await {
            seen.push(clock.now_ms());
        }
        // 1, 3, 7, 15, 25 s, then cut short at 30.5 s.
        assert_eq!(seen, vec![1_000, 3_000, 7_000, 15_000, 25_000, 30_500]);
        assert!(!b.pause(&clock, until).await);
    }
}
