//! S3: the per-user asset bucket.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_s3::types as s3;
use aws_smithy_types::error::operation::BuildError;

use crate::error::{AwsError, AwsErrorKind};
use crate::managers::{instrument, next_token, sdk_error, Listed, Page, LIST_PAGE};

#[async_trait]
pub trait S3: Send + Sync {
    /// Creates the bucket if it does not exist (CreateBucket with a LocationConstraint
    /// unless `region` is us-east-1; "already owned by you" is fine, and "already exists"
    /// is settled by a HeadBucket: ours answers it, another account's is an error),
    /// then (re)applies, in order: ownership controls `BucketOwnerPreferred`, the public
    /// access block (all four flags false), the public-read bucket policy
    /// (`PublicReadGetObject` on `arn:aws:s3:::<bucket>/*`), the CORS rule
    /// (origins `*`, headers `*`, methods GET/POST/HEAD, max age 3000) and versioning
    /// `Enabled`. Idempotent.
    async fn ensure_bucket(&self, bucket: &str, region: &str) -> Result<(), AwsError>;

    /// Deletes one listing page of object versions and delete markers (ListObjectVersions,
    /// then DeleteObjects in batches) → whether the bucket is now empty. A missing bucket
    /// is a `NotFound` error. Callers loop, bounded by their deadline.
    async fn empty_bucket_page(&self, bucket: &str) -> Result<bool, AwsError>;

    /// DeleteBucket. A missing bucket is a `NotFound` error; one that still holds objects
    /// (a writer raced us, or S3's listing lagged) is a `NotEmpty` error.
    async fn delete_bucket(&self, bucket: &str) -> Result<(), AwsError>;

    /// One page of ListBuckets: the buckets whose name starts with `prefix`, from `token`.
    async fn list_buckets_page(&self, prefix: &str, token: Option<&str>) -> Result<Page<Listed>, AwsError>;

    /// The versions of the object `key` (not of other keys under it, not delete markers),
    /// every page of ListObjectVersions, in S3's order (newest first). A missing bucket is a
    /// `NotFound` error.
    async fn list_versions(&self, bucket: &str, key: &str) -> Result<Vec<ObjectVersion>, AwsError>;

    /// HeadObject of `key` (its latest version, or `version`) → its user metadata and
    /// time; `None` when there is no such object or version (or the latest is a delete
    /// marker).
    async fn head_object(&self, bucket: &str, key: &str, version: Option<&str>)
        -> Result<Option<ObjectHead>, AwsError>;

    /// PutObjectTagging of one version of `key`: its tag set becomes `tags`. A missing
    /// version is a `NotFound` error.
    async fn tag_version(&self, bucket: &str, key: &str, version: &str, tags: &[(&str, &str)]) -> Result<(), AwsError>;
}

/// What HeadObject says of one object version.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObjectHead {
    /// The user metadata (`x-amz-meta-*`), names in lower case.
    pub metadata: BTreeMap<String, String>,
    /// Unix seconds.
    pub last_modified: i64,
}

/// One version of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectVersion {
    pub version_id: String,
    /// Bytes.
    pub size: i64,
    /// Unix seconds.
    pub last_modified: i64,
    pub is_latest: bool,
}

/// The SDK adapter. Uses path-style addressing when an endpoint URL is configured
/// (moto), so that no `bucket.host` name has to resolve.
pub struct SdkS3 {
    client: super::sdk::LazyClient<aws_sdk_s3::Client>,
}

impl SdkS3 {
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        SdkS3 {
            client: super::sdk::LazyClient::new(sdk, |sdk| {
                let mut conf = aws_sdk_s3::config::Builder::from(sdk).force_path_style(sdk.endpoint_url().is_some());
                conf.push_interceptor(instrument::interceptor());
                aws_sdk_s3::Client::from_conf(conf.build())
            }),
        }
    }
}

const SERVICE: &str = "s3";

/// DeleteObjects takes at most this many keys.
const DELETE_BATCH: usize = 1000;

fn build_error(operation: &'static str, err: BuildError) -> AwsError {
    AwsError::new(
        SERVICE,
        operation,
        AwsErrorKind::Invalid,
        format!("invalid {operation} request: {err}"),
    )
}

/// The bucket policy that lets anyone read the bucket's objects (Foundry links assets
/// directly).
fn public_read_policy(bucket: &str) -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "PublicReadGetObject",
            "Effect": "Allow",
            "Principal": "*",
            "Action": "s3:GetObject",
            "Resource": format!("arn:aws:s3:::{bucket}/*"),
        }],
    })
    .to_string()
}

fn ownership_controls() -> Result<s3::OwnershipControls, BuildError> {
    s3::OwnershipControls::builder()
        .rules(
            s3::OwnershipControlsRule::builder()
                .object_ownership(s3::ObjectOwnership::BucketOwnerPreferred)
                .build()?,
        )
        .build()
}

fn public_access_block() -> s3::PublicAccessBlockConfiguration {
    s3::PublicAccessBlockConfiguration::builder()
        .block_public_acls(false)
        .ignore_public_acls(false)
        .block_public_policy(false)
        .restrict_public_buckets(false)
        .build()
}

fn cors() -> Result<s3::CorsConfiguration, BuildError> {
    s3::CorsConfiguration::builder()
        .cors_rules(
            s3::CorsRule::builder()
                .allowed_origins("*")
                .allowed_headers("*")
                .allowed_methods("GET")
                .allowed_methods("POST")
                .allowed_methods("HEAD")
                .set_expose_headers(Some(Vec::new()))
                .max_age_seconds(3000)
                .build()?,
        )
        .build()
}

/// The LocationConstraint for `region`: none for us-east-1 (S3 rejects it there).
fn create_bucket_configuration(region: &str) -> Option<s3::CreateBucketConfiguration> {
    if region.is_empty() || region == "us-east-1" {
        None
    } else {
        Some(
            s3::CreateBucketConfiguration::builder()
                .location_constraint(s3::BucketLocationConstraint::from(region))
                .build(),
        )
    }
}

/// One page's versions and delete markers as DeleteObjects identifiers.
fn object_identifiers(
    page: &aws_sdk_s3::operation::list_object_versions::ListObjectVersionsOutput,
) -> Result<Vec<s3::ObjectIdentifier>, BuildError> {
    let versions = page.versions().iter().map(|v| (v.key(), v.version_id()));
    let markers = page.delete_markers().iter().map(|m| (m.key(), m.version_id()));
    versions
        .chain(markers)
        .filter_map(|(key, version)| key.map(|key| (key, version)))
        .map(|(key, version)| {
            s3::ObjectIdentifier::builder()
                .key(key)
                .set_version_id(version.map(str::to_string))
                .build()
        })
        .collect()
}

impl SdkS3 {
    /// HeadBucket → whether the bucket exists (and is ours to configure).
    async fn bucket_exists(&self, bucket: &str) -> Result<bool, AwsError> {
        const OP: &str = "HeadBucket";
        match self.client.head_bucket().bucket(bucket).send().await {
            Ok(_) => Ok(true),
            Err(e) => {
                // A HEAD has no body: the SDK names a 404 `NotFound`; treat any 404 as absent.
                let status = e.raw_response().map(|r| r.status().as_u16());
                let is_404 = e.as_service_error().is_some_and(|se| se.is_not_found()) || status == Some(404);
                let mut err = sdk_error(SERVICE, OP, e);
                if is_404 {
                    err.kind = AwsErrorKind::NotFound;
                } else if status == Some(403) {
                    err.kind = AwsErrorKind::AccessDenied;
                }
                if err.is_not_found() {
                    Ok(false)
                } else {
                    Err(err)
                }
            }
        }
    }

    async fn create_bucket(&self, bucket: &str, region: &str) -> Result<(), AwsError> {
        const OP: &str = "CreateBucket";
        match self
            .client
            .create_bucket()
            .bucket(bucket)
            .set_create_bucket_configuration(create_bucket_configuration(region))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let err = sdk_error(SERVICE, OP, e);
                match err.code.as_deref() {
                    Some("BucketAlreadyOwnedByYou") => Ok(()),
                    // Bucket names are global: "exists" may be ours (us-east-1 answers so
                    // for our own bucket on some endpoints) or another account's. Only our
                    // own answers HeadBucket; another account's answers 403.
                    Some("BucketAlreadyExists") => match self.bucket_exists(bucket).await {
                        Ok(true) => Ok(()),
                        Ok(false) => Err(err),
                        Err(head) if head.kind == AwsErrorKind::AccessDenied => Err(AwsError::new(
                            SERVICE,
                            OP,
                            AwsErrorKind::AlreadyExists,
                            format!("bucket {bucket} belongs to another AWS account"),
                        )),
                        Err(head) => Err(head),
                    },
                    _ => Err(err),
                }
            }
        }
    }

    /// Deletes the first page of object versions and delete markers → whether the bucket
    /// is now empty.
    ///
    /// A listing always starts from the beginning instead of from the previous page's
    /// NextKeyMarker/NextVersionIdMarker: those point at a version that no longer exists,
    /// which S3 does not define as a continuation point (moto answers an empty page
    /// there). A listing from the start returns the next undeleted page, so this costs no
    /// extra calls.
    async fn empty_page(&self, bucket: &str) -> Result<bool, AwsError> {
        let page = self
            .client
            .list_object_versions()
            .bucket(bucket)
            .send()
            .await
            .map_err(|e| sdk_error(SERVICE, "ListObjectVersions", e))?;
        let ids = object_identifiers(&page).map_err(|e| build_error("DeleteObjects", e))?;
        for batch in ids.chunks(DELETE_BATCH) {
            self.delete_objects(bucket, batch.to_vec()).await?;
        }
        // Empty when the listing was complete. A truncated page that held nothing we
        // could delete counts as empty too: listing again would return it forever, and
        // DeleteBucket then says what is left.
        Ok(page.is_truncated() != Some(true) || ids.is_empty())
    }

    async fn delete_objects(&self, bucket: &str, objects: Vec<s3::ObjectIdentifier>) -> Result<(), AwsError> {
        const OP: &str = "DeleteObjects";
        let delete = s3::Delete::builder()
            .set_objects(Some(objects))
            .quiet(true)
            .build()
            .map_err(|e| build_error(OP, e))?;
        let out = self
            .client
            .delete_objects()
            .bucket(bucket)
            .delete(delete)
            .send()
            .await
            .map_err(|e| sdk_error(SERVICE, OP, e))?;
        match out.errors().first() {
            None => Ok(()),
            Some(first) => {
                let code = first.code().unwrap_or("Unknown");
                let message = format!(
                    "{} of the objects could not be deleted; the first, {}: {}",
                    out.errors().len(),
                    first.key().unwrap_or("?"),
                    first.message().unwrap_or(code)
                );
                Err(AwsError::new(SERVICE, OP, crate::managers::classify(code, &message), message).with_code(code))
            }
        }
    }
}

#[async_trait]
impl S3 for SdkS3 {
    async fn ensure_bucket(&self, bucket: &str, region: &str) -> Result<(), AwsError> {
        self.create_bucket(bucket, region).await?;
        let controls = ownership_controls().map_err(|e| build_error("PutBucketOwnershipControls", e))?;
        self.client
            .put_bucket_ownership_controls()
            .bucket(bucket)
            .ownership_controls(controls)
            .send()
            .await
            .map_err(|e| sdk_error(SERVICE, "PutBucketOwnershipControls", e))?;
        self.client
            .put_public_access_block()
            .bucket(bucket)
            .public_access_block_configuration(public_access_block())
            .send()
            .await
            .map_err(|e| sdk_error(SERVICE, "PutPublicAccessBlock", e))?;
        self.client
            .put_bucket_policy()
            .bucket(bucket)
            .policy(public_read_policy(bucket))
            .send()
            .await
            .map_err(|e| sdk_error(SERVICE, "PutBucketPolicy", e))?;
        let cors = cors().map_err(|e| build_error("PutBucketCors", e))?;
        self.client
            .put_bucket_cors()
            .bucket(bucket)
            .cors_configuration(cors)
            .send()
            .await
            .map_err(|e| sdk_error(SERVICE, "PutBucketCors", e))?;
        self.client
            .put_bucket_versioning()
            .bucket(bucket)
            .versioning_configuration(
                s3::VersioningConfiguration::builder()
                    .status(s3::BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| sdk_error(SERVICE, "PutBucketVersioning", e))?;
        Ok(())
    }

    async fn empty_bucket_page(&self, bucket: &str) -> Result<bool, AwsError> {
        self.empty_page(bucket).await
    }

    async fn delete_bucket(&self, bucket: &str) -> Result<(), AwsError> {
        self.client
            .delete_bucket()
            .bucket(bucket)
            .send()
            .await
            .map_err(|e| sdk_error(SERVICE, "DeleteBucket", e))?;
        Ok(())
    }

    async fn list_buckets_page(&self, prefix: &str, token: Option<&str>) -> Result<Page<Listed>, AwsError> {
        let out = self
            .client
            .list_buckets()
            .prefix(prefix)
            .max_buckets(LIST_PAGE)
            .set_continuation_token(token.map(str::to_string))
            .send()
            .await
            .map_err(|e| sdk_error(SERVICE, "ListBuckets", e))?;
        Ok(Page {
            items: out
                .buckets()
                .iter()
                .filter_map(|b| {
                    let name = b.name()?;
                    name.starts_with(prefix).then(|| Listed {
                        name: name.to_string(),
                        arn: None,
                        created_at: b.creation_date().map(|d| d.secs()),
                    })
                })
                .collect(),
            next: next_token(out.continuation_token()),
        })
    }

    async fn list_versions(&self, bucket: &str, key: &str) -> Result<Vec<ObjectVersion>, AwsError> {
        const OP: &str = "ListObjectVersions";
        let mut out = Vec::new();
        let (mut key_marker, mut version_marker) = (None::<String>, None::<String>);
        loop {
            let page = self
                .client
                .list_object_versions()
                .bucket(bucket)
                .prefix(key)
                .set_key_marker(key_marker.take())
                .set_version_id_marker(version_marker.take())
                .send()
                .await
                .map_err(|e| sdk_error(SERVICE, OP, e))?;
            out.extend(
                page.versions()
                    .iter()
                    .filter(|v| v.key() == Some(key))
                    .map(|v| ObjectVersion {
                        version_id: v.version_id().unwrap_or("null").to_string(),
                        size: v.size().unwrap_or(0),
                        last_modified: v.last_modified().map(|t| t.secs()).unwrap_or(0),
                        is_latest: v.is_latest() == Some(true),
                    }),
            );
            if page.is_truncated() != Some(true) {
                return Ok(out);
            }
            key_marker = page.next_key_marker().map(str::to_string);
            version_marker = page.next_version_id_marker().map(str::to_string);
            if key_marker.is_none() && version_marker.is_none() {
                return Ok(out);
            }
        }
    }

    async fn head_object(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
    ) -> Result<Option<ObjectHead>, AwsError> {
        const OP: &str = "HeadObject";
        match self
            .client
            .head_object()
            .bucket(bucket)
            .key(key)
            .set_version_id(version.map(str::to_string))
            .send()
            .await
        {
            Ok(head) => Ok(Some(ObjectHead {
                metadata: head
                    .metadata()
                    .map(|m| m.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.clone())).collect())
                    .unwrap_or_default(),
                last_modified: head.last_modified().map(|t| t.secs()).unwrap_or(0),
            })),
            Err(e) => {
                // A HEAD has no body: a 404 (no such key or version, or a delete marker) is
                // "none"; a 400 for a malformed version id too.
                let status = e.raw_response().map(|r| r.status().as_u16());
                let err = sdk_error(SERVICE, OP, e);
                if matches!(status, Some(404) | Some(400)) || err.is_not_found() {
                    Ok(None)
                } else {
                    Err(err)
                }
            }
        }
    }

    async fn tag_version(&self, bucket: &str, key: &str, version: &str, tags: &[(&str, &str)]) -> Result<(), AwsError> {
        const OP: &str = "PutObjectTagging";
        let mut tag_set = Vec::with_capacity(tags.len());
        for (k, v) in tags {
            let tag = s3::Tag::builder()
                .key(*k)
                .value(*v)
                .build()
                .map_err(|e| AwsError::new(SERVICE, OP, AwsErrorKind::Invalid, e.to_string()))?;
            tag_set.push(tag);
        }
        let tagging = s3::Tagging::builder()
            .set_tag_set(Some(tag_set))
            .build()
            .map_err(|e| AwsError::new(SERVICE, OP, AwsErrorKind::Invalid, e.to_string()))?;
        self.client
            .put_object_tagging()
            .bucket(bucket)
            .key(key)
            .version_id(version)
            .tagging(tagging)
            .send()
            .await
            .map_err(|e| sdk_error(SERVICE, OP, e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_s3::operation::list_object_versions::ListObjectVersionsOutput;

    #[test]
    fn policy_is_public_read_of_the_bucket_objects() {
        let policy: serde_json::Value = serde_json::from_str(&public_read_policy("foundry-a-12345678")).unwrap();
        assert_eq!(
            policy,
            serde_json::json!({
                "Version": "2012-10-17",
                "Statement": [{
                    "Sid": "PublicReadGetObject",
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": "s3:GetObject",
                    "Resource": "arn:aws:s3:::foundry-a-12345678/*"
                }]
            })
        );
    }

    #[test]
    fn bucket_configuration_matches_the_spec() {
        let controls = ownership_controls().unwrap();
        assert_eq!(
            controls.rules()[0].object_ownership(),
            &s3::ObjectOwnership::BucketOwnerPreferred
        );

        let block = public_access_block();
        assert_eq!(
            (
                block.block_public_acls(),
                block.ignore_public_acls(),
                block.block_public_policy(),
                block.restrict_public_buckets()
            ),
            (Some(false), Some(false), Some(false), Some(false))
        );

        let cors = cors().unwrap();
        let [rule] = cors.cors_rules() else {
            panic!("one CORS rule expected");
        };
        assert_eq!(rule.allowed_origins(), &["*"]);
        assert_eq!(rule.allowed_headers(), &["*"]);
        assert_eq!(rule.allowed_methods(), &["GET", "POST", "HEAD"]);
        assert!(rule.expose_headers().is_empty());
        assert_eq!(rule.max_age_seconds(), Some(3000));
    }

    #[test]
    fn location_constraint_is_omitted_in_us_east_1_only() {
        assert!(create_bucket_configuration("us-east-1").is_none());
        let conf = create_bucket_configuration("eu-west-1").unwrap();
        assert_eq!(conf.location_constraint(), Some(&s3::BucketLocationConstraint::EuWest1));
    }

    #[test]
    fn every_version_and_delete_marker_is_deleted() {
        let page = ListObjectVersionsOutput::builder()
            .versions(s3::ObjectVersion::builder().key("a").version_id("v1").build())
            .versions(s3::ObjectVersion::builder().key("a").version_id("v2").build())
            .versions(s3::ObjectVersion::builder().version_id("keyless").build())
            .delete_markers(s3::DeleteMarkerEntry::builder().key("b").version_id("m1").build())
            .build();
        let ids: Vec<(String, Option<String>)> = object_identifiers(&page)
            .unwrap()
            .into_iter()
            .map(|o| (o.key().to_string(), o.version_id().map(str::to_string)))
            .collect();
        assert_eq!(
            ids,
            [
                ("a".to_string(), Some("v1".to_string())),
                ("a".to_string(), Some("v2".to_string())),
                ("b".to_string(), Some("m1".to_string())),
            ]
        );
    }
}
