//! EFS: the per-user access point.

use async_trait::async_trait;
use aws_sdk_efs::operation::create_access_point::builders::CreateAccessPointFluentBuilder;
use aws_sdk_efs::types as efs;
use aws_smithy_types::error::operation::BuildError;

use crate::error::{AwsError, AwsErrorKind};
use crate::managers::{instrument, sdk_error, Page};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessPointSpec {
    pub file_system_id: String,
    pub uid: i64,
    pub gid: i64,
    /// Root directory path, e.g. `/foundry-instances/<userId>`.
    pub path: String,
    pub owner_uid: i64,
    pub owner_gid: i64,
    /// Octal permissions as text, e.g. `755`.
    pub permissions: String,
    pub tags: Vec<(String, String)>,
    /// Idempotency token (1–64 characters): a retry with the same token returns the
    /// access point the first call created instead of a second one.
    pub client_token: String,
}

#[async_trait]
pub trait Efs: Send + Sync {
    /// CreateAccessPoint → the access point id (`fsap-…`).
    async fn create_access_point(&self, spec: &AccessPointSpec) -> Result<String, AwsError>;

    /// The lower-case LifeCycleState (`creating`, `available`, `updating`, `deleting`,
    /// `deleted`, `error`), or `None` when the access point does not exist.
    async fn access_point_state(&self, access_point_id: &str) -> Result<Option<String>, AwsError>;

    /// DeleteAccessPoint. A missing access point is a `NotFound` error.
    async fn delete_access_point(&self, access_point_id: &str) -> Result<(), AwsError>;

    /// The ids of the file system's access points whose root directory is `path`
    /// (DescribeAccessPoints by file system, every page).
    async fn access_points_at(&self, file_system_id: &str, path: &str) -> Result<Vec<String>, AwsError>;

    /// DescribeFileSystems of one file system → its lower-case LifeCycleState: a health
    /// probe. A missing file system is a `NotFound` error.
    async fn file_system_state(&self, file_system_id: &str) -> Result<String, AwsError>;

    /// One page of DescribeAccessPoints of the file system, from `token`.
    async fn list_access_points_page(
        &self,
        file_system_id: &str,
        token: Option<&str>,
    ) -> Result<Page<AccessPointInfo>, AwsError>;
}

/// An access point as a listing shows it (EFS gives no creation time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessPointInfo {
    pub id: String,
    /// Its root directory, e.g. `/foundry-instances/<userId>`.
    pub path: String,
    /// The lower-case LifeCycleState.
    pub state: String,
}

/// The SDK adapter.
pub struct SdkEfs {
    client: super::sdk::LazyClient<aws_sdk_efs::Client>,
}

impl SdkEfs {
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        SdkEfs {
            client: super::sdk::LazyClient::new(sdk, |sdk| {
                let mut conf = aws_sdk_efs::config::Builder::from(sdk);
                conf.push_interceptor(instrument::interceptor());
                aws_sdk_efs::Client::from_conf(conf.build())
            }),
        }
    }
}

const SERVICE: &str = "efs";

/// Fills a CreateAccessPoint request from `spec`.
fn create_request(
    b: CreateAccessPointFluentBuilder,
    spec: &AccessPointSpec,
) -> Result<CreateAccessPointFluentBuilder, BuildError> {
    let posix_user = efs::PosixUser::builder().uid(spec.uid).gid(spec.gid).build()?;
    let creation_info = efs::CreationInfo::builder()
        .owner_uid(spec.owner_uid)
        .owner_gid(spec.owner_gid)
        .permissions(&spec.permissions)
        .build()?;
    let root = efs::RootDirectory::builder()
        .path(&spec.path)
        .creation_info(creation_info)
        .build();
    let tags = spec
        .tags
        .iter()
        .map(|(k, v)| efs::Tag::builder().key(k).value(v).build())
        .collect::<Result<Vec<_>, _>>()?;
    Ok(b.client_token(&spec.client_token)
        .file_system_id(&spec.file_system_id)
        .posix_user(posix_user)
        .root_directory(root)
        .set_tags((!tags.is_empty()).then_some(tags)))
}

#[async_trait]
impl Efs for SdkEfs {
    async fn create_access_point(&self, spec: &AccessPointSpec) -> Result<String, AwsError> {
        const OP: &str = "CreateAccessPoint";
        let out = create_request(self.client.create_access_point(), spec)
            .map_err(|e| AwsError::new(SERVICE, OP, AwsErrorKind::Invalid, format!("invalid {OP} request: {e}")))?
            .send()
            .await
            .map_err(|e| sdk_error(SERVICE, OP, e))?;
        out.access_point_id().map(str::to_string).ok_or_else(|| {
            AwsError::new(
                SERVICE,
                OP,
                AwsErrorKind::Other,
                "CreateAccessPoint response has no AccessPointId",
            )
        })
    }

    async fn access_point_state(&self, access_point_id: &str) -> Result<Option<String>, AwsError> {
        const OP: &str = "DescribeAccessPoints";
        let out = match self
            .client
            .describe_access_points()
            .access_point_id(access_point_id)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                let err = sdk_error(SERVICE, OP, e);
                return if err.is_not_found() { Ok(None) } else { Err(err) };
            }
        };
        let Some(ap) = out
            .access_points()
            .iter()
            .find(|ap| ap.access_point_id().is_none_or(|id| id == access_point_id))
        else {
            return Ok(None);
        };
        ap.life_cycle_state()
            .map(|s| Some(s.as_str().to_ascii_lowercase()))
            .ok_or_else(|| {
                AwsError::new(
                    SERVICE,
                    OP,
                    AwsErrorKind::Other,
                    "DescribeAccessPoints response has an access point without LifeCycleState",
                )
            })
    }

    async fn delete_access_point(&self, access_point_id: &str) -> Result<(), AwsError> {
        const OP: &str = "DeleteAccessPoint";
        self.client
            .delete_access_point()
            .access_point_id(access_point_id)
            .send()
            .await
            .map_err(|e| sdk_error(SERVICE, OP, e))?;
        Ok(())
    }

    async fn access_points_at(&self, file_system_id: &str, path: &str) -> Result<Vec<String>, AwsError> {
        const OP: &str = "DescribeAccessPoints";
        let mut pages = self
            .client
            .describe_access_points()
            .file_system_id(file_system_id)
            .into_paginator()
            .send();
        let mut ids = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_error(SERVICE, OP, e))?;
            ids.extend(
                page.access_points()
                    .iter()
                    .filter(|ap| ap.root_directory().and_then(|r| r.path()) == Some(path))
                    .filter_map(|ap| ap.access_point_id())
                    .map(str::to_string),
            );
        }
        Ok(ids)
    }

    async fn list_access_points_page(
        &self,
        file_system_id: &str,
        token: Option<&str>,
    ) -> Result<Page<AccessPointInfo>, AwsError> {
        let out = self
            .client
            .describe_access_points()
            .file_system_id(file_system_id)
            .max_results(crate::managers::LIST_PAGE)
            .set_next_token(token.map(str::to_string))
            .send()
            .await
            .map_err(|e| sdk_error(SERVICE, "DescribeAccessPoints", e))?;
        Ok(Page {
            items: out
                .access_points()
                .iter()
                .filter_map(|ap| {
                    Some(AccessPointInfo {
                        id: ap.access_point_id()?.to_string(),
                        path: ap.root_directory().and_then(|r| r.path()).unwrap_or("/").to_string(),
                        state: ap
                            .life_cycle_state()
                            .map(|s| s.as_str().to_ascii_lowercase())
                            .unwrap_or_default(),
                    })
                })
                .collect(),
            next: crate::managers::next_token(out.next_token()),
        })
    }

    async fn file_system_state(&self, file_system_id: &str) -> Result<String, AwsError> {
        const OP: &str = "DescribeFileSystems";
        let out = self
            .client
            .describe_file_systems()
            .file_system_id(file_system_id)
            .send()
            .await
            .map_err(|e| sdk_error(SERVICE, OP, e))?;
        out.file_systems()
            .first()
            .map(|fs| fs.life_cycle_state().as_str().to_ascii_lowercase())
            .ok_or_else(|| {
                AwsError::new(
                    SERVICE,
                    OP,
                    AwsErrorKind::NotFound,
                    format!("file system {file_system_id} not found"),
                )
                .with_code("FileSystemNotFound")
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> aws_sdk_efs::Client {
        let conf = aws_sdk_efs::Config::builder()
            .behavior_version(aws_sdk_efs::config::BehaviorVersion::latest())
            .region(aws_sdk_efs::config::Region::new("us-east-1"))
            .build();
        aws_sdk_efs::Client::from_conf(conf)
    }

    #[test]
    fn create_request_carries_posix_user_root_directory_tags_and_token() {
        let spec = AccessPointSpec {
            file_system_id: "fs-1".into(),
            uid: 1000,
            gid: 1000,
            path: "/foundry-instances/u1".into(),
            owner_uid: 1000,
            owner_gid: 1000,
            permissions: "755".into(),
            tags: vec![("Name".into(), "foundry-u1".into()), ("UserId".into(), "u1".into())],
            client_token: "tok-1".into(),
        };
        let input = create_request(client().create_access_point(), &spec)
            .unwrap()
            .as_input()
            .clone()
            .build()
            .unwrap();
        assert_eq!(input.client_token(), Some("tok-1"));
        assert_eq!(input.file_system_id(), Some("fs-1"));
        let user = input.posix_user().unwrap();
        assert_eq!((user.uid(), user.gid()), (1000, 1000));
        let root = input.root_directory().unwrap();
        assert_eq!(root.path(), Some("/foundry-instances/u1"));
        let info = root.creation_info().unwrap();
        assert_eq!(
            (info.owner_uid(), info.owner_gid(), info.permissions()),
            (1000, 1000, "755")
        );
        let tags: Vec<(&str, &str)> = input.tags().iter().map(|t| (t.key(), t.value())).collect();
        assert_eq!(tags, [("Name", "foundry-u1"), ("UserId", "u1")]);
    }
}
