//! The sparse index of runs against moto, on the wire: the table has it, only records with
//! a run are in it, the sweep finds an overdue run through it and stops it, a stopped run
//! leaves it, and a legacy running record (without the index's attributes) is found by the
//! sweep only once `admin-backfill-run-index` has listed it.
//!
//! Tests share one moto, so each uses fresh user ids and looks only at its own records.

mod moto_env;

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue as Av;
use foundry_lambda::app::{App, Ctx};
use foundry_lambda::clock::{Clock, SystemClock};
use foundry_lambda::config::Config;
use foundry_lambda::managers::Managers;
use foundry_lambda::store::{run_shard, BY_RUN_DEADLINE, RUN_SHARDS};
use serde_json::{json, Value};

async fn app() -> App {
    let aws = moto_env::local_aws();
    let config = Config::from_lookup(|k| aws.env.get(k).cloned()).expect("the env file is a complete configuration");
    let sdk = moto_env::sdk_config().await;
    App::new(config, Arc::new(SystemClock), Managers::from_sdk(&sdk))
}

async fn call(app: &App, event: Value) -> (u16, Value) {
    let handled = app.handle(&event, &Ctx::default()).await;
    (
        handled.envelope.status_code,
        handled.envelope.body_json().unwrap_or(Value::Null),
    )
}

fn ev(action: &str, uid: &str) -> Value {
    json!({"action": action, "userId": uid})
}

async fn ddb() -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(&moto_env::sdk_config().await)
}

fn table() -> String {
    moto_env::local_aws().var("INSTANCE_TABLE_NAME").to_string()
}

async fn create(app: &App, uid: &str, san: &str) {
    let create = json!({"action":"create","userId":uid,"sanitizedUsername":san,
                        "foundryUsername":"gm@example.com","foundryPassword":"moto-pw-123"});
    let (code, body) = call(app, create).await;
    assert_eq!(code, 200, "create: {body}");
}

/// The items of the index of runs in `uid`'s shard, by Query on the index, every page.
async fn shard_items(uid: &str) -> Vec<HashMap<String, Av>> {
    let mut pages = ddb()
        .await
        .query()
        .table_name(table())
        .index_name(BY_RUN_DEADLINE)
        .key_condition_expression("runShard = :s")
        .expression_attribute_values(":s", Av::N(run_shard(uid).to_string()))
        .into_paginator()
        .send();
    let mut items = Vec::new();
    while let Some(page) = pages.next().await {
        items.extend(page.expect("Query the index of runs").items.unwrap_or_default());
    }
    items
}

async fn in_index(uid: &str) -> Option<HashMap<String, Av>> {
    shard_items(uid)
        .await
        .into_iter()
        .find(|i| i.get("userId") == Some(&Av::S(uid.to_string())))
}

async fn record(uid: &str) -> HashMap<String, Av> {
    ddb()
        .await
        .get_item()
        .table_name(table())
        .key("userId", Av::S(uid.to_string()))
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem")
        .item
        .expect("the record")
}

fn n(item: &HashMap<String, Av>, attr: &str) -> Option<i64> {
    item.get(attr).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok())
}

fn mine<'a>(body: &'a Value, uid: &str) -> Vec<&'a Value> {
    body["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter(|r| r["userId"] == uid)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_runs_are_in_the_index_and_the_sweep_stops_an_overdue_one_through_it() {
    let app = app().await;
    let runner = moto_env::unique_user_id();
    let idle = moto_env::unique_user_id();
    let family = format!("foundry-{runner}");
    create(&app, &runner, &format!("ix{}", &runner[runner.len() - 10..])).await;
    create(&app, &idle, &format!("iy{}", &idle[idle.len() - 10..])).await;

    // The table has the index: runShard (N) HASH, runDeadline (N) RANGE, all attributes.
    let described = ddb()
        .await
        .describe_table()
        .table_name(table())
        .send()
        .await
        .expect("DescribeTable");
    let t = described.table().expect("a table");
    let gsi = t
        .global_secondary_indexes()
        .iter()
        .find(|g| g.index_name() == Some(BY_RUN_DEADLINE))
        .expect("the index of runs");
    let keys: Vec<(&str, &str)> = gsi
        .key_schema()
        .iter()
        .map(|k| (k.attribute_name(), k.key_type().as_str()))
        .collect();
    assert_eq!(keys, vec![("runShard", "HASH"), ("runDeadline", "RANGE")]);
    assert_eq!(
        gsi.projection().and_then(|p| p.projection_type()).map(|p| p.as_str()),
        Some("ALL")
    );

    moto_env::set_ecs_transition(Some(&family), r#"{"progression":"immediate"}"#);
    let (code, body) = call(&app, ev("start", &runner)).await;
    assert_eq!((code, body["status"].as_str()), (200, Some("running")), "{body}");

    // Sparse on the wire: the running record is in its shard, the created one nowhere.
    let listed = in_index(&runner).await.expect("the run is in the index");
    let rec = record(&runner).await;
    assert_eq!(n(&listed, "runDeadline"), n(&rec, "autoShutdownAt"));
    assert_eq!(
        listed.get("status"),
        Some(&Av::S("running".into())),
        "all attributes projected"
    );
    assert!(
        in_index(&idle).await.is_none(),
        "a record without a run is not in the index"
    );
    let mut everything = Vec::new();
    for shard in 0..RUN_SHARDS {
        let page = ddb()
            .await
            .query()
            .table_name(table())
            .index_name(BY_RUN_DEADLINE)
            .key_condition_expression("runShard = :s")
            .expression_attribute_values(":s", Av::N(shard.to_string()))
            .send()
            .await
            .expect("Query");
        everything.extend(page.items.unwrap_or_default());
    }
    assert!(
        everything.iter().all(|i| i.contains_key("runDeadline")
            && (i.contains_key("taskArn")
                || matches!(i.get("status"), Some(Av::S(s)) if s == "starting" || s == "running"))),
        "only records with a run are in the index"
    );
    assert!(!everything.iter().any(|i| i.get("userId") == Some(&Av::S(idle.clone()))));

    // Its deadline passes (moved by hand, in the record): the sweep, reading the index,
    // stops it, and the stopped run leaves the index.
    let now = SystemClock.now();
    ddb()
        .await
        .update_item()
        .table_name(table())
        .key("userId", Av::S(runner.clone()))
        .update_expression("SET startedAt = :s, autoShutdownAt = :a, runDeadline = :a")
        .expression_attribute_values(":s", Av::N((now - 7_200).to_string()))
        .expression_attribute_values(":a", Av::N((now - 60).to_string()))
        .send()
        .await
        .expect("UpdateItem");
    let (code, body) = call(&app, json!({"action":"auto-shutdown-check","userId":"system"})).await;
    assert_eq!(code, 200, "{body}");
    let got = mine(&body, &runner);
    assert_eq!(got.len(), 1, "{body}");
    assert_eq!(got[0]["success"], true, "{body}");
    assert!(in_index(&runner).await.is_none(), "the stopped run left the index");
    let rec = record(&runner).await;
    assert_eq!(rec.get("status"), Some(&Av::S("stopped".into())));
    assert!(
        !rec.contains_key("runShard") && !rec.contains_key("runDeadline"),
        "{rec:?}"
    );

    assert_eq!(call(&app, ev("destroy", &runner)).await.0, 200);
    assert_eq!(call(&app, ev("destroy", &idle)).await.0, 200);
    moto_env::unset_ecs_transition(Some(&family));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_running_record_is_swept_once_the_backfill_has_listed_it() {
    let app = app().await;
    let uid = moto_env::unique_user_id();
    create(&app, &uid, &format!("lg{}", &uid[uid.len() - 10..])).await;
    // As the original left it: running, started seven hours ago, no index attributes.
    let started = SystemClock.now() - 7 * 3_600;
    ddb()
        .await
        .update_item()
        .table_name(table())
        .key("userId", Av::S(uid.clone()))
        .update_expression("SET #s = :r, startedAt = :t")
        .expression_attribute_names("#s", "status")
        .expression_attribute_values(":r", Av::S("running".into()))
        .expression_attribute_values(":t", Av::N(started.to_string()))
        .send()
        .await
        .expect("UpdateItem");
    let sweep = json!({"action":"auto-shutdown-check","userId":"system"});
    let (code, body) = call(&app, sweep.clone()).await;
    assert_eq!(code, 200, "{body}");
    assert!(mine(&body, &uid).is_empty(), "not in the index, not swept: {body}");
    assert!(in_index(&uid).await.is_none());

    let admin = moto_env::local_aws()
        .var("ADMIN_USER_IDS")
        .split(',')
        .next()
        .unwrap()
        .to_string();
    let (code, body) = call(&app, json!({"action":"admin-backfill-run-index","userId":admin})).await;
    assert_eq!(code, 200, "{body}");
    assert!(body["listed"].as_u64().is_some_and(|l| l >= 1), "{body}");
    let listed = in_index(&uid).await.expect("the backfill listed the legacy run");
    assert_eq!(
        n(&listed, "runDeadline"),
        Some(started + 6 * 3_600),
        "its start plus the run limit"
    );

    let (code, body) = call(&app, sweep).await;
    assert_eq!(code, 200, "{body}");
    let got = mine(&body, &uid);
    assert_eq!(got.len(), 1, "{body}");
    assert_eq!(got[0]["success"], true, "{body}");
    assert!(in_index(&uid).await.is_none(), "stopped, it left the index");
    assert_eq!(call(&app, ev("destroy", &uid)).await.0, 200);
}
