//! The license-reservations table: a second record of each booking, keyed for queries by
//! license.

use crate::domain::model::{Reservation, ReservationStatus};
use crate::error::Result;
use crate::managers::dynamodb::{Cond, Update};

use super::{decode_all, Db};

pub(super) const KEY: &str = "reservationId";

/// GSI of the reservations table by `licenseId` and `startTime`.
pub const BY_LICENSE: &str = "licenseId-startTime-index";

mod attr {
    pub const RESERVATION_ID: &str = "reservationId";
    pub const STATUS: &str = "status";
}

/// The license-reservations table.
#[derive(Clone)]
pub struct Reservations {
    db: Db,
}

impl Reservations {
    pub(super) fn new(db: Db) -> Self {
        Reservations { db }
    }

    /// Every reservation still `active`, every page.
    pub async fn active(&self) -> Result<Vec<Reservation>> {
        let all: Vec<Reservation> = decode_all(
            "license reservation",
            KEY,
            self.db.dynamo.scan(&self.db.tables.reservations).await?,
        );
        Ok(all
            .into_iter()
            .filter(|r| r.status == ReservationStatus::Active && !r.reservation_id.starts_with("license#"))
            .collect())
    }

    /// Sets the status of an existing reservation.
    pub async fn set_status(&self, reservation_id: &str, status: ReservationStatus) -> Result<()> {
        let update = Update::new().set_s(attr::STATUS, status.as_str());
        self.db
            .dynamo
            .update(
                &self.db.tables.reservations,
                reservation_id,
                &update,
                Cond::exists(attr::RESERVATION_ID),
            )
            .await?;
        Ok(())
    }
}
