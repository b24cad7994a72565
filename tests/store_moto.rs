//! The typed DynamoDB store against moto: every page of a query and a scan is read, and a
//! conditional write that loses is reported as such.

mod common;

use std::sync::Arc;

use foundry_lambda::config::Config;
use foundry_lambda::domain::model::{Instance, InstanceStatus, ScheduledSession, SessionStatus};
use foundry_lambda::error::Error;
use foundry_lambda::managers::dynamodb::{Cond, SdkDynamo};
use foundry_lambda::store::Store;

async fn store(page_limit: i32) -> Store {
    let aws = common::local_aws();
    let config = Config::from_lookup(|k| aws.env.get(k).cloned()).expect("complete configuration");
    let sdk = common::sdk_config().await;
    Store::new(Arc::new(SdkDynamo::new(&sdk).with_page_limit(page_limit)), &config)
}

#[tokio::test]
async fn queries_and_scans_read_past_the_first_page() {
    let store = store(2).await;
    let uid = common::unique_user_id();
    for i in 0..7 {
        let s = ScheduledSession {
            session_id: format!("{uid}-{i}"),
            user_id: uid.clone(),
            start_time: 1_800_000_000 + i,
            end_time: 1_800_003_600 + i,
            status: SessionStatus::Scheduled,
            ..Default::default()
        };
        store.put_session(&s, Cond::not_exists("sessionId")).await.expect("put");
    }
    let mine = store.sessions_of_user(&uid).await.expect("query");
    assert_eq!(mine.len(), 7, "the GSI query read every page (Limit 2)");
    let all = store.scan_sessions().await.expect("scan");
    assert_eq!(
        all.iter().filter(|s| s.user_id == uid).count(),
        7,
        "the scan read every page"
    );
}

#[tokio::test]
async fn a_conditional_put_that_loses_is_a_condition_failure() {
    let store = store(100).await;
    let uid = common::unique_user_id();
    let inst = Instance {
        user_id: uid.clone(),
        sanitized_username: "racer".into(),
        status: InstanceStatus::Creating,
        ..Default::default()
    };
    store
        .put_instance(&inst, Cond::not_exists("userId"))
        .await
        .expect("the first put wins");
    match store.put_instance(&inst, Cond::not_exists("userId")).await {
        Err(Error::Aws(e)) => assert!(e.is_condition_failed(), "{e:?}"),
        other => panic!("the second put must lose: {other:?}"),
    }
    let read = store
        .get_instance_consistent(&uid)
        .await
        .expect("get")
        .expect("present");
    assert_eq!(read.status, InstanceStatus::Creating);
    store
        .delete_instance(&uid, Cond::exists("userId"))
        .await
        .expect("cleanup");
    assert!(store.get_instance_consistent(&uid).await.expect("get").is_none());
}
