//! Every per-user AWS resource, in one place: how to make sure it exists, and how to
//! remove it. Nothing here knows about runs, sessions or actions; `instance`, `run` and
//! `admin` call it.
//!
//! This file only declares the parts and re-exports what the rest of the crate uses.

mod backup_task;
mod cleanup_task;
mod compute;
mod files;
mod kind;
mod removal;
mod storage;
mod subdomain;
mod waits;

pub use backup_task::{
    backup_before, launch_after_run as launch_backup_after_run, launch_restore, mark_destroyed, mark_restored,
    restorable_backup, resume_backup, run_under_way, settle_recorded, wait_for_world_tasks, watch_restore, world_tasks,
    BackupLaunch, BACKUPS_OFF, BACKUP_BUSY, DESTROYED_TAG,
};
pub use compute::{deregister_target, ensure_log_group, ensure_target_group, target_group_spec};
pub use files::{ensure_access_point, wait_for_access_point, Files};
pub use kind::{removed, Leftovers, ResourceKind};
pub use removal::remove_all;
pub use storage::{ensure_bucket, ensure_iam_user, ensure_secret, iam_policy, SecretFate};
pub use subdomain::claim_subdomain;
pub use waits::{watch_task, Backoff};

/// The removal of one resource of each kind, for the reconcile (the same code `destroy`
/// runs).
pub(crate) mod one {
    pub(crate) use super::compute::{remove_log_group, remove_rule, remove_target_group_arn, remove_task_definitions};
    pub(crate) use super::files::remove_access_point;
    pub(crate) use super::removal::remove_iam_user;
    pub(crate) use super::storage::{remove_bucket, remove_secret_named};
    pub(crate) use super::subdomain::{is_alias_to_us, remove_alias_to_us};
}
