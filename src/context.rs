//! What an action may use: the deployment's [`Services`] (store, AWS managers, clock,
//! configuration) and the per-invocation [`Ctx`] (request id, deadline).
//!
//! Actions import this module, never the dispatcher (`app`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::clock::Clock;
use crate::config::Config;
use crate::managers::Managers;
use crate::store::Store;

/// Upper bound of any wait, whatever the deadline.
pub const MAX_WAIT: Duration = Duration::from_secs(300);
/// What an invocation keeps in hand after its last wait, to record state and answer.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(15);
/// How long a lease lasts when the invocation has no deadline (tests, local runs).
pub const DEFAULT_LEASE: Duration = Duration::from_secs(900);

/// The deployment's services, shared by every invocation.
#[derive(Clone)]
pub struct Services {
    pub config: Arc<Config>,
    pub clock: Arc<dyn Clock>,
    pub aws: Managers,
    pub store: Store,
    /// Task definitions this process registered for the helper tasks.
    pub registered: Arc<Registered>,
}

/// Task definitions registered by this process, by family: a helper task's definition is
/// registered once per process and reused.
#[derive(Debug, Default)]
pub struct Registered(Mutex<HashMap<String, String>>);

impl Registered {
    pub fn get(&self, family: &str) -> Option<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).get(family).cloned()
    }

    pub fn set(&self, family: &str, arn: &str) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(family.to_string(), arn.to_string());
    }
}

impl Services {
    pub fn new(config: Config, clock: Arc<dyn Clock>, aws: Managers) -> Self {
        let store = Store::new(aws.dynamo.clone(), &config);
        Services {
            config: Arc::new(config),
            clock,
            aws,
            store,
            registered: Arc::new(Registered::default()),
        }
    }

    /// Unix seconds now.
    pub fn now(&self) -> i64 {
        self.clock.now()
    }
}

/// Per-invocation context.
#[derive(Debug, Clone, Default)]
pub struct Ctx {
    pub request_id: String,
    /// Unix milliseconds by which the invocation must have answered (`None`: no limit).
    pub deadline_ms: Option<i64>,
}

impl Ctx {
    /// From the Runtime API's `Lambda-Runtime-Deadline-Ms`. AWS sends Unix milliseconds;
    /// `cargo lambda watch` sends the timeout itself (e.g. `600000`), which no absolute
    /// deadline can be (it would lie in 1970), so such a value counts from `now_ms`.
    pub fn from_runtime(request_id: String, deadline_header: u64, now_ms: i64) -> Self {
        const YEAR_2001_MS: i64 = 1_000_000_000_000;
        let deadline_ms = match i64::try_from(deadline_header) {
            Ok(0) | Err(_) => None,
            Ok(d) if d < YEAR_2001_MS => Some(now_ms + d),
            Ok(d) => Some(d),
        };
        Ctx {
            request_id,
            deadline_ms,
        }
    }

    /// Unix milliseconds by which every wait of this invocation must end: the deadline
    /// minus a margin, and never more than [`MAX_WAIT`] from now.
    pub fn wait_until_ms(&self, clock: &dyn Clock) -> i64 {
        let cap = clock.now_ms() + duration_ms(MAX_WAIT);
        match self.deadline_ms {
            Some(d) => (d - duration_ms(DEADLINE_MARGIN)).min(cap),
            None => cap,
        }
    }

    /// Unix seconds until which a lease taken by this invocation lasts: its deadline, or
    /// [`DEFAULT_LEASE`] without one.
    pub fn lease_until(&self, clock: &dyn Clock) -> i64 {
        match self.deadline_ms {
            Some(d) => d.div_euclid(1000) + 1,
            None => clock.now() + duration_ms(DEFAULT_LEASE) / 1000,
        }
    }
}

/// A duration in whole milliseconds, saturating.
pub fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn absolute_deadlines_are_kept_and_relative_ones_count_from_now() {
        let now = 1_795_760_444_329;
        assert_eq!(
            Ctx::from_runtime("r".into(), 1_795_760_744_329, now).deadline_ms,
            Some(1_795_760_744_329)
        );
        assert_eq!(
            Ctx::from_runtime("r".into(), 600_000, now).deadline_ms,
            Some(now + 600_000)
        );
        assert_eq!(Ctx::from_runtime("r".into(), 0, now).deadline_ms, None);
        assert_eq!(Ctx::from_runtime("r".into(), u64::MAX, now).deadline_ms, None);
    }

    #[test]
    fn waits_end_a_margin_before_the_deadline_and_never_later_than_the_cap() {
        let clock = ManualClock::at(1_000);
        let ctx = Ctx {
            request_id: "r".into(),
            deadline_ms: Some(1_000_000 + 60_000),
        };
        assert_eq!(ctx.wait_until_ms(&clock), 1_000_000 + 45_000);
        assert_eq!(ctx.lease_until(&clock), 1_061);
        let open = Ctx::default();
        assert_eq!(open.wait_until_ms(&clock), 1_000_000 + 300_000);
        assert_eq!(open.lease_until(&clock), 1_900);
    }
}
