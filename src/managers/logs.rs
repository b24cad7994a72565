//! CloudWatch Logs: the per-user ECS log group (`/aws/ecs/foundry-<userId>`).
//!
//! The original let the awslogs driver auto-create the group, without retention, so it grew
//! forever. The lifecycle creates it with a retention at `create` and deletes it at
//! `destroy`, through this seam.

use async_trait::async_trait;

use crate::error::{AwsError, AwsErrorKind};
use crate::managers::{sdk_error, Listed, Page};

#[async_trait]
pub trait Logs: Send + Sync {
    /// CreateLogGroup (an existing group is fine) then PutRetentionPolicy(days). Idempotent.
    ///
    /// `retention_days` must be one of [`RETENTION_DAYS`]; any other value is an `Invalid`
    /// error, returned before any AWS call. `tags` apply only when the group is created.
    async fn ensure_log_group(
        &self,
        name: &str,
        retention_days: i32,
        tags: &[(String, String)],
    ) -> Result<(), AwsError>;

    /// DeleteLogGroup. A missing group is a `NotFound` error.
    async fn delete_log_group(&self, name: &str) -> Result<(), AwsError>;

    /// The retention in days of the group, `Ok(None)` when it has none (never expire), and a
    /// `NotFound` error when the group does not exist (DescribeLogGroups with
    /// logGroupNamePrefix, exact-name match, paginated).
    async fn retention_days(&self, name: &str) -> Result<Option<i32>, AwsError>;

    /// One page of DescribeLogGroups: the groups whose name starts with `prefix`, from
    /// `token`, with their creation time.
    async fn list_log_groups_page(&self, prefix: &str, token: Option<&str>) -> Result<Page<Listed>, AwsError>;
}

/// The service name in every error of this module.
pub const SERVICE: &str = "logs";

pub use crate::domain::retention::{is_valid_retention, RETENTION_DAYS};

/// `Ok(())` when `days` is a retention CloudWatch Logs accepts, else an `Invalid` error for
/// `operation` (shaped like the service's own answer).
pub fn check_retention(operation: &'static str, days: i32) -> Result<(), AwsError> {
    if is_valid_retention(days) {
        return Ok(());
    }
    Err(AwsError::new(
        SERVICE,
        operation,
        AwsErrorKind::Invalid,
        format!(
            "invalid retentionInDays {days}: must be one of {}",
            RETENTION_DAYS.map(|d| d.to_string()).join(", ")
        ),
    )
    .with_code("InvalidParameterException"))
}

/// The error for a log group that does not exist (AWS's wording).
pub fn not_found(operation: &'static str) -> AwsError {
    AwsError::new(
        SERVICE,
        operation,
        AwsErrorKind::NotFound,
        "The specified log group does not exist.",
    )
    .with_code("ResourceNotFoundException")
}

/// The SDK adapter.
pub struct SdkLogs {
    client: super::sdk::LazyClient<aws_sdk_cloudwatchlogs::Client>,
}

impl SdkLogs {
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        SdkLogs {
            client: super::sdk::LazyClient::new(sdk, |sdk| {
                let mut conf = aws_sdk_cloudwatchlogs::config::Builder::from(sdk);
                conf.push_interceptor(crate::managers::instrument::interceptor());
                aws_sdk_cloudwatchlogs::Client::from_conf(conf.build())
            }),
        }
    }
}

#[async_trait]
impl Logs for SdkLogs {
    async fn ensure_log_group(
        &self,
        name: &str,
        retention_days: i32,
        tags: &[(String, String)],
    ) -> Result<(), AwsError> {
        check_retention("PutRetentionPolicy", retention_days)?;
        const CREATE: &str = "CreateLogGroup";
        let tags = (!tags.is_empty()).then(|| tags.iter().cloned().collect());
        match self
            .client
            .create_log_group()
            .log_group_name(name)
            .set_tags(tags)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) => {
                let err = sdk_error(SERVICE, CREATE, e);
                if err.code.as_deref() != Some("ResourceAlreadyExistsException") {
                    return Err(err);
                }
            }
        }
        self.client
            .put_retention_policy()
            .log_group_name(name)
            .retention_in_days(retention_days)
            .send()
            .await
            .map_err(|e| sdk_error(SERVICE, "PutRetentionPolicy", e))?;
        Ok(())
    }

    async fn delete_log_group(&self, name: &str) -> Result<(), AwsError> {
        self.client
            .delete_log_group()
            .log_group_name(name)
            .send()
            .await
            .map_err(|e| sdk_error(SERVICE, "DeleteLogGroup", e))?;
        Ok(())
    }

    async fn retention_days(&self, name: &str) -> Result<Option<i32>, AwsError> {
        const OP: &str = "DescribeLogGroups";
        // The paginator stops when the service repeats a token, so it cannot loop forever.
        let mut pages = self
            .client
            .describe_log_groups()
            .log_group_name_prefix(name)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_error(SERVICE, OP, e))?;
            if let Some(group) = page.log_groups().iter().find(|g| g.log_group_name() == Some(name)) {
                return Ok(group.retention_in_days());
            }
        }
        Err(not_found(OP))
    }

    async fn list_log_groups_page(&self, prefix: &str, token: Option<&str>) -> Result<Page<Listed>, AwsError> {
        let out = self
            .client
            .describe_log_groups()
            .log_group_name_prefix(prefix)
            .limit(50)
            .set_next_token(token.map(str::to_string))
            .send()
            .await
            .map_err(|e| sdk_error(SERVICE, "DescribeLogGroups", e))?;
        Ok(Page {
            items: out
                .log_groups()
                .iter()
                .filter_map(|g| {
                    let name = g.log_group_name()?;
                    name.starts_with(prefix).then(|| Listed {
                        name: name.to_string(),
                        arn: g.arn().map(str::to_string),
                        // Milliseconds since the epoch.
                        created_at: g.creation_time().map(|ms| ms.div_euclid(1000)),
                    })
                })
                .collect(),
            next: crate::managers::next_token(out.next_token()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_exactly_the_cloudwatch_retentions() {
        for d in RETENTION_DAYS {
            assert!(is_valid_retention(d), "{d}");
            assert!(check_retention("PutRetentionPolicy", d).is_ok());
        }
        for d in [i32::MIN, -1, 0, 2, 4, 6, 8, 31, 366, 3652, 3654, i32::MAX] {
            assert!(!is_valid_retention(d), "{d}");
            let e = check_retention("PutRetentionPolicy", d).unwrap_err();
            assert_eq!(e.kind, AwsErrorKind::Invalid);
            assert_eq!(e.service, SERVICE);
            assert_eq!(e.operation, "PutRetentionPolicy");
        }
    }

    #[test]
    fn the_service_codes_classify_as_our_policy_expects() {
        use crate::managers::classify;
        assert_eq!(
            classify("ResourceNotFoundException", "The specified log group does not exist."),
            AwsErrorKind::NotFound
        );
        assert_eq!(
            classify("InvalidParameterException", "A parameter is specified incorrectly."),
            AwsErrorKind::Invalid
        );
        assert!(not_found("DeleteLogGroup").is_not_found());
    }

    /// An invalid retention fails before any request: the endpoint is unreachable and there
    /// are no credentials, so a request would fail with another kind.
    #[tokio::test]
    async fn invalid_retention_is_refused_without_calling_aws() {
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url("http://127.0.0.1:9")
            .build();
        let logs = SdkLogs::new(&sdk);
        let e = logs.ensure_log_group("/aws/ecs/foundry-1", 2, &[]).await.unwrap_err();
        assert_eq!(e.kind, AwsErrorKind::Invalid);
        assert_eq!(e.code.as_deref(), Some("InvalidParameterException"));
    }
}
