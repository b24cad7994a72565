//! The moto harness: shared by the integration tests that talk to local AWS. A moto server on
//! 127.0.0.1:5055 (the tests' own, so that they never touch the `make run` stack on 5000) with the base infrastructure of a deployment (ECS cluster, EFS, ALB and its
//! HTTPS listener, hosted zone, the DynamoDB tables with their GSIs). See
//! `tests/local-aws/README.md`.
//!
//! ```ignore
//! mod moto_env;
//!
//! #[tokio::test]
//! async fn reads_the_instances_table() {
//!     let aws = moto_env::local_aws();
//!     let table = &aws.env["INSTANCE_TABLE_NAME"];
//!     let ddb = aws_sdk_dynamodb::Client::new(&moto_env::sdk_config().await);
//!     let user = moto_env::unique_user_id(); // tests share one moto: never reuse ids, never reset
//!     // ...
//! }
//! ```
//!
//! Every test binary includes this module, and each uses only part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The port of the tests' moto. `make run` uses 5000; the tests keep to their own server so
/// that what they create never shows up in the local run (and the other way round).
pub const MOTO_PORT: u16 = 5055;

/// The port the tests use: [`MOTO_PORT`], or `FOUNDRY_TEST_MOTO_PORT` when set (`make iam-check`
/// records the function's requests against a moto of its own).
pub fn moto_port() -> u16 {
    std::env::var("FOUNDRY_TEST_MOTO_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(MOTO_PORT)
}

/// The local AWS a test process shares with every other test (and with `make run`).
pub struct LocalAws {
    /// `http://127.0.0.1:5055`
    pub endpoint: String,
    /// The env file written by `localaws.py provision`: every variable the function reads
    /// (CLUSTER_NAME, INSTANCE_TABLE_NAME, PRIVATE_SUBNET_IDS, ALB_HTTPS_LISTENER_ARN, …) plus
    /// AWS_ENDPOINT_URL, AWS_REGION, test credentials, ADMIN_USER_IDS, SESSION_LEAD_SECONDS.
    pub env: BTreeMap<String, String>,
}

impl LocalAws {
    /// A variable of the env file; panics with its name if it is missing.
    pub fn var(&self, key: &str) -> &str {
        self.env
            .get(key)
            .unwrap_or_else(|| panic!("local AWS env file has no {key}"))
    }
}

/// The repository root (where `.venv/` and `tests/local-aws/` live).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Starts moto (or reuses the one already answering on 127.0.0.1:5055) and provisions the base
/// infrastructure, once per test process. Provisioning is idempotent and serialized by a file
/// lock, so parallel test processes are safe. Never resets moto: other tests share it.
///
/// Panics with a clear message if the project venv is missing (run `make test` once).
pub fn local_aws() -> &'static LocalAws {
    static LOCAL_AWS: OnceLock<LocalAws> = OnceLock::new();
    LOCAL_AWS.get_or_init(start_and_provision)
}

fn start_and_provision() -> LocalAws {
    let root = repo_root();
    let python = root.join(".venv/bin/python");
    let script = root.join("tests/local-aws/localaws.py");
    if !python.exists() {
        panic!(
            "\n\nlocal AWS is not set up: {} is missing.\n\
             Run `make test` once from {} (it creates .venv with moto and then runs cargo test);\n\
             after that, plain `cargo test` works too.\n\n",
            python.display(),
            root.display()
        );
    }
    let port = moto_port();
    let env_file = root.join(format!("target/local-aws/test-env-{port}"));
    let output = Command::new(&python)
        .arg(&script)
        .arg("up")
        .arg("--port")
        .arg(port.to_string())
        .arg("--env-out")
        .arg(&env_file)
        .current_dir(&root)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    if !output.status.success() {
        panic!(
            "`{} {} up` failed ({}):\n{}{}\nIf the venv is broken, delete .venv and run `make test`.",
            python.display(),
            script.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let env = parse_env_file(&env_file);
    let endpoint = env
        .get("AWS_ENDPOINT_URL")
        .cloned()
        .unwrap_or_else(|| format!("http://127.0.0.1:{port}"));
    LocalAws { endpoint, env }
}

/// Parses `KEY=VALUE` lines (no quotes; blank lines and `#` comments ignored).
pub fn parse_env_file(path: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// An `SdkConfig` for every SDK client in tests: the local endpoint, region us-east-1, static
/// test credentials, no host environment (AWS_PROFILE, AWS_ENDPOINT_URL_* etc. are ignored).
pub async fn sdk_config() -> aws_config::SdkConfig {
    let aws = local_aws();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .empty_test_environment()
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(aws.endpoint.clone())
        .test_credentials()
        .load()
        .await
}

/// A user id no other test (in this or another process) gets: 18 decimal digits, like a
/// Discord id. Tests share one moto, so every test uses fresh ids and never resets it.
pub fn unique_user_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let pid = u64::from(std::process::id()) % 100_000;
    format!("9{pid:05}{:012}", (micros + n * 1_000_003) % 1_000_000_000_000)
}

// ---------------------------------------------------------------------------------------------
// ECS task progression in moto (see tests/local-aws/README.md, "ECS tasks").

/// Sets how ECS tasks progress, through moto's state manager:
/// `POST /moto-api/state-manager/set-transition`
/// `{"model_name": "ecs::task/<family>", "transition": <transition>}`.
///
/// `family` = `Some("foundry-<userId>")` scopes it to tasks of that task-definition family
/// (use this: other tests run concurrently); `None` changes the default for every task.
/// `transition` is JSON, e.g. `{"progression":"manual","times":1000000}` (hold: the task stays
/// where it is), `{"progression":"manual","times":1}` (one step per DescribeTasks),
/// `{"progression":"time","seconds":1}` (one step per second, the default), or
/// `{"progression":"immediate"}` (straight to RUNNING, or to STOPPED once stopped).
pub fn set_ecs_transition(family: Option<&str>, transition: &str) {
    let body = format!(
        r#"{{"model_name":"{}","transition":{transition}}}"#,
        ecs_model_name(family)
    );
    let (status, text) = moto_api("POST", "/moto-api/state-manager/set-transition", &body);
    assert!(
        status == 200 || status == 201,
        "set-transition answered {status}: {text}"
    );
}

/// Removes a setting made with [`set_ecs_transition`] (a family falls back to the default).
pub fn unset_ecs_transition(family: Option<&str>) {
    let body = format!(r#"{{"model_name":"{}"}}"#, ecs_model_name(family));
    let (status, text) = moto_api("POST", "/moto-api/state-manager/unset-transition", &body);
    assert!(
        status == 200 || status == 201,
        "unset-transition answered {status}: {text}"
    );
}

/// Holds every task of `family` where it is (a new task stays PROVISIONING) until
/// [`set_task_status`] or another transition moves it.
pub fn hold_ecs_tasks(family: &str) {
    set_ecs_transition(Some(family), r#"{"progression":"manual","times":1000000}"#);
}

/// Sets one task's lastStatus directly (PROVISIONING, PENDING, ACTIVATING, RUNNING,
/// DEACTIVATING, STOPPING, DEPROVISIONING, STOPPED); `exit_code` is the container exit code the
/// task reports once STOPPED. Only the patched server started by `localaws.py up` has this:
/// `POST /moto-api/localaws/ecs/set-task-status {"task":"<arn or id>","lastStatus":"PENDING"}`.
pub fn set_task_status(task: &str, last_status: &str, exit_code: Option<i32>) {
    let exit = exit_code.map(|c| format!(r#","exitCode":{c}"#)).unwrap_or_default();
    let body = format!(r#"{{"task":"{task}","lastStatus":"{last_status}"{exit}}}"#);
    let (status, text) = moto_api("POST", "/moto-api/localaws/ecs/set-task-status", &body);
    assert_eq!(status, 200, "set-task-status answered {status}: {text}");
}

fn ecs_model_name(family: Option<&str>) -> String {
    match family {
        Some(f) => format!("ecs::task/{f}"),
        None => "ecs::task".to_string(),
    }
}

/// A plain HTTP/1.1 call to moto's own API (`/moto-api/...`); returns (status, body).
pub fn moto_api(method: &str, path: &str, body: &str) -> (u16, String) {
    local_aws();
    let port = moto_port();
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("cannot connect to moto on 127.0.0.1:{port}: {e}"));
    stream.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("write to moto");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("read from moto");
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Points the alias record `name` of the local hosted zone at `target` (as an operator
/// editing it behind the function's back would), keeping the ALB's zone id.
pub async fn move_alias_target(name: &str, target: &str) {
    use aws_sdk_route53::types::{AliasTarget, Change, ChangeAction, ChangeBatch, ResourceRecordSet, RrType};
    let aws = local_aws();
    let r53 = aws_sdk_route53::Client::new(&sdk_config().await);
    let alias = AliasTarget::builder()
        .hosted_zone_id(aws.var("ALB_ZONE_ID"))
        .dns_name(target)
        .evaluate_target_health(false)
        .build()
        .expect("alias target");
    let set = ResourceRecordSet::builder()
        .name(name)
        .r#type(RrType::A)
        .alias_target(alias)
        .build()
        .expect("record set");
    let change = Change::builder()
        .action(ChangeAction::Upsert)
        .resource_record_set(set)
        .build()
        .expect("change");
    r53.change_resource_record_sets()
        .hosted_zone_id(aws.var("ROUTE53_HOSTED_ZONE_ID").trim_start_matches("/hostedzone/"))
        .change_batch(ChangeBatch::builder().changes(change).build().expect("batch"))
        .send()
        .await
        .expect("UPSERT");
}
