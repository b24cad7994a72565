//! The outbox of notifications: one item per notification, keyed by its id (derived from
//! its cause), written by a conditional put before anything is sent. A second invocation
//! for the same cause finds the item and sends nothing.
//!
//! While an item waits to be sent it carries `pendingShard` (0..[`PENDING_SHARDS`]) and
//! `nextAttemptAt`, the keys of the sparse index [`BY_PENDING`]: the sweeps query that
//! index for what is due, and never scan. Sending (or dropping) removes `pendingShard`, so
//! the index holds only what is pending. Every item expires (`expiresAt`, the table's TTL
//! attribute) a week after it was made.
//!
//! Whoever sends an attempt owns it: the put that records a notification owns its first
//! attempt, and [`Outbox::claim`] (a conditional update that moves `nextAttemptAt` on by the
//! backoff) owns each later one, so two sweeps never send the same item at once.

use crate::domain::notify::Notice;
use crate::error::{Error, Result};
use crate::managers::dynamodb::{Cond, Query, RangeCond, Update};

use super::{decode, decode_all, encode, num, text, written, Db};

/// The partition key of the outbox table.
pub const KEY: &str = "notificationId";

/// The sparse index of pending notifications: `pendingShard` (number) and `nextAttemptAt`.
pub const BY_PENDING: &str = "pendingShard-nextAttemptAt-index";

/// How many partitions the index of pending notifications is spread over.
pub const PENDING_SHARDS: u32 = 4;

/// How long an item stays in the table after it was made (the TTL), in seconds.
pub const KEEP_SECONDS: i64 = 7 * 86_400;

mod attr {
    pub const ID: &str = "notificationId";
    pub const PENDING_SHARD: &str = "pendingShard";
    pub const NEXT_ATTEMPT_AT: &str = "nextAttemptAt";
    pub const ATTEMPTS: &str = "attempts";
    pub const SENT_AT: &str = "sentAt";
    pub const VIA: &str = "via";
    pub const DROPPED_AT: &str = "droppedAt";
    pub const LAST_ERROR: &str = "lastError";
}

/// One outbox item.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pending {
    pub notification_id: String,
    pub user_id: String,
    pub kind: String,
    /// The notice itself, as JSON text.
    pub message: String,
    pub created_at: i64,
    pub attempts: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_shard: Option<i64>,
    pub next_attempt_at: i64,
    pub expires_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropped_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl Pending {
    /// The notice it holds.
    pub fn notice(&self) -> Result<Notice> {
        serde_json::from_str(&self.message).map_err(|e| Error::Data {
            what: "notification",
            reason: e.to_string(),
        })
    }
}

/// The shard of notification `id` in [`BY_PENDING`] (FNV-1a, stable across processes).
pub fn pending_shard(id: &str) -> u32 {
    let hash = id
        .bytes()
        .fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    hash % PENDING_SHARDS
}

/// The outbox table.
#[derive(Clone)]
pub struct Outbox {
    db: Db,
}

impl Outbox {
    pub(super) fn new(db: Db) -> Self {
        Outbox { db }
    }

    fn table(&self) -> &crate::managers::dynamodb::Table {
        &self.db.tables.outbox
    }

    /// Records `notice` as pending, unless a notification with its id was ever recorded
    /// (conditional put) → the item when this call recorded it, `None` when it was there
    /// already. With `attempts` 1 the caller owns the first attempt until `retry_at`; with 0
    /// the item is left to the next sweep (`retry_at`: now).
    pub async fn record(&self, notice: &Notice, now: i64, retry_at: i64, attempts: i64) -> Result<Option<Pending>> {
        let message = serde_json::to_string(notice).map_err(|e| Error::Data {
            what: "notification",
            reason: e.to_string(),
        })?;
        let item = Pending {
            notification_id: notice.id.clone(),
            user_id: notice.user_id.clone(),
            kind: notice.kind.clone(),
            message,
            created_at: now,
            attempts,
            pending_shard: Some(i64::from(pending_shard(&notice.id))),
            next_attempt_at: retry_at,
            expires_at: now + KEEP_SECONDS,
            sent_at: None,
            via: None,
            dropped_at: None,
            last_error: None,
        };
        let put = self
            .db
            .dynamo
            .put(self.table(), encode("notification", &item)?, Cond::not_exists(attr::ID))
            .await;
        Ok(written(put)?.map(|()| item))
    }

    /// Takes the next attempt of a pending item that is due at `now`: one more attempt, and
    /// the one after not before `retry_at` → the item, or `None` when it is not pending or
    /// not due (sent, dropped, or another invocation took this attempt).
    pub async fn claim(&self, id: &str, now: i64, retry_at: i64) -> Result<Option<Pending>> {
        let update = Update::new()
            .add_n(attr::ATTEMPTS, "1")
            .set(attr::NEXT_ATTEMPT_AT, num(retry_at));
        let cond = Cond::And(vec![
            Cond::exists(attr::PENDING_SHARD),
            Cond::Lt(attr::NEXT_ATTEMPT_AT.to_string(), num(now + 1)),
        ]);
        match written(self.db.dynamo.update(self.table(), id, &update, cond).await)? {
            Some(item) => Ok(Some(decode("notification", item)?)),
            None => Ok(None),
        }
    }

    /// UpdateItem of `id` under `cond` (a failed condition is no error: the item moved on).
    async fn update_if(&self, id: &str, update: &Update, cond: Cond) -> Result<()> {
        written(self.db.dynamo.update(self.table(), id, update, cond).await)?;
        Ok(())
    }

    /// Marks a pending item sent (`via`: `dm` or `webhook`) and takes it out of the index.
    pub async fn sent(&self, id: &str, now: i64, via: &str) -> Result<()> {
        let update = Update::new()
            .set(attr::SENT_AT, num(now))
            .set(attr::VIA, text(via))
            .remove(attr::PENDING_SHARD)
            .remove(attr::LAST_ERROR);
        self.update_if(id, &update, Cond::exists(attr::ID)).await
    }

    /// Gives up on a pending item (too old, or refused for good), and says why.
    pub async fn dropped(&self, id: &str, now: i64, why: &str) -> Result<()> {
        let update = Update::new()
            .set(attr::DROPPED_AT, num(now))
            .set(attr::LAST_ERROR, text(why))
            .remove(attr::PENDING_SHARD);
        self.update_if(id, &update, Cond::exists(attr::ID)).await
    }

    /// Leaves a pending item for later: not before `retry_at` (when Discord asked for a
    /// longer wait than the backoff), and why this attempt failed.
    pub async fn deferred(&self, id: &str, retry_at: Option<i64>, why: &str) -> Result<()> {
        let mut update = Update::new().set(attr::LAST_ERROR, text(why));
        if let Some(at) = retry_at {
            update = update.set(attr::NEXT_ATTEMPT_AT, num(at));
        }
        self.update_if(id, &update, Cond::exists(attr::PENDING_SHARD)).await
    }

    /// The pending items due at `now`, oldest attempt first: one Query per shard of the
    /// sparse index (never a scan).
    pub async fn due(&self, now: i64) -> Result<Vec<Pending>> {
        let shards = (0..PENDING_SHARDS).map(|shard| {
            let q = Query {
                index: Some(BY_PENDING.to_string()),
                hash_attr: attr::PENDING_SHARD.to_string(),
                hash_value: num(i64::from(shard)),
                range: Some((attr::NEXT_ATTEMPT_AT.to_string(), RangeCond::Lt(num(now + 1)))),
            };
            async move { self.db.dynamo.query(self.table(), &q).await }
        });
        let pages = futures_util::future::try_join_all(shards).await?;
        let mut items: Vec<Pending> = decode_all("notification", KEY, pages.into_iter().flatten().collect());
        items.sort_by_key(|p| p.next_attempt_at);
        Ok(items)
    }
}
