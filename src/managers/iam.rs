//! IAM: the per-user S3 access user.

use async_trait::async_trait;
use aws_sdk_iam::types as iam;

use crate::error::{AwsError, AwsErrorKind};
use crate::managers::{instrument, next_token, sdk_error, Listed, Page, LIST_PAGE};
use crate::secret::Sensitive;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKey {
    pub access_key_id: String,
    pub secret_access_key: Sensitive,
}

#[async_trait]
pub trait Iam: Send + Sync {
    /// CreateUser with path and tags. An existing user is an `AlreadyExists` error.
    async fn create_user(&self, user_name: &str, path: &str, tags: &[(String, String)]) -> Result<(), AwsError>;

    /// PutUserPolicy (inline policy; replaces a policy of the same name).
    async fn put_user_policy(&self, user_name: &str, policy_name: &str, document: &str) -> Result<(), AwsError>;

    /// CreateAccessKey.
    async fn create_access_key(&self, user_name: &str) -> Result<AccessKey, AwsError>;

    /// Deletes every access key of the user (ListAccessKeys, DeleteAccessKey each).
    async fn delete_access_keys(&self, user_name: &str) -> Result<(), AwsError>;

    /// Deletes the user with everything that blocks DeleteUser: access keys and inline
    /// policies. `known` names the access key and the inline policy we made: they are
    /// deleted by name, and the user's keys and policies are listed only when DeleteUser
    /// still finds something (or when the key is not known). A missing user is a `NotFound`
    /// error.
    async fn delete_user(&self, user_name: &str, known: &KnownParts<'_>) -> Result<(), AwsError>;

    /// One page of ListUsers under `path_prefix`, from `marker`.
    async fn list_users_page(&self, path_prefix: &str, marker: Option<&str>) -> Result<Page<Listed>, AwsError>;

    /// The ids of the user's access keys (paginated ListAccessKeys). A missing user is a
    /// `NotFound` error.
    async fn access_key_ids(&self, user_name: &str) -> Result<Vec<String>, AwsError>;
}

/// What we made on an IAM user, as far as our record knows.
#[derive(Debug, Clone, Copy)]
pub struct KnownParts<'a> {
    pub access_key_id: Option<&'a str>,
    pub policy: &'a str,
}

/// The SDK adapter.
pub struct SdkIam {
    client: super::sdk::LazyClient<aws_sdk_iam::Client>,
}

impl SdkIam {
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        SdkIam {
            client: super::sdk::LazyClient::new(sdk, |sdk| {
                let mut conf = aws_sdk_iam::config::Builder::from(sdk);
                conf.push_interceptor(instrument::interceptor());
                aws_sdk_iam::Client::from_conf(conf.build())
            }),
        }
    }
}

const SERVICE: &str = "iam";

impl SdkIam {
    /// The names of the user's inline policies (paginated ListUserPolicies).
    async fn inline_policy_names(&self, user_name: &str) -> Result<Vec<String>, AwsError> {
        let mut pages = self
            .client
            .list_user_policies()
            .user_name(user_name)
            .into_paginator()
            .send();
        let mut names = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_error(SERVICE, "ListUserPolicies", e))?;
            names.extend(page.policy_names().iter().cloned());
        }
        Ok(names)
    }
}

impl SdkIam {
    /// DeleteUserPolicy; a policy that is not there (any more) is what we wanted.
    async fn delete_inline_policy(&self, user_name: &str, policy: &str) -> Result<(), AwsError> {
        match self
            .client
            .delete_user_policy()
            .user_name(user_name)
            .policy_name(policy)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let err = sdk_error(SERVICE, "DeleteUserPolicy", e);
                // NoSuchEntity names the policy or the user: DeleteUser tells which.
                if err.is_not_found() {
                    Ok(())
                } else {
                    Err(err)
                }
            }
        }
    }

    /// DeleteAccessKey; a key that is not there (any more) is what we wanted.
    async fn delete_access_key(&self, user_name: &str, id: &str) -> Result<(), AwsError> {
        match self
            .client
            .delete_access_key()
            .user_name(user_name)
            .access_key_id(id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let err = sdk_error(SERVICE, "DeleteAccessKey", e);
                if err.is_not_found() {
                    Ok(())
                } else {
                    Err(err)
                }
            }
        }
    }

    async fn try_delete_user(&self, user_name: &str) -> Result<(), AwsError> {
        self.client
            .delete_user()
            .user_name(user_name)
            .send()
            .await
            .map_err(|e| sdk_error(SERVICE, "DeleteUser", e))?;
        Ok(())
    }
}

#[async_trait]
impl Iam for SdkIam {
    async fn create_user(&self, user_name: &str, path: &str, tags: &[(String, String)]) -> Result<(), AwsError> {
        const OP: &str = "CreateUser";
        let tags = tags
            .iter()
            .map(|(k, v)| iam::Tag::builder().key(k).value(v).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| AwsError::new(SERVICE, OP, AwsErrorKind::Invalid, format!("invalid {OP} request: {e}")))?;
        self.client
            .create_user()
            .user_name(user_name)
            .path(path)
            .set_tags((!tags.is_empty()).then_some(tags))
            .send()
            .await
            .map_err(|e| sdk_error(SERVICE, OP, e))?;
        Ok(())
    }

    async fn put_user_policy(&self, user_name: &str, policy_name: &str, document: &str) -> Result<(), AwsError> {
        const OP: &str = "PutUserPolicy";
        self.client
            .put_user_policy()
            .user_name(user_name)
            .policy_name(policy_name)
            .policy_document(document)
            .send()
            .await
            .map_err(|e| sdk_error(SERVICE, OP, e))?;
        Ok(())
    }

    async fn create_access_key(&self, user_name: &str) -> Result<AccessKey, AwsError> {
        const OP: &str = "CreateAccessKey";
        let out = self
            .client
            .create_access_key()
            .user_name(user_name)
            .send()
            .await
            .map_err(|e| sdk_error(SERVICE, OP, e))?;
        match out.access_key() {
            Some(key) if !key.access_key_id().is_empty() && !key.secret_access_key().is_empty() => Ok(AccessKey {
                access_key_id: key.access_key_id().to_string(),
                secret_access_key: Sensitive::new(key.secret_access_key()),
            }),
            _ => Err(AwsError::new(
                SERVICE,
                OP,
                AwsErrorKind::Other,
                "CreateAccessKey response has no complete AccessKey",
            )),
        }
    }

    async fn delete_access_keys(&self, user_name: &str) -> Result<(), AwsError> {
        for id in self.access_key_ids(user_name).await? {
            self.client
                .delete_access_key()
                .user_name(user_name)
                .access_key_id(id)
                .send()
                .await
                .map_err(|e| sdk_error(SERVICE, "DeleteAccessKey", e))?;
        }
        Ok(())
    }

    async fn delete_user(&self, user_name: &str, known: &KnownParts<'_>) -> Result<(), AwsError> {
        match known.access_key_id {
            Some(id) => self.delete_access_key(user_name, id).await?,
            None => self.delete_access_keys(user_name).await?,
        }
        self.delete_inline_policy(user_name, known.policy).await?;
        match self.try_delete_user(user_name).await {
            // A key or a policy we did not know of (made by someone else, or by a create
            // that died): list and delete them all, and try again.
            Err(e) if e.kind == AwsErrorKind::Conflict => {
                self.delete_access_keys(user_name).await?;
                for policy in self.inline_policy_names(user_name).await? {
                    self.delete_inline_policy(user_name, &policy).await?;
                }
                self.try_delete_user(user_name).await
            }
            other => other,
        }
    }

    async fn list_users_page(&self, path_prefix: &str, marker: Option<&str>) -> Result<Page<Listed>, AwsError> {
        let out = self
            .client
            .list_users()
            .path_prefix(path_prefix)
            .max_items(LIST_PAGE)
            .set_marker(marker.map(str::to_string))
            .send()
            .await
            .map_err(|e| sdk_error(SERVICE, "ListUsers", e))?;
        Ok(Page {
            items: out
                .users()
                .iter()
                .map(|u| Listed {
                    name: u.user_name().to_string(),
                    arn: Some(u.arn().to_string()),
                    created_at: Some(u.create_date().secs()),
                })
                .collect(),
            next: if out.is_truncated() {
                next_token(out.marker())
            } else {
                None
            },
        })
    }

    async fn access_key_ids(&self, user_name: &str) -> Result<Vec<String>, AwsError> {
        let mut pages = self
            .client
            .list_access_keys()
            .user_name(user_name)
            .into_paginator()
            .send();
        let mut ids = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_error(SERVICE, "ListAccessKeys", e))?;
            ids.extend(
                page.access_key_metadata()
                    .iter()
                    .filter_map(|k| k.access_key_id())
                    .map(str::to_string),
            );
        }
        Ok(ids)
    }
}
