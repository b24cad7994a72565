//! The IAM fake: users with inline policies and access keys (at most 2, as in AWS).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{aws_err, lock, ops, Env, ALNUM};
use crate::error::{AwsError, AwsErrorKind};
use crate::managers::iam::{AccessKey, Iam, KnownParts};
use crate::managers::{Listed, Page};
use crate::secret::Sensitive;

const SERVICE: &str = "iam";
const MAX_KEYS: usize = 2;

/// A user as the fake knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeUser {
    pub name: String,
    pub path: String,
    pub tags: Vec<(String, String)>,
    /// Inline policies: name → document.
    pub policies: BTreeMap<String, String>,
    pub keys: Vec<AccessKey>,
}

/// The in-memory IAM.
pub struct FakeIam {
    env: Arc<Env>,
    state: Mutex<BTreeMap<String, FakeUser>>,
}

fn valid_user_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c))
}

fn no_such_user(operation: &'static str, name: &str) -> AwsError {
    aws_err(
        SERVICE,
        operation,
        AwsErrorKind::NotFound,
        "NoSuchEntity",
        format!("The user with name {name} cannot be found."),
    )
}

impl FakeIam {
    pub const SERVICE: &'static str = SERVICE;
    pub const CREATE_USER: &'static str = ops::CREATE_USER;
    pub const PUT_USER_POLICY: &'static str = ops::PUT_USER_POLICY;
    pub const CREATE_ACCESS_KEY: &'static str = ops::CREATE_ACCESS_KEY;
    pub const DELETE_ACCESS_KEYS: &'static str = ops::DELETE_ACCESS_KEYS;
    pub const DELETE_USER: &'static str = ops::DELETE_USER;

    /// A standalone fake reporting to `faults`.
    pub fn new(faults: Arc<super::Faults>) -> Self {
        FakeIam::with_env(Env::new(faults))
    }

    pub(crate) fn with_env(env: Arc<Env>) -> Self {
        FakeIam {
            env,
            state: Mutex::new(BTreeMap::new()),
        }
    }

    /// The user names, sorted.
    pub fn users(&self) -> Vec<String> {
        lock(&self.state).keys().cloned().collect()
    }

    /// One user, with its policies and keys.
    pub fn user(&self, name: &str) -> Option<FakeUser> {
        lock(&self.state).get(name).cloned()
    }

    /// The access keys of a user (empty when no such user).
    pub fn access_keys(&self, name: &str) -> Vec<AccessKey> {
        lock(&self.state).get(name).map(|u| u.keys.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl Iam for FakeIam {
    async fn create_user(&self, user_name: &str, path: &str, tags: &[(String, String)]) -> Result<(), AwsError> {
        const OP: &str = ops::CREATE_USER;
        self.env.enter(SERVICE, OP).await?;
        if !valid_user_name(user_name) {
            return Err(aws_err(
                SERVICE,
                OP,
                AwsErrorKind::Invalid,
                "ValidationError",
                format!("Invalid user name: {user_name}"),
            ));
        }
        if !path.starts_with('/') || !path.ends_with('/') || path.len() > 512 {
            return Err(aws_err(
                SERVICE,
                OP,
                AwsErrorKind::Invalid,
                "ValidationError",
                "The path must begin and end with '/'.",
            ));
        }
        let mut st = lock(&self.state);
        if st.contains_key(user_name) {
            return Err(aws_err(
                SERVICE,
                OP,
                AwsErrorKind::AlreadyExists,
                "EntityAlreadyExists",
                format!("User with name {user_name} already exists."),
            ));
        }
        self.env.made("user", user_name);
        st.insert(
            user_name.to_string(),
            FakeUser {
                name: user_name.to_string(),
                path: path.to_string(),
                tags: tags.to_vec(),
                policies: BTreeMap::new(),
                keys: Vec::new(),
            },
        );
        Ok(())
    }

    async fn put_user_policy(&self, user_name: &str, policy_name: &str, document: &str) -> Result<(), AwsError> {
        const OP: &str = ops::PUT_USER_POLICY;
        self.env.enter(SERVICE, OP).await?;
        if policy_name.is_empty() || policy_name.len() > 128 {
            return Err(aws_err(
                SERVICE,
                OP,
                AwsErrorKind::Invalid,
                "ValidationError",
                "Invalid policy name.",
            ));
        }
        if serde_json::from_str::<serde_json::Value>(document).map_or(true, |v| !v.is_object()) {
            return Err(aws_err(
                SERVICE,
                OP,
                AwsErrorKind::Invalid,
                "MalformedPolicyDocument",
                "Syntax errors in policy.",
            ));
        }
        let mut st = lock(&self.state);
        let user = st.get_mut(user_name).ok_or_else(|| no_such_user(OP, user_name))?;
        user.policies.insert(policy_name.to_string(), document.to_string());
        Ok(())
    }

    async fn create_access_key(&self, user_name: &str) -> Result<AccessKey, AwsError> {
        const OP: &str = ops::CREATE_ACCESS_KEY;
        self.env.enter(SERVICE, OP).await?;
        let mut st = lock(&self.state);
        let user = st.get_mut(user_name).ok_or_else(|| no_such_user(OP, user_name))?;
        if user.keys.len() >= MAX_KEYS {
            return Err(aws_err(
                SERVICE,
                OP,
                AwsErrorKind::Other,
                "LimitExceeded",
                format!("Cannot exceed quota for AccessKeysPerUser: {MAX_KEYS}"),
            ));
        }
        let key = AccessKey {
            access_key_id: format!("AKIA{}", super::random_from(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)),
            secret_access_key: Sensitive::new(super::random_from(&[ALNUM, b"+/"].concat(), 40)),
        };
        user.keys.push(key.clone());
        Ok(key)
    }

    async fn delete_access_keys(&self, user_name: &str) -> Result<(), AwsError> {
        const OP: &str = ops::DELETE_ACCESS_KEYS;
        self.env.enter(SERVICE, OP).await?;
        let mut st = lock(&self.state);
        let user = st.get_mut(user_name).ok_or_else(|| no_such_user(OP, user_name))?;
        user.keys.clear();
        Ok(())
    }

    async fn delete_user(&self, user_name: &str, _known: &KnownParts<'_>) -> Result<(), AwsError> {
        const OP: &str = ops::DELETE_USER;
        self.env.enter(SERVICE, OP).await?;
        match lock(&self.state).remove(user_name) {
            Some(_) => Ok(()),
            None => Err(no_such_user(OP, user_name)),
        }
    }

    async fn list_users_page(&self, path_prefix: &str, marker: Option<&str>) -> Result<Page<Listed>, AwsError> {
        self.env.enter(SERVICE, ops::LIST_USERS).await?;
        let users: Vec<(String, Option<String>)> = lock(&self.state)
            .values()
            .filter(|u| u.path.starts_with(path_prefix))
            .map(|u| {
                let arn = format!("arn:aws:iam::{}:user{path_prefix}{}", super::ACCOUNT_ID, u.name);
                (u.name.clone(), Some(arn))
            })
            .collect();
        Ok(self.env.page_of_named("user", users, marker))
    }

    async fn access_key_ids(&self, user_name: &str) -> Result<Vec<String>, AwsError> {
        const OP: &str = ops::LIST_ACCESS_KEYS;
        self.env.enter(SERVICE, OP).await?;
        let st = lock(&self.state);
        let user = st.get(user_name).ok_or_else(|| no_such_user(OP, user_name))?;
        Ok(user.keys.iter().map(|k| k.access_key_id.clone()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Faults;

    #[tokio::test]
    async fn user_lifecycle() {
        let iam = FakeIam::new(Arc::new(Faults::new()));
        iam.create_user("foundry-s3-alice", "/foundry/", &[]).await.unwrap();
        assert_eq!(
            iam.create_user("foundry-s3-alice", "/foundry/", &[])
                .await
                .unwrap_err()
                .kind,
            AwsErrorKind::AlreadyExists
        );
        iam.put_user_policy("foundry-s3-alice", "p", r#"{"Version":"2012-10-17"}"#)
            .await
            .unwrap();
        assert_eq!(
            iam.put_user_policy("foundry-s3-alice", "p", "not json")
                .await
                .unwrap_err()
                .kind,
            AwsErrorKind::Invalid
        );
        let k1 = iam.create_access_key("foundry-s3-alice").await.unwrap();
        let k2 = iam.create_access_key("foundry-s3-alice").await.unwrap();
        assert!(k1.access_key_id.starts_with("AKIA") && k1.access_key_id.len() == 20);
        assert_eq!(k1.secret_access_key.expose().len(), 40);
        assert_ne!(k1.secret_access_key, k2.secret_access_key);
        assert_eq!(format!("{:?}", k1.secret_access_key), "[REDACTED]");
        assert_eq!(
            iam.create_access_key("foundry-s3-alice")
                .await
                .unwrap_err()
                .code
                .as_deref(),
            Some("LimitExceeded")
        );
        iam.delete_access_keys("foundry-s3-alice").await.unwrap();
        assert!(iam.access_keys("foundry-s3-alice").is_empty());
        iam.create_access_key("foundry-s3-alice").await.unwrap();
        iam.delete_user(
            "foundry-s3-alice",
            &KnownParts {
                access_key_id: None,
                policy: "p",
            },
        )
        .await
        .unwrap();
        assert!(iam.users().is_empty());
        assert_eq!(
            iam.delete_user(
                "foundry-s3-alice",
                &KnownParts {
                    access_key_id: None,
                    policy: "p"
                }
            )
            .await
            .unwrap_err()
            .kind,
            AwsErrorKind::NotFound
        );
        assert_eq!(
            iam.create_access_key("foundry-s3-alice").await.unwrap_err().kind,
            AwsErrorKind::NotFound
        );
    }
}
