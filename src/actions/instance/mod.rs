//! The per-user instance actions (spec/ACTIONS.md §4.1–§4.8).

mod create;
mod destroy;
pub mod lifecycle;
mod start;
mod version;

pub use create::{create, generate_admin_key, iam_policy, target_group_spec, ADMIN_KEY_LEN};
pub use destroy::{cleanup_reservations, deactivate_own_pool, delete, destroy};
pub use start::start;
pub use version::update_version;

use serde_json::Value;

use super::Obj;
use crate::app::App;
use crate::domain::model::{Instance, InstanceStatus, SessionStatus};
use crate::domain::names;
use crate::error::{Error, Result};

/// The session JSON of a stored item (all its attributes).
pub fn session_json(s: &crate::domain::model::ScheduledSession) -> Value {
    crate::response::to_value(s)
}

fn bucket_url(app: &App, i: &Instance) -> Option<String> {
    i.s3_bucket_name
        .as_deref()
        .map(|b| names::bucket_url(b, &app.config.region))
}

/// Maps an ECS `lastStatus` to an instance status (W43: every state is mapped; none
/// becomes `unknown`).
pub fn map_task_status(last_status: &str) -> InstanceStatus {
    match last_status.to_ascii_uppercase().as_str() {
        "PROVISIONING" | "PENDING" | "ACTIVATING" => InstanceStatus::Starting,
        "RUNNING" => InstanceStatus::Running,
        "DEACTIVATING" | "STOPPING" | "DEPROVISIONING" => InstanceStatus::Stopping,
        _ => InstanceStatus::Stopped, // STOPPED, DELETED
    }
}

/// `status` (§4.6).
pub async fn status(app: &App, user_id: &str) -> Result<Value> {
    let mut inst = app
        .store
        .get_instance(user_id)
        .await?
        .ok_or_else(|| Error::failed("Instance not found"))?;

    // Refresh from ECS and repair what it reveals (W43).
    inst = lifecycle::reconcile(app, inst).await?;

    let now = app.clock.now();
    let next = app
        .store
        .sessions_of_user(user_id)
        .await?
        .into_iter()
        .filter(|s| s.status == SessionStatus::Scheduled && s.start_time > now)
        .min_by_key(|s| s.start_time);

    Ok(Obj::new()
        .set("userId", inst.user_id.clone())
        .set("status", inst.status.as_str())
        .opt("createdAt", inst.created_at)
        .opt("updatedAt", inst.updated_at)
        .set("url", names::url(&inst.sanitized_username, &app.config.domain_name))
        .opt("adminKey", inst.admin_key.as_ref().map(|k| k.expose().to_string()))
        .set("foundryVersion", inst.foundry_version_or_default())
        .opt("s3BucketName", inst.s3_bucket_name.clone())
        .opt("s3BucketUrl", bucket_url(app, &inst))
        .opt("licenseType", inst.license_type.clone())
        .opt("licenseOwnerId", inst.license_owner_id.clone())
        .opt("allowLicenseSharing", inst.allow_license_sharing)
        .opt("autoShutdownAt", inst.auto_shutdown_at)
        .opt("linkedSessionId", inst.linked_session_id.clone())
        .set(
            "nextScheduledSession",
            next.as_ref().map(session_json).unwrap_or(Value::Null),
        )
        .build())
}

/// `stop` (§4.3): the shared teardown, on any status.
pub async fn stop(app: &App, user_id: &str) -> Result<Value> {
    let inst = app
        .store
        .get_instance_consistent(user_id)
        .await?
        .ok_or_else(|| Error::failed("Instance not found"))?;
    if matches!(inst.status, InstanceStatus::Creating | InstanceStatus::Destroying) {
        return Err(Error::failed(format!("Instance is busy ({})", inst.status)));
    }
    lifecycle::teardown(app, &inst).await?;
    Ok(Obj::new()
        .set("message", "Instance is stopped")
        .set("userId", user_id)
        .set("status", "stopped")
        .build())
}

/// `list-all` (§4.7). Every page of the table (W44); no admin keys (W5).
pub async fn list_all(app: &App) -> Result<Value> {
    let instances = app.store.scan_instances().await?;
    let list: Vec<Value> = instances
        .iter()
        .map(|i| {
            Obj::new()
                .set("userId", i.user_id.clone())
                .set("sanitizedUsername", i.sanitized_username.clone())
                .set("status", i.status.as_str())
                .opt("createdAt", i.created_at)
                .opt("updatedAt", i.updated_at)
                .set("url", names::url(&i.sanitized_username, &app.config.domain_name))
                .set("foundryVersion", i.foundry_version_or_default())
                .opt("s3BucketName", i.s3_bucket_name.clone())
                .opt("s3BucketUrl", bucket_url(app, i))
                .opt("licenseType", i.license_type.clone())
                .opt("licenseOwnerId", i.license_owner_id.clone())
                .opt("allowLicenseSharing", i.allow_license_sharing)
                .opt("maxConcurrentUsers", i.max_concurrent_users)
                .build()
        })
        .collect();
    let count = list.len();
    Ok(Obj::new().set("instances", list).set("count", count).build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ecs_state_maps_to_a_real_status() {
        for (ecs, want) in [
            ("PROVISIONING", "starting"),
            ("PENDING", "starting"),
            ("ACTIVATING", "starting"),
            ("RUNNING", "running"),
            ("DEACTIVATING", "stopping"),
            ("STOPPING", "stopping"),
            ("DEPROVISIONING", "stopping"),
            ("STOPPED", "stopped"),
            ("DELETED", "stopped"),
            ("running", "running"),
        ] {
            assert_eq!(map_task_status(ecs).as_str(), want, "{ecs}");
        }
    }
}
