//! The scheduled-sessions table.

use crate::domain::model::{ScheduledSession, SessionStatus};
use crate::error::Result;
use crate::managers::dynamodb::{Cond, Query, RangeCond, Update};

use super::{decode_all, num, text, written, Db};

pub(super) const KEY: &str = "sessionId";

/// GSI of the sessions table by `userId`.
pub const BY_USER: &str = "userId-index";
/// GSI of the sessions table by `licenseId` and `startTime`.
pub const BY_LICENSE: &str = "licenseId-startTime-index";

mod attr {
    pub const SESSION_ID: &str = "sessionId";
    pub const USER_ID: &str = "userId";
    pub const LICENSE_ID: &str = "licenseId";
    pub const START_TIME: &str = "startTime";
    pub const STATUS: &str = "status";
    pub const UPDATED_AT: &str = "updatedAt";
}

/// The scheduled-sessions table.
#[derive(Clone)]
pub struct Sessions {
    db: Db,
}

impl Sessions {
    pub(super) fn new(db: Db) -> Self {
        Sessions { db }
    }

    /// Every session of `user_id`, every page.
    pub async fn of_user(&self, user_id: &str) -> Result<Vec<ScheduledSession>> {
        let q = Query {
            index: Some(BY_USER.to_string()),
            hash_attr: attr::USER_ID.to_string(),
            hash_value: text(user_id),
            range: None,
        };
        Ok(decode_all(
            "scheduled session",
            KEY,
            self.db.dynamo.query(&self.db.tables.sessions, &q).await?,
        ))
    }

    /// The sessions booked on `license_id` that start in `[from, to]`.
    pub async fn on_license(&self, license_id: &str, from: i64, to: i64) -> Result<Vec<ScheduledSession>> {
        let q = Query {
            index: Some(BY_LICENSE.to_string()),
            hash_attr: attr::LICENSE_ID.to_string(),
            hash_value: text(license_id),
            range: Some((attr::START_TIME.to_string(), RangeCond::Between(num(from), num(to)))),
        };
        Ok(decode_all(
            "scheduled session",
            KEY,
            self.db.dynamo.query(&self.db.tables.sessions, &q).await?,
        ))
    }

    /// Marks a session cancelled → whether it still existed.
    pub async fn cancel(&self, session_id: &str, now: i64) -> Result<bool> {
        let update = Update::new()
            .set_s(attr::STATUS, SessionStatus::Cancelled.as_str())
            .set(attr::UPDATED_AT, num(now));
        let r = self
            .db
            .dynamo
            .update(
                &self.db.tables.sessions,
                session_id,
                &update,
                Cond::exists(attr::SESSION_ID),
            )
            .await;
        Ok(written(r)?.is_some())
    }
}
