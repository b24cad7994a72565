//! The typed DynamoDB store: every item of spec/DATA.md §1 over the [`Dynamo`] seam.
//!
//! Reads propagate errors (W47): only a missing item is `None`. Scans and queries read
//! every page (W44).

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::config::Config;
use crate::domain::model::{Instance, LicensePool, Reservation, ScheduledSession, Usage};
use crate::error::{Error, Result};
use crate::managers::dynamodb::{AttributeValue, Cond, Dynamo, Item, Query, RangeCond, Table, TransactOp, Update};

/// GSI of the sessions table by `userId`.
pub const SESSIONS_BY_USER: &str = "userId-index";
/// GSI of the reservations table by `licenseId` and `startTime`.
pub const RESERVATIONS_BY_LICENSE: &str = "licenseId-startTime-index";

/// The five tables of the function.
#[derive(Clone)]
pub struct Store {
    db: Arc<dyn Dynamo>,
    pub instances: Table,
    pub pools: Table,
    pub sessions: Table,
    pub reservations: Table,
    pub usage: Table,
}

/// A DynamoDB attribute value of anything serializable.
pub fn av<T: Serialize + ?Sized>(value: &T) -> Result<AttributeValue> {
    serde_dynamo::to_attribute_value(value).map_err(|e| Error::Data {
        what: "attribute",
        reason: e.to_string(),
    })
}

pub fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_string())
}

pub fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn decode<T: DeserializeOwned>(what: &'static str, item: Item) -> Result<T> {
    serde_dynamo::from_item(item).map_err(|e| Error::Data {
        what,
        reason: e.to_string(),
    })
}

fn decode_all<T: DeserializeOwned>(what: &'static str, items: Vec<Item>) -> Result<Vec<T>> {
    items.into_iter().map(|i| decode(what, i)).collect()
}

pub fn encode<T: Serialize>(what: &'static str, value: &T) -> Result<Item> {
    serde_dynamo::to_item(value).map_err(|e| Error::Data {
        what,
        reason: e.to_string(),
    })
}

impl Store {
    pub fn new(db: Arc<dyn Dynamo>, config: &Config) -> Self {
        Store {
            db,
            instances: Table::new(&config.instance_table, "userId"),
            pools: Table::new(&config.license_pool_table, "licenseId"),
            sessions: Table::new(&config.scheduled_sessions_table, "sessionId"),
            reservations: Table::new(&config.license_reservations_table, "reservationId"),
            usage: Table::new(&config.usage_table, "usageKey"),
        }
    }

    /// The raw seam, for transactions across tables.
    pub fn db(&self) -> &Arc<dyn Dynamo> {
        &self.db
    }

    pub async fn transact(&self, ops: Vec<TransactOp>) -> Result<()> {
        Ok(self.db.transact(ops).await?)
    }

    // ------------------------------------------------------------ instances

    pub async fn get_instance(&self, user_id: &str) -> Result<Option<Instance>> {
        self.get_instance_with(user_id, false).await
    }

    /// A strongly consistent read (after a conditional write of our own).
    pub async fn get_instance_consistent(&self, user_id: &str) -> Result<Option<Instance>> {
        self.get_instance_with(user_id, true).await
    }

    async fn get_instance_with(&self, user_id: &str, consistent: bool) -> Result<Option<Instance>> {
        match self.db.get(&self.instances, user_id, consistent).await? {
            Some(item) => Ok(Some(decode("instance", item)?)),
            None => Ok(None),
        }
    }

    pub async fn scan_instances(&self) -> Result<Vec<Instance>> {
        decode_all("instance", self.db.scan(&self.instances).await?)
    }

    pub async fn put_instance(&self, instance: &Instance, cond: Cond) -> Result<()> {
        let item = encode("instance", instance)?;
        Ok(self.db.put(&self.instances, item, cond).await?)
    }

    pub async fn update_instance(&self, user_id: &str, update: &Update, cond: Cond) -> Result<Instance> {
        decode(
            "instance",
            self.db.update(&self.instances, user_id, update, cond).await?,
        )
    }

    pub async fn delete_instance(&self, user_id: &str, cond: Cond) -> Result<()> {
        Ok(self.db.delete(&self.instances, user_id, cond).await?)
    }

    // ------------------------------------------------------------ license pools

    pub async fn get_pool(&self, license_id: &str) -> Result<Option<LicensePool>> {
        match self.db.get(&self.pools, license_id, false).await? {
            Some(item) => Ok(Some(decode("license pool", item)?)),
            None => Ok(None),
        }
    }

    pub async fn scan_pools(&self) -> Result<Vec<LicensePool>> {
        decode_all("license pool", self.db.scan(&self.pools).await?)
    }

    pub async fn put_pool(&self, pool: &LicensePool, cond: Cond) -> Result<()> {
        let item = encode("license pool", pool)?;
        Ok(self.db.put(&self.pools, item, cond).await?)
    }

    pub async fn update_pool(&self, license_id: &str, update: &Update, cond: Cond) -> Result<LicensePool> {
        decode(
            "license pool",
            self.db.update(&self.pools, license_id, update, cond).await?,
        )
    }

    // ------------------------------------------------------------ sessions

    pub async fn get_session(&self, session_id: &str) -> Result<Option<ScheduledSession>> {
        match self.db.get(&self.sessions, session_id, false).await? {
            Some(item) => Ok(Some(decode("scheduled session", item)?)),
            None => Ok(None),
        }
    }

    /// Every session of `user_id` (GSI `userId-index`, all pages).
    pub async fn sessions_of_user(&self, user_id: &str) -> Result<Vec<ScheduledSession>> {
        let q = Query {
            index: Some(SESSIONS_BY_USER.to_string()),
            hash_attr: "userId".to_string(),
            hash_value: s(user_id),
            range: None,
        };
        decode_all("scheduled session", self.db.query(&self.sessions, &q).await?)
    }

    pub async fn scan_sessions(&self) -> Result<Vec<ScheduledSession>> {
        decode_all("scheduled session", self.db.scan(&self.sessions).await?)
    }

    pub async fn put_session(&self, session: &ScheduledSession, cond: Cond) -> Result<()> {
        let item = encode("scheduled session", session)?;
        Ok(self.db.put(&self.sessions, item, cond).await?)
    }

    pub async fn update_session(&self, session_id: &str, update: &Update, cond: Cond) -> Result<ScheduledSession> {
        decode(
            "scheduled session",
            self.db.update(&self.sessions, session_id, update, cond).await?,
        )
    }

    // ------------------------------------------------------------ reservations

    /// Reservations of `license_id` whose `startTime` lies in `[from, to]`.
    pub async fn reservations_of_license(&self, license_id: &str, from: i64, to: i64) -> Result<Vec<Reservation>> {
        let q = Query {
            index: Some(RESERVATIONS_BY_LICENSE.to_string()),
            hash_attr: "licenseId".to_string(),
            hash_value: s(license_id),
            range: Some(("startTime".to_string(), RangeCond::Between(n(from), n(to)))),
        };
        decode_all("license reservation", self.db.query(&self.reservations, &q).await?)
    }

    pub async fn scan_reservations(&self) -> Result<Vec<Reservation>> {
        decode_all("license reservation", self.db.scan(&self.reservations).await?)
    }

    pub async fn put_reservation(&self, reservation: &Reservation, cond: Cond) -> Result<()> {
        let item = encode("license reservation", reservation)?;
        Ok(self.db.put(&self.reservations, item, cond).await?)
    }

    pub async fn update_reservation(&self, reservation_id: &str, update: &Update, cond: Cond) -> Result<Reservation> {
        decode(
            "license reservation",
            self.db.update(&self.reservations, reservation_id, update, cond).await?,
        )
    }

    // ------------------------------------------------------------ usage

    pub async fn get_usage(&self, usage_key: &str) -> Result<Option<Usage>> {
        match self.db.get(&self.usage, usage_key, false).await? {
            Some(item) => Ok(Some(decode("usage", item)?)),
            None => Ok(None),
        }
    }

    pub async fn scan_usage(&self) -> Result<Vec<Usage>> {
        decode_all("usage", self.db.scan(&self.usage).await?)
    }

    pub async fn update_usage(&self, usage_key: &str, update: &Update) -> Result<Usage> {
        decode(
            "usage",
            self.db.update(&self.usage, usage_key, update, Cond::Always).await?,
        )
    }
}
