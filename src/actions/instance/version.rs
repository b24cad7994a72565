//! `update-version`: the Foundry image the user's next start runs.
//!
//! The user's files need no change of owner for another image: the EFS access point
//! runs every file operation as 1000:1000, whatever user the image's process runs as.
//! A running instance keeps its version until it is stopped and started again.

use serde::Serialize;
use serde_json::Value;

use crate::actions::resources::{self, BackupLaunch};
use crate::context::Services;
use crate::domain::backup::Cause;
use crate::domain::taskdef::valid_version;
use crate::error::{Error, Result};

/// The answer of `update-version`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct VersionUpdated<'a> {
    message: &'static str,
    user_id: &'a str,
    foundry_version: &'a str,
    note: &'static str,
}

pub async fn update_version(svc: &Services, user_id: &str, version: Option<&str>) -> Result<Value> {
    let inst = super::status::found(svc.store.instances.get(user_id).await?)?;
    let version = version
        .filter(|v| valid_version(v))
        .ok_or_else(|| Error::failed("Invalid version format"))?;
    if inst.foundry_version_or_default() != version {
        backup_before_update(svc, user_id).await?;
    }
    svc.store.instances.set_version(user_id, version, svc.now()).await?;
    crate::response::to_body(&VersionUpdated {
        message: "Version updated successfully",
        user_id,
        foundry_version: version,
        note: "Restart your instance to use the new version",
    })
}

/// With backups on, a backup of the worlds before another version runs them (cause
/// `pre-update`). Not waited for: the next start waits for it. A running instance gets none
/// here: the end of its run backs up before the new version ever starts. A backup that
/// cannot be launched fails the update (nothing changed).
async fn backup_before_update(svc: &Services, user_id: &str) -> Result<()> {
    match resources::launch_backup_after_run(svc, user_id, &[], Cause::PreUpdate).await? {
        BackupLaunch::Launched(task) => tracing::info!(task = %task, "backup before the version update launched"),
        BackupLaunch::Skipped(why) => tracing::info!(why, "no backup before the version update"),
        BackupLaunch::Off => {}
    }
    Ok(())
}
