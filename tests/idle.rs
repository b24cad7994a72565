//! Idle detection: the real HTTP probe against a stub Foundry server on 127.0.0.1 (players,
//! a server that hangs, a 500, an HTML page, a refused connection), and the auto-shutdown
//! sweep's idle rule on the fakes' clock (idle stop, no stop on a failed probe, a deadline
//! that follows play up to its cap, a session nobody joins, bounded concurrency and the
//! invocation's deadline with slow probes).

mod fake_env;

use std::sync::Arc;
use std::time::Duration;

use fake_env::*;
use foundry_lambda::actions::idle::PROBE_CONCURRENCY;
use foundry_lambda::app::{App, Ctx};
use foundry_lambda::clock::Clock;
use foundry_lambda::config::{test_vars, Config};
use foundry_lambda::domain::idle::Probe;
use foundry_lambda::managers::dynamodb::AttributeValue;
use foundry_lambda::managers::foundry::{FoundryStatus, HttpFoundryStatus};
use foundry_lambda::store::ProbeNote;
use foundry_lambda::testing::{fake_app, fake_app_with, invoke, invoke_with, FakeAnswer, FakeAws};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const MIN: i64 = 60;

// ------------------------------------------------------------------ a stub Foundry server

/// A stub Foundry server on 127.0.0.1: the first path segment says how it answers
/// (`play…`: 2 players; `idle…`: none; `setup…`: no world active; `err…`: 500; `html…`: a
/// web page; `hang…`: never).
async fn stub_foundry() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the stub");
    let port = listener.local_addr().expect("its address").port();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&request);
                let path = text.split_whitespace().nth(1).unwrap_or("/").to_string();
                let who = path.trim_start_matches('/');
                let (code, kind, body) = if who.starts_with("play") {
                    (
                        "200 OK",
                        "application/json",
                        r#"{"active":true,"version":"13.348","world":"w","system":"dnd5e","users":2,"uptime":100.5}"#,
                    )
                } else if who.starts_with("idle") {
                    (
                        "200 OK",
                        "application/json",
                        r#"{"active":true,"version":"13.348","world":"w","users":0}"#,
                    )
                } else if who.starts_with("setup") {
                    ("200 OK", "application/json", r#"{"active":false,"version":"13.348"}"#)
                } else if who.starts_with("err") {
                    ("500 Internal Server Error", "text/plain", "boom")
                } else if who.starts_with("html") {
                    (
                        "200 OK",
                        "text/html",
                        "<html><body>Foundry Virtual Tabletop</body></html>",
                    )
                } else if who.starts_with("hang") {
                    std::future::pending::<()>().await;
                    unreachable!()
                } else {
                    ("404 Not Found", "text/plain", "no")
                };
                let answer = format!(
                    "HTTP/1.1 {code}\r\ncontent-type: {kind}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    port
}

/// A port on 127.0.0.1 where nothing listens.
async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("address").port()
}

#[tokio::test]
async fn the_http_probe_reads_foundrys_status_and_every_failure_is_unknown() {
    let port = stub_foundry().await;
    let probe = HttpFoundryStatus::new();
    let at = |who: &str| format!("http://127.0.0.1:{port}/{who}/api/status");
    let budget = Duration::from_millis(500);
    assert_eq!(probe.probe(&at("play"), budget).await, Probe::Players(2));
    assert_eq!(probe.probe(&at("idle"), budget).await, Probe::Players(0));
    assert_eq!(probe.probe(&at("setup"), budget).await, Probe::Players(0));
    assert_eq!(probe.probe(&at("err"), budget).await, Probe::Unknown("http-500".into()));
    assert_eq!(
        probe.probe(&at("html"), budget).await,
        Probe::Unknown("not-json".into())
    );
    assert_eq!(probe.probe(&at("hang"), budget).await, Probe::Unknown("timeout".into()));
    let refused = format!("http://127.0.0.1:{}/api/status", closed_port().await);
    assert_eq!(probe.probe(&refused, budget).await, Probe::Unknown("refused".into()));
    assert_eq!(
        probe.probe("not a url", budget).await,
        Probe::Unknown("invalid URL".into())
    );
}

// ------------------------------------------------------------------ helpers on the fakes

fn sweep() -> Value {
    json!({"action":"auto-shutdown-check","userId":"system"})
}

fn user(i: usize) -> String {
    format!("7{i:017}")
}

/// The fakes' status URL of `san` (the default template).
fn url(san: &str) -> String {
    format!("https://{san}.foundry.example.com/api/status")
}

fn config(extra: &[(&'static str, String)]) -> Config {
    let mut vars: Vec<(&str, String)> = test_vars().into_iter().map(|(k, v)| (k, v.to_string())).collect();
    vars.extend(extra.iter().cloned());
    Config::from_lookup(|k| vars.iter().rev().find(|(n, _)| *n == k).map(|(_, v)| v.clone())).expect("config")
}

/// Creates and starts the server of `uid`/`san`.
async fn start(app: &App, uid: &str, san: &str) {
    let (code, body) = invoke(app, create_event(uid, san)).await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = invoke(app, ev("start", uid)).await;
    assert_eq!(code, 200, "{body}");
}

fn attr(fake: &FakeAws, uid: &str, name: &str) -> Option<AttributeValue> {
    fake.dynamo.item(INSTANCES, uid).and_then(|i| i.get(name).cloned())
}

/// The run's start as recorded (a start on the fakes takes a few seconds of their clock).
fn started_at(fake: &FakeAws, uid: &str) -> i64 {
    match attr(fake, uid, "startedAt") {
        Some(AttributeValue::N(t)) => t.parse().expect("a number"),
        other => panic!("{uid} has no startedAt: {other:?}"),
    }
}

fn status_of(fake: &FakeAws, uid: &str) -> Option<AttributeValue> {
    attr(fake, uid, "status")
}

fn s(v: &str) -> Option<AttributeValue> {
    Some(AttributeValue::S(v.to_string()))
}

fn n(v: i64) -> Option<AttributeValue> {
    Some(AttributeValue::N(v.to_string()))
}

fn stopped_users(body: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = body["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter(|r| r["success"] == true)
        .map(|r| {
            (
                r["userId"].as_str().unwrap_or_default().to_string(),
                r["reason"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

// ------------------------------------------------------------------ the sweep, real HTTP

#[tokio::test]
async fn the_sweep_probes_real_servers_stops_the_idle_ones_and_keeps_the_rest() {
    let port = stub_foundry().await;
    let template = format!("http://127.0.0.1:{port}/{{sanitizedUsername}}/api/status");
    let (mut app, fake, clock) = fake_app_with(
        T0,
        config(&[
            ("FOUNDRY_STATUS_URL_TEMPLATE", template),
            ("FOUNDRY_STATUS_TIMEOUT_MS", "300".to_string()),
        ]),
    );
    app.services.aws.foundry = Arc::new(HttpFoundryStatus::new());
    let servers = ["play", "idle", "setup", "err", "html", "hang"];
    for (i, san) in servers.iter().enumerate() {
        start(&app, &user(i), san).await;
    }
    let now = started_at(&fake, &user(servers.len() - 1)) + 31 * MIN;
    clock.set(now);
    let (code, body) = invoke(&app, sweep()).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        stopped_users(&body),
        vec![
            (user(1), "Auto-shutdown: idle for 31 minutes".to_string()),
            (user(2), "Auto-shutdown: idle for 31 minutes".to_string()),
        ],
        "only the servers that answered with nobody connected: {body}"
    );
    assert_eq!(attr(&fake, &user(0), "players"), n(2));
    assert_eq!(attr(&fake, &user(0), "lastPlayersSeenAt"), n(now));
    assert_eq!(attr(&fake, &user(0), "lastProbeResult"), s("ok"));
    for (i, outcome) in [(3, "http-500"), (4, "not-json"), (5, "timeout")] {
        assert_eq!(status_of(&fake, &user(i)), s("running"), "{outcome}");
        assert_eq!(attr(&fake, &user(i), "lastProbeResult"), s(outcome));
        assert_eq!(attr(&fake, &user(i), "lastProbeAt"), n(now));
        assert_eq!(attr(&fake, &user(i), "players"), None, "a failed probe counts nobody");
    }
    let (_, view) = invoke(&app, ev("status", &user(0))).await;
    assert_eq!(
        (view["players"].clone(), view.get("idleSince")),
        (json!(2), None),
        "{view}"
    );
    let (_, view) = invoke(&app, ev("status", &user(3))).await;
    assert_eq!((view.get("players"), view.get("idleSince")), (None, None), "{view}");
}

// ------------------------------------------------------------------ the rule, on the fakes

#[tokio::test]
async fn a_server_without_players_is_stopped_after_the_idle_time_since_the_last_player() {
    let (app, fake, clock) = fake_app(T0);
    running(&app).await;
    fake.foundry.answer(&url("alice"), FakeAnswer::Players(1));
    clock.advance(Duration::from_secs(10 * 60));
    let seen = clock.now();
    assert_eq!(invoke(&app, sweep()).await.1["shutdownCount"], 0);
    fake.foundry.answer(&url("alice"), FakeAnswer::Players(0));
    clock.advance(Duration::from_secs(25 * 60));
    assert_eq!(
        invoke(&app, sweep()).await.1["shutdownCount"],
        0,
        "idle for 25 minutes only"
    );
    let (_, view) = invoke(&app, ev("status", UID)).await;
    assert_eq!(view["players"], 0);
    assert_eq!(view["idleSince"], seen, "since the last player was seen");
    let (_, overview) = invoke(&app, ev("admin-overview", "system")).await;
    let row = &overview["instances"]["running"][0];
    assert_eq!(
        (row["players"].clone(), row["idleSince"].clone()),
        (json!(0), json!(seen))
    );

    clock.advance(Duration::from_secs(5 * 60));
    let (_, body) = invoke(&app, sweep()).await;
    assert_eq!(
        stopped_users(&body),
        vec![(UID.to_string(), "Auto-shutdown: idle for 30 minutes".to_string())]
    );
    assert!(fake.ecs.running_tasks().is_empty(), "stopped through the teardown");
    assert!(fake.alb.rules(LISTENER).is_empty());
    assert_eq!(status_of(&fake, UID), s("stopped"));
}

#[tokio::test]
async fn a_failed_probe_never_stops_a_server_and_only_its_deadline_applies() {
    let (app, fake, clock) = fake_app(T0);
    running(&app).await;
    let t0 = started_at(&fake, UID);
    for (step, why) in ["timeout", "http-500", "refused", "not-json"].iter().enumerate() {
        fake.foundry.answer(&url("alice"), FakeAnswer::Fails(why.to_string()));
        clock.set(t0 + (step as i64 + 1) * 3_600);
        assert_eq!(invoke(&app, sweep()).await.1["shutdownCount"], 0, "{why}");
        assert_eq!(attr(&fake, UID, "lastProbeResult"), s(why));
    }
    clock.set(t0 + 6 * 3_600);
    let (_, body) = invoke(&app, sweep()).await;
    assert_eq!(
        stopped_users(&body),
        vec![(
            UID.to_string(),
            "Auto-shutdown: On-demand instance ran for 6 hours (6h limit)".to_string()
        )]
    );
}

#[tokio::test]
async fn a_deadline_follows_play_and_the_run_stops_at_its_cap() {
    let (app, fake, clock) = fake_app(T0);
    running(&app).await;
    fake.foundry.answer(&url("alice"), FakeAnswer::Players(3));
    let t0 = started_at(&fake, UID);
    let deadline = t0 + 6 * 3_600;
    assert_eq!(attr(&fake, UID, "autoShutdownAt"), n(deadline));
    // Every five minutes, as the schedule runs it.
    let mut t = t0;
    let stopped_at = loop {
        t += 5 * MIN;
        clock.set(t);
        let (_, body) = invoke(&app, sweep()).await;
        if body["shutdownCount"] == 1 {
            assert_eq!(
                body["results"][0]["reason"],
                "Auto-shutdown: run reached its 12 hour limit"
            );
            break t;
        }
        assert!(t < t0 + 13 * 3_600, "the cap stops it");
        if t == deadline - 25 * MIN {
            assert_eq!(
                attr(&fake, UID, "autoShutdownAt"),
                n(t + 30 * MIN),
                "moved by the idle time"
            );
        }
        if t == deadline + 3_600 {
            assert_eq!(
                status_of(&fake, UID),
                s("running"),
                "players are not cut off at the deadline"
            );
        }
    };
    assert_eq!(stopped_at, t0 + 12 * 3_600);
}

#[tokio::test]
async fn when_the_players_leave_an_extended_run_stops_at_its_moved_deadline() {
    let (app, fake, clock) = fake_app(T0);
    running(&app).await;
    fake.foundry.answer(&url("alice"), FakeAnswer::Players(2));
    let t0 = started_at(&fake, UID);
    clock.set(t0 + 6 * 3_600);
    assert_eq!(invoke(&app, sweep()).await.1["shutdownCount"], 0);
    let moved = t0 + 6 * 3_600 + 30 * MIN;
    assert_eq!(attr(&fake, UID, "autoShutdownAt"), n(moved));
    fake.foundry.answer(&url("alice"), FakeAnswer::Players(0));
    clock.set(moved - 5 * MIN);
    assert_eq!(invoke(&app, sweep()).await.1["shutdownCount"], 0);
    clock.set(moved);
    assert_eq!(invoke(&app, sweep()).await.1["shutdownCount"], 1);
    assert_eq!(status_of(&fake, UID), s("stopped"));
}

#[tokio::test]
async fn a_booked_session_whose_group_never_shows_is_stopped_after_the_idle_time() {
    let (app, fake, clock) = fake_app(T0);
    created(&app).await;
    let start = T0 + 3_600;
    let (_, body) = invoke(
        &app,
        json!({"action":"schedule-session","userId":UID,"startTime":start,"endTime":start + 4 * 3_600,"licenseType":"byol"}),
    )
    .await;
    let session = body["sessionId"].as_str().expect("a session").to_string();
    clock.set(start - 5 * MIN);
    invoke(&app, ev("prepare-sessions", "system")).await;
    assert_eq!(status_of(&fake, UID), s("running"));
    fake.foundry.answer(&url("alice"), FakeAnswer::Players(0));
    clock.set(start + 29 * MIN);
    assert_eq!(
        invoke(&app, sweep()).await.1["shutdownCount"],
        0,
        "counted from the session's start, not the server's"
    );
    clock.set(start + 30 * MIN);
    let (_, body) = invoke(&app, sweep()).await;
    assert_eq!(
        stopped_users(&body),
        vec![(UID.to_string(), "Auto-shutdown: idle for 30 minutes".to_string())]
    );
    let item = fake
        .dynamo
        .item("foundry-vtt-instances-scheduled-sessions", &session)
        .expect("the session");
    assert_eq!(item.get("status").cloned(), s("completed"), "the run's end moved it on");
}

#[tokio::test]
async fn with_idle_detection_off_nothing_is_probed() {
    let (app, fake, clock) = fake_app_with(T0, config(&[("IDLE_SHUTDOWN_MINUTES", "0".to_string())]));
    running(&app).await;
    fake.foundry.answer(&url("alice"), FakeAnswer::Players(0));
    clock.advance(Duration::from_secs(3 * 3_600));
    assert_eq!(invoke(&app, sweep()).await.1["shutdownCount"], 0);
    assert!(fake.foundry.calls().is_empty());
}

#[tokio::test]
async fn a_probes_result_never_brings_back_a_run_that_ended() {
    let (app, fake, clock) = fake_app(T0);
    running(&app).await;
    let task = match attr(&fake, UID, "taskArn") {
        Some(AttributeValue::S(t)) => t,
        other => panic!("no task: {other:?}"),
    };
    clock.advance(Duration::from_secs(60));
    assert_eq!(invoke(&app, ev("stop", UID)).await.0, 200);
    let note = ProbeNote {
        at: clock.now(),
        players: Some(4),
        outcome: "ok",
        extend_to: Some(T0 + 99_999),
    };
    let written = app
        .services
        .store
        .instances
        .note_probe(UID, &task, &note)
        .await
        .expect("no error");
    assert!(written.is_none(), "the run had ended");
    for name in ["players", "lastProbeAt", "lastPlayersSeenAt", "autoShutdownAt"] {
        assert_eq!(attr(&fake, UID, name), None, "{name} stays unwritten");
    }
    assert_eq!(status_of(&fake, UID), s("stopped"));
}

// ------------------------------------------------------------------ concurrency and deadline

#[tokio::test]
async fn the_sweep_probes_a_bounded_number_of_servers_at_once() {
    let (app, fake, clock) = fake_app(T0);
    for i in 0..100 {
        let san = format!("p{i}");
        start(&app, &user(i), &san).await;
        fake.foundry.answer(&url(&san), FakeAnswer::Players(1));
    }
    clock.advance(Duration::from_secs(10 * 60));
    let (_, body) = invoke(&app, sweep()).await;
    assert_eq!(body["shutdownCount"], 0);
    assert_eq!(fake.foundry.calls().len(), 100, "every server probed");
    assert_eq!(
        fake.foundry.peak_in_flight(),
        PROBE_CONCURRENCY,
        "a few at a time, never more"
    );
}

#[tokio::test]
async fn servers_that_never_answer_cannot_make_the_sweep_miss_its_deadline_or_skip_anyone() {
    let (app, fake, clock) = fake_app(T0);
    for i in 0..100 {
        let san = format!("h{i}");
        start(&app, &user(i), &san).await;
        fake.foundry.answer(&url(&san), FakeAnswer::Hangs);
    }
    clock.set(started_at(&fake, &user(99)) + 6 * 3_600 + 1);
    // 17 s left: 2 s after the margin the invocation keeps, so the probes get 1 s.
    let ctx = Ctx {
        request_id: "r".into(),
        deadline_ms: Some(clock.now_ms() + 17_000),
    };
    let (code, body) = invoke_with(&app, sweep(), &ctx).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        fake.foundry.calls().len(),
        PROBE_CONCURRENCY,
        "the first servers hung until the probes' time was up; no later one was asked"
    );
    assert_eq!(
        body["shutdownCount"], 100,
        "every run past its deadline stopped, probed or not"
    );
    assert!(fake.ecs.running_tasks().is_empty());
}
