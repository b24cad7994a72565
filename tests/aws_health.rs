//! Wire behaviour of the health probes against moto: each probe answers for what the
//! deployment has, and names the AWS error code of what it lacks; `health-check` through
//! the handler finds a provisioned deployment healthy.
//!
//! Read-only: nothing is created, so the shared moto is left as it was.

mod moto_env;

use std::sync::Arc;

use foundry_lambda::app::{App, Ctx};
use foundry_lambda::clock::SystemClock;
use foundry_lambda::config::Config;
use foundry_lambda::error::{AwsError, AwsErrorKind};
use foundry_lambda::managers::alb::{Alb, SdkAlb};
use foundry_lambda::managers::dynamodb::{Dynamo, SdkDynamo};
use foundry_lambda::managers::ecs::{Ecs, SdkEcs};
use foundry_lambda::managers::efs::{Efs, SdkEfs};
use foundry_lambda::managers::route53::{Route53, SdkRoute53};
use foundry_lambda::managers::secrets::{SdkSecrets, Secrets};
use foundry_lambda::managers::Managers;
use serde_json::json;

fn not_found<T: std::fmt::Debug>(result: Result<T, AwsError>) -> AwsError {
    match result {
        Ok(v) => panic!("expected a NotFound error, got Ok({v:?})"),
        Err(e) => {
            assert_eq!(e.kind, AwsErrorKind::NotFound, "{e} ({e:?})");
            e
        }
    }
}

#[tokio::test]
async fn every_probe_answers_for_the_provisioned_deployment() {
    let aws = moto_env::local_aws();
    let sdk = moto_env::sdk_config().await;
    let dynamo = SdkDynamo::new(&sdk);
    for table in [
        "INSTANCE_TABLE_NAME",
        "USAGE_TABLE_NAME",
        "LICENSE_POOL_TABLE_NAME",
        "SCHEDULED_SESSIONS_TABLE_NAME",
        "LICENSE_RESERVATIONS_TABLE_NAME",
    ] {
        let Some(name) = aws.env.get(table) else { continue };
        assert_eq!(dynamo.table_status(name).await.expect(table), "ACTIVE");
    }
    let cluster = SdkEcs::new(&sdk).cluster_status(aws.var("CLUSTER_NAME")).await;
    assert_eq!(cluster.expect("the cluster"), "ACTIVE");
    let fs = SdkEfs::new(&sdk).file_system_state(aws.var("FILE_SYSTEM_ID")).await;
    assert_eq!(fs.expect("the file system"), "available");
    SdkAlb::new(&sdk)
        .describe_listener(aws.var("ALB_HTTPS_LISTENER_ARN"))
        .await
        .expect("the listener");
    SdkRoute53::new(&sdk)
        .hosted_zone(aws.var("ROUTE53_HOSTED_ZONE_ID"))
        .await
        .expect("the zone");
    SdkSecrets::new(&sdk).list_one().await.expect("ListSecrets");
}

#[tokio::test]
// The names here (missing-…, fs-00000000…, Z0MISSING…) are test fixtures to tools/iam_check.py:
// no deployment has them, and the role need not allow them.
async fn a_probe_of_what_is_missing_is_not_found_with_its_aws_error_code() {
    let _ = moto_env::local_aws();
    let sdk = moto_env::sdk_config().await;
    let id = uuid::Uuid::new_v4().simple().to_string();
    let e = not_found(SdkDynamo::new(&sdk).table_status(&format!("missing-{id}")).await);
    assert_eq!(e.code.as_deref(), Some("ResourceNotFoundException"));
    let e = not_found(SdkEcs::new(&sdk).cluster_status(&format!("missing-{id}")).await);
    assert_eq!(e.code.as_deref(), Some("ClusterNotFoundException"));
    let e = not_found(
        SdkEfs::new(&sdk)
            .file_system_state(&format!("fs-00000000{}", &id[..9]))
            .await,
    );
    assert_eq!(e.code.as_deref(), Some("FileSystemNotFound"));
    let listener = format!(
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/missing/{}/{}",
        &id[..16],
        &id[16..32]
    );
    let e = not_found(SdkAlb::new(&sdk).describe_listener(&listener).await);
    assert_eq!(e.code.as_deref(), Some("ListenerNotFound"));
    let e = not_found(SdkRoute53::new(&sdk).hosted_zone("Z0MISSING0000000000").await);
    assert_eq!(e.code.as_deref(), Some("NoSuchHostedZone"));
}

#[tokio::test]
async fn health_check_finds_the_provisioned_deployment_healthy() {
    let aws = moto_env::local_aws();
    let config = Config::from_lookup(|k| aws.env.get(k).cloned()).expect("a complete configuration");
    let sdk = moto_env::sdk_config().await;
    let app = App::new(config, Arc::new(SystemClock), Managers::from_sdk(&sdk));
    let handled = app
        .handle(&json!({"action":"health-check","userId":"system"}), &Ctx::default())
        .await;
    let body = handled.envelope.body_json().expect("a JSON body");
    assert_eq!(handled.envelope.status_code, 200, "{body}");
    assert_eq!(body["status"], "healthy", "{body}");
    for check in ["dynamodb", "ecs", "efs", "alb", "route53", "secretsmanager"] {
        assert_eq!(body["checks"][check]["status"], "ok", "{check}: {body}");
    }
    assert_eq!(
        body["checks"]["dynamodb"]["tables"].as_object().map(|t| t.len()),
        Some(5),
        "{body}"
    );
}
