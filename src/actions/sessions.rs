//! Scheduled-session actions (spec/ACTIONS.md §4.9–§4.11).

use serde_json::Value;

use super::instance::session_json;
use super::Obj;
use crate::app::App;
use crate::error::Result;

/// `list-sessions` (§4.11): every session of the caller, all pages, all statuses.
pub async fn list_sessions(app: &App, user_id: &str) -> Result<Value> {
    let sessions = app.store.sessions_of_user(user_id).await?;
    let list: Vec<Value> = sessions.iter().map(session_json).collect();
    let count = list.len();
    Ok(Obj::new().set("sessions", list).set("count", count).build())
}
