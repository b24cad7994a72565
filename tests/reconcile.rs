//! `admin-reconcile` on the fakes: what it leaves alone (a live instance, the operator's
//! records, a create in flight), and how its continuation carries the work across calls.
//! The wire behaviour (the listings of every kind, the original's leftovers) is in
//! tests/reconcile_moto.rs.

mod fake_env;

use std::collections::BTreeSet;
use std::sync::mpsc;
use std::time::Duration;

use fake_env::*;
use foundry_lambda::app::{App, Ctx};
use foundry_lambda::clock::Clock;
use foundry_lambda::config::Config;
use foundry_lambda::managers::alb::{Alb, TargetGroupSpec};
use foundry_lambda::managers::dynamodb::AttributeValue;
use foundry_lambda::managers::efs::AccessPointSpec;
use foundry_lambda::managers::route53::AliasRecord;
use foundry_lambda::managers::{Ecs, Efs, Iam, Route53, Secrets, S3};
use foundry_lambda::secret::Sensitive;
use foundry_lambda::testing::{fake_app, invoke, invoke_with, ops, FakeAws};
use serde_json::{json, Value};

const ADMIN: &str = "000000000000000001";
/// The user whose leftovers the original left: no record anywhere.
const GONE: &str = "998877665544332211";
const GONE_SAN: &str = "bob";

fn cfg() -> Config {
    Config::for_tests()
}

fn alias(name: &str, target: &str) -> AliasRecord {
    let c = cfg();
    AliasRecord {
        hosted_zone_id: c.route53_hosted_zone_id.clone(),
        name: name.to_string(),
        target_dns_name: target.to_string(),
        target_hosted_zone_id: c.alb_zone_id.clone(),
    }
}

fn reconcile(extra: Value) -> Value {
    let mut e = json!({"action": "admin-reconcile", "userId": ADMIN});
    if let (Some(e), Some(x)) = (e.as_object_mut(), extra.as_object()) {
        e.extend(x.clone());
    }
    e
}

/// Leaves what the original left of a user whose record is gone: a create that failed
/// after the bucket, a destroy that died after the IAM user, and the sidecar-era names.
async fn seed_leftovers(fake: &FakeAws, uid: &str, san: &str) {
    let c = cfg();
    let tail = &uid[uid.len() - 8..];
    let name = format!("foundry-{san}-{tail}");
    fake.s3.ensure_bucket(&name, "us-east-1").await.unwrap();
    fake.iam
        .create_user(&name, "/foundry/", &[("UserId".into(), uid.into())])
        .await
        .unwrap();
    fake.iam.create_access_key(&name).await.unwrap();
    fake.secrets
        .create_secret(
            &format!("foundry-credentials-{uid}"),
            "Foundry VTT credentials",
            &[],
            &Sensitive::new("{}".to_string()),
        )
        .await
        .unwrap();
    let tg = TargetGroupSpec {
        name: format!("foundry-{san}"),
        vpc_id: c.vpc_id.clone(),
        port: 30000,
        health_check_path: "/".into(),
        health_check_interval_seconds: 30,
        health_check_timeout_seconds: 10,
        healthy_threshold: 2,
        unhealthy_threshold: 3,
        matcher: "200,302".into(),
        tags: vec![("SanitizedUsername".into(), san.into())],
    };
    fake.alb.create_target_group(&tg).await.unwrap();
    fake.route53
        .create_alias(&alias(&format!("{san}.{}", c.domain_name), &c.alb_dns_name), "seed")
        .await
        .unwrap();
    fake.efs
        .create_access_point(&AccessPointSpec {
            file_system_id: c.file_system_id.clone(),
            uid: 1000,
            gid: 1000,
            path: format!("/foundry-instances/{uid}"),
            owner_uid: 1000,
            owner_gid: 1000,
            permissions: "755".into(),
            tags: vec![("Name".into(), format!("foundry-{uid}"))],
            client_token: format!("seed-{uid}"),
        })
        .await
        .unwrap();
    let mut td = foundry_lambda::domain::taskdef::cleanup_task_definition(&c.deployment());
    td.family = format!("foundry-{uid}");
    fake.ecs.register_task_definition(&td).await.unwrap();
    fake.logs.insert_group(&format!("/aws/ecs/foundry-{uid}"), None);
    fake.logs.insert_group(&format!("/ecs/foundry-{uid}"), None);
}

/// The names an orphan report lists for the leftovers of `uid`/`san`.
fn leftover_names(uid: &str, san: &str) -> BTreeSet<(String, String)> {
    let tail = &uid[uid.len() - 8..];
    let named = format!("foundry-{san}-{tail}");
    [
        ("S3Bucket", named.clone()),
        ("IamUser", named),
        ("Secret", format!("foundry-credentials-{uid}")),
        ("TargetGroup", format!("foundry-{san}")),
        ("DnsRecord", format!("{san}.{}", cfg().domain_name)),
        ("TaskDefinition", format!("foundry-{uid}")),
        ("LogGroup", format!("/aws/ecs/foundry-{uid}")),
        ("LogGroup", format!("/ecs/foundry-{uid}")),
    ]
    .into_iter()
    .map(|(k, n)| (k.to_string(), n))
    .collect()
}

/// (kind, name) of every orphan an answer lists, access points by their directory.
fn listed(body: &Value) -> BTreeSet<(String, String)> {
    body["orphans"]
        .as_array()
        .expect("orphans")
        .iter()
        .filter(|o| o["kind"] != "AccessPoint")
        .map(|o| {
            (
                o["kind"].as_str().unwrap().to_string(),
                o["name"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn access_points_listed(body: &Value) -> Vec<String> {
    body["orphans"]
        .as_array()
        .expect("orphans")
        .iter()
        .filter(|o| o["kind"] == "AccessPoint")
        .map(|o| o["name"].as_str().unwrap().to_string())
        .collect()
}

/// Holds the `nth` call of `operation` until the test lets it go.
fn hold(fake: &FakeAws, operation: &str, nth: usize) -> (mpsc::Receiver<()>, mpsc::Sender<()>) {
    let (held_tx, held_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    fake.before_call(operation, nth, move || {
        let _ = held_tx.send(());
        // A blocking wait on this worker thread: the reconcile runs on another.
        let _ = go_rx.recv_timeout(Duration::from_secs(20));
    });
    (held_rx, go_tx)
}

async fn held(rx: mpsc::Receiver<()>) {
    tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(20)))
        .await
        .expect("join")
        .expect("the create reached the held call");
}

fn in_background(app: &App, event: Value) -> tokio::task::JoinHandle<(u16, Value)> {
    let app = app.clone();
    tokio::spawn(async move { invoke(&app, event).await })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_removes_only_orphans_and_spares_a_live_instance_the_operators_records_and_a_create_in_flight() {
    let (app, fake, clock) = fake_app(T0);
    let c = cfg();
    running(&app).await; // alice: a live instance, with its task and listener rule
    for operator in ["www", "mail"] {
        fake.route53
            .put_record(alias(&format!("{operator}.{}", c.domain_name), &c.alb_dns_name));
    }
    fake.route53.put_record(alias(&c.domain_name, &c.alb_dns_name));
    // A record under the domain that aliases something else is not ours either.
    fake.route53
        .put_record(alias(&format!("dave.{}", c.domain_name), "elsewhere.example.net"));
    seed_leftovers(&fake, GONE, GONE_SAN).await;
    clock.advance(Duration::from_secs(2 * 3_600));

    // A create in flight, held right before it makes its IAM user: it has its record (under
    // its lease), its subdomain's DNS record, its access point and its bucket (just made).
    let (held_rx, go) = hold(&fake, "CreateUser", fake.faults.count("CreateUser") + 1);
    let create = in_background(&app, create_event(UID2, "carol"));
    held(held_rx).await;
    let before = leftovers(&fake);

    let (code, dry) = invoke(&app, reconcile(json!({}))).await;
    assert_eq!(code, 200, "{dry}");
    assert_eq!(dry["dryRun"], true);
    assert_eq!(dry["complete"], true);
    assert!(dry.get("continuation").is_none(), "{dry}");
    assert_eq!(listed(&dry), leftover_names(GONE, GONE_SAN), "{dry:#}");
    assert_eq!(
        access_points_listed(&dry),
        vec![format!(
            "{} (/foundry-instances/{GONE})",
            fake.efs
                .access_points()
                .iter()
                .find(|a| a.spec.path.ends_with(GONE))
                .unwrap()
                .id
        )]
    );
    assert!(dry["orphans"]
        .as_array()
        .unwrap()
        .iter()
        .all(|o| o["outcome"] == "orphan"));
    let iam = dry["orphans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["kind"] == "IamUser")
        .unwrap();
    assert_eq!(iam["accessKeys"].as_array().map(Vec::len), Some(1), "{iam}");
    // Made before the two hours passed (and the second carol's create waited for its
    // access point).
    assert!((7_200..7_300).contains(&iam["ageSeconds"].as_i64().unwrap()), "{iam}");
    // The create in flight is named among what was spared, not among the orphans.
    let spared: BTreeSet<String> = dry["spared"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    assert!(spared.contains(&format!("carol.{}", c.domain_name)), "{spared:?}");
    assert!(spared.contains("foundry-carol-12345678"), "{spared:?}");
    assert_eq!(leftovers(&fake), before, "a dry run changes nothing");

    let (code, applied) = invoke(&app, reconcile(json!({"apply": true}))).await;
    assert_eq!(code, 200, "{applied}");
    assert_eq!(applied["dryRun"], false);
    assert_eq!(listed(&applied), leftover_names(GONE, GONE_SAN));
    assert_eq!(applied["deleted"], 9, "{applied:#}");
    assert_eq!(applied["failed"], 0);

    // Exactly the leftovers are gone: everything of alice, of carol's create and of the
    // operator is still there.
    let after = leftovers(&fake);
    let gone_of = |kind: &str| -> Vec<String> {
        let b = before.get(kind).cloned().unwrap_or_default();
        let a = after.get(kind).cloned().unwrap_or_default();
        b.into_iter().filter(|x| !a.contains(x)).collect()
    };
    assert_eq!(gone_of("buckets"), vec![format!("foundry-{GONE_SAN}-44332211")]);
    assert_eq!(gone_of("iam users"), vec![format!("foundry-{GONE_SAN}-44332211")]);
    assert_eq!(gone_of("secrets"), vec![format!("foundry-credentials-{GONE}")]);
    assert_eq!(gone_of("dns records"), vec![format!("{GONE_SAN}.{}", c.domain_name)]);
    assert_eq!(gone_of("target groups").len(), 1);
    assert_eq!(gone_of("access points").len(), 1);
    assert_eq!(gone_of("running tasks"), Vec::<String>::new());
    assert_eq!(gone_of("rules"), Vec::<String>::new());
    assert_eq!(gone_of("instance items"), Vec::<String>::new());
    assert!(!fake.logs.groups().iter().any(|(n, _)| n.ends_with(GONE)));
    let records: BTreeSet<String> = fake.route53.records().into_iter().map(|r| r.name).collect();
    for kept in ["www.", "mail.", "dave.", "alice.", "carol.", ""] {
        assert!(
            records.contains(&format!("{kept}{}", c.domain_name)),
            "{kept}: {records:?}"
        );
    }
    // The cleanup task erased the files of the user with no record.
    assert!(fake
        .ecs
        .run_requests()
        .iter()
        .any(|r| r.started_by.as_deref().is_some_and(|s| s.contains(GONE))));

    // The create goes on and finishes on what it had made.
    go.send(()).unwrap();
    let (code, body) = create.await.unwrap();
    assert_eq!(code, 200, "{body}");
    assert!(fake.s3.buckets().contains(&"foundry-carol-12345678".to_string()));
    let (_, again) = invoke(&app, reconcile(json!({}))).await;
    assert_eq!(again["orphans"], json!([]), "{again:#}");
}

#[tokio::test]
async fn the_continuation_carries_the_work_over_a_deadline_and_the_next_call_finishes_it() {
    let (app, fake, clock) = fake_app(T0);
    created(&app).await;
    for (i, uid) in ["998877665544332211", "998877665544332212", "998877665544332213"]
        .into_iter()
        .enumerate()
    {
        seed_leftovers(&fake, uid, &format!("gone{i}")).await;
    }
    clock.advance(Duration::from_secs(3_600));
    fake.set_list_page_size(1);
    // The invocation's time runs out while the buckets are listed: the clock jumps past the
    // deadline during the 2nd ListBuckets.
    let deadline = clock.now_ms() + 60_000;
    let jump = clock.clone();
    fake.before_call(ops::LIST_BUCKETS, 2, move || jump.advance(Duration::from_secs(120)));
    let ctx = Ctx {
        request_id: "r-1".into(),
        deadline_ms: Some(deadline),
    };
    let (code, first) = invoke_with(&app, reconcile(json!({"apply": true})), &ctx).await;
    assert_eq!(code, 200, "{first}");
    assert_eq!(first["complete"], false, "{first:#}");
    let token = first["continuation"].as_str().expect("a continuation").to_string();
    // Everything before the buckets is done; the bucket of that page was not touched.
    assert_eq!(
        fake.route53.records().len(),
        1,
        "only alice's DNS record is left: {:?}",
        fake.route53.records()
    );
    assert_eq!(
        fake.s3.buckets().len(),
        1 + 3,
        "no bucket was deleted: {:?}",
        fake.s3.buckets()
    );
    assert!(first["orphans"]
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o["outcome"] == "not-in-time"));
    assert_eq!(fake.iam.users().len(), 1 + 3, "no IAM user was reached");

    let rules_listed = fake.faults.count(ops::DESCRIBE_RULES);
    let (code, second) = invoke(&app, reconcile(json!({"apply": true, "continuation": token}))).await;
    assert_eq!(code, 200, "{second}");
    assert_eq!(second["complete"], true, "{second:#}");
    assert!(second.get("continuation").is_none());
    // It went on from the buckets: the listings before them were not read again.
    assert_eq!(fake.faults.count(ops::DESCRIBE_RULES), rules_listed);
    assert_eq!(second["failed"], 0);
    let l = leftovers(&fake);
    assert_eq!(l["buckets"], vec!["foundry-alice-12345678".to_string()]);
    assert_eq!(l["iam users"], vec!["foundry-alice-12345678".to_string()]);
    assert_eq!(l["secrets"], vec![format!("foundry-credentials-{UID}")]);
    assert_eq!(
        fake.logs
            .groups()
            .iter()
            .filter(|(n, _)| n.contains("99887766554433221"))
            .count(),
        0
    );
    let (_, last) = invoke(&app, reconcile(json!({}))).await;
    assert_eq!(
        (last["orphans"].clone(), last["complete"].clone()),
        (json!([]), json!(true))
    );
}

#[tokio::test]
async fn a_young_leftover_and_a_secret_kept_for_the_license_are_spared() {
    let (app, fake, clock) = fake_app(T0);
    // A destroy that kept license sharing: the record is gone, the pool entry and the
    // owner's secret stay for the sessions booked on the license.
    let mut sharing = create_event(UID, "alice");
    sharing["allowLicenseSharing"] = json!(true);
    assert_eq!(invoke(&app, sharing).await.0, 200);
    let (code, body) = invoke(&app, json!({"action":"destroy","userId":UID,"keepLicenseSharing":true})).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(fake.secrets.secrets(), vec![format!("foundry-credentials-{UID}")]);
    clock.advance(Duration::from_secs(3_600));
    // A bucket made a moment ago by no create of this version's (the original's create
    // writes its record last).
    fake.s3
        .ensure_bucket("foundry-zed-44332211", "us-east-1")
        .await
        .unwrap();
    let (code, body) = invoke(&app, reconcile(json!({"apply": true}))).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["orphans"], json!([]), "{body:#}");
    assert_eq!(
        body["spared"],
        json!([{"kind":"S3Bucket","name":"foundry-zed-44332211",
                "reason":"younger than a create's lease: a create may be making it"}])
    );
    assert!(fake.s3.buckets().contains(&"foundry-zed-44332211".to_string()));
    assert_eq!(fake.secrets.secrets(), vec![format!("foundry-credentials-{UID}")]);
    // Once older than a lease, it is an orphan.
    clock.advance(Duration::from_secs(900));
    let (_, body) = invoke(&app, reconcile(json!({}))).await;
    assert_eq!(
        listed(&body),
        [("S3Bucket".to_string(), "foundry-zed-44332211".to_string())].into()
    );
}

#[tokio::test]
async fn bad_input_is_a_clear_400_and_changes_nothing() {
    let (app, fake, _) = fake_app(T0);
    seed_leftovers(&fake, GONE, GONE_SAN).await;
    let before = leftovers(&fake);
    for (event, error) in [
        (
            reconcile(json!({"apply": true, "dryRun": true})),
            "dryRun and apply contradict each other: send apply: true alone to delete",
        ),
        (
            reconcile(json!({"apply": true, "continuation": "garbage!"})),
            "Invalid continuation token: pass the one the last call answered",
        ),
    ] {
        let (code, body) = invoke(&app, event).await;
        assert_eq!((code, body), (400, json!({ "error": error })));
    }
    let (code, body) = invoke(&app, reconcile(json!({"apply": "yes"}))).await;
    assert_eq!(code, 400, "{body}");
    assert_eq!(leftovers(&fake), before);
}

#[tokio::test]
async fn the_record_is_read_again_right_before_each_delete() {
    let (app, fake, clock) = fake_app(T0);
    seed_leftovers(&fake, GONE, GONE_SAN).await;
    clock.advance(Duration::from_secs(3_600));
    // Between the verdict and the delete (the reconcile lists the orphan IAM user's keys
    // after judging it), the user's record appears: a migration restored it, say.
    let dynamo = fake.dynamo.clone();
    fake.before_call(ops::LIST_ACCESS_KEYS, 1, move || {
        let mut item = foundry_lambda::managers::dynamodb::Item::new();
        for (k, v) in [("userId", GONE), ("sanitizedUsername", GONE_SAN), ("status", "stopped")] {
            item.insert(k.into(), AttributeValue::S(v.into()));
        }
        dynamo.put_raw(INSTANCES, "userId", item);
    });
    let (code, body) = invoke(&app, reconcile(json!({"apply": true}))).await;
    assert_eq!(code, 200, "{body}");
    let outcome = |kind: &str| -> Vec<Value> {
        body["orphans"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|o| o["kind"] == kind)
            .map(|o| o["outcome"].clone())
            .collect()
    };
    // Judged before the record came: orphans; read again before the delete: spared.
    assert_eq!(outcome("IamUser"), vec![json!("spared")], "{body:#}");
    assert!(fake.iam.users().contains(&format!("foundry-{GONE_SAN}-44332211")));
    // The bucket's listing came before: it was judged and removed before the record came.
    assert_eq!(outcome("S3Bucket"), vec![json!("deleted")]);
    // Judged after it came (the listings after the IAM users): owned, not even listed.
    assert_eq!(outcome("Secret"), Vec::<Value>::new());
    assert_eq!(fake.secrets.secrets(), vec![format!("foundry-credentials-{GONE}")]);
}
