//! Every AWS call an SDK adapter makes is reported once to `telemetry::aws_call` (the
//! `AwsCalls` metric and the DEBUG "aws call" line), with service, operation, duration and
//! outcome, and never with a request parameter. Against moto, through the real adapters.

mod moto_env;

use foundry_lambda::managers::dynamodb::Table;
use foundry_lambda::managers::Managers;
use foundry_lambda::telemetry::{with_call_stats, CallStats};
use serde_json::Value;

/// Runs `fut` with the crate's JSON log at DEBUG into a buffer; returns its output, the call
/// counts, the whole log and its "aws call" lines.
async fn observed<F: std::future::Future>(fut: F) -> (F::Output, CallStats, String, Vec<Value>) {
    let (_guard, buf) = foundry_lambda::logging::capture("foundry_lambda=debug");
    let (out, stats) = with_call_stats(fut).await;
    let log = buf.contents();
    let calls = log
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .filter(|v| v["message"] == "aws call")
        .collect();
    (out, stats, log, calls)
}

/// (service, operation, outcome) of each "aws call" line, after checking its shape.
fn summary(calls: &[Value]) -> Vec<(String, String, String)> {
    calls
        .iter()
        .map(|c| {
            assert_eq!(c["level"], "DEBUG", "{c}");
            assert!(c["duration_ms"].as_f64().is_some_and(|d| d > 0.0), "no duration: {c}");
            let s = |k: &str| c[k].as_str().unwrap_or_else(|| panic!("no {k}: {c}")).to_string();
            (s("service"), s("operation"), s("outcome"))
        })
        .collect()
}

fn call(service: &str, operation: &str, outcome: &str) -> (String, String, String) {
    (service.into(), operation.into(), outcome.into())
}

#[tokio::test]
async fn dynamo_get_and_a_failing_s3_delete_are_counted_and_logged_without_parameters() {
    let aws = moto_env::local_aws();
    let managers = Managers::from_sdk(&moto_env::sdk_config().await);
    let usage = Table::new(aws.var("USAGE_TABLE_NAME"), "usageKey");
    let key = format!("telemetry-probe-key-{}", moto_env::unique_user_id());
    let bucket = format!("telemetry-missing-{}", moto_env::unique_user_id());

    let ((got, deleted), stats, log, calls) = observed(async {
        let got = managers.dynamo.get(&usage, &key, true).await;
        let deleted = managers.s3.delete_bucket(&bucket).await;
        (got, deleted)
    })
    .await;

    assert!(got.expect("GetItem").is_none());
    let err = deleted.expect_err("the bucket does not exist");
    assert_eq!(err.code.as_deref(), Some("NoSuchBucket"), "{err:?}");
    assert_eq!(stats, CallStats { total: 2, failed: 1 });
    assert_eq!(
        summary(&calls),
        vec![call("DynamoDB", "GetItem", "ok"), call("S3", "DeleteBucket", "error")]
    );
    for param in [&key, &bucket, &usage.name] {
        assert!(
            !log.contains(param.as_str()),
            "request parameter {param} in the log:\n{log}"
        );
    }
}

/// One read through each of the nine adapters built by `Managers::from_sdk`: each is
/// instrumented, and reports under the SDK's own service and operation names.
#[tokio::test]
async fn every_adapter_reports_its_calls() {
    let aws = moto_env::local_aws();
    let managers = Managers::from_sdk(&moto_env::sdk_config().await);
    let id = moto_env::unique_user_id();
    let missing = format!("telemetry-{id}");
    let access_point = format!("fsap-{id}");
    let target_group = format!("tg{}", &id[..10]);
    let record = format!("{missing}.{}", aws.var("DOMAIN_NAME"));
    let log_group = format!("/aws/ecs/{missing}");
    let usage = Table::new(aws.var("USAGE_TABLE_NAME"), "usageKey");

    let (results, stats, log, calls) = observed(async {
        let m = &managers;
        [
            m.dynamo.get(&usage, &missing, false).await.map(|i| i.is_some()),
            m.ecs.list_task_definitions(&missing).await.map(|d| !d.is_empty()),
            m.efs.access_point_state(&access_point).await.map(|s| s.is_some()),
            m.iam.delete_access_keys(&missing).await.map(|()| true),
            m.route53
                .get_alias(aws.var("ROUTE53_HOSTED_ZONE_ID"), &record)
                .await
                .map(|r| r.is_some()),
            m.alb.find_target_group(&target_group).await.map(|t| t.is_some()),
            m.secrets.get_secret_string(&missing).await.map(|s| s.is_some()),
            m.s3.delete_bucket(&missing).await.map(|()| true),
            m.logs.retention_days(&log_group).await.map(|d| d.is_some()),
        ]
    })
    .await;

    // Nothing exists: the adapters answer "none", except the three that report NotFound
    // (the log group's comes from an empty, successful DescribeLogGroups).
    let results: Vec<Result<bool, Option<String>>> = results.into_iter().map(|r| r.map_err(|e| e.code)).collect();
    assert_eq!(
        results,
        vec![
            Ok(false),
            Ok(false),
            Ok(false),
            Err(Some("NoSuchEntity".into())),
            Ok(false),
            Ok(false),
            Ok(false),
            Err(Some("NoSuchBucket".into())),
            Err(Some("ResourceNotFoundException".into())),
        ]
    );
    // A "not found" the adapter maps to `None` is still a failed AWS call.
    assert_eq!(stats, CallStats { total: 9, failed: 5 });
    assert_eq!(
        summary(&calls),
        vec![
            call("DynamoDB", "GetItem", "ok"),
            call("ECS", "ListTaskDefinitions", "ok"),
            call("EFS", "DescribeAccessPoints", "error"),
            call("IAM", "ListAccessKeys", "error"),
            call("Route 53", "ListResourceRecordSets", "ok"),
            call("Elastic Load Balancing v2", "DescribeTargetGroups", "error"),
            call("Secrets Manager", "GetSecretValue", "error"),
            call("S3", "DeleteBucket", "error"),
            call("CloudWatch Logs", "DescribeLogGroups", "ok"),
        ]
    );
    for param in [&missing, &access_point, &target_group, &record, &log_group] {
        assert!(
            !log.contains(param.as_str()),
            "request parameter {param} in the log:\n{log}"
        );
    }
}
