//! The in-memory fakes of every manager trait.
//!
//! [`FakeAws`] bundles one fake per service; they share one [`Faults`] (and one set of
//! call hooks), so a test can say "fail the 2nd CreateTargetGroup" or "right before the
//! 1st UpdateItem, let another writer change the item" without caring which fake
//! serves the call.
//!
//! Every fake method first calls `faults.check(SERVICE, OPERATION)?` (so every call is
//! recorded and can fail by injection), then runs the hooks due for that call, then
//! does its work under one `std::sync::Mutex` lock, which is never held across an
//! `.await`: each method is atomic with respect to concurrent invocations.
//!
//! Operation names are in [`ops`] and, for convenience, as associated constants of each
//! fake (`FakeAlb::CREATE_TARGET_GROUP`). Service names are `SERVICE` constants.
//!
//! Bad input never panics a trait method: it is an `AwsErrorKind::Invalid` error, as
//! AWS would answer with a validation error. Test-only helpers (seeding, inspection)
//! may panic on misuse, with a clear message.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::clock::Clock;
use crate::error::{AwsError, AwsErrorKind};
use crate::managers::Managers;

use super::Faults;

mod alb;
mod dynamodb;
mod ecs;
mod efs;
mod foundry;
mod iam;
mod logs;
mod route53;
mod s3;
mod secrets;

pub use alb::{FakeAlb, FakeTargetGroup};
pub use dynamodb::FakeDynamo;
pub use ecs::{FakeEcs, FakeTask, FakeTaskDefinition};
pub use efs::{FakeAccessPoint, FakeEfs};
pub use foundry::{FakeAnswer, FakeFoundry};
pub use iam::{FakeIam, FakeUser};
pub use logs::{FakeLogGroup, FakeLogs};
pub use route53::{FakeRoute53, RecordChange};
pub use s3::FakeS3;
pub use secrets::{FakeSecret, FakeSecrets};

/// The account id in every fake ARN.
pub const ACCOUNT_ID: &str = "123456789012";
/// The region in every fake ARN.
pub const REGION: &str = "us-east-1";

/// Every operation name the fakes report to [`Faults`], one constant per name.
pub mod ops {
    // ECS
    pub const REGISTER_TASK_DEFINITION: &str = "RegisterTaskDefinition";
    pub const DEREGISTER_TASK_DEFINITION: &str = "DeregisterTaskDefinition";
    pub const LIST_TASK_DEFINITIONS: &str = "ListTaskDefinitions";
    pub const DESCRIBE_TASK_DEFINITION: &str = "DescribeTaskDefinition";
    pub const RUN_TASK: &str = "RunTask";
    pub const DESCRIBE_TASKS: &str = "DescribeTasks";
    pub const STOP_TASK: &str = "StopTask";
    pub const LIST_TASKS: &str = "ListTasks";
    // EFS
    pub const CREATE_ACCESS_POINT: &str = "CreateAccessPoint";
    pub const DESCRIBE_ACCESS_POINTS: &str = "DescribeAccessPoints";
    pub const DELETE_ACCESS_POINT: &str = "DeleteAccessPoint";
    // S3 (groups)
    pub const ENSURE_BUCKET: &str = "EnsureBucket";
    pub const EMPTY_BUCKET_PAGE: &str = "EmptyBucketPage";
    pub const DELETE_BUCKET: &str = "DeleteBucket";
    pub const LIST_OBJECT_VERSIONS: &str = "ListObjectVersions";
    pub const HEAD_OBJECT: &str = "HeadObject";
    pub const PUT_OBJECT_TAGGING: &str = "PutObjectTagging";
    // IAM
    pub const CREATE_USER: &str = "CreateUser";
    pub const PUT_USER_POLICY: &str = "PutUserPolicy";
    pub const CREATE_ACCESS_KEY: &str = "CreateAccessKey";
    pub const DELETE_ACCESS_KEYS: &str = "DeleteAccessKeys";
    pub const DELETE_USER: &str = "DeleteUser";
    // Route 53 (ChangeResourceRecordSets is split by action)
    pub const CREATE_ALIAS: &str = "CreateAlias";
    pub const UPSERT_ALIAS: &str = "UpsertAlias";
    pub const DELETE_ALIAS: &str = "DeleteAlias";
    pub const GET_ALIAS: &str = "GetAlias";
    // ELBv2
    pub const CREATE_TARGET_GROUP: &str = "CreateTargetGroup";
    pub const DESCRIBE_TARGET_GROUPS: &str = "DescribeTargetGroups";
    pub const DELETE_TARGET_GROUP: &str = "DeleteTargetGroup";
    pub const REGISTER_TARGETS: &str = "RegisterTargets";
    pub const DEREGISTER_TARGETS: &str = "DeregisterTargets";
    pub const DESCRIBE_RULES: &str = "DescribeRules";
    pub const CREATE_RULE: &str = "CreateRule";
    pub const DELETE_RULE: &str = "DeleteRule";
    // Secrets Manager
    pub const GET_SECRET_VALUE: &str = "GetSecretValue";
    pub const CREATE_SECRET: &str = "CreateSecret";
    pub const UPDATE_SECRET: &str = "UpdateSecret";
    pub const RESTORE_SECRET: &str = "RestoreSecret";
    pub const DELETE_SECRET: &str = "DeleteSecret";
    // CloudWatch Logs (EnsureLogGroup = CreateLogGroup + PutRetentionPolicy)
    pub const ENSURE_LOG_GROUP: &str = "EnsureLogGroup";
    pub const DELETE_LOG_GROUP: &str = "DeleteLogGroup";
    pub const DESCRIBE_LOG_GROUPS: &str = "DescribeLogGroups";
    // DynamoDB
    pub const GET_ITEM: &str = "GetItem";
    pub const PUT_ITEM: &str = "PutItem";
    pub const UPDATE_ITEM: &str = "UpdateItem";
    pub const DELETE_ITEM: &str = "DeleteItem";
    pub const SCAN: &str = "Scan";
    pub const QUERY: &str = "Query";
    pub const TRANSACT_WRITE_ITEMS: &str = "TransactWriteItems";
    // The health probes
    pub const DESCRIBE_TABLE: &str = "DescribeTable";
    pub const DESCRIBE_CLUSTERS: &str = "DescribeClusters";
    pub const DESCRIBE_FILE_SYSTEMS: &str = "DescribeFileSystems";
    pub const DESCRIBE_LISTENERS: &str = "DescribeListeners";
    pub const GET_HOSTED_ZONE: &str = "GetHostedZone";
    pub const LIST_SECRETS: &str = "ListSecrets";
    // The listings of the reconcile
    pub const LIST_BUCKETS: &str = "ListBuckets";
    pub const LIST_USERS: &str = "ListUsers";
    pub const LIST_ACCESS_KEYS: &str = "ListAccessKeys";
    pub const LIST_RESOURCE_RECORD_SETS: &str = "ListResourceRecordSets";
    pub const LIST_TASK_DEFINITION_FAMILIES: &str = "ListTaskDefinitionFamilies";
}

type HookFn = Box<dyn FnOnce() + Send + 'static>;

struct Hook {
    operation: String,
    nth: usize,
    run: HookFn,
}

/// What all fakes of one [`FakeAws`] share: the faults, the call hooks and the clock.
pub(crate) struct Env {
    pub(crate) faults: Arc<Faults>,
    counts: Mutex<HashMap<&'static str, usize>>,
    hooks: Mutex<Vec<Hook>>,
    gates: Mutex<HashMap<String, Arc<Gate>>>,
    gates_after: Mutex<HashMap<String, Arc<Gate>>>,
    latency: Mutex<std::time::Duration>,
    /// Latency of single operations, over `latency`.
    op_latency: Mutex<HashMap<String, std::time::Duration>>,
    /// Calls inside their injected latency now, and the most there ever were at once.
    in_flight: std::sync::atomic::AtomicUsize,
    peak_in_flight: std::sync::atomic::AtomicUsize,
    clock: Mutex<Option<Arc<dyn Clock>>>,
    /// When a resource was made (Unix seconds, from the clock), by `kind/name`, for the
    /// listings that give a creation time.
    created: Mutex<HashMap<String, i64>>,
    /// How many items one page of a listing holds.
    list_page: std::sync::atomic::AtomicUsize,
}

/// Holds the first `parties` calls of an operation until all of them have arrived, so
/// that concurrent invocations interleave exactly there.
struct Gate {
    waiting: std::sync::atomic::AtomicUsize,
    parties: usize,
    barrier: tokio::sync::Barrier,
}

impl Gate {
    async fn pass(&self, operation: &str) {
        use std::sync::atomic::Ordering;
        let gated = self
            .waiting
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |w| w.checked_sub(1))
            .is_ok();
        if !gated {
            return;
        }
        let arrived = tokio::time::timeout(std::time::Duration::from_secs(10), self.barrier.wait()).await;
        if arrived.is_err() {
            panic!(
                "gate on {operation}: the {} callers it waits for never all arrived",
                self.parties
            );
        }
    }
}

impl Env {
    pub(crate) fn new(faults: Arc<Faults>) -> Arc<Env> {
        Arc::new(Env {
            faults,
            counts: Mutex::new(HashMap::new()),
            hooks: Mutex::new(Vec::new()),
            gates: Mutex::new(HashMap::new()),
            gates_after: Mutex::new(HashMap::new()),
            latency: Mutex::new(std::time::Duration::ZERO),
            op_latency: Mutex::new(HashMap::new()),
            in_flight: std::sync::atomic::AtomicUsize::new(0),
            peak_in_flight: std::sync::atomic::AtomicUsize::new(0),
            clock: Mutex::new(None),
            created: Mutex::new(HashMap::new()),
            list_page: std::sync::atomic::AtomicUsize::new(100),
        })
    }

    /// Notes that `kind/name` was made now (when a clock is set).
    pub(crate) fn made(&self, kind: &str, name: &str) {
        if let Some(now) = self.now() {
            lock(&self.created).insert(format!("{kind}/{name}"), now);
        }
    }

    /// When `kind/name` was made, if the fake knows.
    pub(crate) fn made_at(&self, kind: &str, name: &str) -> Option<i64> {
        lock(&self.created).get(&format!("{kind}/{name}")).copied()
    }

    /// One page of named resources of `kind` (`(name, arn)`), each with the time the fake
    /// made it, as `page` cuts them.
    pub(crate) fn page_of_named(
        &self,
        kind: &str,
        named: Vec<(String, Option<String>)>,
        token: Option<&str>,
    ) -> crate::managers::Page<crate::managers::Listed> {
        let items = named
            .into_iter()
            .map(|(name, arn)| {
                let listed = crate::managers::Listed {
                    name: name.clone(),
                    arn,
                    created_at: self.made_at(kind, &name),
                };
                (name, listed)
            })
            .collect();
        self.page(items, token)
    }

    /// One page of `items` (sorted by their key) after the key `token`; the next token is
    /// the last key of the page when more follow.
    pub(crate) fn page<T>(&self, items: Vec<(String, T)>, token: Option<&str>) -> crate::managers::Page<T> {
        let size = self.list_page.load(std::sync::atomic::Ordering::SeqCst).max(1);
        let mut rest: Vec<(String, T)> = items
            .into_iter()
            .filter(|(k, _)| token.is_none_or(|t| k.as_str() > t))
            .collect();
        rest.sort_by(|a, b| a.0.cmp(&b.0));
        let more = rest.len() > size;
        rest.truncate(size);
        let next = if more {
            rest.last().map(|(k, _)| k.clone())
        } else {
            None
        };
        crate::managers::Page {
            items: rest.into_iter().map(|(_, v)| v).collect(),
            next,
        }
    }

    /// The first thing every fake method does: count the call, let [`Faults`] record it
    /// (and maybe fail it), then run the hooks due for this call. No lock is held while
    /// a hook runs, so a hook may call any fake or helper.
    pub(crate) async fn enter(&self, service: &'static str, operation: &'static str) -> Result<(), AwsError> {
        let n = {
            let mut counts = lock(&self.counts);
            let c = counts.entry(operation).or_insert(0);
            *c += 1;
            *c
        };
        self.faults.check(service, operation)?;
        let due: Vec<HookFn> = {
            let mut hooks = lock(&self.hooks);
            let mut due = Vec::new();
            let mut i = 0;
            while i < hooks.len() {
                if hooks[i].operation == operation && hooks[i].nth == n {
                    due.push(hooks.remove(i).run);
                } else {
                    i += 1;
                }
            }
            due
        };
        for run in due {
            run();
        }
        let gate = lock(&self.gates).get(operation).cloned();
        if let Some(gate) = gate {
            gate.pass(operation).await;
        }
        let latency = lock(&self.op_latency)
            .get(operation)
            .copied()
            .unwrap_or_else(|| *lock(&self.latency));
        if !latency.is_zero() {
            use std::sync::atomic::Ordering;
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak_in_flight.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(latency).await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
        }
        Ok(())
    }

    /// The last thing a DynamoDB fake method does (whatever its outcome): pass the gate
    /// that holds callers after this operation, if any.
    pub(crate) async fn leave(&self, operation: &'static str) {
        let gate = lock(&self.gates_after).get(operation).cloned();
        if let Some(gate) = gate {
            gate.pass(operation).await;
        }
    }

    /// Unix seconds from the clock, when one is set.
    pub(crate) fn now(&self) -> Option<i64> {
        lock(&self.clock).as_ref().map(|c| c.now())
    }
}

/// Locks a mutex, ignoring poisoning (a panicking test thread must not break the others).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// An [`AwsError`] with a service error code, as the SDK adapters produce.
pub(crate) fn aws_err(
    service: &'static str,
    operation: &'static str,
    kind: AwsErrorKind,
    code: &str,
    message: impl Into<String>,
) -> AwsError {
    AwsError::new(service, operation, kind, message).with_code(code)
}

/// `n` random characters from `alphabet`.
pub(crate) fn random_from(alphabet: &[u8], n: usize) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..n)
        .map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())]))
        .collect()
}

pub(crate) const HEX: &[u8] = b"0123456789abcdef";
pub(crate) const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// One fake per service, sharing one [`Faults`].
pub struct FakeAws {
    pub faults: Arc<Faults>,
    pub ecs: Arc<FakeEcs>,
    pub efs: Arc<FakeEfs>,
    pub s3: Arc<FakeS3>,
    pub iam: Arc<FakeIam>,
    pub route53: Arc<FakeRoute53>,
    pub alb: Arc<FakeAlb>,
    pub secrets: Arc<FakeSecrets>,
    pub logs: Arc<FakeLogs>,
    pub dynamo: Arc<FakeDynamo>,
    /// The Foundry servers' status (outside AWS).
    pub foundry: Arc<FakeFoundry>,
    env: Arc<Env>,
}

impl Default for FakeAws {
    fn default() -> Self {
        FakeAws::new()
    }
}

impl FakeAws {
    pub fn new() -> Self {
        let faults = Arc::new(Faults::new());
        let env = Env::new(faults.clone());
        FakeAws {
            faults,
            ecs: Arc::new(FakeEcs::with_env(env.clone())),
            efs: Arc::new(FakeEfs::with_env(env.clone())),
            s3: Arc::new(FakeS3::with_env(env.clone())),
            iam: Arc::new(FakeIam::with_env(env.clone())),
            route53: Arc::new(FakeRoute53::with_env(env.clone())),
            alb: Arc::new(FakeAlb::with_env(env.clone())),
            secrets: Arc::new(FakeSecrets::with_env(env.clone())),
            logs: Arc::new(FakeLogs::with_env(env.clone())),
            dynamo: Arc::new(FakeDynamo::with_env(env.clone())),
            foundry: Arc::new(FakeFoundry::new()),
            env,
        }
    }

    /// The fakes as the trait objects the actions use (clones of the same `Arc`s).
    pub fn managers(&self) -> Managers {
        Managers {
            ecs: self.ecs.clone(),
            efs: self.efs.clone(),
            s3: self.s3.clone(),
            iam: self.iam.clone(),
            route53: self.route53.clone(),
            alb: self.alb.clone(),
            secrets: self.secrets.clone(),
            logs: self.logs.clone(),
            dynamo: self.dynamo.clone(),
            foundry: self.foundry.clone(),
            // The real client: the tests point `DISCORD_API_BASE_URL` at a stub on 127.0.0.1.
            discord: Arc::new(crate::managers::discord::Discord::new()),
        }
    }

    /// Uses `clock` for the timestamps the fakes report (ECS `startedAt`/`stoppedAt`).
    /// Without a clock those are `None`.
    pub fn set_clock(&self, clock: Arc<dyn Clock>) {
        *lock(&self.env.clock) = Some(clock);
    }

    /// How many items one page of every listing holds (100 unless set).
    pub fn set_list_page_size(&self, size: usize) {
        self.env.list_page.store(size, std::sync::atomic::Ordering::SeqCst);
    }

    /// Holds the first `parties` calls of `operation` (counting from now, whoever makes
    /// them) right before they do their work, until all `parties` have arrived; then
    /// lets them go together. Concurrent invocations are thereby forced to interleave at
    /// that call: e.g. with `gate(UPDATE_ITEM, 2)`, two starts have both read the record
    /// before either writes it. A gate whose callers do not all arrive within 10 s panics.
    pub fn gate(&self, operation: &str, parties: usize) {
        lock(&self.env.gates).insert(
            operation.to_string(),
            Arc::new(Gate {
                waiting: std::sync::atomic::AtomicUsize::new(parties),
                parties,
                barrier: tokio::sync::Barrier::new(parties),
            }),
        );
    }

    /// Holds the first `parties` calls of the DynamoDB `operation` right after they have
    /// done their work (succeeded or failed), until all `parties` have done it: e.g. with
    /// `gate_after(UPDATE_ITEM, 2)`, both racers' conditional writes are decided before
    /// either goes on.
    pub fn gate_after(&self, operation: &str, parties: usize) {
        lock(&self.env.gates_after).insert(
            operation.to_string(),
            Arc::new(Gate {
                waiting: std::sync::atomic::AtomicUsize::new(parties),
                parties,
                barrier: tokio::sync::Barrier::new(parties),
            }),
        );
    }

    /// Makes every call take `latency` (real time), as AWS calls over a network do.
    pub fn set_latency(&self, latency: std::time::Duration) {
        *lock(&self.env.latency) = latency;
    }

    /// Makes every call of `operation` take `latency` (real time), whatever
    /// [`FakeAws::set_latency`] says: one slow dependency.
    pub fn set_operation_latency(&self, operation: &str, latency: std::time::Duration) {
        lock(&self.env.op_latency).insert(operation.to_string(), latency);
    }

    /// The most calls that were ever inside their injected latency at once, since the
    /// last [`FakeAws::reset_peak_in_flight`] (0 without latency).
    pub fn peak_in_flight(&self) -> usize {
        self.env.peak_in_flight.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn reset_peak_in_flight(&self) {
        self.env.peak_in_flight.store(0, std::sync::atomic::Ordering::SeqCst);
    }

    /// [`FakeAws::race_at`], armed right before the `nth` call of `operation` (1-based,
    /// numbered like [`Faults`]): the calls before it pass freely; that call and the next
    /// `parties - 1` meet.
    pub fn race_at_call(&self, operation: &str, nth: usize, parties: usize) {
        let env = self.env.clone();
        let op = operation.to_string();
        self.before_call(operation, nth, move || {
            for gates in [&env.gates, &env.gates_after] {
                lock(gates).insert(
                    op.clone(),
                    Arc::new(Gate {
                        waiting: std::sync::atomic::AtomicUsize::new(parties),
                        parties,
                        barrier: tokio::sync::Barrier::new(parties),
                    }),
                );
            }
        });
    }

    /// Makes `parties` racers meet at the DynamoDB `operation`: all have arrived at it
    /// (so all have read what they read before it) before any does it, and all have done
    /// it before any goes on. [`FakeAws::gate`] and [`FakeAws::gate_after`] together.
    pub fn race_at(&self, operation: &str, parties: usize) {
        self.gate(operation, parties);
        self.gate_after(operation, parties);
    }

    /// Runs `f` once, right before the `nth` call (1-based, numbered like [`Faults`])
    /// of `operation` does its work: after the fault check passed, before the fake
    /// reads or writes its state. `f` runs with no fake lock held, so it may change any
    /// fake (e.g. `dynamo.put_raw`) to simulate a concurrent writer deterministically.
    /// A call that fails by injection does not run its hook (the hook stays unused).
    pub fn before_call(&self, operation: &str, nth: usize, f: impl FnOnce() + Send + 'static) {
        lock(&self.env.hooks).push(Hook {
            operation: operation.to_string(),
            nth,
            run: Box::new(f),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::managers::dynamodb::{AttributeValue, Cond, Table};
    use crate::managers::Dynamo;

    #[tokio::test]
    async fn injected_fault_fails_only_the_nth_call() {
        let aws = FakeAws::new();
        aws.faults.fail_nth(ops::ENSURE_BUCKET, 2, AwsErrorKind::Transient);
        let m = aws.managers();
        m.s3.ensure_bucket("b-one", "us-east-1").await.unwrap();
        let e = m.s3.ensure_bucket("b-two", "us-east-1").await.unwrap_err();
        assert_eq!(e.kind, AwsErrorKind::Transient);
        assert_eq!(e.service, FakeS3::SERVICE);
        assert_eq!(e.operation, ops::ENSURE_BUCKET);
        m.s3.ensure_bucket("b-three", "us-east-1").await.unwrap();
        // The failed call did nothing.
        assert_eq!(aws.s3.buckets(), vec!["b-one".to_string(), "b-three".to_string()]);
        assert_eq!(aws.faults.count(ops::ENSURE_BUCKET), 3);
    }

    #[tokio::test]
    async fn faults_are_shared_by_all_fakes_and_checked_first() {
        let aws = FakeAws::new();
        aws.faults.fail_always(ops::PUT_ITEM, AwsErrorKind::Transient);
        let t = Table::new("t", "id");
        let mut item = crate::managers::dynamodb::Item::new();
        item.insert("id".into(), AttributeValue::S("a".into()));
        let e = aws.managers().dynamo.put(&t, item, Cond::Always).await.unwrap_err();
        assert_eq!(e.kind, AwsErrorKind::Transient);
        assert!(aws.dynamo.items("t").is_empty());
        assert_eq!(aws.faults.calls(), vec![ops::PUT_ITEM.to_string()]);
    }

    #[tokio::test]
    async fn before_call_hook_simulates_a_concurrent_writer() {
        let aws = FakeAws::new();
        let t = Table::new("t", "id");
        let dynamo = aws.dynamo.clone();
        aws.before_call(ops::PUT_ITEM, 1, move || {
            let mut other = crate::managers::dynamodb::Item::new();
            other.insert("id".into(), AttributeValue::S("a".into()));
            dynamo.put_raw("t", "id", other);
        });
        let mut item = crate::managers::dynamodb::Item::new();
        item.insert("id".into(), AttributeValue::S("a".into()));
        let e = aws
            .dynamo
            .put(&t, item.clone(), Cond::not_exists("id"))
            .await
            .unwrap_err();
        assert_eq!(e.kind, AwsErrorKind::ConditionFailed);
        // The hook ran once only.
        aws.dynamo.put(&t, item, Cond::Always).await.unwrap();
        assert_eq!(aws.dynamo.items("t").len(), 1);
    }
}
