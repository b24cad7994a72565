//! The fakes harness: what the tests on the in-memory fakes share (ids, events, and an
//! inventory of every per-user resource the fakes hold). Tests on moto use tests/moto_env.
#![allow(dead_code)]

use std::collections::BTreeMap;

use foundry_lambda::app::App;
use foundry_lambda::testing::{invoke, FakeAws};
use serde_json::{json, Value};

pub const UID: &str = "123456789012345678";
pub const UID2: &str = "223456789012345678";
pub const T0: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z
pub const LISTENER: &str =
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/foundry-vtt-alb/50dc6c495c0c9188/f2f7dc8efc522ab2";
pub const INSTANCES: &str = "foundry-vtt-instances";
pub const USAGE: &str = "foundry-vtt-usage";

pub fn create_event(uid: &str, san: &str) -> Value {
    json!({"action":"create","userId":uid,"sanitizedUsername":san,"foundryUsername":"gm@example.com",
           "foundryPassword":"pw-Sup3r-S3cret","licenseType":"byol","allowLicenseSharing":false,"maxConcurrentUsers":1})
}

pub fn ev(action: &str, uid: &str) -> Value {
    json!({"action": action, "userId": uid})
}

/// Every per-user resource the fakes hold, by kind (empty kinds omitted).
pub fn leftovers(fake: &FakeAws) -> BTreeMap<&'static str, Vec<String>> {
    let mut m = BTreeMap::new();
    let mut put = |k: &'static str, v: Vec<String>| {
        if !v.is_empty() {
            m.insert(k, v);
        }
    };
    put(
        "access points",
        fake.efs.access_points().into_iter().map(|a| a.id).collect(),
    );
    put("buckets", fake.s3.buckets());
    put("iam users", fake.iam.users());
    put("secrets", fake.secrets.secrets());
    put(
        "target groups",
        fake.alb.target_groups().into_iter().map(|t| t.arn).collect(),
    );
    put("rules", fake.alb.rules(LISTENER).into_iter().map(|r| r.arn).collect());
    put(
        "dns records",
        fake.route53.records().into_iter().map(|r| r.name).collect(),
    );
    put(
        "running tasks",
        fake.ecs.running_tasks().into_iter().map(|t| t.arn).collect(),
    );
    put(
        "active user task definitions",
        fake.ecs
            .task_definitions()
            .into_iter()
            .filter(|d| {
                d.active
                    && d.family.starts_with("foundry-")
                    && d.family.chars().last().is_some_and(|c| c.is_ascii_digit())
            })
            .map(|d| d.arn)
            .collect(),
    );
    put(
        "user log groups",
        fake.logs
            .groups()
            .into_iter()
            .filter(|(name, _)| name.starts_with("/aws/ecs/foundry-") && name.ends_with(|c: char| c.is_ascii_digit()))
            .map(|(name, _)| name)
            .collect(),
    );
    put(
        "instance items",
        fake.dynamo
            .items(INSTANCES)
            .into_iter()
            .map(|i| format!("{:?}", i.get("userId")))
            .collect(),
    );
    m
}

pub async fn created(app: &App) -> Value {
    let (code, body) = invoke(app, create_event(UID, "alice")).await;
    assert_eq!(code, 200, "{body}");
    body
}

pub async fn running(app: &App) -> Value {
    created(app).await;
    let (code, body) = invoke(app, ev("start", UID)).await;
    assert_eq!(code, 200, "{body}");
    body
}

/// Handles every event at the same time, each in its own task → their answers, in order.
pub async fn concurrently(app: &App, events: Vec<Value>) -> Vec<(u16, Value)> {
    let tasks: Vec<_> = events
        .into_iter()
        .map(|e| {
            let app = app.clone();
            tokio::spawn(async move { invoke(&app, e).await })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.expect("an invocation panicked"));
    }
    answers
}
