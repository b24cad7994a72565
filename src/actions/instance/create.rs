//! `create`, all-or-nothing and resumable.
//!
//! 1. Everything that can be validated is validated before the first AWS call.
//! 2. A `creating` record is written with a conditional put (two concurrent creates:
//!    one wins, the other gets a clear error). It holds a lease; a record whose lease
//!    expired belongs to an invocation that died, and the next `create` takes it over.
//! 3. The subdomain is claimed with a Route 53 `CREATE` (atomic: a name has one owner).
//! 4. Every step tolerates "already exists", so a taken-over create resumes where the
//!    dead one stopped. The access point's id is recorded at once (nothing else names
//!    it); the other resources have names derived from the user.
//! 5. On failure, everything the user's names say may exist is removed, and the record
//!    is deleted: a second `create` starts from nothing.

use rand::Rng;
use serde::Serialize;
use serde_json::Value;

use crate::context::{Ctx, Services};
use crate::domain::model::{Credentials, Instance, InstanceStatus};
use crate::domain::names;
use crate::domain::taskdef::valid_version;
use crate::error::{Error, Result};
use crate::event::CreateFields;
use crate::secret::Sensitive;
use crate::store::credentials::get_credentials;
use crate::store::{CreateDone, Lease, PoolEntry};

use crate::actions::resources::{self, Files, SecretFate};
use crate::actions::run::priority_hint;

/// Length of a generated admin key.
pub const ADMIN_KEY_LEN: usize = 26;

/// A new admin key: 26 characters of `[0-9a-z]` from the thread's CSPRNG.
pub fn generate_admin_key() -> Sensitive {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::rng();
    let key: String = (0..ADMIN_KEY_LEN)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    Sensitive::new(key)
}

/// A validated `create` request.
struct CreateRequest {
    user_id: String,
    username: String,
    license_type: &'static str,
    version: String,
    selected_license_id: Option<String>,
    allow_sharing: Option<bool>,
    max_users: Option<i64>,
}

impl CreateRequest {
    fn pooled(&self) -> bool {
        self.license_type == "pooled"
    }
}

fn validate(svc: &Services, user_id: &str, f: &CreateFields) -> Result<CreateRequest> {
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
    let username = f.sanitized_username.clone().unwrap_or_default();
    names::validate_sanitized_username(&username).map_err(Error::Failed)?;
    if svc.config.reserved_subdomains.contains(&username) {
        return Err(Error::Failed(format!(
            "The subdomain '{username}' is reserved; choose another username"
        )));
    }
    let version = match f.foundry_version.as_deref().filter(|v| !v.is_empty()) {
        Some(v) if valid_version(v) => v.to_string(),
        Some(_) => return Err(Error::failed("Invalid version format")),
        None => "13".to_string(),
    };
    Ok(CreateRequest {
        user_id: user_id.to_string(),
        username,
        license_type,
        version,
        selected_license_id,
        allow_sharing: f.allow_license_sharing,
        max_users: f.max_concurrent_users,
    })
}

/// A Foundry account login.
type Login = (Sensitive, Sensitive);

/// The Foundry login the instance runs with, or none (a pooled instance without a
/// chosen license gets one per session).
async fn resolve_login(
    svc: &Services,
    req: &CreateRequest,
    f: &CreateFields,
    stored: Option<&Credentials>,
) -> Result<Option<Login>> {
    let given = |v: &Option<Sensitive>| v.clone().filter(|s| !s.is_empty());
    let login_of = |c: &Credentials| Some((c.username.clone()?, c.password.clone()?));
    match (req.pooled(), req.selected_license_id.as_deref()) {
        (true, Some(license_id)) => {
            let owner = names::license_owner(license_id).unwrap_or_default();
            let creds = get_credentials(svc.aws.secrets.as_ref(), owner).await?;
            if let Some(login) = creds.as_ref().and_then(login_of) {
                return Ok(Some(login));
            }
            if let Err(e) = svc.store.pools.deactivate(license_id, svc.now()).await {
                tracing::warn!(error = %e, "could not deactivate the orphaned license pool");
            }
            Err(Error::failed(
                "Failed to get license owner credentials: License owner credentials not found - the license owner may have deleted their instance. The license pool has been automatically deactivated.",
            ))
        }
        (true, None) => Ok(None),
        (false, _) => match (given(&f.foundry_username), given(&f.foundry_password)) {
            (Some(u), Some(p)) => Ok(Some((u, p))),
            _ => stored
                .and_then(login_of)
                .map(Some)
                .ok_or_else(|| Error::failed("Missing Foundry credentials for BYOL license")),
        },
    }
}

/// The answer of `create`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Created {
    message: &'static str,
    user_id: String,
    status: &'static str,
    access_point_id: String,
    target_group_arn: String,
    url: String,
    admin_key: String,
    s3_bucket_name: String,
    s3_bucket_url: String,
}

pub async fn create(svc: &Services, ctx: &Ctx, user_id: &str, f: &CreateFields) -> Result<Value> {
    // The user id is a key and names resources: check it before it reaches AWS.
    names::validate_user_id(user_id).map_err(Error::Failed)?;
    let now = svc.now();
    let existing = svc.store.instances.get_latest(user_id).await?;
    if let Some(i) = &existing {
        if i.status != InstanceStatus::Creating {
            return Err(Error::failed("User already has an instance"));
        }
        if !Lease::is_free(i, now) {
            return Err(Error::failed(
                "An instance is already being created for this user; try again in a few minutes",
            ));
        }
    }
    let req = validate(svc, user_id, f)?;
    // The backup to restore is found before anything is made.
    let restore = if f.restore_backup == Some(true) {
        match resources::restorable_backup(svc, user_id).await? {
            Some((version, _)) => Some(version),
            None => {
                let days = svc.config.backups.as_ref().map_or(0, |b| b.retention_days);
                return Err(Error::Failed(format!(
                    "No backup to restore: this user has no backup younger than {days} days"
                )));
            }
        }
    } else {
        None
    };

    let stored = get_credentials(svc.aws.secrets.as_ref(), user_id).await?;
    let login = resolve_login(svc, &req, f, stored.as_ref()).await?;
    let lease = Lease::new(ctx.lease_until(svc.clock.as_ref()));
    let record = match existing {
        None => claim_record(svc, &req, &lease, stored.as_ref(), now).await?,
        Some(_) => take_over(svc, ctx, &req, &lease, stored.as_ref(), now).await?,
    };

    match build(svc, ctx, &req, &record, &lease, login, stored.as_ref()).await {
        Ok(created) => {
            let mut body = crate::response::to_body(&created)?;
            if let (Some(version), Some(map)) = (restore, body.as_object_mut()) {
                let report = crate::actions::backups::restore_after_create(svc, ctx, user_id, &version).await;
                map.insert("restore".into(), report);
            }
            Ok(body)
        }
        Err(e) => {
            tracing::info!("create failed; undoing what it made");
            let latest = svc.store.instances.get_latest(user_id).await?.unwrap_or(record);
            if let Err(undo) = rollback(svc, ctx, &latest, &lease, stored.as_ref()).await {
                return Err(Error::Failed(format!(
                    "{e}; cleanup incomplete ({undo}), call create or destroy again to finish it"
                )));
            }
            Err(e)
        }
    }
}

/// Writes the `creating` record that makes this invocation the user's only creator.
async fn claim_record(
    svc: &Services,
    req: &CreateRequest,
    lease: &Lease,
    stored: Option<&Credentials>,
    now: i64,
) -> Result<Instance> {
    let admin_key = stored
        .and_then(|c| c.admin_key.clone())
        .filter(|k| !k.is_empty())
        .unwrap_or_else(generate_admin_key);
    let record = Instance {
        user_id: req.user_id.clone(),
        sanitized_username: req.username.clone(),
        status: InstanceStatus::Creating,
        admin_key: Some(admin_key),
        foundry_version: Some(req.version.clone()),
        license_type: Some(req.license_type.to_string()),
        created_at: Some(now),
        updated_at: Some(now),
        attempt_id: Some(uuid::Uuid::new_v4().to_string()),
        lease_id: Some(lease.id.clone()),
        lease_until: Some(lease.until),
        secret_created: Some(stored.is_none()),
        ..Default::default()
    };
    if svc.store.instances.insert_new(&record).await? {
        Ok(record)
    } else {
        Err(Error::failed(
            "User already has an instance (another create for this user is in progress)",
        ))
    }
}

/// Takes over a create whose invocation died, to resume it. A dead create for another
/// username is undone entirely first.
async fn take_over(
    svc: &Services,
    ctx: &Ctx,
    req: &CreateRequest,
    lease: &Lease,
    stored: Option<&Credentials>,
    now: i64,
) -> Result<Instance> {
    let Some(dead) = svc.store.instances.take_over_create(&req.user_id, lease, now).await? else {
        return Err(Error::failed(
            "An instance is already being created for this user; try again in a few minutes",
        ));
    };
    if dead.sanitized_username == req.username {
        return Ok(dead);
    }
    rollback(svc, ctx, &dead, lease, stored).await?;
    Err(Error::failed(
        "An unfinished create for another username was cleaned up; please try again",
    ))
}

/// Makes every resource of the new instance, then marks it `created`.
async fn build(
    svc: &Services,
    ctx: &Ctx,
    req: &CreateRequest,
    record: &Instance,
    lease: &Lease,
    login: Option<Login>,
    stored: Option<&Credentials>,
) -> Result<Created> {
    let cfg = &svc.config;
    let uid = req.user_id.as_str();
    let username = req.username.as_str();

    resources::claim_subdomain(svc, uid, username).await?;
    let access_point = resources::ensure_access_point(svc, record, lease).await?;
    resources::wait_for_access_point(svc, ctx, &access_point).await?;
    let bucket = names::bucket_name(username, uid);
    resources::ensure_bucket(svc, &bucket).await?;
    let key = resources::ensure_iam_user(svc, uid, username, &bucket).await?;

    // The secret: the Foundry login (when any), the admin key and the S3 key pair.
    let admin_key = record.admin_key.clone().unwrap_or_else(generate_admin_key);
    let (username_secret, password) = login.map_or((None, None), |(u, p)| (Some(u), Some(p)));
    let creds = Credentials {
        username: username_secret,
        password,
        admin_key: Some(admin_key.clone()),
        s3_access_key_id: Some(key.access_key_id.clone()),
        s3_secret_access_key: Some(key.secret_access_key.clone()),
    };
    let new_secret = record.secret_created.unwrap_or(stored.is_none());
    let secret_arn = resources::ensure_secret(svc, uid, &creds, new_secret).await?;
    let target_group = resources::ensure_target_group(svc, username).await?;
    let priority = priority_hint(svc).await?;

    // Finish: the record becomes `created` and a shared license joins the pool, at once.
    let shares = !req.pooled() && req.allow_sharing == Some(true);
    let max_users = req.max_users.filter(|m| *m != 0).unwrap_or(1);
    let done = CreateDone {
        bucket: bucket.clone(),
        access_key_id: key.access_key_id.clone(),
        secret_arn,
        target_group_arn: target_group.clone(),
        alb_rule_priority: priority,
        license_owner_id: req.selected_license_id.clone().filter(|_| req.pooled()),
        allow_license_sharing: if req.pooled() { Some(false) } else { req.allow_sharing },
        max_concurrent_users: if req.pooled() { 1 } else { max_users },
        join_pool: shares.then(|| PoolEntry {
            license_id: names::license_id(uid),
            owner_id: uid.to_string(),
            owner_username: username.to_string(),
            max_concurrent_users: max_users,
        }),
    };
    svc.store.instances.finish_create(uid, lease, &done, svc.now()).await?;

    Ok(Created {
        message: "Instance created successfully",
        user_id: uid.to_string(),
        status: "created",
        access_point_id: access_point,
        target_group_arn: target_group,
        url: names::url(username, &cfg.domain_name),
        admin_key: admin_key.expose().to_string(),
        s3_bucket_url: names::bucket_url(&bucket, &cfg.region),
        s3_bucket_name: bucket,
    })
}

/// Undoes a create: removes everything the user's names say may exist, then deletes the
/// record. The record stays (with its lease released) when something could not be
/// removed, so that the next create or destroy finishes the job.
async fn rollback(
    svc: &Services,
    ctx: &Ctx,
    inst: &Instance,
    lease: &Lease,
    stored: Option<&Credentials>,
) -> Result<()> {
    let secret = match (inst.secret_created, stored) {
        (Some(true), _) | (_, None) => SecretFate::Delete,
        (_, Some(previous)) => SecretFate::Restore(previous.clone()),
    };
    let left = resources::remove_all(svc, ctx, inst, secret, Files::NeverWritten).await;
    if !left.is_empty() {
        svc.store.instances.release(&inst.user_id, lease).await;
        return Err(Error::Failed(left.describe()));
    }
    // Losing the lease here means another invocation took the record over: it decides.
    svc.store
        .instances
        .remove(&inst.user_id, &inst.sanitized_username, lease)
        .await?;
    Ok(())
}
