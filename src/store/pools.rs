//! The license-pool table: one item per shared BYOL license (`byol-<ownerId>`).

use crate::domain::model::LicensePool;
use crate::error::Result;
use crate::managers::dynamodb::{AttributeValue, Cond, TransactOp, Update};

use super::{decode, decode_all, encode, num, written, Db, Tables};

pub(super) const KEY: &str = "licenseId";

mod attr {
    pub const LICENSE_ID: &str = "licenseId";
    pub const OWNER_USERNAME: &str = "ownerUsername";
    pub const MAX_CONCURRENT_USERS: &str = "maxConcurrentUsers";
    pub const IS_ACTIVE: &str = "isActive";
    pub const UPDATED_AT: &str = "updatedAt";
}

/// A license-pool entry written or refreshed when an owner shares a license.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolEntry {
    pub license_id: String,
    pub owner_id: String,
    pub owner_username: String,
    pub max_concurrent_users: i64,
}

/// The license-pool table.
#[derive(Clone)]
pub struct Pools {
    db: Db,
}

impl Pools {
    pub(super) fn new(db: Db) -> Self {
        Pools { db }
    }

    /// The pool entry of `license_id`.
    pub async fn get(&self, license_id: &str) -> Result<Option<LicensePool>> {
        match self.db.dynamo.get(&self.db.tables.pools, license_id, true).await? {
            Some(item) => Ok(Some(decode("license pool", item)?)),
            None => Ok(None),
        }
    }

    /// Every entry whose license is offered to the pool, every page.
    pub async fn active(&self) -> Result<Vec<LicensePool>> {
        let all: Vec<LicensePool> = decode_all("license pool", KEY, self.db.dynamo.scan(&self.db.tables.pools).await?);
        Ok(all.into_iter().filter(LicensePool::active).collect())
    }

    /// Sets an existing, active entry inactive → whether there was one. Never creates an
    /// item (an unconditional update would leave a stub entry behind).
    pub async fn deactivate(&self, license_id: &str, now: i64) -> Result<bool> {
        self.set_active(license_id, false, now).await
    }

    /// Offers an existing, inactive entry again → whether there was one.
    pub async fn reactivate(&self, license_id: &str, now: i64) -> Result<bool> {
        self.set_active(license_id, true, now).await
    }

    async fn set_active(&self, license_id: &str, active: bool, now: i64) -> Result<bool> {
        let update = Update::new()
            .set_bool(attr::IS_ACTIVE, active)
            .set(attr::UPDATED_AT, num(now));
        let cond = Cond::And(vec![
            Cond::exists(attr::LICENSE_ID),
            Cond::Ne(attr::IS_ACTIVE.into(), AttributeValue::Bool(active)),
        ]);
        let r = self
            .db
            .dynamo
            .update(&self.db.tables.pools, license_id, &update, cond)
            .await;
        Ok(written(r)?.is_some())
    }

    /// Offers an owner's license: refreshes its entry, or adds one.
    pub async fn join(&self, entry: &PoolEntry, now: i64) -> Result<()> {
        let op = join_op(&self.db, &self.db.tables, entry, now).await?;
        Ok(self.db.dynamo.transact(vec![op]).await?)
    }
}

/// The write that offers an owner's license: refreshes its entry, or adds one.
pub(super) async fn join_op(db: &Db, tables: &Tables, entry: &PoolEntry, now: i64) -> Result<TransactOp> {
    let exists = db.dynamo.get(&tables.pools, &entry.license_id, true).await?.is_some();
    Ok(if exists {
        TransactOp::Update {
            table: tables.pools.clone(),
            key: entry.license_id.clone(),
            update: Update::new()
                .set_s(attr::OWNER_USERNAME, entry.owner_username.as_str())
                .set(attr::MAX_CONCURRENT_USERS, num(entry.max_concurrent_users))
                .set_bool(attr::IS_ACTIVE, true)
                .set(attr::UPDATED_AT, num(now)),
            cond: Cond::exists(KEY),
        }
    } else {
        let pool = LicensePool {
            license_id: entry.license_id.clone(),
            owner_id: Some(entry.owner_id.clone()),
            owner_username: Some(entry.owner_username.clone()),
            max_concurrent_users: Some(entry.max_concurrent_users),
            is_active: Some(true),
            created_at: Some(now),
            updated_at: Some(now),
        };
        TransactOp::Put {
            table: tables.pools.clone(),
            item: encode("license pool", &pool)?,
            cond: Cond::not_exists(KEY),
        }
    })
}
