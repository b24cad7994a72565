//! The instances table: one item per user, and the lease protocol of the lifecycle.
//!
//! A **lease** marks the one invocation that may create, start or destroy a user's
//! instance right now, and until when. It is taken with a conditional write, every
//! progress write is conditional on it, and it is released at the end. A lease whose time
//! has passed belongs to an invocation that died: the next one may take the record over.

use crate::domain::model::{Instance, InstanceStatus, StopReason};
use crate::error::{Error, Result};
use crate::managers::dynamodb::{AttributeValue, Cond, Query, TransactOp, Update};

use super::pools::PoolEntry;
use super::{decode, decode_all, encode, num, text, written, Db};

pub(super) const KEY: &str = "userId";

/// GSI of the instances table by `sanitizedUsername` (keys only): who uses a subdomain.
pub const BY_USERNAME: &str = "sanitizedUsername-index";

/// Sparse GSI of the instances table over the runs that exist (all attributes projected):
/// partition key `runShard`, sort key `runDeadline`. Both attributes are written in the
/// same write that begins a run, and removed in the one that ends it, so a record is in
/// the index exactly while it has a run (from `starting` until the run's end).
pub const BY_RUN_DEADLINE: &str = "runShard-runDeadline-index";

/// How many partitions the index of runs is spread over: each shard is one Query, and no
/// one partition takes every start's and stop's writes. Changing it needs a re-backfill.
pub const RUN_SHARDS: u32 = 4;

/// The shard of `user_id` in [`BY_RUN_DEADLINE`]: FNV-1a of the id, modulo [`RUN_SHARDS`]
/// (stable across processes and versions, unlike the standard library's hasher).
pub fn run_shard(user_id: &str) -> u32 {
    let hash = user_id
        .bytes()
        .fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    hash % RUN_SHARDS
}

/// Statuses the sweep stops a run from (its deadline applies to them).
const RUNNING: &[&str] = &["starting", "running"];

/// Whether `inst` has a run: it is starting or running, or names a task.
pub fn has_run(inst: &Instance) -> bool {
    matches!(inst.status, InstanceStatus::Starting | InstanceStatus::Running) || inst.task_arn.is_some()
}

/// Attribute names of an instance item.
mod attr {
    pub const USER_ID: &str = "userId";
    pub const SANITIZED_USERNAME: &str = "sanitizedUsername";
    pub const STATUS: &str = "status";
    pub const ACCESS_POINT_ID: &str = "accessPointId";
    pub const SECRET_ARN: &str = "secretArn";
    pub const SECRET_CREATED: &str = "secretCreated";
    pub const FOUNDRY_VERSION: &str = "foundryVersion";
    pub const S3_BUCKET_NAME: &str = "s3BucketName";
    pub const S3_ACCESS_KEY_ID: &str = "s3AccessKeyId";
    pub const S3_SECRET_ACCESS_KEY: &str = "s3SecretAccessKey";
    pub const TARGET_GROUP_ARN: &str = "targetGroupArn";
    pub const ALB_RULE_PRIORITY: &str = "albRulePriority";
    pub const TASK_ARN: &str = "taskArn";
    pub const TASK_DEFINITION_ARN: &str = "taskDefinitionArn";
    pub const TASK_PRIVATE_IP: &str = "taskPrivateIp";
    pub const ALB_RULE_ARN: &str = "albRuleArn";
    pub const UPDATED_AT: &str = "updatedAt";
    pub const LICENSE_OWNER_ID: &str = "licenseOwnerId";
    pub const ALLOW_LICENSE_SHARING: &str = "allowLicenseSharing";
    pub const MAX_CONCURRENT_USERS: &str = "maxConcurrentUsers";
    pub const STARTED_AT: &str = "startedAt";
    pub const AUTO_SHUTDOWN_AT: &str = "autoShutdownAt";
    pub const LINKED_SESSION_ID: &str = "linkedSessionId";
    pub const ACTIVE_LICENSE_ID: &str = "activeLicenseId";
    pub const STOP_SHARING_AFTER_SESSIONS: &str = "stopSharingAfterSessions";
    pub const LICENSE_SHARING_SCHEDULED_STOP: &str = "licenseSharingScheduledStop";
    pub const LICENSE_SHARING_STATE: &str = "licenseSharingState";
    pub const LAST_LICENSE_SHARING_CHANGE: &str = "lastLicenseSharingChange";
    pub const ATTEMPT_ID: &str = "attemptId";
    pub const LEASE_ID: &str = "leaseId";
    pub const LEASE_UNTIL: &str = "leaseUntil";
    pub const DNS_RECORD: &str = "dnsRecord";
    /// Present only while a run exists: the partition key of the index of runs.
    pub const RUN_SHARD: &str = "runShard";
    /// Present only while a run exists: its deadline, the sort key of the index of runs.
    pub const RUN_DEADLINE: &str = "runDeadline";
    pub const LAST_PROBE_AT: &str = "lastProbeAt";
    pub const LAST_PROBE_RESULT: &str = "lastProbeResult";
    pub const PLAYERS: &str = "players";
    pub const LAST_PLAYERS_SEEN_AT: &str = "lastPlayersSeenAt";
    pub const BACKUP_TASK_ARN: &str = "backupTaskArn";
    pub const BACKUP_LAUNCHED_AT: &str = "backupLaunchedAt";
    pub const LAST_BACKUP_AT: &str = "lastBackupAt";
    pub const BACKUP_CAUSE: &str = "backupCause";
    pub const LAST_BACKUP_FAILED_AT: &str = "lastBackupFailedAt";
    pub const LAST_BACKUP_FAILURE: &str = "lastBackupFailure";
    pub const RESTORE_STATE: &str = "restoreState";
    pub const RESTORE_STEP: &str = "restoreStep";
    pub const RESTORE_TASK_ARN: &str = "restoreTaskArn";
    pub const FINAL_BACKUP_AT: &str = "finalBackupAt";
    pub const LAST_STOP_REASON: &str = "lastStopReason";
    pub const NOTIFICATIONS_OFF: &str = "notificationsOff";
}

/// Puts the record in the index of runs (or moves it there to `deadline`).
fn list_run(update: Update, user_id: &str, deadline: i64) -> Update {
    update
        .set(attr::RUN_SHARD, num(i64::from(run_shard(user_id))))
        .set(attr::RUN_DEADLINE, num(deadline))
}

/// Takes the record out of the index of runs.
fn unlist_run(update: Update) -> Update {
    update.remove(attr::RUN_SHARD).remove(attr::RUN_DEADLINE)
}

/// The deadline a run of `inst` is listed with: the one the sweep applies to it, as if it
/// were running (a recorded deadline, else its run limit from when it started).
pub fn run_deadline(inst: &Instance) -> i64 {
    let as_running = Instance {
        status: InstanceStatus::Running,
        ..inst.clone()
    };
    crate::domain::schedule::shutdown_deadline(&as_running).unwrap_or_default()
}

/// Statuses a start may begin from: never started, stopped, or left by the original in a
/// state the port does not write (`stopping`, `unknown`).
const STARTABLE: &[&str] = &["created", "stopped", "stopping", "unknown"];

/// Statuses a restore may begin from: the instance has no run.
const RESTORABLE: &[&str] = &["created", "stopped"];
/// The first step of a restore: the backup of the current state.
pub const RESTORE_STEP_BACKUP: &str = "backup";
/// The second step of a restore: the restore task replaces the directory.
pub const RESTORE_STEP_RESTORE: &str = "restore";

/// A launched backup task, as the record keeps it.
#[derive(Debug, Clone)]
pub struct BackupLaunched<'a> {
    pub task_arn: &'a str,
    pub cause: &'a str,
    pub at: i64,
    /// The time of the latest good backup, when one exists.
    pub last_good: Option<i64>,
}

/// How a backup task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupSettled {
    /// It succeeded; `uploaded_at`: the time of the version it wrote (none when the tree
    /// was unchanged, or not known).
    Good { uploaded_at: Option<i64> },
    /// It failed or was stopped before it finished, at `at`.
    Failed { at: i64, why: String },
}

/// The hold of one invocation on a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub id: String,
    /// Unix seconds after which the lease counts as abandoned.
    pub until: i64,
}

impl Lease {
    /// A fresh lease that lasts until `until`.
    pub fn new(until: i64) -> Self {
        Lease {
            id: uuid::Uuid::new_v4().to_string(),
            until,
        }
    }

    /// Whether `instance` is free of any live lease at `now`.
    pub fn is_free(instance: &Instance, now: i64) -> bool {
        instance.lease_until.is_none_or(|t| t < now)
    }

    fn held(&self) -> Cond {
        Cond::eq_s(attr::LEASE_ID, &self.id)
    }

    fn free_at(now: i64) -> Cond {
        Cond::Or(vec![
            Cond::not_exists(attr::LEASE_UNTIL),
            Cond::Lt(attr::LEASE_UNTIL.into(), num(now)),
        ])
    }

    fn take(&self, update: Update) -> Update {
        update
            .set_s(attr::LEASE_ID, self.id.as_str())
            .set(attr::LEASE_UNTIL, num(self.until))
    }

    fn drop_from(update: Update) -> Update {
        update.remove(attr::LEASE_ID).remove(attr::LEASE_UNTIL)
    }
}

/// A resource (or step) that an invocation under a lease has made, recorded at once so
/// that whoever comes next can finish or undo it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The access point (its id cannot be derived from the user's names).
    AccessPoint(String),
    /// An old record's plain-text S3 key was replaced by a new key, which lives only in
    /// the secret `arn`.
    SecretMigrated {
        arn: String,
        access_key_id: String,
    },
    TaskDefinition(String),
    Task(String),
}

/// The end of a create: the record becomes `created`, with every resource it made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateDone {
    pub bucket: String,
    pub access_key_id: String,
    pub secret_arn: String,
    pub target_group_arn: String,
    /// The listener-rule priority hint.
    pub alb_rule_priority: i64,
    pub license_owner_id: Option<String>,
    pub allow_license_sharing: Option<bool>,
    pub max_concurrent_users: i64,
    /// The owner's license joins the pool in the same transaction.
    pub join_pool: Option<PoolEntry>,
}

/// Where an owner's license sharing goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharingState {
    /// Stop sharing once the sessions booked on the license are over.
    StopAfterSessions,
    /// Keep sharing (a scheduled stop is called off).
    KeepSharing,
    /// Sharing stopped.
    Stopped,
    /// Sharing on again.
    Reactivated,
}

/// The scheduled session a run is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRun {
    pub session_id: String,
    /// The license the session booked: the server uses it while it runs.
    pub license_id: String,
    /// When auto-shutdown stops the server (the session's end plus a grace period).
    pub auto_shutdown_at: i64,
}

/// What a start writes when it begins.
#[derive(Debug, Clone, Copy)]
pub struct BeginStart<'a> {
    pub lease: &'a Lease,
    /// The start's id: its RunTask token, and the id of its claim on the license.
    pub attempt_id: &'a str,
    pub now: i64,
    /// The scheduled session the run is for.
    pub session: Option<&'a SessionRun>,
    /// The license the run uses (claimed in the same write).
    pub license: Option<&'a str>,
    /// A stale claim on that license, to be taken over.
    pub over: Option<&'a super::claims::RunClaim>,
}

/// A task that runs and is routed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub task_arn: String,
    pub private_ip: String,
    pub rule_arn: String,
    pub rule_priority: i64,
    pub started_at: i64,
    pub auto_shutdown_at: i64,
}

/// The end of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunEnd {
    pub at: i64,
    /// The target was deregistered (or was never registered).
    pub target_gone: bool,
    /// The listener rule was deleted (or there was none).
    pub rule_gone: bool,
    /// Why the task stopped, when ECS reported it stopped by itself (`lastStopReason`);
    /// `None` when the function ends the run.
    pub stop_reason: Option<StopReason>,
}

/// What one probe of a running server found (idle detection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeNote<'a> {
    /// When the probe was made.
    pub at: i64,
    /// The players it counted; `None` when it failed.
    pub players: Option<u32>,
    /// `ok`, or why it failed.
    pub outcome: &'a str,
    /// Players keep the run going: its deadline moves to this time.
    pub extend_to: Option<i64>,
}

/// A record a destroy has taken.
#[derive(Debug, Clone, PartialEq)]
pub struct DestroyTaken {
    /// The record after it was taken (status `destroying`, the destroy's lease).
    pub instance: Instance,
    /// It was `destroying` already: this destroy goes on with one that was cut short.
    pub resumed: bool,
}

/// The instances table.
#[derive(Clone)]
pub struct Instances {
    db: Db,
}

impl Instances {
    pub(super) fn new(db: Db) -> Self {
        Instances { db }
    }

    fn table(&self) -> &crate::managers::dynamodb::Table {
        &self.db.tables.instances
    }

    // ------------------------------------------------------------------ reads

    /// The instance of `user_id` (eventually consistent).
    pub async fn get(&self, user_id: &str) -> Result<Option<Instance>> {
        self.read(user_id, false).await
    }

    /// The instance of `user_id`, read after every write that has completed.
    pub async fn get_latest(&self, user_id: &str) -> Result<Option<Instance>> {
        self.read(user_id, true).await
    }

    async fn read(&self, user_id: &str, consistent: bool) -> Result<Option<Instance>> {
        match self.db.dynamo.get(self.table(), user_id, consistent).await? {
            Some(item) => Ok(Some(decode("instance", item)?)),
            None => Ok(None),
        }
    }

    /// Every instance, every page.
    pub async fn all(&self) -> Result<Vec<Instance>> {
        Ok(decode_all("instance", KEY, self.db.dynamo.scan(self.table()).await?))
    }

    /// The records of the index of runs: every shard (at once), every page. Eventually
    /// consistent, as any GSI: an entry may show a run that has just ended, and a run
    /// that has just begun may not show yet.
    pub async fn running(&self) -> Result<Vec<Instance>> {
        let shards = (0..RUN_SHARDS).map(|shard| {
            let q = Query {
                index: Some(BY_RUN_DEADLINE.to_string()),
                hash_attr: attr::RUN_SHARD.to_string(),
                hash_value: num(i64::from(shard)),
                range: None,
            };
            async move { self.db.dynamo.query(self.table(), &q).await }
        });
        let pages = futures_util::future::try_join_all(shards).await?;
        Ok(decode_all("instance", KEY, pages.into_iter().flatten().collect()))
    }

    /// Takes the record of `user_id` out of the index of runs when it has no run (an
    /// entry no write of this version leaves behind) → whether it was taken out.
    pub async fn unlist_ended(&self, user_id: &str) -> Result<bool> {
        let mut conds = vec![Cond::exists(attr::RUN_SHARD), Cond::not_exists(attr::TASK_ARN)];
        conds.extend(RUNNING.iter().map(|s| Cond::ne_s(attr::STATUS, s)));
        let update = unlist_run(Update::new());
        Ok(self.update(user_id, update, Cond::And(conds)).await?.is_some())
    }

    /// Puts a run the index of runs lacks (a record written before the index existed)
    /// in it, by the deadline the sweep applies to it → whether it was put there (false:
    /// it was listed already, or its run has ended since it was read).
    pub async fn list_unlisted_run(&self, inst: &Instance) -> Result<bool> {
        let update = list_run(Update::new(), &inst.user_id, run_deadline(inst));
        let cond = Cond::And(vec![
            Cond::not_exists(attr::RUN_SHARD),
            Cond::Or(vec![Cond::in_s(attr::STATUS, RUNNING), Cond::exists(attr::TASK_ARN)]),
        ]);
        Ok(self.update(&inst.user_id, update, cond).await?.is_some())
    }

    /// The users other than `user_id` whose instance uses the subdomain `username`.
    pub async fn others_named(&self, username: &str, user_id: &str) -> Result<Vec<String>> {
        let q = Query {
            index: Some(BY_USERNAME.to_string()),
            hash_attr: attr::SANITIZED_USERNAME.to_string(),
            hash_value: text(username),
            range: None,
        };
        let items = self.db.dynamo.query(self.table(), &q).await?;
        Ok(items
            .into_iter()
            .filter_map(|item| match item.get(attr::USER_ID) {
                Some(crate::managers::dynamodb::AttributeValue::S(u)) if u != user_id => Some(u.clone()),
                _ => None,
            })
            .collect())
    }

    // ------------------------------------------------------------------ create

    /// Writes a new record, unless the user already has one → whether it was written.
    pub async fn insert_new(&self, record: &Instance) -> Result<bool> {
        let item = encode("instance", record)?;
        let put = self
            .db
            .dynamo
            .put(self.table(), item, Cond::not_exists(attr::USER_ID))
            .await;
        Ok(written(put)?.is_some())
    }

    /// Takes over a `creating` record whose lease has expired → the record, or `None`
    /// when it is not creating or a live invocation holds it.
    pub async fn take_over_create(&self, user_id: &str, lease: &Lease, now: i64) -> Result<Option<Instance>> {
        let update = lease.take(Update::new());
        let cond = Cond::And(vec![
            Cond::eq_s(attr::STATUS, InstanceStatus::Creating.as_str()),
            Lease::free_at(now),
        ]);
        self.update(user_id, update, cond).await
    }

    /// Records a step made under `lease` → the record after it. Losing the lease means
    /// another invocation took the record over: the caller must stop at once.
    pub async fn record(&self, user_id: &str, lease: &Lease, step: Progress, now: i64) -> Result<Instance> {
        let update = match step {
            Progress::AccessPoint(id) => Update::new().set_s(attr::ACCESS_POINT_ID, id),
            Progress::SecretMigrated { arn, access_key_id } => Update::new()
                .set_s(attr::SECRET_ARN, arn)
                .set_s(attr::S3_ACCESS_KEY_ID, access_key_id)
                .remove(attr::S3_SECRET_ACCESS_KEY),
            Progress::TaskDefinition(arn) => Update::new().set_s(attr::TASK_DEFINITION_ARN, arn),
            Progress::Task(arn) => Update::new().set_s(attr::TASK_ARN, arn),
        };
        self.under_lease(user_id, lease, update, now).await
    }

    async fn under_lease(&self, user_id: &str, lease: &Lease, update: Update, now: i64) -> Result<Instance> {
        let update = update.set(attr::UPDATED_AT, num(now));
        self.update(user_id, update, lease.held())
            .await?
            .ok_or_else(|| Error::failed("Another invocation took over this instance; its operation was abandoned"))
    }

    /// Ends a create: the record becomes `created`, its lease is released, and a sharing
    /// owner's license joins the pool, in one transaction.
    pub async fn finish_create(&self, user_id: &str, lease: &Lease, done: &CreateDone, now: i64) -> Result<()> {
        let mut update = Lease::drop_from(Update::new())
            .set_s(attr::STATUS, InstanceStatus::Created.as_str())
            .set_s(attr::S3_BUCKET_NAME, done.bucket.as_str())
            .set_s(attr::S3_ACCESS_KEY_ID, done.access_key_id.as_str())
            .set_s(attr::SECRET_ARN, done.secret_arn.as_str())
            .set_s(attr::TARGET_GROUP_ARN, done.target_group_arn.as_str())
            // The subdomain was claimed by this port's create: the name is this user's alone.
            .set_bool(attr::DNS_RECORD, true)
            .remove(attr::SECRET_CREATED)
            .set(attr::ALB_RULE_PRIORITY, num(done.alb_rule_priority))
            .set(attr::MAX_CONCURRENT_USERS, num(done.max_concurrent_users))
            .set(attr::UPDATED_AT, num(now))
            .remove(attr::ATTEMPT_ID);
        update = match &done.license_owner_id {
            Some(l) => update.set_s(attr::LICENSE_OWNER_ID, l.as_str()),
            None => update.remove(attr::LICENSE_OWNER_ID),
        };
        update = match done.allow_license_sharing {
            Some(b) => update.set_bool(attr::ALLOW_LICENSE_SHARING, b),
            None => update.remove(attr::ALLOW_LICENSE_SHARING),
        };
        let mut ops = vec![TransactOp::Update {
            table: self.table().clone(),
            key: user_id.to_string(),
            update,
            cond: lease.held(),
        }];
        if let Some(entry) = &done.join_pool {
            ops.push(super::pools::join_op(&self.db, &self.db.tables, entry, now).await?);
        }
        Ok(self.db.dynamo.transact(ops).await?)
    }

    /// Gives the lease up. Best effort: an expired lease is free anyway, so a failure is
    /// only logged.
    pub async fn release(&self, user_id: &str, lease: &Lease) {
        let update = Lease::drop_from(Update::new());
        match self
            .db
            .dynamo
            .update(self.table(), user_id, &update, lease.held())
            .await
        {
            Ok(_) => {}
            Err(e) if e.is_condition_failed() => {} // no longer ours: nothing to give up
            Err(e) => tracing::warn!(error = %e, "could not release the lease; it expires by itself"),
        }
    }

    /// Deletes the record held by `lease`, and with it the user's claim on the subdomain
    /// `username` (one that another user holds stays theirs) → whether it was deleted
    /// (false: the lease was lost, and whoever holds the record now decides).
    pub async fn remove(&self, user_id: &str, username: &str, lease: &Lease) -> Result<bool> {
        let claims = super::claims::Claims::new(self.db.clone());
        let ops = vec![
            TransactOp::Delete {
                table: self.table().clone(),
                key: user_id.to_string(),
                cond: lease.held(),
            },
            claims.release_subdomain_op(username, user_id),
        ];
        if written(self.db.dynamo.transact(ops).await)?.is_some() {
            return Ok(true);
        }
        // The claim may be another user's (a create whose claim failed is rolling back):
        // then the record goes alone.
        let deleted = self.db.dynamo.delete(self.table(), user_id, lease.held()).await;
        Ok(written(deleted)?.is_some())
    }

    // ------------------------------------------------------------------ start

    /// Moves `inst` to `starting` under `lease`, if it may start, and, with `license`, gives
    /// that license to this run in the same transaction (`over`: taking over exactly that
    /// stale claim) → the record after it, or `None` when another invocation holds the
    /// record, it is not startable, or another run holds the license.
    pub async fn begin_start(&self, inst: &Instance, begin: &BeginStart<'_>) -> Result<Option<Instance>> {
        let BeginStart {
            lease,
            attempt_id,
            now,
            session,
            license,
            over,
        } = *begin;
        let mut update = lease
            .take(Update::new())
            .set_s(attr::STATUS, InstanceStatus::Starting.as_str())
            .set_s(attr::ATTEMPT_ID, attempt_id)
            .set(attr::UPDATED_AT, num(now));
        update = match session {
            Some(run) => update
                .set_s(attr::LINKED_SESSION_ID, run.session_id.as_str())
                .set_s(attr::ACTIVE_LICENSE_ID, run.license_id.as_str())
                .set(attr::AUTO_SHUTDOWN_AT, num(run.auto_shutdown_at)),
            None => update
                .remove(attr::LINKED_SESSION_ID)
                .remove(attr::ACTIVE_LICENSE_ID)
                .remove(attr::AUTO_SHUTDOWN_AT),
        };
        // The record after it, as written here (a transaction returns no item).
        let mut after = Instance {
            status: InstanceStatus::Starting,
            attempt_id: Some(attempt_id.to_string()),
            lease_id: Some(lease.id.clone()),
            lease_until: Some(lease.until),
            updated_at: Some(now),
            ..inst.clone()
        };
        after.linked_session_id = session.map(|r| r.session_id.clone());
        after.active_license_id = session.map(|r| r.license_id.clone());
        after.auto_shutdown_at = session.map(|r| r.auto_shutdown_at);
        // The run exists from here on: in the index of runs, by its deadline.
        let update = list_run(update, &inst.user_id, run_deadline(&after));
        // Never while the record names a task: one user never has two.
        let cond = Cond::And(vec![
            Cond::not_exists(attr::TASK_ARN),
            // Never on a directory a restore has not finished with.
            Cond::not_exists(attr::RESTORE_STATE),
            Cond::Or(vec![
                Cond::in_s(attr::STATUS, STARTABLE),
                // A start that died before RunTask answered: retried with the same token.
                Cond::And(vec![
                    Cond::eq_s(attr::STATUS, InstanceStatus::Starting.as_str()),
                    Lease::free_at(now),
                ]),
            ]),
        ]);
        let Some(license) = license else {
            return self.update(&inst.user_id, update, cond).await;
        };
        let claims = super::claims::Claims::new(self.db.clone());
        let ops = vec![
            TransactOp::Update {
                table: self.table().clone(),
                key: inst.user_id.clone(),
                update,
                cond,
            },
            claims.take_run_op(license, &inst.user_id, attempt_id, now, over),
        ];
        if written(self.db.dynamo.transact(ops).await)?.is_none() {
            return Ok(None);
        }
        Ok(Some(after))
    }

    /// Records the private IP of the run's task (so that a failure deregisters it).
    pub async fn note_task_ip(&self, user_id: &str, task_arn: &str, ip: &str) -> Result<()> {
        let update = Update::new().set_s(attr::TASK_PRIVATE_IP, ip);
        self.of_task(user_id, task_arn, update).await
    }

    /// Records the listener rule of the run (so that a failure deletes it).
    pub async fn note_rule(&self, user_id: &str, task_arn: &str, rule_arn: &str) -> Result<()> {
        let update = Update::new().set_s(attr::ALB_RULE_ARN, rule_arn);
        self.of_task(user_id, task_arn, update).await
    }

    async fn of_task(&self, user_id: &str, task_arn: &str, update: Update) -> Result<()> {
        match self
            .update(user_id, update, Cond::eq_s(attr::TASK_ARN, task_arn))
            .await?
        {
            Some(_) => Ok(()),
            None => Err(Error::failed(
                "Another invocation ended this run; its operation was abandoned",
            )),
        }
    }

    /// The run is routed: the record becomes `running`, its lease is released, and the
    /// start is booked in the usage table, in one transaction → the record after it, or
    /// `None` when another invocation already did this (and booked it).
    pub async fn mark_running(&self, inst: &Instance, run: &Run) -> Result<Option<Instance>> {
        let listed = Instance {
            status: InstanceStatus::Running,
            started_at: Some(run.started_at),
            auto_shutdown_at: Some(run.auto_shutdown_at),
            ..inst.clone()
        };
        // The run's deadline is known now: its entry in the index of runs moves there.
        let update = list_run(Update::new(), &inst.user_id, run_deadline(&listed));
        let update = Lease::drop_from(update)
            .set_s(attr::STATUS, InstanceStatus::Running.as_str())
            .set_s(attr::TASK_PRIVATE_IP, run.private_ip.as_str())
            .set_s(attr::ALB_RULE_ARN, run.rule_arn.as_str())
            .set(attr::ALB_RULE_PRIORITY, num(run.rule_priority))
            .set(attr::STARTED_AT, num(run.started_at))
            .set(attr::AUTO_SHUTDOWN_AT, num(run.auto_shutdown_at))
            .set(attr::UPDATED_AT, num(run.started_at));
        let ops = vec![
            TransactOp::Update {
                table: self.table().clone(),
                key: inst.user_id.clone(),
                update,
                cond: Cond::And(vec![
                    Cond::eq_s(attr::TASK_ARN, &run.task_arn),
                    Cond::ne_s(attr::STATUS, InstanceStatus::Running.as_str()),
                ]),
            },
            super::usage::start_op(&self.db.tables.usage, &inst.user_id, run.started_at),
        ];
        if written(self.db.dynamo.transact(ops).await)?.is_none() {
            return Ok(None);
        }
        // A transaction returns no item: the record after it, as written above.
        Ok(Some(Instance {
            status: InstanceStatus::Running,
            task_arn: Some(run.task_arn.clone()),
            task_private_ip: Some(run.private_ip.clone()),
            alb_rule_arn: Some(run.rule_arn.clone()),
            alb_rule_priority: Some(run.rule_priority),
            started_at: Some(run.started_at),
            auto_shutdown_at: Some(run.auto_shutdown_at),
            updated_at: Some(run.started_at),
            lease_id: None,
            lease_until: None,
            ..inst.clone()
        }))
    }

    /// Stores the status ECS reports for the record's task.
    pub async fn set_task_status(&self, user_id: &str, task_arn: &str, status: &InstanceStatus) -> Result<Instance> {
        let update = Update::new().set_s(attr::STATUS, status.as_str());
        self.update(user_id, update, Cond::eq_s(attr::TASK_ARN, task_arn))
            .await?
            .ok_or_else(|| Error::failed("Another invocation ended this run"))
    }

    // ------------------------------------------------------------------ idle detection

    /// Records what a probe of the server of the run of `task_arn` found (and, with
    /// `extend_to`, its new deadline), only while that run is still running → the record
    /// after it, or `None` when the run has ended or changed meanwhile: a probe's result
    /// never brings a stopped run back.
    pub async fn note_probe(&self, user_id: &str, task_arn: &str, note: &ProbeNote<'_>) -> Result<Option<Instance>> {
        let mut update = Update::new()
            .set(attr::LAST_PROBE_AT, num(note.at))
            .set_s(attr::LAST_PROBE_RESULT, note.outcome);
        update = match note.players {
            Some(n) => update.set(attr::PLAYERS, num(i64::from(n))),
            None => update.remove(attr::PLAYERS),
        };
        if note.players.is_some_and(|n| n > 0) {
            update = update.set(attr::LAST_PLAYERS_SEEN_AT, num(note.at));
        }
        if let Some(until) = note.extend_to {
            // The deadline moves, and the run's entry in the index of runs with it.
            update = list_run(update.set(attr::AUTO_SHUTDOWN_AT, num(until)), user_id, until);
        }
        let cond = Cond::And(vec![
            Cond::eq_s(attr::TASK_ARN, task_arn),
            Cond::eq_s(attr::STATUS, InstanceStatus::Running.as_str()),
        ]);
        self.update(user_id, update, cond).await
    }

    // ------------------------------------------------------------------ stop

    /// Ends the record's run: clears the run's fields (the target and the rule only when
    /// they are gone, so that the next teardown retries them), sets the record `stopped`
    /// (a record being destroyed keeps its status), and books the run's hours per UTC
    /// month, in one transaction → the record after it, or `None` when a concurrent stop
    /// already ended this run (and booked it).
    pub async fn end_run(&self, inst: &Instance, end: &RunEnd) -> Result<Option<Instance>> {
        let keep_status = inst.status == InstanceStatus::Destroying;
        // The run no longer exists: out of the index of runs, in the same write.
        let mut update = unlist_run(Update::new())
            .set(attr::UPDATED_AT, num(end.at))
            .remove(attr::TASK_ARN)
            .remove(attr::AUTO_SHUTDOWN_AT)
            .remove(attr::STARTED_AT)
            .remove(attr::LINKED_SESSION_ID)
            .remove(attr::ACTIVE_LICENSE_ID);
        if !keep_status {
            // A start still at work loses its lease: its next write fails, and it stops.
            update = Lease::drop_from(update.set_s(attr::STATUS, InstanceStatus::Stopped.as_str()));
        }
        if end.target_gone {
            update = update.remove(attr::TASK_PRIVATE_IP);
        }
        if end.rule_gone {
            update = update.remove(attr::ALB_RULE_ARN);
        }
        match &end.stop_reason {
            Some(why) => update = update.set(attr::LAST_STOP_REASON, AttributeValue::M(encode("instance", why)?)),
            // The function ends this task itself: the last stop is not one ECS reported.
            None if inst.task_arn.is_some() => update = update.remove(attr::LAST_STOP_REASON),
            None => {}
        }
        let mut ops = vec![TransactOp::Update {
            table: self.table().clone(),
            key: inst.user_id.clone(),
            update,
            // Only the run being ended: a concurrent stop has already booked it.
            cond: match inst.task_arn.as_deref() {
                Some(task) => Cond::eq_s(attr::TASK_ARN, task),
                None => Cond::exists(attr::USER_ID),
            },
        }];
        if let Some(started) = inst.started_at {
            ops.extend(super::usage::run_ops(
                &self.db.tables.usage,
                &inst.user_id,
                started,
                end.at,
            ));
        }
        if written(self.db.dynamo.transact(ops).await)?.is_none() {
            return Ok(None);
        }
        // A transaction returns no item: the record after it, as written above.
        let mut after = Instance {
            updated_at: Some(end.at),
            task_arn: None,
            auto_shutdown_at: None,
            started_at: None,
            linked_session_id: None,
            active_license_id: None,
            ..inst.clone()
        };
        if !keep_status {
            after.status = InstanceStatus::Stopped;
            after.lease_id = None;
            after.lease_until = None;
        }
        if end.target_gone {
            after.task_private_ip = None;
        }
        if end.rule_gone {
            after.alb_rule_arn = None;
        }
        match &end.stop_reason {
            Some(why) => after.last_stop_reason = Some(why.clone()),
            None if inst.task_arn.is_some() => after.last_stop_reason = None,
            None => {}
        }
        Ok(Some(after))
    }

    // ------------------------------------------------------------------ destroy

    /// Moves the record to `destroying` under `lease`, unless a live invocation holds it
    /// → the record after it and whether the destroy resumes one cut short, or `None`.
    pub async fn begin_destroy(&self, user_id: &str, lease: &Lease, now: i64) -> Result<Option<DestroyTaken>> {
        let update = lease
            .take(Update::new())
            .set_s(attr::STATUS, InstanceStatus::Destroying.as_str())
            .set(attr::UPDATED_AT, num(now));
        let cond = Cond::And(vec![Cond::exists(attr::USER_ID), Lease::free_at(now)]);
        // The record before the update tells whether it was `destroying` already; the one
        // after it is that record with what the update set.
        let old = self
            .db
            .dynamo
            .update_returning_old(self.table(), user_id, &update, cond)
            .await;
        // (The condition requires an item, so there always is one before the update.)
        let Some(Some(item)) = written(old)? else {
            return Ok(None);
        };
        let before: Instance = decode("instance", item)?;
        let resumed = before.status == InstanceStatus::Destroying;
        let instance = Instance {
            status: InstanceStatus::Destroying,
            lease_id: Some(lease.id.clone()),
            lease_until: Some(lease.until),
            updated_at: Some(now),
            ..before
        };
        Ok(Some(DestroyTaken { instance, resumed }))
    }

    // ------------------------------------------------------------------ license sharing

    /// Changes the owner's sharing settings; `None` leaves a setting as it is (the
    /// license type is never changed here) → the record after it, or `None` when the
    /// user has no instance.
    pub async fn patch_sharing(
        &self,
        user_id: &str,
        allow: Option<bool>,
        max_users: Option<i64>,
        now: i64,
    ) -> Result<Option<Instance>> {
        let mut update = Update::new().set(attr::UPDATED_AT, num(now));
        if let Some(allow) = allow {
            update = update.set_bool(attr::ALLOW_LICENSE_SHARING, allow);
        }
        if let Some(max) = max_users {
            update = update.set(attr::MAX_CONCURRENT_USERS, num(max));
        }
        self.update(user_id, update, Cond::exists(attr::USER_ID)).await
    }

    /// Moves the owner's sharing to `state` → the record after it, or `None` when the
    /// user has no instance.
    pub async fn set_sharing_state(&self, user_id: &str, state: SharingState, now: i64) -> Result<Option<Instance>> {
        let mut update = Update::new()
            .set(attr::LAST_LICENSE_SHARING_CHANGE, num(now))
            .set(attr::UPDATED_AT, num(now));
        update = match state {
            SharingState::StopAfterSessions => update
                .set_bool(attr::STOP_SHARING_AFTER_SESSIONS, true)
                .set_s(attr::LICENSE_SHARING_STATE, "scheduled_stop"),
            SharingState::KeepSharing => update
                .set_bool(attr::STOP_SHARING_AFTER_SESSIONS, false)
                .remove(attr::LICENSE_SHARING_SCHEDULED_STOP)
                .set_s(attr::LICENSE_SHARING_STATE, "active"),
            SharingState::Stopped => update
                .set_bool(attr::ALLOW_LICENSE_SHARING, false)
                .set_bool(attr::STOP_SHARING_AFTER_SESSIONS, false)
                .remove(attr::LICENSE_SHARING_SCHEDULED_STOP)
                .set_s(attr::LICENSE_SHARING_STATE, "inactive"),
            SharingState::Reactivated => update
                .set_bool(attr::ALLOW_LICENSE_SHARING, true)
                .set_bool(attr::STOP_SHARING_AFTER_SESSIONS, false)
                .remove(attr::LICENSE_SHARING_SCHEDULED_STOP)
                .set_s(attr::LICENSE_SHARING_STATE, "active"),
        };
        self.update(user_id, update, Cond::exists(attr::USER_ID)).await
    }

    // ------------------------------------------------------------------ backups

    /// Records a launched backup task and, when one exists, the time of the latest good
    /// backup. Nothing when the record is gone.
    pub async fn note_backup(&self, user_id: &str, launched: &BackupLaunched<'_>) -> Result<()> {
        let mut update = Update::new()
            .set_s(attr::BACKUP_TASK_ARN, launched.task_arn)
            .set_s(attr::BACKUP_CAUSE, launched.cause)
            .set(attr::BACKUP_LAUNCHED_AT, num(launched.at));
        if let Some(t) = launched.last_good {
            update = update.set(attr::LAST_BACKUP_AT, num(t));
        }
        self.update(user_id, update, Cond::exists(attr::USER_ID)).await?;
        Ok(())
    }

    /// Records how the backup task `task_arn` ended (only while the record still names it):
    /// a good one clears the last failure (and, when known, sets the time of the latest
    /// good backup); a failed one is noted with its reason. Either way the record no longer
    /// names the task. Nothing when the record names another task or is gone.
    pub async fn settle_backup(&self, user_id: &str, task_arn: &str, outcome: &BackupSettled) -> Result<()> {
        let mut update = Update::new().remove(attr::BACKUP_TASK_ARN).remove(attr::BACKUP_CAUSE);
        update = match outcome {
            BackupSettled::Good { uploaded_at } => {
                let update = update
                    .remove(attr::LAST_BACKUP_FAILED_AT)
                    .remove(attr::LAST_BACKUP_FAILURE);
                match uploaded_at {
                    Some(t) => update.set(attr::LAST_BACKUP_AT, num(*t)),
                    None => update,
                }
            }
            BackupSettled::Failed { at, why } => update
                .set(attr::LAST_BACKUP_FAILED_AT, num(*at))
                .set_s(attr::LAST_BACKUP_FAILURE, why.as_str()),
        };
        self.update(user_id, update, Cond::eq_s(attr::BACKUP_TASK_ARN, task_arn))
            .await?;
        Ok(())
    }

    /// Records, under a destroy's `lease`, that its final backup is done.
    pub async fn note_final_backup(&self, user_id: &str, lease: &Lease, at: i64) -> Result<()> {
        let update = Update::new().set(attr::FINAL_BACKUP_AT, num(at));
        match self.update(user_id, update, lease.held()).await? {
            Some(_) => Ok(()),
            None => Err(Error::failed(
                "Another invocation took over this instance; its operation was abandoned",
            )),
        }
    }

    // ------------------------------------------------------------------ restore

    /// Takes a stopped record under `lease` for a restore of `backup_id` → the record after
    /// it, or `None` when the record is not stopped (or names a task), another invocation
    /// holds it, or an unfinished restore of another backup is recorded. A restore that was
    /// not under way yet begins with its first step (`backup`).
    pub async fn begin_restore(
        &self,
        inst: &Instance,
        backup_id: &str,
        lease: &Lease,
        now: i64,
    ) -> Result<Option<Instance>> {
        let mut update = lease
            .take(Update::new())
            .set_s(attr::RESTORE_STATE, backup_id)
            .set(attr::UPDATED_AT, num(now));
        let state = match inst.restore_state.as_deref() {
            Some(s) => Cond::eq_s(attr::RESTORE_STATE, s),
            None => {
                update = update
                    .set_s(attr::RESTORE_STEP, RESTORE_STEP_BACKUP)
                    .remove(attr::RESTORE_TASK_ARN);
                Cond::not_exists(attr::RESTORE_STATE)
            }
        };
        let cond = Cond::And(vec![
            Cond::in_s(attr::STATUS, RESTORABLE),
            Cond::not_exists(attr::TASK_ARN),
            Lease::free_at(now),
            state,
        ]);
        self.update(&inst.user_id, update, cond).await
    }

    /// Records the step a restore under `lease` is at and the task of that step.
    pub async fn note_restore_step(
        &self,
        user_id: &str,
        lease: &Lease,
        step: &str,
        task_arn: Option<&str>,
    ) -> Result<()> {
        let update = Update::new().set_s(attr::RESTORE_STEP, step);
        let update = match task_arn {
            Some(t) => update.set_s(attr::RESTORE_TASK_ARN, t),
            None => update.remove(attr::RESTORE_TASK_ARN),
        };
        match self.update(user_id, update, lease.held()).await? {
            Some(_) => Ok(()),
            None => Err(Error::failed(
                "Another invocation took over this instance; the restore was abandoned",
            )),
        }
    }

    /// Ends a restore under `lease`: with `done`, the restore is over (a start may come);
    /// without, nothing was restored yet and nothing is left to resume. The lease is given up.
    pub async fn end_restore(&self, user_id: &str, lease: &Lease) -> Result<()> {
        let update = Lease::drop_from(Update::new())
            .remove(attr::RESTORE_STATE)
            .remove(attr::RESTORE_STEP)
            .remove(attr::RESTORE_TASK_ARN);
        match self.update(user_id, update, lease.held()).await? {
            Some(_) => Ok(()),
            None => Err(Error::failed(
                "Another invocation took over this instance; the restore was abandoned",
            )),
        }
    }

    // ------------------------------------------------------------------ notifications

    /// Turns the user's notifications off (`off`) or back on (the attribute removed) on an
    /// existing record → whether there was one.
    pub async fn set_notifications_off(&self, user_id: &str, off: bool, now: i64) -> Result<bool> {
        let update = Update::new()
            .set_or_remove(attr::NOTIFICATIONS_OFF, off.then_some(AttributeValue::Bool(true)))
            .set(attr::UPDATED_AT, num(now));
        Ok(self
            .update(user_id, update, Cond::exists(attr::USER_ID))
            .await?
            .is_some())
    }

    // ------------------------------------------------------------------ version

    /// Sets the Foundry version of an existing record.
    pub async fn set_version(&self, user_id: &str, version: &str, now: i64) -> Result<()> {
        let update = Update::new()
            .set_s(attr::FOUNDRY_VERSION, version)
            .set(attr::UPDATED_AT, num(now));
        match self.update(user_id, update, Cond::exists(attr::USER_ID)).await? {
            Some(_) => Ok(()),
            None => Err(Error::failed("Instance not found")),
        }
    }

    /// A conditional UpdateItem → the record after it, or `None` when the condition failed.
    async fn update(&self, user_id: &str, update: Update, cond: Cond) -> Result<Option<Instance>> {
        match written(self.db.dynamo.update(self.table(), user_id, &update, cond).await)? {
            Some(item) => Ok(Some(decode("instance", item)?)),
            None => Ok(None),
        }
    }
}
