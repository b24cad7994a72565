//! Wire behaviour of the ECS, EFS, S3 and IAM adapters, against moto.
//!
//! Every test uses fresh names (moto is shared by all tests and never reset).

mod moto_env;

use std::time::{Duration, Instant};

use foundry_lambda::error::{AwsError, AwsErrorKind};
use foundry_lambda::managers::ecs::{
    ContainerDef, ContainerOverride, Ecs, EfsVolume, LogConfig, MountPoint, RunTask, SdkEcs, TaskDefinition, TaskInfo,
};
use foundry_lambda::managers::efs::{AccessPointSpec, Efs, SdkEfs};
use foundry_lambda::managers::iam::{Iam, KnownParts, SdkIam};
use foundry_lambda::managers::s3::{SdkS3, S3};

fn uid() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn expect_kind<T: std::fmt::Debug>(result: Result<T, AwsError>, kind: AwsErrorKind) -> AwsError {
    match result {
        Ok(v) => panic!("expected a {kind:?} error, got Ok({v:?})"),
        Err(e) => {
            assert_eq!(e.kind, kind, "unexpected error: {e} ({e:?})");
            e
        }
    }
}

/// A plain S3 client for checking what the adapter did (path-style: moto on an IP).
async fn s3_client() -> aws_sdk_s3::Client {
    let sdk = moto_env::sdk_config().await;
    let conf = aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).build();
    aws_sdk_s3::Client::from_conf(conf)
}

// ---------------------------------------------------------------------------------------------
// S3

#[tokio::test]
async fn s3_ensure_bucket_is_idempotent_and_applies_the_public_read_configuration() {
    let sdk = moto_env::sdk_config().await;
    let s3 = SdkS3::new(&sdk);
    let raw = s3_client().await;
    let bucket = format!("foundry-test-{}", &uid()[..12]);

    s3.ensure_bucket(&bucket, "us-east-1")
        .await
        .expect("first ensure_bucket");
    s3.ensure_bucket(&bucket, "us-east-1")
        .await
        .expect("second ensure_bucket");

    // Versioning: moto 5.2.5's GetBucketVersioning answer has a root element the SDK rejects
    // (`GetBucketVersioningResponse`), so it is proven by two versions of one key instead.
    for body in ["one", "two"] {
        raw.put_object()
            .bucket(&bucket)
            .key("k")
            .body(aws_sdk_s3::primitives::ByteStream::from_static(body.as_bytes()))
            .send()
            .await
            .unwrap();
    }
    let listed = raw.list_object_versions().bucket(&bucket).send().await.unwrap();
    assert_eq!(listed.versions().len(), 2, "versioning is not enabled");
    let policy = raw.get_bucket_policy().bucket(&bucket).send().await.unwrap();
    let policy: serde_json::Value = serde_json::from_str(policy.policy().unwrap()).unwrap();
    let statement = &policy["Statement"][0];
    assert_eq!(statement["Sid"], "PublicReadGetObject");
    assert_eq!(statement["Action"], "s3:GetObject");
    assert_eq!(statement["Resource"], format!("arn:aws:s3:::{bucket}/*"));
    let cors = raw.get_bucket_cors().bucket(&bucket).send().await.unwrap();
    let rule = &cors.cors_rules()[0];
    assert_eq!(rule.allowed_methods(), &["GET", "POST", "HEAD"]);
    assert_eq!(rule.allowed_origins(), &["*"]);
    assert_eq!(rule.max_age_seconds(), Some(3000));
    let ownership = raw
        .get_bucket_ownership_controls()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    assert_eq!(
        ownership.ownership_controls().unwrap().rules()[0].object_ownership(),
        &aws_sdk_s3::types::ObjectOwnership::BucketOwnerPreferred
    );
    let block = raw.get_public_access_block().bucket(&bucket).send().await.unwrap();
    let block = block.public_access_block_configuration().unwrap();
    assert_eq!(block.block_public_acls(), Some(false));
    assert_eq!(block.restrict_public_buckets(), Some(false));

    assert!(s3.empty_bucket_page(&bucket).await.expect("empty"), "an empty bucket");
    s3.delete_bucket(&bucket).await.expect("delete_bucket");
}

/// Empties the bucket page by page → how many pages it took, then deletes it.
async fn empty_and_delete(s3: &SdkS3, bucket: &str) -> usize {
    let mut pages = 1;
    while !s3.empty_bucket_page(bucket).await.expect("empty_bucket_page") {
        pages += 1;
        assert!(pages < 10, "the bucket never became empty");
    }
    s3.delete_bucket(bucket).await.expect("delete_bucket");
    pages
}

#[tokio::test]
async fn s3_delete_bucket_removes_every_version_and_delete_marker_then_the_bucket() {
    let sdk = moto_env::sdk_config().await;
    let s3 = SdkS3::new(&sdk);
    let raw = s3_client().await;
    let bucket = format!("foundry-test-{}", &uid()[..12]);
    s3.ensure_bucket(&bucket, "us-east-1").await.expect("ensure_bucket");

    for (key, body) in [("a.txt", "one"), ("a.txt", "two"), ("dir/b.png", "three")] {
        raw.put_object()
            .bucket(&bucket)
            .key(key)
            .body(aws_sdk_s3::primitives::ByteStream::from_static(body.as_bytes()))
            .send()
            .await
            .unwrap();
    }
    // A delete marker on top of a versioned key.
    raw.delete_object()
        .bucket(&bucket)
        .key("dir/b.png")
        .send()
        .await
        .unwrap();
    let listed = raw.list_object_versions().bucket(&bucket).send().await.unwrap();
    assert_eq!(listed.versions().len(), 3);
    assert_eq!(listed.delete_markers().len(), 1);

    let err = expect_kind(s3.delete_bucket(&bucket).await, AwsErrorKind::NotEmpty);
    assert_eq!(err.code.as_deref(), Some("BucketNotEmpty"));
    assert_eq!(empty_and_delete(&s3, &bucket).await, 1);

    let head = raw.head_bucket().bucket(&bucket).send().await;
    assert!(
        head.as_ref()
            .err()
            .and_then(|e| e.as_service_error())
            .is_some_and(|e| e.is_not_found()),
        "bucket still there: {head:?}"
    );
}

#[tokio::test]
async fn s3_delete_bucket_pages_through_more_than_one_listing_and_batch() {
    use futures::StreamExt;

    let sdk = moto_env::sdk_config().await;
    let s3 = SdkS3::new(&sdk);
    let raw = s3_client().await;
    let bucket = format!("foundry-test-{}", &uid()[..12]);
    s3.ensure_bucket(&bucket, "us-east-1").await.expect("ensure_bucket");

    // 1,010 versions: more than one ListObjectVersions page and one DeleteObjects batch.
    let puts = futures::stream::iter(0..1010).map(|i| {
        let raw = raw.clone();
        let bucket = bucket.clone();
        async move {
            raw.put_object()
                .bucket(&bucket)
                .key(format!("k{}", i % 505))
                .body(aws_sdk_s3::primitives::ByteStream::from_static(b"x"))
                .send()
                .await
                .map(|_| ())
        }
    });
    let results: Vec<_> = puts.buffer_unordered(16).collect().await;
    assert!(results.iter().all(Result::is_ok), "a put failed");

    assert_eq!(empty_and_delete(&s3, &bucket).await, 2, "two listing pages");
    assert!(
        raw.head_bucket().bucket(&bucket).send().await.is_err(),
        "bucket still there"
    );
}

#[tokio::test]
async fn s3_delete_bucket_on_a_missing_bucket_is_not_found() {
    let s3 = SdkS3::new(&moto_env::sdk_config().await);
    let bucket = format!("foundry-missing-{}", &uid()[..12]);
    let err = expect_kind(s3.delete_bucket(&bucket).await, AwsErrorKind::NotFound);
    assert_eq!(err.service, "s3");
    assert_eq!(err.code.as_deref(), Some("NoSuchBucket"));
}

// ---------------------------------------------------------------------------------------------
// IAM

#[tokio::test]
async fn iam_user_lifecycle_create_policy_key_and_delete_everything() {
    let sdk = moto_env::sdk_config().await;
    let iam = SdkIam::new(&sdk);
    let raw = aws_sdk_iam::Client::new(&sdk);
    let user = format!("foundry-Test-{}", &uid()[..12]);
    let tags = vec![
        ("UserId".to_string(), "u1".to_string()),
        ("Application".to_string(), "FoundryVTT".to_string()),
    ];

    iam.create_user(&user, "/foundry/", &tags).await.expect("create_user");
    let err = expect_kind(
        iam.create_user(&user, "/foundry/", &tags).await,
        AwsErrorKind::AlreadyExists,
    );
    assert_eq!(err.code.as_deref(), Some("EntityAlreadyExists"));

    let got = raw.get_user().user_name(&user).send().await.unwrap();
    let got = got.user().unwrap();
    assert_eq!(got.path(), "/foundry/");
    let mut got_tags: Vec<(&str, &str)> = got.tags().iter().map(|t| (t.key(), t.value())).collect();
    got_tags.sort();
    assert_eq!(got_tags, [("Application", "FoundryVTT"), ("UserId", "u1")]);

    let document = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::b/*"]}]
    })
    .to_string();
    iam.put_user_policy(&user, "FoundryS3BucketAccess", &document)
        .await
        .expect("put_user_policy");
    let key = iam.create_access_key(&user).await.expect("create_access_key");
    assert!(!key.access_key_id.is_empty());
    assert!(!key.secret_access_key.is_empty());
    assert_eq!(format!("{:?}", key.secret_access_key), "[REDACTED]");
    iam.create_access_key(&user).await.expect("second access key");
    let keys = raw.list_access_keys().user_name(&user).send().await.unwrap();
    assert_eq!(keys.access_key_metadata().len(), 2);

    // A policy someone else put: DeleteUser answers DeleteConflict until it is gone too.
    iam.put_user_policy(&user, "AddedByAnOperator", &document)
        .await
        .expect("put_user_policy");

    let known = KnownParts {
        access_key_id: Some(&key.access_key_id),
        policy: "FoundryS3BucketAccess",
    };
    iam.delete_user(&user, &known).await.expect("delete_user");

    let gone = raw.get_user().user_name(&user).send().await;
    assert!(
        gone.as_ref()
            .err()
            .and_then(|e| e.as_service_error())
            .is_some_and(|e| e.is_no_such_entity_exception()),
        "user still there: {gone:?}"
    );
    let err = expect_kind(iam.delete_user(&user, &known).await, AwsErrorKind::NotFound);
    assert_eq!(err.code.as_deref(), Some("NoSuchEntity"));
}

#[tokio::test]
async fn iam_delete_access_keys_removes_every_key_and_keeps_the_user() {
    let sdk = moto_env::sdk_config().await;
    let iam = SdkIam::new(&sdk);
    let raw = aws_sdk_iam::Client::new(&sdk);
    let user = format!("foundry-keys-{}", &uid()[..12]);
    iam.create_user(&user, "/foundry/", &[]).await.expect("create_user");
    iam.create_access_key(&user).await.expect("key 1");
    iam.create_access_key(&user).await.expect("key 2");

    iam.delete_access_keys(&user).await.expect("delete_access_keys");
    let keys = raw.list_access_keys().user_name(&user).send().await.unwrap();
    assert!(keys.access_key_metadata().is_empty());
    raw.get_user().user_name(&user).send().await.expect("user kept");

    iam.delete_user(
        &user,
        &KnownParts {
            access_key_id: None,
            policy: "FoundryS3BucketAccess",
        },
    )
    .await
    .expect("delete_user");
}

// ---------------------------------------------------------------------------------------------
// EFS

#[tokio::test]
async fn efs_access_point_is_created_available_then_deleted_and_gone() {
    let aws = moto_env::local_aws();
    let sdk = moto_env::sdk_config().await;
    let efs = SdkEfs::new(&sdk);
    let user = moto_env::unique_user_id();
    let spec = AccessPointSpec {
        file_system_id: aws.var("FILE_SYSTEM_ID").to_string(),
        uid: 1000,
        gid: 1000,
        path: format!("/foundry-instances/{user}"),
        owner_uid: 1000,
        owner_gid: 1000,
        permissions: "755".to_string(),
        tags: vec![
            ("Name".to_string(), format!("foundry-{user}")),
            ("UserId".to_string(), user.clone()),
        ],
        client_token: uid(),
    };

    let id = efs.create_access_point(&spec).await.expect("create_access_point");
    assert!(id.starts_with("fsap-"), "{id}");

    let raw = aws_sdk_efs::Client::new(&sdk);
    let described = raw.describe_access_points().access_point_id(&id).send().await.unwrap();
    let ap = &described.access_points()[0];
    assert_eq!(ap.root_directory().and_then(|r| r.path()), Some(spec.path.as_str()));
    assert_eq!(ap.posix_user().map(|p| (p.uid(), p.gid())), Some((1000, 1000)));

    assert_eq!(
        efs.access_point_state(&id).await.expect("state").as_deref(),
        Some("available")
    );
    efs.delete_access_point(&id).await.expect("delete_access_point");
    assert_eq!(efs.access_point_state(&id).await.expect("state after delete"), None);
    // AWS answers AccessPointNotFound (→ NotFound); moto 5.2.5 answers 200 for a missing one.
    match efs.delete_access_point(&id).await {
        Ok(()) => {}
        Err(e) => assert_eq!(e.kind, AwsErrorKind::NotFound, "{e:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// ECS

/// A task definition shaped like the user's Foundry task: sidecar + main container, the EFS volume
/// through an access point, secrets from Secrets Manager.
fn foundry_task_definition(family: &str, access_point_id: &str) -> TaskDefinition {
    let aws = moto_env::local_aws();
    let region = aws.var("AWS_REGION").to_string();
    let data = MountPoint {
        source_volume: "foundry-data".to_string(),
        container_path: "/data".to_string(),
        read_only: false,
    };
    let secret_arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:foundry-credentials-x";
    TaskDefinition {
        family: family.to_string(),
        cpu: "1024".to_string(),
        memory: "2048".to_string(),
        execution_role_arn: aws.var("EXECUTION_ROLE_ARN").to_string(),
        task_role_arn: aws.var("TASK_ROLE_ARN").to_string(),
        containers: vec![
            ContainerDef {
                name: "aws-config-creator".to_string(),
                image: "alpine:latest".to_string(),
                essential: false,
                // moto's RunTask sums the memory of *every* container and fails with a 500 when
                // one has neither memory nor memoryReservation (AWS Fargate does not need it).
                memory_mib: Some(128),
                command: vec![
                    "sh".to_string(),
                    "-c".to_string(),
                    "echo '{}' > /data/awsConfig.json && echo 'AWS config created successfully'".to_string(),
                ],
                mounts: vec![data.clone()],
                log: Some(LogConfig {
                    group: format!("/ecs/{family}"),
                    region: region.clone(),
                    stream_prefix: "aws-config".to_string(),
                    create_group: true,
                }),
                ..Default::default()
            },
            ContainerDef {
                name: "foundry".to_string(),
                image: "felddy/foundryvtt:13".to_string(),
                essential: true,
                memory_mib: Some(2048),
                port: Some(30000),
                environment: vec![
                    ("CONTAINER_PRESERVE_CONFIG".to_string(), "true".to_string()),
                    ("FOUNDRY_PROXY_SSL".to_string(), "true".to_string()),
                ],
                secrets: ["username", "password", "admin_key"]
                    .iter()
                    .map(|k| (format!("FOUNDRY_{}", k.to_uppercase()), format!("{secret_arn}:{k}::")))
                    .collect(),
                mounts: vec![data],
                log: Some(LogConfig {
                    group: format!("/aws/ecs/{family}"),
                    region,
                    stream_prefix: "foundry".to_string(),
                    create_group: true,
                }),
                depends_on: vec![("aws-config-creator".to_string(), "SUCCESS".to_string())],
                ..Default::default()
            },
        ],
        volumes: vec![EfsVolume {
            name: "foundry-data".to_string(),
            file_system_id: aws.var("FILE_SYSTEM_ID").to_string(),
            root_directory: None,
            access_point_id: Some(access_point_id.to_string()),
            transit_encryption: true,
        }],
        scratch_volumes: Vec::new(),
        tags: vec![("UserId".to_string(), "test".to_string())],
    }
}

async fn wait_for_status(ecs: &SdkEcs, cluster: &str, task: &str, status: &str) -> TaskInfo {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let info = ecs
            .describe_task(cluster, task)
            .await
            .expect("describe_task")
            .expect("task known");
        if info.last_status == status {
            return info;
        }
        assert!(
            Instant::now() < deadline,
            "task never reached {status}; last seen {info:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn ecs_registered_foundry_definition_round_trips_through_describe() {
    let sdk = moto_env::sdk_config().await;
    let ecs = SdkEcs::new(&sdk);
    let family = format!("foundry-{}", moto_env::unique_user_id());
    let arn = ecs
        .register_task_definition(&foundry_task_definition(&family, "fsap-0123456789abcdef0"))
        .await
        .expect("register_task_definition");
    assert!(arn.contains(&format!(":task-definition/{family}:1")), "{arn}");

    let raw = aws_sdk_ecs::Client::new(&sdk);
    let td = raw
        .describe_task_definition()
        .task_definition(&arn)
        .send()
        .await
        .unwrap();
    let td = td.task_definition().unwrap();
    assert_eq!(td.network_mode(), Some(&aws_sdk_ecs::types::NetworkMode::Awsvpc));
    assert_eq!(td.cpu(), Some("1024"));
    assert_eq!(td.memory(), Some("2048"));
    assert_eq!(td.container_definitions().len(), 2);
    let main = &td.container_definitions()[1];
    assert_eq!(main.name(), Some("foundry"));
    assert_eq!(main.secrets().len(), 3);
    assert_eq!(main.depends_on()[0].container_name(), "aws-config-creator");
    let efs = td.volumes()[0].efs_volume_configuration().unwrap();
    assert_eq!(
        efs.authorization_config().and_then(|a| a.access_point_id()),
        Some("fsap-0123456789abcdef0")
    );
    assert_eq!(
        efs.transit_encryption(),
        Some(&aws_sdk_ecs::types::EfsTransitEncryption::Enabled)
    );

    ecs.deregister_task_definition(&arn).await.expect("deregister");
}

#[tokio::test]
async fn ecs_list_task_definitions_returns_only_active_revisions_of_the_exact_family() {
    let ecs = SdkEcs::new(&moto_env::sdk_config().await);
    let family = format!("foundry-{}", moto_env::unique_user_id());
    let longer = format!("{family}0");

    let def = foundry_task_definition(&family, "fsap-0123456789abcdef0");
    let r1 = ecs.register_task_definition(&def).await.expect("register 1");
    let r2 = ecs.register_task_definition(&def).await.expect("register 2");
    let other = ecs
        .register_task_definition(&TaskDefinition {
            family: longer.clone(),
            ..def.clone()
        })
        .await
        .expect("register the longer family");

    let mut listed = ecs.list_task_definitions(&family).await.expect("list");
    listed.sort();
    assert_eq!(listed, [r1.clone(), r2.clone()]);

    ecs.deregister_task_definition(&r1).await.expect("deregister r1");
    assert_eq!(
        ecs.list_task_definitions(&family).await.expect("list"),
        std::slice::from_ref(&r2)
    );
    assert_eq!(
        ecs.list_task_definitions(&longer).await.expect("list"),
        std::slice::from_ref(&other)
    );

    ecs.deregister_task_definition(&r2).await.expect("deregister r2");
    ecs.deregister_task_definition(&other).await.expect("deregister other");
    assert!(ecs.list_task_definitions(&family).await.expect("list").is_empty());
}

#[tokio::test]
async fn ecs_run_task_runs_with_a_private_ip_and_stops() {
    let aws = moto_env::local_aws();
    let sdk = moto_env::sdk_config().await;
    let ecs = SdkEcs::new(&sdk);
    let cluster = aws.var("CLUSTER_NAME").to_string();
    let family = format!("foundry-{}", moto_env::unique_user_id());
    let arn = ecs
        .register_task_definition(&foundry_task_definition(&family, "fsap-0123456789abcdef0"))
        .await
        .expect("register_task_definition");

    let task = ecs
        .run_task(&RunTask {
            cluster: cluster.clone(),
            task_definition: arn.clone(),
            subnets: aws.var("PRIVATE_SUBNET_IDS").split(',').map(str::to_string).collect(),
            security_groups: vec![aws.var("TASK_SECURITY_GROUP_ID").to_string()],
            assign_public_ip: false,
            overrides: vec![ContainerOverride {
                name: "foundry".to_string(),
                environment: vec![("USER_ID".to_string(), "test".to_string())],
            }],
            started_by: Some("foundry-lambda-test".to_string()),
            client_token: Some(uid()),
        })
        .await
        .expect("run_task");
    assert!(task.contains(":task/"), "{task}");

    let running = wait_for_status(&ecs, &cluster, &task, "RUNNING").await;
    assert_eq!(running.task_arn, task);
    let ip = running.private_ip.expect("a RUNNING awsvpc task has a private IP");
    assert!(ip.parse::<std::net::Ipv4Addr>().is_ok(), "{ip}");
    // moto 5.2.5 reports only the first container of the definition (AWS reports both).
    assert_eq!(
        running.containers.first().map(|c| c.name.as_str()),
        Some("aws-config-creator")
    );

    let raw = aws_sdk_ecs::Client::new(&sdk);
    let described = raw
        .describe_tasks()
        .cluster(&cluster)
        .tasks(&task)
        .send()
        .await
        .unwrap();
    assert_eq!(described.tasks()[0].started_by(), Some("foundry-lambda-test"));

    ecs.stop_task(&cluster, &task, "User requested stop")
        .await
        .expect("stop_task");
    let stopped = wait_for_status(&ecs, &cluster, &task, "STOPPED").await;
    assert_eq!(stopped.desired_status.as_deref(), Some("STOPPED"));
    assert_eq!(stopped.stopped_reason.as_deref(), Some("User requested stop"));
    // Stopping a stopped task is not an error.
    ecs.stop_task(&cluster, &task, "User requested stop")
        .await
        .expect("second stop_task");

    ecs.deregister_task_definition(&arn).await.expect("deregister");
}

#[tokio::test]
async fn ecs_describe_task_of_an_unknown_task_is_none() {
    let aws = moto_env::local_aws();
    let ecs = SdkEcs::new(&moto_env::sdk_config().await);
    let cluster = aws.var("CLUSTER_NAME");
    let arn = format!("arn:aws:ecs:us-east-1:123456789012:task/{cluster}/{}", uid());
    assert_eq!(ecs.describe_task(cluster, &arn).await.expect("describe_task"), None);
}

#[tokio::test]
async fn ecs_describe_task_definition_reads_the_latest_revision_with_its_tags_and_none_when_missing() {
    let ecs = SdkEcs::new(&moto_env::sdk_config().await);
    let family = format!("foundry-{}", moto_env::unique_user_id());
    assert_eq!(
        ecs.describe_task_definition(&family)
            .await
            .expect("describe a missing family"),
        None
    );

    let mut def = foundry_task_definition(&family, "fsap-0123456789abcdef0");
    def.tags
        .push(("foundry:definition".to_string(), "0123456789abcdef".to_string()));
    let r1 = ecs.register_task_definition(&def).await.expect("register 1");
    let described = ecs
        .describe_task_definition(&family)
        .await
        .expect("describe")
        .expect("the family has a revision");
    assert_eq!(described.arn, r1);
    let mut tags = described.tags.clone();
    tags.sort();
    assert_eq!(
        tags,
        [
            ("UserId".to_string(), "test".to_string()),
            ("foundry:definition".to_string(), "0123456789abcdef".to_string()),
        ]
    );

    // The family names its latest revision; an ARN names that revision.
    def.tags.truncate(1);
    let r2 = ecs.register_task_definition(&def).await.expect("register 2");
    let latest = ecs.describe_task_definition(&family).await.expect("describe").unwrap();
    assert_eq!(latest.arn, r2);
    assert_eq!(latest.tags, [("UserId".to_string(), "test".to_string())]);
    let first = ecs.describe_task_definition(&r1).await.expect("describe r1").unwrap();
    assert_eq!(first.arn, r1);
    assert_eq!(first.tags.len(), 2);
    assert_eq!(
        ecs.describe_task_definition(&format!("{family}:9"))
            .await
            .expect("describe :9"),
        None
    );

    ecs.deregister_task_definition(&r1).await.expect("deregister r1");
    ecs.deregister_task_definition(&r2).await.expect("deregister r2");
}

#[tokio::test]
async fn ecs_list_tasks_by_started_by_finds_the_running_task_of_that_starter_only() {
    let aws = moto_env::local_aws();
    let ecs = SdkEcs::new(&moto_env::sdk_config().await);
    let cluster = aws.var("CLUSTER_NAME").to_string();
    let family = format!("foundry-{}", moto_env::unique_user_id());
    let arn = ecs
        .register_task_definition(&foundry_task_definition(&family, "fsap-0123456789abcdef0"))
        .await
        .expect("register_task_definition");
    let run = |started_by: &str| RunTask {
        cluster: cluster.clone(),
        task_definition: arn.clone(),
        subnets: aws.var("PRIVATE_SUBNET_IDS").split(',').map(str::to_string).collect(),
        security_groups: vec![aws.var("TASK_SECURITY_GROUP_ID").to_string()],
        assign_public_ip: false,
        overrides: vec![],
        started_by: Some(started_by.to_string()),
        client_token: None,
    };
    let mine = format!("efs-cleanup-{}", uid());
    let theirs = format!("efs-cleanup-{}", uid());
    let my_task = ecs.run_task(&run(&mine)).await.expect("run mine");
    let their_task = ecs.run_task(&run(&theirs)).await.expect("run theirs");

    assert_eq!(
        ecs.list_tasks_started_by(&cluster, &mine).await.expect("list mine"),
        std::slice::from_ref(&my_task)
    );
    assert_eq!(
        ecs.list_tasks_started_by(&cluster, &theirs).await.expect("list theirs"),
        std::slice::from_ref(&their_task)
    );
    let nobody = format!("efs-cleanup-{}", uid());
    assert!(ecs
        .list_tasks_started_by(&cluster, &nobody)
        .await
        .expect("list")
        .is_empty());

    // A stopped task (desired status STOPPED) is no longer listed.
    ecs.stop_task(&cluster, &my_task, "test").await.expect("stop mine");
    assert!(ecs
        .list_tasks_started_by(&cluster, &mine)
        .await
        .expect("list")
        .is_empty());

    ecs.stop_task(&cluster, &their_task, "test").await.expect("stop theirs");
    ecs.deregister_task_definition(&arn).await.expect("deregister");
}
