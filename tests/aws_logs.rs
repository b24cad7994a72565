//! Wire behaviour of the CloudWatch Logs adapter, against moto.
//!
//! Every test uses fresh group names (moto is shared by all tests and never reset).

mod moto_env;

use foundry_lambda::error::{AwsError, AwsErrorKind};
use foundry_lambda::managers::logs::{Logs, SdkLogs};

fn expect_kind<T: std::fmt::Debug>(result: Result<T, AwsError>, kind: AwsErrorKind) -> AwsError {
    match result {
        Ok(v) => panic!("expected a {kind:?} error, got Ok({v:?})"),
        Err(e) => {
            assert_eq!(e.kind, kind, "unexpected error: {e} ({e:?})");
            e
        }
    }
}

fn group_name() -> String {
    format!("/aws/ecs/foundry-{}", moto_env::unique_user_id())
}

/// The tags of `name`, read with a plain client.
async fn tags_of(raw: &aws_sdk_cloudwatchlogs::Client, name: &str) -> Vec<(String, String)> {
    let arn = raw
        .describe_log_groups()
        .log_group_name_prefix(name)
        .send()
        .await
        .expect("DescribeLogGroups")
        .log_groups()
        .iter()
        .find(|g| g.log_group_name() == Some(name))
        .and_then(|g| g.arn())
        .map(|a| a.trim_end_matches(":*").to_string())
        .expect("the group and its ARN");
    let out = raw
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .expect("ListTagsForResource");
    let mut tags: Vec<(String, String)> = out
        .tags()
        .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    tags.sort();
    tags
}

#[tokio::test]
async fn log_group_lifecycle_with_retention() {
    let sdk = moto_env::sdk_config().await;
    let logs = SdkLogs::new(&sdk);
    let raw = aws_sdk_cloudwatchlogs::Client::new(&sdk);
    let name = group_name();
    let tags = vec![
        ("ManagedBy".to_string(), "foundry-lambda".to_string()),
        (
            "UserId".to_string(),
            name.rsplit('-').next().unwrap_or_default().to_string(),
        ),
    ];

    expect_kind(logs.retention_days(&name).await, AwsErrorKind::NotFound);

    logs.ensure_log_group(&name, 3, &tags).await.expect("first ensure");
    logs.ensure_log_group(&name, 3, &tags)
        .await
        .expect("second ensure (idempotent)");
    assert_eq!(logs.retention_days(&name).await.expect("retention"), Some(3));
    assert_eq!(tags_of(&raw, &name).await, tags);

    logs.ensure_log_group(&name, 7, &[])
        .await
        .expect("ensure with a new retention");
    assert_eq!(logs.retention_days(&name).await.expect("retention"), Some(7));

    logs.delete_log_group(&name).await.expect("delete");
    let e = expect_kind(logs.delete_log_group(&name).await, AwsErrorKind::NotFound);
    assert_eq!(e.service, "logs");
    assert_eq!(e.operation, "DeleteLogGroup");
    assert_eq!(e.code.as_deref(), Some("ResourceNotFoundException"));
    let e = expect_kind(logs.retention_days(&name).await, AwsErrorKind::NotFound);
    assert_eq!(e.operation, "DescribeLogGroups");
}

/// A group the awslogs driver auto-created (no retention) reads as `None`, and `ensure`
/// gives it one.
#[tokio::test]
async fn an_existing_group_without_retention_gets_one() {
    let sdk = moto_env::sdk_config().await;
    let logs = SdkLogs::new(&sdk);
    let raw = aws_sdk_cloudwatchlogs::Client::new(&sdk);
    let name = group_name();
    raw.create_log_group()
        .log_group_name(&name)
        .send()
        .await
        .expect("CreateLogGroup");
    assert_eq!(logs.retention_days(&name).await.expect("retention"), None);
    logs.ensure_log_group(&name, 14, &[]).await.expect("ensure");
    assert_eq!(logs.retention_days(&name).await.expect("retention"), Some(14));
    logs.delete_log_group(&name).await.expect("delete");
}

/// The exact name is matched: groups whose names merely start with it do not count, over
/// more than one page of DescribeLogGroups (50 a page).
#[tokio::test]
async fn retention_matches_the_exact_name_across_pages() {
    let sdk = moto_env::sdk_config().await;
    let logs = SdkLogs::new(&sdk);
    let name = group_name();
    let others: Vec<String> = (0..55).map(|i| format!("{name}/{i:02}")).collect();
    for other in &others {
        logs.ensure_log_group(other, 1, &[]).await.expect("ensure other");
    }
    expect_kind(logs.retention_days(&name).await, AwsErrorKind::NotFound);
    assert_eq!(logs.retention_days(&others[54]).await.expect("retention"), Some(1));

    logs.ensure_log_group(&name, 30, &[]).await.expect("ensure");
    assert_eq!(logs.retention_days(&name).await.expect("retention"), Some(30));

    logs.delete_log_group(&name).await.expect("delete");
    for other in &others {
        logs.delete_log_group(other).await.expect("delete other");
    }
}

#[tokio::test]
async fn an_invalid_retention_creates_nothing() {
    let sdk = moto_env::sdk_config().await;
    let logs = SdkLogs::new(&sdk);
    let name = group_name();
    for days in [0, 2, 10, 3650] {
        let e = expect_kind(logs.ensure_log_group(&name, days, &[]).await, AwsErrorKind::Invalid);
        assert_eq!(e.service, "logs");
    }
    expect_kind(logs.retention_days(&name).await, AwsErrorKind::NotFound);
}
