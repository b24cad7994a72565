//! Every environment variable the function reads, typed, with
//! defaults, read once at cold start.

use std::collections::BTreeSet;

use crate::secret::Sensitive;

/// The configuration of one deployment.
#[derive(Debug, Clone)]
pub struct Config {
    pub region: String,
    pub cluster_name: String,
    pub instance_table: String,
    pub license_pool_table: String,
    pub scheduled_sessions_table: String,
    pub license_reservations_table: String,
    pub usage_table: String,
    pub file_system_id: String,
    pub vpc_id: String,
    pub private_subnet_ids: Vec<String>,
    pub task_security_group_id: String,
    pub task_role_arn: String,
    pub execution_role_arn: String,
    /// Read but unused, as in the original.
    pub load_balancer_arn: Option<String>,
    pub alb_https_listener_arn: String,
    pub alb_dns_name: String,
    pub alb_zone_id: String,
    pub route53_hosted_zone_id: String,
    pub domain_name: String,
    /// `None` when unset or empty. The port refuses Ko-fi webhooks without it.
    pub kofi_verification_token: Option<Sensitive>,
    /// The currency Ko-fi payments are credited in (new; `KOFI_CURRENCY`, default `USD`).
    pub kofi_currency: String,
    /// The raw `INSTANCE_COST_PER_HOUR` text (default `0.10`).
    pub instance_cost_per_hour_raw: String,
    /// `parseFloat` of it (NaN when it has no numeric prefix, as in the original).
    pub instance_cost_per_hour: f64,
    /// Discord user ids allowed to call the admin actions (new in the port).
    pub admin_user_ids: BTreeSet<String>,
    /// How many seconds before its start a scheduled session is launched (new).
    pub session_lead_seconds: i64,
    /// The longest session that can be booked, in seconds (new).
    pub max_session_seconds: i64,
    /// Subdomain labels no user may take (new): the operator's own names.
    pub reserved_subdomains: BTreeSet<String>,
    /// CloudWatch namespace of the EMF metrics (new).
    pub metrics_namespace: String,
    /// Retention of the per-user ECS log groups, in days (new).
    pub log_retention_days: i32,
    /// Minutes without a player after which auto-shutdown stops a server (new;
    /// `IDLE_SHUTDOWN_MINUTES`, default 30; 0 turns idle detection off).
    pub idle_shutdown_minutes: i64,
    /// The longest an on-demand run may last when its deadline follows play, in hours
    /// (new; `IDLE_MAX_RUN_HOURS`, default 12).
    pub idle_max_run_hours: i64,
    /// Where a server's `/api/status` is asked (new; `FOUNDRY_STATUS_URL_TEMPLATE`).
    pub foundry_status_url_template: String,
    /// How long one probe of a server may take, in milliseconds (new;
    /// `FOUNDRY_STATUS_TIMEOUT_MS`, default 3000).
    pub foundry_status_timeout_ms: u64,
    /// World backups (new; `BACKUPS=on`): `None` while they are off, the default.
    pub backups: Option<BackupSettings>,
    /// Whether a start waits for its task to run (new; `START_WAIT`, default `poll`).
    pub start_wait: StartWait,
    /// Discord notifications (new; `NOTIFICATIONS=on`): `None` while they are off, the
    /// default.
    pub notifications: Option<NotifySettings>,
    /// The outbox of notifications (new; `NOTIFICATION_TABLE_NAME`, default
    /// `<INSTANCE_TABLE_NAME>-notifications`).
    pub notification_table: String,
}

/// How notifications reach a user (`NOTIFY_VIA`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NotifyVia {
    /// `dm` (the default): a direct message from the bot; the webhook, when there is one,
    /// only for users who accept no direct messages.
    #[default]
    Dm,
    /// `channel`: the webhook's channel, mentioning the user.
    Channel,
}

/// The settings of Discord notifications, once `NOTIFICATIONS=on`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifySettings {
    /// `DISCORD_TOKEN_SECRET`: the Secrets Manager secret (name or ARN) holding the bot's
    /// token. The token itself is never in the environment.
    pub token_secret: String,
    /// `DISCORD_WEBHOOK_SECRET`: the secret holding the fallback webhook's URL (optional).
    pub webhook_secret: Option<String>,
    /// `DISCORD_API_BASE_URL` (default `https://discord.com/api/v10`).
    pub api_base_url: String,
    /// `NOTIFY_VIA`.
    pub via: NotifyVia,
    /// `NOTIFY_BUDGET_MS` (default 1000): the real time an action spends sending what it
    /// caused, all of it together.
    pub budget_ms: u64,
    /// `SESSION_REMINDER_MINUTES` (default 15; 0: no reminders).
    pub reminder_minutes: i64,
    /// `NOTIFY_MAX_AGE_MINUTES` (default 60): a notification not sent by then is dropped.
    pub max_age_minutes: i64,
    /// `NOTIFY_MAX_PER_RUN` (default 25): the most notifications one invocation sends.
    pub max_per_run: usize,
    /// `DEADLINE_WARNING_MINUTES` (default 10): how long before an auto-shutdown deadline,
    /// or an idle stop, the warning is sent.
    pub warning_minutes: i64,
}

/// Default of `DISCORD_API_BASE_URL`.
pub const DEFAULT_DISCORD_API_BASE_URL: &str = "https://discord.com/api/v10";

/// `NOTIFICATIONS` (`on`/`off`, default off) and, when on, the settings it needs.
fn notify_settings(
    get: impl Fn(&str) -> Option<String>,
    missing: &mut Vec<String>,
    invalid: &mut Vec<String>,
) -> Option<NotifySettings> {
    match get("NOTIFICATIONS").map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        None | Some("off") => None,
        Some("on") => {
            let token_secret = get("DISCORD_TOKEN_SECRET")
                .map(|v| v.trim().to_string())
                .unwrap_or_else(|| {
                    missing.push("DISCORD_TOKEN_SECRET (NOTIFICATIONS=on)".to_string());
                    String::new()
                });
            let webhook_secret = get("DISCORD_WEBHOOK_SECRET").map(|v| v.trim().to_string());
            let api_base_url = get("DISCORD_API_BASE_URL")
                .map(|v| v.trim().trim_end_matches('/').to_string())
                .unwrap_or_else(|| DEFAULT_DISCORD_API_BASE_URL.to_string());
            if !(api_base_url.starts_with("https://") || api_base_url.starts_with("http://")) {
                invalid.push(format!(
                    "DISCORD_API_BASE_URL must be an http(s) URL, got '{api_base_url}'"
                ));
            }
            let via = match get("NOTIFY_VIA").map(|v| v.trim().to_ascii_lowercase()).as_deref() {
                None | Some("dm") => NotifyVia::Dm,
                Some("channel") => {
                    if webhook_secret.is_none() {
                        missing.push("DISCORD_WEBHOOK_SECRET (NOTIFY_VIA=channel)".to_string());
                    }
                    NotifyVia::Channel
                }
                Some(other) => {
                    invalid.push(format!("NOTIFY_VIA must be 'dm' or 'channel', got '{other}'"));
                    NotifyVia::Dm
                }
            };
            let mut whole = |var: &str, unit: &str, default: i64, range: std::ops::RangeInclusive<i64>| {
                whole_in(get(var), var, unit, default, range, invalid)
            };
            let budget_ms = whole("NOTIFY_BUDGET_MS", "milliseconds", 1_000, 100..=10_000);
            let reminder_minutes = whole("SESSION_REMINDER_MINUTES", "minutes", 15, 0..=1_440);
            let max_age_minutes = whole("NOTIFY_MAX_AGE_MINUTES", "minutes", 60, 1..=10_080);
            let max_per_run = whole("NOTIFY_MAX_PER_RUN", "notifications", 25, 1..=500);
            let warning_minutes = whole("DEADLINE_WARNING_MINUTES", "minutes", 10, 0..=120);
            Some(NotifySettings {
                token_secret,
                webhook_secret,
                api_base_url,
                via,
                budget_ms: u64::try_from(budget_ms).unwrap_or(1_000),
                reminder_minutes,
                max_age_minutes,
                max_per_run: usize::try_from(max_per_run).unwrap_or(25),
                warning_minutes,
            })
        }
        Some(other) => {
            invalid.push(format!("NOTIFICATIONS must be 'on' or 'off', got '{other}'"));
            None
        }
    }
}

/// The settings of world backups, all required once `BACKUPS=on`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSettings {
    /// `BACKUP_BUCKET`: the deployment's versioned backup bucket (one prefix per user).
    pub bucket: String,
    /// `BACKUP_TASK_ROLE_ARN`: the role of the backup task (write to the bucket, no more).
    pub task_role_arn: String,
    /// `BACKUP_RETENTION_DAYS` (default 30): how long the final backup of a destroyed
    /// instance is kept, and may be restored by a `create` (the bucket's lifecycle rule for
    /// destroyed users' backups uses the same number of days).
    pub retention_days: i64,
}

/// The default of `BACKUP_RETENTION_DAYS`.
pub const DEFAULT_BACKUP_RETENTION_DAYS: i64 = 30;

/// `BACKUPS` (`on`/`off`, default off) and, when on, the settings it needs.
fn backup_settings(
    get: impl Fn(&str) -> Option<String>,
    missing: &mut Vec<String>,
    invalid: &mut Vec<String>,
) -> Option<BackupSettings> {
    match get("BACKUPS").map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        None | Some("off") => None,
        Some("on") => {
            let mut req = |k: &str| {
                get(k).map(|v| v.trim().to_string()).unwrap_or_else(|| {
                    missing.push(format!("{k} (BACKUPS=on)"));
                    String::new()
                })
            };
            let retention_days = match get("BACKUP_RETENTION_DAYS").map(|v| v.trim().to_string()) {
                None => DEFAULT_BACKUP_RETENTION_DAYS,
                Some(v) => match v.parse::<i64>() {
                    Ok(d) if (1..=3650).contains(&d) => d,
                    _ => {
                        invalid.push(format!(
                            "BACKUP_RETENTION_DAYS must be a whole number of days from 1 to 3650, got '{v}'"
                        ));
                        DEFAULT_BACKUP_RETENTION_DAYS
                    }
                },
            };
            Some(BackupSettings {
                bucket: req("BACKUP_BUCKET"),
                task_role_arn: req("BACKUP_TASK_ROLE_ARN"),
                retention_days,
            })
        }
        Some(other) => {
            invalid.push(format!("BACKUPS must be 'on' or 'off', got '{other}'"));
            None
        }
    }
}

/// How a start learns that its task runs (`START_WAIT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartWait {
    /// `poll` (the default): the start polls ECS until the task runs (or its time is up),
    /// then routes it.
    #[default]
    Poll,
    /// `events`: the start answers `starting` right after RunTask; the task's `RUNNING`
    /// event (or the next `status`) finishes the run. Needs the EventBridge rule on the
    /// cluster's task-state events.
    Events,
}

/// The variables without which the function cannot work.
pub const REQUIRED: &[&str] = &[
    "CLUSTER_NAME",
    "INSTANCE_TABLE_NAME",
    "USAGE_TABLE_NAME",
    "FILE_SYSTEM_ID",
    "VPC_ID",
    "PRIVATE_SUBNET_IDS",
    "TASK_SECURITY_GROUP_ID",
    "TASK_ROLE_ARN",
    "EXECUTION_ROLE_ARN",
    "ALB_HTTPS_LISTENER_ARN",
    "ALB_DNS_NAME",
    "ALB_ZONE_ID",
    "ROUTE53_HOSTED_ZONE_ID",
    "DOMAIN_NAME",
];

/// Default of `SESSION_LEAD_SECONDS`: start Foundry five minutes before the session.
pub const DEFAULT_SESSION_LEAD_SECONDS: i64 = 300;

/// Default of `RESERVED_SUBDOMAINS`: names an operator's zone commonly uses for itself.
pub const DEFAULT_RESERVED_SUBDOMAINS: &[&str] = &[
    "www",
    "api",
    "admin",
    "mail",
    "bot",
    "status",
    "app",
    "ftp",
    "smtp",
    "imap",
    "pop",
    "mx",
    "ns",
    "ns1",
    "ns2",
    "dns",
    "webmail",
    "cdn",
    "static",
    "assets",
    "auth",
    "login",
    "dashboard",
    "help",
    "support",
    "docs",
    "blog",
    "dev",
    "staging",
    "test",
    "foundry",
    "discord",
    "kofi",
];

/// Default of `MAX_SESSION_SECONDS`: a session lasts at most a day.
pub const DEFAULT_MAX_SESSION_SECONDS: i64 = 86_400;

/// Default of `IDLE_SHUTDOWN_MINUTES`: a server nobody plays on stops after half an hour.
pub const DEFAULT_IDLE_SHUTDOWN_MINUTES: i64 = 30;

/// Default of `IDLE_MAX_RUN_HOURS`: a deadline that follows play stops 12 h into the run.
pub const DEFAULT_IDLE_MAX_RUN_HOURS: i64 = 12;

/// Default of `FOUNDRY_STATUS_URL_TEMPLATE`: the server's public URL (the function is not
/// in the VPC).
pub const DEFAULT_FOUNDRY_STATUS_URL_TEMPLATE: &str = "https://{sanitizedUsername}.{domain}/api/status";

/// Default of `FOUNDRY_STATUS_TIMEOUT_MS`: one probe may take 3 s.
pub const DEFAULT_FOUNDRY_STATUS_TIMEOUT_MS: i64 = 3_000;

/// Default of `LOG_RETENTION_DAYS`: the original deployment kept its ECS log group 3 days.
pub const DEFAULT_LOG_RETENTION_DAYS: i32 = 3;

/// A whole number of seconds within `range`, or `default` when unset. A value outside
/// is reported in `invalid`.
fn seconds_in(
    value: Option<String>,
    var: &str,
    default: i64,
    range: std::ops::RangeInclusive<i64>,
    invalid: &mut Vec<String>,
) -> i64 {
    whole_in(value, var, "seconds", default, range, invalid)
}

/// A whole number within `range`, or `default` when unset. A value outside is reported
/// in `invalid`, with its `unit`.
fn whole_in(
    value: Option<String>,
    var: &str,
    unit: &str,
    default: i64,
    range: std::ops::RangeInclusive<i64>,
    invalid: &mut Vec<String>,
) -> i64 {
    let Some(v) = value else { return default };
    match v.trim().parse::<i64>() {
        Ok(n) if range.contains(&n) => n,
        _ => {
            invalid.push(format!(
                "{var} must be a whole number of {unit} between {} and {}, got '{v}'",
                range.start(),
                range.end()
            ));
            default
        }
    }
}

/// A CloudWatch Logs retention in days, or `default` when unset. Another value is reported
/// in `invalid`.
fn retention_days(value: Option<String>, default: i32, invalid: &mut Vec<String>) -> i32 {
    let Some(v) = value else { return default };
    match v.trim().parse::<i32>() {
        Ok(d) if crate::domain::retention::is_valid_retention(d) => d,
        _ => {
            invalid.push(format!(
                "LOG_RETENTION_DAYS must be a CloudWatch Logs retention (1, 3, 5, 7, 14, 30, 60, 90, …, 3653), got '{v}'"
            ));
            default
        }
    }
}

/// The items of a comma-separated list, trimmed, without empty ones.
fn comma_list(value: &str) -> impl Iterator<Item = String> + '_ {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Why the configuration cannot be used. Lists every problem at once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid configuration: {}", describe(.missing, .invalid))]
pub struct ConfigError {
    pub missing: Vec<String>,
    pub invalid: Vec<String>,
}

fn describe(missing: &[String], invalid: &[String]) -> String {
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!(
            "missing required environment variables: {}",
            missing.join(", ")
        ));
    }
    if !invalid.is_empty() {
        parts.push(invalid.join("; "));
    }
    parts.join("; ")
}

impl Config {
    /// From the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// From any lookup (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        // Unset and empty are the same thing, as in the original's `process.env.X || …`.
        let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let mut missing = Vec::new();
        let mut invalid = Vec::new();
        let mut req = |k: &str| match get(k) {
            Some(v) => v,
            None => {
                missing.push(k.to_string());
                String::new()
            }
        };
        let cluster_name = req("CLUSTER_NAME");
        let instance_table = req("INSTANCE_TABLE_NAME");
        let usage_table = req("USAGE_TABLE_NAME");
        let file_system_id = req("FILE_SYSTEM_ID");
        let vpc_id = req("VPC_ID");
        let subnets_raw = req("PRIVATE_SUBNET_IDS");
        let task_security_group_id = req("TASK_SECURITY_GROUP_ID");
        let task_role_arn = req("TASK_ROLE_ARN");
        let execution_role_arn = req("EXECUTION_ROLE_ARN");
        let alb_https_listener_arn = req("ALB_HTTPS_LISTENER_ARN");
        let alb_dns_name = req("ALB_DNS_NAME");
        let alb_zone_id = req("ALB_ZONE_ID");
        let route53_hosted_zone_id = req("ROUTE53_HOSTED_ZONE_ID");
        let domain_name = req("DOMAIN_NAME");

        let private_subnet_ids: Vec<String> = comma_list(&subnets_raw).collect();
        if !subnets_raw.is_empty() && private_subnet_ids.is_empty() {
            invalid.push("PRIVATE_SUBNET_IDS lists no subnet".to_string());
        }

        let instance_cost_per_hour_raw = get("INSTANCE_COST_PER_HOUR").unwrap_or_else(|| "0.10".to_string());
        let instance_cost_per_hour = crate::domain::jsnum::parse_float(&instance_cost_per_hour_raw);

        let mut seconds = |var: &str, default: i64, range: std::ops::RangeInclusive<i64>| {
            seconds_in(get(var), var, default, range, &mut invalid)
        };
        let session_lead_seconds = seconds("SESSION_LEAD_SECONDS", DEFAULT_SESSION_LEAD_SECONDS, 0..=86_400);
        let max_session_seconds = seconds("MAX_SESSION_SECONDS", DEFAULT_MAX_SESSION_SECONDS, 900..=604_800);

        let mut whole = |var: &str, unit: &str, default: i64, range: std::ops::RangeInclusive<i64>| {
            whole_in(get(var), var, unit, default, range, &mut invalid)
        };
        let idle_shutdown_minutes = whole(
            "IDLE_SHUTDOWN_MINUTES",
            "minutes",
            DEFAULT_IDLE_SHUTDOWN_MINUTES,
            0..=1_440,
        );
        let idle_max_run_hours = whole("IDLE_MAX_RUN_HOURS", "hours", DEFAULT_IDLE_MAX_RUN_HOURS, 1..=168);
        let foundry_status_timeout_ms = whole(
            "FOUNDRY_STATUS_TIMEOUT_MS",
            "milliseconds",
            DEFAULT_FOUNDRY_STATUS_TIMEOUT_MS,
            100..=10_000,
        );
        let foundry_status_url_template = get("FOUNDRY_STATUS_URL_TEMPLATE")
            .map(|t| t.trim().to_string())
            .unwrap_or_else(|| DEFAULT_FOUNDRY_STATUS_URL_TEMPLATE.to_string());
        if let Err(why) = crate::domain::idle::check_url_template(&foundry_status_url_template) {
            invalid.push(format!("FOUNDRY_STATUS_URL_TEMPLATE {why}"));
        }

        let log_retention_days = retention_days(get("LOG_RETENTION_DAYS"), DEFAULT_LOG_RETENTION_DAYS, &mut invalid);

        let start_wait = match get("START_WAIT").map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            None | Some("poll") => StartWait::Poll,
            Some("events") => StartWait::Events,
            Some(other) => {
                invalid.push(format!("START_WAIT must be 'poll' or 'events', got '{other}'"));
                StartWait::Poll
            }
        };

        let kofi_currency = get("KOFI_CURRENCY")
            .map(|c| c.trim().to_ascii_uppercase())
            .unwrap_or_else(|| "USD".to_string());
        if !crate::domain::kofi::valid_currency(&kofi_currency) {
            invalid.push(format!(
                "KOFI_CURRENCY must be a three-letter currency code, got '{kofi_currency}'"
            ));
        }

        let reserved_subdomains: BTreeSet<String> = match get("RESERVED_SUBDOMAINS") {
            Some(v) => comma_list(&v).map(|l| l.to_ascii_lowercase()).collect(),
            None => DEFAULT_RESERVED_SUBDOMAINS.iter().map(|l| l.to_string()).collect(),
        };

        let backups = backup_settings(get, &mut missing, &mut invalid);
        let notifications = notify_settings(get, &mut missing, &mut invalid);

        let admin_user_ids = get("ADMIN_USER_IDS")
            .map(|v| comma_list(&v).collect())
            .unwrap_or_default();

        if !missing.is_empty() || !invalid.is_empty() {
            return Err(ConfigError { missing, invalid });
        }

        let table_or = |var: &str, suffix: &str| get(var).unwrap_or_else(|| format!("{instance_table}{suffix}"));
        Ok(Config {
            region: get("AWS_REGION").unwrap_or_else(|| "us-east-1".to_string()),
            license_pool_table: table_or("LICENSE_POOL_TABLE_NAME", "-license-pool"),
            scheduled_sessions_table: table_or("SCHEDULED_SESSIONS_TABLE_NAME", "-scheduled-sessions"),
            license_reservations_table: table_or("LICENSE_RESERVATIONS_TABLE_NAME", "-license-reservations"),
            notification_table: table_or("NOTIFICATION_TABLE_NAME", "-notifications"),
            cluster_name,
            instance_table,
            usage_table,
            file_system_id,
            vpc_id,
            private_subnet_ids,
            task_security_group_id,
            task_role_arn,
            execution_role_arn,
            load_balancer_arn: get("LOAD_BALANCER_ARN"),
            alb_https_listener_arn,
            alb_dns_name,
            alb_zone_id,
            route53_hosted_zone_id,
            domain_name,
            kofi_verification_token: get("KOFI_VERIFICATION_TOKEN").map(Sensitive::new),
            kofi_currency,
            instance_cost_per_hour_raw,
            instance_cost_per_hour,
            admin_user_ids,
            session_lead_seconds,
            max_session_seconds,
            reserved_subdomains,
            metrics_namespace: get("METRICS_NAMESPACE")
                .unwrap_or_else(|| crate::telemetry::DEFAULT_NAMESPACE.to_string()),
            log_retention_days,
            idle_shutdown_minutes,
            idle_max_run_hours,
            foundry_status_url_template,
            foundry_status_timeout_ms: u64::try_from(foundry_status_timeout_ms).unwrap_or(3_000),
            backups,
            start_wait,
            notifications,
        })
    }

    /// What the task definitions and RunTask requests need of this configuration.
    pub fn deployment(&self) -> crate::domain::taskdef::Deployment<'_> {
        crate::domain::taskdef::Deployment {
            region: &self.region,
            domain_name: &self.domain_name,
            cluster: &self.cluster_name,
            file_system_id: &self.file_system_id,
            execution_role_arn: &self.execution_role_arn,
            task_role_arn: &self.task_role_arn,
            subnets: &self.private_subnet_ids,
            security_group: &self.task_security_group_id,
        }
    }

    /// The idle rule of this deployment.
    pub fn idle_rule(&self) -> crate::domain::idle::IdleRule {
        crate::domain::idle::IdleRule {
            idle_seconds: self.idle_shutdown_minutes * 60,
            max_run_seconds: self.idle_max_run_hours * 3_600,
        }
    }

    /// A complete configuration for unit tests.
    #[cfg(any(test, feature = "test-util"))]
    pub fn for_tests() -> Self {
        let vars = test_vars();
        match Self::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())) {
            Ok(c) => c,
            Err(e) => panic!("test configuration is incomplete: {e}"),
        }
    }
}

/// The variables of [`Config::for_tests`].
#[cfg(any(test, feature = "test-util"))]
pub fn test_vars() -> Vec<(&'static str, &'static str)> {
    vec![
        ("AWS_REGION", "us-east-1"),
        ("CLUSTER_NAME", "foundry-vtt-cluster"),
        ("INSTANCE_TABLE_NAME", "foundry-vtt-instances"),
        ("USAGE_TABLE_NAME", "foundry-vtt-usage"),
        ("FILE_SYSTEM_ID", "fs-12345678"),
        ("VPC_ID", "vpc-12345678"),
        ("PRIVATE_SUBNET_IDS", "subnet-aaaa1111,subnet-bbbb2222"),
        ("TASK_SECURITY_GROUP_ID", "sg-12345678"),
        ("TASK_ROLE_ARN", "arn:aws:iam::123456789012:role/foundry-vtt-task-role"),
        ("EXECUTION_ROLE_ARN", "arn:aws:iam::123456789012:role/foundry-vtt-execution-role"),
        (
            "ALB_HTTPS_LISTENER_ARN",
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/foundry-vtt-alb/50dc6c495c0c9188/f2f7dc8efc522ab2",
        ),
        ("ALB_DNS_NAME", "foundry-vtt-alb-1234567890.us-east-1.elb.amazonaws.com"),
        ("ALB_ZONE_ID", "Z35SXDOTRQ7X7K"),
        ("ROUTE53_HOSTED_ZONE_ID", "Z0123456789ABCDEFGHIJ"),
        ("DOMAIN_NAME", "foundry.example.com"),
        ("INSTANCE_COST_PER_HOUR", "1.00"),
        ("KOFI_VERIFICATION_TOKEN", "kofi-test-token"),
        ("ADMIN_USER_IDS", "000000000000000001"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn backups_are_off_unless_enabled_and_then_need_their_bucket_and_role() {
        let base = test_vars();
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut v = base.clone();
            v.extend_from_slice(extra);
            cfg(&v)
        };
        assert_eq!(with(&[]).unwrap().backups, None);
        assert_eq!(
            with(&[("BACKUPS", "off"), ("BACKUP_BUCKET", "b")]).unwrap().backups,
            None
        );
        let err = with(&[("BACKUPS", "on")]).unwrap_err();
        assert_eq!(
            err.missing,
            ["BACKUP_BUCKET (BACKUPS=on)", "BACKUP_TASK_ROLE_ARN (BACKUPS=on)"]
        );
        let err = with(&[("BACKUPS", "yes")]).unwrap_err();
        assert_eq!(err.invalid, ["BACKUPS must be 'on' or 'off', got 'yes'"]);
        let on = with(&[
            ("BACKUPS", "ON"),
            ("BACKUP_BUCKET", "bk"),
            ("BACKUP_TASK_ROLE_ARN", "arn:r"),
        ])
        .unwrap();
        assert_eq!(
            on.backups,
            Some(BackupSettings {
                bucket: "bk".into(),
                task_role_arn: "arn:r".into(),
                retention_days: 30,
            })
        );
        let err = with(&[
            ("BACKUPS", "on"),
            ("BACKUP_BUCKET", "bk"),
            ("BACKUP_TASK_ROLE_ARN", "arn:r"),
            ("BACKUP_RETENTION_DAYS", "0"),
        ])
        .unwrap_err();
        assert_eq!(
            err.invalid,
            ["BACKUP_RETENTION_DAYS must be a whole number of days from 1 to 3650, got '0'"]
        );
    }

    #[test]
    fn notifications_are_off_unless_enabled_and_then_need_the_token_secret() {
        let base = test_vars();
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut v = base.clone();
            v.extend_from_slice(extra);
            cfg(&v)
        };
        let off = with(&[("DISCORD_TOKEN_SECRET", "t")]).unwrap();
        assert_eq!(off.notifications, None);
        assert_eq!(off.notification_table, "foundry-vtt-instances-notifications");
        let err = with(&[("NOTIFICATIONS", "on")]).unwrap_err();
        assert_eq!(err.missing, ["DISCORD_TOKEN_SECRET (NOTIFICATIONS=on)"]);
        let err = with(&[
            ("NOTIFICATIONS", "on"),
            ("DISCORD_TOKEN_SECRET", "t"),
            ("NOTIFY_VIA", "channel"),
        ])
        .unwrap_err();
        assert_eq!(err.missing, ["DISCORD_WEBHOOK_SECRET (NOTIFY_VIA=channel)"]);
        let err = with(&[
            ("NOTIFICATIONS", "on"),
            ("DISCORD_TOKEN_SECRET", "t"),
            ("NOTIFY_BUDGET_MS", "50"),
            ("DISCORD_API_BASE_URL", "discord.com"),
        ])
        .unwrap_err();
        assert_eq!(err.invalid.len(), 2, "{err}");
        let on = with(&[
            ("NOTIFICATIONS", "on"),
            ("DISCORD_TOKEN_SECRET", "t"),
            ("DISCORD_API_BASE_URL", "http://127.0.0.1:1/api/v10/"),
        ])
        .unwrap();
        assert_eq!(
            on.notifications,
            Some(NotifySettings {
                token_secret: "t".into(),
                webhook_secret: None,
                api_base_url: "http://127.0.0.1:1/api/v10".into(),
                via: NotifyVia::Dm,
                budget_ms: 1_000,
                reminder_minutes: 15,
                max_age_minutes: 60,
                max_per_run: 25,
                warning_minutes: 10,
            })
        );
    }

    #[test]
    fn every_missing_required_variable_is_listed_in_one_error() {
        let err = cfg(&[("CLUSTER_NAME", "c")]).unwrap_err();
        assert_eq!(err.missing.len(), REQUIRED.len() - 1);
        let text = err.to_string();
        for v in REQUIRED.iter().filter(|v| **v != "CLUSTER_NAME") {
            assert!(text.contains(v), "{text} should name {v}");
        }
        assert!(!text.contains("CLUSTER_NAME"));
    }

    #[test]
    fn an_empty_variable_counts_as_missing() {
        let mut vars = test_vars();
        vars.retain(|(k, _)| *k != "DOMAIN_NAME");
        vars.push(("DOMAIN_NAME", "  "));
        let err = cfg(&vars).unwrap_err();
        assert_eq!(err.missing, vec!["DOMAIN_NAME".to_string()]);
        assert_eq!(
            err.to_string(),
            "Invalid configuration: missing required environment variables: DOMAIN_NAME"
        );
    }

    #[test]
    fn defaults_follow_the_spec() {
        let vars: Vec<_> = test_vars()
            .into_iter()
            .filter(|(k, _)| {
                ![
                    "AWS_REGION",
                    "INSTANCE_COST_PER_HOUR",
                    "KOFI_VERIFICATION_TOKEN",
                    "ADMIN_USER_IDS",
                ]
                .contains(k)
            })
            .collect();
        let c = cfg(&vars).unwrap();
        assert_eq!(c.region, "us-east-1");
        assert_eq!(c.license_pool_table, "foundry-vtt-instances-license-pool");
        assert_eq!(c.scheduled_sessions_table, "foundry-vtt-instances-scheduled-sessions");
        assert_eq!(
            c.license_reservations_table,
            "foundry-vtt-instances-license-reservations"
        );
        assert_eq!(c.instance_cost_per_hour_raw, "0.10");
        assert_eq!(c.instance_cost_per_hour, 0.1);
        assert!(c.kofi_verification_token.is_none());
        assert!(c.admin_user_ids.is_empty());
        assert_eq!(c.session_lead_seconds, DEFAULT_SESSION_LEAD_SECONDS);
        assert_eq!(c.metrics_namespace, "FoundryVTT/InstanceManagement");
        assert_eq!(c.log_retention_days, 3);
        assert_eq!(c.private_subnet_ids, vec!["subnet-aaaa1111", "subnet-bbbb2222"]);
    }

    #[test]
    fn explicit_table_names_and_lists_are_parsed() {
        let mut vars = test_vars();
        vars.push(("LICENSE_POOL_TABLE_NAME", "pools"));
        vars.retain(|(k, _)| *k != "ADMIN_USER_IDS");
        vars.push(("ADMIN_USER_IDS", " 1, 2 ,,3 "));
        let c = cfg(&vars).unwrap();
        assert_eq!(c.license_pool_table, "pools");
        assert_eq!(
            c.admin_user_ids.iter().cloned().collect::<Vec<_>>(),
            vec!["1", "2", "3"]
        );
    }

    #[test]
    fn reserved_subdomains_default_to_the_common_ones_and_can_be_replaced() {
        let c = cfg(&test_vars()).unwrap();
        assert!(c.reserved_subdomains.contains("www") && c.reserved_subdomains.contains("mail"));
        let mut vars = test_vars();
        vars.push(("RESERVED_SUBDOMAINS", " Shop, ,blog "));
        let c = cfg(&vars).unwrap();
        assert_eq!(
            c.reserved_subdomains.iter().cloned().collect::<Vec<_>>(),
            vec!["blog", "shop"]
        );
    }

    #[test]
    fn cost_uses_float_prefix_semantics() {
        let mut vars = test_vars();
        vars.retain(|(k, _)| *k != "INSTANCE_COST_PER_HOUR");
        vars.push(("INSTANCE_COST_PER_HOUR", "1.5usd"));
        assert_eq!(cfg(&vars).unwrap().instance_cost_per_hour, 1.5);
    }

    #[test]
    fn log_retention_must_be_one_cloudwatch_accepts() {
        let mut vars = test_vars();
        vars.push(("LOG_RETENTION_DAYS", "14"));
        assert_eq!(cfg(&vars).unwrap().log_retention_days, 14);
        let mut vars = test_vars();
        vars.push(("LOG_RETENTION_DAYS", "10"));
        assert!(cfg(&vars).unwrap_err().to_string().contains("LOG_RETENTION_DAYS"));
    }

    #[test]
    fn a_bad_session_lead_is_reported_with_the_missing_ones() {
        let vars = [("SESSION_LEAD_SECONDS", "soon")];
        let err = cfg(&vars).unwrap_err();
        assert!(err.to_string().contains("SESSION_LEAD_SECONDS"));
        assert_eq!(err.missing.len(), REQUIRED.len());
    }

    #[test]
    fn idle_detection_is_on_for_30_minutes_by_default_and_can_be_turned_off() {
        let c = cfg(&test_vars()).unwrap();
        assert_eq!(c.idle_shutdown_minutes, 30);
        assert_eq!(c.idle_rule().idle_seconds, 1_800);
        assert_eq!(c.idle_rule().max_run_seconds, 43_200);
        assert_eq!(c.foundry_status_url_template, DEFAULT_FOUNDRY_STATUS_URL_TEMPLATE);
        assert_eq!(c.foundry_status_timeout_ms, 3_000);
        let mut vars = test_vars();
        vars.extend([
            ("IDLE_SHUTDOWN_MINUTES", "0"),
            ("IDLE_MAX_RUN_HOURS", "8"),
            ("FOUNDRY_STATUS_URL_TEMPLATE", "http://{taskPrivateIp}:30000/api/status"),
        ]);
        let c = cfg(&vars).unwrap();
        assert!(!c.idle_rule().on());
        assert_eq!(c.idle_rule().max_run_seconds, 8 * 3_600);
        let mut vars = test_vars();
        vars.extend([
            ("IDLE_SHUTDOWN_MINUTES", "-5"),
            ("FOUNDRY_STATUS_URL_TEMPLATE", "https://{name}.x/api/status"),
            ("FOUNDRY_STATUS_TIMEOUT_MS", "60000"),
        ]);
        let text = cfg(&vars).unwrap_err().to_string();
        for var in [
            "IDLE_SHUTDOWN_MINUTES",
            "FOUNDRY_STATUS_URL_TEMPLATE",
            "FOUNDRY_STATUS_TIMEOUT_MS",
        ] {
            assert!(text.contains(var), "{text} should name {var}");
        }
    }

    #[test]
    fn start_wait_is_poll_unless_set_to_events() {
        assert_eq!(cfg(&test_vars()).unwrap().start_wait, StartWait::Poll);
        let mut vars = test_vars();
        vars.push(("START_WAIT", " Events "));
        assert_eq!(cfg(&vars).unwrap().start_wait, StartWait::Events);
        let mut vars = test_vars();
        vars.push(("START_WAIT", "never"));
        assert!(cfg(&vars).unwrap_err().to_string().contains("START_WAIT"));
    }

    #[test]
    fn debug_output_redacts_the_kofi_token() {
        let c = Config::for_tests();
        assert!(!format!("{c:?}").contains("kofi-test-token"));
    }
}
