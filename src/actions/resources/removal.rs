//! Removing everything a user may have, by the record and by the names a user's resources
//! must have, so that a create that died before recording a resource leaves nothing behind
//! once the user destroys. `create`'s rollback and `destroy` both call [`remove_all`].

use crate::context::{Ctx, Services};
use crate::domain::model::{Instance, InstanceStatus};
use crate::domain::names;
use crate::managers::iam::KnownParts;

use super::compute::{remove_log_group, remove_target_group, remove_task_definitions};
use super::files::{remove_access_points, Files};
use super::kind::{in_time, removed, Leftovers, ResourceKind};
use super::storage::{remove_bucket, remove_secret, SecretFate};
use super::subdomain::remove_dns_record;

/// Removes every resource the user may have, by the record and by the names (the caller
/// holds the record's lease) → what is left. "Not found" counts as done and a failing step
/// does not stop the others, so a second call finishes what the first could not.
pub async fn remove_all(svc: &Services, ctx: &Ctx, inst: &Instance, secret: SecretFate, files: Files) -> Leftovers {
    let uid = inst.user_id.as_str();
    let username = inst.sanitized_username.as_str();
    let mut left = Leftovers::default();

    // Names the original let two users share are not this user's alone. A subdomain
    // claimed by this port's create is (its claim made sure no one else had it).
    // A create that failed may have lost the name to another user's claim: then the name
    // is theirs, whatever the (eventually consistent) index says.
    let others = if inst.dns_record == Some(true) && inst.status != InstanceStatus::Creating {
        Vec::new()
    } else {
        let claimed = match svc.store.claims.subdomain_owner(username).await {
            Ok(owner) => owner.filter(|o| o != uid),
            Err(e) => {
                left.push(format!("checking who holds the subdomain: {e}"));
                return left;
            }
        };
        match claimed {
            Some(owner) => vec![owner],
            None if inst.dns_record == Some(true) => Vec::new(),
            None => match svc.store.instances.others_named(username, uid).await {
                Ok(others) => others,
                Err(e) => {
                    left.push(format!("checking who else uses the subdomain: {e}"));
                    return left;
                }
            },
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
        remove_iam_user(svc, &iam_user, inst.s3_access_key_id.as_deref(), &mut left).await;
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

/// The IAM user `name` with its access keys and inline policies (`access_key_id`: the key
/// a record knows of, deleted by id; the others are listed).
pub(crate) async fn remove_iam_user(svc: &Services, name: &str, access_key_id: Option<&str>, left: &mut Leftovers) {
    let known = KnownParts {
        access_key_id,
        policy: names::IAM_POLICY_NAME,
    };
    if let Err(e) = removed(ResourceKind::IamUser, svc.aws.iam.delete_user(name, &known).await) {
        left.push(format!("IAM user deletion failed: {e}"));
    }
}
