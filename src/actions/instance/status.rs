//! `status`, `stop` and `list-all`: the instance as it is, and the end of its run on demand.

use serde::Serialize;

use crate::actions::run;
use crate::context::Services;
use crate::domain::model::{Instance, InstanceStatus, SessionStatus};
use crate::error::{Error, Result};

use super::view::InstanceView;

/// The instance read, or the error whose `not found` clients read as "not registered".
pub(super) fn found(instance: Option<Instance>) -> Result<Instance> {
    instance.ok_or_else(|| Error::failed("Instance not found"))
}

/// `status`: the owner's instance, refreshed from ECS, with the next scheduled session.
///
/// An existing instance is always answered with 200: what could not be refreshed or read
/// besides the record is logged, and the stored record is shown. (The bot reads any error
/// that contains "not found" as "this user has no server".)
pub async fn status(svc: &Services, user_id: &str) -> Result<serde_json::Value> {
    let stored = found(svc.store.instances.get(user_id).await?)?;

    // Refresh from ECS and repair what it reveals.
    let inst = match run::refresh(svc, stored.clone()).await {
        Ok(inst) => inst,
        Err(e) => {
            tracing::warn!(error = %e, "could not refresh the instance; answering the stored record");
            stored
        }
    };
    let now = svc.now();
    let sessions = match svc.store.sessions.of_user(user_id).await {
        Ok(sessions) => sessions,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the user's sessions; answering without the next one");
            Vec::new()
        }
    };
    let next = sessions
        .iter()
        .filter(|s| s.status == SessionStatus::Scheduled && s.start_time > now)
        .min_by_key(|s| s.start_time);
    crate::response::to_body(&InstanceView::for_owner(&inst, &svc.config, next))
}

/// The answer of `stop`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stopped<'a> {
    message: &'static str,
    user_id: &'a str,
    status: &'static str,
}

/// `stop`: the shared teardown, on any status.
pub async fn stop(svc: &Services, user_id: &str) -> Result<serde_json::Value> {
    let inst = found(svc.store.instances.get_latest(user_id).await?)?;
    if matches!(inst.status, InstanceStatus::Creating | InstanceStatus::Destroying) {
        return Err(Error::failed(format!("Instance is busy ({})", inst.status)));
    }
    run::end_run_because(svc, &inst, crate::domain::notify::StopCause::User).await?;
    crate::response::to_body(&Stopped {
        message: "Instance is stopped",
        user_id,
        status: "stopped",
    })
}

/// The answer of `list-all`.
#[derive(Debug, Serialize)]
pub struct Fleet<'a> {
    instances: Vec<InstanceView<'a>>,
    count: usize,
}

/// `list-all`: every instance, every page, without admin keys.
pub async fn list_all(svc: &Services) -> Result<serde_json::Value> {
    let all = svc.store.instances.all().await?;
    let instances: Vec<InstanceView<'_>> = all.iter().map(|i| InstanceView::for_fleet(i, &svc.config)).collect();
    let count = instances.len();
    crate::response::to_body(&Fleet { instances, count })
}
