//! In-memory fakes of every manager trait, with fault injection.
//!
//! One [`Faults`] is shared by all fakes of a [`FakeAws`], so a test can say
//! "fail the 2nd call of CreateTargetGroup" without caring which fake serves it.
//! Operation names are the AWS operation names where a trait method is one AWS call
//! (`CreateTargetGroup`, `RunTask`, `PutItem`, …) and the trait method's name in
//! PascalCase where it is a group (`EnsureBucket`, `DeleteBucket`, `DeleteUser`, …).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::error::{AwsError, AwsErrorKind};

mod fakes;
pub mod fuzz;
pub use fakes::*;

#[derive(Debug, Clone)]
struct FaultRule {
    operation: String,
    /// 1-based call number that fails; `None` = every call.
    nth: Option<usize>,
    kind: AwsErrorKind,
    message: String,
}

#[derive(Debug, Default)]
struct FaultState {
    calls: Vec<String>,
    counts: HashMap<String, usize>,
    rules: Vec<FaultRule>,
}

/// Records every call and injects failures.
#[derive(Debug, Default)]
pub struct Faults {
    state: Mutex<FaultState>,
}

impl Faults {
    pub fn new() -> Self {
        Faults::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FaultState> {
        // A panicking test thread must not poison the fakes for the others.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Fail the `nth` call of `operation` (1-based, counting every call the fakes
    /// have recorded since they were made) with an error of `kind`.
    pub fn fail_nth(&self, operation: &str, nth: usize, kind: AwsErrorKind) {
        self.lock().rules.push(FaultRule {
            operation: operation.to_string(),
            nth: Some(nth),
            kind,
            message: format!("injected {kind:?} failure of {operation} (call {nth})"),
        });
    }

    /// Fail every call of `operation` from now on.
    pub fn fail_always(&self, operation: &str, kind: AwsErrorKind) {
        self.lock().rules.push(FaultRule {
            operation: operation.to_string(),
            nth: None,
            kind,
            message: format!("injected {kind:?} failure of {operation}"),
        });
    }

    /// Remove every fault rule (the call log stays).
    pub fn clear(&self) {
        self.lock().rules.clear();
    }

    /// Every call so far, in order, as operation names.
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    /// How many times `operation` was called.
    pub fn count(&self, operation: &str) -> usize {
        self.lock().counts.get(operation).copied().unwrap_or(0)
    }

    /// Called first by every fake method: records the call, reports it to telemetry,
    /// and returns the injected error if a rule matches.
    pub fn check(&self, service: &'static str, operation: &'static str) -> Result<(), AwsError> {
        let injected = {
            let mut st = self.lock();
            st.calls.push(operation.to_string());
            let n = {
                let c = st.counts.entry(operation.to_string()).or_insert(0);
                *c += 1;
                *c
            };
            st.rules
                .iter()
                .find(|r| r.operation == operation && r.nth.is_none_or(|k| k == n))
                .map(|r| AwsError::new(service, operation, r.kind, r.message.clone()).with_code("InjectedFault"))
        };
        crate::telemetry::aws_call(service, operation, std::time::Duration::ZERO, injected.is_none());
        match injected {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// An [`App`](crate::app::App) on fakes, at `unix_seconds` on a manual clock, with the
/// cleanup task running to completion by themselves.
pub fn fake_app(unix_seconds: i64) -> (crate::app::App, FakeAws, std::sync::Arc<crate::clock::ManualClock>) {
    fake_app_with(unix_seconds, crate::config::Config::for_tests())
}

/// [`fake_app`] with another configuration.
pub fn fake_app_with(
    unix_seconds: i64,
    config: crate::config::Config,
) -> (crate::app::App, FakeAws, std::sync::Arc<crate::clock::ManualClock>) {
    let fake = FakeAws::new();
    let clock = std::sync::Arc::new(crate::clock::ManualClock::at(unix_seconds));
    fake.set_clock(clock.clone());
    fake.ecs.set_auto_stop(crate::domain::taskdef::CLEANUP_FAMILY);
    let app = crate::app::App::new(config, clock.clone(), fake.managers());
    (app, fake, clock)
}

/// Handles `event` and returns the status code and the parsed body.
pub async fn invoke(app: &crate::app::App, event: serde_json::Value) -> (u16, serde_json::Value) {
    invoke_with(app, event, &crate::app::Ctx::default()).await
}

/// [`invoke`] with an explicit context (deadline).
pub async fn invoke_with(
    app: &crate::app::App,
    event: serde_json::Value,
    ctx: &crate::app::Ctx,
) -> (u16, serde_json::Value) {
    let handled = app.handle(&event, ctx).await;
    let body = handled.envelope.body_json().unwrap_or(serde_json::Value::Null);
    (handled.envelope.status_code, body)
}
