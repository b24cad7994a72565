//! The S3 fake: a set of buckets, each with object keys.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{aws_err, lock, ops, Env};
use crate::error::{AwsError, AwsErrorKind};
use crate::managers::s3::{ObjectHead, ObjectVersion, S3};
use crate::managers::{Listed, Page};

const SERVICE: &str = "s3";

struct Bucket {
    region: String,
    objects: BTreeSet<String>,
}

/// One stored version of an object and its user metadata.
type StoredVersion = (ObjectVersion, BTreeMap<String, String>);

#[derive(Default)]
struct State {
    buckets: BTreeMap<String, Bucket>,
    /// `(bucket, key)` → its versions, oldest first: (version, metadata).
    versions: BTreeMap<(String, String), Vec<StoredVersion>>,
    /// Names owned by another account: EnsureBucket answers BucketAlreadyExists.
    foreign: BTreeSet<String>,
    /// `(bucket, key, version)` → its tags.
    tags: BTreeMap<(String, String, String), Vec<(String, String)>>,
}

/// The in-memory S3.
pub struct FakeS3 {
    env: Arc<Env>,
    state: Mutex<State>,
}

fn valid_bucket_name(name: &str) -> bool {
    let b = name.as_bytes();
    (3..=63).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'.' || *c == b'-')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && !name.contains("..")
}

impl FakeS3 {
    pub const SERVICE: &'static str = SERVICE;
    pub const ENSURE_BUCKET: &'static str = ops::ENSURE_BUCKET;
    pub const DELETE_BUCKET: &'static str = ops::DELETE_BUCKET;

    /// A standalone fake reporting to `faults`.
    pub fn new(faults: Arc<super::Faults>) -> Self {
        FakeS3::with_env(Env::new(faults))
    }

    pub(crate) fn with_env(env: Arc<Env>) -> Self {
        FakeS3 {
            env,
            state: Mutex::new(State::default()),
        }
    }

    /// Adds an object to an existing bucket (no fault check). False when no such bucket.
    pub fn put_object(&self, bucket: &str, key: &str) -> bool {
        match lock(&self.state).buckets.get_mut(bucket) {
            Some(b) => {
                b.objects.insert(key.to_string());
                true
            }
            None => false,
        }
    }

    /// Adds a version of `key` to `bucket` (created when missing; no fault check), as the
    /// backup task's upload does → its version id.
    pub fn put_version(&self, bucket: &str, key: &str, size: i64, at: i64, metadata: &[(&str, &str)]) -> String {
        let mut st = lock(&self.state);
        st.buckets.entry(bucket.to_string()).or_insert_with(|| Bucket {
            region: "us-east-1".into(),
            objects: BTreeSet::new(),
        });
        if let Some(b) = st.buckets.get_mut(bucket) {
            b.objects.insert(key.to_string());
        }
        let list = st.versions.entry((bucket.to_string(), key.to_string())).or_default();
        for (v, _) in list.iter_mut() {
            v.is_latest = false;
        }
        let id = format!("v{}-{}", list.len() + 1, at);
        let meta = metadata.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        list.push((
            ObjectVersion {
                version_id: id.clone(),
                size,
                last_modified: at,
                is_latest: true,
            },
            meta,
        ));
        id
    }

    /// The tags of one version (empty when it has none).
    pub fn version_tags(&self, bucket: &str, key: &str, version: &str) -> Vec<(String, String)> {
        lock(&self.state)
            .tags
            .get(&(bucket.to_string(), key.to_string(), version.to_string()))
            .cloned()
            .unwrap_or_default()
    }

    /// Makes `bucket` a name taken by another account: EnsureBucket fails with
    /// `AlreadyExists` (BucketAlreadyExists).
    pub fn claim_foreign_bucket(&self, bucket: &str) {
        lock(&self.state).foreign.insert(bucket.to_string());
    }

    /// The bucket names, sorted.
    pub fn buckets(&self) -> Vec<String> {
        lock(&self.state).buckets.keys().cloned().collect()
    }

    /// The object keys of a bucket, sorted (empty when no such bucket).
    pub fn objects(&self, bucket: &str) -> Vec<String> {
        lock(&self.state)
            .buckets
            .get(bucket)
            .map(|b| b.objects.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The region a bucket was created in.
    pub fn bucket_region(&self, bucket: &str) -> Option<String> {
        lock(&self.state).buckets.get(bucket).map(|b| b.region.clone())
    }
}

#[async_trait]
impl S3 for FakeS3 {
    async fn ensure_bucket(&self, bucket: &str, region: &str) -> Result<(), AwsError> {
        const OP: &str = ops::ENSURE_BUCKET;
        self.env.enter(SERVICE, OP).await?;
        if !valid_bucket_name(bucket) {
            return Err(aws_err(
                SERVICE,
                OP,
                AwsErrorKind::Invalid,
                "InvalidBucketName",
                "The specified bucket is not valid.",
            ));
        }
        if region.is_empty() {
            return Err(aws_err(
                SERVICE,
                OP,
                AwsErrorKind::Invalid,
                "InvalidLocationConstraint",
                "The specified location-constraint is not valid",
            ));
        }
        let mut st = lock(&self.state);
        if st.foreign.contains(bucket) {
            return Err(aws_err(
                SERVICE,
                OP,
                AwsErrorKind::AlreadyExists,
                "BucketAlreadyExists",
                "The requested bucket name is not available.",
            ));
        }
        if !st.buckets.contains_key(bucket) {
            st.buckets.insert(
                bucket.to_string(),
                Bucket {
                    region: region.to_string(),
                    objects: BTreeSet::new(),
                },
            );
            self.env.made("bucket", bucket);
        }
        Ok(())
    }

    async fn empty_bucket_page(&self, bucket: &str) -> Result<bool, AwsError> {
        const OP: &str = ops::EMPTY_BUCKET_PAGE;
        self.env.enter(SERVICE, OP).await?;
        let mut st = lock(&self.state);
        let Some(b) = st.buckets.get_mut(bucket) else {
            return Err(no_such_bucket(OP));
        };
        let page: Vec<String> = b.objects.iter().take(PAGE).cloned().collect();
        for key in &page {
            b.objects.remove(key);
        }
        Ok(b.objects.is_empty())
    }

    async fn delete_bucket(&self, bucket: &str) -> Result<(), AwsError> {
        const OP: &str = ops::DELETE_BUCKET;
        self.env.enter(SERVICE, OP).await?;
        let mut st = lock(&self.state);
        match st.buckets.get(bucket) {
            None => Err(no_such_bucket(OP)),
            Some(b) if !b.objects.is_empty() => Err(aws_err(
                SERVICE,
                OP,
                AwsErrorKind::NotEmpty,
                "BucketNotEmpty",
                "The bucket you tried to delete is not empty",
            )),
            Some(_) => {
                st.buckets.remove(bucket);
                Ok(())
            }
        }
    }

    async fn list_buckets_page(&self, prefix: &str, token: Option<&str>) -> Result<Page<Listed>, AwsError> {
        self.env.enter(SERVICE, ops::LIST_BUCKETS).await?;
        let names: Vec<(String, Option<String>)> = lock(&self.state)
            .buckets
            .keys()
            .filter(|n| n.starts_with(prefix))
            .map(|n| (n.clone(), None))
            .collect();
        Ok(self.env.page_of_named("bucket", names, token))
    }

    async fn list_versions(&self, bucket: &str, key: &str) -> Result<Vec<ObjectVersion>, AwsError> {
        const OP: &str = ops::LIST_OBJECT_VERSIONS;
        self.env.enter(SERVICE, OP).await?;
        let st = lock(&self.state);
        if !st.buckets.contains_key(bucket) {
            return Err(no_such_bucket(OP));
        }
        let mut out: Vec<ObjectVersion> = st
            .versions
            .get(&(bucket.to_string(), key.to_string()))
            .map(|l| l.iter().map(|(v, _)| v.clone()).collect())
            .unwrap_or_default();
        out.reverse();
        Ok(out)
    }

    async fn head_object(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
    ) -> Result<Option<ObjectHead>, AwsError> {
        const OP: &str = ops::HEAD_OBJECT;
        self.env.enter(SERVICE, OP).await?;
        let st = lock(&self.state);
        let Some(list) = st.versions.get(&(bucket.to_string(), key.to_string())) else {
            return Ok(None);
        };
        let found = match version {
            Some(id) => list.iter().find(|(v, _)| v.version_id == id),
            None => list.iter().find(|(v, _)| v.is_latest),
        };
        Ok(found.map(|(v, m)| ObjectHead {
            metadata: m.clone(),
            last_modified: v.last_modified,
        }))
    }

    async fn tag_version(&self, bucket: &str, key: &str, version: &str, tags: &[(&str, &str)]) -> Result<(), AwsError> {
        const OP: &str = ops::PUT_OBJECT_TAGGING;
        self.env.enter(SERVICE, OP).await?;
        let mut st = lock(&self.state);
        let exists = st
            .versions
            .get(&(bucket.to_string(), key.to_string()))
            .is_some_and(|l| l.iter().any(|(v, _)| v.version_id == version));
        if !exists {
            return Err(aws_err(
                SERVICE,
                OP,
                AwsErrorKind::NotFound,
                "NoSuchVersion",
                "The specified version does not exist.",
            ));
        }
        st.tags.insert(
            (bucket.to_string(), key.to_string(), version.to_string()),
            tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        );
        Ok(())
    }
}

/// How many object versions one listing page holds (as S3's ListObjectVersions).
const PAGE: usize = 1000;

fn no_such_bucket(operation: &'static str) -> AwsError {
    aws_err(
        SERVICE,
        operation,
        AwsErrorKind::NotFound,
        "NoSuchBucket",
        "The specified bucket does not exist",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Faults;

    #[tokio::test]
    async fn buckets_are_idempotent_and_deleted_with_their_objects() {
        let s3 = FakeS3::new(Arc::new(Faults::new()));
        s3.ensure_bucket("foundry-alice", "eu-west-1").await.unwrap();
        s3.ensure_bucket("foundry-alice", "eu-west-1").await.unwrap();
        assert!(s3.put_object("foundry-alice", "a/b.png"));
        assert!(!s3.put_object("nope", "x"));
        assert_eq!(s3.objects("foundry-alice"), vec!["a/b.png".to_string()]);
        assert_eq!(s3.bucket_region("foundry-alice").as_deref(), Some("eu-west-1"));
        assert_eq!(
            s3.delete_bucket("foundry-alice").await.unwrap_err().kind,
            AwsErrorKind::NotEmpty
        );
        for i in 0..1500 {
            s3.put_object("foundry-alice", &format!("k{i}"));
        }
        assert!(
            !s3.empty_bucket_page("foundry-alice").await.unwrap(),
            "a page at a time"
        );
        assert!(s3.empty_bucket_page("foundry-alice").await.unwrap());
        s3.delete_bucket("foundry-alice").await.unwrap();
        assert!(s3.buckets().is_empty());
        assert_eq!(
            s3.delete_bucket("foundry-alice").await.unwrap_err().kind,
            AwsErrorKind::NotFound
        );
        assert_eq!(
            s3.ensure_bucket("Bad_Name", "us-east-1").await.unwrap_err().kind,
            AwsErrorKind::Invalid
        );
        s3.claim_foreign_bucket("taken");
        assert_eq!(
            s3.ensure_bucket("taken", "us-east-1").await.unwrap_err().kind,
            AwsErrorKind::AlreadyExists
        );
    }
}
