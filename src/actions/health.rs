//! `health-check`: one probe per dependency, all at once, each with a short timeout.
//!
//! The probes are read-only calls that need nothing but the dependency itself:
//! DescribeTable for each table, DescribeClusters, DescribeFileSystems, DescribeListeners,
//! GetHostedZone and ListSecrets (one item). The answer is `unhealthy` when a table does
//! not answer (nothing works without them), `degraded` when anything else fails, and
//! `healthy` otherwise. Each probe also becomes two metrics of the invocation's EMF
//! record (`Health<Check>Ok`, 1 or 0, and `Health<Check>LatencyMs`), for alarms.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde::Serialize;
use serde_json::{Map, Value};
use serde_with::skip_serializing_none;

use crate::context::Services;
use crate::error::{AwsError, Result};

/// How long one probe may take before it counts as failed.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The outcome of one probe.
#[skip_serializing_none]
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Check {
    /// `ok`, `failed` (an error, or a state other than the healthy one) or `timeout`.
    status: &'static str,
    latency_ms: u64,
    /// The state the dependency reported (`ACTIVE`, `available`), when it reports one.
    state: Option<String>,
    /// The AWS error code of a failure (`ResourceNotFoundException`, …).
    error_code: Option<String>,
    message: Option<String>,
}

impl Check {
    fn ok(&self) -> bool {
        self.status == "ok"
    }
}

/// The DynamoDB check: every table, and the slowest answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct TablesCheck {
    status: &'static str,
    latency_ms: u64,
    tables: Map<String, Value>,
}

/// The answer of `health-check`.
#[skip_serializing_none]
#[derive(Debug, Serialize)]
struct Health {
    success: bool,
    status: &'static str,
    checks: Map<String, Value>,
    details: Option<Vec<String>>,
}

/// What a probe found: `Ok(state)` (`None` for probes without a state), or the error.
type Probed = std::result::Result<Option<String>, AwsError>;
type Probe<'a> = Pin<Box<dyn Future<Output = Probed> + Send + 'a>>;

/// Runs `probe` within [`PROBE_TIMEOUT`]; a state other than `healthy_state` fails it.
async fn timed(probe: Probe<'_>, healthy_state: &[&str]) -> Check {
    let started = Instant::now();
    let outcome = tokio::time::timeout(PROBE_TIMEOUT, probe).await;
    let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    match outcome {
        Err(_) => Check {
            status: "timeout",
            latency_ms,
            state: None,
            error_code: None,
            message: Some(format!("no answer within {} ms", PROBE_TIMEOUT.as_millis())),
        },
        Ok(Err(e)) => Check {
            status: "failed",
            latency_ms,
            state: None,
            error_code: Some(e.code.clone().unwrap_or_else(|| format!("{:?}", e.kind))),
            message: Some(e.message.clone()),
        },
        Ok(Ok(state)) => {
            let healthy = state
                .as_deref()
                .is_none_or(|s| healthy_state.iter().any(|h| h.eq_ignore_ascii_case(s)));
            Check {
                status: if healthy { "ok" } else { "failed" },
                latency_ms,
                message: (!healthy).then(|| format!("state {}", state.as_deref().unwrap_or_default())),
                state,
                error_code: None,
            }
        }
    }
}

/// One check other than DynamoDB's.
struct ServiceProbe<'a> {
    /// Its key in the answer's `checks`.
    key: &'static str,
    /// Its metrics: passed (1 or 0), and latency.
    metrics: [&'static str; 2],
    probe: Probe<'a>,
    /// The states that pass (none: any answer passes).
    healthy: &'static [&'static str],
}

/// The checks other than DynamoDB, in the order of the answer.
fn service_probes(svc: &Services) -> Vec<ServiceProbe<'_>> {
    let c = &svc.config;
    vec![
        ServiceProbe {
            key: "ecs",
            metrics: ["HealthEcsOk", "HealthEcsLatencyMs"],
            probe: Box::pin(async move { svc.aws.ecs.cluster_status(&c.cluster_name).await.map(Some) }),
            healthy: &["ACTIVE"],
        },
        ServiceProbe {
            key: "efs",
            metrics: ["HealthEfsOk", "HealthEfsLatencyMs"],
            probe: Box::pin(async move { svc.aws.efs.file_system_state(&c.file_system_id).await.map(Some) }),
            healthy: &["available"],
        },
        ServiceProbe {
            key: "alb",
            metrics: ["HealthAlbOk", "HealthAlbLatencyMs"],
            probe: Box::pin(async move {
                svc.aws
                    .alb
                    .describe_listener(&c.alb_https_listener_arn)
                    .await
                    .map(|()| None)
            }),
            healthy: &[],
        },
        ServiceProbe {
            key: "route53",
            metrics: ["HealthRoute53Ok", "HealthRoute53LatencyMs"],
            probe: Box::pin(async move {
                svc.aws
                    .route53
                    .hosted_zone(&c.route53_hosted_zone_id)
                    .await
                    .map(|()| None)
            }),
            healthy: &[],
        },
        ServiceProbe {
            key: "secretsmanager",
            metrics: ["HealthSecretsManagerOk", "HealthSecretsManagerLatencyMs"],
            probe: Box::pin(async move { svc.aws.secrets.list_one().await.map(|()| None) }),
            healthy: &[],
        },
    ]
}

fn record(metrics: [&'static str; 2], ok: bool, latency_ms: u64) {
    crate::telemetry::count(metrics[0], if ok { 1.0 } else { 0.0 });
    crate::telemetry::count(metrics[1], latency_ms as f64);
}

/// `health-check`: probes every dependency concurrently and says how the function stands.
pub async fn health_check(svc: &Services) -> Result<Value> {
    let c = &svc.config;
    let tables = [
        c.instance_table.clone(),
        c.license_pool_table.clone(),
        c.scheduled_sessions_table.clone(),
        c.license_reservations_table.clone(),
        c.usage_table.clone(),
    ];
    let table_checks = join_all(tables.iter().map(|t| {
        let probe: Probe<'_> = Box::pin(async move { svc.aws.dynamo.table_status(t).await.map(Some) });
        timed(probe, &["ACTIVE", "UPDATING"])
    }));
    let probes = service_probes(svc);
    let names: Vec<(&'static str, [&'static str; 2])> = probes.iter().map(|p| (p.key, p.metrics)).collect();
    let service_checks = join_all(probes.into_iter().map(|p| timed(p.probe, p.healthy)));
    let (table_checks, service_checks) = futures_util::future::join(table_checks, service_checks).await;

    let mut details = Vec::new();
    let tables_ok = table_checks.iter().all(Check::ok);
    let slowest = table_checks.iter().map(|t| t.latency_ms).max().unwrap_or(0);
    let mut by_table = Map::new();
    for (name, check) in tables.iter().zip(&table_checks) {
        if !check.ok() {
            details.push(format!(
                "dynamodb {name}: {}",
                check
                    .error_code
                    .as_deref()
                    .or(check.message.as_deref())
                    .unwrap_or(check.status)
            ));
        }
        by_table.insert(name.clone(), crate::response::to_body(check)?);
    }
    record(["HealthDynamoDbOk", "HealthDynamoDbLatencyMs"], tables_ok, slowest);
    let mut checks = Map::new();
    checks.insert(
        "dynamodb".into(),
        crate::response::to_body(&TablesCheck {
            status: if tables_ok { "ok" } else { "failed" },
            latency_ms: slowest,
            tables: by_table,
        })?,
    );
    let mut others_ok = true;
    for ((key, metrics), check) in names.into_iter().zip(&service_checks) {
        record(metrics, check.ok(), check.latency_ms);
        if !check.ok() {
            others_ok = false;
            details.push(format!(
                "{key}: {}",
                check
                    .error_code
                    .as_deref()
                    .or(check.message.as_deref())
                    .unwrap_or(check.status)
            ));
        }
        checks.insert(key.into(), crate::response::to_body(check)?);
    }
    let status = match (tables_ok, others_ok) {
        (false, _) => "unhealthy",
        (true, false) => "degraded",
        (true, true) => "healthy",
    };
    crate::telemetry::count("HealthHealthy", if status == "healthy" { 1.0 } else { 0.0 });
    if status != "healthy" {
        tracing::warn!(status, details = ?details, "health check found failures");
    }
    crate::response::to_body(&Health {
        success: true,
        status,
        checks,
        details: (!details.is_empty()).then_some(details),
    })
}
