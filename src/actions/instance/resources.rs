//! Every per-user AWS resource, in one place: how to make sure it exists, and how to
//! remove it.
//!
//! `create` calls the `ensure_*` steps; create's rollback and `destroy` both call
//! [`remove_all`]. Removal goes by the names a user's resources must have (bucket, IAM
//! user, secret, target group, DNS record, task family, log groups, EFS directory), not
//! only by what the record lists: a create that died before it recorded a resource
//! leaves nothing behind once the user destroys.

use crate::context::{Ctx, Services};
use crate::domain::model::{Credentials, Instance, InstanceStatus};
use crate::domain::names;
use crate::domain::taskdef::FOUNDRY_PORT;
use crate::error::{AwsError, AwsErrorKind, Error, Result};
use crate::managers::alb::TargetGroupSpec;
use crate::managers::credentials::store_credentials;
use crate::managers::efs::AccessPointSpec;
use crate::managers::iam::{AccessKey, KnownParts};
use crate::managers::route53::AliasRecord;
use crate::store::{Lease, Progress};

use super::helper_task;
use super::waits::Backoff;

/// The kinds of per-user AWS resources, for messages and the `Resources*` metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    AccessPoint,
    S3Bucket,
    IamUser,
    Secret,
    TargetGroup,
    DnsRecord,
    ListenerRule,
    Task,
    TaskDefinition,
    LogGroup,
}

impl ResourceKind {
    /// The kind in words, for messages.
    pub fn label(self) -> &'static str {
        match self {
            ResourceKind::AccessPoint => "access point",
            ResourceKind::S3Bucket => "S3 bucket",
            ResourceKind::IamUser => "IAM user",
            ResourceKind::Secret => "secret",
            ResourceKind::TargetGroup => "target group",
            ResourceKind::DnsRecord => "DNS record",
            ResourceKind::ListenerRule => "listener rule",
            ResourceKind::Task => "task",
            ResourceKind::TaskDefinition => "task definition",
            ResourceKind::LogGroup => "log group",
        }
    }

    /// The `ResourceKind` dimension value of the metrics.
    pub fn metric(self) -> &'static str {
        match self {
            ResourceKind::AccessPoint => "AccessPoint",
            ResourceKind::S3Bucket => "S3Bucket",
            ResourceKind::IamUser => "IamUser",
            ResourceKind::Secret => "Secret",
            ResourceKind::TargetGroup => "TargetGroup",
            ResourceKind::DnsRecord => "DnsRecord",
            ResourceKind::ListenerRule => "ListenerRule",
            ResourceKind::Task => "Task",
            ResourceKind::TaskDefinition => "TaskDefinition",
            ResourceKind::LogGroup => "LogGroup",
        }
    }

    pub fn created(self) {
        crate::telemetry::resource_created(self.metric());
    }

    pub fn deleted(self) {
        crate::telemetry::resource_deleted(self.metric());
    }
}

/// Runs a delete → `Ok(true)` when it removed something (counted in the metrics),
/// `Ok(false)` when AWS said "not found" (already gone), an error otherwise.
pub fn removed(kind: ResourceKind, result: std::result::Result<(), AwsError>) -> std::result::Result<bool, AwsError> {
    match result {
        Ok(()) => {
            kind.deleted();
            Ok(true)
        }
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e),
    }
}

/// What a removal could not remove, and why. Each step is tried; "not found" is done.
#[derive(Debug, Default)]
pub struct Leftovers(Vec<String>);

impl Leftovers {
    /// Records the outcome of removing a `kind` → whether it is gone.
    pub fn note(&mut self, kind: ResourceKind, result: std::result::Result<(), AwsError>) -> bool {
        match removed(kind, result) {
            Ok(_) => true,
            Err(e) => {
                self.0.push(format!("{}: {e}", kind.label()));
                false
            }
        }
    }

    pub fn push(&mut self, why: impl Into<String>) {
        self.0.push(why.into());
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Everything left, in one sentence.
    pub fn describe(&self) -> String {
        self.0.join("; ")
    }
}

/// The alias record that routes `<username>.<DOMAIN>` to our load balancer.
fn our_alias(svc: &Services, username: &str) -> AliasRecord {
    let cfg = &svc.config;
    AliasRecord {
        hosted_zone_id: cfg.route53_hosted_zone_id.clone(),
        name: names::host(username, &cfg.domain_name),
        target_dns_name: cfg.alb_dns_name.clone(),
        target_hosted_zone_id: cfg.alb_zone_id.clone(),
    }
}

// ---------------------------------------------------------------------- ensure

/// Whether `record` is an alias to the deployment's load balancer (the kind of record a
/// create of ours makes). Names compare case-insensitively, without trailing dots and
/// the `dualstack.` prefix Route 53 adds to ELB aliases.
fn aliases_our_alb(svc: &Services, record: &AliasRecord) -> bool {
    let norm = |name: &str| {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        name.strip_prefix("dualstack.").map(str::to_string).unwrap_or(name)
    };
    let zone = |id: &str| crate::managers::route53::bare_zone_id(id).to_ascii_uppercase();
    norm(&record.target_dns_name) == norm(&svc.config.alb_dns_name)
        && zone(&record.target_hosted_zone_id) == zone(&svc.config.alb_zone_id)
}

/// Claims `<username>.<DOMAIN>`: a Route 53 CREATE succeeds for exactly one caller. A
/// record that already exists is ours only when it is an alias to our load balancer and
/// no other user's instance has the name (a create of ours made it and died before
/// finishing). Any other record (an operator's `www`, a record pointing elsewhere) is
/// never touched: it is read first, so that the refusal does not depend on how strictly
/// Route 53 (or a stand-in for it) checks a CREATE.
pub async fn claim_subdomain(svc: &Services, user_id: &str, username: &str) -> Result<()> {
    let record = our_alias(svc, username);
    let comment = format!("Create DNS record for Foundry user {username}");
    let in_use = || {
        Error::Failed(format!(
            "The subdomain '{username}' is already in use by another DNS record; choose another username"
        ))
    };
    let taken = || {
        Error::Failed(format!(
            "The subdomain '{username}' is already taken by another user; choose another username"
        ))
    };
    match svc.aws.route53.get_alias(&record.hosted_zone_id, &record.name).await? {
        Some(existing) if !aliases_our_alb(svc, &existing) => return Err(in_use()),
        Some(_) => {
            return if svc.store.instances.others_named(username, user_id).await?.is_empty() {
                Ok(())
            } else {
                Err(taken())
            };
        }
        None => {}
    }
    match svc.aws.route53.create_alias(&record, &comment).await {
        Ok(()) => {
            ResourceKind::DnsRecord.created();
            Ok(())
        }
        // Someone made it since we looked.
        Err(e) if e.kind == AwsErrorKind::AlreadyExists => {
            if !svc.store.instances.others_named(username, user_id).await?.is_empty() {
                return Err(taken());
            }
            match svc.aws.route53.get_alias(&record.hosted_zone_id, &record.name).await? {
                Some(existing) if aliases_our_alb(svc, &existing) => Ok(()),
                // Route 53 may answer "already exists" for a record deleted a moment ago;
                // with no record there, there is nothing of anyone's to overwrite.
                None => {
                    svc.aws.route53.upsert_alias(&record, &comment).await?;
                    ResourceKind::DnsRecord.created();
                    Ok(())
                }
                Some(_) => Err(in_use()),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// The user's EFS access point: the recorded one while it lives, else a new one, made
/// idempotently with the create's token and recorded at once.
pub async fn ensure_access_point(svc: &Services, inst: &Instance, lease: &Lease) -> Result<String> {
    if let Some(id) = inst.access_point_id.as_deref() {
        let state = svc.aws.efs.access_point_state(id).await?;
        if state.is_some_and(|s| !matches!(s.as_str(), "deleting" | "deleted" | "error")) {
            return Ok(id.to_string());
        }
    }
    let uid = inst.user_id.as_str();
    let token = inst.attempt_id.clone().unwrap_or_else(|| lease.id.clone());
    let spec = AccessPointSpec {
        file_system_id: svc.config.file_system_id.clone(),
        uid: 1000,
        gid: 1000,
        path: names::efs_path(uid),
        owner_uid: 1000,
        owner_gid: 1000,
        permissions: "755".into(),
        tags: vec![
            ("Name".into(), format!("foundry-{uid}")),
            ("UserId".into(), uid.to_string()),
        ],
        client_token: token.chars().take(64).collect(),
    };
    let id = svc.aws.efs.create_access_point(&spec).await?;
    ResourceKind::AccessPoint.created();
    if id.is_empty() || id.contains("${") {
        return Err(Error::Failed(format!("Invalid access point ID received: {id}")));
    }
    let now = svc.now();
    svc.store
        .instances
        .record(uid, lease, Progress::AccessPoint(id.clone()), now)
        .await?;
    Ok(id)
}

/// Waits until the access point is available (bounded by the invocation's deadline). A
/// terminal state fails at once.
pub async fn wait_for_access_point(svc: &Services, ctx: &Ctx, id: &str) -> Result<()> {
    let until = ctx.wait_until_ms(svc.clock.as_ref());
    let mut backoff = Backoff::standard();
    loop {
        match svc.aws.efs.access_point_state(id).await?.as_deref() {
            Some("available") => return Ok(()),
            Some("error") => return Err(Error::Failed(format!("Access point {id} failed to become available"))),
            None | Some("deleting") | Some("deleted") => {
                return Err(Error::Failed(format!(
                    "Access point {id} disappeared while being created"
                )))
            }
            _ => {}
        }
        if !backoff.pause(svc.clock.as_ref(), until).await {
            return Err(Error::Failed(format!(
                "Access point {id} did not become available in time"
            )));
        }
    }
}

/// The user's bucket, public-read and versioned.
pub async fn ensure_bucket(svc: &Services, bucket: &str) -> Result<()> {
    svc.aws
        .s3
        .ensure_bucket(bucket, &svc.config.region)
        .await
        .map_err(|e| Error::Failed(format!("S3 bucket setup failed: {e}")))?;
    ResourceKind::S3Bucket.created();
    Ok(())
}

/// The bucket policy of the user's IAM user: read and write of the bucket's objects.
pub fn iam_policy(bucket: &str) -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject", "s3:PutObjectAcl", "s3:DeleteObject", "s3:ListBucket", "s3:GetBucketLocation"],
            "Resource": [format!("arn:aws:s3:::{bucket}"), format!("arn:aws:s3:::{bucket}/*")]
        }]
    })
    .to_string()
}

/// The user's IAM user with its bucket policy and one fresh access key.
pub async fn ensure_iam_user(svc: &Services, user_id: &str, username: &str, bucket: &str) -> Result<AccessKey> {
    let made = async {
        let user = names::iam_user_name(username, user_id);
        let tags = vec![
            ("UserId".to_string(), user_id.to_string()),
            ("SanitizedUsername".to_string(), username.to_string()),
            ("Application".to_string(), "FoundryVTT".to_string()),
            ("Purpose".to_string(), "S3BucketAccess".to_string()),
        ];
        match svc.aws.iam.create_user(&user, names::IAM_USER_PATH, &tags).await {
            Ok(()) => {}
            // Left by a create of ours that died: its key (if any) is unknown to us.
            Err(e) if e.is_already_exists() => svc.aws.iam.delete_access_keys(&user).await?,
            Err(e) => return Err(e),
        }
        svc.aws
            .iam
            .put_user_policy(&user, names::IAM_POLICY_NAME, &iam_policy(bucket))
            .await?;
        svc.aws.iam.create_access_key(&user).await
    };
    let key = made
        .await
        .map_err(|e| Error::Failed(format!("IAM user creation failed: {e}")))?;
    ResourceKind::IamUser.created();
    Ok(key)
}

/// Writes the user's secret → its ARN (counted as made when `new`).
pub async fn ensure_secret(svc: &Services, user_id: &str, creds: &Credentials, new: bool) -> Result<String> {
    let arn = store_credentials(svc.aws.secrets.as_ref(), user_id, creds).await?;
    if new {
        ResourceKind::Secret.created();
    }
    Ok(arn)
}

/// The target group: HTTP on the Foundry port, health-checked on `/`.
pub fn target_group_spec(svc: &Services, username: &str) -> TargetGroupSpec {
    TargetGroupSpec {
        name: names::target_group_name(username),
        vpc_id: svc.config.vpc_id.clone(),
        port: FOUNDRY_PORT,
        health_check_path: "/".into(),
        health_check_interval_seconds: 30,
        health_check_timeout_seconds: 10,
        healthy_threshold: 2,
        unhealthy_threshold: 3,
        matcher: "200,302".into(),
        tags: vec![
            ("Name".into(), names::target_group_name(username)),
            ("SanitizedUsername".into(), username.to_string()),
            ("Application".into(), "FoundryVTT".into()),
        ],
    }
}

/// The user's target group → its ARN.
pub async fn ensure_target_group(svc: &Services, username: &str) -> Result<String> {
    let spec = target_group_spec(svc, username);
    match svc.aws.alb.create_target_group(&spec).await {
        Ok(arn) => {
            ResourceKind::TargetGroup.created();
            Ok(arn)
        }
        // Left by a create of ours that died (the subdomain claim makes the name ours).
        Err(e) if e.is_already_exists() => svc
            .aws
            .alb
            .find_target_group(&spec.name)
            .await?
            .ok_or_else(|| Error::Failed(format!("Target group {} exists but cannot be found", spec.name))),
        Err(e) => Err(e.into()),
    }
}

/// Makes sure a log group exists with the configured retention → whether it does.
/// Best effort: when it fails, the task definition lets the awslogs driver create the
/// group (without retention), so a missing `logs:*` permission degrades instead of
/// failing the start.
pub async fn ensure_log_group(svc: &Services, name: &str) -> bool {
    let tags = vec![("Application".to_string(), "FoundryVTT".to_string())];
    match svc
        .aws
        .logs
        .ensure_log_group(name, svc.config.log_retention_days, &tags)
        .await
    {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, log_group = name, "could not set the log group's retention");
            false
        }
    }
}

// ---------------------------------------------------------------------- remove

/// What happens to the user's secret when the resources go.
#[derive(Debug, Clone)]
pub enum SecretFate {
    Delete,
    /// Kept as it is (a destroy that keeps license sharing).
    Keep,
    /// Put back as it was before a failed create overwrote it.
    Restore(Credentials),
}

/// How [`remove_all`] treats the user's files on EFS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Files {
    /// Erase them with the cleanup task first; the access point goes only when they are
    /// gone, so that nothing is left on the file system unreferenced. `resumed`: the destroy
    /// goes on with one cut short, whose cleanup task may still run.
    Erase { resumed: bool },
    /// Never written (a create that failed before its first start): remove the access
    /// point at once.
    NeverWritten,
}

/// Removes every resource the user may have, by the record and by the names (the caller
/// holds the record's lease) → what is left. "Not found" counts as done and a failing step
/// does not stop the others, so a second call finishes what the first could not.
pub async fn remove_all(svc: &Services, ctx: &Ctx, inst: &Instance, secret: SecretFate, files: Files) -> Leftovers {
    let uid = inst.user_id.as_str();
    let username = inst.sanitized_username.as_str();
    let mut left = Leftovers::default();

    // Names the original let two users share are not this user's alone. A subdomain
    // claimed by this port's create is (its claim made sure no one else had it).
    let others = if inst.dns_record == Some(true) {
        Vec::new()
    } else {
        match svc.store.instances.others_named(username, uid).await {
            Ok(others) => others,
            Err(e) => {
                left.push(format!("checking who else uses the subdomain: {e}"));
                return left;
            }
        }
    };
    if others.is_empty() {
        remove_target_group(svc, inst, &mut left).await;
        remove_dns_record(svc, inst, &mut left).await;
    } else {
        tracing::warn!(
            subdomain = username,
            "another user's instance has this subdomain; its target group and DNS record are kept"
        );
    }
    let until = ctx.wait_until_ms(svc.clock.as_ref());
    if !in_time(svc, until, "the access point", &mut left) {
        return left;
    }
    remove_access_points(svc, ctx, inst, files, &mut left).await;
    // The bucket and IAM user names end with the last 8 characters of the user id, which
    // another user of the same subdomain may share.
    let also_theirs =
        |name_of: fn(&str, &str) -> String, name: &str| others.iter().any(|other| name_of(username, other) == name);
    let bucket = inst
        .s3_bucket_name
        .clone()
        .unwrap_or_else(|| names::bucket_name(username, uid));
    if !also_theirs(names::bucket_name, &bucket) {
        if !in_time(svc, until, "the S3 bucket", &mut left) {
            return left;
        }
        remove_bucket(svc, until, &bucket, &mut left).await;
    }
    let iam_user = names::iam_user_name(username, uid);
    if !also_theirs(names::iam_user_name, &iam_user) {
        if !in_time(svc, until, "the IAM user", &mut left) {
            return left;
        }
        if let Err(e) = removed(
            ResourceKind::IamUser,
            svc.aws
                .iam
                .delete_user(
                    &iam_user,
                    &KnownParts {
                        access_key_id: inst.s3_access_key_id.as_deref(),
                        policy: names::IAM_POLICY_NAME,
                    },
                )
                .await,
        ) {
            left.push(format!("IAM user deletion failed: {e}"));
        }
    }
    if !in_time(svc, until, "the secret", &mut left) {
        return left;
    }
    remove_secret(svc, uid, secret, &mut left).await;
    remove_task_definitions(svc, until, uid, &mut left).await;
    if !in_time(svc, until, "the log groups", &mut left) {
        return left;
    }
    remove_log_group(svc, &names::log_group(uid), &mut left).await;
    // The original's sidecar wrote to a second group, which it never deleted.
    if inst.dns_record != Some(true) {
        remove_log_group(svc, &names::legacy_log_group(uid), &mut left).await;
    }
    left
}

/// Whether the invocation still has time for the next step; if not, says so in `left`
/// (the next call of the action goes on from there).
fn in_time(svc: &Services, until_ms: i64, next: &str, left: &mut Leftovers) -> bool {
    if svc.clock.now_ms() < until_ms {
        return true;
    }
    left.push(format!("time ran out before removing {next}"));
    false
}

/// The target group (the recorded one, or, for a create that died before recording it,
/// the one its name says), after the listener rules that still forward to it.
async fn remove_target_group(svc: &Services, inst: &Instance, left: &mut Leftovers) {
    let tg = match inst.target_group_arn.clone() {
        Some(arn) => Some(arn),
        None => match svc
            .aws
            .alb
            .find_target_group(&names::target_group_name(&inst.sanitized_username))
            .await
        {
            Ok(found) => found,
            Err(e) => {
                left.push(format!("{}: {e}", ResourceKind::TargetGroup.label()));
                return;
            }
        },
    };
    let Some(tg) = tg else { return };
    match svc.aws.alb.delete_target_group(&tg).await {
        // Rules still forwarding to the group (ones the original orphaned) block its
        // deletion: remove them, then the group.
        Err(e) if e.kind == AwsErrorKind::Conflict => {
            match svc.aws.alb.list_rules(&svc.config.alb_https_listener_arn).await {
                Ok(rules) => {
                    for rule in rules.iter().filter(|r| r.target_group_arns.contains(&tg)) {
                        left.note(ResourceKind::ListenerRule, svc.aws.alb.delete_rule(&rule.arn).await);
                    }
                }
                Err(e) => left.push(format!("listener rules: {e}")),
            }
            left.note(ResourceKind::TargetGroup, svc.aws.alb.delete_target_group(&tg).await);
        }
        other => {
            left.note(ResourceKind::TargetGroup, other);
        }
    }
}

/// The DNS record of the user's subdomain, exactly as it is (Route 53 deletes a record
/// only when the values match, and the load balancer may have been replaced, or the
/// record edited). A creating record deletes it only when it is an alias to our load
/// balancer: its claim may have failed on someone else's record.
async fn remove_dns_record(svc: &Services, inst: &Instance, left: &mut Leftovers) {
    let ours = our_alias(svc, &inst.sanitized_username);
    let comment = format!("Delete DNS record for Foundry user {}", inst.sanitized_username);
    if inst.status != InstanceStatus::Creating {
        // Usually the record is the one we made: delete it as made, and read it only when
        // Route 53 answers that the values differ.
        match svc.aws.route53.delete_alias(&ours, &comment).await {
            Ok(()) => {
                ResourceKind::DnsRecord.deleted();
                return;
            }
            Err(e) if e.is_not_found() => return,
            Err(e) if e.kind == AwsErrorKind::Invalid => {
                tracing::info!(error = %e, "the DNS record differs from the one we made; deleting it as it is");
            }
            Err(e) => {
                left.push(format!("{}: {e}", ResourceKind::DnsRecord.label()));
                return;
            }
        }
    }
    let found = match svc.aws.route53.get_alias(&ours.hosted_zone_id, &ours.name).await {
        Ok(found) => found,
        Err(e) => {
            left.push(format!("{}: {e}", ResourceKind::DnsRecord.label()));
            return;
        }
    };
    if let Some(record) = found {
        if inst.status != InstanceStatus::Creating || aliases_our_alb(svc, &record) {
            left.note(
                ResourceKind::DnsRecord,
                svc.aws.route53.delete_alias(&record, &comment).await,
            );
        }
    }
}

/// The user's access points: the recorded one, and for a create that died, any at the
/// user's directory. With [`Files::Erase`], the files go first.
async fn remove_access_points(svc: &Services, ctx: &Ctx, inst: &Instance, files: Files, left: &mut Leftovers) {
    let mut ids: Vec<String> = inst.access_point_id.iter().cloned().collect();
    if inst.status == InstanceStatus::Creating {
        match svc
            .aws
            .efs
            .access_points_at(&svc.config.file_system_id, &names::efs_path(&inst.user_id))
            .await
        {
            Ok(found) => {
                for id in found {
                    if !ids.contains(&id) {
                        ids.push(id);
                    }
                }
            }
            Err(e) => {
                left.push(format!("{}: {e}", ResourceKind::AccessPoint.label()));
                return;
            }
        }
    }
    if ids.is_empty() {
        return;
    }
    if let Files::Erase { resumed } = files {
        if let Err(e) = erase_files(svc, ctx, inst, resumed).await {
            left.push(e.to_string());
            return;
        }
    }
    for id in ids {
        left.note(ResourceKind::AccessPoint, svc.aws.efs.delete_access_point(&id).await);
    }
}

/// Erases the user's files with the EFS cleanup task and waits for it: the task an earlier
/// destroy of this instance launched when ECS still runs it, else a new one. `resumed`: this
/// destroy goes on with one cut short (the record was `destroying` already).
async fn erase_files(svc: &Services, ctx: &Ctx, inst: &Instance, resumed: bool) -> Result<()> {
    let uid = inst.user_id.as_str();
    // A destroy of an earlier version recorded the task it launched, which has no startedBy.
    if let Some(arn) = inst.cleanup_task_arn.as_deref() {
        match helper_task::wait(svc, ctx, arn).await {
            Err(helper_task::Outcome::Failed(why)) => {
                tracing::info!(task = arn, why, "the recorded cleanup task failed; launching another");
            }
            outcome => return cleaned(outcome),
        }
    }
    // Only a destroy cut short can have left a cleanup task running: a fresh destroy does
    // not look. A task that has stopped (failed, or done before the destroy was cut short)
    // is not listed, and a new one erases whatever is left.
    let mut tasks = if resumed || inst.cleanup_task_arn.is_some() {
        helper_task::running(svc, uid).await?
    } else {
        Vec::new()
    };
    if tasks.is_empty() {
        tasks.push(helper_task::launch(svc, uid).await?);
    }
    for arn in tasks {
        cleaned(helper_task::wait(svc, ctx, &arn).await)?;
    }
    Ok(())
}

/// How the wait for a cleanup task ended, as the destroy reports it.
fn cleaned(outcome: std::result::Result<(), helper_task::Outcome>) -> Result<()> {
    match outcome {
        Ok(()) => Ok(()),
        Err(helper_task::Outcome::StillRunning) => Err(Error::failed(
            "EFS cleanup is still running; the access point is kept until it finishes",
        )),
        // The next destroy does not find it running and launches a new one.
        Err(helper_task::Outcome::Failed(why)) => Err(Error::Failed(format!(
            "EFS cleanup failed ({why}); the access point and the user's files are kept"
        ))),
        Err(helper_task::Outcome::Aws(e)) => Err(e),
    }
}

/// The bucket: every object version, a page at a time while the invocation has time,
/// then the bucket. A bucket that still holds objects right after being emptied (S3's
/// listing lags, or a writer raced us) is emptied and retried once.
async fn remove_bucket(svc: &Services, until_ms: i64, bucket: &str, left: &mut Leftovers) {
    // DeleteBucket first: an empty bucket (a user who never uploaded an asset) goes in one
    // call, and one with objects answers BucketNotEmpty and is emptied, then deleted; once
    // more if a writer raced the emptying.
    const LAST: usize = 2;
    for attempt in 0..=LAST {
        let mut emptied = attempt == 0;
        while !emptied {
            match svc.aws.s3.empty_bucket_page(bucket).await {
                Ok(true) => emptied = true,
                Ok(false) => {}
                Err(e) if e.is_not_found() => return,
                Err(e) => {
                    left.push(format!("S3 bucket deletion failed: {e}"));
                    return;
                }
            }
            if !emptied && !in_time(svc, until_ms, "every object of the S3 bucket", left) {
                return;
            }
        }
        match removed(ResourceKind::S3Bucket, svc.aws.s3.delete_bucket(bucket).await) {
            Ok(_) => return,
            Err(e) if e.kind == AwsErrorKind::NotEmpty && attempt < LAST => {}
            Err(e) if e.kind == AwsErrorKind::NotEmpty => {
                left.push(
                    "S3 bucket deletion failed: Bucket still contains objects after emptying. This may be due to eventual consistency - please try again in a few minutes.",
                );
                return;
            }
            Err(e) => {
                left.push(format!("S3 bucket deletion failed: {e}"));
                return;
            }
        }
    }
}

async fn remove_secret(svc: &Services, user_id: &str, fate: SecretFate, left: &mut Leftovers) {
    match fate {
        SecretFate::Keep => {}
        SecretFate::Delete => {
            left.note(
                ResourceKind::Secret,
                svc.aws.secrets.delete_secret(&names::secret_name(user_id), true).await,
            );
        }
        SecretFate::Restore(previous) => {
            if let Err(e) = store_credentials(svc.aws.secrets.as_ref(), user_id, &previous).await {
                left.push(format!("secret: {e}"));
            }
        }
    }
}

/// Every task-definition revision of the user's family (the original left one per
/// start), while the invocation has time.
async fn remove_task_definitions(svc: &Services, until_ms: i64, user_id: &str, left: &mut Leftovers) {
    match svc.aws.ecs.list_task_definitions(&names::task_family(user_id)).await {
        Ok(arns) => {
            for arn in arns {
                if !in_time(svc, until_ms, "every task definition", left) {
                    return;
                }
                left.note(
                    ResourceKind::TaskDefinition,
                    svc.aws.ecs.deregister_task_definition(&arn).await,
                );
            }
        }
        Err(e) => left.push(format!("task definitions: {e}")),
    }
}

/// A log group. A deployment whose role may not delete log groups still destroys (the
/// group's retention bounds what stays); any other failure is left for the next call.
async fn remove_log_group(svc: &Services, name: &str, left: &mut Leftovers) {
    match removed(ResourceKind::LogGroup, svc.aws.logs.delete_log_group(name).await) {
        Ok(_) => {}
        Err(e) if e.kind == AwsErrorKind::AccessDenied => {
            tracing::warn!(error = %e, log_group = name, "not allowed to delete the log group; its retention still applies");
        }
        Err(e) => left.push(format!("{}: {e}", ResourceKind::LogGroup.label())),
    }
}

/// Deregisters a task's IP from the user's target group (not found: already gone).
pub async fn deregister_target(svc: &Services, target_group: &str, ip: &str) -> std::result::Result<(), AwsError> {
    match svc.aws.alb.deregister_target(target_group, ip, FOUNDRY_PORT).await {
        Err(e) if e.is_not_found() => Ok(()),
        other => other,
    }
}
