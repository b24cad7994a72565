//! `send-notification`: acknowledged and logged only (no delivery channel exists).

use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::event::NotificationFields;

/// The answer of `send-notification`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Queued<'a> {
    success: bool,
    message: &'static str,
    notification_type: &'a str,
    target_user_id: &'a str,
}

pub async fn send_notification(f: &NotificationFields) -> Result<Value> {
    let (Some(kind), Some(target)) = (
        f.notification_type.as_deref().filter(|s| !s.is_empty()),
        f.target_user_id.as_deref().filter(|s| !s.is_empty()),
    ) else {
        return Err(Error::failed("Missing required fields: notificationType, targetUserId"));
    };
    tracing::info!(
        notificationType = kind,
        targetUserId = target,
        sessionId = f.session_id.as_deref(),
        instanceUrl = f.instance_url.as_deref(),
        "notification queued (log only: no delivery channel is configured)"
    );
    crate::response::to_body(&Queued {
        success: true,
        message: "Notification queued successfully",
        notification_type: kind,
        target_user_id: target,
    })
}
