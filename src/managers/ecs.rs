//! ECS: task definitions and tasks.

use async_trait::async_trait;
use aws_sdk_ecs::operation::register_task_definition::builders::RegisterTaskDefinitionFluentBuilder;
use aws_sdk_ecs::operation::run_task::builders::RunTaskFluentBuilder;
use aws_sdk_ecs::types as ecs;
use aws_smithy_types::error::operation::BuildError;

use crate::error::{AwsError, AwsErrorKind};
use crate::managers::{instrument, sdk_error, Page};

pub use crate::domain::taskdef::{
    ContainerDef, ContainerOverride, EfsVolume, LogConfig, MountPoint, RunTask, TaskDefinition,
};

/// What we need to know about a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskInfo {
    pub task_arn: String,
    /// ECS `lastStatus` as sent (upper case: PROVISIONING, PENDING, ACTIVATING, RUNNING,
    /// DEACTIVATING, STOPPING, DEPROVISIONING, STOPPED, DELETED).
    pub last_status: String,
    pub desired_status: Option<String>,
    /// The private IPv4 of the task's ENI attachment, once it has one.
    pub private_ip: Option<String>,
    pub stopped_reason: Option<String>,
    pub containers: Vec<ContainerState>,
    /// Unix seconds.
    pub started_at: Option<i64>,
    pub stopped_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerState {
    pub name: String,
    pub exit_code: Option<i32>,
}

/// What DescribeTaskDefinition says about one revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedTaskDefinition {
    pub arn: String,
    /// Its tags, `(key, value)`, as ECS returns them.
    pub tags: Vec<(String, String)>,
}

/// The error code of a RunTask that ECS answered with `failures` instead of a task.
pub const RUN_TASK_FAILURE: &str = "RunTaskFailure";

#[async_trait]
pub trait Ecs: Send + Sync {
    /// RegisterTaskDefinition → the new revision's ARN.
    async fn register_task_definition(&self, def: &TaskDefinition) -> Result<String, AwsError>;

    /// DeregisterTaskDefinition (the revision becomes INACTIVE).
    async fn deregister_task_definition(&self, arn: &str) -> Result<(), AwsError>;

    /// DescribeTaskDefinition with its tags. A bare family names its latest ACTIVE revision;
    /// `family:revision` or an ARN names that revision. `Ok(None)` when ECS knows no such
    /// definition.
    async fn describe_task_definition(&self, family_or_arn: &str) -> Result<Option<DescribedTaskDefinition>, AwsError>;

    /// The ARNs of the ACTIVE revisions of `family` (paginated ListTaskDefinitions).
    async fn list_task_definitions(&self, family: &str) -> Result<Vec<String>, AwsError>;

    /// RunTask (Fargate) → the task ARN. When ECS answers with `failures` and no task,
    /// the error's code is `RunTaskFailure` and its message is the JSON of the failures array.
    async fn run_task(&self, req: &RunTask) -> Result<String, AwsError>;

    /// DescribeTasks for one task; `Ok(None)` when ECS does not know it (any more).
    async fn describe_task(&self, cluster: &str, task_arn: &str) -> Result<Option<TaskInfo>, AwsError>;

    /// StopTask. Stopping an already stopped task is not an error in ECS.
    async fn stop_task(&self, cluster: &str, task_arn: &str, reason: &str) -> Result<(), AwsError>;

    /// The ARNs of the tasks of `cluster` launched with `started_by` whose desired status is
    /// RUNNING (paginated ListTasks; ECS allows no other filter next to `startedBy`).
    async fn list_tasks_started_by(&self, cluster: &str, started_by: &str) -> Result<Vec<String>, AwsError>;

    /// DescribeClusters of one cluster → its status (`ACTIVE`, `INACTIVE`, …): a health
    /// probe. A cluster ECS does not know is a `NotFound` error.
    async fn cluster_status(&self, cluster: &str) -> Result<String, AwsError>;

    /// One page of ListTaskDefinitionFamilies: the families starting with `prefix` that
    /// have an ACTIVE revision, from `token`.
    async fn list_families_page(&self, prefix: &str, token: Option<&str>) -> Result<Page<String>, AwsError>;
}

/// The SDK adapter.
pub struct SdkEcs {
    client: super::sdk::LazyClient<aws_sdk_ecs::Client>,
}

impl SdkEcs {
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        SdkEcs {
            client: super::sdk::LazyClient::new(sdk, |sdk| {
                let mut conf = aws_sdk_ecs::config::Builder::from(sdk);
                conf.push_interceptor(instrument::interceptor());
                aws_sdk_ecs::Client::from_conf(conf.build())
            }),
        }
    }
}

const SERVICE: &str = "ecs";

/// A request we could not even build (a required member is missing): our bug, not AWS's.
fn build_error(operation: &'static str, err: BuildError) -> AwsError {
    AwsError::new(
        SERVICE,
        operation,
        AwsErrorKind::Invalid,
        format!("invalid {operation} request: {err}"),
    )
}

/// A response that lacks something ECS always sends.
fn malformed(operation: &'static str, what: &str) -> AwsError {
    AwsError::new(
        SERVICE,
        operation,
        AwsErrorKind::Other,
        format!("{operation} response {what}"),
    )
}

fn opt_vec<T>(v: Vec<T>) -> Option<Vec<T>> {
    if v.is_empty() {
        None
    } else {
        Some(v)
    }
}

fn key_value_pairs(pairs: &[(String, String)]) -> Option<Vec<ecs::KeyValuePair>> {
    opt_vec(
        pairs
            .iter()
            .map(|(name, value)| ecs::KeyValuePair::builder().name(name).value(value).build())
            .collect(),
    )
}

/// One container of a RegisterTaskDefinition request.
fn container_definition(c: &ContainerDef) -> Result<ecs::ContainerDefinition, BuildError> {
    let port_mappings = c.port.map(|port| {
        vec![ecs::PortMapping::builder()
            .container_port(port)
            .protocol(ecs::TransportProtocol::Tcp)
            .build()]
    });
    let secrets = c
        .secrets
        .iter()
        .map(|(name, value_from)| ecs::Secret::builder().name(name).value_from(value_from).build())
        .collect::<Result<Vec<_>, _>>()?;
    let mount_points = c
        .mounts
        .iter()
        .map(|m| {
            ecs::MountPoint::builder()
                .source_volume(&m.source_volume)
                .container_path(&m.container_path)
                .read_only(m.read_only)
                .build()
        })
        .collect();
    let depends_on = c
        .depends_on
        .iter()
        .map(|(name, condition)| {
            ecs::ContainerDependency::builder()
                .container_name(name)
                .condition(ecs::ContainerCondition::from(condition.as_str()))
                .build()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let log_configuration = match &c.log {
        Some(log) => {
            let mut b = ecs::LogConfiguration::builder()
                .log_driver(ecs::LogDriver::Awslogs)
                .options("awslogs-group", &log.group)
                .options("awslogs-region", &log.region)
                .options("awslogs-stream-prefix", &log.stream_prefix);
            if log.create_group {
                b = b.options("awslogs-create-group", "true");
            }
            Some(b.build()?)
        }
        None => None,
    };
    Ok(ecs::ContainerDefinition::builder()
        .name(&c.name)
        .image(&c.image)
        .essential(c.essential)
        .set_memory(c.memory_mib)
        .set_command(opt_vec(c.command.clone()))
        .set_entry_point(opt_vec(c.entry_point.clone()))
        .set_port_mappings(port_mappings)
        .set_environment(key_value_pairs(&c.environment))
        .set_secrets(opt_vec(secrets))
        .set_mount_points(opt_vec(mount_points))
        .set_depends_on(opt_vec(depends_on))
        .set_user(c.user.clone())
        .set_log_configuration(log_configuration)
        .build())
}

/// One EFS volume of a RegisterTaskDefinition request.
fn volume(v: &EfsVolume) -> Result<ecs::Volume, BuildError> {
    let authorization = v.access_point_id.as_ref().map(|ap| {
        ecs::EfsAuthorizationConfig::builder()
            .access_point_id(ap)
            .iam(ecs::EfsAuthorizationConfigIam::Disabled)
            .build()
    });
    let efs = ecs::EfsVolumeConfiguration::builder()
        .file_system_id(&v.file_system_id)
        .set_root_directory(v.root_directory.clone())
        .set_transit_encryption(v.transit_encryption.then_some(ecs::EfsTransitEncryption::Enabled))
        .set_authorization_config(authorization)
        .build()?;
    Ok(ecs::Volume::builder()
        .name(&v.name)
        .efs_volume_configuration(efs)
        .build())
}

/// Fills a RegisterTaskDefinition request from `def`.
fn register_request(
    b: RegisterTaskDefinitionFluentBuilder,
    def: &TaskDefinition,
) -> Result<RegisterTaskDefinitionFluentBuilder, BuildError> {
    let containers = def
        .containers
        .iter()
        .map(container_definition)
        .collect::<Result<Vec<_>, _>>()?;
    let mut volumes = def.volumes.iter().map(volume).collect::<Result<Vec<_>, _>>()?;
    // A volume with neither EFS nor host configuration: Fargate's task-local storage.
    volumes.extend(
        def.scratch_volumes
            .iter()
            .map(|name| ecs::Volume::builder().name(name).build()),
    );
    let tags = def
        .tags
        .iter()
        .map(|(k, v)| ecs::Tag::builder().key(k).value(v).build())
        .collect();
    Ok(b.family(&def.family)
        .network_mode(ecs::NetworkMode::Awsvpc)
        .requires_compatibilities(ecs::Compatibility::Fargate)
        .runtime_platform(
            ecs::RuntimePlatform::builder()
                .cpu_architecture(ecs::CpuArchitecture::Arm64)
                .operating_system_family(ecs::OsFamily::Linux)
                .build(),
        )
        .cpu(&def.cpu)
        .memory(&def.memory)
        .execution_role_arn(&def.execution_role_arn)
        .task_role_arn(&def.task_role_arn)
        .set_container_definitions(Some(containers))
        .set_volumes(opt_vec(volumes))
        .set_tags(opt_vec(tags)))
}

/// Fills a Fargate RunTask request from `req`.
fn run_task_request(b: RunTaskFluentBuilder, req: &RunTask) -> Result<RunTaskFluentBuilder, BuildError> {
    let vpc = ecs::AwsVpcConfiguration::builder()
        .set_subnets(Some(req.subnets.clone()))
        .set_security_groups(opt_vec(req.security_groups.clone()))
        .assign_public_ip(if req.assign_public_ip {
            ecs::AssignPublicIp::Enabled
        } else {
            ecs::AssignPublicIp::Disabled
        })
        .build()?;
    let overrides = opt_vec(
        req.overrides
            .iter()
            .map(|o| {
                ecs::ContainerOverride::builder()
                    .name(&o.name)
                    .set_environment(key_value_pairs(&o.environment))
                    .build()
            })
            .collect(),
    )
    .map(|containers| {
        ecs::TaskOverride::builder()
            .set_container_overrides(Some(containers))
            .build()
    });
    Ok(b.cluster(&req.cluster)
        .task_definition(&req.task_definition)
        .launch_type(ecs::LaunchType::Fargate)
        .count(1)
        .network_configuration(ecs::NetworkConfiguration::builder().awsvpc_configuration(vpc).build())
        .set_overrides(overrides)
        .set_started_by(req.started_by.clone())
        .set_client_token(req.client_token.clone()))
}

/// The JSON array of ECS failures: `[{"arn":…,"reason":…,"detail":…}]`, absent members omitted.
fn failures_json(failures: &[ecs::Failure]) -> String {
    let array: Vec<serde_json::Value> = failures
        .iter()
        .map(|f| {
            let mut m = serde_json::Map::new();
            for (key, value) in [("arn", f.arn()), ("reason", f.reason()), ("detail", f.detail())] {
                if let Some(value) = value {
                    m.insert(key.to_string(), serde_json::Value::String(value.to_string()));
                }
            }
            serde_json::Value::Object(m)
        })
        .collect();
    serde_json::Value::Array(array).to_string()
}

/// The family of a task-definition ARN (`…:task-definition/<family>:<revision>`), or of a
/// `family:revision` string.
fn family_of(arn: &str) -> &str {
    let tail = arn.rsplit_once("task-definition/").map_or(arn, |(_, tail)| tail);
    tail.rsplit_once(':').map_or(tail, |(family, _)| family)
}

/// The private IPv4 of the task's ENI attachment.
fn private_ip(task: &ecs::Task) -> Option<String> {
    task.attachments()
        .iter()
        .filter(|a| a.r#type() == Some("ElasticNetworkInterface"))
        .flat_map(|a| a.details())
        .find(|d| d.name() == Some("privateIPv4Address"))
        .and_then(|d| d.value())
        .filter(|ip| !ip.is_empty())
        .map(str::to_string)
}

/// What we keep of a described task.
fn task_info(task: &ecs::Task, requested_arn: &str) -> Result<TaskInfo, AwsError> {
    let last_status = task
        .last_status()
        .ok_or_else(|| malformed("DescribeTasks", "has a task without lastStatus"))?;
    Ok(TaskInfo {
        task_arn: task.task_arn().unwrap_or(requested_arn).to_string(),
        last_status: last_status.to_string(),
        desired_status: task.desired_status().map(str::to_string),
        private_ip: private_ip(task),
        stopped_reason: task.stopped_reason().map(str::to_string),
        containers: task
            .containers()
            .iter()
            .map(|c| ContainerState {
                name: c.name().unwrap_or_default().to_string(),
                exit_code: c.exit_code(),
            })
            .collect(),
        started_at: task.started_at().map(|t| t.secs()),
        stopped_at: task.stopped_at().map(|t| t.secs()),
    })
}

#[async_trait]
impl Ecs for SdkEcs {
    async fn register_task_definition(&self, def: &TaskDefinition) -> Result<String, AwsError> {
        const OP: &str = "RegisterTaskDefinition";
        let out = register_request(self.client.register_task_definition(), def)
            .map_err(|e| build_error(OP, e))?
            .send()
            .await
            .map_err(|e| sdk_error(SERVICE, OP, e))?;
        out.task_definition()
            .and_then(|td| td.task_definition_arn())
            .map(str::to_string)
            .ok_or_else(|| malformed(OP, "has no taskDefinitionArn"))
    }

    async fn deregister_task_definition(&self, arn: &str) -> Result<(), AwsError> {
        const OP: &str = "DeregisterTaskDefinition";
        self.client
            .deregister_task_definition()
            .task_definition(arn)
            .send()
            .await
            .map_err(|e| sdk_error(SERVICE, OP, e))?;
        Ok(())
    }

    async fn describe_task_definition(&self, family_or_arn: &str) -> Result<Option<DescribedTaskDefinition>, AwsError> {
        const OP: &str = "DescribeTaskDefinition";
        let sent = self
            .client
            .describe_task_definition()
            .task_definition(family_or_arn)
            .include(ecs::TaskDefinitionField::Tags)
            .send()
            .await;
        let out = match sent {
            Ok(out) => out,
            Err(e) => {
                // ECS (and moto) answer ClientException "Unable to describe task definition."
                let e = sdk_error(SERVICE, OP, e);
                return if e.is_not_found() { Ok(None) } else { Err(e) };
            }
        };
        let arn = out
            .task_definition()
            .and_then(|td| td.task_definition_arn())
            .ok_or_else(|| malformed(OP, "has no taskDefinitionArn"))?;
        let tags = out
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string())))
            .collect();
        Ok(Some(DescribedTaskDefinition {
            arn: arn.to_string(),
            tags,
        }))
    }

    async fn list_task_definitions(&self, family: &str) -> Result<Vec<String>, AwsError> {
        const OP: &str = "ListTaskDefinitions";
        let mut pages = self
            .client
            .list_task_definitions()
            .family_prefix(family)
            .status(ecs::TaskDefinitionStatus::Active)
            .into_paginator()
            .send();
        let mut arns = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_error(SERVICE, OP, e))?;
            // familyPrefix is a prefix match: `foundry-a` also lists `foundry-ab`.
            arns.extend(
                page.task_definition_arns()
                    .iter()
                    .filter(|arn| family_of(arn) == family)
                    .cloned(),
            );
        }
        Ok(arns)
    }

    async fn list_families_page(&self, prefix: &str, token: Option<&str>) -> Result<Page<String>, AwsError> {
        let out = self
            .client
            .list_task_definition_families()
            .family_prefix(prefix)
            .status(ecs::TaskDefinitionFamilyStatus::Active)
            .max_results(crate::managers::LIST_PAGE)
            .set_next_token(token.map(str::to_string))
            .send()
            .await
            .map_err(|e| sdk_error(SERVICE, "ListTaskDefinitionFamilies", e))?;
        Ok(Page {
            items: out
                .families()
                .iter()
                .filter(|f| f.starts_with(prefix))
                .cloned()
                .collect(),
            next: crate::managers::next_token(out.next_token()),
        })
    }

    async fn run_task(&self, req: &RunTask) -> Result<String, AwsError> {
        const OP: &str = "RunTask";
        let out = run_task_request(self.client.run_task(), req)
            .map_err(|e| build_error(OP, e))?
            .send()
            .await
            .map_err(|e| sdk_error(SERVICE, OP, e))?;
        if let Some(task) = out.tasks().first() {
            return task
                .task_arn()
                .map(str::to_string)
                .ok_or_else(|| malformed(OP, "has a task without taskArn"));
        }
        if out.failures().is_empty() {
            return Err(malformed(OP, "has neither tasks nor failures"));
        }
        Err(AwsError::new(SERVICE, OP, AwsErrorKind::Other, failures_json(out.failures())).with_code(RUN_TASK_FAILURE))
    }

    async fn describe_task(&self, cluster: &str, task_arn: &str) -> Result<Option<TaskInfo>, AwsError> {
        const OP: &str = "DescribeTasks";
        let out = self
            .client
            .describe_tasks()
            .cluster(cluster)
            .tasks(task_arn)
            .send()
            .await
            .map_err(|e| sdk_error(SERVICE, OP, e))?;
        if let Some(task) = out.tasks().first() {
            return task_info(task, task_arn).map(Some);
        }
        let unexpected: Vec<ecs::Failure> = out
            .failures()
            .iter()
            .filter(|f| f.reason() != Some("MISSING"))
            .cloned()
            .collect();
        if unexpected.is_empty() {
            Ok(None)
        } else {
            Err(
                AwsError::new(SERVICE, OP, AwsErrorKind::Other, failures_json(&unexpected))
                    .with_code("DescribeTasksFailure"),
            )
        }
    }

    async fn stop_task(&self, cluster: &str, task_arn: &str, reason: &str) -> Result<(), AwsError> {
        const OP: &str = "StopTask";
        self.client
            .stop_task()
            .cluster(cluster)
            .task(task_arn)
            .reason(reason)
            .send()
            .await
            .map_err(|e| sdk_error(SERVICE, OP, e))?;
        Ok(())
    }

    async fn list_tasks_started_by(&self, cluster: &str, started_by: &str) -> Result<Vec<String>, AwsError> {
        const OP: &str = "ListTasks";
        let mut pages = self
            .client
            .list_tasks()
            .cluster(cluster)
            .started_by(started_by)
            .into_paginator()
            .send();
        let mut arns = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_error(SERVICE, OP, e))?;
            arns.extend(page.task_arns().iter().cloned());
        }
        Ok(arns)
    }

    async fn cluster_status(&self, cluster: &str) -> Result<String, AwsError> {
        const OP: &str = "DescribeClusters";
        let out = self
            .client
            .describe_clusters()
            .clusters(cluster)
            .send()
            .await
            .map_err(|e| sdk_error(SERVICE, OP, e))?;
        match out.clusters().first() {
            Some(c) => Ok(c.status().unwrap_or_default().to_string()),
            None => {
                let reason = out.failures().first().and_then(|f| f.reason()).unwrap_or("MISSING");
                Err(AwsError::new(
                    SERVICE,
                    OP,
                    AwsErrorKind::NotFound,
                    format!("cluster {cluster}: {reason}"),
                )
                .with_code("ClusterNotFoundException"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> aws_sdk_ecs::Client {
        let conf = aws_sdk_ecs::Config::builder()
            .behavior_version(aws_sdk_ecs::config::BehaviorVersion::latest())
            .region(aws_sdk_ecs::config::Region::new("us-east-1"))
            .build();
        aws_sdk_ecs::Client::from_conf(conf)
    }

    fn foundry_definition() -> TaskDefinition {
        let log = |group: &str, prefix: &str| LogConfig {
            group: group.into(),
            region: "us-east-1".into(),
            stream_prefix: prefix.into(),
            create_group: true,
        };
        let data = MountPoint {
            source_volume: "foundry-data".into(),
            container_path: "/data".into(),
            read_only: false,
        };
        TaskDefinition {
            family: "foundry-u1".into(),
            cpu: "1024".into(),
            memory: "2048".into(),
            execution_role_arn: "arn:aws:iam::1:role/exec".into(),
            task_role_arn: "arn:aws:iam::1:role/task".into(),
            containers: vec![
                ContainerDef {
                    name: "aws-config-creator".into(),
                    image: "alpine:latest".into(),
                    essential: false,
                    command: vec!["sh".into(), "-c".into(), "echo hi".into()],
                    mounts: vec![data.clone()],
                    log: Some(LogConfig {
                        create_group: false,
                        ..log("/ecs/foundry-u1", "aws-config")
                    }),
                    ..Default::default()
                },
                ContainerDef {
                    name: "foundry".into(),
                    image: "felddy/foundryvtt:13".into(),
                    essential: true,
                    memory_mib: Some(2048),
                    port: Some(30000),
                    environment: vec![("FOUNDRY_PROXY_SSL".into(), "true".into())],
                    secrets: vec![("FOUNDRY_USERNAME".into(), "arn:s:username::".into())],
                    mounts: vec![data],
                    log: Some(log("/aws/ecs/foundry-u1", "foundry")),
                    depends_on: vec![("aws-config-creator".into(), "SUCCESS".into())],
                    user: Some("1000:1000".into()),
                    ..Default::default()
                },
            ],
            volumes: vec![EfsVolume {
                name: "foundry-data".into(),
                file_system_id: "fs-1".into(),
                root_directory: None,
                access_point_id: Some("fsap-1".into()),
                transit_encryption: true,
            }],
            scratch_volumes: Vec::new(),
            tags: vec![("UserId".into(), "u1".into())],
        }
    }

    #[test]
    fn register_request_is_a_fargate_arm64_awsvpc_definition() {
        let b = register_request(client().register_task_definition(), &foundry_definition()).unwrap();
        let input = b.as_input().clone().build().unwrap();
        assert_eq!(input.family(), Some("foundry-u1"));
        assert_eq!(input.network_mode(), Some(&ecs::NetworkMode::Awsvpc));
        assert_eq!(input.requires_compatibilities(), &[ecs::Compatibility::Fargate]);
        let platform = input.runtime_platform().unwrap();
        assert_eq!(platform.cpu_architecture(), Some(&ecs::CpuArchitecture::Arm64));
        assert_eq!(platform.operating_system_family(), Some(&ecs::OsFamily::Linux));
        assert_eq!((input.cpu(), input.memory()), (Some("1024"), Some("2048")));
        assert_eq!(input.execution_role_arn(), Some("arn:aws:iam::1:role/exec"));
        assert_eq!(input.task_role_arn(), Some("arn:aws:iam::1:role/task"));
        let tag = &input.tags()[0];
        assert_eq!((tag.key(), tag.value()), (Some("UserId"), Some("u1")));
    }

    #[test]
    fn register_request_maps_every_container_field() {
        let b = register_request(client().register_task_definition(), &foundry_definition()).unwrap();
        let input = b.as_input().clone().build().unwrap();
        let [sidecar, main] = input.container_definitions() else {
            panic!("two containers expected");
        };

        assert_eq!(sidecar.name(), Some("aws-config-creator"));
        assert_eq!(sidecar.essential(), Some(false));
        assert_eq!(sidecar.memory(), None);
        assert_eq!(sidecar.command(), &["sh", "-c", "echo hi"]);
        assert!(sidecar.port_mappings().is_empty() && sidecar.depends_on().is_empty());
        let log = sidecar.log_configuration().unwrap();
        assert_eq!(log.log_driver(), &ecs::LogDriver::Awslogs);
        let opts = log.options().unwrap();
        assert_eq!(
            opts.get("awslogs-stream-prefix").map(String::as_str),
            Some("aws-config")
        );
        assert!(!opts.contains_key("awslogs-create-group"));

        assert_eq!(main.name(), Some("foundry"));
        assert_eq!(main.image(), Some("felddy/foundryvtt:13"));
        assert_eq!(main.essential(), Some(true));
        assert_eq!(main.memory(), Some(2048));
        assert!(main.command().is_empty() && main.entry_point().is_empty());
        let port = &main.port_mappings()[0];
        assert_eq!(port.container_port(), Some(30000));
        assert_eq!(port.protocol(), Some(&ecs::TransportProtocol::Tcp));
        let env = &main.environment()[0];
        assert_eq!((env.name(), env.value()), (Some("FOUNDRY_PROXY_SSL"), Some("true")));
        let secret = &main.secrets()[0];
        assert_eq!(
            (secret.name(), secret.value_from()),
            ("FOUNDRY_USERNAME", "arn:s:username::")
        );
        let mount = &main.mount_points()[0];
        assert_eq!(
            (mount.source_volume(), mount.container_path(), mount.read_only()),
            (Some("foundry-data"), Some("/data"), Some(false))
        );
        let dep = &main.depends_on()[0];
        assert_eq!(
            (dep.container_name(), dep.condition()),
            ("aws-config-creator", &ecs::ContainerCondition::Success)
        );
        assert_eq!(main.user(), Some("1000:1000"));
        let opts = main.log_configuration().unwrap().options().unwrap();
        assert_eq!(opts.len(), 4);
        assert_eq!(opts["awslogs-group"], "/aws/ecs/foundry-u1");
        assert_eq!(opts["awslogs-region"], "us-east-1");
        assert_eq!(opts["awslogs-stream-prefix"], "foundry");
        assert_eq!(opts["awslogs-create-group"], "true");
    }

    #[test]
    fn efs_volume_uses_the_access_point_with_iam_disabled_or_a_root_directory() {
        let v = volume(&foundry_definition().volumes[0]).unwrap();
        assert_eq!(v.name(), Some("foundry-data"));
        let efs = v.efs_volume_configuration().unwrap();
        assert_eq!(efs.file_system_id(), "fs-1");
        assert_eq!(efs.root_directory(), None);
        assert_eq!(efs.transit_encryption(), Some(&ecs::EfsTransitEncryption::Enabled));
        let auth = efs.authorization_config().unwrap();
        assert_eq!(auth.access_point_id(), Some("fsap-1"));
        assert_eq!(auth.iam(), Some(&ecs::EfsAuthorizationConfigIam::Disabled));

        let root = volume(&EfsVolume {
            name: "efs-root".into(),
            file_system_id: "fs-1".into(),
            root_directory: Some("/".into()),
            access_point_id: None,
            transit_encryption: false,
        })
        .unwrap();
        let efs = root.efs_volume_configuration().unwrap();
        assert_eq!(efs.root_directory(), Some("/"));
        assert_eq!(efs.transit_encryption(), None);
        assert!(efs.authorization_config().is_none());
    }

    #[test]
    fn run_task_request_is_one_fargate_task_in_the_given_network() {
        let req = RunTask {
            cluster: "c".into(),
            task_definition: "foundry-efs-cleanup".into(),
            subnets: vec!["subnet-a".into(), "subnet-b".into()],
            security_groups: vec!["sg-1".into()],
            assign_public_ip: false,
            overrides: vec![ContainerOverride {
                name: "cleanup".into(),
                environment: vec![("USER_ID".into(), "u1".into())],
            }],
            started_by: Some("foundry-lambda".into()),
            client_token: Some("tok".into()),
        };
        let input = run_task_request(client().run_task(), &req)
            .unwrap()
            .as_input()
            .clone()
            .build()
            .unwrap();
        assert_eq!(input.cluster(), Some("c"));
        assert_eq!(input.task_definition(), Some("foundry-efs-cleanup"));
        assert_eq!(input.launch_type(), Some(&ecs::LaunchType::Fargate));
        assert_eq!(input.count(), Some(1));
        let vpc = input.network_configuration().unwrap().awsvpc_configuration().unwrap();
        assert_eq!(vpc.subnets(), &["subnet-a", "subnet-b"]);
        assert_eq!(vpc.security_groups(), &["sg-1"]);
        assert_eq!(vpc.assign_public_ip(), Some(&ecs::AssignPublicIp::Disabled));
        let o = &input.overrides().unwrap().container_overrides()[0];
        assert_eq!(o.name(), Some("cleanup"));
        assert_eq!(o.environment()[0].name(), Some("USER_ID"));
        assert_eq!(o.environment()[0].value(), Some("u1"));
        assert_eq!(input.started_by(), Some("foundry-lambda"));
        assert_eq!(input.client_token(), Some("tok"));

        let bare = RunTask {
            assign_public_ip: true,
            overrides: vec![],
            started_by: None,
            client_token: None,
            ..req
        };
        let input = run_task_request(client().run_task(), &bare)
            .unwrap()
            .as_input()
            .clone()
            .build()
            .unwrap();
        let vpc = input.network_configuration().unwrap().awsvpc_configuration().unwrap();
        assert_eq!(vpc.assign_public_ip(), Some(&ecs::AssignPublicIp::Enabled));
        assert!(input.overrides().is_none() && input.started_by().is_none() && input.client_token().is_none());
    }

    #[test]
    fn failures_json_omits_absent_members() {
        let failures = [
            ecs::Failure::builder()
                .arn("arn:t")
                .reason("RESOURCE:MEMORY")
                .detail("d")
                .build(),
            ecs::Failure::builder().reason("MISSING").build(),
        ];
        assert_eq!(
            failures_json(&failures),
            r#"[{"arn":"arn:t","reason":"RESOURCE:MEMORY","detail":"d"},{"reason":"MISSING"}]"#
        );
        assert_eq!(failures_json(&[]), "[]");
    }

    #[test]
    fn family_of_strips_the_arn_prefix_and_revision() {
        assert_eq!(
            family_of("arn:aws:ecs:us-east-1:1:task-definition/foundry-u1:7"),
            "foundry-u1"
        );
        assert_eq!(
            family_of("arn:aws:ecs:us-east-1:1:task-definition/foundry-u10:1"),
            "foundry-u10"
        );
        assert_eq!(family_of("foundry-u1:3"), "foundry-u1");
        assert_eq!(family_of("foundry-u1"), "foundry-u1");
    }

    #[test]
    fn task_info_reads_the_eni_ip_times_and_exit_codes() {
        let eni = ecs::Attachment::builder()
            .r#type("ElasticNetworkInterface")
            .details(ecs::KeyValuePair::builder().name("subnetId").value("subnet-a").build())
            .details(
                ecs::KeyValuePair::builder()
                    .name("privateIPv4Address")
                    .value("10.0.1.5")
                    .build(),
            )
            .build();
        let task = ecs::Task::builder()
            .task_arn("arn:task/1")
            .last_status("STOPPED")
            .desired_status("STOPPED")
            .stopped_reason("Essential container in task exited")
            .attachments(ecs::Attachment::builder().r#type("Service Connect").build())
            .attachments(eni)
            .containers(ecs::Container::builder().name("cleanup").exit_code(0).build())
            .containers(ecs::Container::builder().name("other").build())
            .started_at(aws_smithy_types::DateTime::from_secs(1_700_000_000))
            .stopped_at(aws_smithy_types::DateTime::from_millis(1_700_000_060_500))
            .build();
        let info = task_info(&task, "ignored").unwrap();
        assert_eq!(
            info,
            TaskInfo {
                task_arn: "arn:task/1".into(),
                last_status: "STOPPED".into(),
                desired_status: Some("STOPPED".into()),
                private_ip: Some("10.0.1.5".into()),
                stopped_reason: Some("Essential container in task exited".into()),
                containers: vec![
                    ContainerState {
                        name: "cleanup".into(),
                        exit_code: Some(0)
                    },
                    ContainerState {
                        name: "other".into(),
                        exit_code: None
                    },
                ],
                started_at: Some(1_700_000_000),
                stopped_at: Some(1_700_000_060),
            }
        );
    }

    #[test]
    fn task_info_tolerates_a_bare_task_but_not_a_missing_status() {
        let bare = ecs::Task::builder().last_status("PROVISIONING").build();
        let info = task_info(&bare, "arn:requested").unwrap();
        assert_eq!(info.task_arn, "arn:requested");
        assert_eq!(info.private_ip, None);
        assert_eq!((info.started_at, info.stopped_at), (None, None));
        let err = task_info(&ecs::Task::builder().build(), "arn:requested").unwrap_err();
        assert_eq!(err.kind, AwsErrorKind::Other);
    }
}
