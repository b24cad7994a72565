//! `send-notification` (the bot's and the original's action) and `set-notifications` (a
//! user's own switch).
//!
//! With notifications on, `send-notification` delivers the notice through the outbox
//! (exactly once per cause, within the time budget); its answer is the same either way.
//! With them off, it is acknowledged and logged only, as in the original.

use serde::Serialize;
use serde_json::Value;

use crate::context::{Ctx, Services};
use crate::domain::notify;
use crate::error::{Error, Result};
use crate::event::{NotificationFields, NotificationSettingFields};

use super::deliver;

/// The answer of `send-notification`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Queued<'a> {
    success: bool,
    message: &'static str,
    notification_type: &'a str,
    target_user_id: &'a str,
}

pub async fn send_notification(svc: &Services, ctx: &Ctx, f: &NotificationFields) -> Result<Value> {
    let (Some(kind), Some(target)) = (
        f.notification_type.as_deref().filter(|s| !s.is_empty()),
        f.target_user_id.as_deref().filter(|s| !s.is_empty()),
    ) else {
        return Err(Error::failed("Missing required fields: notificationType, targetUserId"));
    };
    if svc.config.notifications.is_some() {
        // The cause: a session's (the same id as the function's own notice about that
        // session, so that the two never both arrive), else this request (a retried
        // invocation keeps its request id).
        let cause = match f.session_id.as_deref().filter(|s| !s.is_empty()) {
            Some(session) => session.to_string(),
            // Without a request id (a direct call outside Lambda), the second is the cause.
            None if ctx.request_id.is_empty() => format!("{target}#{}", svc.now()),
            None => format!("{target}#{}", ctx.request_id),
        };
        let notice = notify::requested(kind, &cause, target, f.session_id.as_deref(), f.instance_url.as_deref());
        deliver::notify_one(svc, notice).await;
    } else {
        tracing::info!(
            notificationType = kind,
            targetUserId = target,
            sessionId = f.session_id.as_deref(),
            instanceUrl = f.instance_url.as_deref(),
            "notification queued (log only: notifications are off)"
        );
    }
    crate::response::to_body(&Queued {
        success: true,
        message: "Notification queued successfully",
        notification_type: kind,
        target_user_id: target,
    })
}

/// The answer of `set-notifications`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Setting<'a> {
    message: &'static str,
    user_id: &'a str,
    notifications_enabled: bool,
}

/// `set-notifications`: the caller's Discord notifications on or off (`notificationsOff`
/// on their instance record).
pub async fn set_notifications(svc: &Services, user_id: &str, f: &NotificationSettingFields) -> Result<Value> {
    let Some(enabled) = f.enabled else {
        return Err(Error::failed("Missing required field: enabled (true or false)"));
    };
    if !svc
        .store
        .instances
        .set_notifications_off(user_id, !enabled, svc.now())
        .await?
    {
        return Err(Error::failed("Instance not found"));
    }
    crate::response::to_body(&Setting {
        message: if enabled {
            "Notifications are on"
        } else {
            "Notifications are off"
        },
        user_id,
        notifications_enabled: enabled,
    })
}
