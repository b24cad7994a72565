//! The lifecycle end to end through the handler, against moto: create → start (the task
//! held PENDING past the deadline, then driven to RUNNING) → status → stop → start →
//! destroy, then an enumeration of moto proving that no per-user resource is left.

mod moto_env;

use std::sync::Arc;

use foundry_lambda::app::{App, Ctx};
use foundry_lambda::clock::{Clock, SystemClock};
use foundry_lambda::config::Config;
use foundry_lambda::error::AwsError;
use foundry_lambda::managers::iam::{AccessKey, Iam, KnownParts, SdkIam};
use foundry_lambda::managers::Managers;
use serde_json::{json, Value};

async fn app() -> App {
    let aws = moto_env::local_aws();
    let config = Config::from_lookup(|k| aws.env.get(k).cloned()).expect("the env file is a complete configuration");
    let sdk = moto_env::sdk_config().await;
    App::new(config, Arc::new(SystemClock), Managers::from_sdk(&sdk))
}

async fn call(app: &App, event: Value, ctx: &Ctx) -> (u16, Value) {
    let handled = app.handle(&event, ctx).await;
    (
        handled.envelope.status_code,
        handled.envelope.body_json().unwrap_or(Value::Null),
    )
}

fn ev(action: &str, uid: &str) -> Value {
    json!({"action": action, "userId": uid})
}

/// Every per-user resource of `uid`/`san` still in moto.
async fn leftovers(uid: &str, san: &str) -> Vec<String> {
    let aws = moto_env::local_aws();
    let sdk = moto_env::sdk_config().await;
    let mut left = Vec::new();
    let bucket = format!("foundry-{san}-{}", &uid[uid.len() - 8..]);

    let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).build());
    let buckets = s3.list_buckets().send().await.expect("ListBuckets");
    if buckets.buckets().iter().any(|b| b.name() == Some(bucket.as_str())) {
        left.push(format!("bucket {bucket}"));
    }
    let iam = aws_sdk_iam::Client::new(&sdk);
    if iam
        .get_user()
        .user_name(bucket.clone()) // the IAM user has the bucket's name (san is lower case)
        .send()
        .await
        .is_ok()
    {
        left.push("IAM user".into());
    }
    let sm = aws_sdk_secretsmanager::Client::new(&sdk);
    if sm
        .describe_secret()
        .secret_id(format!("foundry-credentials-{uid}"))
        .send()
        .await
        .is_ok()
    {
        left.push("secret".into());
    }
    let efs = aws_sdk_efs::Client::new(&sdk);
    let aps = efs
        .describe_access_points()
        .file_system_id(aws.var("FILE_SYSTEM_ID"))
        .send()
        .await
        .expect("DescribeAccessPoints");
    for ap in aps.access_points() {
        if ap.tags().iter().any(|t| t.key() == "UserId" && t.value() == uid) {
            left.push(format!("access point {:?}", ap.access_point_id()));
        }
    }
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&sdk);
    if let Ok(tgs) = elb
        .describe_target_groups()
        .names(format!("foundry-{san}"))
        .send()
        .await
    {
        if !tgs.target_groups().is_empty() {
            left.push("target group".into());
        }
    }
    let host = format!("{san}.{}", aws.var("DOMAIN_NAME"));
    let rules = elb
        .describe_rules()
        .listener_arn(aws.var("ALB_HTTPS_LISTENER_ARN"))
        .send()
        .await
        .expect("DescribeRules");
    for r in rules.rules() {
        let text = format!("{:?}", r.conditions());
        if text.contains(&host) {
            left.push(format!("listener rule {:?}", r.rule_arn()));
        }
    }
    let r53 = aws_sdk_route53::Client::new(&sdk);
    let records = r53
        .list_resource_record_sets()
        .hosted_zone_id(aws.var("ROUTE53_HOSTED_ZONE_ID"))
        .send()
        .await
        .expect("ListResourceRecordSets");
    for r in records.resource_record_sets() {
        if r.name().trim_end_matches('.') == host {
            left.push(format!("record {}", r.name()));
        }
    }
    let ecs = aws_sdk_ecs::Client::new(&sdk);
    let defs = ecs
        .list_task_definitions()
        .family_prefix(format!("foundry-{uid}"))
        .status(aws_sdk_ecs::types::TaskDefinitionStatus::Active)
        .send()
        .await
        .expect("ListTaskDefinitions");
    for d in defs.task_definition_arns() {
        left.push(format!("active task definition {d}"));
    }
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let item = ddb
        .get_item()
        .table_name(aws.var("INSTANCE_TABLE_NAME"))
        .key("userId", aws_sdk_dynamodb::types::AttributeValue::S(uid.to_string()))
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem");
    if item.item().is_some() {
        left.push("instance item".into());
    }
    left
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_start_status_stop_start_destroy_leaves_nothing_in_aws() {
    let app = app().await;
    let uid = moto_env::unique_user_id();
    let san = format!("e2e{}", &uid[uid.len() - 10..]);
    let family = format!("foundry-{uid}");
    let no_deadline = Ctx::default();

    let (code, body) = call(
        &app,
        json!({"action":"create","userId":uid,"sanitizedUsername":san,"foundryUsername":"gm@example.com",
               "foundryPassword":"moto-pw-123","licenseType":"byol","allowLicenseSharing":true}),
        &no_deadline,
    )
    .await;
    assert_eq!(code, 200, "create: {body}");
    assert_eq!(body["status"], "created");
    assert!(body["accessPointId"].as_str().unwrap().starts_with("fsap-"));

    // Start: the task is held before RUNNING, so the start runs out of time and answers
    // `starting`; then the task is driven to RUNNING and `status` finishes the routing.
    moto_env::hold_ecs_tasks(&family);
    let ctx = Ctx {
        request_id: "e2e-start-1".into(),
        deadline_ms: Some(SystemClock.now_ms() + 22_000),
    };
    let (code, body) = call(&app, ev("start", &uid), &ctx).await;
    assert_eq!(code, 200, "start: {body}");
    assert_eq!(body["status"], "starting", "{body}");
    let task = body["taskArn"]
        .as_str()
        .expect("the task ARN is known at once")
        .to_string();
    let (_, s) = call(&app, ev("status", &uid), &no_deadline).await;
    assert_eq!(s["status"], "starting", "{s}");

    moto_env::set_task_status(&task, "RUNNING", None);
    let (code, s) = call(&app, ev("status", &uid), &no_deadline).await;
    assert_eq!(code, 200, "{s}");
    assert_eq!(s["status"], "running", "{s}");
    assert_eq!(
        s["url"],
        format!("https://{san}.{}", moto_env::local_aws().var("DOMAIN_NAME"))
    );

    let (code, body) = call(&app, ev("stop", &uid), &no_deadline).await;
    assert_eq!((code, body["status"].as_str()), (200, Some("stopped")), "{body}");

    moto_env::set_ecs_transition(Some(&family), r#"{"progression":"immediate"}"#);
    let (code, body) = call(&app, ev("start", &uid), &no_deadline).await;
    assert_eq!(code, 200, "second start: {body}");
    assert_eq!(body["status"], "running", "{body}");

    // The user uploaded assets: the bucket answers BucketNotEmpty and is emptied first.
    let sdk = moto_env::sdk_config().await;
    let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).build());
    let bucket = format!("foundry-{san}-{}", &uid[uid.len() - 8..]);
    for key in ["worlds/map.webp", "worlds/map.webp", "tokens/hero.png"] {
        s3.put_object()
            .bucket(&bucket)
            .key(key)
            .body(aws_sdk_s3::primitives::ByteStream::from_static(b"asset"))
            .send()
            .await
            .expect("PutObject");
    }

    let (code, body) = call(&app, ev("destroy", &uid), &no_deadline).await;
    assert_eq!(code, 200, "destroy: {body}");
    assert_eq!(body["message"], "Instance destroyed successfully");
    moto_env::unset_ecs_transition(Some(&family));

    let left = leftovers(&uid, &san).await;
    assert!(left.is_empty(), "left in AWS after destroy: {left:?}");

    // The user can register again with the same name.
    let (code, body) = call(
        &app,
        json!({"action":"create","userId":uid,"sanitizedUsername":san,"foundryUsername":"gm@example.com",
               "foundryPassword":"moto-pw-123"}),
        &no_deadline,
    )
    .await;
    assert_eq!(code, 200, "re-create: {body}");
    let (code, body) = call(&app, ev("destroy", &uid), &no_deadline).await;
    assert_eq!(code, 200, "second destroy: {body}");
    assert!(leftovers(&uid, &san).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_of_an_unknown_user_is_the_not_found_envelope() {
    let app = app().await;
    let handled = app
        .handle(&ev("status", &moto_env::unique_user_id()), &Ctx::default())
        .await;
    assert_eq!(
        serde_json::to_string(&handled.envelope).unwrap(),
        r#"{"statusCode":500,"headers":{"Content-Type":"application/json"},"body":"{\"error\":\"Internal error: Instance not found\"}"}"#
    );
}

/// The IAM of an invocation that dies (its process crashes) right after the IAM user
/// exists: every other call goes to moto.
struct DiesAfterCreateUser(SdkIam);

#[async_trait::async_trait]
impl Iam for DiesAfterCreateUser {
    async fn create_user(&self, user_name: &str, path: &str, tags: &[(String, String)]) -> Result<(), AwsError> {
        self.0.create_user(user_name, path, tags).await
    }
    async fn put_user_policy(&self, _: &str, _: &str, _: &str) -> Result<(), AwsError> {
        panic!("the invocation died")
    }
    async fn create_access_key(&self, user_name: &str) -> Result<AccessKey, AwsError> {
        self.0.create_access_key(user_name).await
    }
    async fn delete_access_keys(&self, user_name: &str) -> Result<(), AwsError> {
        self.0.delete_access_keys(user_name).await
    }
    async fn delete_user(&self, user_name: &str, known: &KnownParts<'_>) -> Result<(), AwsError> {
        self.0.delete_user(user_name, known).await
    }
    async fn list_users_page(
        &self,
        path_prefix: &str,
        marker: Option<&str>,
    ) -> Result<foundry_lambda::managers::Page<foundry_lambda::managers::Listed>, AwsError> {
        self.0.list_users_page(path_prefix, marker).await
    }
    async fn access_key_ids(&self, user_name: &str) -> Result<Vec<String>, AwsError> {
        self.0.access_key_ids(user_name).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_that_died_after_making_the_bucket_leaks_nothing_once_the_user_destroys() {
    let aws = moto_env::local_aws();
    let config = Config::from_lookup(|k| aws.env.get(k).cloned()).expect("complete configuration");
    let sdk = moto_env::sdk_config().await;
    let mut managers = Managers::from_sdk(&sdk);
    managers.iam = Arc::new(DiesAfterCreateUser(SdkIam::new(&sdk)));
    let dying = App::new(config, Arc::new(SystemClock), managers);
    let app = app().await;
    let uid = moto_env::unique_user_id();
    let san = format!("leak{}", &uid[uid.len() - 10..]);

    // A short deadline gives the dead create a short lease.
    let ctx = Ctx {
        request_id: "dies".into(),
        deadline_ms: Some(SystemClock.now_ms() + 1_000),
    };
    let event = json!({"action":"create","userId":uid,"sanitizedUsername":san,
                       "foundryUsername":"gm@example.com","foundryPassword":"moto-pw-123"});
    let died = tokio::spawn(async move { call(&dying, event, &ctx).await }).await;
    assert!(died.is_err(), "the create must have died: {died:?}");
    let left = leftovers(&uid, &san).await;
    assert!(
        left.iter().any(|l| l.starts_with("bucket")) && left.contains(&"IAM user".to_string()),
        "{left:?}"
    );

    // The lease ends at the deadline's second + 1 and counts as abandoned once the clock's
    // whole second is past it: at most 3 s after the create began.
    tokio::time::sleep(std::time::Duration::from_millis(3_500)).await;
    let (code, body) = call(&app, ev("destroy", &uid), &Ctx::default()).await;
    assert_eq!(code, 200, "destroy: {body}");
    let left = leftovers(&uid, &san).await;
    assert!(left.is_empty(), "left in AWS after destroy: {left:?}");
}

/// The running (desired RUNNING) tasks of `family` in moto.
async fn running_tasks(family: &str) -> Vec<String> {
    let aws = moto_env::local_aws();
    let ecs = aws_sdk_ecs::Client::new(&moto_env::sdk_config().await);
    let out = ecs
        .list_tasks()
        .cluster(aws.var("CLUSTER_NAME"))
        .family(family)
        .send()
        .await
        .expect("ListTasks");
    out.task_arns().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_from_stopping_with_a_live_task_leaves_one_task() {
    let app = app().await;
    let uid = moto_env::unique_user_id();
    let san = format!("one{}", &uid[uid.len() - 10..]);
    let family = format!("foundry-{uid}");
    let ctx = Ctx::default();
    let create = json!({"action":"create","userId":uid,"sanitizedUsername":san,
                        "foundryUsername":"gm@example.com","foundryPassword":"moto-pw-123"});
    assert_eq!(call(&app, create, &ctx).await.0, 200);
    moto_env::set_ecs_transition(Some(&family), r#"{"progression":"immediate"}"#);
    let (code, body) = call(&app, ev("start", &uid), &ctx).await;
    assert_eq!((code, body["status"].as_str()), (200, Some("running")), "{body}");

    // The original wrote `stopping` while the task still ran.
    let ddb = aws_sdk_dynamodb::Client::new(&moto_env::sdk_config().await);
    ddb.update_item()
        .table_name(moto_env::local_aws().var("INSTANCE_TABLE_NAME"))
        .key("userId", aws_sdk_dynamodb::types::AttributeValue::S(uid.clone()))
        .update_expression("SET #s = :s")
        .expression_attribute_names("#s", "status")
        .expression_attribute_values(":s", aws_sdk_dynamodb::types::AttributeValue::S("stopping".into()))
        .send()
        .await
        .expect("UpdateItem");
    let (code, body) = call(&app, ev("start", &uid), &ctx).await;
    assert_eq!((code, body["status"].as_str()), (200, Some("running")), "{body}");
    assert_eq!(running_tasks(&family).await.len(), 1, "one user, one task");

    assert_eq!(call(&app, ev("destroy", &uid), &ctx).await.0, 200);
    moto_env::unset_ecs_transition(Some(&family));
    assert!(leftovers(&uid, &san).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroy_converges_after_the_alias_target_was_changed_behind_our_back() {
    let app = app().await;
    let uid = moto_env::unique_user_id();
    let san = format!("dns{}", &uid[uid.len() - 10..]);
    let ctx = Ctx::default();
    let create = json!({"action":"create","userId":uid,"sanitizedUsername":san,
                        "foundryUsername":"gm@example.com","foundryPassword":"moto-pw-123"});
    assert_eq!(call(&app, create, &ctx).await.0, 200);
    let host = format!("{san}.{}", moto_env::local_aws().var("DOMAIN_NAME"));
    moto_env::move_alias_target(&host, "dualstack.replacement-alb-1.us-east-1.elb.amazonaws.com").await;
    let (code, body) = call(&app, ev("destroy", &uid), &ctx).await;
    assert_eq!(code, 200, "{body}");
    assert!(leftovers(&uid, &san).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_with_a_reserved_or_foreign_name_leaves_the_existing_record_untouched() {
    use foundry_lambda::managers::route53::{Route53, SdkRoute53};
    let app = app().await;
    let aws = moto_env::local_aws();
    let uid = moto_env::unique_user_id();
    let ctx = Ctx::default();
    let create = |san: &str| {
        json!({"action":"create","userId":uid,"sanitizedUsername":san,
               "foundryUsername":"gm@example.com","foundryPassword":"moto-pw-123"})
    };
    let (code, body) = call(&app, create("www"), &ctx).await;
    assert_eq!(code, 500);
    assert_eq!(
        body["error"],
        "Internal error: The subdomain 'www' is reserved; choose another username"
    );

    let san = format!("shop{}", &uid[uid.len() - 10..]);
    let host = format!("{san}.{}", aws.var("DOMAIN_NAME"));
    moto_env::move_alias_target(&host, "shop-frontend.example.net").await;
    let (code, body) = call(&app, create(&san), &ctx).await;
    assert_eq!(code, 500);
    assert_eq!(
        body["error"],
        format!(
            "Internal error: The subdomain '{san}' is already in use by another DNS record; choose another username"
        )
    );
    let r53 = SdkRoute53::new(&moto_env::sdk_config().await);
    let record = r53
        .get_alias(aws.var("ROUTE53_HOSTED_ZONE_ID"), &host)
        .await
        .expect("ListResourceRecordSets")
        .expect("the record is still there");
    assert_eq!(record.target_dns_name, "shop-frontend.example.net");
    let left: Vec<_> = leftovers(&uid, &san)
        .await
        .into_iter()
        .filter(|l| !l.starts_with("record "))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_shutdown_of_an_expired_instance_deregisters_deletes_stops_and_books() {
    use aws_sdk_dynamodb::types::AttributeValue as Av;
    let app = app().await;
    let aws = moto_env::local_aws();
    let uid = moto_env::unique_user_id();
    let san = format!("auto{}", &uid[uid.len() - 10..]);
    let family = format!("foundry-{uid}");
    let ctx = Ctx::default();
    let create = json!({"action":"create","userId":uid,"sanitizedUsername":san,
                        "foundryUsername":"gm@example.com","foundryPassword":"moto-pw-123"});
    assert_eq!(call(&app, create, &ctx).await.0, 200);
    moto_env::set_ecs_transition(Some(&family), r#"{"progression":"immediate"}"#);
    let (code, body) = call(&app, ev("start", &uid), &ctx).await;
    assert_eq!((code, body["status"].as_str()), (200, Some("running")), "{body}");

    // The run began two hours ago and its deadline has passed.
    let now = SystemClock.now();
    let sdk = moto_env::sdk_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    ddb.update_item()
        .table_name(aws.var("INSTANCE_TABLE_NAME"))
        .key("userId", Av::S(uid.clone()))
        .update_expression("SET startedAt = :s, autoShutdownAt = :a")
        .expression_attribute_values(":s", Av::N((now - 7_200).to_string()))
        .expression_attribute_values(":a", Av::N((now - 60).to_string()))
        .send()
        .await
        .expect("UpdateItem");
    let (code, body) = call(&app, json!({"action":"auto-shutdown-check","userId":"system"}), &ctx).await;
    assert_eq!(code, 200, "{body}");
    let mine: Vec<&Value> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["userId"] == uid.as_str())
        .collect();
    assert_eq!(mine.len(), 1, "{body}");
    assert_eq!(mine[0]["success"], true, "{body}");

    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&sdk);
    let tg = elb
        .describe_target_groups()
        .names(format!("foundry-{san}"))
        .send()
        .await
        .expect("DescribeTargetGroups");
    let tg_arn = tg.target_groups()[0].target_group_arn().unwrap().to_string();
    let health = elb
        .describe_target_health()
        .target_group_arn(&tg_arn)
        .send()
        .await
        .expect("DescribeTargetHealth");
    assert!(
        health.target_health_descriptions().is_empty(),
        "the target is deregistered"
    );
    let host = format!("{san}.{}", aws.var("DOMAIN_NAME"));
    let rules = elb
        .describe_rules()
        .listener_arn(aws.var("ALB_HTTPS_LISTENER_ARN"))
        .send()
        .await
        .expect("DescribeRules");
    assert!(
        !rules
            .rules()
            .iter()
            .any(|r| format!("{:?}", r.conditions()).contains(&host)),
        "the rule is deleted"
    );
    assert!(running_tasks(&family).await.is_empty(), "the task is stopped");
    let usage = ddb
        .scan()
        .table_name(aws.var("USAGE_TABLE_NAME"))
        .send()
        .await
        .expect("Scan");
    let hours: f64 = usage
        .items()
        .iter()
        .filter(|i| matches!(i.get("usageKey"), Some(Av::S(k)) if k.starts_with(&format!("{uid}#"))))
        .filter_map(|i| {
            i.get("hoursThisMonth")
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse::<f64>().ok())
        })
        .sum();
    assert!(hours >= 2.0 - 1e-6, "its hours are booked: {hours}");

    assert_eq!(call(&app, ev("destroy", &uid), &ctx).await.0, 200);
    moto_env::unset_ecs_transition(Some(&family));
}
