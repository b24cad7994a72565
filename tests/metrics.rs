//! The CloudWatch EMF records of invocations on the fakes: valid EMF, the expected
//! actions, outcomes and counts. (`tests/redaction.rs` checks them for secrets.)

use std::sync::Arc;

use foundry_lambda::app::Ctx;
use foundry_lambda::logging::BufferWriter;
use foundry_lambda::testing::fake_app;
use serde_json::{json, Value};

const T0: i64 = 1_795_773_600;
const UID: &str = "123456789012345678";

/// Asserts that `line` is a valid EMF record and returns it parsed.
fn emf(line: &str) -> Value {
    let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    let aws = &v["_aws"];
    assert!(aws["Timestamp"].as_i64().is_some(), "{line}");
    let directives = aws["CloudWatchMetrics"].as_array().expect("CloudWatchMetrics");
    assert!(!directives.is_empty());
    for d in directives {
        assert_eq!(d["Namespace"], "FoundryVTT/InstanceManagement");
        for set in d["Dimensions"].as_array().expect("Dimensions") {
            for dim in set.as_array().expect("dimension set") {
                let name = dim.as_str().expect("dimension name");
                assert!(v[name].is_string(), "dimension {name} has a string value: {line}");
            }
        }
        for m in d["Metrics"].as_array().expect("Metrics") {
            let name = m["Name"].as_str().expect("metric name");
            assert!(
                v[name].is_number(),
                "metric {name} exists as a key with a number: {line}"
            );
        }
    }
    v
}

#[tokio::test]
async fn every_invocation_writes_valid_emf_with_action_outcome_and_counts() {
    let (app, fake, _) = fake_app(T0);
    let sink = BufferWriter::default();
    let app = app.with_metrics(Arc::new(sink.clone()));
    let ctx = |id: &str| Ctx {
        request_id: id.to_string(),
        deadline_ms: None,
    };
    let password = "metric-test-password-77";
    let created = app
        .handle(
            &json!({"action":"create","userId":UID,"sanitizedUsername":"alice","foundryUsername":"gm@example.com","foundryPassword":password}),
            &ctx("r-create"),
        )
        .await;
    assert_eq!(created.envelope.status_code, 200);
    let create_calls = fake.faults.calls().len();
    let failed = app
        .handle(&json!({"action":"status","userId":"404"}), &ctx("r-status"))
        .await;
    assert_eq!(failed.envelope.status_code, 500);
    let listed = app
        .handle(&json!({"action":"list-all","userId":"system"}), &ctx("r-list"))
        .await;
    assert_eq!(listed.envelope.status_code, 200);
    let rejected = app.handle(&json!({}), &ctx("r-guard")).await;
    assert_eq!(rejected.envelope.status_code, 400);

    let out = sink.contents();
    let records: Vec<Value> = out.lines().map(emf).collect();
    let main = |action: &str| {
        records
            .iter()
            .find(|r| r["Action"] == action && r.get("Outcome").is_some())
            .unwrap_or_else(|| panic!("no record for {action}: {out}"))
    };

    let c = main("create");
    assert_eq!(
        (c["Outcome"].as_str(), c["Invocations"].as_i64(), c["Errors"].as_i64()),
        (Some("success"), Some(1), Some(0))
    );
    assert_eq!(
        c["ColdStart"], 1,
        "the first invocation of the process is the cold start"
    );
    assert_eq!(
        c["AwsCalls"].as_u64(),
        Some(create_calls as u64),
        "every fake call is counted"
    );
    assert_eq!(c["ResourcesCreated"], 6);
    assert_eq!(c["requestId"], "r-create");
    assert!(c["DurationMs"].as_f64().unwrap() >= 0.0);
    let mut kinds: Vec<&str> = records
        .iter()
        .filter(|r| r["Action"] == "create" && r.get("ResourceKind").is_some())
        .map(|r| {
            assert_eq!(
                r["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
                json!([["Action", "ResourceKind"]])
            );
            assert_eq!(r["ResourcesCreated"], 1);
            r["ResourceKind"].as_str().unwrap()
        })
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "AccessPoint",
            "DnsRecord",
            "IamUser",
            "S3Bucket",
            "Secret",
            "TargetGroup"
        ]
    );

    let s = main("status");
    assert_eq!(
        (s["Outcome"].as_str(), s["Errors"].as_i64(), s["ColdStart"].as_i64()),
        (Some("server_error"), Some(1), Some(0))
    );
    assert_eq!(s["AwsCalls"], 1, "one GetItem");
    let l = main("list-all");
    assert_eq!(
        (l["Outcome"].as_str(), l["Errors"].as_i64(), l["AwsCalls"].as_i64()),
        (Some("success"), Some(0), Some(1))
    );
    let g = main("(invalid)");
    assert_eq!(
        (g["Outcome"].as_str(), g["Errors"].as_i64(), g["AwsCalls"].as_i64()),
        (Some("client_error"), Some(0), Some(0))
    );
    assert_eq!(
        records.iter().filter(|r| r.get("Outcome").is_some()).count(),
        4,
        "one main record per invocation"
    );
}
