//! Claims: items that give one thing to exactly one holder, by a conditional write. They
//! live in the reservations table beside the licenses' ledgers (keys with a `#`, which
//! no reservation id has, so that no reading of reservations ever sees them).
//!
//! * `license-run#<licenseId>`: the run that uses a license now (`runner`, the user;
//!   `attemptId`, the start that began it). It is written in the same transaction that
//!   moves the runner's instance to `starting`, so that of two runs on one license only
//!   one ever begins, whichever path begins them. It is released when the run ends. A
//!   claim whose runner's record no longer holds that run (released by a crash, say) is
//!   stale, and taken over with a condition on the exact claim that was read.
//! * `subdomain#<name>`: the user whose instance has `<name>.<DOMAIN>` (`owner`). It is
//!   put when `create` claims the name and deleted with the instance's record.

use crate::error::Result;
use crate::managers::dynamodb::{AttributeValue, Cond, Item, TransactOp};

use super::{num, text, written, Db};

mod attr {
    pub const KEY: &str = "reservationId";
    pub const RUNNER: &str = "runner";
    pub const ATTEMPT_ID: &str = "attemptId";
    pub const OWNER: &str = "owner";
    pub const SINCE: &str = "since";
}

fn run_key(license_id: &str) -> String {
    format!("license-run#{license_id}")
}

fn subdomain_key(name: &str) -> String {
    format!("subdomain#{name}")
}

fn string(item: &Item, name: &str) -> Option<String> {
    match item.get(name) {
        Some(AttributeValue::S(s)) => Some(s.clone()),
        _ => None,
    }
}

/// The run that holds a license.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunClaim {
    pub license_id: String,
    /// The user whose run uses the license.
    pub runner: String,
    /// The start that began that run (the runner's record names it while the run lives).
    pub attempt_id: String,
}

/// The claims.
#[derive(Clone)]
pub struct Claims {
    db: Db,
}

impl Claims {
    pub(super) fn new(db: Db) -> Self {
        Claims { db }
    }

    // ------------------------------------------------------------------ license runs

    /// The claim on `license_id`, read after every write that has completed.
    pub async fn license_run(&self, license_id: &str) -> Result<Option<RunClaim>> {
        let item = self
            .db
            .dynamo
            .get(&self.db.tables.reservations, &run_key(license_id), true)
            .await?;
        Ok(item.map(|item| RunClaim {
            license_id: license_id.to_string(),
            runner: string(&item, attr::RUNNER).unwrap_or_default(),
            attempt_id: string(&item, attr::ATTEMPT_ID).unwrap_or_default(),
        }))
    }

    /// The write that gives `license_id` to the run `attempt_id` of `user_id`: only if no
    /// run holds it, or the user's own does, or (`over`) exactly the stale claim read.
    pub(super) fn take_run_op(
        &self,
        license_id: &str,
        user_id: &str,
        attempt_id: &str,
        now: i64,
        over: Option<&RunClaim>,
    ) -> TransactOp {
        let mut item = Item::new();
        item.insert(attr::KEY.into(), text(&run_key(license_id)));
        item.insert(attr::RUNNER.into(), text(user_id));
        item.insert(attr::ATTEMPT_ID.into(), text(attempt_id));
        item.insert(attr::SINCE.into(), num(now));
        let cond = match over {
            None => Cond::Or(vec![Cond::not_exists(attr::KEY), Cond::eq_s(attr::RUNNER, user_id)]),
            Some(stale) => Cond::And(vec![
                Cond::eq_s(attr::RUNNER, &stale.runner),
                Cond::eq_s(attr::ATTEMPT_ID, &stale.attempt_id),
            ]),
        };
        TransactOp::Put {
            table: self.db.tables.reservations.clone(),
            item,
            cond,
        }
    }

    /// Lets go of `license_id` if the run `attempt_id` of `user_id` still holds it. Best
    /// effort: a claim left behind is stale (its runner's record no longer names the run),
    /// and the next run on the license takes it over.
    pub async fn release_run(&self, license_id: &str, user_id: &str, attempt_id: &str) {
        let cond = Cond::And(vec![
            Cond::eq_s(attr::RUNNER, user_id),
            Cond::eq_s(attr::ATTEMPT_ID, attempt_id),
        ]);
        let r = self
            .db
            .dynamo
            .delete(&self.db.tables.reservations, &run_key(license_id), cond)
            .await;
        match r {
            Ok(()) => {}
            Err(e) if e.is_condition_failed() || e.is_not_found() => {}
            Err(e) => {
                tracing::warn!(error = %e, license = license_id, "could not release the license's run claim; the next run takes it over")
            }
        }
    }

    // ------------------------------------------------------------------ subdomains

    /// Claims the subdomain `name` for `user_id` → `None` when it is now the user's (or
    /// already was), or the user who holds it.
    pub async fn claim_subdomain(&self, name: &str, user_id: &str, now: i64) -> Result<Option<String>> {
        let mut item = Item::new();
        item.insert(attr::KEY.into(), text(&subdomain_key(name)));
        item.insert(attr::OWNER.into(), text(user_id));
        item.insert(attr::SINCE.into(), num(now));
        let cond = Cond::Or(vec![Cond::not_exists(attr::KEY), Cond::eq_s(attr::OWNER, user_id)]);
        let put = self.db.dynamo.put(&self.db.tables.reservations, item, cond).await;
        if written(put)?.is_some() {
            return Ok(None);
        }
        Ok(Some(self.subdomain_owner(name).await?.unwrap_or_default()))
    }

    /// The user who holds the subdomain `name`, read after every write that has completed.
    pub async fn subdomain_owner(&self, name: &str) -> Result<Option<String>> {
        Ok(self
            .db
            .dynamo
            .get(&self.db.tables.reservations, &subdomain_key(name), true)
            .await?
            .and_then(|item| string(&item, attr::OWNER)))
    }

    /// Takes the subdomain `name` over from `holder` (whose instance no longer exists) →
    /// whether it is now `user_id`'s.
    pub async fn take_over_subdomain(&self, name: &str, user_id: &str, holder: &str, now: i64) -> Result<bool> {
        let mut item = Item::new();
        item.insert(attr::KEY.into(), text(&subdomain_key(name)));
        item.insert(attr::OWNER.into(), text(user_id));
        item.insert(attr::SINCE.into(), num(now));
        let put = self
            .db
            .dynamo
            .put(&self.db.tables.reservations, item, Cond::eq_s(attr::OWNER, holder))
            .await;
        Ok(written(put)?.is_some())
    }

    /// The delete of `user_id`'s claim on `name`, for the transaction that deletes the
    /// user's record (a record the original made has no claim: nothing to delete).
    pub(super) fn release_subdomain_op(&self, name: &str, user_id: &str) -> TransactOp {
        TransactOp::Delete {
            table: self.db.tables.reservations.clone(),
            key: subdomain_key(name),
            cond: Cond::Or(vec![Cond::not_exists(attr::KEY), Cond::eq_s(attr::OWNER, user_id)]),
        }
    }
}
