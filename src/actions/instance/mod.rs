//! The per-user instance actions: create, start, stop, status, destroy, delete,
//! list-all and update-version.
//!
//! This file only declares the parts and re-exports the actions.

mod create;
mod destroy;
mod start;
mod status;
mod version;
mod view;

pub use create::create;
pub use destroy::{delete, destroy};
pub use start::start;
pub use status::{list_all, status, stop};
pub use version::update_version;
