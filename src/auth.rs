//! Who may call what.
//!
//! The function trusts the `userId` of an invocation as its caller (whoever may invoke
//! the function is decided by its resource policy). On top of that:
//!
//! | actions | callers |
//! |---|---|
//! | `admin-force-shutdown`, `admin-cancel-session`, `admin-cancel-all-sessions`, `admin-system-maintenance`, `admin-maintenance-reset`, `admin-reconcile`, `admin-backfill-run-index` | an admin (`ADMIN_USER_IDS`); none when it names no one |
//! | `list-all`, `admin-overview`, `get-all-costs`, `shutdown-stats`, `send-notification`, `health-check` | an admin, or the bot's `system` |
//! | `auto-shutdown-check`, `prepare-sessions` | `system` (the EventBridge schedules) |
//! | `ecs-task-state-change` | `system` (the EventBridge rule on the cluster's task-state events) |
//! | `get-sessions-for-license`, `cancel-sessions-for-license` | the license's owner, an admin, or `system` |
//! | `start-scheduled-session`, `end-scheduled-session` | the session's owner, an admin, or `system` (the owner is checked by the action) |
//! | `cancel-session` | the session's owner or an admin (checked by the action) |
//! | `kofi-webhook` | anyone (the payload carries Ko-fi's verification token) |
//! | `license-pool-status` | anyone; the action shows other users' entries and ids only to an admin or `system` |
//! | `list-backups`, `restore-backup` | the user named by `userId`; an admin also for another user (`targetUserId`) |
//! | every other action | the user named by `userId`, on their own records |

use crate::config::Config;
use crate::domain::names;
use crate::error::Error;
use crate::event::{Action, SYSTEM_CALLER};

/// Whether `user_id` is one of the configured admins.
pub fn is_admin(config: &Config, user_id: &str) -> bool {
    !user_id.is_empty() && config.admin_user_ids.contains(user_id)
}

/// Whether `user_id` is the automation's caller.
pub fn is_system(user_id: &str) -> bool {
    user_id == SYSTEM_CALLER
}

/// Refuses (403) an invocation its caller may not make. A refusal changes nothing: it
/// comes before the action reads or writes anything.
pub fn authorize(config: &Config, action: &Action, user_id: &str) -> Result<(), Error> {
    let name = action.name();
    let admin = is_admin(config, user_id);
    let system = is_system(user_id);
    let refuse = |why: String| Err(Error::Forbidden(why));
    let licensee = |f: &crate::event::LicenseFields| {
        f.license_id
            .as_deref()
            .and_then(names::license_owner)
            .is_some_and(|o| o == user_id)
    };
    match action {
        Action::AdminForceShutdown(_)
        | Action::AdminCancelSession(_)
        | Action::AdminCancelAllSessions(_)
        | Action::AdminSystemMaintenance(_)
        | Action::AdminMaintenanceReset(_)
        | Action::AdminReconcile(_)
        | Action::AdminBackfillRunIndex(_)
            if config.admin_user_ids.is_empty() =>
        {
            refuse(format!(
                "{name} is disabled: no admin is configured (ADMIN_USER_IDS is empty)"
            ))
        }
        Action::AdminForceShutdown(_)
        | Action::AdminCancelSession(_)
        | Action::AdminCancelAllSessions(_)
        | Action::AdminSystemMaintenance(_)
        | Action::AdminMaintenanceReset(_)
        | Action::AdminReconcile(_)
        | Action::AdminBackfillRunIndex(_)
            if !admin =>
        {
            refuse(format!("Only an admin may call {name}"))
        }
        Action::ListAll(_)
        | Action::AdminOverview(_)
        | Action::GetAllCosts(_)
        | Action::ShutdownStats(_)
        | Action::SendNotification(_)
        | Action::HealthCheck(_)
            if !(admin || system) =>
        {
            refuse(format!("Only an admin or the system may call {name}"))
        }
        Action::AutoShutdownCheck(_) | Action::PrepareSessions(_) if !system => refuse(format!(
            "{name} is run by the EventBridge schedules (userId \"system\") only"
        )),
        Action::EcsTaskStateChange(_) if !system => refuse(format!(
            "{name} is sent by the EventBridge rule on ECS task-state events (userId \"system\") only"
        )),
        Action::GetSessionsForLicense(f) | Action::CancelSessionsForLicense(f) if !(admin || system || licensee(f)) => {
            refuse(format!(
                "Only the license's owner, an admin or the system may call {name}"
            ))
        }
        Action::ListBackups(f)
            if f.target_user_id
                .as_deref()
                .is_some_and(|t| !t.is_empty() && t != user_id)
                && !admin =>
        {
            refuse("Only an admin may list another user's backups".to_string())
        }
        Action::RestoreBackup(f)
            if f.target_user_id
                .as_deref()
                .is_some_and(|t| !t.is_empty() && t != user_id)
                && !admin =>
        {
            refuse("Only an admin may restore another user's backups".to_string())
        }
        _ => Ok(()),
    }
}
