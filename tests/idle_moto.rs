//! Idle detection's one write against moto: a probe's result is recorded on the run it
//! probed, and never on a run that has ended or changed (a conditional UpdateItem).

mod moto_env;

use std::collections::HashMap;
use std::sync::Arc;

use foundry_lambda::config::Config;
use foundry_lambda::managers::dynamodb::{AttributeValue, Cond, Dynamo, SdkDynamo, Table};
use foundry_lambda::store::{ProbeNote, Store};

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

#[tokio::test]
async fn a_probe_is_recorded_on_its_running_run_only() {
    let aws = moto_env::local_aws();
    let config = Config::from_lookup(|k| aws.env.get(k).cloned()).expect("complete configuration");
    let sdk = moto_env::sdk_config().await;
    let dynamo = Arc::new(SdkDynamo::new(&sdk));
    let store = Store::new(dynamo.clone(), &config);
    let table = Table::new(config.instance_table.clone(), "userId");
    let uid = moto_env::unique_user_id();
    let item: HashMap<String, AttributeValue> = [
        ("userId", s(&uid)),
        ("sanitizedUsername", s("idle-moto")),
        ("status", s("running")),
        ("taskArn", s("arn:aws:ecs:us-east-1:123456789012:task/c/run-1")),
        ("startedAt", n(1_800_000_000)),
        ("autoShutdownAt", n(1_800_021_600)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    dynamo.put(&table, item, Cond::Always).await.expect("put");

    let seen = ProbeNote {
        at: 1_800_020_000,
        players: Some(3),
        outcome: "ok",
        extend_to: Some(1_800_021_800),
    };
    let after = store
        .instances
        .note_probe(&uid, "arn:aws:ecs:us-east-1:123456789012:task/c/run-1", &seen)
        .await
        .expect("written")
        .expect("the run is running");
    assert_eq!(
        (
            after.players,
            after.last_players_seen_at,
            after.auto_shutdown_at,
            after.last_probe_result.as_deref()
        ),
        (Some(3), Some(1_800_020_000), Some(1_800_021_800), Some("ok"))
    );

    let failed = ProbeNote {
        at: 1_800_020_300,
        players: None,
        outcome: "timeout",
        extend_to: None,
    };
    let after = store
        .instances
        .note_probe(&uid, "arn:aws:ecs:us-east-1:123456789012:task/c/run-1", &failed)
        .await
        .expect("written")
        .expect("still running");
    assert_eq!(after.players, None, "a failed probe counts nobody");
    assert_eq!(
        after.last_players_seen_at,
        Some(1_800_020_000),
        "the last sighting stays"
    );

    // Another run (the task changed), or a run that ended: nothing is written.
    let other = store
        .instances
        .note_probe(&uid, "arn:aws:ecs:us-east-1:123456789012:task/c/run-0", &seen)
        .await
        .expect("no error");
    assert!(other.is_none());
    let mut stopped = dynamo.get(&table, &uid, true).await.expect("get").expect("the item");
    stopped.insert("status".into(), s("stopped"));
    stopped.remove("taskArn");
    dynamo.put(&table, stopped, Cond::Always).await.expect("put");
    let gone = store
        .instances
        .note_probe(&uid, "arn:aws:ecs:us-east-1:123456789012:task/c/run-1", &seen)
        .await
        .expect("no error");
    assert!(gone.is_none(), "a probe never brings a stopped run back");
    let item = dynamo.get(&table, &uid, true).await.expect("get").expect("the item");
    assert_eq!(item.get("status"), Some(&s("stopped")));
    assert_eq!(item.get("players"), None);
}
