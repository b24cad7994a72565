//! One async function per action: validates, orchestrates the store and the managers,
//! and answers with a typed response (serialized to its JSON body).
//!
//! Module graph (an arrow is "uses"; none points back):
//! `admin` → `automation`, `sessions`, `run`; `licenses` → `sessions`, `run`;
//! `instance` → `sessions`, `run`, `resources`; `sessions` → `run`; `automation` → `idle`, `run`;
//! `run` → `resources`; `reconcile` → `resources`. `billing`, `kofi` and `notify` use only the store (and `deliver`); `deliver` the store and
//! the Discord client; `health` only the managers.

pub mod admin;
pub mod automation;
pub mod backups;
pub mod billing;
pub mod deliver;
pub mod health;
pub mod idle;
pub mod instance;
pub mod kofi;
pub mod licenses;
pub mod notify;
pub mod reconcile;
pub mod resources;
pub mod run;
pub mod sessions;
