//! foundry-lambda: the instance-management Lambda of a Foundry VTT hosting service.
//!
//! The flow of one invocation: `event` (raw JSON → [`event::Invocation`]) →
//! [`app::App::handle`] (dispatch) → `actions` (one function per action, using the
//! [`context::Services`]) → `store` (the tables) and `managers` (one trait per AWS
//! service) → [`response::Envelope`].

pub mod actions;
pub mod app;
pub mod auth;
pub mod clock;
pub mod config;
pub mod context;
pub mod domain;
pub mod error;
pub mod event;
pub mod logging;
pub mod managers;
pub mod response;
pub mod secret;
pub mod store;
pub mod telemetry;

#[cfg(any(test, feature = "test-util"))]
pub mod testing;
