//! Invocation parsing: raw event JSON → [`Invocation`].
//!
//! Four envelopes are recognised:
//! * a **direct invoke** (`{"action": …, "userId": …, …}`), which is also what an
//!   EventBridge rule with a constant input delivers;
//! * a raw EventBridge **`Scheduled Event`** (no constant input): the action is taken
//!   from `detail.action` when present, else from the rule's name in `resources[0]`
//!   (`…auto-shutdown…` → `auto-shutdown-check`, `…session-prep…` or
//!   `…prepare-sessions…` → `prepare-sessions`); the caller is `system`;
//! * an **HTTP event** from a Lambda Function URL or API Gateway (REST v1 or HTTP v2):
//!   the body (base64 or not) is either form-encoded `data=<json>` (how Ko-fi posts),
//!   a Ko-fi JSON payload, or a direct-invoke JSON object;
//! * an EventBridge **ECS event** (`source` `aws.ecs`), such as an `ECS Task State
//!   Change`: the action is `ecs-task-state-change`, the members of `detail` are its
//!   fields (never refused: the action itself ignores what it cannot use), and the caller
//!   is `system`.
//!
//! The guard and unknown-action errors are the original's, word for word. A
//! field of the wrong type is a 400 that names the field. Unknown fields are ignored.

use base64::Engine;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use crate::error::Error;
use crate::secret::Sensitive;

/// Where an invocation came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Lambda `Invoke` (SDK, CLI, the bot, an EventBridge constant input).
    Direct,
    /// A raw EventBridge `Scheduled Event`.
    Schedule,
    /// A Function URL or API Gateway request.
    Http,
    /// An EventBridge event from ECS (a task-state change).
    EcsEvent,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Direct => "direct",
            Source::Schedule => "schedule",
            Source::Http => "http",
            Source::EcsEvent => "ecs-event",
        }
    }
}

/// A parsed invocation.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub source: Source,
    /// The caller's `userId` (`system` for schedules; empty only for the two
    /// license-wide actions the bot sends without one).
    pub user_id: String,
    pub action: Action,
}

/// The user id given to Ko-fi posts that arrive over HTTP (they carry none).
pub const KOFI_CALLER: &str = "kofi";
/// The user id of automation.
pub const SYSTEM_CALLER: &str = "system";

/// Accepts a whole number given as an integer or an integral float (`5` or `5.0`).
fn whole_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let v = Option::<serde_json::Number>::deserialize(d)?;
    match v {
        None => Ok(None),
        Some(n) => {
            if let Some(i) = n.as_i64() {
                return Ok(Some(i));
            }
            match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(Some(f as i64)),
                _ => Err(serde::de::Error::custom("expected a whole number")),
            }
        }
    }
}

/// Actions without request fields of their own.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct NoFields {}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CreateFields {
    /// The public README's `username` is accepted as an alias.
    #[serde(alias = "username")]
    pub sanitized_username: Option<String>,
    pub foundry_username: Option<Sensitive>,
    pub foundry_password: Option<Sensitive>,
    pub foundry_version: Option<String>,
    pub license_type: Option<String>,
    pub allow_license_sharing: Option<bool>,
    #[serde(deserialize_with = "whole_number")]
    pub max_concurrent_users: Option<i64>,
    pub selected_license_id: Option<String>,
    /// New (backups on): restore the user's latest backup (e.g. the final backup of a
    /// destroyed instance, within `BACKUP_RETENTION_DAYS`) into the new instance.
    pub restore_backup: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DestroyFields {
    pub keep_license_sharing: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct UpdateVersionFields {
    pub foundry_version: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ScheduleFields {
    #[serde(deserialize_with = "whole_number")]
    pub start_time: Option<i64>,
    #[serde(deserialize_with = "whole_number")]
    pub end_time: Option<i64>,
    /// `duration` in minutes (the original's API reference), used when `endTime` is absent.
    #[serde(deserialize_with = "whole_number")]
    pub duration: Option<i64>,
    pub license_type: Option<String>,
    pub session_title: Option<String>,
    pub session_description: Option<String>,
    pub preferred_license_id: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SessionFields {
    pub session_id: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LicenseSharingFields {
    pub license_type: Option<String>,
    pub allow_license_sharing: Option<bool>,
    #[serde(deserialize_with = "whole_number")]
    pub max_concurrent_users: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LicenseStateFields {
    pub license_state_operation: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AvailabilityFields {
    #[serde(deserialize_with = "whole_number")]
    pub start_time: Option<i64>,
    #[serde(deserialize_with = "whole_number")]
    pub end_time: Option<i64>,
    pub license_type: Option<String>,
    pub preferred_license_id: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AdminFields {
    pub force_reason: Option<String>,
}

/// `admin-reconcile`: a dry run unless `apply` is true; `continuation` goes on where the
/// last call stopped.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ReconcileFields {
    pub dry_run: Option<bool>,
    pub apply: Option<bool>,
    pub continuation: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ForceShutdownFields {
    pub target_user_id: Option<String>,
    pub force_reason: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AdminCancelSessionFields {
    pub session_id: Option<String>,
    pub force_reason: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct KofiFields {
    /// The Ko-fi JSON text. It carries the verification token: never logged.
    pub body: Option<Sensitive>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NotificationFields {
    pub notification_type: Option<String>,
    pub target_user_id: Option<String>,
    pub message: Option<String>,
    pub session_id: Option<String>,
    pub instance_url: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NotificationSettingFields {
    /// `true`: the user's Discord notifications on; `false`: off.
    pub enabled: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BackupListFields {
    /// Another user whose backups an admin lists (default: the caller).
    pub target_user_id: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RestoreBackupFields {
    /// The backup to restore: a `backupId` as `list-backups` answers it.
    pub backup_id: Option<String>,
    /// Another user whose instance an admin restores (default: the caller).
    pub target_user_id: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LicenseFields {
    pub license_id: Option<String>,
}

/// An ECS event as it arrived: the members of its `detail`, plus `detailType` (the
/// envelope's `detail-type`) and `eventId`. Any object is accepted: the action reads what
/// it can use and ignores the rest, so a malformed event is a no-op, never a 400.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct EcsTaskFields {
    #[serde(flatten)]
    pub members: Map<String, Value>,
}

macro_rules! actions {
    ($( $variant:ident ( $fields:ty ) = $name:literal $(| $alias:literal)* ),+ $(,)?) => {
        /// Every action, with its request fields.
        #[derive(Debug, Clone)]
        pub enum Action {
            $( $variant($fields), )+
        }

        impl Action {
            /// The canonical action names, in the order of the contract's sections.
            pub const NAMES: &'static [&'static str] = &[$($name),+];

            /// The canonical name of this action.
            pub fn name(&self) -> &'static str {
                match self {
                    $( Action::$variant(_) => $name, )+
                }
            }

            /// The canonical name for `name`, which may be an alias.
            pub fn canonical(name: &str) -> Option<&'static str> {
                match name {
                    $( $name $(| $alias)* => Some($name), )+
                    _ => None,
                }
            }

            /// The action called `canonical` with its fields read from `event`.
            fn read(canonical: &str, event: &Value) -> Result<Action, Error> {
                match canonical {
                    $( $name => Ok(Action::$variant(fields::<$fields>(event)?)), )+
                    other => Err(Error::UnknownAction(other.to_string())),
                }
            }
        }
    };
}

actions! {
    Create(CreateFields) = "create" | "create-instance",
    Start(NoFields) = "start" | "start-instance",
    Stop(NoFields) = "stop" | "stop-instance",
    Destroy(DestroyFields) = "destroy" | "destroy-instance",
    Delete(NoFields) = "delete",
    Status(NoFields) = "status",
    ListAll(NoFields) = "list-all",
    UpdateVersion(UpdateVersionFields) = "update-version",
    ScheduleSession(ScheduleFields) = "schedule-session",
    CancelSession(SessionFields) = "cancel-session" | "cancel-scheduled-session",
    ListSessions(NoFields) = "list-sessions",
    SetLicenseSharing(LicenseSharingFields) = "set-license-sharing",
    ManageLicenseState(LicenseStateFields) = "manage-license-state",
    CheckAvailability(AvailabilityFields) = "check-availability",
    StartScheduledSession(SessionFields) = "start-scheduled-session",
    EndScheduledSession(SessionFields) = "end-scheduled-session",
    AutoShutdownCheck(NoFields) = "auto-shutdown-check",
    PrepareSessions(NoFields) = "prepare-sessions",
    ShutdownStats(NoFields) = "shutdown-stats",
    AdminOverview(NoFields) = "admin-overview",
    AdminForceShutdown(ForceShutdownFields) = "admin-force-shutdown",
    AdminCancelSession(AdminCancelSessionFields) = "admin-cancel-session",
    AdminCancelAllSessions(AdminFields) = "admin-cancel-all-sessions",
    AdminSystemMaintenance(AdminFields) = "admin-system-maintenance",
    AdminMaintenanceReset(AdminFields) = "admin-maintenance-reset",
    KofiWebhook(KofiFields) = "kofi-webhook",
    GetUserCosts(NoFields) = "get-user-costs",
    GetAllCosts(NoFields) = "get-all-costs",
    SendNotification(NotificationFields) = "send-notification",
    GetSessionsForLicense(LicenseFields) = "get-sessions-for-license",
    CancelSessionsForLicense(LicenseFields) = "cancel-sessions-for-license",
    GetScheduledSessions(NoFields) = "get-scheduled-sessions",
    LicensePoolStatus(NoFields) = "license-pool-status",
    RequestLicense(NoFields) = "request-license",
    ReleaseLicense(NoFields) = "release-license",
    HealthCheck(NoFields) = "health-check",
    AdminReconcile(ReconcileFields) = "admin-reconcile",
    AdminBackfillRunIndex(NoFields) = "admin-backfill-run-index",
    ListBackups(BackupListFields) = "list-backups",
    EcsTaskStateChange(EcsTaskFields) = "ecs-task-state-change",
    RestoreBackup(RestoreBackupFields) = "restore-backup",
    SetNotifications(NotificationSettingFields) = "set-notifications",
}

impl Action {
    /// The two license-wide actions the bot sends without a `userId`, and Ko-fi's
    /// webhook, which has no user to name.
    /// They are keyed by `licenseId` instead, so the guard does not require `userId`.
    fn needs_user_id(canonical: &str) -> bool {
        !matches!(
            canonical,
            "get-sessions-for-license" | "cancel-sessions-for-license" | "kofi-webhook"
        )
    }
}

fn fields<T: DeserializeOwned>(event: &Value) -> Result<T, Error> {
    serde_path_to_error::deserialize(event).map_err(|e| {
        let path = e.path().to_string();
        Error::InvalidField {
            field: if path == "." { "(event)".into() } else { path },
            reason: expectation(&e.inner().to_string()),
        }
    })
}

/// What a field should have held, without the value it held: the value may be a
/// password sent in the wrong shape, and the reason goes to the caller and the log.
fn expectation(serde_message: &str) -> String {
    match serde_message.rsplit_once(", expected ") {
        Some((_, expected)) => format!("expected {expected}"),
        None if serde_message.starts_with("expected ") => serde_message.to_string(),
        None => "it has the wrong type or value".to_string(),
    }
}

/// JavaScript truthiness of an event member.
fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0 && !f.is_nan()),
        Some(Value::Array(_)) | Some(Value::Object(_)) => true,
    }
}

/// JavaScript `String(v)` for the unknown-action message.
fn js_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(js_string).collect::<Vec<_>>().join(","),
        Value::Object(_) => "[object Object]".to_string(),
        other => crate::response::to_js_json(other),
    }
}

/// How deep an event's arrays and objects may nest: deeper events are refused before
/// they are read (serde_json reads at most 128 levels, and nothing we take is deeper
/// than a few).
pub const MAX_DEPTH: usize = 64;

/// The deepest nesting of arrays and objects in JSON text (strings skipped).
pub fn nesting_depth(raw: &str) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for b in raw.bytes() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// An event from its JSON text: refused (400) when it nests deeper than [`MAX_DEPTH`]
/// or is not JSON.
pub fn from_text(raw: &str) -> Result<Value, Error> {
    if nesting_depth(raw) > MAX_DEPTH {
        return Err(Error::BadRequest(format!(
            "The event is nested too deeply: at most {MAX_DEPTH} levels of arrays and objects are read"
        )));
    }
    serde_json::from_str(raw).map_err(|e| {
        Error::BadRequest(format!(
            "The event is not JSON (line {}, column {})",
            e.line(),
            e.column()
        ))
    })
}

/// Parses a raw invocation event.
pub fn parse(event: &Value) -> Result<Invocation, Error> {
    if let Some(obj) = event.as_object() {
        if is_http(obj) {
            return parse_http(obj);
        }
        if is_scheduled_event(obj) {
            return parse_scheduled(obj);
        }
        if is_ecs_event(obj) {
            return parse_ecs(obj);
        }
    }
    parse_direct(event, Source::Direct)
}

fn parse_direct(event: &Value, source: Source) -> Result<Invocation, Error> {
    let empty = Map::new();
    let obj = event.as_object().unwrap_or(&empty);
    let action_v = obj.get("action");
    if !truthy(action_v) {
        return Err(Error::MissingParameters);
    }
    let action_name = action_v.map(js_string).unwrap_or_default();
    // Only a string names an action (the original compared with `===`).
    let canonical = action_v.and_then(Value::as_str).and_then(Action::canonical);
    let needs_user = canonical.is_none_or(Action::needs_user_id);
    if needs_user && !truthy(obj.get("userId")) {
        return Err(Error::MissingParameters);
    }
    let canonical = canonical.ok_or_else(|| Error::UnknownAction(action_name.clone()))?;
    let user_id = match obj.get("userId") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => {
            return Err(Error::InvalidField {
                field: "userId".into(),
                reason: format!("expected a string, got {}", json_type(other)),
            })
        }
    };
    let action = Action::read(canonical, event)?;
    Ok(Invocation {
        source,
        user_id,
        action,
    })
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

// ---------------------------------------------------------------- EventBridge

fn is_scheduled_event(obj: &Map<String, Value>) -> bool {
    obj.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event")
        && matches!(
            obj.get("source").and_then(Value::as_str),
            Some("aws.events" | "aws.scheduler")
        )
}

fn parse_scheduled(obj: &Map<String, Value>) -> Result<Invocation, Error> {
    let from_detail = obj
        .get("detail")
        .and_then(|d| d.get("action"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let rule = obj
        .get("resources")
        .and_then(Value::as_array)
        .and_then(|r| r.first())
        .and_then(Value::as_str)
        .unwrap_or("");
    let rule_name = rule.rsplit('/').next().unwrap_or(rule);
    let action = match from_detail {
        Some(a) => a,
        None if rule_name.contains("auto-shutdown") => "auto-shutdown-check".to_string(),
        None if rule_name.contains("session-prep") || rule_name.contains("prepare-sessions") => {
            "prepare-sessions".to_string()
        }
        None => {
            return Err(Error::BadRequest(format!(
                "Scheduled event from rule '{rule_name}' names no action: set detail.action, or use a constant input {{\"action\":…,\"userId\":\"system\"}}"
            )))
        }
    };
    let mut direct = Map::new();
    if let Some(detail) = obj.get("detail").and_then(Value::as_object) {
        direct.extend(detail.clone());
    }
    direct.insert("action".into(), Value::String(action));
    direct.insert("userId".into(), Value::String(SYSTEM_CALLER.into()));
    parse_direct(&Value::Object(direct), Source::Schedule)
}

fn is_ecs_event(obj: &Map<String, Value>) -> bool {
    obj.get("source").and_then(Value::as_str) == Some("aws.ecs") && obj.contains_key("detail-type")
}

/// An ECS event becomes `ecs-task-state-change` from `system`, whatever it holds.
fn parse_ecs(obj: &Map<String, Value>) -> Result<Invocation, Error> {
    let mut members = Map::new();
    if let Some(detail) = obj.get("detail").and_then(Value::as_object) {
        members.extend(detail.clone());
    }
    for (from, to) in [("detail-type", "detailType"), ("id", "eventId")] {
        if let Some(v) = obj.get(from) {
            members.insert(to.into(), v.clone());
        }
    }
    Ok(Invocation {
        source: Source::EcsEvent,
        user_id: SYSTEM_CALLER.to_string(),
        action: Action::EcsTaskStateChange(EcsTaskFields { members }),
    })
}

// ---------------------------------------------------------------- HTTP

/// The HTTP front end `event` came from, if it is an HTTP event.
pub fn http_flavor(event: &Value) -> Option<crate::response::HttpFlavor> {
    let obj = event.as_object().filter(|o| is_http(o))?;
    let v2 = obj.get("version").and_then(Value::as_str) == Some("2.0") || obj.contains_key("rawPath");
    Some(if v2 {
        crate::response::HttpFlavor::V2
    } else {
        crate::response::HttpFlavor::V1
    })
}

fn is_http(obj: &Map<String, Value>) -> bool {
    obj.contains_key("requestContext")
        && (obj.contains_key("httpMethod") || obj.contains_key("rawPath") || obj.contains_key("routeKey"))
}

fn header<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    obj.get("headers")
        .and_then(Value::as_object)?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.as_str())
}

fn parse_http(obj: &Map<String, Value>) -> Result<Invocation, Error> {
    let raw = obj.get("body").and_then(Value::as_str).unwrap_or("");
    let base64 = obj.get("isBase64Encoded").and_then(Value::as_bool).unwrap_or(false);
    let body = if base64 {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(raw.trim())
            .map_err(|_| Error::BadRequest("HTTP body is not valid base64".into()))?;
        String::from_utf8(bytes).map_err(|_| Error::BadRequest("HTTP body is not UTF-8 text".into()))?
    } else {
        raw.to_string()
    };
    let content_type = header(obj, "content-type").unwrap_or("").to_ascii_lowercase();
    let trimmed = body.trim_start();
    let is_form = content_type.starts_with("application/x-www-form-urlencoded")
        || (!trimmed.starts_with('{') && trimmed.starts_with("data="));
    if is_form {
        let data = form_urlencoded::parse(body.as_bytes())
            .find(|(k, _)| k == "data")
            .map(|(_, v)| v.into_owned())
            .ok_or_else(|| Error::BadRequest("Form post has no 'data' field".into()))?;
        return Ok(kofi_invocation(data));
    }
    let json: Value = serde_json::from_str(&body)
        .map_err(|_| Error::BadRequest("HTTP body is neither JSON nor a form post with 'data'".into()))?;
    match json.as_object() {
        Some(o) if o.contains_key("action") => parse_direct(&json, Source::Http),
        Some(o) if o.contains_key("verification_token") || o.contains_key("kofi_transaction_id") => {
            Ok(kofi_invocation(body))
        }
        _ => Err(Error::BadRequest(
            "HTTP body is neither a Ko-fi payload nor an object with an 'action'".into(),
        )),
    }
}

fn kofi_invocation(payload: String) -> Invocation {
    Invocation {
        source: Source::Http,
        user_id: KOFI_CALLER.to_string(),
        action: Action::KofiWebhook(KofiFields {
            body: Some(Sensitive::new(payload)),
        }),
    }
}

/// Field names of the event, for logs: names only, never values.
pub fn field_names(event: &Value) -> Vec<String> {
    event
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(v: Value) -> Error {
        match parse(&v) {
            Ok(i) => panic!("expected an error, got {i:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn every_canonical_name_parses() {
        for name in Action::NAMES {
            let inv = parse(&json!({"action": name, "userId": "1", "licenseId": "byol-1"})).unwrap();
            assert_eq!(inv.action.name(), *name);
        }
        // 29 of the original + 2 the bot sends + 5 its API reference documents + the reconcile
        // + the backfill of the index of runs + list-backups + the ECS task-state events
        // + restore-backup + set-notifications
        assert_eq!(Action::NAMES.len(), 42);
    }

    #[test]
    fn readme_aliases_map_to_the_code_names() {
        for (alias, name) in [
            ("create-instance", "create"),
            ("start-instance", "start"),
            ("stop-instance", "stop"),
            ("destroy-instance", "destroy"),
            ("cancel-scheduled-session", "cancel-session"),
        ] {
            let inv = parse(&json!({"action": alias, "userId": "1"})).unwrap();
            assert_eq!(inv.action.name(), name);
        }
        let inv = parse(&json!({"action":"create-instance","userId":"1","username":"alice"})).unwrap();
        match inv.action {
            Action::Create(f) => assert_eq!(f.sanitized_username.as_deref(), Some("alice")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn guard_rejects_missing_or_falsy_action_and_user() {
        for v in [
            json!({}),
            json!({"action": "status"}),
            json!({"userId": "1"}),
            json!({"action": "", "userId": "1"}),
            json!({"action": "status", "userId": ""}),
            json!({"action": null, "userId": "1"}),
            json!({"action": "status", "userId": 0}),
            json!("status"),
            json!(null),
            json!([1, 2]),
        ] {
            assert!(matches!(err(v.clone()), Error::MissingParameters), "{v}");
        }
    }

    #[test]
    fn guard_comes_before_the_unknown_action_check() {
        assert!(matches!(err(json!({"action": "nope"})), Error::MissingParameters));
        match err(json!({"action": "nope", "userId": "1"})) {
            Error::UnknownAction(a) => assert_eq!(a, "nope"),
            e => panic!("{e:?}"),
        }
        match err(json!({"action": 5, "userId": "1"})) {
            Error::UnknownAction(a) => assert_eq!(a, "5"),
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn a_field_of_the_wrong_type_is_named() {
        match err(json!({"action":"schedule-session","userId":"1","startTime":"tomorrow"})) {
            Error::InvalidField { field, .. } => assert_eq!(field, "startTime"),
            e => panic!("{e:?}"),
        }
        match err(json!({"action":"create","userId":"1","allowLicenseSharing":"yes"})) {
            Error::InvalidField { field, .. } => assert_eq!(field, "allowLicenseSharing"),
            e => panic!("{e:?}"),
        }
        match err(json!({"action":"status","userId":["1"]})) {
            Error::InvalidField { field, .. } => assert_eq!(field, "userId"),
            e => panic!("{e:?}"),
        }
        let e = err(json!({"action":"schedule-session","userId":"1","startTime":1.5}));
        assert_eq!(e.status_code(), 400);
        assert!(e.to_string().contains("startTime"), "{e}");
    }

    #[test]
    fn a_field_error_names_the_expected_type_never_the_value() {
        for (event, field) in [
            (
                json!({"action":"create","userId":"1","foundryPassword":123456}),
                "foundryPassword",
            ),
            (
                json!({"action":"create","userId":"1","foundryPassword":["hunter2"]}),
                "foundryPassword",
            ),
            (
                json!({"action":"create","userId":"1","maxConcurrentUsers":123456.5}),
                "maxConcurrentUsers",
            ),
            (
                json!({"action":"kofi-webhook","userId":"1","body":{"verification_token":"tok-999"}}),
                "body",
            ),
        ] {
            let e = err(event.clone());
            let text = e.client_message();
            assert!(text.contains(field), "{text}");
            for secret in ["123456", "hunter2", "tok-999"] {
                assert!(!text.contains(secret), "{event} → {text}");
            }
        }
        let e = err(json!({"action":"create","userId":"1","foundryPassword":123456}));
        assert_eq!(
            e.client_message(),
            "Invalid request field 'foundryPassword': expected a string"
        );
    }

    #[test]
    fn deep_events_are_refused_before_they_are_read() {
        let deep = format!("{}{}", "[".repeat(5_000), "]".repeat(5_000));
        assert_eq!(nesting_depth(&deep), 5_000);
        assert!(matches!(from_text(&deep), Err(Error::BadRequest(_))));
        let inside = format!(
            r#"{{"action":"status","userId":"1","x":{}{}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        assert!(matches!(from_text(&inside), Err(Error::BadRequest(_))));
        let strings = r#"{"action":"status","userId":"1","x":"[[[[[[\"]]]]"}"#;
        assert_eq!(nesting_depth(strings), 1);
        assert!(from_text(strings).is_ok(), "{:?}", from_text(strings));
    }

    #[test]
    fn only_a_string_names_an_action() {
        match err(json!({"action":["status"],"userId":"1"})) {
            Error::UnknownAction(a) => assert_eq!(a, "status"),
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn unknown_fields_are_ignored_and_integral_floats_accepted() {
        let inv = parse(&json!({"action":"schedule-session","userId":"1","startTime":1700000000.0,"endTime":1700003600,"whatever":{"x":1}})).unwrap();
        match inv.action {
            Action::ScheduleSession(f) => {
                assert_eq!(f.start_time, Some(1_700_000_000));
                assert_eq!(f.end_time, Some(1_700_003_600));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn license_wide_actions_do_not_need_a_user_id() {
        let inv = parse(&json!({"action":"get-sessions-for-license","licenseId":"byol-1"})).unwrap();
        assert_eq!(inv.action.name(), "get-sessions-for-license");
        assert_eq!(inv.user_id, "");
    }

    #[test]
    fn eventbridge_constant_input_is_a_direct_invoke() {
        let inv = parse(&json!({"action":"auto-shutdown-check","userId":"system"})).unwrap();
        assert_eq!(inv.source, Source::Direct);
        assert_eq!(inv.action.name(), "auto-shutdown-check");
    }

    #[test]
    fn raw_scheduled_events_take_the_action_from_the_rule_or_detail() {
        let ev = |rule: &str, detail: Value| {
            json!({"version":"0","id":"x","detail-type":"Scheduled Event","source":"aws.events",
                   "account":"123456789012","time":"2026-01-01T00:00:00Z","region":"us-east-1",
                   "resources":[format!("arn:aws:events:us-east-1:123456789012:rule/{rule}")],"detail":detail})
        };
        let inv = parse(&ev("foundry-vtt-auto-shutdown-rule-1a2b3c", json!({}))).unwrap();
        assert_eq!(
            (inv.source, inv.action.name(), inv.user_id.as_str()),
            (Source::Schedule, "auto-shutdown-check", "system")
        );
        let inv = parse(&ev("foundry-vtt-session-prep-rule-9z", json!({}))).unwrap();
        assert_eq!(inv.action.name(), "prepare-sessions");
        let inv = parse(&ev("anything", json!({"action":"prepare-sessions"}))).unwrap();
        assert_eq!(inv.action.name(), "prepare-sessions");
        assert!(matches!(err(ev("mystery", json!({}))), Error::BadRequest(_)));
    }

    #[test]
    fn ecs_events_are_task_state_changes_from_system_whatever_they_hold() {
        let inv = parse(
            &json!({"version":"0","id":"e-1","detail-type":"ECS Task State Change","source":"aws.ecs",
                                "detail":{"taskArn":"arn:t","lastStatus":"RUNNING","userId":"someone"}}),
        )
        .unwrap();
        assert_eq!(
            (inv.source, inv.action.name(), inv.user_id.as_str()),
            (Source::EcsEvent, "ecs-task-state-change", "system")
        );
        match inv.action {
            Action::EcsTaskStateChange(f) => {
                assert_eq!(f.members["taskArn"], "arn:t");
                assert_eq!(f.members["detailType"], "ECS Task State Change");
                assert_eq!(f.members["eventId"], "e-1");
            }
            other => panic!("{other:?}"),
        }
        // Malformed: still the action (which ignores it), never a 400.
        for detail in [json!("text"), json!(null), json!([1]), json!({"taskArn": 5})] {
            let inv =
                parse(&json!({"detail-type":"ECS Task State Change","source":"aws.ecs","detail":detail})).unwrap();
            assert_eq!(inv.action.name(), "ecs-task-state-change");
        }
    }

    fn http_v2(body: &str, b64: bool, content_type: &str) -> Value {
        json!({"version":"2.0","routeKey":"$default","rawPath":"/","rawQueryString":"",
               "headers":{"content-type":content_type},
               "requestContext":{"http":{"method":"POST","path":"/"}},
               "body":body,"isBase64Encoded":b64})
    }

    #[test]
    fn kofi_form_posts_become_kofi_webhooks() {
        let payload = r#"{"verification_token":"t","message":"Discord: 123","amount":"3.00"}"#;
        let form: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("data", payload)
            .finish();
        let inv = parse(&http_v2(&form, false, "application/x-www-form-urlencoded")).unwrap();
        assert_eq!(inv.source, Source::Http);
        assert_eq!(inv.user_id, KOFI_CALLER);
        match inv.action {
            Action::KofiWebhook(f) => assert_eq!(f.body.unwrap().expose(), payload),
            other => panic!("{other:?}"),
        }
        // Base64-encoded, as Function URLs deliver form bodies.
        let b64 = base64::engine::general_purpose::STANDARD.encode(&form);
        let inv = parse(&http_v2(&b64, true, "application/x-www-form-urlencoded")).unwrap();
        assert_eq!(inv.action.name(), "kofi-webhook");
    }

    #[test]
    fn http_json_bodies_are_direct_invokes_or_kofi_payloads() {
        let inv = parse(&http_v2(
            r#"{"action":"status","userId":"7"}"#,
            false,
            "application/json",
        ))
        .unwrap();
        assert_eq!(
            (inv.source, inv.action.name(), inv.user_id.as_str()),
            (Source::Http, "status", "7")
        );
        let inv = parse(&http_v2(
            r#"{"verification_token":"t","amount":"1"}"#,
            false,
            "application/json",
        ))
        .unwrap();
        assert_eq!(inv.action.name(), "kofi-webhook");
        assert!(matches!(
            err(http_v2("nonsense", false, "text/plain")),
            Error::BadRequest(_)
        ));
        let v1 = json!({"httpMethod":"POST","path":"/","headers":{"Content-Type":"application/json"},
                        "requestContext":{"stage":"prod"},"body":r#"{"action":"list-all","userId":"system"}"#,"isBase64Encoded":false});
        assert_eq!(parse(&v1).unwrap().action.name(), "list-all");
    }

    #[test]
    fn passwords_do_not_show_in_the_parsed_invocation_debug() {
        let inv = parse(&json!({"action":"create","userId":"1","sanitizedUsername":"a","foundryUsername":"u","foundryPassword":"s3cr3t-pw"})).unwrap();
        assert!(!format!("{inv:?}").contains("s3cr3t-pw"));
    }
}
