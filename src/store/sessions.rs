//! The scheduled-sessions table, and the bookings of licenses.
//!
//! A session is booked together with its reservation and the license's **ledger** (an
//! item of the reservations table, `reservationId = license#<licenseId>`, holding every
//! booking of the license and a version). The ledger is written with a condition on the
//! version it was read at, so that of any number of concurrent bookings of overlapping
//! windows on one license exactly one succeeds. Every later move of a session (cancel,
//! complete) releases its booking in the same transaction.

use crate::domain::model::{Ledger, Reservation, ReservationStatus, ScheduledSession, SessionStatus};
use crate::domain::schedule::{holds_license, may_move, without_booking};
use crate::error::{Error, Result};
use crate::managers::dynamodb::{AttributeValue, Cond, Item, Query, RangeCond, TransactOp, Update};

use super::{decode, decode_all, encode, num, text, written, Db};

pub(super) const KEY: &str = "sessionId";

/// GSI of the sessions table by `userId`.
pub const BY_USER: &str = "userId-index";
/// GSI of the sessions table by `licenseId` and `startTime`.
pub const BY_LICENSE: &str = "licenseId-startTime-index";
/// GSI of the sessions table by `status` and `startTime`.
pub const BY_STATUS: &str = "status-startTime-index";

mod attr {
    pub const SESSION_ID: &str = "sessionId";
    pub const USER_ID: &str = "userId";
    pub const LICENSE_ID: &str = "licenseId";
    pub const START_TIME: &str = "startTime";
    pub const STATUS: &str = "status";
    pub const UPDATED_AT: &str = "updatedAt";
    pub const INSTANCE_ID: &str = "instanceId";
    pub const CANCEL_REASON: &str = "cancelReason";
    pub const VERSION: &str = "version";
}

/// How often a release is retried when the license's ledger changed under it.
const LEDGER_ATTEMPTS: usize = 8;

/// The key of a license's ledger in the reservations table.
fn ledger_key(license_id: &str) -> String {
    format!("license#{license_id}")
}

/// A license's ledger as read, and whether it exists yet (a license booked only by the
/// original has none until its first booking here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerRead {
    pub ledger: Ledger,
    pub stored: bool,
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

    fn query(&self, index: &str, hash_attr: &str, hash: AttributeValue, range: Option<RangeCond>) -> Query {
        Query {
            index: Some(index.to_string()),
            hash_attr: hash_attr.to_string(),
            hash_value: hash,
            range: range.map(|r| (attr::START_TIME.to_string(), r)),
        }
    }

    async fn run(&self, q: Query) -> Result<Vec<ScheduledSession>> {
        let items = self.db.dynamo.query(&self.db.tables.sessions, &q).await?;
        Ok(decode_all("scheduled session", KEY, items))
    }

    /// The session `session_id`, read after every write that has completed.
    pub async fn get(&self, session_id: &str) -> Result<Option<ScheduledSession>> {
        match self.db.dynamo.get(&self.db.tables.sessions, session_id, true).await? {
            Some(item) => Ok(Some(decode("scheduled session", item)?)),
            None => Ok(None),
        }
    }

    /// Every session of `user_id`, every page.
    pub async fn of_user(&self, user_id: &str) -> Result<Vec<ScheduledSession>> {
        self.run(self.query(BY_USER, attr::USER_ID, text(user_id), None)).await
    }

    /// The sessions booked on `license_id` that start in `[from, to]`, in start order.
    pub async fn on_license(&self, license_id: &str, from: i64, to: i64) -> Result<Vec<ScheduledSession>> {
        let range = RangeCond::Between(num(from), num(to));
        self.run(self.query(BY_LICENSE, attr::LICENSE_ID, text(license_id), Some(range)))
            .await
    }

    /// The sessions in `status` that start at or before `start_until`, in start order.
    pub async fn in_status(&self, status: &SessionStatus, start_until: i64) -> Result<Vec<ScheduledSession>> {
        let range = RangeCond::Lt(num(start_until.saturating_add(1)));
        self.run(self.query(BY_STATUS, attr::STATUS, text(status.as_str()), Some(range)))
            .await
    }

    // ------------------------------------------------------------------ bookings

    /// The ledger of `license_id`. A license without one (booked only by the original)
    /// gets one made of its sessions that still hold it, to be stored with its first
    /// booking here.
    pub async fn ledger(&self, license_id: &str, now: i64) -> Result<LedgerRead> {
        let item = self
            .db
            .dynamo
            .get(&self.db.tables.reservations, &ledger_key(license_id), true)
            .await?;
        if let Some(item) = item {
            return Ok(LedgerRead {
                ledger: decode("license ledger", item)?,
                stored: true,
            });
        }
        let bookings = self
            .on_license(license_id, i64::MIN / 2, i64::MAX / 2)
            .await?
            .into_iter()
            .filter(|s| holds_license(&s.status) && s.end_time > now)
            .map(|s| crate::domain::model::Booking {
                session_id: s.session_id,
                start_time: s.start_time,
                end_time: s.end_time,
            })
            .collect();
        Ok(LedgerRead {
            ledger: Ledger { version: 0, bookings },
            stored: false,
        })
    }

    /// The write of `next` over the ledger `read` of `license_id`: only if nobody changed
    /// it since.
    fn ledger_op(&self, license_id: &str, read: &LedgerRead, next: &Ledger) -> Result<TransactOp> {
        let mut item: Item = encode("license ledger", next)?;
        item.insert(super::reservations::KEY.to_string(), text(&ledger_key(license_id)));
        let cond = if read.stored {
            Cond::Eq(attr::VERSION.into(), num(read.ledger.version))
        } else {
            Cond::not_exists(super::reservations::KEY)
        };
        Ok(TransactOp::Put {
            table: self.db.tables.reservations.clone(),
            item,
            cond,
        })
    }

    /// Books `session` (and its `reservation`) on the license whose ledger was `read`,
    /// writing `next` → whether the booking was made (false: the ledger changed since it
    /// was read; read it again).
    pub async fn book(
        &self,
        read: &LedgerRead,
        next: &Ledger,
        session: &ScheduledSession,
        reservation: &Reservation,
    ) -> Result<bool> {
        let license = session
            .license_id
            .as_deref()
            .ok_or_else(|| Error::failed("A session must name its license"))?;
        let ops = vec![
            self.ledger_op(license, read, next)?,
            TransactOp::Put {
                table: self.db.tables.sessions.clone(),
                item: encode("scheduled session", session)?,
                cond: Cond::not_exists(attr::SESSION_ID),
            },
            TransactOp::Put {
                table: self.db.tables.reservations.clone(),
                item: encode("license reservation", reservation)?,
                cond: Cond::not_exists(super::reservations::KEY),
            },
        ];
        Ok(written(self.db.dynamo.transact(ops).await)?.is_some())
    }

    // ------------------------------------------------------------------ moves

    /// Claims a `scheduled` session for starting → the session, or `None` when another
    /// invocation claimed it (or it is no longer scheduled).
    pub async fn claim_start(&self, session_id: &str, now: i64) -> Result<Option<ScheduledSession>> {
        let update = Update::new()
            .set_s(attr::STATUS, SessionStatus::Starting.as_str())
            .set(attr::UPDATED_AT, num(now));
        let cond = Cond::eq_s(attr::STATUS, SessionStatus::Scheduled.as_str());
        self.update(session_id, update, cond).await
    }

    /// A `starting` session whose server runs becomes `active` → whether it was starting.
    pub async fn activate(&self, session_id: &str, instance_id: &str, now: i64) -> Result<bool> {
        let update = Update::new()
            .set_s(attr::STATUS, SessionStatus::Active.as_str())
            .set_s(attr::INSTANCE_ID, instance_id)
            .set(attr::UPDATED_AT, num(now));
        let cond = Cond::eq_s(attr::STATUS, SessionStatus::Starting.as_str());
        Ok(self.update(session_id, update, cond).await?.is_some())
    }

    /// Moves `session` to `to` (`cancelled` with `reason`, or `completed`), releasing its
    /// license booking and settling its reservation in the same transaction → whether
    /// this call moved it (false: it had already moved where `to` cannot follow).
    pub async fn settle(
        &self,
        session: &ScheduledSession,
        to: SessionStatus,
        reason: Option<&str>,
        now: i64,
    ) -> Result<bool> {
        let reservation = self.reservation_of(session).await?;
        let reservation_to = match to {
            SessionStatus::Completed => ReservationStatus::Completed,
            _ => ReservationStatus::Cancelled,
        };
        for _ in 0..LEDGER_ATTEMPTS {
            let Some(current) = self.get(&session.session_id).await? else {
                return Ok(false);
            };
            if !may_move(&current.status, &to) {
                return Ok(false);
            }
            let mut update = Update::new()
                .set_s(attr::STATUS, to.as_str())
                .set(attr::UPDATED_AT, num(now));
            if let Some(reason) = reason {
                update = update.set_s(attr::CANCEL_REASON, reason);
            }
            let mut ops = vec![TransactOp::Update {
                table: self.db.tables.sessions.clone(),
                key: session.session_id.clone(),
                update,
                cond: Cond::eq_s(attr::STATUS, current.status.as_str()),
            }];
            if let Some(r) = &reservation {
                ops.push(TransactOp::Update {
                    table: self.db.tables.reservations.clone(),
                    key: r.clone(),
                    update: Update::new().set_s(attr::STATUS, reservation_to.as_str()),
                    cond: Cond::exists(super::reservations::KEY),
                });
            }
            if let Some(license) = current.license_id.as_deref() {
                let read = self.ledger(license, now).await?;
                if read.stored {
                    let next = without_booking(&read.ledger, &session.session_id, now);
                    ops.push(self.ledger_op(license, &read, &next)?);
                }
            }
            if written(self.db.dynamo.transact(ops).await)?.is_some() {
                return Ok(true);
            }
            // The session or the ledger changed since we read them: look again.
        }
        Err(Error::failed(format!(
            "Session {} is changing too often to be settled; try again",
            session.session_id
        )))
    }

    /// The reservation booked with `session`: recorded on it by this port, or found by
    /// the license's index for a session the original booked.
    async fn reservation_of(&self, session: &ScheduledSession) -> Result<Option<String>> {
        if let Some(id) = &session.reservation_id {
            return Ok(Some(id.clone()));
        }
        let Some(license) = session.license_id.as_deref() else {
            return Ok(None);
        };
        let q = Query {
            index: Some(super::reservations::BY_LICENSE.to_string()),
            hash_attr: attr::LICENSE_ID.to_string(),
            hash_value: text(license),
            range: Some((
                attr::START_TIME.to_string(),
                RangeCond::Between(num(session.start_time), num(session.start_time)),
            )),
        };
        let found: Vec<Reservation> = decode_all(
            "license reservation",
            super::reservations::KEY,
            self.db.dynamo.query(&self.db.tables.reservations, &q).await?,
        );
        Ok(found
            .into_iter()
            .find(|r| r.session_id == session.session_id && r.status == ReservationStatus::Active)
            .map(|r| r.reservation_id))
    }

    /// A conditional UpdateItem → the session after it, or `None` when the condition
    /// failed.
    async fn update(&self, session_id: &str, update: Update, cond: Cond) -> Result<Option<ScheduledSession>> {
        let r = self
            .db
            .dynamo
            .update(&self.db.tables.sessions, session_id, &update, cond)
            .await;
        match written(r)? {
            Some(item) => Ok(Some(decode("scheduled session", item)?)),
            None => Ok(None),
        }
    }
}
