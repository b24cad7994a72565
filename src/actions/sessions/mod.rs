//! Scheduled sessions and their one state machine.
//!
//! ```text
//! (booked) ──► scheduled ──claim──► starting ──server runs──► active ──run ends──► completed
//!                  │                    │                        │
//!                  └────────────────────┴──── cancel ────────────┴──► cancelled
//! ```
//!
//! Every path (cancel, stop, teardown, admin, automation) goes through [`cancel`] and
//! [`crate::actions::run::complete`] (a session completes when its run ends), which release the license booking and settle the reservation in the same
//! write as the session, and stop a server still running for a cancelled session.
//!
//! This file only declares the parts and re-exports the actions and the paths other
//! modules use.

mod booking;
mod cancel;
mod on_demand;
mod reading;
mod starting;
mod sweep;

pub use booking::{check_availability, schedule_session};
pub use cancel::{cancel, cancel_borrowers, cancel_session, cancel_sessions_for_license, cancel_sessions_of_user};
pub use on_demand::{release_license, request_license, start_in_window};
pub use reading::{get_scheduled_sessions, list_sessions, sessions_for_license};
pub use starting::{end_scheduled_session, start_scheduled_session};
pub use sweep::prepare_sessions;
