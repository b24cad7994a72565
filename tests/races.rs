//! Races on the fakes, with the interleaving forced: a gate holds the racers at the call
//! where they can collide (before it, or right after it) until all of them have reached
//! it. Each test fails if the
//! conditional write it is about is made unconditional.

mod fake_env;

use fake_env::*;
use foundry_lambda::managers::dynamodb::AttributeValue;
use foundry_lambda::testing::{fake_app, invoke, ops};
use serde_json::json;

/// A third user whose bucket and IAM names do not collide with `UID`'s.
const UID3: &str = "323456789012345670";
const RESERVATIONS: &str = "foundry-vtt-instances-license-reservations";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_starts_that_both_read_the_stopped_record_launch_one_task() {
    let (app, fake, _) = fake_app(T0);
    created(&app).await;
    // Both try to move the record to `starting` (and claim its license, in the same
    // transaction); neither goes on before both have tried.
    fake.race_at(ops::TRANSACT_WRITE_ITEMS, 2);
    let answers = concurrently(&app, vec![ev("start", UID), ev("start", UID)]).await;
    assert_eq!(fake.ecs.tasks().len(), 1, "{answers:?}");
    let statuses: Vec<_> = answers.iter().map(|(c, b)| (*c, b["status"].clone())).collect();
    assert!(statuses.contains(&(200, json!("running"))), "{answers:?}");
    assert!(
        statuses.contains(&(200, json!("starting"))),
        "the loser saw the winner: {answers:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_creates_that_both_found_no_record_leave_one_instance() {
    let (app, fake, _) = fake_app(T0);
    // Both found no record, and both try to write one before either goes on.
    fake.race_at(ops::PUT_ITEM, 2);
    let answers = concurrently(&app, vec![create_event(UID, "alice"), create_event(UID, "alice")]).await;
    let codes: Vec<u16> = answers.iter().map(|a| a.0).collect();
    assert!(codes.contains(&200), "{answers:?}");
    let loser = answers.iter().find(|a| a.0 != 200).expect("one create loses");
    assert_eq!(
        loser.1["error"],
        "Internal error: User already has an instance (another create for this user is in progress)"
    );
    assert_eq!(fake.efs.access_points().len(), 1);
    assert_eq!(fake.s3.buckets().len(), 1);
    assert_eq!(fake.iam.access_keys("foundry-alice-12345678").len(), 1);
    assert_eq!(fake.dynamo.items(INSTANCES).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_destroys_that_both_read_the_record_take_the_lease_once() {
    let (app, fake, _) = fake_app(T0);
    created(&app).await;
    // Both try to take the record's lease before either goes on.
    fake.race_at(ops::UPDATE_ITEM, 2);
    let answers = concurrently(&app, vec![ev("destroy", UID), ev("destroy", UID)]).await;
    let ok = answers.iter().filter(|a| a.0 == 200).count();
    assert_eq!(ok, 1, "{answers:?}");
    let loser = answers.iter().find(|a| a.0 != 200).expect("one destroy loses");
    assert_eq!(
        loser.1["error"],
        "Internal error: The instance is already being destroyed"
    );
    assert!(leftovers(&fake).is_empty(), "{:?}", leftovers(&fake));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_creates_taking_over_a_dead_create_resume_it_once() {
    let (app, fake, clock) = fake_app(T0);
    fake.before_call("PutUserPolicy", 1, || panic!("the invocation died"));
    let dying = app.clone();
    assert!(
        tokio::spawn(async move { invoke(&dying, create_event(UID, "alice")).await })
            .await
            .is_err()
    );
    clock.advance(std::time::Duration::from_secs(3_600));
    // Both found the dead create's expired lease, and both try to take it before either
    // goes on.
    fake.race_at(ops::UPDATE_ITEM, 2);
    let answers = concurrently(&app, vec![create_event(UID, "alice"), create_event(UID, "alice")]).await;
    assert_eq!(answers.iter().filter(|a| a.0 == 200).count(), 1, "{answers:?}");
    let loser = answers.iter().find(|a| a.0 != 200).expect("one create loses");
    assert_eq!(
        loser.1["error"],
        "Internal error: An instance is already being created for this user; try again in a few minutes"
    );
    assert_eq!(fake.efs.access_points().len(), 1);
    assert_eq!(fake.iam.access_keys("foundry-alice-12345678").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_users_claiming_one_subdomain_at_once_get_it_once() {
    let (app, fake, _) = fake_app(T0);
    // The username index lags (as a GSI does): neither create sees the other's record there.
    fake.dynamo.lag_index(INSTANCES, "sanitizedUsername-index");
    // The first two PutItems write the two `creating` records, together; the next two are
    // the claims of the name, made together once both have read what they read before.
    fake.race_at(ops::PUT_ITEM, 2);
    fake.race_at_call(ops::PUT_ITEM, 3, 2);
    let answers = concurrently(&app, vec![create_event(UID, "alice"), create_event(UID3, "alice")]).await;
    assert_eq!(answers.iter().filter(|a| a.0 == 200).count(), 1, "{answers:?}");
    let loser = answers.iter().find(|a| a.0 != 200).expect("one user loses");
    assert_eq!(
        loser.1["error"],
        "Internal error: The subdomain 'alice' is already taken by another user; choose another username"
    );
    assert_eq!(fake.dynamo.items(INSTANCES).len(), 1, "the loser's record is gone");
    assert_eq!(fake.alb.target_groups().len(), 1);
    assert_eq!(fake.route53.records().len(), 1);
    let winner = fake.dynamo.items(INSTANCES)[0]["userId"].clone();
    let claim = fake
        .dynamo
        .item(RESERVATIONS, "subdomain#alice")
        .expect("the claim item");
    assert_eq!(claim["owner"], winner, "the claim is the winner's");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn destroy_lets_go_of_the_subdomain_and_another_user_may_take_it() {
    let (app, fake, _) = fake_app(T0);
    assert_eq!(invoke(&app, create_event(UID, "alice")).await.0, 200);
    let (code, body) = invoke(&app, create_event(UID3, "alice")).await;
    assert_eq!(code, 500, "{body}");
    assert_eq!(invoke(&app, ev("destroy", UID)).await.0, 200);
    assert!(fake.dynamo.item(RESERVATIONS, "subdomain#alice").is_none());
    let (code, body) = invoke(&app, create_event(UID3, "alice")).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        fake.dynamo.item(RESERVATIONS, "subdomain#alice").unwrap()["owner"],
        AttributeValue::S(UID3.into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_bookings_on_a_license_that_has_bookings_succeed_once() {
    let (app, fake, _) = fake_app(T0);
    created(&app).await;
    let booking = |start: i64| json!({"action":"schedule-session","userId":UID,"startTime":start,"endTime":start + 3_600,"licenseType":"byol"});
    // An earlier booking: the license's ledger is stored, and every later booking is
    // conditional on the version it read.
    let (code, body) = invoke(&app, booking(T0 + 10 * 3_600)).await;
    assert_eq!((code, &body["success"]), (200, &json!(true)), "{body}");
    fake.race_at(ops::TRANSACT_WRITE_ITEMS, 6);
    let events = (0..6).map(|i| booking(T0 + 3_600 + i * 600)).collect();
    let answers = concurrently(&app, events).await;
    let won = answers.iter().filter(|a| a.1["success"] == true).count();
    assert_eq!(won, 1, "{answers:?}");
    assert_eq!(fake.dynamo.items("foundry-vtt-instances-scheduled-sessions").len(), 2);
    let ledger = fake
        .dynamo
        .item(RESERVATIONS, &format!("license#byol-{UID}"))
        .expect("the ledger");
    let AttributeValue::L(bookings) = &ledger["bookings"] else {
        panic!("the ledger's bookings: {ledger:?}");
    };
    assert_eq!(
        bookings.len(),
        2,
        "the ledger holds the first booking and the one winner"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_bookings_of_overlapping_windows_on_one_license_succeed_once() {
    let (app, fake, _) = fake_app(T0);
    created(&app).await;
    let booking = |start: i64| json!({"action":"schedule-session","userId":UID,"startTime":start,"endTime":start + 3_600,"licenseType":"byol"});
    // All six have read the license's ledger before any books it.
    fake.race_at(ops::TRANSACT_WRITE_ITEMS, 6);
    let events = (0..6).map(|i| booking(T0 + 3_600 + i * 600)).collect();
    let answers = concurrently(&app, events).await;
    let won: Vec<_> = answers.iter().filter(|a| a.1["success"] == true).collect();
    assert_eq!(won.len(), 1, "{answers:?}");
    for (code, body) in answers.iter().filter(|a| a.1["success"] != true) {
        assert_eq!(
            (*code, body.clone()),
            (
                200,
                json!({"message":"No licenses available for the requested time period","success":false})
            )
        );
    }
    let sessions = fake.dynamo.items("foundry-vtt-instances-scheduled-sessions");
    assert_eq!(sessions.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_sweeps_at_once_start_a_due_session_once() {
    let (app, fake, clock) = fake_app(T0);
    created(&app).await;
    let start = T0 + 3_600;
    let (_, body) = invoke(
        &app,
        json!({"action":"schedule-session","userId":UID,"startTime":start,"endTime":start + 3_600,"licenseType":"byol"}),
    )
    .await;
    assert_eq!(body["success"], true, "{body}");
    clock.set(start);
    // Both sweeps found the session scheduled before either claims it.
    fake.race_at(ops::UPDATE_ITEM, 2);
    let answers = concurrently(
        &app,
        vec![ev("prepare-sessions", "system"), ev("prepare-sessions", "system")],
    )
    .await;
    let started: i64 = answers
        .iter()
        .map(|a| a.1["sessionsStarted"].as_i64().unwrap_or(-1))
        .sum();
    assert_eq!(started, 1, "{answers:?}");
    assert_eq!(fake.ecs.tasks().len(), 1);
}
