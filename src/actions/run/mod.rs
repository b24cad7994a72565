//! The life of a run, in one module: where a run begins ([`launch_run`], the one start
//! pipeline of `start`, `start-scheduled-session` and `prepare-sessions`), where it is kept
//! in line with ECS ([`refresh`]), and where it ends ([`end_run`], and what a run's end
//! does to its session and license). Whatever must happen whenever a run begins or ends is
//! added here, in `begin.rs` or `end.rs`.
//!
//! `instance`, `sessions`, `licenses`, `admin` and `automation` call this module; it calls
//! none of them (only `resources`, the store and the managers).
//!
//! This file only declares the parts and re-exports what the rest of the crate uses.

mod begin;
mod ecs_event;
mod end;
mod refresh;
mod routing;
mod sessions;

pub use begin::{
    launch_run, license_runner, start_for_session, SessionStart, SessionStartError, Started, RESTORE_UNFINISHED,
};
pub use ecs_event::task_state_change;
pub use end::{end_run, end_run_because};
pub use refresh::refresh;
pub use routing::priority_hint;
pub use sessions::{complete, finish_scheduled_stop, released};
