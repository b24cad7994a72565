//! `update-version`, with a permission reset that can run.

use serde::Serialize;
use serde_json::Value;

use crate::context::{Ctx, Services};
use crate::domain::taskdef::{owner_for_version, valid_version};
use crate::error::{Error, Result};

use super::helper_task::{self, HelperTask, Outcome};

/// The answer of `update-version`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct VersionUpdated<'a> {
    message: &'static str,
    user_id: &'a str,
    foundry_version: &'a str,
    note: &'static str,
}

pub async fn update_version(svc: &Services, ctx: &Ctx, user_id: &str, version: Option<&str>) -> Result<Value> {
    let inst = super::found(svc.store.instances.get(user_id).await?)?;
    let version = version
        .filter(|v| valid_version(v))
        .ok_or_else(|| Error::failed("Invalid version format"))?;

    // The v11/v12 images run as 421:421, the others as 1000:1000: re-own the user's
    // files whenever the owner changes, in both directions.
    let (uid, gid) = owner_for_version(version);
    if owner_for_version(inst.foundry_version_or_default()) != (uid, gid) {
        // The version is what the user asked for; a reset that failed is logged for an
        // operator and does not block the change.
        if let Err(e) = reset_permissions(svc, ctx, user_id, uid, gid).await {
            tracing::warn!(error = %e, "permission reset failed; the version is updated anyway");
        }
    }

    svc.store.instances.set_version(user_id, version, svc.now()).await?;
    crate::response::to_body(&VersionUpdated {
        message: "Version updated successfully",
        user_id,
        foundry_version: version,
        note: "Restart your instance to use the new version",
    })
}

async fn reset_permissions(svc: &Services, ctx: &Ctx, user_id: &str, uid: u32, gid: u32) -> Result<()> {
    let env = vec![
        ("TARGET_UID".to_string(), uid.to_string()),
        ("TARGET_GID".to_string(), gid.to_string()),
    ];
    let arn = helper_task::launch(svc, HelperTask::PermissionReset, user_id, env).await?;
    helper_task::wait(svc, ctx, HelperTask::PermissionReset, &arn)
        .await
        .map_err(|e| match e {
            Outcome::StillRunning => Error::failed("the permission reset is still running"),
            Outcome::Failed(why) => Error::Failed(format!("the permission reset failed: {why}")),
            Outcome::Aws(e) => e,
        })
}
