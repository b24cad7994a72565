//! The user's S3 bucket, the IAM user that may use it, and the secret that holds the
//! user's logins and keys.

use crate::context::Services;
use crate::domain::model::Credentials;
use crate::domain::names;
use crate::error::{AwsErrorKind, Error, Result};
use crate::managers::iam::AccessKey;
use crate::store::credentials::store_credentials;

use super::kind::{in_time, removed, Leftovers, ResourceKind};

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

/// What happens to the user's secret when the resources go.
#[derive(Debug, Clone)]
pub enum SecretFate {
    Delete,
    /// Kept as it is (a destroy that keeps license sharing).
    Keep,
    /// Put back as it was before a failed create overwrote it.
    Restore(Credentials),
}

/// The bucket: every object version, a page at a time while the invocation has time,
/// then the bucket. A bucket that still holds objects right after being emptied (S3's
/// listing lags, or a writer raced us) is emptied and retried once.
pub(crate) async fn remove_bucket(svc: &Services, until_ms: i64, bucket: &str, left: &mut Leftovers) {
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

pub(super) async fn remove_secret(svc: &Services, user_id: &str, fate: SecretFate, left: &mut Leftovers) {
    match fate {
        SecretFate::Keep => {}
        SecretFate::Delete => remove_secret_named(svc, &names::secret_name(user_id), left).await,
        SecretFate::Restore(previous) => {
            if let Err(e) = store_credentials(svc.aws.secrets.as_ref(), user_id, &previous).await {
                left.push(format!("secret: {e}"));
            }
        }
    }
}

/// A secret by name, at once (no recovery window).
pub(crate) async fn remove_secret_named(svc: &Services, name: &str, left: &mut Leftovers) {
    left.note(ResourceKind::Secret, svc.aws.secrets.delete_secret(name, true).await);
}
