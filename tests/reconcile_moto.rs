//! `admin-reconcile` against moto: the leftovers the original left, seeded the way it left
//! them (through the AWS APIs, with no instance record), are listed by a dry run and removed
//! by `apply`; a live instance and the operator's record stay.
//!
//! Tests share one moto and never reset it, so the moto may also hold what earlier test
//! binaries left: this test judges only the names it made (its user ids and subdomains are
//! its own). The function's clock runs a day ahead of moto's, so that what the test seeds is
//! older than a create's lease.

mod moto_env;

use std::collections::BTreeSet;
use std::sync::Arc;

use aws_sdk_route53::types::{AliasTarget, Change, ChangeAction, ChangeBatch, ResourceRecordSet, RrType};
use foundry_lambda::app::{App, Ctx};
use foundry_lambda::clock::{Clock, ManualClock, SystemClock};
use foundry_lambda::config::Config;
use foundry_lambda::managers::Managers;
use serde_json::{json, Value};

const ADMIN: &str = "000000000000000001";

async fn app() -> App {
    let aws = moto_env::local_aws();
    let config = Config::from_lookup(|k| aws.env.get(k).cloned()).expect("the env file is a complete configuration");
    let sdk = moto_env::sdk_config().await;
    let clock = Arc::new(ManualClock::at(SystemClock.now() + 86_400));
    App::new(config, clock, Managers::from_sdk(&sdk))
}

async fn call(app: &App, event: Value) -> (u16, Value) {
    let handled = app.handle(&event, &Ctx::default()).await;
    (
        handled.envelope.status_code,
        handled.envelope.body_json().unwrap_or(Value::Null),
    )
}

fn tail(uid: &str) -> &str {
    &uid[uid.len() - 8..]
}

async fn alias(sdk: &aws_config::SdkConfig, name: &str) {
    let aws = moto_env::local_aws();
    let r53 = aws_sdk_route53::Client::new(sdk);
    let record = ResourceRecordSet::builder()
        .name(name)
        .r#type(RrType::A)
        .alias_target(
            AliasTarget::builder()
                .dns_name(aws.var("ALB_DNS_NAME"))
                .hosted_zone_id(aws.var("ALB_ZONE_ID"))
                .evaluate_target_health(false)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    r53.change_resource_record_sets()
        .hosted_zone_id(aws.var("ROUTE53_HOSTED_ZONE_ID"))
        .change_batch(
            ChangeBatch::builder()
                .changes(
                    Change::builder()
                        .action(ChangeAction::Upsert)
                        .resource_record_set(record)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("seed the DNS record");
}

/// (kind, name) of the orphans an answer lists, among `mine`.
fn listed(body: &Value, mine: &BTreeSet<(String, String)>, outcome: &str) -> BTreeSet<(String, String)> {
    body["orphans"]
        .as_array()
        .expect("orphans")
        .iter()
        .map(|o| {
            (
                (
                    o["kind"].as_str().unwrap().to_string(),
                    o["name"].as_str().unwrap().to_string(),
                ),
                o["outcome"].as_str().unwrap().to_string(),
            )
        })
        .filter(|(k, _)| mine.contains(k) || k.1.contains(tail_marker()))
        .inspect(|(k, o)| assert_eq!(o, outcome, "{k:?}"))
        .map(|(k, _)| k)
        .collect()
}

/// Every name this test makes carries this.
fn tail_marker() -> &'static str {
    static MARK: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    MARK.get_or_init(|| format!("rc{}", &moto_env::unique_user_id()[10..]))
}

#[tokio::test]
async fn the_originals_leftovers_are_listed_by_a_dry_run_and_removed_by_apply_and_nothing_else() {
    let aws = moto_env::local_aws();
    let sdk = moto_env::sdk_config().await;
    let app = app().await;
    let mark = tail_marker();
    let domain = aws.var("DOMAIN_NAME").to_string();

    // A live instance of this version, and the operator's www record.
    let live = moto_env::unique_user_id();
    let live_san = format!("{mark}l");
    let (code, body) = call(
        &app,
        json!({"action":"create","userId":live,"sanitizedUsername":live_san,"foundryUsername":"gm@example.com",
               "foundryPassword":"pw-Sup3r-S3cret","licenseType":"byol","allowLicenseSharing":false,"maxConcurrentUsers":1}),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    alias(&sdk, &format!("www.{domain}")).await;

    // 1. A create of the original that failed after the bucket (it writes its record last):
    //    the user's secret and bucket, no record.
    let a = moto_env::unique_user_id();
    let a_san = format!("{mark}a");
    let a_bucket = format!("foundry-{a_san}-{}", tail(&a));
    let sm = aws_sdk_secretsmanager::Client::new(&sdk);
    sm.create_secret()
        .name(format!("foundry-credentials-{a}"))
        .secret_string(r#"{"username":"u","password":"p","admin_key":"k"}"#)
        .send()
        .await
        .expect("seed secret");
    let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).build());
    s3.create_bucket().bucket(&a_bucket).send().await.expect("seed bucket");
    s3.put_object()
        .bucket(&a_bucket)
        .key("worlds/a.txt")
        .body(b"x".to_vec().into())
        .send()
        .await
        .expect("seed object");

    // 2. A destroy of the original that died after the IAM user, whose record an admin then
    //    deleted: the secret, every task-definition revision with the sidecar, the log
    //    groups (the sidecar's too).
    let b = moto_env::unique_user_id();
    sm.create_secret()
        .name(format!("foundry-credentials-{b}"))
        .secret_string("{}")
        .send()
        .await
        .expect("seed secret");
    let ecs = aws_sdk_ecs::Client::new(&sdk);
    for _ in 0..2 {
        let container = |name: &str, group: &str| {
            aws_sdk_ecs::types::ContainerDefinition::builder()
                .name(name)
                .image("alpine:latest")
                .memory(512)
                .log_configuration(
                    aws_sdk_ecs::types::LogConfiguration::builder()
                        .log_driver(aws_sdk_ecs::types::LogDriver::Awslogs)
                        .options("awslogs-group", group)
                        .options("awslogs-region", "us-east-1")
                        .options("awslogs-stream-prefix", name)
                        .build()
                        .unwrap(),
                )
                .build()
        };
        ecs.register_task_definition()
            .family(format!("foundry-{b}"))
            .container_definitions(container("aws-config-creator", &format!("/ecs/foundry-{b}")))
            .container_definitions(container("foundry", &format!("/aws/ecs/foundry-{b}")))
            .send()
            .await
            .expect("seed task definition");
    }
    let logs = aws_sdk_cloudwatchlogs::Client::new(&sdk);
    for group in [format!("/aws/ecs/foundry-{b}"), format!("/ecs/foundry-{b}")] {
        logs.create_log_group()
            .log_group_name(group)
            .send()
            .await
            .expect("seed log group");
    }

    // 3. A create that failed after the IAM user and the target group, with the subdomain's
    //    record already made (the original's order put DNS first).
    let c = moto_env::unique_user_id();
    let c_san = format!("{mark}c");
    let c_user = format!("foundry-{c_san}-{}", tail(&c));
    let iam = aws_sdk_iam::Client::new(&sdk);
    iam.create_user()
        .user_name(&c_user)
        .path("/foundry/")
        .send()
        .await
        .expect("seed user");
    iam.create_access_key()
        .user_name(&c_user)
        .send()
        .await
        .expect("seed key");
    iam.put_user_policy()
        .user_name(&c_user)
        .policy_name("FoundryS3BucketAccess")
        .policy_document(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#,
        )
        .send()
        .await
        .expect("seed policy");
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&sdk);
    elb.create_target_group()
        .name(format!("foundry-{c_san}"))
        .protocol(aws_sdk_elasticloadbalancingv2::types::ProtocolEnum::Http)
        .port(30000)
        .vpc_id(aws.var("VPC_ID"))
        .target_type(aws_sdk_elasticloadbalancingv2::types::TargetTypeEnum::Ip)
        .send()
        .await
        .expect("seed target group");
    alias(&sdk, &format!("{c_san}.{domain}")).await;

    let mine: BTreeSet<(String, String)> = [
        ("Secret", format!("foundry-credentials-{a}")),
        ("S3Bucket", a_bucket.clone()),
        ("Secret", format!("foundry-credentials-{b}")),
        ("TaskDefinition", format!("foundry-{b}")),
        ("LogGroup", format!("/aws/ecs/foundry-{b}")),
        ("LogGroup", format!("/ecs/foundry-{b}")),
        ("IamUser", c_user.clone()),
        ("TargetGroup", format!("foundry-{c_san}")),
        ("DnsRecord", format!("{c_san}.{domain}")),
    ]
    .into_iter()
    .map(|(k, n)| (k.to_string(), n))
    .collect();
    let live_names: BTreeSet<(String, String)> = [
        ("Secret", format!("foundry-credentials-{live}")),
        ("S3Bucket", format!("foundry-{live_san}-{}", tail(&live))),
        ("IamUser", format!("foundry-{live_san}-{}", tail(&live))),
        ("TargetGroup", format!("foundry-{live_san}")),
        ("DnsRecord", format!("{live_san}.{domain}")),
        ("LogGroup", format!("/aws/ecs/foundry-{live}")),
    ]
    .into_iter()
    .map(|(k, n)| (k.to_string(), n))
    .collect();

    let (code, dry) = call(&app, json!({"action":"admin-reconcile","userId":ADMIN})).await;
    assert_eq!(code, 200, "{dry}");
    assert_eq!(dry["complete"], true, "{dry:#}");
    assert_eq!(listed(&dry, &mine, "orphan"), mine, "{dry:#}");
    let orphans = dry["orphans"].as_array().unwrap();
    assert!(!orphans
        .iter()
        .any(|o| o["name"].as_str().is_some_and(|n| n.starts_with("www."))));
    let user = orphans.iter().find(|o| o["name"] == c_user.as_str()).unwrap();
    assert_eq!(user["accessKeys"].as_array().map(Vec::len), Some(1), "{user}");
    let bucket = orphans.iter().find(|o| o["name"] == a_bucket.as_str()).unwrap();
    assert!(bucket["ageSeconds"].as_i64().is_some_and(|a| a >= 86_000), "{bucket}");

    let (code, applied) = call(&app, json!({"action":"admin-reconcile","userId":ADMIN,"apply":true})).await;
    assert_eq!(code, 200, "{applied}");
    assert_eq!(listed(&applied, &mine, "deleted"), mine, "{applied:#}");

    // Gone from moto.
    let buckets: Vec<String> = s3
        .list_buckets()
        .send()
        .await
        .unwrap()
        .buckets()
        .iter()
        .filter_map(|b| b.name().map(str::to_string))
        .collect();
    assert!(!buckets.contains(&a_bucket));
    assert!(iam.get_user().user_name(&c_user).send().await.is_err());
    for uid in [&a, &b] {
        assert!(sm
            .describe_secret()
            .secret_id(format!("foundry-credentials-{uid}"))
            .send()
            .await
            .map(|s| s.deleted_date().is_some())
            .unwrap_or(true));
    }
    let groups = logs
        .describe_log_groups()
        .log_group_name_prefix(format!("/ecs/foundry-{b}"))
        .send()
        .await
        .unwrap();
    assert!(groups.log_groups().is_empty());
    let active = ecs
        .list_task_definitions()
        .family_prefix(format!("foundry-{b}"))
        .status(aws_sdk_ecs::types::TaskDefinitionStatus::Active)
        .send()
        .await
        .unwrap();
    assert!(active.task_definition_arns().is_empty(), "{active:?}");
    let tgs = elb.describe_target_groups().send().await.unwrap();
    let tg_names: Vec<&str> = tgs
        .target_groups()
        .iter()
        .filter_map(|t| t.target_group_name())
        .collect();
    assert!(!tg_names.contains(&format!("foundry-{c_san}").as_str()));

    // Everything of the live instance, and the operator's record, is still there.
    assert!(tg_names.contains(&format!("foundry-{live_san}").as_str()));
    assert!(buckets.contains(&format!("foundry-{live_san}-{}", tail(&live))));
    assert!(iam
        .get_user()
        .user_name(format!("foundry-{live_san}-{}", tail(&live)))
        .send()
        .await
        .is_ok());
    let r53 = aws_sdk_route53::Client::new(&sdk);
    let records = r53
        .list_resource_record_sets()
        .hosted_zone_id(aws.var("ROUTE53_HOSTED_ZONE_ID"))
        .send()
        .await
        .unwrap();
    let names: Vec<String> = records
        .resource_record_sets()
        .iter()
        .map(|r| r.name().trim_end_matches('.').to_string())
        .collect();
    assert!(names.contains(&format!("www.{domain}")), "{names:?}");
    assert!(names.contains(&format!("{live_san}.{domain}")), "{names:?}");
    assert!(!names.contains(&format!("{c_san}.{domain}")), "{names:?}");
    assert!(!listed(&dry, &live_names, "orphan")
        .iter()
        .any(|k| live_names.contains(k)));
    let (code, status) = call(&app, json!({"action":"status","userId":live})).await;
    assert_eq!(code, 200, "{status}");

    // A second dry run finds none of them any more.
    let (_, again) = call(&app, json!({"action":"admin-reconcile","userId":ADMIN})).await;
    assert_eq!(listed(&again, &mine, "orphan"), BTreeSet::new(), "{again:#}");
}
