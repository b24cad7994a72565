//! Wire behaviour of the Route 53, ELBv2, Secrets Manager and DynamoDB adapters, against moto.
//!
//! Every test uses fresh names and keys (moto is shared by all tests and never reset).

mod moto_env;

use std::collections::HashSet;

use foundry_lambda::error::{AwsError, AwsErrorKind};
use foundry_lambda::managers::alb::{Alb, SdkAlb, TargetGroupSpec};
use foundry_lambda::managers::dynamodb::{
    AttributeValue, Cond, Dynamo, Item, Query, RangeCond, SdkDynamo, Table, TransactOp, Update,
};
use foundry_lambda::managers::route53::{AliasRecord, Route53, SdkRoute53};
use foundry_lambda::managers::secrets::{SdkSecrets, Secrets};
use foundry_lambda::secret::Sensitive;

fn uid() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn item(pairs: &[(&str, AttributeValue)]) -> Item {
    pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

fn get_s<'a>(item: &'a Item, attr: &str) -> Option<&'a str> {
    item.get(attr).and_then(|v| v.as_s().ok()).map(String::as_str)
}

fn get_n(item: &Item, attr: &str) -> Option<f64> {
    item.get(attr).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok())
}

fn expect_kind<T: std::fmt::Debug>(result: Result<T, AwsError>, kind: AwsErrorKind) -> AwsError {
    match result {
        Ok(v) => panic!("expected a {kind:?} error, got Ok({v:?})"),
        Err(e) => {
            assert_eq!(e.kind, kind, "unexpected error: {e} ({e:?})");
            e
        }
    }
}

async fn dynamo() -> SdkDynamo {
    SdkDynamo::new(&moto_env::sdk_config().await)
}

fn table(var: &str, key: &'static str) -> Table {
    Table::new(moto_env::local_aws().var(var), key)
}

fn instances() -> Table {
    table("INSTANCE_TABLE_NAME", "userId")
}

fn usage() -> Table {
    table("USAGE_TABLE_NAME", "usageKey")
}

fn sessions() -> Table {
    table("SCHEDULED_SESSIONS_TABLE_NAME", "sessionId")
}

fn reservations() -> Table {
    table("LICENSE_RESERVATIONS_TABLE_NAME", "reservationId")
}

// ---------------------------------------------------------------------------------------------
// DynamoDB

#[tokio::test]
async fn dynamodb_scan_follows_last_evaluated_key_past_the_first_page() {
    let db = dynamo().await;
    let t = usage();
    let prefix = format!("{}#", moto_env::unique_user_id());
    let mut want = HashSet::new();
    for m in 1..=7 {
        let key = format!("{prefix}2026-{m:02}");
        db.put(
            &t,
            item(&[("usageKey", s(&key)), ("sessionsStarted", n(m))]),
            Cond::Always,
        )
        .await
        .expect("put");
        want.insert(key);
    }
    // The server does page at this limit, so getting all 7 back proves the adapter follows
    // LastEvaluatedKey.
    let raw = aws_sdk_dynamodb::Client::new(&moto_env::sdk_config().await);
    let first = raw.scan().table_name(&t.name).limit(2).send().await.expect("raw scan");
    assert!(
        first.last_evaluated_key().is_some(),
        "a Limit=2 scan stops after one page"
    );
    let paged = dynamo().await.with_page_limit(2);
    let all = paged.scan(&t).await.expect("scan");
    let got: HashSet<String> = all
        .iter()
        .filter_map(|i| get_s(i, "usageKey"))
        .filter(|k| k.starts_with(&prefix))
        .map(str::to_string)
        .collect();
    assert_eq!(got, want);
}

#[tokio::test]
async fn dynamodb_query_on_gsi_follows_last_evaluated_key_past_the_first_page() {
    let db = dynamo().await.with_page_limit(2);
    let t = sessions();
    let user = moto_env::unique_user_id();
    let mut want = HashSet::new();
    for i in 0..7 {
        let id = uid();
        db.put(
            &t,
            item(&[
                ("sessionId", s(&id)),
                ("userId", s(&user)),
                ("startTime", n(1_800_000_000 + i)),
                ("status", s("scheduled")),
            ]),
            Cond::not_exists("sessionId"),
        )
        .await
        .expect("put");
        want.insert(id);
    }
    let q = Query {
        index: Some("userId-index".into()),
        hash_attr: "userId".into(),
        hash_value: s(&user),
        range: None,
    };
    let raw = aws_sdk_dynamodb::Client::new(&moto_env::sdk_config().await);
    let first = raw
        .query()
        .table_name(&t.name)
        .index_name("userId-index")
        .key_condition_expression("#u = :u")
        .expression_attribute_names("#u", "userId")
        .expression_attribute_values(":u", s(&user))
        .limit(2)
        .send()
        .await
        .expect("raw query");
    assert_eq!(first.items().len(), 2);
    assert!(
        first.last_evaluated_key().is_some(),
        "a Limit=2 query stops after one page"
    );
    let got = db.query(&t, &q).await.expect("query");
    assert_eq!(got.len(), 7, "every page is read");
    let ids: HashSet<String> = got
        .iter()
        .filter_map(|i| get_s(i, "sessionId"))
        .map(str::to_string)
        .collect();
    assert_eq!(ids, want);
}

#[tokio::test]
async fn dynamodb_gsi_query_with_between_returns_the_window_in_ascending_order_across_pages() {
    let db = dynamo().await.with_page_limit(2);
    let t = reservations();
    let license = format!("byol-{}", moto_env::unique_user_id());
    // Written out of order, so ascending order comes from the query, not from insertion.
    let starts = [
        1_800_000_500,
        1_800_000_100,
        1_800_000_700,
        1_800_000_300,
        1_800_000_200,
        1_800_000_600,
        1_800_000_400,
    ];
    for start in starts {
        db.put(
            &t,
            item(&[
                ("reservationId", s(&uid())),
                ("licenseId", s(&license)),
                ("startTime", n(start)),
                ("endTime", n(start + 3600)),
                ("status", s("active")),
            ]),
            Cond::Always,
        )
        .await
        .expect("put");
    }
    let q = |range| Query {
        index: Some("licenseId-startTime-index".into()),
        hash_attr: "licenseId".into(),
        hash_value: s(&license),
        range,
    };
    let window = db
        .query(
            &t,
            &q(Some((
                "startTime".into(),
                RangeCond::Between(n(1_800_000_200), n(1_800_000_500)),
            ))),
        )
        .await
        .expect("query between");
    let got: Vec<f64> = window.iter().filter_map(|i| get_n(i, "startTime")).collect();
    assert_eq!(
        got,
        vec![1_800_000_200.0, 1_800_000_300.0, 1_800_000_400.0, 1_800_000_500.0]
    );

    let all = db.query(&t, &q(None)).await.expect("query all");
    let got: Vec<f64> = all.iter().filter_map(|i| get_n(i, "startTime")).collect();
    let mut sorted = got.clone();
    sorted.sort_by(f64::total_cmp);
    assert_eq!(got.len(), 7);
    assert_eq!(got, sorted, "ascending sort-key order");

    let before = db
        .query(&t, &q(Some(("startTime".into(), RangeCond::Lt(n(1_800_000_300))))))
        .await
        .expect("query lt");
    assert_eq!(before.len(), 2);
    let from = db
        .query(&t, &q(Some(("startTime".into(), RangeCond::Ge(n(1_800_000_600))))))
        .await
        .expect("query ge");
    assert_eq!(from.len(), 2);
}

#[tokio::test]
async fn dynamodb_conditional_put_on_an_existing_item_is_condition_failed() {
    let db = dynamo().await;
    let t = instances();
    let user = moto_env::unique_user_id();
    db.put(
        &t,
        item(&[("userId", s(&user)), ("status", s("created"))]),
        Cond::not_exists("userId"),
    )
    .await
    .expect("first put wins");
    let err = expect_kind(
        db.put(
            &t,
            item(&[("userId", s(&user)), ("status", s("running"))]),
            Cond::not_exists("userId"),
        )
        .await,
        AwsErrorKind::ConditionFailed,
    );
    assert_eq!(err.code.as_deref(), Some("ConditionalCheckFailedException"));
    assert!(err.is_condition_failed());
    let stored = db.get(&t, &user, true).await.expect("get").expect("item");
    assert_eq!(
        get_s(&stored, "status"),
        Some("created"),
        "the losing put wrote nothing"
    );
}

#[tokio::test]
async fn dynamodb_update_whose_eq_condition_fails_is_condition_failed_and_changes_nothing() {
    let db = dynamo().await;
    let t = instances();
    let user = moto_env::unique_user_id();
    db.put(
        &t,
        item(&[("userId", s(&user)), ("status", s("stopped"))]),
        Cond::Always,
    )
    .await
    .expect("put");
    expect_kind(
        db.update(
            &t,
            &user,
            &Update::new().set_s("status", "stopping"),
            Cond::eq_s("status", "running"),
        )
        .await,
        AwsErrorKind::ConditionFailed,
    );
    let stored = db.get(&t, &user, true).await.expect("get").expect("item");
    assert_eq!(get_s(&stored, "status"), Some("stopped"));

    // The same update with a true condition goes through.
    let after = db
        .update(
            &t,
            &user,
            &Update::new().set_s("status", "running"),
            Cond::in_s("status", &["stopped", "created"]),
        )
        .await
        .expect("update");
    assert_eq!(get_s(&after, "status"), Some("running"));
}

#[tokio::test]
async fn dynamodb_update_set_remove_add_round_trips_and_returns_all_new() {
    let db = dynamo().await;
    let t = instances();
    let user = moto_env::unique_user_id();
    db.put(
        &t,
        item(&[
            ("userId", s(&user)),
            ("status", s("running")),
            ("taskArn", s("arn:aws:ecs:us-east-1:123456789012:task/x")),
            ("sessionsStarted", n(2)),
        ]),
        Cond::Always,
    )
    .await
    .expect("put");
    let update = Update::new()
        .set_s("status", "stopped")
        .set_bool("allowLicenseSharing", true)
        .set_n("updatedAt", 1_800_000_000)
        .remove("taskArn")
        .add_n("sessionsStarted", "3")
        .add_n("hoursThisMonth", "1.5");
    let after = db
        .update(&t, &user, &update, Cond::exists("userId"))
        .await
        .expect("update");
    assert_eq!(get_s(&after, "status"), Some("stopped"));
    assert_eq!(after.get("allowLicenseSharing"), Some(&AttributeValue::Bool(true)));
    assert_eq!(get_n(&after, "updatedAt"), Some(1_800_000_000.0));
    assert!(!after.contains_key("taskArn"));
    assert_eq!(get_n(&after, "sessionsStarted"), Some(5.0));
    assert_eq!(
        get_n(&after, "hoursThisMonth"),
        Some(1.5),
        "ADD on a missing attribute starts at 0"
    );
    let stored = db.get(&t, &user, true).await.expect("get").expect("item");
    assert_eq!(stored, after, "ALL_NEW is what is stored");
}

#[tokio::test]
async fn dynamodb_update_of_a_missing_item_creates_it_unless_the_condition_forbids() {
    let db = dynamo().await;
    let t = usage();
    let key = format!("{}#2026-01", moto_env::unique_user_id());
    expect_kind(
        db.update(
            &t,
            &key,
            &Update::new().add_n("sessionsStarted", "1"),
            Cond::exists("usageKey"),
        )
        .await,
        AwsErrorKind::ConditionFailed,
    );
    assert_eq!(db.get(&t, &key, true).await.expect("get"), None);
    let created = db
        .update(&t, &key, &Update::new().add_n("sessionsStarted", "1"), Cond::Always)
        .await
        .expect("upsert");
    assert_eq!(get_s(&created, "usageKey"), Some(key.as_str()));
    assert_eq!(get_n(&created, "sessionsStarted"), Some(1.0));
}

#[tokio::test]
async fn dynamodb_empty_update_returns_the_current_item_and_refuses_conditions() {
    let db = dynamo().await;
    let t = instances();
    let user = moto_env::unique_user_id();
    db.put(
        &t,
        item(&[("userId", s(&user)), ("status", s("created"))]),
        Cond::Always,
    )
    .await
    .expect("put");
    let current = db
        .update(&t, &user, &Update::new(), Cond::Always)
        .await
        .expect("empty update");
    assert_eq!(get_s(&current, "status"), Some("created"));
    expect_kind(
        db.update(&t, &user, &Update::new(), Cond::eq_s("status", "created"))
            .await,
        AwsErrorKind::Invalid,
    );
    let missing = moto_env::unique_user_id();
    expect_kind(
        db.update(&t, &missing, &Update::new(), Cond::Always).await,
        AwsErrorKind::NotFound,
    );
    assert_eq!(
        db.get(&t, &missing, true).await.expect("get"),
        None,
        "nothing was created"
    );
}

#[tokio::test]
async fn dynamodb_ne_condition_holds_when_the_attribute_is_missing() {
    let db = dynamo().await;
    let t = instances();
    let user = moto_env::unique_user_id();
    db.put(&t, item(&[("userId", s(&user))]), Cond::Always)
        .await
        .expect("put");
    let after = db
        .update(
            &t,
            &user,
            &Update::new().set_s("status", "running"),
            Cond::ne_s("status", "running"),
        )
        .await
        .expect("<> on a missing attribute is true");
    assert_eq!(get_s(&after, "status"), Some("running"));
    expect_kind(
        db.update(
            &t,
            &user,
            &Update::new().set_s("status", "running"),
            Cond::ne_s("status", "running"),
        )
        .await,
        AwsErrorKind::ConditionFailed,
    );
}

#[tokio::test]
async fn dynamodb_conditional_delete_that_fails_keeps_the_item_and_missing_items_delete_fine() {
    let db = dynamo().await;
    let t = instances();
    let user = moto_env::unique_user_id();
    db.put(
        &t,
        item(&[("userId", s(&user)), ("status", s("running"))]),
        Cond::Always,
    )
    .await
    .expect("put");
    expect_kind(
        db.delete(&t, &user, Cond::eq_s("status", "stopped")).await,
        AwsErrorKind::ConditionFailed,
    );
    assert!(db.get(&t, &user, false).await.expect("get").is_some());
    db.delete(&t, &user, Cond::eq_s("status", "running"))
        .await
        .expect("delete");
    assert_eq!(db.get(&t, &user, true).await.expect("get"), None);
    db.delete(&t, &user, Cond::Always)
        .await
        .expect("deleting a missing item is fine");
}

#[tokio::test]
async fn dynamodb_transaction_whose_condition_fails_writes_nothing_and_lists_the_reasons() {
    let db = dynamo().await;
    let inst = instances();
    let sess = sessions();
    let user = moto_env::unique_user_id();
    let session_id = uid();
    db.put(
        &inst,
        item(&[("userId", s(&user)), ("status", s("running"))]),
        Cond::Always,
    )
    .await
    .expect("put");
    let ops = vec![
        TransactOp::Put {
            table: sess.clone(),
            item: item(&[
                ("sessionId", s(&session_id)),
                ("userId", s(&user)),
                ("status", s("scheduled")),
            ]),
            cond: Cond::not_exists("sessionId"),
        },
        TransactOp::Update {
            table: inst.clone(),
            key: user.clone(),
            update: Update::new().set_s("linkedSessionId", session_id.clone()),
            cond: Cond::eq_s("status", "stopped"), // false: the item is running
        },
    ];
    let err = expect_kind(db.transact(ops).await, AwsErrorKind::TransactionCanceled);
    assert!(err.is_condition_failed());
    assert!(
        err.message.contains("ConditionalCheckFailed"),
        "the cancellation reasons are in the message: {err}"
    );
    assert_eq!(
        db.get(&sess, &session_id, true).await.expect("get"),
        None,
        "the put was rolled back"
    );
    let stored = db.get(&inst, &user, true).await.expect("get").expect("item");
    assert!(!stored.contains_key("linkedSessionId"));
}

#[tokio::test]
async fn dynamodb_transaction_with_true_conditions_applies_every_write() {
    let db = dynamo().await;
    let inst = instances();
    let sess = sessions();
    let user = moto_env::unique_user_id();
    let gone = moto_env::unique_user_id();
    let session_id = uid();
    db.put(
        &inst,
        item(&[("userId", s(&user)), ("status", s("stopped"))]),
        Cond::Always,
    )
    .await
    .expect("put");
    db.put(
        &inst,
        item(&[("userId", s(&gone)), ("status", s("stopped"))]),
        Cond::Always,
    )
    .await
    .expect("put");
    let ops = vec![
        TransactOp::Put {
            table: sess.clone(),
            item: item(&[
                ("sessionId", s(&session_id)),
                ("userId", s(&user)),
                ("status", s("scheduled")),
            ]),
            cond: Cond::not_exists("sessionId"),
        },
        TransactOp::Update {
            table: inst.clone(),
            key: user.clone(),
            update: Update::new()
                .set_s("linkedSessionId", session_id.clone())
                .add_n("n", "1"),
            cond: Cond::eq_s("status", "stopped"),
        },
        TransactOp::Delete {
            table: inst.clone(),
            key: gone.clone(),
            cond: Cond::exists("userId"),
        },
        TransactOp::ConditionCheck {
            table: inst.clone(),
            key: user.clone(),
            cond: Cond::Always, // left out: checks nothing
        },
    ];
    db.transact(ops).await.expect("transaction");
    assert!(db.get(&sess, &session_id, true).await.expect("get").is_some());
    let stored = db.get(&inst, &user, true).await.expect("get").expect("item");
    assert_eq!(get_s(&stored, "linkedSessionId"), Some(session_id.as_str()));
    assert_eq!(db.get(&inst, &gone, true).await.expect("get"), None);

    // A failing ConditionCheck cancels the others.
    let other = uid();
    let ops = vec![
        TransactOp::Put {
            table: sess.clone(),
            item: item(&[("sessionId", s(&other)), ("userId", s(&user))]),
            cond: Cond::Always,
        },
        TransactOp::ConditionCheck {
            table: inst.clone(),
            key: user.clone(),
            cond: Cond::eq_s("status", "running"),
        },
    ];
    expect_kind(db.transact(ops).await, AwsErrorKind::TransactionCanceled);
    assert_eq!(db.get(&sess, &other, true).await.expect("get"), None);
}

// ---------------------------------------------------------------------------------------------
// ELBv2

fn target_group_spec(name: &str) -> TargetGroupSpec {
    TargetGroupSpec {
        name: name.to_string(),
        vpc_id: moto_env::local_aws().var("VPC_ID").to_string(),
        port: 30000,
        health_check_path: "/".into(),
        health_check_interval_seconds: 30,
        health_check_timeout_seconds: 10,
        healthy_threshold: 2,
        unhealthy_threshold: 3,
        matcher: "200,302".into(),
        tags: vec![
            ("Name".into(), name.to_string()),
            (
                "SanitizedUsername".into(),
                name.trim_start_matches("foundry-").to_string(),
            ),
            ("Application".into(), "FoundryVTT".into()),
        ],
    }
}

/// A priority unlikely to be used by a concurrent test (1..=49_000).
fn random_priority() -> i32 {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    1 + (i32::from(bytes[0]) << 8 | i32::from(bytes[1])) % 49_000
}

#[tokio::test]
async fn alb_target_group_and_listener_rule_lifecycle() {
    let aws = moto_env::local_aws();
    let alb = SdkAlb::new(&moto_env::sdk_config().await).with_rules_page_size(1);
    let listener = aws.var("ALB_HTTPS_LISTENER_ARN");
    let domain = aws.var("DOMAIN_NAME");
    let san = format!("t{}", &uid()[..12]);
    let tg_name = format!("foundry-{san}");

    // Target group: create, find (and a missing one is None).
    assert_eq!(alb.find_target_group(&tg_name).await.expect("find missing"), None);
    let tg = alb
        .create_target_group(&target_group_spec(&tg_name))
        .await
        .expect("create tg");
    assert!(tg.contains(":targetgroup/"), "{tg}");
    assert_eq!(alb.find_target_group(&tg_name).await.expect("find"), Some(tg.clone()));

    // Rules: the second with the same priority is PriorityInUse.
    let priority = random_priority();
    let host = format!("{san}.{domain}");
    let other_host = format!("{san}-2.{domain}");
    let tags = vec![("SanitizedUsername".to_string(), san.clone())];
    let rule = alb
        .create_rule(listener, priority, &host, &tg, &tags)
        .await
        .expect("create rule");
    let err = expect_kind(
        alb.create_rule(listener, priority, &other_host, &tg, &tags).await,
        AwsErrorKind::PriorityInUse,
    );
    assert_eq!(err.code.as_deref(), Some("PriorityInUse"));
    let rule2 = alb
        .create_rule(listener, priority + 1, &other_host, &tg, &tags)
        .await
        .expect("create rule at the next priority");

    // list_rules reads every page (page size 1) and reports hosts, priorities, targets.
    let rules = alb.list_rules(listener).await.expect("list rules");
    assert!(rules.len() >= 3, "default rule + ours: {rules:?}");
    assert!(
        rules.iter().any(|r| r.priority.is_none()),
        "the default rule has no priority"
    );
    let mine = rules.iter().find(|r| r.arn == rule).expect("our rule is listed");
    assert_eq!(mine.priority, Some(priority));
    assert_eq!(mine.host_headers, vec![host.clone()]);
    assert_eq!(mine.target_group_arns, vec![tg.clone()]);
    let mine2 = rules.iter().find(|r| r.arn == rule2).expect("second rule is listed");
    assert_eq!(mine2.priority, Some(priority + 1));
    assert_eq!(mine2.host_headers, vec![other_host.clone()]);

    // Targets.
    alb.register_target(&tg, "10.0.1.23", 30000).await.expect("register");
    alb.deregister_target(&tg, "10.0.1.23", 30000)
        .await
        .expect("deregister");

    // A target group in use by a rule cannot be deleted.
    expect_kind(alb.delete_target_group(&tg).await, AwsErrorKind::Conflict);

    // Delete rules; a second delete is NotFound on AWS (moto answers success).
    alb.delete_rule(&rule).await.expect("delete rule");
    alb.delete_rule(&rule2).await.expect("delete rule 2");
    match alb.delete_rule(&rule).await {
        Ok(()) => {} // moto 5.2.5
        Err(e) => assert_eq!(e.kind, AwsErrorKind::NotFound, "{e}"),
    }
    let rules = alb.list_rules(listener).await.expect("list rules");
    assert!(!rules.iter().any(|r| r.arn == rule || r.arn == rule2));

    alb.delete_target_group(&tg).await.expect("delete tg");
    assert_eq!(alb.find_target_group(&tg_name).await.expect("find deleted"), None);
    match alb.delete_target_group(&tg).await {
        Ok(()) => {}
        Err(e) => assert_eq!(e.kind, AwsErrorKind::NotFound, "{e}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Route 53

#[tokio::test]
async fn route53_alias_create_conflicts_then_get_and_delete_what_was_read() {
    let aws = moto_env::local_aws();
    let r53 = SdkRoute53::new(&moto_env::sdk_config().await);
    let zone = aws.var("ROUTE53_HOSTED_ZONE_ID");
    let bare = zone.trim_start_matches("/hostedzone/").to_string();
    let prefixed = format!("/hostedzone/{bare}");
    let name = format!("t{}.{}", &uid()[..12], aws.var("DOMAIN_NAME"));
    let record = AliasRecord {
        hosted_zone_id: bare.clone(),
        name: name.clone(),
        target_dns_name: aws.var("ALB_DNS_NAME").to_string(),
        target_hosted_zone_id: aws.var("ALB_ZONE_ID").to_string(),
    };

    assert_eq!(r53.get_alias(&bare, &name).await.expect("get missing"), None);
    r53.create_alias(&record, "Create DNS record for Foundry user test")
        .await
        .expect("create");
    let err = expect_kind(
        r53.create_alias(&record, "Create DNS record for Foundry user test")
            .await,
        AwsErrorKind::AlreadyExists,
    );
    assert_eq!(err.code.as_deref(), Some("InvalidChangeBatch"));

    // Both zone-id forms work, and the name compares case-insensitively.
    for z in [&bare, &prefixed] {
        let got = r53.get_alias(z, &name).await.expect("get").expect("record");
        assert_eq!(got.name, name);
        assert_eq!(got.hosted_zone_id, *z);
        assert_eq!(got.target_dns_name, record.target_dns_name.trim_end_matches('.'));
        assert_eq!(got.target_hosted_zone_id, record.target_hosted_zone_id);
    }
    assert!(r53.get_alias(&bare, &name.to_uppercase()).await.expect("get").is_some());
    // A name that sorts right before ours is not ours (the listing starts at ours).
    let (label, rest) = name.split_once('.').expect("a dotted name");
    let shorter = format!("{}.{rest}", &label[..label.len() - 1]);
    assert_eq!(r53.get_alias(&bare, &shorter).await.expect("get other"), None);

    // Someone else moves the target; get_alias reads what is there now.
    let moved_target = format!("other-{}", record.target_dns_name);
    moto_env::move_alias_target(&name, &moved_target).await;
    let moved = r53.get_alias(&prefixed, &name).await.expect("get").expect("record");
    assert_eq!(moved.target_dns_name, moved_target.trim_end_matches('.'));

    // DELETE of exactly the record read, then it is gone.
    r53.delete_alias(&moved, "Delete DNS record for Foundry user test")
        .await
        .expect("delete");
    assert_eq!(r53.get_alias(&bare, &name).await.expect("get deleted"), None);
    // Deleting again: AWS answers InvalidChangeBatch "…not found" (NotFound); moto succeeds.
    match r53
        .delete_alias(&moved, "Delete DNS record for Foundry user test")
        .await
    {
        Ok(()) => {}
        Err(e) => assert_eq!(e.kind, AwsErrorKind::NotFound, "{e}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Secrets Manager

#[tokio::test]
async fn secrets_create_conflicts_then_get_update_delete_and_get_is_none() {
    let sm = SdkSecrets::new(&moto_env::sdk_config().await);
    let user = moto_env::unique_user_id();
    let name = format!("foundry-credentials-{user}");
    let tags = vec![
        ("UserId".to_string(), user.clone()),
        ("Application".to_string(), "FoundryVTT".to_string()),
    ];
    let v1 = Sensitive::new(r#"{"username":"u","password":"p1","admin_key":"k"}"#);
    let v2 = Sensitive::new(r#"{"username":"u","password":"p2","admin_key":"k"}"#);

    assert_eq!(sm.get_secret_string(&name).await.expect("get missing"), None);
    let arn = sm
        .create_secret(&name, &format!("Foundry VTT credentials for user {user}"), &tags, &v1)
        .await
        .expect("create");
    assert!(arn.contains(&name), "{arn}");
    expect_kind(
        sm.create_secret(&name, "again", &tags, &v1).await,
        AwsErrorKind::AlreadyExists,
    );
    assert_eq!(sm.get_secret_string(&name).await.expect("get"), Some(v1.clone()));
    assert_eq!(sm.get_secret_string(&arn).await.expect("get by arn"), Some(v1.clone()));

    let arn2 = sm.update_secret(&name, &v2).await.expect("update");
    assert_eq!(arn2, arn);
    assert_eq!(sm.get_secret_string(&name).await.expect("get"), Some(v2.clone()));

    sm.delete_secret(&arn, true).await.expect("force delete");
    assert_eq!(sm.get_secret_string(&name).await.expect("get deleted"), None);
}

#[tokio::test]
async fn secrets_scheduled_for_deletion_read_as_none_conflict_on_update_and_restore() {
    let sm = SdkSecrets::new(&moto_env::sdk_config().await);
    let name = format!("foundry-credentials-{}", moto_env::unique_user_id());
    let v = Sensitive::new(r#"{"username":"u","password":"p","admin_key":"k"}"#);
    sm.create_secret(&name, "test", &[], &v).await.expect("create");

    sm.delete_secret(&name, false).await.expect("schedule deletion");
    assert_eq!(
        sm.get_secret_string(&name).await.expect("get scheduled"),
        None,
        "a secret scheduled for deletion reads as absent"
    );
    expect_kind(sm.update_secret(&name, &v).await, AwsErrorKind::Conflict);
    // Creating it again: AWS answers InvalidRequestException "…scheduled for deletion"
    // (Conflict); moto 5.2.5 answers ResourceExistsException (AlreadyExists).
    let again = sm.create_secret(&name, "test", &[], &v).await;
    match again {
        Err(e) if matches!(e.kind, AwsErrorKind::Conflict | AwsErrorKind::AlreadyExists) => {}
        other => panic!("expected Conflict or AlreadyExists, got {other:?}"),
    }

    sm.restore_secret(&name).await.expect("restore");
    assert_eq!(
        sm.get_secret_string(&name).await.expect("get restored"),
        Some(v.clone())
    );
    sm.delete_secret(&name, true).await.expect("force delete");
    assert_eq!(sm.get_secret_string(&name).await.expect("get deleted"), None);

    // A missing secret: NotFound without force (with force, AWS and moto answer success).
    expect_kind(
        sm.delete_secret(&format!("foundry-credentials-missing-{}", uid()), false)
            .await,
        AwsErrorKind::NotFound,
    );
}
