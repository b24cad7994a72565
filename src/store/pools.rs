//! The license-pool table: one item per shared BYOL license (`byol-<ownerId>`).

use crate::domain::model::LicensePool;
use crate::error::Result;
use crate::managers::dynamodb::{Cond, Update};

use super::{decode, num, written, Db};

pub(super) const KEY: &str = "licenseId";

mod attr {
    pub const LICENSE_ID: &str = "licenseId";
    pub const IS_ACTIVE: &str = "isActive";
    pub const UPDATED_AT: &str = "updatedAt";
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
        match self.db.dynamo.get(&self.db.tables.pools, license_id, false).await? {
            Some(item) => Ok(Some(decode("license pool", item)?)),
            None => Ok(None),
        }
    }

    /// Sets an existing, active entry inactive → whether there was one. Never creates an
    /// item (an unconditional update would leave a stub entry behind).
    pub async fn deactivate(&self, license_id: &str, now: i64) -> Result<bool> {
        let update = Update::new()
            .set_bool(attr::IS_ACTIVE, false)
            .set(attr::UPDATED_AT, num(now));
        let cond = Cond::And(vec![
            Cond::exists(attr::LICENSE_ID),
            Cond::Eq(
                attr::IS_ACTIVE.into(),
                crate::managers::dynamodb::AttributeValue::Bool(true),
            ),
        ]);
        let r = self
            .db
            .dynamo
            .update(&self.db.tables.pools, license_id, &update, cond)
            .await;
        Ok(written(r)?.is_some())
    }
}
