//! The task definitions and RunTask requests, built from data (no I/O).
//!
//! Differences from the original: the S3 key pair is injected as
//! container secrets from the user's Secrets Manager secret — there is no sidecar and no
//! shell command built from data; the cleanup task takes the user id from its
//! environment and validate it before touching the file system.

use super::names;

/// What the task definitions and RunTask requests need to know about the deployment.
#[derive(Debug, Clone, Copy)]
pub struct Deployment<'a> {
    pub region: &'a str,
    pub domain_name: &'a str,
    pub cluster: &'a str,
    pub file_system_id: &'a str,
    pub execution_role_arn: &'a str,
    pub task_role_arn: &'a str,
    pub subnets: &'a [String],
    pub security_group: &'a str,
}

/// An awslogs configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    pub group: String,
    pub region: String,
    pub stream_prefix: String,
    /// `awslogs-create-group`. False when the group is created beforehand (with a retention).
    pub create_group: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountPoint {
    pub source_volume: String,
    pub container_path: String,
    pub read_only: bool,
}

/// One container of a task definition.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerDef {
    pub name: String,
    pub image: String,
    pub essential: bool,
    /// Hard memory limit of the container in MiB (moto's RunTask needs one container with it).
    pub memory_mib: Option<i32>,
    pub command: Vec<String>,
    pub entry_point: Vec<String>,
    /// Container port, TCP, mapped 1:1 (awsvpc).
    pub port: Option<i32>,
    /// Plain environment variables, in order.
    pub environment: Vec<(String, String)>,
    /// `(name, valueFrom)` pairs resolved by ECS from Secrets Manager at launch.
    pub secrets: Vec<(String, String)>,
    pub mounts: Vec<MountPoint>,
    pub log: Option<LogConfig>,
    /// `(containerName, condition)`, e.g. `("init", "SUCCESS")`.
    pub depends_on: Vec<(String, String)>,
    /// Run the container as this `uid:gid` (Docker `user`).
    pub user: Option<String>,
}

/// An EFS volume: either through an access point, or a root directory of the file system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EfsVolume {
    pub name: String,
    pub file_system_id: String,
    /// Root directory; ignored by ECS when an access point is given.
    pub root_directory: Option<String>,
    pub access_point_id: Option<String>,
    /// Transit encryption (always on in this project).
    pub transit_encryption: bool,
}

/// A Fargate, awsvpc, ARM64 Linux task definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskDefinition {
    pub family: String,
    pub cpu: String,
    pub memory: String,
    pub execution_role_arn: String,
    pub task_role_arn: String,
    pub containers: Vec<ContainerDef>,
    pub volumes: Vec<EfsVolume>,
    /// Task-local volumes (Fargate ephemeral storage) that containers of the task share.
    pub scratch_volumes: Vec<String>,
    pub tags: Vec<(String, String)>,
}

/// Environment overrides for one container of a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerOverride {
    pub name: String,
    pub environment: Vec<(String, String)>,
}

/// A Fargate RunTask request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunTask {
    pub cluster: String,
    /// Family, `family:revision`, or ARN.
    pub task_definition: String,
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    pub assign_public_ip: bool,
    pub overrides: Vec<ContainerOverride>,
    /// `startedBy`: up to 128 letters, digits, hyphens, forward slashes and underscores
    /// (RunTask's limit; ListTasks can filter by it).
    pub started_by: Option<String>,
    /// Idempotency token (up to 64 characters): a retried RunTask with the same token
    /// does not start a second task.
    pub client_token: Option<String>,
}

pub const FOUNDRY_PORT: i32 = 30000;
pub const DATA_VOLUME: &str = "foundry-data";
pub const CLEANUP_FAMILY: &str = "foundry-efs-cleanup";
/// The name of the Foundry container in a user's task definition.
pub const FOUNDRY_CONTAINER: &str = "foundry";
pub const CLEANUP_CONTAINER: &str = "cleanup";

/// The tag that carries a registered definition's [`fingerprint`], so that a process can tell
/// whether the active revision is already the definition it would register.
pub const FINGERPRINT_TAG: &str = "foundry:definition";

/// A fingerprint of what `def` defines, its tags aside: FNV-1a 64 over its `Debug`
/// rendering, 16 hex digits. It only has to be stable within one build: should a later
/// version render or hash differently, its first use registers the definition once more
/// (and deregisters the revision before), and reuses that revision from then on.
pub fn fingerprint(def: &TaskDefinition) -> String {
    let untagged = TaskDefinition {
        tags: Vec::new(),
        ..def.clone()
    };
    format!("{:016x}", fnv1a_64(format!("{untagged:?}").as_bytes()))
}

/// 64-bit FNV-1a.
fn fnv1a_64(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |h, &b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

/// `def` with its [`FINGERPRINT_TAG`] (replacing any it had).
pub fn fingerprinted(mut def: TaskDefinition) -> TaskDefinition {
    let print = fingerprint(&def);
    def.tags.retain(|(k, _)| k != FINGERPRINT_TAG);
    def.tags.push((FINGERPRINT_TAG.to_string(), print));
    def
}

/// The `startedBy` of the cleanup task of `user_id`: a destroy that resumes finds the task an
/// earlier one launched by it (ListTasks).
pub fn cleanup_started_by(user_id: &str) -> String {
    format!("efs-cleanup-{user_id}")
}

/// Which keys the user's secret holds, so that the task only references keys that exist
/// (ECS refuses to start a task whose secret reference names a missing JSON key).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SecretKeys {
    pub foundry_login: bool,
    pub admin_key: bool,
    pub s3_keys: bool,
}

/// The Foundry server of one user.
pub struct FoundryTask<'a> {
    pub user_id: &'a str,
    pub sanitized_username: &'a str,
    pub access_point_id: &'a str,
    pub secret_arn: Option<&'a str>,
    pub secret_keys: SecretKeys,
    pub foundry_version: &'a str,
    /// The log group exists with its retention: the awslogs driver must not create it
    /// (it would come back without retention if it was deleted while the task stops).
    pub log_group_ready: bool,
}

pub fn foundry_task_definition(cfg: &Deployment<'_>, t: &FoundryTask<'_>) -> TaskDefinition {
    let host = names::host(t.sanitized_username, cfg.domain_name);
    let mut environment: Vec<(String, String)> = [
        ("CONTAINER_PRESERVE_CONFIG", "true".to_string()),
        ("FOUNDRY_HOSTNAME", host),
        ("FOUNDRY_LOCAL_HOSTNAME", names::target_group_name(t.sanitized_username)),
        ("FOUNDRY_PROXY_SSL", "true".to_string()),
        ("FOUNDRY_IP_DISCOVERY", "false".to_string()),
        ("FOUNDRY_TELEMETRY", "false".to_string()),
        ("FOUNDRY_MINIFY_STATIC_FILES", "true".to_string()),
        ("FOUNDRY_COMPRESS_WEBSOCKET", "true".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let mut secrets = Vec::new();
    if let Some(arn) = t.secret_arn.filter(|a| !a.is_empty()) {
        let key = |k: &str| format!("{arn}:{k}::");
        if t.secret_keys.foundry_login {
            secrets.push(("FOUNDRY_USERNAME".to_string(), key("username")));
            secrets.push(("FOUNDRY_PASSWORD".to_string(), key("password")));
        }
        if t.secret_keys.admin_key {
            secrets.push(("FOUNDRY_ADMIN_KEY".to_string(), key("admin_key")));
        }
        if t.secret_keys.s3_keys {
            // The image reads AWS credentials from the environment when FOUNDRY_AWS_CONFIG=true.
            environment.push(("FOUNDRY_AWS_CONFIG".to_string(), "true".to_string()));
            environment.push(("AWS_REGION".to_string(), cfg.region.to_string()));
            secrets.push(("AWS_ACCESS_KEY_ID".to_string(), key("s3_access_key_id")));
            secrets.push(("AWS_SECRET_ACCESS_KEY".to_string(), key("s3_secret_access_key")));
        }
    }
    TaskDefinition {
        family: names::task_family(t.user_id),
        cpu: "1024".into(),
        memory: "2048".into(),
        execution_role_arn: cfg.execution_role_arn.to_string(),
        task_role_arn: cfg.task_role_arn.to_string(),
        containers: vec![ContainerDef {
            name: FOUNDRY_CONTAINER.into(),
            image: format!("felddy/foundryvtt:{}", t.foundry_version),
            essential: true,
            memory_mib: Some(2048),
            port: Some(FOUNDRY_PORT),
            environment,
            secrets,
            mounts: vec![MountPoint {
                source_volume: DATA_VOLUME.into(),
                container_path: "/data".into(),
                read_only: false,
            }],
            log: Some(LogConfig {
                group: names::log_group(t.user_id),
                region: cfg.region.to_string(),
                stream_prefix: "foundry".into(),
                create_group: !t.log_group_ready,
            }),
            ..Default::default()
        }],
        volumes: vec![EfsVolume {
            name: DATA_VOLUME.into(),
            file_system_id: cfg.file_system_id.to_string(),
            root_directory: None,
            access_point_id: Some(t.access_point_id.to_string()),
            transit_encryption: true,
        }],
        scratch_volumes: Vec::new(),
        tags: vec![
            ("UserId".into(), t.user_id.to_string()),
            ("Application".into(), "FoundryVTT".into()),
        ],
    }
}

/// A shell prologue that refuses an empty or unsafe `USER_ID` (it names a directory
/// that is removed or chowned recursively).
const CHECK_USER_ID: &str = r#"case "$USER_ID" in ''|*[!A-Za-z0-9]*) echo "refusing unsafe USER_ID '$USER_ID'"; exit 2;; esac; D="/efs/foundry-instances/$USER_ID""#;

/// The log group of a helper task family.
pub fn helper_log_group(family: &str) -> String {
    format!("/aws/ecs/{family}")
}

fn helper_task(cfg: &Deployment<'_>, family: &str, container: &str, prefix: &str, script: String) -> TaskDefinition {
    TaskDefinition {
        family: family.to_string(),
        cpu: "256".into(),
        memory: "512".into(),
        execution_role_arn: cfg.execution_role_arn.to_string(),
        task_role_arn: cfg.task_role_arn.to_string(),
        containers: vec![ContainerDef {
            name: container.to_string(),
            image: "alpine:latest".into(),
            essential: true,
            memory_mib: Some(512),
            command: vec!["sh".into(), "-c".into(), script],
            mounts: vec![MountPoint {
                source_volume: "efs-root".into(),
                container_path: "/efs".into(),
                read_only: false,
            }],
            log: Some(LogConfig {
                group: helper_log_group(family),
                region: cfg.region.to_string(),
                stream_prefix: prefix.to_string(),
                create_group: true,
            }),
            ..Default::default()
        }],
        volumes: vec![EfsVolume {
            name: "efs-root".into(),
            file_system_id: cfg.file_system_id.to_string(),
            root_directory: Some("/".into()),
            access_point_id: None,
            transit_encryption: true,
        }],
        scratch_volumes: Vec::new(),
        tags: vec![("Application".into(), "FoundryVTT".into())],
    }
}

/// The EFS cleanup task.
pub fn cleanup_task_definition(cfg: &Deployment<'_>) -> TaskDefinition {
    let script = format!(
        r#"echo "Starting EFS cleanup for user $USER_ID"; {CHECK_USER_ID}; if [ -d "$D" ]; then rm -rf "$D" && echo "Removed $D"; else echo "Nothing to clean: $D does not exist"; fi"#
    );
    helper_task(cfg, CLEANUP_FAMILY, CLEANUP_CONTAINER, "cleanup", script)
}

pub const BACKUP_FAMILY: &str = "foundry-world-backup";
/// The backup task's container that waits for the ended run's tasks to stop (AWS CLI).
pub const BACKUP_WAIT_CONTAINER: &str = "wait";
/// The backup task's container that reads the user's directory (alpine).
pub const BACKUP_ARCHIVE_CONTAINER: &str = "archive";
/// The backup task's container that writes to S3 (AWS CLI); its exit code is the task's.
pub const BACKUP_UPLOAD_CONTAINER: &str = "upload";
const SCRATCH_VOLUME: &str = "scratch";

/// The image of the file side of the helper tasks that need a pinned toolset: alpine, for
/// busybox's tar, gzip, find, stat, sort, xargs and sha256sum, nothing else. From the ECR
/// Public mirror of Docker's official images, so that Fargate's pulls meet no Docker Hub
/// rate limit; pinned to a patch release so that the tools the scripts rely on never change
/// under them (and the task definition's fingerprint changes with the pin).
pub const ALPINE_IMAGE: &str = "public.ecr.aws/docker/library/alpine:3.22.1";
/// The image of the S3 side: the official AWS CLI v2 image (Amazon Linux 2 based; it has
/// no tar or gzip, hence the two containers), from ECR Public, pinned to a release.
pub const AWS_CLI_IMAGE: &str = "public.ecr.aws/aws-cli/aws-cli:2.26.5";

/// The deployment's backup settings that the backup task's definition holds.
#[derive(Debug, Clone, Copy)]
pub struct BackupTarget<'a> {
    pub bucket: &'a str,
    /// The role the backup task runs with: write access to the backup bucket, nothing else.
    pub task_role_arn: &'a str,
}

/// The `startedBy` of a backup of `user_id`: finds the user's running backup (ListTasks).
pub fn backup_started_by(user_id: &str) -> String {
    format!("backup-{user_id}")
}

/// The world backup task: `wait` (AWS CLI) waits until the ended run's tasks have
/// stopped; then `archive` (alpine) writes the manifest and, unless the tree is
/// unchanged, the archive to a task-local scratch volume, reading EFS read-only; then
/// `upload` (AWS CLI, the task role's credentials) puts it in the backup bucket. The user,
/// the previous manifest and the cause come as environment overrides.
pub fn backup_task_definition(cfg: &Deployment<'_>, target: &BackupTarget<'_>) -> TaskDefinition {
    use super::backup::{ARCHIVE_SCRIPT, UPLOAD_SCRIPT, WAIT_SCRIPT};
    let log = |prefix: &str| LogConfig {
        group: helper_log_group(BACKUP_FAMILY),
        region: cfg.region.to_string(),
        stream_prefix: prefix.to_string(),
        create_group: true,
    };
    let scratch = MountPoint {
        source_volume: SCRATCH_VOLUME.into(),
        container_path: "/scratch".into(),
        read_only: false,
    };
    TaskDefinition {
        family: BACKUP_FAMILY.to_string(),
        cpu: "512".into(),
        memory: "1024".into(),
        execution_role_arn: cfg.execution_role_arn.to_string(),
        task_role_arn: target.task_role_arn.to_string(),
        containers: vec![
            ContainerDef {
                name: BACKUP_WAIT_CONTAINER.into(),
                image: AWS_CLI_IMAGE.into(),
                essential: false,
                memory_mib: Some(256),
                entry_point: vec!["sh".into(), "-c".into()],
                command: vec![WAIT_SCRIPT.to_string()],
                environment: vec![
                    ("CLUSTER".to_string(), cfg.cluster.to_string()),
                    ("AWS_DEFAULT_REGION".to_string(), cfg.region.to_string()),
                ],
                log: Some(log("wait")),
                ..Default::default()
            },
            ContainerDef {
                name: BACKUP_ARCHIVE_CONTAINER.into(),
                image: ALPINE_IMAGE.into(),
                essential: false,
                depends_on: vec![(BACKUP_WAIT_CONTAINER.to_string(), "SUCCESS".to_string())],
                memory_mib: Some(256),
                command: vec!["sh".into(), "-c".into(), ARCHIVE_SCRIPT.to_string()],
                mounts: vec![
                    MountPoint {
                        source_volume: "efs-root".into(),
                        container_path: "/efs".into(),
                        read_only: true,
                    },
                    scratch.clone(),
                ],
                log: Some(log("archive")),
                ..Default::default()
            },
            ContainerDef {
                name: BACKUP_UPLOAD_CONTAINER.into(),
                image: AWS_CLI_IMAGE.into(),
                essential: true,
                memory_mib: Some(512),
                entry_point: vec!["sh".into(), "-c".into()],
                command: vec![UPLOAD_SCRIPT.to_string()],
                environment: vec![
                    ("BACKUP_BUCKET".to_string(), target.bucket.to_string()),
                    ("AWS_DEFAULT_REGION".to_string(), cfg.region.to_string()),
                ],
                mounts: vec![scratch],
                log: Some(log("upload")),
                depends_on: vec![(BACKUP_ARCHIVE_CONTAINER.to_string(), "SUCCESS".to_string())],
                ..Default::default()
            },
        ],
        volumes: vec![EfsVolume {
            name: "efs-root".into(),
            file_system_id: cfg.file_system_id.to_string(),
            root_directory: Some("/".into()),
            access_point_id: None,
            transit_encryption: true,
        }],
        scratch_volumes: vec![SCRATCH_VOLUME.to_string()],
        tags: vec![("Application".into(), "FoundryVTT".into())],
    }
}

pub const RESTORE_FAMILY: &str = "foundry-world-restore";
/// The restore task's container that downloads the chosen backup (AWS CLI).
pub const RESTORE_FETCH_CONTAINER: &str = "fetch";
/// The restore task's container that replaces the user's directory (alpine); its exit code
/// is the task's.
pub const RESTORE_CONTAINER: &str = "restore";

/// The world restore task: `fetch` (AWS CLI, the backup task role's credentials) downloads
/// one version of the user's backup to a task-local scratch volume; then `restore` (alpine,
/// EFS read-write) replaces the user's directory with it behind a marker file. Started with
/// [`backup_started_by`] like a backup, so that one check finds either. The user and the
/// version come as environment overrides.
pub fn restore_task_definition(cfg: &Deployment<'_>, target: &BackupTarget<'_>) -> TaskDefinition {
    use super::backup::{FETCH_SCRIPT, RESTORE_SCRIPT};
    let log = |prefix: &str| LogConfig {
        group: helper_log_group(RESTORE_FAMILY),
        region: cfg.region.to_string(),
        stream_prefix: prefix.to_string(),
        create_group: true,
    };
    let scratch = MountPoint {
        source_volume: SCRATCH_VOLUME.into(),
        container_path: "/scratch".into(),
        read_only: false,
    };
    TaskDefinition {
        family: RESTORE_FAMILY.to_string(),
        cpu: "512".into(),
        memory: "1024".into(),
        execution_role_arn: cfg.execution_role_arn.to_string(),
        task_role_arn: target.task_role_arn.to_string(),
        containers: vec![
            ContainerDef {
                name: RESTORE_FETCH_CONTAINER.into(),
                image: AWS_CLI_IMAGE.into(),
                essential: false,
                memory_mib: Some(512),
                entry_point: vec!["sh".into(), "-c".into()],
                command: vec![FETCH_SCRIPT.to_string()],
                environment: vec![
                    ("BACKUP_BUCKET".to_string(), target.bucket.to_string()),
                    ("AWS_DEFAULT_REGION".to_string(), cfg.region.to_string()),
                ],
                mounts: vec![scratch.clone()],
                log: Some(log("fetch")),
                ..Default::default()
            },
            ContainerDef {
                name: RESTORE_CONTAINER.into(),
                image: ALPINE_IMAGE.into(),
                essential: true,
                depends_on: vec![(RESTORE_FETCH_CONTAINER.to_string(), "SUCCESS".to_string())],
                memory_mib: Some(256),
                command: vec!["sh".into(), "-c".into(), RESTORE_SCRIPT.to_string()],
                mounts: vec![
                    MountPoint {
                        source_volume: "efs-root".into(),
                        container_path: "/efs".into(),
                        read_only: false,
                    },
                    scratch,
                ],
                log: Some(log("restore")),
                ..Default::default()
            },
        ],
        volumes: vec![EfsVolume {
            name: "efs-root".into(),
            file_system_id: cfg.file_system_id.to_string(),
            root_directory: Some("/".into()),
            access_point_id: None,
            transit_encryption: true,
        }],
        scratch_volumes: vec![SCRATCH_VOLUME.to_string()],
        tags: vec![("Application".into(), "FoundryVTT".into())],
    }
}

/// RunTask for `task_definition` with the deployment's network settings.
pub fn run_task(cfg: &Deployment<'_>, task_definition: &str, overrides: Vec<ContainerOverride>) -> RunTask {
    RunTask {
        cluster: cfg.cluster.to_string(),
        task_definition: task_definition.to_string(),
        subnets: cfg.subnets.to_vec(),
        security_groups: vec![cfg.security_group.to_string()],
        assign_public_ip: false,
        overrides,
        started_by: None,
        client_token: None,
    }
}

/// `update-version`'s accepted values.
pub fn valid_version(v: &str) -> bool {
    if matches!(v, "13" | "12" | "11" | "release" | "latest") {
        return true;
    }
    let parts: Vec<&str> = v.split('.').collect();
    (parts.len() == 2 || parts.len() == 3)
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment() -> Deployment<'static> {
        static SUBNETS: [String; 0] = [];
        Deployment {
            region: "us-east-1",
            domain_name: "foundry.example.com",
            cluster: "foundry-vtt-cluster",
            file_system_id: "fs-12345678",
            execution_role_arn: "arn:aws:iam::123456789012:role/exec",
            task_role_arn: "arn:aws:iam::123456789012:role/task",
            subnets: &SUBNETS,
            security_group: "sg-1",
        }
    }

    fn task<'a>(keys: SecretKeys) -> FoundryTask<'a> {
        FoundryTask {
            user_id: "123456789012345678",
            sanitized_username: "alice",
            access_point_id: "fsap-0123",
            secret_arn: Some("arn:aws:secretsmanager:us-east-1:1:secret:foundry-credentials-1-AbCdEf"),
            secret_keys: keys,
            foundry_version: "13",
            log_group_ready: true,
        }
    }

    #[test]
    fn foundry_task_follows_the_spec_without_a_sidecar() {
        let cfg = deployment();
        let td = foundry_task_definition(
            &cfg,
            &task(SecretKeys {
                foundry_login: true,
                admin_key: true,
                s3_keys: true,
            }),
        );
        assert_eq!(td.family, "foundry-123456789012345678");
        assert_eq!((td.cpu.as_str(), td.memory.as_str()), ("1024", "2048"));
        assert_eq!(td.containers.len(), 1);
        let c = &td.containers[0];
        assert_eq!(c.image, "felddy/foundryvtt:13");
        assert_eq!(c.port, Some(30000));
        assert!(c.command.is_empty());
        let env: Vec<&str> = c.environment.iter().map(|(k, _)| k.as_str()).collect();
        assert!(env.contains(&"FOUNDRY_AWS_CONFIG"));
        assert!(c
            .environment
            .contains(&("FOUNDRY_HOSTNAME".to_string(), "alice.foundry.example.com".to_string())));
        let secret_names: Vec<&str> = c.secrets.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            secret_names,
            [
                "FOUNDRY_USERNAME",
                "FOUNDRY_PASSWORD",
                "FOUNDRY_ADMIN_KEY",
                "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY"
            ]
        );
        assert!(c.secrets[1].1.ends_with(":password::"));
        assert_eq!(td.volumes[0].access_point_id.as_deref(), Some("fsap-0123"));
        assert_eq!(c.log.as_ref().unwrap().group, "/aws/ecs/foundry-123456789012345678");
    }

    #[test]
    fn missing_secret_keys_are_not_referenced() {
        let cfg = deployment();
        let td = foundry_task_definition(
            &cfg,
            &task(SecretKeys {
                foundry_login: false,
                admin_key: true,
                s3_keys: false,
            }),
        );
        let names: Vec<&str> = td.containers[0].secrets.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["FOUNDRY_ADMIN_KEY"]);
        assert!(!td.containers[0]
            .environment
            .iter()
            .any(|(k, _)| k == "FOUNDRY_AWS_CONFIG"));
    }

    #[test]
    fn the_cleanup_task_takes_the_user_from_the_environment() {
        let cfg = deployment();
        let c = cleanup_task_definition(&cfg);
        assert_eq!(c.family, "foundry-efs-cleanup");
        assert_eq!(c.containers[0].name, CLEANUP_CONTAINER);
        assert!(c.containers[0].command[2].contains("\"$USER_ID\""));
        assert_eq!(c.volumes[0].root_directory.as_deref(), Some("/"));
    }

    #[test]
    fn the_fingerprint_follows_the_content_and_ignores_the_tags() {
        let cfg = deployment();
        let def = cleanup_task_definition(&cfg);
        let print = fingerprint(&def);
        assert_eq!(print.len(), 16);
        assert!(print.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(fingerprint(&cleanup_task_definition(&cfg)), print);

        let tagged = fingerprinted(def.clone());
        assert_eq!(fingerprint(&tagged), print, "tags are not part of the content");
        let tags: Vec<_> = tagged.tags.iter().filter(|(k, _)| k == FINGERPRINT_TAG).collect();
        assert_eq!(tags, [&(FINGERPRINT_TAG.to_string(), print.clone())]);
        assert_eq!(fingerprinted(tagged.clone()), tagged, "one fingerprint tag, not two");

        let mut other = def.clone();
        other.containers[0].image = "alpine:3.20".into();
        assert_ne!(fingerprint(&other), print);
        let other_fs = cleanup_task_definition(&Deployment {
            file_system_id: "fs-other",
            ..cfg
        });
        assert_ne!(fingerprint(&other_fs), print);
    }

    #[test]
    fn fnv1a_64_matches_the_reference_vectors() {
        assert_eq!(fnv1a_64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a_64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a_64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn the_cleanup_task_started_by_fits_run_task() {
        let id = "a".repeat(64);
        let by = cleanup_started_by(&id);
        assert!(by.len() <= 128);
        assert!(by.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(cleanup_started_by("123"), "efs-cleanup-123");
    }

    #[test]
    fn accepted_versions() {
        for ok in ["13", "12", "11", "release", "latest", "13.346", "13.346.0"] {
            assert!(valid_version(ok), "{ok}");
        }
        for bad in ["", "14", "v13", "13.", "1.2.3.4", "13.x", "١٣.1"] {
            assert!(!valid_version(bad), "{bad}");
        }
    }
}
