//! Discord notifications, against a stub of Discord's API on 127.0.0.1 and on the fakes'
//! clock: every notification is sent once with the right content; a duplicate invocation
//! sends nothing new; a hanging API keeps the action within its budget and leaves the
//! notification to the sweep; 429s are honoured; the webhook is the fallback on 50007; a
//! user can turn notifications off; with the feature off nothing is recorded.

mod discord_stub;
mod fake_env;

use std::sync::Arc;
use std::time::{Duration, Instant};

use discord_stub::{Answer, Stub};
use fake_env::*;
use foundry_lambda::app::App;
use foundry_lambda::clock::ManualClock;
use foundry_lambda::config::{test_vars, Config};
use foundry_lambda::managers::dynamodb::AttributeValue;
use foundry_lambda::managers::Secrets;
use foundry_lambda::secret::Sensitive;
use foundry_lambda::testing::{fake_app_with, invoke, FakeAws};
use serde_json::{json, Value};

const TOKEN: &str = "bot-token-that-must-stay-hidden";
const OUTBOX: &str = "foundry-vtt-instances-notifications";
const URL: &str = "https://alice.foundry.example.com";

fn config(stub: &Stub, extra: &[(&'static str, String)]) -> Config {
    let mut vars: Vec<(&str, String)> = test_vars().into_iter().map(|(k, v)| (k, v.to_string())).collect();
    vars.extend([
        ("NOTIFICATIONS", "on".to_string()),
        ("DISCORD_TOKEN_SECRET", "discord-bot-token".to_string()),
        ("DISCORD_WEBHOOK_SECRET", "discord-webhook".to_string()),
        ("DISCORD_API_BASE_URL", stub.base()),
        ("NOTIFY_BUDGET_MS", "500".to_string()),
    ]);
    vars.extend(extra.iter().cloned());
    Config::from_lookup(|k| vars.iter().rev().find(|(n, _)| *n == k).map(|(_, v)| v.clone())).expect("config")
}

/// An app on the fakes with notifications on, pointed at a fresh stub.
async fn app(extra: &[(&'static str, String)]) -> (App, FakeAws, Arc<ManualClock>, Stub) {
    let stub = discord_stub::start().await;
    let (app, fake, clock) = fake_app_with(T0, config(&stub, extra));
    fake.secrets
        .create_secret("discord-bot-token", "bot", &[], &Sensitive::new(TOKEN))
        .await
        .expect("token secret");
    fake.secrets
        .create_secret("discord-webhook", "webhook", &[], &Sensitive::new(stub.webhook()))
        .await
        .expect("webhook secret");
    (app, fake, clock, stub)
}

fn outbox(fake: &FakeAws, id: &str) -> Option<std::collections::HashMap<String, AttributeValue>> {
    fake.dynamo.item(OUTBOX, id)
}

fn n_of(item: &std::collections::HashMap<String, AttributeValue>, attr: &str) -> Option<i64> {
    match item.get(attr) {
        Some(AttributeValue::N(v)) => v.parse().ok(),
        _ => None,
    }
}

fn task_arn(fake: &FakeAws) -> String {
    match fake.dynamo.item(INSTANCES, UID).and_then(|i| i.get("taskArn").cloned()) {
        Some(AttributeValue::S(t)) => t,
        other => panic!("no task: {other:?}"),
    }
}

fn sweep() -> Value {
    json!({"action":"auto-shutdown-check","userId":"system"})
}

fn notification(kind: &str, session: &str) -> Value {
    json!({"action":"send-notification","userId":"system","notificationType":kind,
           "targetUserId":UID,"sessionId":session,"instanceUrl":URL})
}

#[tokio::test]
async fn start_and_stop_each_send_one_direct_message_with_the_url_the_reason_and_the_hours() {
    let (app, fake, clock, stub) = app(&[]).await;
    running(&app).await;
    let task = task_arn(&fake);
    assert_eq!(stub.titles(), vec!["Your Foundry server is ready"]);
    let ready = &stub.deliveries()[0];
    assert_eq!(ready.path, format!("/api/v10/channels/dm-{UID}/messages"));
    assert_eq!(ready.authorization.as_deref(), Some(format!("Bot {TOKEN}").as_str()));
    assert_eq!(ready.body["embeds"][0]["url"], URL);
    assert_eq!(ready.body["enforce_nonce"], true);
    assert!(ready.body["nonce"]
        .as_str()
        .is_some_and(|n| !n.is_empty() && n.len() <= 25));
    let item = outbox(&fake, &format!("ready#{task}")).expect("the outbox item");
    assert!(
        item.contains_key("sentAt") && !item.contains_key("pendingShard"),
        "{item:?}"
    );

    clock.advance(Duration::from_secs(2 * 3600));
    let (code, body) = invoke(&app, ev("stop", UID)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        stub.titles(),
        vec!["Your Foundry server is ready", "Your Foundry server stopped"]
    );
    let stopped = &stub.deliveries()[1].body["embeds"][0];
    assert_eq!(stopped["description"], "Stopped at your request.");
    assert_eq!(
        stopped["fields"][0],
        json!({"name":"Hours","value":"2 h","inline":true})
    );
    // The DM channel was opened once (and cached).
    let opened = stub
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/users/@me/channels"))
        .count();
    assert_eq!(opened, 1);

    // A second stop, and a sweep, send nothing new.
    invoke(&app, ev("stop", UID)).await;
    invoke(&app, sweep()).await;
    assert_eq!(stub.deliveries().len(), 2);
}

#[tokio::test]
async fn a_duplicate_invocation_sends_nothing_new_and_the_answer_is_unchanged() {
    let (app, fake, _, stub) = app(&[]).await;
    let first = invoke(&app, notification("session-ready", "sess-1")).await;
    let second = invoke(&app, notification("session-ready", "sess-1")).await;
    assert_eq!(first, second);
    assert_eq!(
        first.1,
        json!({"success":true,"message":"Notification queued successfully",
               "notificationType":"session-ready","targetUserId":UID})
    );
    assert_eq!(stub.deliveries().len(), 1);
    assert!(outbox(&fake, "session-ready#sess-1").is_some());
    // Another cause is another notification.
    invoke(&app, notification("session-failed", "sess-1")).await;
    assert_eq!(stub.deliveries().len(), 2);
}

#[tokio::test]
async fn a_hanging_api_keeps_the_action_within_its_budget_and_the_sweep_sends_once_later() {
    let (app, fake, clock, stub) = app(&[]).await;
    stub.always(Answer::Hangs);
    let t = Instant::now();
    let limit = Duration::from_secs(5);
    tokio::time::timeout(limit, running(&app))
        .await
        .expect("the start waited on the hung API");
    let task = task_arn(&fake);
    let (code, _) = tokio::time::timeout(limit, invoke(&app, ev("stop", UID)))
        .await
        .expect("the stop waited on the hung API");
    assert_eq!(code, 200);
    // Two actions (three with the create), each within its budget of 500 ms.
    assert!(t.elapsed() < Duration::from_millis(2_500), "{:?}", t.elapsed());
    let pending = outbox(&fake, &format!("stopped#{task}")).expect("recorded");
    assert!(pending.contains_key("pendingShard"), "{pending:?}");

    // The API recovers; a sweep before the backoff sends nothing, one after sends each once.
    stub.always(Answer::Ok);
    let hung = stub.deliveries().len();
    assert_eq!(hung, 2);
    invoke(&app, sweep()).await;
    assert_eq!(stub.deliveries().len(), hung);
    clock.advance(Duration::from_secs(31));
    invoke(&app, sweep()).await;
    let mut sent: Vec<String> = stub.titles()[hung..].to_vec();
    sent.sort();
    assert_eq!(
        sent,
        vec!["Your Foundry server is ready", "Your Foundry server stopped"]
    );
    clock.advance(Duration::from_secs(3_600));
    invoke(&app, sweep()).await;
    assert_eq!(stub.deliveries().len(), hung + 2);
    let done = outbox(&fake, &format!("stopped#{task}")).expect("recorded");
    assert!(
        !done.contains_key("pendingShard") && done.contains_key("sentAt"),
        "{done:?}"
    );
}

#[tokio::test]
async fn a_429_that_fits_the_budget_is_waited_for_and_a_longer_one_leaves_it_pending() {
    let (app, fake, clock, stub) = app(&[]).await;
    stub.script(&[Answer::RateLimited(0.2)]);
    let t = Instant::now();
    invoke(&app, notification("session-ready", "s-short")).await;
    assert!(t.elapsed() >= Duration::from_millis(200), "the wait was honoured");
    assert_eq!(stub.deliveries().len(), 2, "tried again after retry_after");
    assert!(outbox(&fake, "session-ready#s-short").unwrap().contains_key("sentAt"));

    // A wait longer than the budget: left pending, not tried again within the run, and no
    // request at all from this process until Discord's time has passed.
    stub.script(&[Answer::RateLimited(1.2)]);
    let t = Instant::now();
    invoke(&app, notification("session-ready", "s-long")).await;
    assert!(t.elapsed() < Duration::from_millis(500), "no wait beyond the budget");
    assert_eq!(stub.deliveries().len(), 3, "not tried again within the run");
    let item = outbox(&fake, "session-ready#s-long").unwrap();
    assert!(item.contains_key("pendingShard"));
    assert!(n_of(&item, "nextAttemptAt").unwrap() >= T0 + 30, "{item:?}");
    invoke(&app, notification("session-ready", "s-blocked")).await;
    assert_eq!(stub.deliveries().len(), 3, "the process waits for Discord's time");
    assert!(outbox(&fake, "session-ready#s-blocked")
        .unwrap()
        .contains_key("pendingShard"));

    // Not before the backoff, then once each.
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    clock.advance(Duration::from_secs(20));
    invoke(&app, sweep()).await;
    assert_eq!(stub.deliveries().len(), 3);
    clock.advance(Duration::from_secs(11));
    invoke(&app, sweep()).await;
    assert_eq!(stub.deliveries().len(), 5);
    assert!(outbox(&fake, "session-ready#s-long").unwrap().contains_key("sentAt"));
    assert!(outbox(&fake, "session-ready#s-blocked").unwrap().contains_key("sentAt"));
}

#[tokio::test]
async fn a_rate_limited_sweep_stops_sending_and_leaves_the_rest_pending() {
    let (app, fake, clock, stub) = app(&[("NOTIFY_MAX_PER_RUN", "5".to_string())]).await;
    stub.always(Answer::Fails);
    for i in 0..12 {
        invoke(&app, notification("session-ready", &format!("bulk-{i}"))).await;
    }
    assert_eq!(stub.deliveries().len(), 12);
    // The sweep sends at most NOTIFY_MAX_PER_RUN.
    stub.always(Answer::Ok);
    clock.advance(Duration::from_secs(31));
    invoke(&app, sweep()).await;
    assert_eq!(stub.deliveries().len(), 12 + 5);
    // A 429 it cannot wait for ends the run's sends.
    stub.script(&[Answer::RateLimited(60.0)]);
    invoke(&app, sweep()).await;
    let after = stub.deliveries().len();
    assert!(after <= 12 + 5 + 4, "at most one round of concurrent sends: {after}");
    let pending = (0..12)
        .filter(|i| {
            outbox(&fake, &format!("session-ready#bulk-{i}"))
                .unwrap()
                .contains_key("pendingShard")
        })
        .count();
    assert!(pending >= 3, "{pending}");
}

#[tokio::test]
async fn a_user_who_accepts_no_direct_messages_is_mentioned_through_the_webhook() {
    let (app, fake, _, stub) = app(&[]).await;
    stub.script(&[Answer::DmRefused]);
    invoke(&app, notification("session-failed", "s-1")).await;
    let hook = stub
        .deliveries()
        .into_iter()
        .find(|r| r.is_webhook())
        .expect("the webhook was used");
    assert_eq!(hook.path, "/api/webhooks/1234/webhook-secret-token?wait=true");
    assert_eq!(hook.authorization, None, "the bot's token never goes to a webhook");
    assert_eq!(hook.body["content"], format!("<@{UID}>"));
    assert_eq!(hook.body["allowed_mentions"], json!({"users":[UID]}));
    assert_eq!(hook.body["embeds"][0]["title"], "Your session could not start");
    let item = outbox(&fake, "session-failed#s-1").unwrap();
    assert_eq!(item.get("via"), Some(&AttributeValue::S("webhook".into())));
}

#[tokio::test]
async fn the_deployment_can_prefer_the_channel() {
    let (app, _, _, stub) = app(&[("NOTIFY_VIA", "channel".to_string())]).await;
    invoke(&app, notification("session-ready", "s-1")).await;
    let d = stub.deliveries();
    assert_eq!(d.len(), 1);
    assert!(d[0].is_webhook());
    assert!(stub.requests().iter().all(|r| !r.path.contains("/users/@me")));
}

#[tokio::test]
async fn a_failing_notification_is_tried_again_with_backoff_and_dropped_after_the_age_limit() {
    let (app, fake, clock, stub) = app(&[]).await;
    stub.always(Answer::Fails);
    invoke(&app, notification("session-ready", "s-1")).await;
    // The second try comes 30 s after the first, the third 60 s after the second.
    clock.advance(Duration::from_secs(31));
    invoke(&app, sweep()).await;
    assert_eq!(stub.deliveries().len(), 2);
    clock.advance(Duration::from_secs(31));
    invoke(&app, sweep()).await;
    assert_eq!(stub.deliveries().len(), 2, "backoff");
    clock.advance(Duration::from_secs(30));
    invoke(&app, sweep()).await;
    let mut tries = 3;
    for _ in 0..3 {
        clock.advance(Duration::from_secs(901));
        invoke(&app, sweep()).await;
        tries += 1;
    }
    assert_eq!(stub.deliveries().len(), tries, "tried again by each sweep");
    clock.advance(Duration::from_secs(3_600));
    invoke(&app, sweep()).await;
    assert_eq!(stub.deliveries().len(), tries, "too old: not tried again");
    let item = outbox(&fake, "session-ready#s-1").unwrap();
    assert!(
        item.contains_key("droppedAt") && !item.contains_key("pendingShard"),
        "{item:?}"
    );
}

#[tokio::test]
async fn a_user_who_turned_notifications_off_gets_none() {
    let (app, _, clock, stub) = app(&[]).await;
    created(&app).await;
    let (code, body) = invoke(&app, json!({"action":"set-notifications","userId":UID,"enabled":false})).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        body,
        json!({"message":"Notifications are off","userId":UID,"notificationsEnabled":false})
    );
    invoke(&app, ev("start", UID)).await;
    assert!(stub.deliveries().is_empty());
    let (_, body) = invoke(&app, json!({"action":"set-notifications","userId":UID,"enabled":true})).await;
    assert_eq!(body["notificationsEnabled"], true);
    clock.advance(Duration::from_secs(600));
    invoke(&app, ev("stop", UID)).await;
    assert_eq!(stub.titles(), vec!["Your Foundry server stopped"]);
    // Without a record, or without `enabled`, it is refused.
    let (code, body) = invoke(
        &app,
        json!({"action":"set-notifications","userId":UID2,"enabled":false}),
    )
    .await;
    assert_eq!(
        (code, body["error"].as_str()),
        (500, Some("Internal error: Instance not found"))
    );
    let (code, _) = invoke(&app, json!({"action":"set-notifications","userId":UID})).await;
    assert_eq!(code, 500);
}

#[tokio::test]
async fn with_notifications_off_nothing_is_recorded_or_sent() {
    let stub = discord_stub::start().await;
    let (app, fake, _) = fake_app_with(T0, Config::for_tests());
    let (code, body) = invoke(&app, notification("instance-shutdown", "s-1")).await;
    assert_eq!(code, 200);
    assert_eq!(body["message"], "Notification queued successfully");
    running(&app).await;
    invoke(&app, ev("stop", UID)).await;
    assert!(stub.requests().is_empty());
    assert!(fake.dynamo.item(OUTBOX, "instance-shutdown#s-1").is_none());
}

#[tokio::test]
async fn an_admin_stop_and_a_deadline_say_why() {
    let (app, _, clock, stub) = app(&[]).await;
    running(&app).await;
    invoke(
        &app,
        json!({"action":"admin-force-shutdown","userId":"000000000000000001","targetUserId":UID,"forceReason":"disk full"}),
    )
    .await;
    let e = &stub.deliveries()[1].body["embeds"][0].clone();
    assert_eq!(e["description"], "Stopped by an administrator.");
    assert_eq!(
        e["fields"][0],
        json!({"name":"Reason","value":"disk full","inline":true})
    );

    invoke(&app, ev("start", UID)).await;
    clock.advance(Duration::from_secs(7 * 3600));
    invoke(&app, sweep()).await;
    let e = &stub.deliveries().last().unwrap().body["embeds"][0].clone();
    assert_eq!(e["description"], "Stopped at its auto-shutdown deadline.");
    assert!(
        e["fields"][0]["value"].as_str().unwrap().starts_with("Auto-shutdown"),
        "{e}"
    );
}

#[tokio::test]
async fn the_token_is_read_once_per_process() {
    let (app, fake, _, _) = app(&[]).await;
    for i in 0..3 {
        invoke(&app, notification("session-ready", &format!("s-{i}"))).await;
    }
    assert_eq!(fake.faults.count("GetSecretValue"), 1);
}

// ------------------------------------------------------------------ the sweep's warnings

fn status_url() -> String {
    format!("{URL}/api/status")
}

#[tokio::test]
async fn the_deadline_warning_comes_once_ten_minutes_before_then_the_stop_says_why() {
    let (app, _, clock, stub) = app(&[]).await;
    running(&app).await;
    // An on-demand BYOL run stops 6 hours after its start; the probe fails (unknown), so
    // only the deadline applies.
    clock.set(T0 + 6 * 3600 - 11 * 60);
    invoke(&app, sweep()).await;
    assert_eq!(stub.deliveries().len(), 1, "not yet: 11 minutes before");
    clock.set(T0 + 6 * 3600 - 8 * 60);
    invoke(&app, sweep()).await;
    clock.set(T0 + 6 * 3600 - 3 * 60);
    invoke(&app, sweep()).await;
    assert_eq!(
        stub.titles(),
        vec!["Your Foundry server is ready", "Your Foundry server stops soon"]
    );
    clock.set(T0 + 6 * 3600 + 60);
    invoke(&app, sweep()).await;
    let titles = stub.titles();
    assert_eq!(titles.len(), 3, "{titles:?}");
    assert_eq!(titles[2], "Your Foundry server stopped");
    let e = &stub.deliveries()[2].body["embeds"][0].clone();
    assert_eq!(e["description"], "Stopped at its auto-shutdown deadline.");
    assert_eq!(e["fields"][1]["name"], "Hours");
}

#[tokio::test]
async fn an_idle_server_is_warned_once_before_its_idle_stop() {
    let (app, fake, clock, stub) = app(&[]).await;
    fake.foundry
        .answer(&status_url(), foundry_lambda::testing::FakeAnswer::Players(0));
    running(&app).await;
    for minutes in [10, 15, 21, 26] {
        clock.set(T0 + minutes * 60);
        invoke(&app, sweep()).await;
    }
    assert_eq!(
        stub.titles(),
        vec![
            "Your Foundry server is ready",
            "Nobody is playing on your Foundry server"
        ]
    );
    clock.set(T0 + 31 * 60);
    invoke(&app, sweep()).await;
    let last = stub.deliveries().last().unwrap().body["embeds"][0].clone();
    assert_eq!(last["description"], "Stopped because nobody was playing.");
    assert_eq!(stub.deliveries().len(), 3);
}

#[tokio::test]
async fn players_keeping_a_server_past_its_deadline_are_told_once() {
    let (app, fake, clock, stub) = app(&[]).await;
    fake.foundry
        .answer(&status_url(), foundry_lambda::testing::FakeAnswer::Players(3));
    running(&app).await;
    for at in [6 * 3600 - 20 * 60, 6 * 3600 - 5 * 60, 6 * 3600 + 5 * 60] {
        clock.set(T0 + at);
        invoke(&app, sweep()).await;
    }
    assert_eq!(
        stub.titles(),
        vec![
            "Your Foundry server is ready",
            "Players are connected: your server keeps running"
        ]
    );
}

#[tokio::test]
async fn a_sweep_that_stops_many_servers_sends_at_most_its_share_and_the_next_one_the_rest() {
    let (app, fake, clock, stub) = app(&[("NOTIFY_MAX_PER_RUN", "3".to_string())]).await;
    for i in 0..7 {
        let uid = format!("9{i:017}");
        let (code, body) = invoke(&app, create_event(&uid, &format!("user{i}"))).await;
        assert_eq!(code, 200, "{body}");
        invoke(&app, ev("start", &uid)).await;
    }
    assert_eq!(stub.deliveries().len(), 7, "the ready messages");
    clock.set(T0 + 6 * 3600 + 600);
    let (_, body) = invoke(&app, sweep()).await;
    assert_eq!(body["shutdownCount"], 7, "{body}");
    assert_eq!(stub.deliveries().len(), 7 + 3);
    let pending = fake
        .dynamo
        .items(OUTBOX)
        .into_iter()
        .filter(|i| i.contains_key("pendingShard"))
        .count();
    assert_eq!(pending, 4);
    invoke(&app, sweep()).await;
    invoke(&app, sweep()).await;
    invoke(&app, sweep()).await;
    let stopped = stub
        .titles()
        .iter()
        .filter(|t| *t == "Your Foundry server stopped")
        .count();
    assert_eq!(stopped, 7, "each once");
}

// ------------------------------------------------------------------ Ko-fi

#[tokio::test]
async fn a_credited_kofi_payment_is_thanked_once_with_what_it_covers() {
    let (app, _, _, stub) = app(&[]).await;
    let data =
        json!({"verification_token":"kofi-test-token","message_id":"kofi-msg-1","timestamp":"2026-01-01T00:00:00Z",
                      "type":"Donation","from_name":"Jo","message":format!("Discord: {UID}"),"amount":"5.00",
                      "email":"jo.private@example.com","currency":"USD"})
        .to_string();
    let event = json!({"action":"kofi-webhook","body":data});
    let (code, body) = invoke(&app, event.clone()).await;
    assert_eq!(code, 200, "{body}");
    invoke(&app, event).await;
    let sent = stub.deliveries();
    assert_eq!(sent.len(), 1, "once per payment");
    let e = &sent[0].body["embeds"][0];
    assert_eq!(e["title"], "Thank you for your support!");
    assert_eq!(
        e["fields"][0],
        json!({"name":"Credited","value":"5.00 USD","inline":true})
    );
    assert_eq!(
        e["fields"][1]["value"],
        "about 5.0 hours of hosting (at 1 USD per hour)"
    );
    let raw = &sent[0].raw;
    assert!(
        !raw.contains("jo.private@example.com") && !raw.contains("kofi-test-token"),
        "{raw}"
    );
}

// ------------------------------------------------------------------ sessions

async fn book(app: &App, start: i64, end: i64) -> String {
    let (code, body) = invoke(
        app,
        json!({"action":"schedule-session","userId":UID,"startTime":start,"endTime":end,"licenseType":"byol",
               "sessionTitle":"Dragons"}),
    )
    .await;
    assert_eq!((code, &body["success"]), (200, &json!(true)), "{body}");
    body["sessionId"].as_str().unwrap().to_string()
}

async fn prepare_at(app: &App, clock: &ManualClock, at: i64) {
    clock.set(at);
    let (code, body) = invoke(app, ev("prepare-sessions", "system")).await;
    assert_eq!(code, 200, "{body}");
}

#[tokio::test]
async fn a_booked_session_is_reminded_once_then_its_server_is_ready_once() {
    let (app, fake, clock, stub) = app(&[]).await;
    created(&app).await;
    let start = T0 + 2 * 3600;
    let id = book(&app, start, start + 3600).await;
    prepare_at(&app, &clock, start - 20 * 60).await;
    assert!(stub.deliveries().is_empty(), "not yet");
    prepare_at(&app, &clock, start - 14 * 60).await;
    prepare_at(&app, &clock, start - 10 * 60).await;
    assert_eq!(stub.titles(), vec!["Your session starts soon"]);
    assert_eq!(
        stub.deliveries()[0].body["embeds"][0]["description"],
        format!("Dragons starts <t:{start}:R>.")
    );
    prepare_at(&app, &clock, start - 300).await;
    prepare_at(&app, &clock, start - 200).await;
    assert_eq!(
        stub.titles(),
        vec!["Your session starts soon", "Your session's server is ready"]
    );
    assert_eq!(stub.deliveries()[1].body["embeds"][0]["url"], URL);
    assert!(outbox(&fake, &format!("session-ready#{id}")).is_some());
}

#[tokio::test]
async fn a_session_that_cannot_start_and_one_an_admin_cancels_are_told() {
    let (app, fake, clock, stub) = app(&[("SESSION_REMINDER_MINUTES", "0".to_string())]).await;
    created(&app).await;
    let start = T0 + 2 * 3600;
    let failing = book(&app, start, start + 3600).await;
    let cancelled = book(&app, start + 5 * 3600, start + 6 * 3600).await;
    fake.faults
        .fail_always("RunTask", foundry_lambda::error::AwsErrorKind::Invalid);
    prepare_at(&app, &clock, start - 300).await;
    prepare_at(&app, &clock, start - 200).await;
    let failed: Vec<_> = stub
        .deliveries()
        .into_iter()
        .filter(|d| d.body["embeds"][0]["title"] == "Your session could not start")
        .collect();
    assert_eq!(failed.len(), 1, "{:?}", stub.titles());
    assert_eq!(failed[0].body["embeds"][0]["fields"][0]["name"], "Reason");
    assert!(outbox(&fake, &format!("session-failed#{failing}")).is_some());

    let (code, body) = invoke(
        &app,
        json!({"action":"admin-cancel-session","userId":"000000000000000001","sessionId":cancelled,"forceReason":"x"}),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let last = stub.deliveries().last().unwrap().body["embeds"][0].clone();
    assert_eq!(last["title"], "Your session was cancelled");
    assert_eq!(last["description"], "Dragons was cancelled by an administrator.");
    // The user's own cancel is news to nobody.
    let own = book(&app, start + 8 * 3600, start + 9 * 3600).await;
    let before = stub.deliveries().len();
    invoke(&app, json!({"action":"cancel-session","userId":UID,"sessionId":own})).await;
    assert_eq!(stub.deliveries().len(), before);
}

#[tokio::test]
async fn a_crash_reported_by_ecs_is_told_with_ecs_reason_once() {
    let (app, fake, clock, stub) = app(&[]).await;
    running(&app).await;
    let task = task_arn(&fake);
    clock.advance(Duration::from_secs(3_600));
    assert!(fake.ecs.set_task_status(&task, "STOPPED"));
    let t = fake.ecs.task(&task).unwrap();
    let event = json!({"version":"0","id":"e-1","detail-type":"ECS Task State Change","source":"aws.ecs",
        "account":"123456789012","time":"2026-01-01T01:00:00Z","region":"us-east-1","resources":[task],
        "detail":{"clusterArn":"arn:aws:ecs:us-east-1:123456789012:cluster/foundry-vtt-cluster","taskArn":task,
                  "taskDefinitionArn":t.task_definition_arn,"group":format!("family:{}", t.family),
                  "lastStatus":"STOPPED","desiredStatus":"STOPPED","stoppedReason":"OutOfMemoryError: Container killed",
                  "stopCode":"EssentialContainerExited","containers":[{"name":"foundry","exitCode":137}]}});
    let (code, body) = invoke(&app, event.clone()).await;
    assert_eq!((code, body["outcome"].as_str()), (200, Some("ended")), "{body}");
    invoke(&app, event).await;
    assert_eq!(stub.deliveries().len(), 2, "{:?}", stub.titles());
    let e = stub.deliveries()[1].body["embeds"][0].clone();
    assert_eq!(e["description"], "Your server stopped unexpectedly.");
    assert_eq!(
        e["fields"][0],
        json!({"name":"Crash","value":"OutOfMemoryError: Container killed","inline":true})
    );
}

#[tokio::test]
async fn two_sweeps_that_both_found_a_pending_notification_send_it_once() {
    let (app, fake, clock, stub) = app(&[]).await;
    stub.script(&[Answer::Fails]);
    invoke(&app, notification("session-ready", "s-race")).await;
    assert_eq!(stub.deliveries().len(), 1);
    clock.advance(Duration::from_secs(31));
    // Both sweeps have read the pending notification before either claims it.
    fake.gate(foundry_lambda::testing::ops::UPDATE_ITEM, 2);
    let answers = concurrently(&app, vec![sweep(), ev("prepare-sessions", "system")]).await;
    assert!(answers.iter().all(|(code, _)| *code == 200), "{answers:?}");
    assert_eq!(stub.deliveries().len(), 2, "sent once more, by one of them");
    assert!(outbox(&fake, "session-ready#s-race").unwrap().contains_key("sentAt"));
}

#[tokio::test]
async fn a_server_stopped_for_a_session_on_its_license_says_so() {
    let (app, _, clock, stub) = app(&[("SESSION_REMINDER_MINUTES", "0".to_string())]).await;
    running(&app).await;
    let start = T0 + 2 * 3600;
    book(&app, start, start + 3600).await;
    prepare_at(&app, &clock, start - 300).await;
    let titles = stub.titles();
    assert_eq!(
        titles,
        vec![
            "Your Foundry server is ready",
            "Your Foundry server stopped",
            "Your session's server is ready"
        ]
    );
    assert_eq!(
        stub.deliveries()[1].body["embeds"][0]["description"],
        "A scheduled session on your license is starting."
    );
}

#[tokio::test]
async fn everything_an_action_causes_shares_one_budget() {
    let (app, fake, clock, stub) = app(&[("SESSION_REMINDER_MINUTES", "0".to_string())]).await;
    created(&app).await;
    let start = T0 + 2 * 3600;
    let id = book(&app, start, start + 3600).await;
    prepare_at(&app, &clock, start - 300).await;
    assert_eq!(stub.titles(), vec!["Your session's server is ready"]);
    stub.always(Answer::Hangs);
    clock.set(start + 600);
    // The admin's cancel ends the run (stopped) and tells the user (cancelled): two
    // notifications, one budget of 500 ms.
    let t = Instant::now();
    let (code, body) = invoke(
        &app,
        json!({"action":"admin-cancel-session","userId":"000000000000000001","sessionId":id}),
    )
    .await;
    let took = t.elapsed();
    assert_eq!(code, 200, "{body}");
    assert!(took < Duration::from_millis(900), "{took:?}");
    assert!(outbox(&fake, &format!("session-cancelled#{id}"))
        .unwrap()
        .contains_key("pendingShard"));
}

#[tokio::test]
async fn a_refused_token_keeps_the_notifications_and_pauses_the_requests() {
    let (app, fake, _, stub) = app(&[]).await;
    stub.script(&[Answer::Unauthorized]);
    invoke(&app, notification("session-ready", "s-401")).await;
    invoke(&app, notification("session-ready", "s-after")).await;
    assert_eq!(stub.deliveries().len(), 1, "no request while paused");
    for id in ["session-ready#s-401", "session-ready#s-after"] {
        let item = outbox(&fake, id).unwrap();
        assert!(item.contains_key("pendingShard"), "{id} is kept: {item:?}");
    }
}

#[tokio::test]
async fn a_start_that_does_not_wait_is_announced_once_by_its_running_events() {
    let (app, fake, _, stub) = app(&[("START_WAIT", "events".to_string())]).await;
    created(&app).await;
    let (code, body) = invoke(&app, ev("start", UID)).await;
    assert_eq!((code, body["status"].as_str()), (200, Some("starting")), "{body}");
    assert!(stub.deliveries().is_empty(), "not ready yet");
    let task = task_arn(&fake);
    let t = fake.ecs.task(&task).unwrap();
    assert!(fake.ecs.set_task_status(&task, "RUNNING"));
    let t = fake.ecs.task(&task).unwrap_or(t);
    let event = json!({"version":"0","id":"e-2","detail-type":"ECS Task State Change","source":"aws.ecs",
        "account":"123456789012","time":"2026-01-01T00:01:00Z","region":"us-east-1","resources":[task],
        "detail":{"clusterArn":"arn:aws:ecs:us-east-1:123456789012:cluster/foundry-vtt-cluster","taskArn":task,
                  "taskDefinitionArn":t.task_definition_arn,"group":format!("family:{}", t.family),
                  "lastStatus":"RUNNING","desiredStatus":"RUNNING",
                  "attachments":[{"id":"a-1","type":"eni","status":"ATTACHED","details":
                      t.private_ip.iter().map(|ip| json!({"name":"privateIPv4Address","value":ip})).collect::<Vec<_>>()}]}});
    let answers = concurrently(&app, vec![event.clone(), event]).await;
    assert!(answers.iter().all(|(c, _)| *c == 200), "{answers:?}");
    assert_eq!(stub.titles(), vec!["Your Foundry server is ready"]);
}
