//! The DynamoDB items of the five tables, and their status values.
//!
//! Attributes are read leniently (see `lenient`): an item the original wrote with an odd
//! value still reads. Every optional attribute is an `Option` that is omitted when `None`, which gives
//! JavaScript's "undefined is dropped" (absent members are left out). Unknown attributes written by other
//! tools are ignored on read; the port changes items with UpdateItem, so they survive.

use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use super::lenient;
use crate::secret::Sensitive;

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(from = "String", into = "String")]
        pub enum $name {
            $($variant,)+
            /// A value this version does not know (kept as read).
            Other(String),
        }

        impl $name {
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $text,)+
                    $name::Other(s) => s.as_str(),
                }
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                match s.as_str() {
                    $($text => $name::$variant,)+
                    _ => $name::Other(s),
                }
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.as_str().to_string()
            }
        }

        impl Default for $name {
            fn default() -> Self {
                $name::Other(String::new())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum! {
    /// Instance `status`. `creating` and `destroying` are new in
    /// the port: they mark a record whose resources are being made or torn down.
    /// `unknown` can be read from items the original wrote; the port never writes it.
    InstanceStatus {
        Creating => "creating",
        Created => "created",
        Starting => "starting",
        Running => "running",
        Stopping => "stopping",
        Stopped => "stopped",
        Destroying => "destroying",
        Unknown => "unknown",
    }
}

impl InstanceStatus {
    /// The status of an instance whose task ECS reports in `last_status`. Every ECS state
    /// maps to a status the port writes; none becomes `unknown`.
    pub fn of_task(last_status: &str) -> InstanceStatus {
        match last_status.to_ascii_uppercase().as_str() {
            "PROVISIONING" | "PENDING" | "ACTIVATING" => InstanceStatus::Starting,
            "RUNNING" => InstanceStatus::Running,
            "DEACTIVATING" | "STOPPING" | "DEPROVISIONING" => InstanceStatus::Stopping,
            _ => InstanceStatus::Stopped, // STOPPED, DELETED
        }
    }
}

string_enum! {
    /// Scheduled session `status`. `starting` is new in the port: the one invocation that
    /// claimed the session is starting its server.
    SessionStatus {
        Scheduled => "scheduled",
        Starting => "starting",
        Active => "active",
        Completed => "completed",
        Cancelled => "cancelled",
    }
}

string_enum! {
    /// License reservation `status`.
    ReservationStatus {
        Active => "active",
        Completed => "completed",
        Cancelled => "cancelled",
    }
}

/// An instances-table item.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Instance {
    #[serde(deserialize_with = "lenient::string")]
    pub user_id: String,
    #[serde(deserialize_with = "lenient::string")]
    pub sanitized_username: String,
    pub status: InstanceStatus,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub access_point_id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub secret_arn: Option<String>,
    pub admin_key: Option<Sensitive>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub foundry_version: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub s3_bucket_name: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub s3_access_key_id: Option<String>,
    /// Written by the original in plain text. The port reads it only to migrate
    /// old records; it never writes it.
    pub s3_secret_access_key: Option<Sensitive>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub target_group_arn: Option<String>,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub alb_rule_priority: Option<i64>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub task_arn: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub task_definition_arn: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub task_private_ip: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub alb_rule_arn: Option<String>,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub created_at: Option<i64>,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub updated_at: Option<i64>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub license_type: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub license_owner_id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub allow_license_sharing: Option<bool>,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub max_concurrent_users: Option<i64>,
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub stop_sharing_after_sessions: Option<bool>,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub license_sharing_scheduled_stop: Option<i64>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub license_sharing_state: Option<String>,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub last_license_sharing_change: Option<i64>,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub started_at: Option<i64>,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub auto_shutdown_at: Option<i64>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub linked_session_id: Option<String>,
    // --- new in the port (lifecycle bookkeeping; never returned to clients) ---
    /// Idempotency token of the create (CreateAccessPoint) or of the last start
    /// (RunTask `clientToken`, `startedBy`).
    #[serde(deserialize_with = "lenient::opt_string")]
    pub attempt_id: Option<String>,
    /// The invocation that holds this record while it creates, starts or destroys, and
    /// until when (Unix seconds). An expired lease belongs to an invocation that died.
    #[serde(deserialize_with = "lenient::opt_string")]
    pub lease_id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub lease_until: Option<i64>,
    /// While creating: whether this create makes the user's secret (there was none),
    /// so that its rollback deletes the secret rather than restoring it.
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub secret_created: Option<bool>,
    /// The EFS cleanup task a `destroy` of an earlier version launched and recorded; a
    /// destroy that finds it waits for that task. No longer written (the cleanup task is
    /// found by its `startedBy`); it goes with the record.
    #[serde(deserialize_with = "lenient::opt_string")]
    pub cleanup_task_arn: Option<String>,
    /// The license the running server uses for a scheduled session (new in the port;
    /// cleared when the run ends). A BYOL owner's on-demand run uses `byol-<userId>`.
    #[serde(deserialize_with = "lenient::opt_string")]
    pub active_license_id: Option<String>,
    /// Set when this port's `create` claimed the subdomain with an atomic Route 53
    /// CREATE: the name then belongs to this user alone.
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub dns_record: Option<bool>,
    // --- idle detection (new in the port; written by auto-shutdown's probe of the server) ---
    /// When the last probe of the server's `/api/status` was made.
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub last_probe_at: Option<i64>,
    /// How it went: `ok`, or why nothing could be said (`timeout`, `refused`, `http-500`,
    /// `not-json`, …).
    #[serde(deserialize_with = "lenient::opt_string")]
    pub last_probe_result: Option<String>,
    /// The players the last probe counted (absent when it failed).
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub players: Option<i64>,
    /// The last time a probe saw a player connected.
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub last_players_seen_at: Option<i64>,
    /// The last world backup task launched for the user, and when (new; with backups on).
    #[serde(deserialize_with = "lenient::opt_string")]
    pub backup_task_arn: Option<String>,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub backup_launched_at: Option<i64>,
    /// When the latest good backup was made (the latest version in the backup bucket when
    /// the last backup was launched; Unix seconds). `status` shows it.
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub last_backup_at: Option<i64>,
    /// What caused the backup task in `backup_task_arn` (`run-end`, `pre-destroy`, …).
    #[serde(deserialize_with = "lenient::opt_string")]
    pub backup_cause: Option<String>,
    /// When a backup task was last found failed (or stopped before it finished), and why;
    /// cleared by the next good one. The next end of a run tries again.
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub last_backup_failed_at: Option<i64>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub last_backup_failure: Option<String>,
    /// Present while a `restore-backup` is unfinished: the backup being restored. A start
    /// is refused while it is present (the directory may be half restored).
    #[serde(deserialize_with = "lenient::opt_string")]
    pub restore_state: Option<String>,
    /// The step of that restore (`backup`: the backup of the current state; `restore`: the
    /// restore task) and the task of that step.
    #[serde(deserialize_with = "lenient::opt_string")]
    pub restore_step: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub restore_task_arn: Option<String>,
    /// While destroying: when the final backup (cause `pre-destroy`) was found done, so that
    /// a destroy that resumes does not take it again.
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub final_backup_at: Option<i64>,
    /// Why the last task stopped by itself, as ECS reported it (new in the port): written
    /// when a run ends because ECS reports its task stopped (a task-state event or a
    /// refresh), removed when the function itself ends a run that had a task.
    #[serde(deserialize_with = "lenient_stop_reason")]
    pub last_stop_reason: Option<StopReason>,
    /// The user turned Discord notifications off (new; `set-notifications`). Absent: on.
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub notifications_off: Option<bool>,
}

/// Why a task stopped, as ECS reported it: the instance item's `lastStopReason` map and
/// the `status` answer's member of the same name.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StopReason {
    /// ECS's `stoppedReason` (e.g. `Essential container in task exited`).
    #[serde(deserialize_with = "lenient::opt_string")]
    pub reason: Option<String>,
    /// ECS's `stopCode` (e.g. `EssentialContainerExited`), when the report carried one.
    #[serde(deserialize_with = "lenient::opt_string")]
    pub stop_code: Option<String>,
    /// The exit code of the Foundry container, when it had one.
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub exit_code: Option<i64>,
    /// The task that stopped.
    #[serde(deserialize_with = "lenient::opt_string")]
    pub task_arn: Option<String>,
    /// When the run was ended for it (Unix seconds).
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub at: Option<i64>,
}

/// A `lastStopReason` that is not a map of the expected members reads as absent: one odd
/// attribute must never make the whole item unreadable.
fn lenient_stop_reason<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<StopReason>, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?;
    Ok(v.and_then(|v| serde_json::from_value(v).ok()))
}

impl Instance {
    /// The effective license type (`byol` when absent, as the original assumes).
    pub fn license_type_or_default(&self) -> &str {
        self.license_type.as_deref().unwrap_or("byol")
    }

    /// The license this instance's server uses while it runs: the one of the session it
    /// runs for, else the owner's own license for a BYOL on-demand run.
    pub fn license_in_use(&self) -> Option<String> {
        self.active_license_id
            .clone()
            .or_else(|| (self.license_type_or_default() == "byol").then(|| super::names::license_id(&self.user_id)))
    }

    /// The stored version, or the original's default `13`.
    pub fn foundry_version_or_default(&self) -> &str {
        self.foundry_version.as_deref().unwrap_or("13")
    }
}

/// A license-pool item.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LicensePool {
    #[serde(deserialize_with = "lenient::string")]
    pub license_id: String,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub owner_id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub owner_username: Option<String>,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub max_concurrent_users: Option<i64>,
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub is_active: Option<bool>,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub created_at: Option<i64>,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub updated_at: Option<i64>,
}

/// A booked time window of a license, as the license's ledger keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Booking {
    pub session_id: String,
    pub start_time: i64,
    pub end_time: i64,
}

/// The ledger of one license (new in the port): every booking that still holds the
/// license, and a version that every change increments. Bookings are made and released
/// with writes conditional on the version, so two bookings of overlapping windows can
/// never both succeed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Ledger {
    pub version: i64,
    pub bookings: Vec<Booking>,
}

impl LicensePool {
    pub fn active(&self) -> bool {
        self.is_active == Some(true)
    }
}

/// A scheduled-session item.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ScheduledSession {
    #[serde(deserialize_with = "lenient::string")]
    pub session_id: String,
    #[serde(deserialize_with = "lenient::string")]
    pub user_id: String,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub username: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub license_type: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub license_id: Option<String>,
    #[serde(deserialize_with = "lenient::i64")]
    pub start_time: i64,
    #[serde(deserialize_with = "lenient::i64")]
    pub end_time: i64,
    pub status: SessionStatus,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub title: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub description: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub instance_id: Option<String>,
    /// The reservation booked with the session (new in the port).
    #[serde(deserialize_with = "lenient::opt_string")]
    pub reservation_id: Option<String>,
    /// Why the session was cancelled (new in the port): `user`, `admin`, `expired`,
    /// `start-failed`, `owner-left`, `maintenance`.
    #[serde(deserialize_with = "lenient::opt_string")]
    pub cancel_reason: Option<String>,
    /// A "play now" window booked by `request-license` (new in the port): it starts when
    /// its user calls `start`, never by the sweep, and its server stops at its end.
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub on_demand: Option<bool>,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub created_at: Option<i64>,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub updated_at: Option<i64>,
}

impl ScheduledSession {
    /// Whether `request-license` booked this session (a "play now" window).
    pub fn on_demand(&self) -> bool {
        self.on_demand == Some(true)
    }
}

/// A license-reservation item.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Reservation {
    #[serde(deserialize_with = "lenient::string")]
    pub reservation_id: String,
    #[serde(deserialize_with = "lenient::string")]
    pub license_id: String,
    #[serde(deserialize_with = "lenient::string")]
    pub session_id: String,
    #[serde(deserialize_with = "lenient::string")]
    pub user_id: String,
    #[serde(deserialize_with = "lenient::i64")]
    pub start_time: i64,
    #[serde(deserialize_with = "lenient::i64")]
    pub end_time: i64,
    pub status: ReservationStatus,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub created_at: Option<i64>,
}

/// A usage item.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Usage {
    #[serde(deserialize_with = "lenient::string")]
    pub usage_key: String,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub last_start: Option<i64>,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub sessions_started: Option<i64>,
    #[serde(deserialize_with = "lenient::opt_f64")]
    pub hours_this_month: Option<f64>,
    #[serde(deserialize_with = "lenient::opt_f64")]
    pub donations_this_month: Option<f64>,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub last_donation: Option<i64>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub last_donor_name: Option<String>,
}

/// The JSON of a credentials secret: `username`, `password`, `admin_key` as the original
/// wrote them, plus the S3 key pair in the port, which the task reads as container
/// secrets instead of from a task-definition command.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Credentials {
    #[serde(default)]
    pub username: Option<Sensitive>,
    #[serde(default)]
    pub password: Option<Sensitive>,
    #[serde(default)]
    pub admin_key: Option<Sensitive>,
    #[serde(default)]
    pub s3_access_key_id: Option<String>,
    #[serde(default)]
    pub s3_secret_access_key: Option<Sensitive>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_status_values_survive_a_round_trip() {
        let s: InstanceStatus = serde_json::from_value(json!("provisioning")).unwrap();
        assert_eq!(s, InstanceStatus::Other("provisioning".into()));
        assert_eq!(serde_json::to_value(&s).unwrap(), json!("provisioning"));
        let s: InstanceStatus = serde_json::from_value(json!("running")).unwrap();
        assert_eq!(s, InstanceStatus::Running);
    }

    #[test]
    fn every_ecs_state_maps_to_a_real_status() {
        for (ecs, want) in [
            ("PROVISIONING", "starting"),
            ("PENDING", "starting"),
            ("ACTIVATING", "starting"),
            ("RUNNING", "running"),
            ("DEACTIVATING", "stopping"),
            ("STOPPING", "stopping"),
            ("DEPROVISIONING", "stopping"),
            ("STOPPED", "stopped"),
            ("DELETED", "stopped"),
            ("running", "running"),
        ] {
            assert_eq!(InstanceStatus::of_task(ecs).as_str(), want, "{ecs}");
        }
    }

    #[test]
    fn absent_optionals_are_omitted() {
        let i = Instance {
            user_id: "1".into(),
            sanitized_username: "alice".into(),
            status: InstanceStatus::Created,
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&i).unwrap(),
            json!({"userId":"1","sanitizedUsername":"alice","status":"created"})
        );
    }

    #[test]
    fn items_with_missing_attributes_still_decode() {
        let p: LicensePool =
            serde_json::from_value(json!({"licenseId":"byol-1","isActive":false,"updatedAt":5})).unwrap();
        assert_eq!(p.license_id, "byol-1");
        assert!(!p.active());
        let i: Instance = serde_json::from_value(json!({"userId":"1","extra":"x"})).unwrap();
        assert_eq!(i.status, InstanceStatus::default());
    }

    #[test]
    fn secrets_do_not_show_in_debug() {
        let c = Credentials {
            username: Some("u".into()),
            password: Some(Sensitive::new("p4ss")),
            admin_key: Some(Sensitive::new("adm1n")),
            ..Default::default()
        };
        let d = format!("{c:?}");
        assert!(!d.contains("p4ss") && !d.contains("adm1n"));
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            json!({"username":"u","password":"p4ss","admin_key":"adm1n"})
        );
    }
}
