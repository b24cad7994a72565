//! The record store against moto: every page of a query and a scan is read, the indexes
//! answer the questions the store asks of them, and a conditional write that loses is
//! reported as such.

mod moto_env;

use std::collections::HashMap;
use std::sync::Arc;

use foundry_lambda::config::Config;
use foundry_lambda::domain::model::{Instance, InstanceStatus};
use foundry_lambda::managers::dynamodb::{AttributeValue, Cond, Dynamo, SdkDynamo, Table};
use foundry_lambda::store::{Lease, Store};

async fn store(page_limit: i32) -> (Store, Arc<SdkDynamo>, Config) {
    let aws = moto_env::local_aws();
    let config = Config::from_lookup(|k| aws.env.get(k).cloned()).expect("complete configuration");
    let sdk = moto_env::sdk_config().await;
    let dynamo = Arc::new(SdkDynamo::new(&sdk).with_page_limit(page_limit));
    (Store::new(dynamo.clone(), &config), dynamo, config)
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

#[tokio::test]
async fn queries_and_scans_read_past_the_first_page() {
    let (store, dynamo, config) = store(2).await;
    let uid = moto_env::unique_user_id();
    let license = format!("byol-{uid}");
    let sessions = Table::new(config.scheduled_sessions_table.clone(), "sessionId");
    for i in 0..7 {
        let item: HashMap<String, AttributeValue> = [
            ("sessionId", s(&format!("{uid}-{i}"))),
            ("userId", s(&uid)),
            ("licenseId", s(&license)),
            ("startTime", n(1_800_000_000 + i * 3600)),
            ("endTime", n(1_800_003_600 + i * 3600)),
            ("status", s("scheduled")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        dynamo.put(&sessions, item, Cond::Always).await.expect("put");
    }
    let mine = store.sessions.of_user(&uid).await.expect("query by user");
    assert_eq!(mine.len(), 7, "the GSI query read every page (Limit 2)");
    let window = store
        .sessions
        .on_license(&license, 1_800_000_000 + 3600, 1_800_000_000 + 5 * 3600)
        .await
        .expect("query by license");
    let starts: Vec<i64> = window.iter().map(|s| s.start_time).collect();
    assert_eq!(
        starts,
        (1..=5).map(|i| 1_800_000_000 + i * 3600).collect::<Vec<_>>(),
        "the license index returns the window, in start order, across pages"
    );
    let all = store.instances.all().await.expect("scan");
    assert!(all.iter().all(|i| !i.user_id.is_empty()), "the scan decoded every page");
}

#[tokio::test]
async fn a_second_new_record_loses_and_only_the_lease_holder_removes_it() {
    let (store, _, _) = store(100).await;
    let uid = moto_env::unique_user_id();
    let lease = Lease::new(4_000_000_000);
    let inst = Instance {
        user_id: uid.clone(),
        sanitized_username: format!("racer{}", &uid[uid.len() - 6..]),
        status: InstanceStatus::Creating,
        lease_id: Some(lease.id.clone()),
        lease_until: Some(lease.until),
        ..Default::default()
    };
    assert!(
        store.instances.insert_new(&inst).await.expect("put"),
        "the first put wins"
    );
    assert!(
        !store.instances.insert_new(&inst).await.expect("put"),
        "the second put loses"
    );
    let read = store.instances.get_latest(&uid).await.expect("get").expect("present");
    assert_eq!(read.status, InstanceStatus::Creating);
    assert!(
        !store
            .instances
            .remove(&uid, &inst.sanitized_username, &Lease::new(4_000_000_000))
            .await
            .expect("delete"),
        "another lease cannot delete the record"
    );
    assert!(store
        .instances
        .remove(&uid, &inst.sanitized_username, &lease)
        .await
        .expect("delete"));
    assert!(store.instances.get_latest(&uid).await.expect("get").is_none());
}

#[tokio::test]
async fn the_username_index_names_the_other_users_of_a_subdomain() {
    let (store, _, _) = store(100).await;
    let (a, b) = (moto_env::unique_user_id(), moto_env::unique_user_id());
    let name = format!("shared{}", &a[a.len() - 6..]);
    for uid in [&a, &b] {
        let inst = Instance {
            user_id: uid.clone(),
            sanitized_username: name.clone(),
            status: InstanceStatus::Created,
            ..Default::default()
        };
        assert!(store.instances.insert_new(&inst).await.expect("put"));
    }
    assert_eq!(
        store.instances.others_named(&name, &a).await.expect("query"),
        vec![b.clone()]
    );
    assert_eq!(
        store.instances.others_named(&name, &b).await.expect("query"),
        vec![a.clone()]
    );
    assert!(store
        .instances
        .others_named("nobody-has-this-name", &a)
        .await
        .expect("query")
        .is_empty());
}

#[tokio::test]
async fn begin_destroy_says_whether_the_record_was_destroying_already() {
    let (store, _, _) = store(100).await;
    let uid = moto_env::unique_user_id();
    let inst = Instance {
        user_id: uid.clone(),
        sanitized_username: format!("gone{}", &uid[uid.len() - 6..]),
        status: InstanceStatus::Stopped,
        access_point_id: Some("fsap-1".to_string()),
        ..Default::default()
    };
    assert!(store.instances.insert_new(&inst).await.expect("put"));

    let now = 1_800_000_000;
    let first = Lease::new(now + 60);
    let taken = store
        .instances
        .begin_destroy(&uid, &first, now)
        .await
        .expect("begin_destroy")
        .expect("a free record is taken");
    assert!(!taken.resumed, "it was stopped");
    // What is returned is what is stored.
    let stored = store.instances.get_latest(&uid).await.expect("get").expect("present");
    assert_eq!(taken.instance, stored);
    assert_eq!(stored.status, InstanceStatus::Destroying);
    assert_eq!(stored.lease_id.as_deref(), Some(first.id.as_str()));
    assert_eq!((stored.lease_until, stored.updated_at), (Some(now + 60), Some(now)));
    assert_eq!(stored.access_point_id.as_deref(), Some("fsap-1"));

    // Held: another destroy cannot take it; released: the next one resumes.
    let second = Lease::new(now + 120);
    assert!(store
        .instances
        .begin_destroy(&uid, &second, now + 1)
        .await
        .expect("begin_destroy")
        .is_none());
    store.instances.release(&uid, &first).await;
    let taken = store
        .instances
        .begin_destroy(&uid, &second, now + 2)
        .await
        .expect("begin_destroy")
        .expect("a released record is taken");
    assert!(taken.resumed, "it was destroying");
    assert_eq!(
        Some(taken.instance),
        store.instances.get_latest(&uid).await.expect("get")
    );
    assert!(store
        .instances
        .remove(&uid, "no-claim-name", &second)
        .await
        .expect("delete"));
}
