//! `create` (spec/ACTIONS.md §4.1), all-or-nothing and resumable (W19, W20, W13, W17,
//! W18, W6, W9, W49).
//!
//! 1. Everything that can be validated is validated before the first AWS call.
//! 2. A `creating` record is written with a conditional put (two concurrent creates:
//!    one wins, the other gets a clear error). It holds a lease; a record whose lease
//!    expired belongs to an invocation that died, and the next `create` takes it over.
//! 3. The subdomain is claimed with a Route 53 `CREATE` (atomic: a name has one owner).
//! 4. Each resource id is recorded as soon as the resource exists; every step tolerates
//!    "already exists", so a taken-over create resumes where the dead one stopped.
//! 5. On failure, everything the record (and this invocation) made is undone, and the
//!    record is deleted: a second `create` starts from nothing.

use rand::Rng;
use serde_json::Value;

use super::lifecycle::{self, cond_lease, lease_free, new_id, progress, Failures, Kind, SLOW_POLL};
use crate::actions::Obj;
use crate::app::{App, Ctx};
use crate::domain::model::{Credentials, Instance, InstanceStatus, LicensePool};
use crate::domain::names;
use crate::domain::taskdef::valid_version;
use crate::error::{AwsErrorKind, Error, Result};
use crate::event::CreateFields;
use crate::managers::alb::TargetGroupSpec;
use crate::managers::credentials::{get_credentials, store_credentials};
use crate::managers::dynamodb::{Cond, TransactOp, Update};
use crate::managers::efs::AccessPointSpec;
use crate::managers::route53::AliasRecord;
use crate::secret::Sensitive;
use crate::store::{encode, n};

/// Length of a generated admin key (W6).
pub const ADMIN_KEY_LEN: usize = 26;

/// A new admin key: 26 characters of `[0-9a-z]` from the thread's CSPRNG (W6).
pub fn generate_admin_key() -> Sensitive {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::rng();
    let key: String = (0..ADMIN_KEY_LEN)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    Sensitive::new(key)
}

/// The validated request.
struct Plan {
    user_id: String,
    san: String,
    license_type: &'static str,
    version: String,
    selected_license_id: Option<String>,
    allow_sharing: Option<bool>,
    max_users: Option<i64>,
}

fn validate(user_id: &str, f: &CreateFields) -> Result<Plan> {
    names::validate_user_id(user_id).map_err(Error::Failed)?;
    let license_type = match f.license_type.as_deref().filter(|t| !t.is_empty()).unwrap_or("byol") {
        "byol" => "byol",
        "pooled" => "pooled",
        _ => return Err(Error::failed("Invalid license type. Must be 'byol' or 'pooled'")),
    };
    let selected_license_id = match (license_type, f.selected_license_id.as_deref().filter(|s| !s.is_empty())) {
        ("pooled", Some(id)) => {
            names::license_owner(id).ok_or_else(|| Error::failed("Invalid license ID format"))?;
            Some(id.to_string())
        }
        _ => None,
    };
    let san = f.sanitized_username.clone().unwrap_or_default();
    names::validate_sanitized_username(&san).map_err(Error::Failed)?;
    let version = match f.foundry_version.as_deref().filter(|v| !v.is_empty()) {
        Some(v) if valid_version(v) => v.to_string(),
        Some(_) => return Err(Error::failed("Invalid version format")),
        None => "13".to_string(),
    };
    Ok(Plan {
        user_id: user_id.to_string(),
        san,
        license_type,
        version,
        selected_license_id,
        allow_sharing: f.allow_license_sharing,
        max_users: f.max_concurrent_users,
    })
}

/// The Foundry login (spec step 3): `(username, password)` or none (dynamic pooled).
async fn resolve_login(
    app: &App,
    plan: &Plan,
    f: &CreateFields,
    stored: &Option<Credentials>,
) -> Result<Option<(Sensitive, Sensitive)>> {
    let given = |v: &Option<Sensitive>| v.clone().filter(|s| !s.is_empty());
    match (plan.license_type, plan.selected_license_id.as_deref()) {
        ("pooled", Some(license_id)) => {
            let owner = names::license_owner(license_id).unwrap_or_default();
            let creds = get_credentials(app.aws.secrets.as_ref(), owner).await?;
            match creds.and_then(|c| Some((c.username?, c.password?))) {
                Some(login) => Ok(Some(login)),
                None => {
                    if let Err(e) = super::destroy::deactivate_pool(app, license_id).await {
                        tracing::warn!(error = %e.client_message(), "could not deactivate the orphaned license pool");
                    }
                    Err(Error::failed(
                        "Failed to get license owner credentials: License owner credentials not found - the license owner may have deleted their instance. The license pool has been automatically deactivated.",
                    ))
                }
            }
        }
        ("pooled", None) => Ok(None),
        _ => match (given(&f.foundry_username), given(&f.foundry_password)) {
            (Some(u), Some(p)) => Ok(Some((u, p))),
            _ => match stored
                .as_ref()
                .and_then(|c| Some((c.username.clone()?, c.password.clone()?)))
            {
                Some(login) => Ok(Some(login)),
                None => Err(Error::failed("Missing Foundry credentials for BYOL license")),
            },
        },
    }
}

pub async fn create(app: &App, ctx: &Ctx, user_id: &str, f: &CreateFields) -> Result<Value> {
    let plan = validate(user_id, f)?;
    let now = app.clock.now();

    let existing = app.store.get_instance_consistent(user_id).await?;
    if let Some(i) = &existing {
        if i.status != InstanceStatus::Creating {
            return Err(Error::failed("User already has an instance"));
        }
        if !lease_free(i, now) {
            return Err(Error::failed(
                "An instance is already being created for this user; try again in a few minutes",
            ));
        }
    }

    let stored = get_credentials(app.aws.secrets.as_ref(), user_id).await?;
    let login = resolve_login(app, &plan, f, &stored).await?;

    // The record, before any resource exists.
    let lease_id = new_id();
    let lease_until = lifecycle::lease_until(app, ctx);
    let record = match existing {
        None => {
            let admin_key = stored
                .as_ref()
                .and_then(|c| c.admin_key.clone())
                .filter(|k| !k.is_empty())
                .unwrap_or_else(generate_admin_key);
            let record = Instance {
                user_id: plan.user_id.clone(),
                sanitized_username: plan.san.clone(),
                status: InstanceStatus::Creating,
                admin_key: Some(admin_key),
                foundry_version: Some(plan.version.clone()),
                license_type: Some(plan.license_type.to_string()),
                created_at: Some(now),
                updated_at: Some(now),
                attempt_id: Some(new_id()),
                lease_id: Some(lease_id.clone()),
                lease_until: Some(lease_until),
                ..Default::default()
            };
            match app.store.put_instance(&record, Cond::not_exists("userId")).await {
                Ok(()) => record,
                Err(Error::Aws(e)) if e.is_condition_failed() => {
                    return Err(Error::failed(
                        "User already has an instance (another create for this user is in progress)",
                    ))
                }
                Err(e) => return Err(e),
            }
        }
        Some(dead) => {
            // Take over a create whose invocation died; resume with its record.
            let update = Update::new()
                .set_s("leaseId", lease_id.as_str())
                .set("leaseUntil", n(lease_until))
                .set_s("sanitizedUsername", dead.sanitized_username.as_str());
            let cond = Cond::And(vec![
                Cond::eq_s("status", InstanceStatus::Creating.as_str()),
                lifecycle::cond_lease_free(now),
            ]);
            match app.store.update_instance(user_id, &update, cond).await {
                Ok(i) if i.sanitized_username == plan.san => i,
                Ok(i) => {
                    // The dead attempt was for another name: undo it entirely first.
                    rollback(app, &i, &lease_id, None).await?;
                    return Err(Error::failed(
                        "An unfinished create for another username was cleaned up; please try again",
                    ));
                }
                Err(Error::Aws(e)) if e.is_condition_failed() => {
                    return Err(Error::failed(
                        "An instance is already being created for this user; try again in a few minutes",
                    ))
                }
                Err(e) => return Err(e),
            }
        }
    };

    let mut made = Made::default();
    match build(app, ctx, &plan, &record, &lease_id, login, stored.as_ref(), &mut made).await {
        Ok(v) => Ok(v),
        Err(e) => {
            tracing::warn!(error = %e, "create failed; undoing what it made");
            let latest = made.merge_into(app.store.get_instance_consistent(user_id).await?.unwrap_or(record));
            if let Err(undo) = rollback(app, &latest, &lease_id, stored.as_ref()).await {
                return Err(Error::Failed(format!(
                    "{}; cleanup incomplete ({}), call create or destroy again to finish it",
                    e.client_message().trim_start_matches("Internal error: "),
                    undo.client_message().trim_start_matches("Internal error: ")
                )));
            }
            Err(e)
        }
    }
}

fn alias(app: &App, san: &str) -> AliasRecord {
    AliasRecord {
        hosted_zone_id: app.config.route53_hosted_zone_id.clone(),
        name: names::host(san, &app.config.domain_name),
        target_dns_name: app.config.alb_dns_name.clone(),
        target_hosted_zone_id: app.config.alb_zone_id.clone(),
    }
}

/// Claims `<san>.<DOMAIN>`: a Route 53 CREATE succeeds for exactly one caller. A record
/// that already exists is ours only if no other instance uses the name (it was made by
/// a create of ours that died before recording it).
async fn claim_subdomain(app: &App, inst: &Instance) -> Result<()> {
    let record = alias(app, &inst.sanitized_username);
    let comment = format!("Create DNS record for Foundry user {}", inst.sanitized_username);
    match app.aws.route53.create_alias(&record, &comment).await {
        Ok(()) => {
            Kind::DnsRecord.created();
            Ok(())
        }
        Err(e) if e.kind == AwsErrorKind::AlreadyExists => {
            let taken = app
                .store
                .scan_instances()
                .await?
                .iter()
                .any(|i| i.user_id != inst.user_id && i.sanitized_username == inst.sanitized_username);
            if taken {
                return Err(Error::Failed(format!(
                    "The subdomain '{}' is already taken by another user; choose another username",
                    inst.sanitized_username
                )));
            }
            app.aws.route53.upsert_alias(&record, &comment).await?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// What this invocation made that the record may not show yet (a progress write can
/// fail right after the resource was made).
#[derive(Debug, Default)]
struct Made {
    dns: bool,
    access_point: Option<String>,
    secret_created: Option<bool>,
}

impl Made {
    /// `record` with what was made but not recorded.
    fn merge_into(&self, mut record: Instance) -> Instance {
        if self.dns {
            record.dns_record = Some(true);
        }
        if record.access_point_id.is_none() {
            record.access_point_id = self.access_point.clone();
        }
        if let (None, Some(created)) = (record.secret_created, self.secret_created) {
            record.secret_created = Some(created);
            record
                .secret_arn
                .get_or_insert_with(|| names::secret_name(&record.user_id));
        }
        record
    }
}

#[allow(clippy::too_many_arguments)]
async fn build(
    app: &App,
    ctx: &Ctx,
    plan: &Plan,
    record: &Instance,
    lease_id: &str,
    login: Option<(Sensitive, Sensitive)>,
    stored: Option<&Credentials>,
    made: &mut Made,
) -> Result<Value> {
    let cfg = &app.config;
    let uid = plan.user_id.as_str();
    let san = plan.san.as_str();
    let mut inst = record.clone();

    // Subdomain (the claim on every name derived from <san>).
    if inst.dns_record != Some(true) {
        claim_subdomain(app, &inst).await?;
        made.dns = true;
        inst = progress(app, uid, lease_id, Update::new().set_bool("dnsRecord", true)).await?;
    }

    // EFS access point, idempotent through the create's client token.
    let token = inst.attempt_id.clone().unwrap_or_else(new_id);
    let ap_state = match inst.access_point_id.as_deref() {
        Some(id) => app.aws.efs.access_point_state(id).await?,
        None => None,
    };
    let ap_id = match (inst.access_point_id.clone(), ap_state) {
        (Some(id), Some(state)) if state != "deleting" && state != "deleted" && state != "error" => id,
        _ => {
            let spec = AccessPointSpec {
                file_system_id: cfg.file_system_id.clone(),
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
            let id = app.aws.efs.create_access_point(&spec).await?;
            made.access_point = Some(id.clone());
            Kind::AccessPoint.created();
            if id.is_empty() || id.contains("${") {
                return Err(Error::Failed(format!("Invalid access point ID received: {id}")));
            }
            progress(app, uid, lease_id, Update::new().set_s("accessPointId", id.as_str())).await?;
            id
        }
    };
    wait_for_access_point(app, ctx, &ap_id).await?;

    // S3 bucket.
    let bucket = names::bucket_name(san, uid);
    app.aws
        .s3
        .ensure_bucket(&bucket, &cfg.region)
        .await
        .map_err(|e| Error::Failed(format!("S3 bucket setup failed: {e}")))?;
    Kind::S3Bucket.created();
    inst = progress(app, uid, lease_id, Update::new().set_s("s3BucketName", bucket.as_str())).await?;

    // IAM user with its bucket policy and one access key.
    let iam_user = names::iam_user_name(san, uid);
    let key = make_iam_user(app, &inst, &iam_user, &bucket)
        .await
        .map_err(|e| Error::Failed(format!("IAM user creation failed: {e}")))?;
    Kind::IamUser.created();
    inst = progress(
        app,
        uid,
        lease_id,
        Update::new()
            .set_s("iamUserName", iam_user.as_str())
            .set_s("s3AccessKeyId", key.access_key_id.as_str()),
    )
    .await?;

    // The secret: Foundry login (when any), admin key, and the S3 key pair (W9).
    let admin_key = inst.admin_key.clone().unwrap_or_else(generate_admin_key);
    let (username, password) = match login {
        Some((u, p)) => (Some(u), Some(p)),
        None => (None, None),
    };
    let creds = Credentials {
        username,
        password,
        admin_key: Some(admin_key.clone()),
        s3_access_key_id: Some(key.access_key_id.clone()),
        s3_secret_access_key: Some(key.secret_access_key.clone()),
    };
    let secret_created = inst.secret_created.unwrap_or(stored.is_none());
    let secret_arn = store_credentials(app.aws.secrets.as_ref(), uid, &creds).await?;
    made.secret_created = Some(secret_created);
    if secret_created {
        Kind::Secret.created();
    }
    progress(
        app,
        uid,
        lease_id,
        Update::new()
            .set_s("secretArn", secret_arn.as_str())
            .set_bool("secretCreated", secret_created),
    )
    .await?;

    // Target group.
    let spec = target_group_spec(app, san);
    let tg = match app.aws.alb.create_target_group(&spec).await {
        Ok(arn) => {
            Kind::TargetGroup.created();
            arn
        }
        // Left by a create of ours that died (the subdomain claim makes the name ours).
        Err(e) if e.is_already_exists() => app
            .aws
            .alb
            .find_target_group(&spec.name)
            .await?
            .ok_or_else(|| Error::Failed(format!("Target group {} exists but cannot be found", spec.name)))?,
        Err(e) => return Err(e.into()),
    };
    progress(app, uid, lease_id, Update::new().set_s("targetGroupArn", tg.as_str())).await?;

    // A listener-rule priority hint (allocated for real at start, see lifecycle::ensure_rule).
    let used = app
        .aws
        .alb
        .list_rules(&cfg.alb_https_listener_arn)
        .await?
        .into_iter()
        .filter_map(|r| r.priority.map(i64::from))
        .collect();
    let priority = lifecycle::lowest_free_priority(&used);

    // Finish: the record becomes `created` and the shared license joins the pool, at once.
    let now = app.clock.now();
    let pooled = plan.license_type == "pooled";
    let mut update = Update::new()
        .set_s("status", InstanceStatus::Created.as_str())
        .set("albRulePriority", n(priority))
        .set("updatedAt", n(now))
        .remove("leaseId")
        .remove("leaseUntil")
        .remove("attemptId");
    update = match (pooled, plan.selected_license_id.as_deref()) {
        (true, Some(l)) => update.set_s("licenseOwnerId", l),
        _ => update.remove("licenseOwnerId"),
    };
    update = if pooled {
        update
            .set_bool("allowLicenseSharing", false)
            .set("maxConcurrentUsers", n(1))
    } else {
        let u = match plan.allow_sharing {
            Some(b) => update.set_bool("allowLicenseSharing", b),
            None => update.remove("allowLicenseSharing"),
        };
        u.set("maxConcurrentUsers", n(plan.max_users.filter(|m| *m != 0).unwrap_or(1)))
    };
    let mut ops = vec![TransactOp::Update {
        table: app.store.instances.clone(),
        key: uid.to_string(),
        update,
        cond: cond_lease(lease_id),
    }];
    if !pooled && plan.allow_sharing == Some(true) {
        ops.push(pool_op(app, &plan.user_id, san, plan.max_users, now).await?);
    }
    app.store.transact(ops).await?;

    Ok(Obj::new()
        .set("message", "Instance created successfully")
        .set("userId", uid)
        .set("status", "created")
        .set("accessPointId", ap_id)
        .set("targetGroupArn", tg)
        .set("url", names::url(san, &cfg.domain_name))
        .set("adminKey", admin_key.expose())
        .set("s3BucketName", bucket.as_str())
        .set("s3BucketUrl", names::bucket_url(&bucket, &cfg.region))
        .build())
}

/// Spec step 14: update the owner's pool entry, or add one.
async fn pool_op(app: &App, user_id: &str, san: &str, max_users: Option<i64>, now: i64) -> Result<TransactOp> {
    let license_id = names::license_id(user_id);
    let max = max_users.filter(|m| *m != 0).unwrap_or(1);
    Ok(match app.store.get_pool(&license_id).await? {
        Some(_) => TransactOp::Update {
            table: app.store.pools.clone(),
            key: license_id,
            update: Update::new()
                .set_s("ownerUsername", san)
                .set("maxConcurrentUsers", n(max))
                .set_bool("isActive", true)
                .set("updatedAt", n(now)),
            cond: Cond::exists("licenseId"),
        },
        None => TransactOp::Put {
            table: app.store.pools.clone(),
            item: encode(
                "license pool",
                &LicensePool {
                    license_id: license_id.clone(),
                    owner_id: Some(user_id.to_string()),
                    owner_username: Some(san.to_string()),
                    max_concurrent_users: Some(max),
                    is_active: Some(true),
                    created_at: Some(now),
                    updated_at: Some(now),
                },
            )?,
            cond: Cond::not_exists("licenseId"),
        },
    })
}

/// The target group of spec/DATA.md §3.5.
pub fn target_group_spec(app: &App, san: &str) -> TargetGroupSpec {
    TargetGroupSpec {
        name: names::target_group_name(san),
        vpc_id: app.config.vpc_id.clone(),
        port: crate::domain::taskdef::FOUNDRY_PORT,
        health_check_path: "/".into(),
        health_check_interval_seconds: 30,
        health_check_timeout_seconds: 10,
        healthy_threshold: 2,
        unhealthy_threshold: 3,
        matcher: "200,302".into(),
        tags: vec![
            ("Name".into(), names::target_group_name(san)),
            ("SanitizedUsername".into(), san.to_string()),
            ("Application".into(), "FoundryVTT".into()),
        ],
    }
}

/// The bucket policy of the IAM user (spec/DATA.md §3.4).
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

async fn make_iam_user(
    app: &App,
    inst: &Instance,
    user: &str,
    bucket: &str,
) -> std::result::Result<crate::managers::iam::AccessKey, crate::error::AwsError> {
    let tags = vec![
        ("UserId".to_string(), inst.user_id.clone()),
        ("SanitizedUsername".to_string(), inst.sanitized_username.clone()),
        ("Application".to_string(), "FoundryVTT".to_string()),
        ("Purpose".to_string(), "S3BucketAccess".to_string()),
    ];
    match app.aws.iam.create_user(user, names::IAM_USER_PATH, &tags).await {
        Ok(()) => {}
        Err(e) if e.is_already_exists() => {
            // Left by a create of ours that died: its key (if any) is unknown to us.
            app.aws.iam.delete_access_keys(user).await?;
        }
        Err(e) => return Err(e),
    }
    app.aws
        .iam
        .put_user_policy(user, names::IAM_POLICY_NAME, &iam_policy(bucket))
        .await?;
    app.aws.iam.create_access_key(user).await
}

async fn wait_for_access_point(app: &App, ctx: &Ctx, id: &str) -> Result<()> {
    let until = lifecycle::wait_until_ms(app, ctx);
    loop {
        match app.aws.efs.access_point_state(id).await?.as_deref() {
            Some("available") => return Ok(()),
            Some("error") => return Err(Error::Failed(format!("Access point {id} failed to become available"))),
            None | Some("deleting") | Some("deleted") => {
                return Err(Error::Failed(format!(
                    "Access point {id} disappeared while being created"
                )))
            }
            _ => {}
        }
        if app.clock.now_ms() + SLOW_POLL.as_millis() as i64 > until {
            return Err(Error::Failed(format!(
                "Access point {id} did not become available in time"
            )));
        }
        app.clock.sleep(SLOW_POLL).await;
    }
}

/// Undoes everything `inst` records (and the names its subdomain claim covers), then
/// deletes the record. Every step treats "not found" as done; the record is deleted
/// only when every step succeeded, so a failed rollback can be finished later.
async fn rollback(app: &App, inst: &Instance, lease_id: &str, stored: Option<&Credentials>) -> Result<()> {
    let uid = inst.user_id.as_str();
    let san = inst.sanitized_username.as_str();
    let claimed = inst.dns_record == Some(true);
    let mut errors = Failures::default();

    if let Some(tg) = inst.target_group_arn.as_deref() {
        errors.step(Kind::TargetGroup, app.aws.alb.delete_target_group(tg).await);
    } else if claimed {
        if let Ok(Some(tg)) = app.aws.alb.find_target_group(&names::target_group_name(san)).await {
            errors.step(Kind::TargetGroup, app.aws.alb.delete_target_group(&tg).await);
        }
    }
    match (inst.secret_created, stored) {
        (Some(false), Some(previous)) | (None, Some(previous)) if inst.secret_arn.is_some() => {
            // The secret existed before this create: put its old content back.
            if let Err(e) = store_credentials(app.aws.secrets.as_ref(), uid, previous).await {
                errors.push(format!("secret: {}", e.client_message()));
            }
        }
        (Some(true), _) => {
            errors.step(
                Kind::Secret,
                app.aws.secrets.delete_secret(&names::secret_name(uid), true).await,
            );
        }
        _ => {}
    }
    if claimed || inst.iam_user_name.is_some() {
        let user = inst
            .iam_user_name
            .clone()
            .unwrap_or_else(|| names::iam_user_name(san, uid));
        errors.step(Kind::IamUser, app.aws.iam.delete_user(&user).await);
    }
    if claimed || inst.s3_bucket_name.is_some() {
        let bucket = inst
            .s3_bucket_name
            .clone()
            .unwrap_or_else(|| names::bucket_name(san, uid));
        errors.step(Kind::S3Bucket, app.aws.s3.delete_bucket(&bucket).await);
    }
    if let Some(ap) = inst.access_point_id.as_deref() {
        errors.step(Kind::AccessPoint, app.aws.efs.delete_access_point(ap).await);
    }
    if claimed {
        let comment = format!("Delete DNS record for Foundry user {san}");
        errors.step(
            Kind::DnsRecord,
            app.aws.route53.delete_alias(&alias(app, san), &comment).await,
        );
    }
    if !errors.is_empty() {
        // Keep the record (and release the lease) so that the next create or destroy
        // can finish the cleanup.
        let _ = app
            .store
            .update_instance(
                uid,
                &Update::new().remove("leaseId").remove("leaseUntil"),
                cond_lease(lease_id),
            )
            .await;
        return Err(Error::Failed(errors.joined()));
    }
    match app.store.delete_instance(uid, cond_lease(lease_id)).await {
        Err(Error::Aws(e)) if e.is_condition_failed() => Ok(()),
        other => other,
    }
}
