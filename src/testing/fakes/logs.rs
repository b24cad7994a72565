//! The CloudWatch Logs fake: log groups by name, with their retention and tags.
//!
//! `ensure_log_group` creates a group (with its tags) unless it exists, then sets its
//! retention, like CreateLogGroup + PutRetentionPolicy: the tags of an existing group are
//! left as they are. [`FakeLogs::insert_group`] plays the awslogs driver auto-creating a
//! group without retention.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{aws_err, lock, ops, Env};
use crate::error::{AwsError, AwsErrorKind};
use crate::managers::logs::{check_retention, not_found, Logs};
use crate::managers::{Listed, Page};

const SERVICE: &str = crate::managers::logs::SERVICE;

/// A log group as the fake knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeLogGroup {
    pub name: String,
    /// `None` = never expire.
    pub retention_days: Option<i32>,
    pub tags: Vec<(String, String)>,
}

/// The in-memory CloudWatch Logs.
pub struct FakeLogs {
    env: Arc<Env>,
    state: Mutex<BTreeMap<String, FakeLogGroup>>,
}

/// CloudWatch's rule for log group names: 1–512 of `[.\-_/#A-Za-z0-9]`.
fn valid_name(name: &str) -> bool {
    (1..=512).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-/#".contains(c))
}

fn check_name(operation: &'static str, name: &str) -> Result<(), AwsError> {
    if valid_name(name) {
        return Ok(());
    }
    Err(aws_err(
        SERVICE,
        operation,
        AwsErrorKind::Invalid,
        "InvalidParameterException",
        format!(
            "1 validation error detected: Value '{name}' at 'logGroupName' failed to satisfy constraint: \
             Member must satisfy regular expression pattern: [\\.\\-_/#A-Za-z0-9]+"
        ),
    ))
}

impl FakeLogs {
    pub const SERVICE: &'static str = SERVICE;
    pub const ENSURE_LOG_GROUP: &'static str = ops::ENSURE_LOG_GROUP;
    pub const DELETE_LOG_GROUP: &'static str = ops::DELETE_LOG_GROUP;
    pub const DESCRIBE_LOG_GROUPS: &'static str = ops::DESCRIBE_LOG_GROUPS;

    /// A standalone fake reporting to `faults`.
    pub fn new(faults: Arc<super::Faults>) -> Self {
        FakeLogs::with_env(Env::new(faults))
    }

    pub(crate) fn with_env(env: Arc<Env>) -> Self {
        FakeLogs {
            env,
            state: Mutex::new(BTreeMap::new()),
        }
    }

    /// Every group with its retention, sorted by name.
    pub fn groups(&self) -> Vec<(String, Option<i32>)> {
        lock(&self.state)
            .values()
            .map(|g| (g.name.clone(), g.retention_days))
            .collect()
    }

    /// One group, by name.
    pub fn group(&self, name: &str) -> Option<FakeLogGroup> {
        lock(&self.state).get(name).cloned()
    }

    /// Seeds a group (replacing one of the same name), as the awslogs driver does when it
    /// auto-creates one (`retention_days` = `None`, no tags). Not a call: not recorded.
    pub fn insert_group(&self, name: &str, retention_days: Option<i32>) {
        self.env.made("log-group", name);
        lock(&self.state).insert(
            name.to_string(),
            FakeLogGroup {
                name: name.to_string(),
                retention_days,
                tags: Vec::new(),
            },
        );
    }
}

#[async_trait]
impl Logs for FakeLogs {
    async fn ensure_log_group(
        &self,
        name: &str,
        retention_days: i32,
        tags: &[(String, String)],
    ) -> Result<(), AwsError> {
        const OP: &str = ops::ENSURE_LOG_GROUP;
        self.env.enter(SERVICE, OP).await?;
        check_retention(OP, retention_days)?;
        check_name(OP, name)?;
        let mut st = lock(&self.state);
        if !st.contains_key(name) {
            self.env.made("log-group", name);
        }
        let group = st.entry(name.to_string()).or_insert_with(|| FakeLogGroup {
            name: name.to_string(),
            retention_days: None,
            tags: tags.to_vec(),
        });
        group.retention_days = Some(retention_days);
        Ok(())
    }

    async fn delete_log_group(&self, name: &str) -> Result<(), AwsError> {
        const OP: &str = ops::DELETE_LOG_GROUP;
        self.env.enter(SERVICE, OP).await?;
        lock(&self.state).remove(name).map(|_| ()).ok_or_else(|| not_found(OP))
    }

    async fn retention_days(&self, name: &str) -> Result<Option<i32>, AwsError> {
        const OP: &str = ops::DESCRIBE_LOG_GROUPS;
        self.env.enter(SERVICE, OP).await?;
        lock(&self.state)
            .get(name)
            .map(|g| g.retention_days)
            .ok_or_else(|| not_found(OP))
    }

    async fn list_log_groups_page(&self, prefix: &str, token: Option<&str>) -> Result<Page<Listed>, AwsError> {
        self.env.enter(SERVICE, ops::DESCRIBE_LOG_GROUPS).await?;
        let names: Vec<(String, Option<String>)> = lock(&self.state)
            .keys()
            .filter(|n| n.starts_with(prefix))
            .map(|n| (n.clone(), None))
            .collect();
        Ok(self.env.page_of_named("log-group", names, token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{FakeAws, Faults};

    fn tags() -> Vec<(String, String)> {
        vec![("userId".to_string(), "alice".to_string())]
    }

    #[tokio::test]
    async fn log_group_lifecycle() {
        let logs = FakeLogs::new(Arc::new(Faults::new()));
        let name = "/aws/ecs/foundry-alice";
        logs.ensure_log_group(name, 3, &tags()).await.unwrap();
        logs.ensure_log_group(name, 3, &tags()).await.unwrap();
        assert_eq!(logs.groups(), vec![(name.to_string(), Some(3))]);
        assert_eq!(logs.retention_days(name).await.unwrap(), Some(3));

        // A second ensure changes the retention and keeps the tags of the creation.
        logs.ensure_log_group(name, 7, &[]).await.unwrap();
        assert_eq!(logs.retention_days(name).await.unwrap(), Some(7));
        assert_eq!(logs.group(name).map(|g| g.tags), Some(tags()));

        logs.delete_log_group(name).await.unwrap();
        assert!(logs.groups().is_empty());
        assert_eq!(
            logs.delete_log_group(name).await.unwrap_err().kind,
            AwsErrorKind::NotFound
        );
        let e = logs.retention_days(name).await.unwrap_err();
        assert!(e.is_not_found());
        assert_eq!(e.service, FakeLogs::SERVICE);
        assert_eq!(e.operation, FakeLogs::DESCRIBE_LOG_GROUPS);
        assert_eq!(e.code.as_deref(), Some("ResourceNotFoundException"));
    }

    #[tokio::test]
    async fn an_auto_created_group_gets_its_retention() {
        let logs = FakeLogs::new(Arc::new(Faults::new()));
        logs.insert_group("/aws/ecs/foundry-bob", None);
        assert_eq!(logs.retention_days("/aws/ecs/foundry-bob").await.unwrap(), None);
        logs.ensure_log_group("/aws/ecs/foundry-bob", 14, &tags())
            .await
            .unwrap();
        assert_eq!(logs.groups(), vec![("/aws/ecs/foundry-bob".to_string(), Some(14))]);
        // Tags are set only when the group is created.
        assert_eq!(logs.group("/aws/ecs/foundry-bob").map(|g| g.tags), Some(Vec::new()));
    }

    #[tokio::test]
    async fn bad_input_is_invalid_and_changes_nothing() {
        let logs = FakeLogs::new(Arc::new(Faults::new()));
        for days in [0, 2, -7, 3650] {
            let e = logs
                .ensure_log_group("/aws/ecs/foundry-c", days, &[])
                .await
                .unwrap_err();
            assert_eq!(e.kind, AwsErrorKind::Invalid, "{days}");
        }
        for name in ["", "has space", "bad:colon", &"a".repeat(513)] {
            let e = logs.ensure_log_group(name, 7, &[]).await.unwrap_err();
            assert_eq!(e.kind, AwsErrorKind::Invalid, "{name:?}");
        }
        assert!(logs.groups().is_empty());
    }

    #[tokio::test]
    async fn faults_are_checked_first_and_shared() {
        let aws = FakeAws::new();
        let m = aws.managers();
        aws.faults.fail_nth(ops::ENSURE_LOG_GROUP, 1, AwsErrorKind::Transient);
        aws.faults.fail_always(ops::DELETE_LOG_GROUP, AwsErrorKind::Transient);
        let e = m.logs.ensure_log_group("/aws/ecs/foundry-d", 3, &[]).await.unwrap_err();
        assert_eq!(e.kind, AwsErrorKind::Transient);
        assert_eq!(e.service, FakeLogs::SERVICE);
        assert!(aws.logs.groups().is_empty());
        m.logs.ensure_log_group("/aws/ecs/foundry-d", 3, &[]).await.unwrap();
        assert_eq!(
            m.logs.delete_log_group("/aws/ecs/foundry-d").await.unwrap_err().kind,
            AwsErrorKind::Transient
        );
        assert_eq!(aws.logs.groups(), vec![("/aws/ecs/foundry-d".to_string(), Some(3))]);
        assert_eq!(m.logs.retention_days("/aws/ecs/foundry-d").await.unwrap(), Some(3));
        assert_eq!(
            aws.faults.calls(),
            vec![
                ops::ENSURE_LOG_GROUP.to_string(),
                ops::ENSURE_LOG_GROUP.to_string(),
                ops::DELETE_LOG_GROUP.to_string(),
                ops::DESCRIBE_LOG_GROUPS.to_string(),
            ]
        );
    }
}
