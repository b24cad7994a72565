//! The usage table: one item per user and UTC month (`<userId>#<YYYY-MM>`).
//!
//! Every transition out of a run books its hours, split at UTC month boundaries. The
//! writes are transaction operations, so that a lifecycle transition and its usage record
//! commit together or not at all.

use crate::domain::jsnum;
use crate::domain::model::Usage;
use crate::domain::usage::{split_run_hours, usage_key};
use crate::error::Result;
use crate::managers::dynamodb::{Cond, Table, TransactOp, Update};

use serde::Serialize;
use serde_with::skip_serializing_none;

use super::{decode, decode_all, encode, num, text, written, Db};

pub(super) const KEY: &str = "usageKey";

mod attr {
    pub const USAGE_KEY: &str = "usageKey";
    pub const DONATIONS_THIS_MONTH: &str = "donationsThisMonth";
    pub const LAST_DONATION: &str = "lastDonation";
    pub const LAST_DONOR_NAME: &str = "lastDonorName";
    pub const LAST_START: &str = "lastStart";
    pub const SESSIONS_STARTED: &str = "sessionsStarted";
    pub const HOURS_THIS_MONTH: &str = "hoursThisMonth";
}

/// The usage table.
#[derive(Clone)]
pub struct UsageBook {
    db: Db,
}

impl UsageBook {
    pub(super) fn new(db: Db) -> Self {
        UsageBook { db }
    }

    /// The usage of `user_id` in the UTC month containing `t`.
    pub async fn month_of(&self, user_id: &str, t: i64) -> Result<Option<Usage>> {
        match self
            .db
            .dynamo
            .get(&self.db.tables.usage, &usage_key(user_id, t), false)
            .await?
        {
            Some(item) => Ok(Some(decode("usage", item)?)),
            None => Ok(None),
        }
    }

    /// Records a Ko-fi payment once per Ko-fi message, and credits it to the donor's month
    /// in the same transaction → whether it was new (false: Ko-fi sent it again).
    pub async fn record_payment(&self, payment: &Payment, credit: Option<&Credit>, now: i64) -> Result<bool> {
        let table = &self.db.tables.usage;
        let mut item = encode("Ko-fi payment", payment)?;
        item.insert(
            attr::USAGE_KEY.to_string(),
            text(&format!("kofi#{}", payment.message_id)),
        );
        let mut ops = vec![TransactOp::Put {
            table: table.clone(),
            item,
            cond: Cond::not_exists(attr::USAGE_KEY),
        }];
        if let Some(c) = credit {
            ops.push(TransactOp::Update {
                table: table.clone(),
                key: usage_key(&c.user_id, now),
                update: Update::new()
                    .add_n(attr::DONATIONS_THIS_MONTH, c.amount.to_string())
                    .set(attr::LAST_DONATION, num(now))
                    .set_s(attr::LAST_DONOR_NAME, c.donor.as_str()),
                cond: Cond::Always,
            });
        }
        Ok(written(self.db.dynamo.transact(ops).await)?.is_some())
    }

    /// Every usage item, every page.
    pub async fn all(&self) -> Result<Vec<Usage>> {
        Ok(decode_all(
            "usage",
            KEY,
            self.db.dynamo.scan(&self.db.tables.usage).await?,
        ))
    }
}

/// A Ko-fi payment as it is recorded (`usageKey = kofi#<message_id>`), whether or not it
/// was credited.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Payment {
    pub message_id: String,
    pub kind: String,
    /// The amount as Ko-fi sent it, normalized (`3.00` → `3`).
    pub amount: String,
    pub currency: String,
    pub discord_id: Option<String>,
    pub credited: bool,
    pub received_at: i64,
}

/// A payment credited to a user's month.
#[derive(Debug, Clone, PartialEq)]
pub struct Credit {
    pub user_id: String,
    pub amount: crate::domain::money::Decimal,
    pub donor: String,
}

/// A start at `t`: `lastStart = t`, `sessionsStarted += 1` in the month of `t`.
pub(super) fn start_op(table: &Table, user_id: &str, t: i64) -> TransactOp {
    TransactOp::Update {
        table: table.clone(),
        key: usage_key(user_id, t),
        update: Update::new()
            .set(attr::LAST_START, num(t))
            .add_n(attr::SESSIONS_STARTED, "1"),
        cond: Cond::Always,
    }
}

/// A run from `started` to `stopped`: the hours of each UTC month go to that month's
/// item; `lastStart` is cleared in the month of the stop.
pub(super) fn run_ops(table: &Table, user_id: &str, started: i64, stopped: i64) -> Vec<TransactOp> {
    let parts = split_run_hours(started, stopped);
    let last = parts.len().saturating_sub(1);
    parts
        .iter()
        .enumerate()
        .filter_map(|(i, (month, hours))| {
            let text = jsnum::to_dynamo(*hours)?;
            let mut update = Update::new().add_n(attr::HOURS_THIS_MONTH, text);
            if i == last {
                update = update.remove(attr::LAST_START);
            }
            Some(TransactOp::Update {
                table: table.clone(),
                key: format!("{user_id}#{month}"),
                update,
                cond: Cond::Always,
            })
        })
        .collect()
}
