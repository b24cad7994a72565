//! `update-version` (spec/ACTIONS.md §4.8), with a permission reset that can run (W48).

use serde_json::Value;

use super::destroy::{wait_for_helper_task, HelperWait};
use super::lifecycle;
use crate::actions::Obj;
use crate::app::{App, Ctx};
use crate::domain::taskdef::{self, owner_for_version, valid_version, RESET_CONTAINER};
use crate::error::{Error, Result};
use crate::managers::dynamodb::{Cond, Update};
use crate::managers::ecs::ContainerOverride;
use crate::store::n;

pub async fn update_version(app: &App, ctx: &Ctx, user_id: &str, version: Option<&str>) -> Result<Value> {
    let inst = app
        .store
        .get_instance(user_id)
        .await?
        .ok_or_else(|| Error::failed("Instance not found"))?;
    let version = version
        .filter(|v| valid_version(v))
        .ok_or_else(|| Error::failed("Invalid version format"))?;

    // The v11/v12 images run as 421:421, the others as 1000:1000: re-own the user's
    // files whenever the owner changes, in both directions.
    let (uid, gid) = owner_for_version(version);
    if owner_for_version(inst.foundry_version_or_default()) != (uid, gid) {
        if let Err(e) = reset_permissions(app, ctx, user_id, uid, gid).await {
            tracing::warn!(error = %e.client_message(), "permission reset failed; the version is updated anyway");
        }
    }

    let update = Update::new()
        .set_s("foundryVersion", version)
        .set("updatedAt", n(app.clock.now()));
    app.store
        .update_instance(user_id, &update, Cond::exists("userId"))
        .await?;
    Ok(Obj::new()
        .set("message", "Version updated successfully")
        .set("userId", user_id)
        .set("foundryVersion", version)
        .set("note", "Restart your instance to use the new version")
        .build())
}

async fn reset_permissions(app: &App, ctx: &Ctx, user_id: &str, uid: u32, gid: u32) -> Result<()> {
    let def = taskdef::permission_reset_task_definition(&app.config);
    let _ = lifecycle::ensure_log_group(app, &taskdef::helper_log_group(taskdef::RESET_FAMILY)).await;
    let td = app.aws.ecs.register_task_definition(&def).await?;
    let req = taskdef::run_task(
        &app.config,
        &td,
        vec![ContainerOverride {
            name: RESET_CONTAINER.into(),
            environment: vec![
                ("USER_ID".into(), user_id.to_string()),
                ("TARGET_UID".into(), uid.to_string()),
                ("TARGET_GID".into(), gid.to_string()),
            ],
        }],
    );
    let arn = app.aws.ecs.run_task(&req).await?;
    let until = lifecycle::wait_until_ms(app, ctx);
    wait_for_helper_task(app, &arn, RESET_CONTAINER, until)
        .await
        .map_err(|e| match e {
            HelperWait::StillRunning => Error::failed("the permission reset is still running"),
            HelperWait::Failed(why) => Error::Failed(format!("the permission reset failed: {why}")),
            HelperWait::Aws(e) => e,
        })
}
