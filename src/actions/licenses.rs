//! License sharing: an owner offers (or withdraws) a BYOL license to the pool; and
//! `license-pool-status`, what every license of the pool is doing now.

use serde::Serialize;
use serde_json::Value;
use serde_with::skip_serializing_none;

use futures_util::stream::{self, StreamExt, TryStreamExt};

use crate::actions::run::{self, finish_scheduled_stop};
use crate::actions::sessions::cancel_borrowers;
use crate::context::Services;
use crate::domain::model::LicensePool;
use crate::domain::names;
use crate::domain::schedule::{pool_use, PoolUse};
use crate::error::Result;
use crate::event::LicenseSharingFields;
use crate::store::{PoolEntry, SharingState};

/// The answer of `set-license-sharing`.
#[skip_serializing_none]
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SharingSet<'a> {
    message: &'static str,
    license_type: &'a str,
    allow_license_sharing: Option<bool>,
    max_concurrent_users: Option<i64>,
    instance_found: bool,
}

/// `set-license-sharing`: changes only what the request names; the instance's license
/// type never changes here. A BYOL owner who turns sharing on offers the license to the
/// pool; turning it off withdraws the offer.
pub async fn set_license_sharing(svc: &Services, user_id: &str, f: &LicenseSharingFields) -> Result<Value> {
    let now = svc.now();
    let license = names::license_id(user_id);
    let inst = svc
        .store
        .instances
        .patch_sharing(user_id, f.allow_license_sharing, f.max_concurrent_users, now)
        .await?;
    let requested = f.license_type.as_deref().filter(|t| !t.is_empty()).unwrap_or("byol");
    let owns_license = match &inst {
        Some(i) => i.license_type_or_default() == "byol",
        None => requested == "byol",
    };
    match (owns_license, f.allow_license_sharing) {
        (true, Some(true)) => {
            let pool = svc.store.pools.get(&license).await?;
            let owner_username = inst
                .as_ref()
                .map(|i| i.sanitized_username.clone())
                .or_else(|| pool.as_ref().and_then(|p| p.owner_username.clone()));
            // Without an instance, only an existing entry can be refreshed.
            if let (Some(owner_username), true) = (owner_username, inst.is_some() || pool.is_some()) {
                let entry = PoolEntry {
                    license_id: license.clone(),
                    owner_id: user_id.to_string(),
                    owner_username,
                    max_concurrent_users: f.max_concurrent_users.filter(|m| *m != 0).unwrap_or(1),
                };
                svc.store.pools.join(&entry, now).await?;
            }
        }
        (true, Some(false)) => {
            svc.store.pools.deactivate(&license, now).await?;
        }
        _ => {}
    }
    crate::response::to_body(&SharingSet {
        message: if inst.is_some() {
            "License sharing settings updated"
        } else {
            "License pool updated (no instance found)"
        },
        license_type: requested,
        allow_license_sharing: f.allow_license_sharing,
        max_concurrent_users: f.max_concurrent_users,
        instance_found: inst.is_some(),
    })
}

/// The answer of `manage-license-state`.
#[skip_serializing_none]
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct StateChanged {
    success: bool,
    message: String,
    license_sharing_state: Option<&'static str>,
}

impl StateChanged {
    fn refused(message: impl Into<String>) -> Self {
        StateChanged {
            success: false,
            message: message.into(),
            license_sharing_state: None,
        }
    }

    fn done(message: &str, state: &'static str) -> Self {
        StateChanged {
            success: true,
            message: message.to_string(),
            license_sharing_state: Some(state),
        }
    }
}

/// `manage-license-state`.
pub async fn manage_license_state(svc: &Services, user_id: &str, operation: Option<&str>) -> Result<Value> {
    let answer = match operation.filter(|o| !o.is_empty()) {
        None => StateChanged::refused("Missing license state operation"),
        Some(op) => change_state(svc, user_id, op).await?,
    };
    crate::response::to_body(&answer)
}

async fn change_state(svc: &Services, user_id: &str, op: &str) -> Result<StateChanged> {
    let now = svc.now();
    let license = names::license_id(user_id);
    let inst = svc.store.instances.get(user_id).await?;
    let no_instance = || StateChanged::refused("No instance found to manage license state");
    let byol = inst.as_ref().is_some_and(|i| i.license_type_or_default() == "byol");
    Ok(match op {
        "schedule_stop_after_sessions" => {
            if inst.is_none() {
                return Ok(no_instance());
            }
            if !byol {
                return Ok(StateChanged::refused("Only BYOL instances can manage license sharing"));
            }
            svc.store
                .instances
                .set_sharing_state(user_id, SharingState::StopAfterSessions, now)
                .await?;
            // No new bookings from now on; the booked ones run.
            svc.store.pools.deactivate(&license, now).await?;
            if finish_scheduled_stop(svc, &license).await? {
                StateChanged::done(
                    "License sharing stopped: no sessions are booked on your license",
                    "inactive",
                )
            } else {
                StateChanged::done(
                    "License sharing scheduled to stop after current sessions end",
                    "scheduled_stop",
                )
            }
        }
        "cancel_scheduled_stop" => {
            let Some(inst) = inst else { return Ok(no_instance()) };
            svc.store
                .instances
                .set_sharing_state(user_id, SharingState::KeepSharing, now)
                .await?;
            if inst.allow_license_sharing == Some(true) {
                svc.store.pools.reactivate(&license, now).await?;
            }
            StateChanged::done("Scheduled license sharing stop cancelled", "active")
        }
        "immediate_stop" => {
            if inst.is_none() {
                return Ok(no_instance());
            }
            svc.store
                .instances
                .set_sharing_state(user_id, SharingState::Stopped, now)
                .await?;
            svc.store.pools.deactivate(&license, now).await?;
            let mut errors = Vec::new();
            cancel_borrowers(svc, user_id, &mut errors).await?;
            for e in errors {
                tracing::warn!(error = %e, "could not cancel a session on the withdrawn license");
            }
            StateChanged::done("License sharing stopped immediately", "inactive")
        }
        "reactivate_sharing" => {
            let Some(inst) = inst else { return Ok(no_instance()) };
            if !byol {
                return Ok(StateChanged::refused(
                    "Only BYOL instances can reactivate license sharing",
                ));
            }
            svc.store
                .instances
                .set_sharing_state(user_id, SharingState::Reactivated, now)
                .await?;
            if !svc.store.pools.reactivate(&license, now).await? && svc.store.pools.get(&license).await?.is_none() {
                let entry = PoolEntry {
                    license_id: license.clone(),
                    owner_id: user_id.to_string(),
                    owner_username: inst.sanitized_username.clone(),
                    max_concurrent_users: inst.max_concurrent_users.filter(|m| *m != 0).unwrap_or(1),
                };
                svc.store.pools.join(&entry, now).await?;
            }
            StateChanged::done("License sharing reactivated", "active")
        }
        "cleanup_orphaned" => {
            if inst.is_none() && svc.store.pools.deactivate(&license, now).await? {
                StateChanged::done("Orphaned license pool deactivated", "orphaned")
            } else {
                StateChanged::refused("No orphaned license state found to cleanup")
            }
        }
        other => StateChanged::refused(format!("Unknown license state operation: {other}")),
    })
}

/// How many licenses `license-pool-status` reads at once.
const POOL_READ_CONCURRENCY: usize = 8;

/// One license as `license-pool-status` shows it.
#[skip_serializing_none]
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PoolView {
    license_id: String,
    owner_id: Option<String>,
    status: &'static str,
    current_user: Option<String>,
    reserved_until: Option<i64>,
}

/// The answer of `license-pool-status`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PoolStatus {
    success: bool,
    total_licenses: usize,
    available_licenses: usize,
    in_use_licenses: usize,
    reserved_licenses: usize,
    pools: Vec<PoolView>,
}

/// What one active pool entry is doing now, from its ledger and its run claim (the
/// records booking and starting use), with the user who holds it.
async fn pool_entry_use(
    svc: &Services,
    entry: LicensePool,
    now: i64,
) -> Result<(LicensePool, PoolUse, Option<String>)> {
    let ledger = svc.store.sessions.ledger(&entry.license_id, now).await?;
    let runner = run::license_runner(svc, &entry.license_id).await?;
    let state = pool_use(&ledger.ledger, runner.as_deref(), now);
    let user = match &state {
        PoolUse::Available => None,
        PoolUse::InUse { runner, .. } => Some(runner.clone()),
        PoolUse::Reserved { session_id, .. } => svc.store.sessions.get(session_id).await?.map(|s| s.user_id),
    };
    Ok((entry, state, user))
}

/// `license-pool-status`: every active pool entry, each `available`, `in-use` (a live
/// run holds it) or `reserved` (a booking covers now, no run yet). An admin or `system`
/// sees every entry with its owner and user; anyone else sees the counts and only their
/// own license, without any other user's id.
pub async fn license_pool_status(svc: &Services, caller: &str) -> Result<Value> {
    let now = svc.now();
    let privileged = crate::auth::is_admin(&svc.config, caller) || crate::auth::is_system(caller);
    let entries = svc.store.pools.active().await?;
    let used: Vec<(LicensePool, PoolUse, Option<String>)> = stream::iter(entries)
        .map(|e| pool_entry_use(svc, e, now))
        .buffered(POOL_READ_CONCURRENCY)
        .try_collect()
        .await?;
    let count = |f: fn(&PoolUse) -> bool| used.iter().filter(|(_, u, _)| f(u)).count();
    let own = names::license_id(caller);
    let pools = used
        .iter()
        .filter(|(e, _, _)| privileged || e.license_id == own)
        .map(|(e, state, user)| {
            let (status, until) = match state {
                PoolUse::Available => ("available", None),
                PoolUse::InUse { until, .. } => ("in-use", *until),
                PoolUse::Reserved { until, .. } => ("reserved", Some(*until)),
            };
            PoolView {
                license_id: e.license_id.clone(),
                owner_id: e.owner_id.clone(),
                status,
                current_user: user.clone().filter(|u| privileged || u == caller),
                reserved_until: until,
            }
        })
        .collect();
    crate::response::to_body(&PoolStatus {
        success: true,
        total_licenses: used.len(),
        available_licenses: count(|u| matches!(u, PoolUse::Available)),
        in_use_licenses: count(|u| matches!(u, PoolUse::InUse { .. })),
        reserved_licenses: count(|u| matches!(u, PoolUse::Reserved { .. })),
        pools,
    })
}
