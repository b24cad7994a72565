//! `send-notification` (spec/ACTIONS.md §4.29): acknowledged and logged only.

use serde_json::Value;

use super::Obj;
use crate::app::App;
use crate::error::{Error, Result};
use crate::event::NotificationFields;

pub async fn send_notification(_app: &App, f: &NotificationFields) -> Result<Value> {
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
    Ok(Obj::new()
        .set("success", true)
        .set("message", "Notification queued successfully")
        .set("notificationType", kind)
        .set("targetUserId", target)
        .build())
}
