//! The instance as `status` and `list-all` show it.

use serde::Serialize;
use serde_with::skip_serializing_none;

use crate::config::Config;
use crate::domain::idle;
use crate::domain::model::{Instance, ScheduledSession, StopReason};
use crate::domain::names;

/// One instance in an answer. `status` and `list-all` show different members of it:
/// `list-all` never shows the admin key, the run's deadline or its linked session.
#[skip_serializing_none]
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceView<'a> {
    user_id: &'a str,
    sanitized_username: Option<&'a str>,
    status: &'a str,
    created_at: Option<i64>,
    updated_at: Option<i64>,
    url: String,
    admin_key: Option<&'a str>,
    foundry_version: &'a str,
    s3_bucket_name: Option<&'a str>,
    s3_bucket_url: Option<String>,
    license_type: Option<&'a str>,
    license_owner_id: Option<&'a str>,
    allow_license_sharing: Option<bool>,
    auto_shutdown_at: Option<i64>,
    linked_session_id: Option<&'a str>,
    max_concurrent_users: Option<i64>,
    /// `null` when there is none (the original sends `null` here).
    next_scheduled_session: Option<Option<&'a ScheduledSession>>,
    /// New: the players the last probe of the running server counted (idle detection).
    players: Option<i64>,
    /// New: since when the running server has had no player (Unix seconds).
    idle_since: Option<i64>,
    /// New: when the latest good world backup was made (owner's view; only once known).
    last_backup_at: Option<i64>,
    /// New: when a backup task last failed, and why (owner's view; cleared by a good one).
    last_backup_failed_at: Option<i64>,
    last_backup_failure: Option<&'a str>,
    /// New: present while a `restore-backup` is unfinished (the backup being restored); a
    /// start is refused until it is finished.
    restore_in_progress: Option<&'a str>,
    /// Why the last task stopped by itself (`status` only; new in the port).
    last_stop_reason: Option<&'a StopReason>,
}

impl<'a> InstanceView<'a> {
    fn common(i: &'a Instance, config: &Config) -> Self {
        InstanceView {
            user_id: &i.user_id,
            sanitized_username: None,
            status: i.status.as_str(),
            created_at: i.created_at,
            updated_at: i.updated_at,
            url: names::url(&i.sanitized_username, &config.domain_name),
            admin_key: None,
            foundry_version: i.foundry_version_or_default(),
            s3_bucket_name: i.s3_bucket_name.as_deref(),
            s3_bucket_url: i
                .s3_bucket_name
                .as_deref()
                .map(|b| names::bucket_url(b, &config.region)),
            license_type: i.license_type.as_deref(),
            license_owner_id: i.license_owner_id.as_deref(),
            allow_license_sharing: i.allow_license_sharing,
            auto_shutdown_at: None,
            linked_session_id: None,
            max_concurrent_users: None,
            next_scheduled_session: None,
            players: None,
            idle_since: None,
            last_backup_at: None,
            last_backup_failed_at: None,
            last_backup_failure: None,
            restore_in_progress: None,
            last_stop_reason: None,
        }
    }

    /// The owner's view (`status`): with the admin key and the run's deadline.
    pub fn for_owner(i: &'a Instance, config: &Config, next: Option<&'a ScheduledSession>) -> Self {
        InstanceView {
            admin_key: i.admin_key.as_ref().map(|k| k.expose()),
            auto_shutdown_at: i.auto_shutdown_at,
            linked_session_id: i.linked_session_id.as_deref(),
            next_scheduled_session: Some(next),
            players: idle::players_now(i),
            idle_since: idle::idle_since(i),
            last_backup_at: i.last_backup_at,
            last_backup_failed_at: i.last_backup_failed_at,
            last_backup_failure: i.last_backup_failure.as_deref(),
            restore_in_progress: i.restore_state.as_deref(),
            last_stop_reason: i.last_stop_reason.as_ref(),
            ..Self::common(i, config)
        }
    }

    /// The fleet view (`list-all`): no admin key.
    pub fn for_fleet(i: &'a Instance, config: &Config) -> Self {
        InstanceView {
            sanitized_username: Some(&i.sanitized_username),
            max_concurrent_users: i.max_concurrent_users,
            ..Self::common(i, config)
        }
    }
}
