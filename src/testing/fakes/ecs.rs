//! The ECS fake: task definitions with revisions, tasks that move along a status script.
//!
//! ## Task status scripts
//!
//! A new task starts at the first status of its script. Each DescribeTasks of the task
//! reports its current status, then moves it one step along the script; the last step
//! is sticky. So with the default script `["PENDING", "RUNNING"]` the first describe
//! after RunTask sees `PENDING` and every later one `RUNNING`.
//!
//! * [`FakeEcs::set_launch_script`] sets the script of every family that has none of
//!   its own (tasks already launched keep theirs).
//! * [`FakeEcs::set_family_script`] sets the script of one family, e.g.
//!   `["PROVISIONING", "PENDING", "STOPPED"]` for a task that never starts.
//! * [`FakeEcs::set_auto_stop`] is the short form for a task that runs to completion by
//!   itself, like the EFS cleanup task: `["PENDING", "RUNNING", "STOPPED"]`.
//!
//! [`FakeEcs::set_task_status`] and StopTask take a task off its script: it then stays
//! where it was put. A task gets a private IP (`10.0.x.y`, unique per task) the first
//! time it is RUNNING and keeps it.
//!
//! When a task reaches `STOPPED` other than by StopTask, its stopped reason is
//! `Essential container in task exited`. Once STOPPED, every container reports an exit
//! code: the one set by [`FakeEcs::set_exit_code`] for its family and container, else 0.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{aws_err, lock, ops, Env, ACCOUNT_ID, HEX, REGION};
use crate::error::{AwsError, AwsErrorKind};
use crate::managers::ecs::{ContainerState, DescribedTaskDefinition, Ecs, RunTask, TaskDefinition, TaskInfo};
use crate::managers::Page;

const SERVICE: &str = "ecs";
const STOPPED: &str = "STOPPED";
const RUNNING: &str = "RUNNING";

/// A registered revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeTaskDefinition {
    pub arn: String,
    pub family: String,
    pub revision: u32,
    /// False once deregistered (INACTIVE).
    pub active: bool,
    pub definition: TaskDefinition,
}

/// A task as the fake knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeTask {
    pub arn: String,
    pub cluster: String,
    pub task_definition_arn: String,
    pub family: String,
    /// `lastStatus`.
    pub status: String,
    pub desired_status: String,
    pub private_ip: Option<String>,
    pub stopped_reason: Option<String>,
    pub started_at: Option<i64>,
    pub stopped_at: Option<i64>,
    /// The request that launched it.
    pub request: RunTask,
    /// Container names of its definition, in order.
    pub containers: Vec<String>,
    /// The remaining script; `None` once a test or StopTask took the task off it.
    script: Option<(Vec<&'static str>, usize)>,
    /// When RunTask launched it (the fakes' clock).
    launched_at: Option<i64>,
}

#[derive(Default)]
struct State {
    defs: Vec<FakeTaskDefinition>,
    revisions: HashMap<String, u32>,
    tasks: Vec<FakeTask>,
    tokens: HashMap<String, String>,
    run_requests: Vec<RunTask>,
    launch_script: Vec<&'static str>,
    family_scripts: HashMap<String, Vec<&'static str>>,
    exit_codes: HashMap<(String, String), i32>,
    run_failures: Vec<String>,
    next_ip: u32,
    /// Seconds (on the fakes' clock) a new task stays at its first status before its script
    /// goes on (see [`FakeEcs::set_start_delay`]).
    start_delay: Option<i64>,
}

/// The in-memory ECS. See the module documentation for the status scripts.
pub struct FakeEcs {
    env: Arc<Env>,
    state: Mutex<State>,
}

fn invalid(operation: &'static str, message: impl Into<String>) -> AwsError {
    aws_err(
        SERVICE,
        operation,
        AwsErrorKind::Invalid,
        "InvalidParameterException",
        message,
    )
}

fn valid_family(family: &str) -> bool {
    !family.is_empty()
        && family.len() <= 255
        && family
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn set_status(task: &mut FakeTask, status: &str, next_ip: &mut u32, now: Option<i64>) {
    task.status = status.to_string();
    if status == RUNNING {
        if task.private_ip.is_none() {
            let n = *next_ip;
            *next_ip += 1;
            task.private_ip = Some(format!("10.0.{}.{}", (n / 254) % 256, n % 254 + 1));
        }
        if task.started_at.is_none() {
            task.started_at = now;
        }
    }
    if status == STOPPED {
        task.desired_status = STOPPED.to_string();
        if task.stopped_reason.is_none() {
            task.stopped_reason = Some("Essential container in task exited".to_string());
        }
        if task.stopped_at.is_none() {
            task.stopped_at = now;
        }
    }
}

impl FakeEcs {
    pub const SERVICE: &'static str = SERVICE;
    pub const REGISTER_TASK_DEFINITION: &'static str = ops::REGISTER_TASK_DEFINITION;
    pub const DEREGISTER_TASK_DEFINITION: &'static str = ops::DEREGISTER_TASK_DEFINITION;
    pub const LIST_TASK_DEFINITIONS: &'static str = ops::LIST_TASK_DEFINITIONS;
    pub const DESCRIBE_TASK_DEFINITION: &'static str = ops::DESCRIBE_TASK_DEFINITION;
    pub const RUN_TASK: &'static str = ops::RUN_TASK;
    pub const DESCRIBE_TASKS: &'static str = ops::DESCRIBE_TASKS;
    pub const STOP_TASK: &'static str = ops::STOP_TASK;
    pub const LIST_TASKS: &'static str = ops::LIST_TASKS;

    /// A standalone fake reporting to `faults`.
    pub fn new(faults: Arc<super::Faults>) -> Self {
        FakeEcs::with_env(Env::new(faults))
    }

    pub(crate) fn with_env(env: Arc<Env>) -> Self {
        FakeEcs {
            env,
            state: Mutex::new(State {
                launch_script: vec!["PENDING", RUNNING],
                ..State::default()
            }),
        }
    }

    /// The script of every family without its own (default `["PENDING", "RUNNING"]`).
    /// An empty script is ignored.
    pub fn set_launch_script(&self, statuses: Vec<&'static str>) {
        if !statuses.is_empty() {
            lock(&self.state).launch_script = statuses;
        }
    }

    /// The script of tasks of `family` launched from now on. An empty script removes it.
    pub fn set_family_script(&self, family: &str, statuses: Vec<&'static str>) {
        let mut st = lock(&self.state);
        if statuses.is_empty() {
            st.family_scripts.remove(family);
        } else {
            st.family_scripts.insert(family.to_string(), statuses);
        }
    }

    /// Tasks of `family` run to completion by themselves: PENDING → RUNNING → STOPPED,
    /// one step per DescribeTasks, exiting with the codes of [`FakeEcs::set_exit_code`].
    pub fn set_auto_stop(&self, family: &str) {
        self.set_family_script(family, vec!["PENDING", RUNNING, STOPPED]);
    }

    /// The exit code `container` of tasks of `family` reports once STOPPED (default 0).
    pub fn set_exit_code(&self, family: &str, container: &str, code: i32) {
        lock(&self.state)
            .exit_codes
            .insert((family.to_string(), container.to_string()), code);
    }

    /// Tasks stay at the first status of their script until `seconds` have passed on the
    /// fakes' clock since RunTask (a Fargate task takes about a minute to start); only then
    /// does each DescribeTasks move them along. Needs [`FakeAws::set_clock`](super::FakeAws::set_clock).
    pub fn set_start_delay(&self, seconds: i64) {
        lock(&self.state).start_delay = Some(seconds);
    }

    /// Puts a task at `status` and takes it off its script. Returns false when no such task.
    pub fn set_task_status(&self, task_arn: &str, status: &str) -> bool {
        let now = self.env.now();
        let mut st = lock(&self.state);
        let State { tasks, next_ip, .. } = &mut *st;
        match tasks.iter_mut().find(|t| t.arn == task_arn) {
            Some(t) => {
                t.script = None;
                set_status(t, status, next_ip, now);
                true
            }
            None => false,
        }
    }

    /// The task vanishes: DescribeTasks answers `None`, StopTask NotFound.
    pub fn forget_task(&self, task_arn: &str) {
        lock(&self.state).tasks.retain(|t| t.arn != task_arn);
    }

    /// The next RunTask answers with a `failures` entry (error code `RunTaskFailure`,
    /// kind Other, message the JSON of the failures) and starts no task.
    pub fn push_run_task_failure(&self, reason: &str) {
        lock(&self.state).run_failures.push(reason.to_string());
    }

    /// Every RunTask request that reached the fake (after the fault check), including
    /// idempotent retries, in order.
    pub fn run_requests(&self) -> Vec<RunTask> {
        lock(&self.state).run_requests.clone()
    }

    /// Every task, in launch order.
    pub fn tasks(&self) -> Vec<FakeTask> {
        lock(&self.state).tasks.clone()
    }

    /// The tasks not STOPPED.
    pub fn running_tasks(&self) -> Vec<FakeTask> {
        lock(&self.state)
            .tasks
            .iter()
            .filter(|t| t.status != STOPPED)
            .cloned()
            .collect()
    }

    /// One task.
    pub fn task(&self, task_arn: &str) -> Option<FakeTask> {
        lock(&self.state).tasks.iter().find(|t| t.arn == task_arn).cloned()
    }

    /// Every registered revision, in registration order.
    pub fn task_definitions(&self) -> Vec<FakeTaskDefinition> {
        lock(&self.state).defs.clone()
    }

    /// The revision a family, `family:revision` or ARN names (ACTIVE or not).
    pub fn task_definition(&self, reference: &str) -> Option<FakeTaskDefinition> {
        let st = lock(&self.state);
        resolve(&st.defs, reference, false).cloned()
    }
}

/// Resolves a family (latest ACTIVE revision), `family:revision` or ARN.
fn resolve<'a>(defs: &'a [FakeTaskDefinition], reference: &str, active_only: bool) -> Option<&'a FakeTaskDefinition> {
    if reference.starts_with("arn:") {
        return defs.iter().find(|d| d.arn == reference && (d.active || !active_only));
    }
    match reference.rsplit_once(':') {
        Some((family, rev)) => {
            let rev: u32 = rev.parse().ok()?;
            defs.iter()
                .find(|d| d.family == family && d.revision == rev && (d.active || !active_only))
        }
        None => defs.iter().rev().find(|d| d.family == reference && d.active),
    }
}

fn cluster_matches(task_cluster: &str, cluster: &str) -> bool {
    cluster == task_cluster
        || cluster
            .strip_suffix(task_cluster)
            .is_some_and(|p| p.ends_with(":cluster/"))
}

fn task_matches(task: &FakeTask, arn_or_id: &str) -> bool {
    task.arn == arn_or_id || (!arn_or_id.is_empty() && task.arn.ends_with(&format!("/{arn_or_id}")))
}

fn info(task: &FakeTask, exit_codes: &HashMap<(String, String), i32>) -> TaskInfo {
    let stopped = task.status == STOPPED;
    TaskInfo {
        task_arn: task.arn.clone(),
        last_status: task.status.clone(),
        desired_status: Some(task.desired_status.clone()),
        private_ip: task.private_ip.clone(),
        stopped_reason: task.stopped_reason.clone(),
        containers: task
            .containers
            .iter()
            .map(|name| ContainerState {
                name: name.clone(),
                exit_code: stopped.then(|| {
                    exit_codes
                        .get(&(task.family.clone(), name.clone()))
                        .copied()
                        .unwrap_or(0)
                }),
            })
            .collect(),
        started_at: task.started_at,
        stopped_at: task.stopped_at,
    }
}

#[async_trait]
impl Ecs for FakeEcs {
    async fn register_task_definition(&self, def: &TaskDefinition) -> Result<String, AwsError> {
        const OP: &str = ops::REGISTER_TASK_DEFINITION;
        self.env.enter(SERVICE, OP).await?;
        if !valid_family(&def.family) {
            return Err(aws_err(
                SERVICE,
                OP,
                AwsErrorKind::Invalid,
                "ClientException",
                format!("Family contains invalid characters: '{}'", def.family),
            ));
        }
        if def.containers.is_empty() {
            return Err(aws_err(
                SERVICE,
                OP,
                AwsErrorKind::Invalid,
                "ClientException",
                "Container list cannot be empty.",
            ));
        }
        for (i, c) in def.containers.iter().enumerate() {
            if c.name.is_empty() || c.image.is_empty() {
                return Err(aws_err(
                    SERVICE,
                    OP,
                    AwsErrorKind::Invalid,
                    "ClientException",
                    "Container.name and Container.image should not be null or empty.",
                ));
            }
            if def.containers[..i].iter().any(|o| o.name == c.name) {
                return Err(aws_err(
                    SERVICE,
                    OP,
                    AwsErrorKind::Invalid,
                    "ClientException",
                    format!("Duplicate container name: {}", c.name),
                ));
            }
        }
        if def.cpu.is_empty() || def.memory.is_empty() {
            return Err(aws_err(
                SERVICE,
                OP,
                AwsErrorKind::Invalid,
                "ClientException",
                "Fargate requires task definition to have cpu and memory.",
            ));
        }
        let mut st = lock(&self.state);
        let rev = st.revisions.entry(def.family.clone()).or_insert(0);
        *rev += 1;
        let revision = *rev;
        let arn = format!(
            "arn:aws:ecs:{REGION}:{ACCOUNT_ID}:task-definition/{}:{revision}",
            def.family
        );
        st.defs.push(FakeTaskDefinition {
            arn: arn.clone(),
            family: def.family.clone(),
            revision,
            active: true,
            definition: def.clone(),
        });
        Ok(arn)
    }

    async fn deregister_task_definition(&self, arn: &str) -> Result<(), AwsError> {
        const OP: &str = ops::DEREGISTER_TASK_DEFINITION;
        self.env.enter(SERVICE, OP).await?;
        let mut st = lock(&self.state);
        let target = resolve(&st.defs, arn, false).map(|d| d.arn.clone());
        match target {
            Some(a) if arn.contains(':') => {
                if let Some(d) = st.defs.iter_mut().find(|d| d.arn == a) {
                    d.active = false;
                }
                Ok(())
            }
            // A bare family is not a revision.
            Some(_) => Err(aws_err(
                SERVICE,
                OP,
                AwsErrorKind::Invalid,
                "ClientException",
                "Invalid revision number.",
            )),
            None => Err(aws_err(
                SERVICE,
                OP,
                AwsErrorKind::NotFound,
                "ClientException",
                "The specified task definition was not found.",
            )),
        }
    }

    async fn describe_task_definition(&self, family_or_arn: &str) -> Result<Option<DescribedTaskDefinition>, AwsError> {
        self.env.enter(SERVICE, ops::DESCRIBE_TASK_DEFINITION).await?;
        let st = lock(&self.state);
        // A bare family names its latest ACTIVE revision; a revision or ARN, that revision
        // even when INACTIVE (as in ECS).
        Ok(
            resolve(&st.defs, family_or_arn, false).map(|d| DescribedTaskDefinition {
                arn: d.arn.clone(),
                tags: d.definition.tags.clone(),
            }),
        )
    }

    async fn list_task_definitions(&self, family: &str) -> Result<Vec<String>, AwsError> {
        self.env.enter(SERVICE, ops::LIST_TASK_DEFINITIONS).await?;
        let st = lock(&self.state);
        Ok(st
            .defs
            .iter()
            .filter(|d| d.family == family && d.active)
            .map(|d| d.arn.clone())
            .collect())
    }

    async fn run_task(&self, req: &RunTask) -> Result<String, AwsError> {
        const OP: &str = ops::RUN_TASK;
        self.env.enter(SERVICE, OP).await?;
        lock(&self.state).run_requests.push(req.clone());
        if req.cluster.is_empty() {
            return Err(invalid(OP, "Cluster must not be empty."));
        }
        if req.subnets.is_empty() {
            return Err(invalid(OP, "subnets can not be empty."));
        }
        if req.started_by.as_ref().is_some_and(|s| {
            s.len() > 128
                || !s
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'/' | b'_'))
        }) {
            return Err(invalid(
                OP,
                "startedBy must be up to 128 letters, digits, hyphens, slashes or underscores.",
            ));
        }
        if req.client_token.as_ref().is_some_and(|t| t.is_empty() || t.len() > 64) {
            return Err(invalid(OP, "clientToken must be 1 to 64 characters."));
        }
        let now = self.env.now();
        let mut st = lock(&self.state);
        if let Some(token) = &req.client_token {
            if let Some(arn) = st.tokens.get(token) {
                if st.tasks.iter().any(|t| &t.arn == arn) {
                    return Ok(arn.clone());
                }
            }
        }
        let Some(def) = resolve(&st.defs, &req.task_definition, true).cloned() else {
            if resolve(&st.defs, &req.task_definition, false).is_some() {
                return Err(aws_err(
                    SERVICE,
                    OP,
                    AwsErrorKind::Invalid,
                    "ClientException",
                    "TaskDefinition is inactive",
                ));
            }
            return Err(aws_err(
                SERVICE,
                OP,
                AwsErrorKind::NotFound,
                "ClientException",
                "TaskDefinition not found.",
            ));
        };
        for o in &req.overrides {
            if !def.definition.containers.iter().any(|c| c.name == o.name) {
                return Err(invalid(
                    OP,
                    format!(
                        "Override for container named {} is not a container in the TaskDefinition.",
                        o.name
                    ),
                ));
            }
        }
        if !st.run_failures.is_empty() {
            let reason = st.run_failures.remove(0);
            let failures = serde_json::json!([{ "reason": reason }]);
            return Err(aws_err(
                SERVICE,
                OP,
                AwsErrorKind::Other,
                crate::managers::ecs::RUN_TASK_FAILURE,
                failures.to_string(),
            ));
        }
        let cluster = req
            .cluster
            .rsplit_once(":cluster/")
            .map(|(_, name)| name)
            .unwrap_or(&req.cluster)
            .to_string();
        let id = super::random_from(HEX, 32);
        let arn = format!("arn:aws:ecs:{REGION}:{ACCOUNT_ID}:task/{cluster}/{id}");
        let script = st.family_scripts.get(&def.family).unwrap_or(&st.launch_script).clone();
        let mut task = FakeTask {
            arn: arn.clone(),
            cluster,
            task_definition_arn: def.arn.clone(),
            family: def.family.clone(),
            status: String::new(),
            desired_status: RUNNING.to_string(),
            private_ip: None,
            stopped_reason: None,
            started_at: None,
            stopped_at: None,
            request: req.clone(),
            containers: def.definition.containers.iter().map(|c| c.name.clone()).collect(),
            script: None,
            launched_at: now,
        };
        set_status(&mut task, script[0], &mut st.next_ip, now);
        task.script = Some((script, 0));
        st.tasks.push(task);
        if let Some(token) = &req.client_token {
            st.tokens.insert(token.clone(), arn.clone());
        }
        Ok(arn)
    }

    async fn describe_task(&self, cluster: &str, task_arn: &str) -> Result<Option<TaskInfo>, AwsError> {
        self.env.enter(SERVICE, ops::DESCRIBE_TASKS).await?;
        let now = self.env.now();
        let mut st = lock(&self.state);
        let State {
            tasks,
            next_ip,
            exit_codes,
            start_delay,
            ..
        } = &mut *st;
        let Some(task) = tasks
            .iter_mut()
            .find(|t| task_matches(t, task_arn) && cluster_matches(&t.cluster, cluster))
        else {
            return Ok(None);
        };
        let seen = info(task, exit_codes);
        let starting = match (*start_delay, task.launched_at, now) {
            (Some(delay), Some(at), Some(now)) => now < at + delay,
            _ => false,
        };
        if starting {
            return Ok(Some(seen));
        }
        if start_delay.is_some() {
            // The delay is over: the task moves on now, and this look sees it.
            if let Some((script, step)) = task.script.take() {
                let next = (step + 1).min(script.len() - 1);
                set_status(task, script[next], next_ip, now);
                task.script = Some((script, next));
            }
            return Ok(Some(info(task, exit_codes)));
        }
        if let Some((script, step)) = task.script.take() {
            let next = (step + 1).min(script.len() - 1);
            set_status(task, script[next], next_ip, now);
            task.script = Some((script, next));
        }
        Ok(Some(seen))
    }

    async fn stop_task(&self, cluster: &str, task_arn: &str, reason: &str) -> Result<(), AwsError> {
        const OP: &str = ops::STOP_TASK;
        self.env.enter(SERVICE, OP).await?;
        let now = self.env.now();
        let mut st = lock(&self.state);
        let State { tasks, next_ip, .. } = &mut *st;
        let Some(task) = tasks
            .iter_mut()
            .find(|t| task_matches(t, task_arn) && cluster_matches(&t.cluster, cluster))
        else {
            return Err(aws_err(
                SERVICE,
                OP,
                AwsErrorKind::NotFound,
                "InvalidParameterException",
                "The referenced task was not found.",
            ));
        };
        if task.status != STOPPED {
            task.script = None;
            task.stopped_reason = Some(reason.to_string());
            set_status(task, STOPPED, next_ip, now);
        }
        Ok(())
    }

    async fn list_tasks_started_by(&self, cluster: &str, started_by: &str) -> Result<Vec<String>, AwsError> {
        self.env.enter(SERVICE, ops::LIST_TASKS).await?;
        let st = lock(&self.state);
        Ok(st
            .tasks
            .iter()
            .filter(|t| {
                cluster_matches(&t.cluster, cluster)
                    && t.desired_status == RUNNING
                    && t.request.started_by.as_deref() == Some(started_by)
            })
            .map(|t| t.arn.clone())
            .collect())
    }

    async fn cluster_status(&self, _cluster: &str) -> Result<String, AwsError> {
        self.env.enter(SERVICE, ops::DESCRIBE_CLUSTERS).await?;
        Ok("ACTIVE".to_string())
    }

    async fn list_families_page(&self, prefix: &str, token: Option<&str>) -> Result<Page<String>, AwsError> {
        self.env.enter(SERVICE, ops::LIST_TASK_DEFINITION_FAMILIES).await?;
        let mut families: Vec<String> = lock(&self.state)
            .defs
            .iter()
            .filter(|d| d.active && d.family.starts_with(prefix))
            .map(|d| d.family.clone())
            .collect();
        families.dedup();
        families.sort();
        families.dedup();
        Ok(self
            .env
            .page(families.into_iter().map(|f| (f.clone(), f)).collect(), token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::managers::ecs::{ContainerDef, ContainerOverride};
    use crate::testing::Faults;

    fn def(family: &str) -> TaskDefinition {
        TaskDefinition {
            family: family.into(),
            cpu: "256".into(),
            memory: "512".into(),
            execution_role_arn: "exec".into(),
            task_role_arn: "task".into(),
            containers: vec![ContainerDef {
                name: "main".into(),
                image: "alpine".into(),
                essential: true,
                ..ContainerDef::default()
            }],
            volumes: vec![],
            scratch_volumes: Vec::new(),
            tags: vec![],
        }
    }

    fn run(td: &str, token: Option<&str>) -> RunTask {
        RunTask {
            cluster: "c".into(),
            task_definition: td.into(),
            subnets: vec!["s".into()],
            security_groups: vec!["g".into()],
            assign_public_ip: false,
            overrides: vec![],
            started_by: None,
            client_token: token.map(str::to_string),
        }
    }

    #[tokio::test]
    async fn revisions_increase_and_deregister_makes_inactive() {
        let ecs = FakeEcs::new(Arc::new(Faults::new()));
        let a1 = ecs.register_task_definition(&def("fam")).await.unwrap();
        let a2 = ecs.register_task_definition(&def("fam")).await.unwrap();
        ecs.register_task_definition(&def("fam-other")).await.unwrap();
        assert_eq!(a1, "arn:aws:ecs:us-east-1:123456789012:task-definition/fam:1");
        assert_eq!(a2, "arn:aws:ecs:us-east-1:123456789012:task-definition/fam:2");
        assert_eq!(
            ecs.list_task_definitions("fam").await.unwrap(),
            vec![a1.clone(), a2.clone()]
        );
        ecs.deregister_task_definition(&a1).await.unwrap();
        assert_eq!(ecs.list_task_definitions("fam").await.unwrap(), vec![a2]);
        let e = ecs.deregister_task_definition("fam:9").await.unwrap_err();
        assert_eq!(e.kind, AwsErrorKind::NotFound);
        let mut bad = def("bad family!");
        bad.family = "bad family!".into();
        assert_eq!(
            ecs.register_task_definition(&bad).await.unwrap_err().kind,
            AwsErrorKind::Invalid
        );
    }

    #[tokio::test]
    async fn tasks_follow_the_script_and_get_an_ip_when_running() {
        let ecs = FakeEcs::new(Arc::new(Faults::new()));
        ecs.register_task_definition(&def("fam")).await.unwrap();
        ecs.set_launch_script(vec!["PROVISIONING", "PENDING", "RUNNING"]);
        let arn = ecs.run_task(&run("fam", None)).await.unwrap();
        let statuses: Vec<(String, bool)> = {
            let mut v = Vec::new();
            for _ in 0..4 {
                let i = ecs.describe_task("c", &arn).await.unwrap().unwrap();
                v.push((i.last_status, i.private_ip.is_some()));
            }
            v
        };
        assert_eq!(
            statuses,
            vec![
                ("PROVISIONING".into(), false),
                ("PENDING".into(), false),
                ("RUNNING".into(), true),
                ("RUNNING".into(), true)
            ]
        );
        let ip = ecs.task(&arn).unwrap().private_ip.unwrap();
        assert!(ip.starts_with("10.0."));
        assert_eq!(ecs.running_tasks().len(), 1);
        ecs.stop_task("c", &arn, "User requested stop").await.unwrap();
        ecs.stop_task("c", &arn, "again").await.unwrap();
        let i = ecs.describe_task("c", &arn).await.unwrap().unwrap();
        assert_eq!(i.last_status, "STOPPED");
        assert_eq!(i.stopped_reason.as_deref(), Some("User requested stop"));
        assert!(ecs.running_tasks().is_empty());
        ecs.forget_task(&arn);
        assert_eq!(ecs.describe_task("c", &arn).await.unwrap(), None);
        assert_eq!(
            ecs.stop_task("c", &arn, "x").await.unwrap_err().kind,
            AwsErrorKind::NotFound
        );
    }

    #[tokio::test]
    async fn client_token_makes_run_task_idempotent() {
        let ecs = FakeEcs::new(Arc::new(Faults::new()));
        ecs.register_task_definition(&def("fam")).await.unwrap();
        let a = ecs.run_task(&run("fam", Some("tok"))).await.unwrap();
        let b = ecs.run_task(&run("fam", Some("tok"))).await.unwrap();
        let c = ecs.run_task(&run("fam", Some("other"))).await.unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(ecs.tasks().len(), 2);
        assert_eq!(ecs.run_requests().len(), 3);
        assert!(a.starts_with("arn:aws:ecs:us-east-1:123456789012:task/c/"));
    }

    #[tokio::test]
    async fn concurrent_retries_with_one_token_start_one_task() {
        let ecs = Arc::new(FakeEcs::new(Arc::new(Faults::new())));
        let td = ecs.register_task_definition(&def("fam")).await.unwrap();
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let ecs = ecs.clone();
                tokio::spawn(async move { ecs.run_task(&run("fam", Some("same"))).await.unwrap() })
            })
            .collect();
        let mut arns = Vec::new();
        for h in handles {
            arns.push(h.await.unwrap());
        }
        arns.dedup();
        assert_eq!(arns.len(), 1);
        assert_eq!(ecs.tasks().len(), 1);
        // An INACTIVE revision cannot start new tasks.
        ecs.deregister_task_definition(&td).await.unwrap();
        assert_eq!(
            ecs.run_task(&run("fam:1", None)).await.unwrap_err().kind,
            AwsErrorKind::Invalid
        );
        assert_eq!(
            ecs.run_task(&run("fam", None)).await.unwrap_err().kind,
            AwsErrorKind::NotFound
        );
    }

    #[tokio::test]
    async fn auto_stop_family_exits_with_configured_code() {
        let ecs = FakeEcs::new(Arc::new(Faults::new()));
        ecs.register_task_definition(&def("cleanup")).await.unwrap();
        ecs.set_auto_stop("cleanup");
        ecs.set_exit_code("cleanup", "main", 3);
        let arn = ecs.run_task(&run("cleanup", None)).await.unwrap();
        let mut last = None;
        for _ in 0..3 {
            last = ecs.describe_task("c", &arn).await.unwrap();
        }
        let last = last.unwrap();
        assert_eq!(last.last_status, "STOPPED");
        assert_eq!(last.containers[0].exit_code, Some(3));
        assert_eq!(
            last.stopped_reason.as_deref(),
            Some("Essential container in task exited")
        );
        // Other families keep the default script.
        ecs.register_task_definition(&def("fam")).await.unwrap();
        let arn = ecs.run_task(&run("fam", None)).await.unwrap();
        for _ in 0..5 {
            ecs.describe_task("c", &arn).await.unwrap();
        }
        assert_eq!(ecs.task(&arn).unwrap().status, "RUNNING");
        assert!(ecs.set_task_status(&arn, "STOPPED"));
        let i = ecs.describe_task("c", &arn).await.unwrap().unwrap();
        assert_eq!(i.containers[0].exit_code, Some(0));
    }

    #[tokio::test]
    async fn describe_task_definition_reads_the_latest_active_revision_and_its_tags() {
        let faults = Arc::new(Faults::new());
        let ecs = FakeEcs::new(faults.clone());
        assert_eq!(ecs.describe_task_definition("fam").await.unwrap(), None);
        let mut tagged = def("fam");
        tagged.tags = vec![("k".into(), "v".into())];
        let a1 = ecs.register_task_definition(&tagged).await.unwrap();
        let a2 = ecs.register_task_definition(&def("fam")).await.unwrap();
        let latest = ecs.describe_task_definition("fam").await.unwrap().unwrap();
        assert_eq!((latest.arn.as_str(), latest.tags.len()), (a2.as_str(), 0));
        ecs.deregister_task_definition(&a2).await.unwrap();
        let latest = ecs.describe_task_definition("fam").await.unwrap().unwrap();
        assert_eq!(latest.arn, a1);
        assert_eq!(latest.tags, vec![("k".to_string(), "v".to_string())]);
        // A revision by ARN, even INACTIVE.
        assert_eq!(ecs.describe_task_definition(&a2).await.unwrap().unwrap().arn, a2);
        assert_eq!(faults.count(FakeEcs::DESCRIBE_TASK_DEFINITION), 4);
    }

    #[tokio::test]
    async fn list_tasks_by_started_by_sees_only_running_tasks_of_that_starter() {
        let faults = Arc::new(Faults::new());
        let ecs = FakeEcs::new(faults.clone());
        ecs.register_task_definition(&def("fam")).await.unwrap();
        let by = |who: &str| RunTask {
            started_by: Some(who.into()),
            ..run("fam", None)
        };
        let mine = ecs.run_task(&by("efs-cleanup-1")).await.unwrap();
        ecs.run_task(&by("efs-cleanup-2")).await.unwrap();
        ecs.run_task(&run("fam", None)).await.unwrap();
        assert_eq!(
            ecs.list_tasks_started_by("c", "efs-cleanup-1").await.unwrap(),
            vec![mine.clone()]
        );
        assert!(ecs
            .list_tasks_started_by("other", "efs-cleanup-1")
            .await
            .unwrap()
            .is_empty());
        ecs.stop_task("c", &mine, "done").await.unwrap();
        assert!(ecs
            .list_tasks_started_by("c", "efs-cleanup-1")
            .await
            .unwrap()
            .is_empty());
        assert_eq!(faults.count(FakeEcs::LIST_TASKS), 3);
        let long = "x".repeat(129);
        assert_eq!(ecs.run_task(&by(&long)).await.unwrap_err().kind, AwsErrorKind::Invalid);
        assert_eq!(ecs.run_task(&by("a b")).await.unwrap_err().kind, AwsErrorKind::Invalid);
        ecs.run_task(&by(&"x".repeat(128))).await.unwrap();
    }

    #[tokio::test]
    async fn run_task_rejects_unknown_definitions_and_override_names() {
        let ecs = FakeEcs::new(Arc::new(Faults::new()));
        assert_eq!(
            ecs.run_task(&run("nope", None)).await.unwrap_err().kind,
            AwsErrorKind::NotFound
        );
        ecs.register_task_definition(&def("fam")).await.unwrap();
        let mut req = run("fam:1", None);
        req.overrides = vec![ContainerOverride {
            name: "cleanup".into(),
            environment: vec![],
        }];
        assert_eq!(ecs.run_task(&req).await.unwrap_err().kind, AwsErrorKind::Invalid);
        ecs.push_run_task_failure("RESOURCE:ENI");
        let e = ecs.run_task(&run("fam", None)).await.unwrap_err();
        assert_eq!(e.code.as_deref(), Some("RunTaskFailure"));
        assert!(ecs.tasks().is_empty());
        ecs.run_task(&run("fam", None)).await.unwrap();
        assert_eq!(ecs.tasks().len(), 1);
    }
}
