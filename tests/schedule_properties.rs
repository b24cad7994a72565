//! Properties of the license pool on the fakes: whatever the order of bookings, cancels,
//! sweeps, stops and on-demand starts over several licenses and users (some of them at
//! the same time), a license is never booked twice for the same time, and never serves
//! two running servers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use foundry_lambda::app::App;
use foundry_lambda::clock::{Clock, ManualClock};
use foundry_lambda::domain::schedule::overlaps;
use foundry_lambda::managers::dynamodb::AttributeValue;
use foundry_lambda::testing::{fake_app, invoke, FakeAws};
use proptest::prelude::*;
use serde_json::{json, Value};

const T0: i64 = 1_767_225_600;
const SLOT: i64 = 1_800;
/// Two BYOL owners who share, one who does not, and two pooled users.
const OWNERS: [&str; 3] = ["100000000000000001", "100000000000000002", "100000000000000003"];
const POOLED: [&str; 2] = ["100000000000000004", "100000000000000005"];

fn all_users() -> Vec<&'static str> {
    OWNERS.iter().chain(POOLED.iter()).copied().collect()
}

#[derive(Debug, Clone)]
enum Op {
    /// User `u` books `len` slots starting `at` slots from now.
    Book {
        u: usize,
        pooled: bool,
        at: i64,
        len: i64,
    },
    /// User `u` cancels its `nth` session.
    Cancel {
        u: usize,
        nth: usize,
    },
    /// Time passes by `slots` slots and the sweep runs.
    Sweep {
        slots: i64,
    },
    Stop {
        u: usize,
    },
    Start {
        u: usize,
    },
    /// Two bookings at once.
    Both(Box<Op>, Box<Op>),
}

fn leaf() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..5usize, any::<bool>(), 1..12i64, 1..5i64).prop_map(|(u, pooled, at, len)| Op::Book { u, pooled, at, len }),
        1 => (0..5usize, 0..3usize).prop_map(|(u, nth)| Op::Cancel { u, nth }),
        2 => (1..4i64).prop_map(|slots| Op::Sweep { slots }),
        1 => (0..5usize).prop_map(|u| Op::Stop { u }),
        1 => (0..3usize).prop_map(|u| Op::Start { u }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => leaf(),
        1 => (leaf(), leaf()).prop_map(|(a, b)| Op::Both(Box::new(a), Box::new(b))),
    ]
}

fn event(o: &Op, now: i64) -> Option<Value> {
    let users = all_users();
    Some(match o {
        Op::Book { u, pooled, at, len } => {
            let kind = if *pooled || *u >= OWNERS.len() {
                "pooled"
            } else {
                "byol"
            };
            let start = now + at * SLOT;
            json!({"action":"schedule-session","userId":users[*u],"startTime":start,"endTime":start + len * SLOT,"licenseType":kind})
        }
        Op::Stop { u } => json!({"action":"stop","userId":users[*u]}),
        Op::Start { u } => json!({"action":"start","userId":users[*u]}),
        _ => return None,
    })
}

fn text(item: &HashMap<String, AttributeValue>, attr: &str) -> String {
    match item.get(attr) {
        Some(AttributeValue::S(v)) => v.clone(),
        _ => String::new(),
    }
}

fn number(item: &HashMap<String, AttributeValue>, attr: &str) -> i64 {
    match item.get(attr) {
        Some(AttributeValue::N(v)) => v.parse().unwrap_or(0),
        _ => 0,
    }
}

async fn run(app: &App, fake: &FakeAws, clock: &ManualClock, o: &Op) {
    match o {
        Op::Cancel { u, nth } => {
            let user = all_users()[*u];
            let (_, list) = invoke(app, json!({"action":"list-sessions","userId":user})).await;
            if let Some(s) = list["sessions"].as_array().and_then(|a| a.get(*nth)) {
                invoke(
                    app,
                    json!({"action":"cancel-session","userId":user,"sessionId":s["sessionId"]}),
                )
                .await;
            }
        }
        Op::Sweep { slots } => {
            clock.advance(Duration::from_secs((slots * SLOT) as u64));
            invoke(app, json!({"action":"prepare-sessions","userId":"system"})).await;
            // The auto-shutdown of a run past its session's end plus grace.
            for user in all_users() {
                let Some(item) = fake.dynamo.item("foundry-vtt-instances", user) else {
                    continue;
                };
                let at = number(&item, "autoShutdownAt");
                if at != 0 && at <= clock.now() {
                    invoke(app, json!({"action":"stop","userId":user})).await;
                }
            }
        }
        Op::Both(a, b) => {
            let (ea, eb) = (event(a, clock.now()), event(b, clock.now()));
            match (ea, eb) {
                (Some(ea), Some(eb)) => {
                    let (x, y) = (app.clone(), app.clone());
                    let (ra, rb) = tokio::join!(
                        tokio::spawn(async move { invoke(&x, ea).await }),
                        tokio::spawn(async move { invoke(&y, eb).await })
                    );
                    ra.expect("no panic");
                    rb.expect("no panic");
                }
                _ => {
                    Box::pin(run(app, fake, clock, a)).await;
                    Box::pin(run(app, fake, clock, b)).await;
                }
            }
        }
        leaf => {
            if let Some(e) = event(leaf, clock.now()) {
                invoke(app, e).await;
            }
        }
    }
}

/// The invariants: no two live bookings of one license overlap (sessions and
/// reservations alike), and no two running servers use one license.
fn check(fake: &FakeAws) -> Result<(), String> {
    let live = |status: &str| matches!(status, "scheduled" | "starting" | "active");
    for (table, key) in [
        ("foundry-vtt-instances-scheduled-sessions", "sessionId"),
        ("foundry-vtt-instances-license-reservations", "reservationId"),
    ] {
        let items: Vec<_> = fake
            .dynamo
            .items(table)
            .into_iter()
            .filter(|i| !text(i, key).starts_with("license#"))
            .filter(|i| live(&text(i, "status")))
            .collect();
        for (n, a) in items.iter().enumerate() {
            for b in &items[n + 1..] {
                let same = text(a, "licenseId") == text(b, "licenseId");
                let (a0, a1, b0, b1) = (
                    number(a, "startTime"),
                    number(a, "endTime"),
                    number(b, "startTime"),
                    number(b, "endTime"),
                );
                if same && overlaps(a0, a1, b0, b1) {
                    return Err(format!(
                        "{table}: {} and {} overlap on {}",
                        text(a, key),
                        text(b, key),
                        text(a, "licenseId")
                    ));
                }
            }
        }
    }
    let mut in_use: HashMap<String, String> = HashMap::new();
    for task in fake.ecs.running_tasks() {
        let user = task.family.trim_start_matches("foundry-").to_string();
        let Some(item) = fake.dynamo.item("foundry-vtt-instances", &user) else {
            continue;
        };
        let license = match item.get("activeLicenseId") {
            Some(AttributeValue::S(l)) => l.clone(),
            _ if text(&item, "licenseType") == "byol" => format!("byol-{user}"),
            _ => continue,
        };
        if let Some(other) = in_use.insert(license.clone(), user.clone()) {
            return Err(format!("{license} serves {other} and {user} at once"));
        }
    }
    Ok(())
}

async fn setup() -> (App, FakeAws, Arc<ManualClock>) {
    let (app, fake, clock) = fake_app(T0);
    for (i, owner) in OWNERS.iter().enumerate() {
        let shares = i < 2;
        let (code, body) = invoke(
            &app,
            json!({"action":"create","userId":owner,"sanitizedUsername":format!("owner{i}"),"foundryUsername":format!("o{i}@example.com"),
                   "foundryPassword":"pw-12345678","licenseType":"byol","allowLicenseSharing":shares}),
        )
        .await;
        assert_eq!(code, 200, "{body}");
    }
    for (i, user) in POOLED.iter().enumerate() {
        let (code, body) = invoke(
            &app,
            json!({"action":"create","userId":user,"sanitizedUsername":format!("pooled{i}"),"licenseType":"pooled"}),
        )
        .await;
        assert_eq!(code, 200, "{body}");
    }
    (app, fake, clock)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn no_license_is_ever_booked_twice_or_serves_two_servers(ops in proptest::collection::vec(op(), 1..24)) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let result: Result<(), String> = rt.block_on(async {
            let (app, fake, clock) = setup().await;
            for (i, o) in ops.iter().enumerate() {
                run(&app, &fake, &clock, o).await;
                check(&fake).map_err(|e| format!("after step {i} ({o:?}): {e}"))?;
            }
            Ok(())
        });
        prop_assert!(result.is_ok(), "{}", result.unwrap_err());
    }
}
