//! Usage recording (spec/SCHEDULING.md §9.2–§9.3), fixed per W42: every transition
//! out of `running` books its hours, split at UTC month boundaries.
//!
//! The start and run records are returned as transaction writes, so that a lifecycle
//! transition and its usage record commit together or not at all.

use crate::domain::jsnum;
use crate::domain::usage::{split_run_hours, usage_key};
use crate::managers::dynamodb::{Cond, TransactOp, Update};
use crate::store::{n, Store};

/// A start at `t`: `lastStart = t`, `sessionsStarted += 1` in the month of `t`.
pub fn start_ops(store: &Store, user_id: &str, t: i64) -> Vec<TransactOp> {
    vec![TransactOp::Update {
        table: store.usage.clone(),
        key: usage_key(user_id, t),
        update: Update::new().set("lastStart", n(t)).add_n("sessionsStarted", "1"),
        cond: Cond::Always,
    }]
}

/// A run from `started` to `stopped`: the hours of each UTC month go to that month's
/// item; `lastStart` is cleared in the month of the stop.
pub fn run_ops(store: &Store, user_id: &str, started: i64, stopped: i64) -> Vec<TransactOp> {
    let parts = split_run_hours(started, stopped);
    let last = parts.len().saturating_sub(1);
    parts
        .iter()
        .enumerate()
        .filter_map(|(i, (month, hours))| {
            let text = jsnum::to_dynamo(*hours)?;
            let mut update = Update::new().add_n("hoursThisMonth", text);
            if i == last {
                update = update.remove("lastStart");
            }
            Some(TransactOp::Update {
                table: store.usage.clone(),
                key: format!("{user_id}#{month}"),
                update,
                cond: Cond::Always,
            })
        })
        .collect()
}
