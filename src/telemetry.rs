//! Per-invocation counters and the AWS-call hook.
//!
//! Every AWS call (from the SDK interceptor, or from a fake in tests) goes through
//! [`aws_call`], which logs it at DEBUG and counts it for the invocation in scope.

use std::cell::RefCell;
use std::time::Duration;

tokio::task_local! {
    static CALLS: RefCell<CallStats>;
}

/// AWS calls made by one invocation.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CallStats {
    pub total: u64,
    pub failed: u64,
}

/// Runs `fut` with a fresh AWS-call counter and returns its output with the counts.
pub async fn with_call_stats<F: std::future::Future>(fut: F) -> (F::Output, CallStats) {
    CALLS
        .scope(RefCell::new(CallStats::default()), async move {
            let out = fut.await;
            let stats = CALLS.with(|c| c.borrow().clone());
            (out, stats)
        })
        .await
}

/// Records one AWS call: a DEBUG line (service, operation, duration, outcome; never
/// parameters) and the invocation's counter.
pub fn aws_call(service: &str, operation: &str, duration: Duration, ok: bool) {
    tracing::debug!(
        service,
        operation,
        duration_ms = duration.as_secs_f64() * 1000.0,
        outcome = if ok { "ok" } else { "error" },
        "aws call"
    );
    let _ = CALLS.try_with(|c| {
        let mut c = c.borrow_mut();
        c.total += 1;
        if !ok {
            c.failed += 1;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_calls_inside_the_scope_only() {
        aws_call("s3", "HeadBucket", Duration::ZERO, true); // outside: ignored
        let ((), stats) = with_call_stats(async {
            aws_call("s3", "HeadBucket", Duration::ZERO, true);
            aws_call("s3", "CreateBucket", Duration::ZERO, false);
        })
        .await;
        assert_eq!(stats, CallStats { total: 2, failed: 1 });
    }
}
