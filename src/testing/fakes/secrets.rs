//! The Secrets Manager fake: secrets by name (or ARN), with scheduled deletion.
//!
//! DeleteSecret without `force` schedules the deletion: the secret then reads as absent,
//! UpdateSecret/CreateSecret answer `Conflict`, RestoreSecret brings it back, and
//! [`FakeSecrets::purge_deleted`] plays the end of the recovery window.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{aws_err, lock, ops, Env, ACCOUNT_ID, ALNUM, REGION};
use crate::error::{AwsError, AwsErrorKind};
use crate::managers::secrets::Secrets;
use crate::managers::{Listed, Page};
use crate::secret::Sensitive;

const SERVICE: &str = "secretsmanager";

/// A secret as the fake knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeSecret {
    pub name: String,
    pub arn: String,
    pub value: Sensitive,
    pub description: String,
    pub tags: Vec<(String, String)>,
    pub scheduled_for_deletion: bool,
}

/// The in-memory Secrets Manager.
pub struct FakeSecrets {
    env: Arc<Env>,
    state: Mutex<BTreeMap<String, FakeSecret>>,
}

fn valid_name(name: &str) -> bool {
    (1..=512).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || "/_+=.@-".contains(c))
}

fn not_found(operation: &'static str) -> AwsError {
    aws_err(
        SERVICE,
        operation,
        AwsErrorKind::NotFound,
        "ResourceNotFoundException",
        "Secrets Manager can't find the specified secret.",
    )
}

fn scheduled(operation: &'static str) -> AwsError {
    aws_err(
        SERVICE,
        operation,
        AwsErrorKind::Conflict,
        "InvalidRequestException",
        "You can't perform this operation on the secret because it was marked for deletion.",
    )
}

/// The name of the secret `id` (a name or an ARN) designates.
fn find<'a>(secrets: &'a BTreeMap<String, FakeSecret>, id: &str) -> Option<&'a str> {
    if secrets.contains_key(id) {
        return secrets.get_key_value(id).map(|(k, _)| k.as_str());
    }
    secrets.values().find(|s| s.arn == id).map(|s| s.name.as_str())
}

impl FakeSecrets {
    pub const SERVICE: &'static str = SERVICE;
    pub const GET_SECRET_VALUE: &'static str = ops::GET_SECRET_VALUE;
    pub const CREATE_SECRET: &'static str = ops::CREATE_SECRET;
    pub const UPDATE_SECRET: &'static str = ops::UPDATE_SECRET;
    pub const RESTORE_SECRET: &'static str = ops::RESTORE_SECRET;
    pub const DELETE_SECRET: &'static str = ops::DELETE_SECRET;

    /// A standalone fake reporting to `faults`.
    pub fn new(faults: Arc<super::Faults>) -> Self {
        FakeSecrets::with_env(Env::new(faults))
    }

    pub(crate) fn with_env(env: Arc<Env>) -> Self {
        FakeSecrets {
            env,
            state: Mutex::new(BTreeMap::new()),
        }
    }

    /// The names of every stored secret (including those scheduled for deletion), sorted.
    pub fn secrets(&self) -> Vec<String> {
        lock(&self.state).keys().cloned().collect()
    }

    /// One secret, by name or ARN.
    pub fn secret(&self, id: &str) -> Option<FakeSecret> {
        let st = lock(&self.state);
        find(&st, id).and_then(|n| st.get(n)).cloned()
    }

    /// The recovery window ends: every secret scheduled for deletion is gone.
    pub fn purge_deleted(&self) {
        lock(&self.state).retain(|_, s| !s.scheduled_for_deletion);
    }
}

#[async_trait]
impl Secrets for FakeSecrets {
    async fn get_secret_string(&self, secret_id: &str) -> Result<Option<Sensitive>, AwsError> {
        self.env.enter(SERVICE, ops::GET_SECRET_VALUE).await?;
        let st = lock(&self.state);
        Ok(find(&st, secret_id)
            .and_then(|n| st.get(n))
            .filter(|s| !s.scheduled_for_deletion)
            .map(|s| s.value.clone()))
    }

    async fn create_secret(
        &self,
        name: &str,
        description: &str,
        tags: &[(String, String)],
        value: &Sensitive,
    ) -> Result<String, AwsError> {
        const OP: &str = ops::CREATE_SECRET;
        self.env.enter(SERVICE, OP).await?;
        if !valid_name(name) {
            return Err(aws_err(
                SERVICE,
                OP,
                AwsErrorKind::Invalid,
                "ValidationException",
                "Invalid name. Must be a valid name containing alphanumeric characters, or any of the following: -/_+=.@!",
            ));
        }
        let mut st = lock(&self.state);
        if let Some(existing) = st.get(name) {
            if existing.scheduled_for_deletion {
                return Err(aws_err(
                    SERVICE,
                    OP,
                    AwsErrorKind::Conflict,
                    "InvalidRequestException",
                    "You can't create this secret because a secret with this name is already scheduled for deletion.",
                ));
            }
            return Err(aws_err(
                SERVICE,
                OP,
                AwsErrorKind::AlreadyExists,
                "ResourceExistsException",
                format!("The operation failed because the secret {name} already exists."),
            ));
        }
        let arn = format!(
            "arn:aws:secretsmanager:{REGION}:{ACCOUNT_ID}:secret:{name}-{}",
            super::random_from(ALNUM, 6)
        );
        self.env.made("secret", name);
        st.insert(
            name.to_string(),
            FakeSecret {
                name: name.to_string(),
                arn: arn.clone(),
                value: value.clone(),
                description: description.to_string(),
                tags: tags.to_vec(),
                scheduled_for_deletion: false,
            },
        );
        Ok(arn)
    }

    async fn update_secret(&self, secret_id: &str, value: &Sensitive) -> Result<String, AwsError> {
        const OP: &str = ops::UPDATE_SECRET;
        self.env.enter(SERVICE, OP).await?;
        let mut st = lock(&self.state);
        let name = find(&st, secret_id).ok_or_else(|| not_found(OP))?.to_string();
        let Some(s) = st.get_mut(&name) else {
            return Err(not_found(OP));
        };
        if s.scheduled_for_deletion {
            return Err(scheduled(OP));
        }
        s.value = value.clone();
        Ok(s.arn.clone())
    }

    async fn restore_secret(&self, secret_id: &str) -> Result<(), AwsError> {
        const OP: &str = ops::RESTORE_SECRET;
        self.env.enter(SERVICE, OP).await?;
        let mut st = lock(&self.state);
        let name = find(&st, secret_id).ok_or_else(|| not_found(OP))?.to_string();
        if let Some(s) = st.get_mut(&name) {
            s.scheduled_for_deletion = false;
        }
        Ok(())
    }

    async fn delete_secret(&self, secret_id: &str, force: bool) -> Result<(), AwsError> {
        const OP: &str = ops::DELETE_SECRET;
        self.env.enter(SERVICE, OP).await?;
        let mut st = lock(&self.state);
        let name = find(&st, secret_id).ok_or_else(|| not_found(OP))?.to_string();
        if force {
            st.remove(&name);
            return Ok(());
        }
        let Some(s) = st.get_mut(&name) else {
            return Err(not_found(OP));
        };
        if s.scheduled_for_deletion {
            return Err(scheduled(OP));
        }
        s.scheduled_for_deletion = true;
        Ok(())
    }

    async fn list_one(&self) -> Result<(), AwsError> {
        self.env.enter(SERVICE, ops::LIST_SECRETS).await?;
        Ok(())
    }

    async fn list_secrets_page(&self, prefix: &str, token: Option<&str>) -> Result<Page<Listed>, AwsError> {
        self.env.enter(SERVICE, ops::LIST_SECRETS).await?;
        let secrets: Vec<(String, Option<String>)> = lock(&self.state)
            .values()
            .filter(|s| !s.scheduled_for_deletion && s.name.starts_with(prefix))
            .map(|s| (s.name.clone(), Some(s.arn.clone())))
            .collect();
        Ok(self.env.page_of_named("secret", secrets, token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Faults;

    #[tokio::test]
    async fn secret_lifecycle() {
        let sm = FakeSecrets::new(Arc::new(Faults::new()));
        let v = Sensitive::new(r#"{"username":"u"}"#);
        let arn = sm
            .create_secret("foundry-credentials-alice", "d", &[], &v)
            .await
            .unwrap();
        assert!(arn.starts_with("arn:aws:secretsmanager:us-east-1:123456789012:secret:foundry-credentials-alice-"));
        assert_eq!(
            arn.len(),
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:foundry-credentials-alice-".len() + 6
        );
        assert_eq!(
            sm.create_secret("foundry-credentials-alice", "d", &[], &v)
                .await
                .unwrap_err()
                .kind,
            AwsErrorKind::AlreadyExists
        );
        assert_eq!(sm.get_secret_string(&arn).await.unwrap(), Some(v.clone()));
        let v2 = Sensitive::new("two");
        assert_eq!(sm.update_secret("foundry-credentials-alice", &v2).await.unwrap(), arn);
        assert_eq!(
            sm.get_secret_string("foundry-credentials-alice").await.unwrap(),
            Some(v2.clone())
        );

        sm.delete_secret(&arn, false).await.unwrap();
        assert_eq!(sm.get_secret_string(&arn).await.unwrap(), None);
        assert_eq!(
            sm.update_secret(&arn, &v).await.unwrap_err().kind,
            AwsErrorKind::Conflict
        );
        assert_eq!(
            sm.create_secret("foundry-credentials-alice", "d", &[], &v)
                .await
                .unwrap_err()
                .kind,
            AwsErrorKind::Conflict
        );
        assert_eq!(
            sm.delete_secret(&arn, false).await.unwrap_err().kind,
            AwsErrorKind::Conflict
        );
        sm.restore_secret(&arn).await.unwrap();
        assert_eq!(sm.get_secret_string(&arn).await.unwrap(), Some(v2));
        sm.delete_secret("foundry-credentials-alice", true).await.unwrap();
        assert!(sm.secrets().is_empty());
        assert_eq!(
            sm.delete_secret(&arn, true).await.unwrap_err().kind,
            AwsErrorKind::NotFound
        );
        assert_eq!(
            sm.update_secret(&arn, &v).await.unwrap_err().kind,
            AwsErrorKind::NotFound
        );
        assert_eq!(sm.get_secret_string("nope").await.unwrap(), None);

        sm.create_secret("s", "d", &[], &v).await.unwrap();
        sm.delete_secret("s", false).await.unwrap();
        assert_eq!(sm.secrets(), vec!["s".to_string()]);
        sm.purge_deleted();
        assert!(sm.secrets().is_empty());
    }
}
