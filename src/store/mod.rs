//! The record store: one module per DynamoDB table, each owning its schema.
//!
//! Every attribute name, condition, update and transaction lives here; actions call verbs
//! in the domain's words (`instances.begin_start(user, &lease, …)`). The expression types
//! of [`crate::managers::dynamodb`] are seen only by this module and by the DynamoDB
//! adapter.
//!
//! Reads propagate errors: only a missing item is `None`. Scans and queries read every
//! page.

mod claims;
pub mod credentials;
mod instances;
pub mod outbox;
mod pools;
mod reservations;
mod sessions;
mod usage;

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use claims::{Claims, RunClaim};
pub use instances::{
    has_run, run_deadline, run_shard, BackupLaunched, BackupSettled, BeginStart, CreateDone, DestroyTaken, Instances,
    Lease, ProbeNote, Progress, Run, RunEnd, SessionRun, SharingState, BY_RUN_DEADLINE, RESTORE_STEP_BACKUP,
    RESTORE_STEP_RESTORE, RUN_SHARDS,
};
pub use outbox::{Outbox, Pending};
pub use pools::{PoolEntry, Pools};
pub use reservations::Reservations;
pub use sessions::{LedgerRead, Sessions};
pub use usage::{Credit, Payment, UsageBook};

use crate::config::Config;
use crate::error::{AwsError, Error, Result};
use crate::managers::dynamodb::{AttributeValue, Dynamo, Item, Table};

/// The tables of the function.
#[derive(Clone)]
pub struct Store {
    pub instances: Instances,
    pub claims: Claims,
    pub pools: Pools,
    pub sessions: Sessions,
    pub reservations: Reservations,
    pub usage: UsageBook,
    /// The outbox of notifications.
    pub outbox: Outbox,
}

impl Store {
    pub fn new(dynamo: Arc<dyn Dynamo>, config: &Config) -> Self {
        let tables = Arc::new(Tables {
            instances: Table::new(&config.instance_table, instances::KEY),
            pools: Table::new(&config.license_pool_table, pools::KEY),
            sessions: Table::new(&config.scheduled_sessions_table, sessions::KEY),
            reservations: Table::new(&config.license_reservations_table, reservations::KEY),
            usage: Table::new(&config.usage_table, usage::KEY),
            outbox: Table::new(&config.notification_table, outbox::KEY),
        });
        let db = Db { dynamo, tables };
        Store {
            instances: Instances::new(db.clone()),
            claims: Claims::new(db.clone()),
            pools: Pools::new(db.clone()),
            sessions: Sessions::new(db.clone()),
            reservations: Reservations::new(db.clone()),
            usage: UsageBook::new(db.clone()),
            outbox: Outbox::new(db),
        }
    }
}

/// The names and keys of the tables.
#[derive(Debug)]
struct Tables {
    instances: Table,
    pools: Table,
    sessions: Table,
    reservations: Table,
    usage: Table,
    outbox: Table,
}

/// What every table module holds: the DynamoDB seam and the table names (for
/// transactions that span tables).
#[derive(Clone)]
struct Db {
    dynamo: Arc<dyn Dynamo>,
    tables: Arc<Tables>,
}

/// A string attribute.
fn text(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_string())
}

/// A whole-number attribute.
fn num(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// An item of type `T`, decoded from DynamoDB's form.
fn decode<T: DeserializeOwned>(what: &'static str, item: Item) -> Result<T> {
    serde_dynamo::from_item(item).map_err(|e| Error::Data {
        what,
        reason: e.to_string(),
    })
}

/// The items of a list read that can be understood. One that cannot (no reading of its
/// attributes makes sense) is skipped with a warning naming its key: a single odd item
/// must never fail a whole list.
fn decode_all<T: DeserializeOwned>(what: &'static str, key: &str, items: Vec<Item>) -> Vec<T> {
    items
        .into_iter()
        .filter_map(|item| {
            let id = match item.get(key) {
                Some(AttributeValue::S(id)) => id.clone(),
                _ => "(no key)".to_string(),
            };
            match decode(what, item) {
                Ok(v) => Some(v),
                Err(e) => {
                    tracing::warn!(item = %id, error = %e, "skipping an unreadable {what} item");
                    None
                }
            }
        })
        .collect()
}

/// `value` in DynamoDB's item form.
fn encode<T: Serialize>(what: &'static str, value: &T) -> Result<Item> {
    serde_dynamo::to_item(value).map_err(|e| Error::Data {
        what,
        reason: e.to_string(),
    })
}

/// The outcome of a conditional write: `Ok(true)` when it was made, `Ok(false)` when its
/// condition did not hold (someone else got there first), an error otherwise.
fn written<T>(result: std::result::Result<T, AwsError>) -> Result<Option<T>> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_condition_failed() => Ok(None),
        Err(e) => Err(e.into()),
    }
}
