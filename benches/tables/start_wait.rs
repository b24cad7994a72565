//! Table 7: the billed duration of a start, polling (`START_WAIT=poll`, the default) and
//! event-driven (`START_WAIT=events`), on the in-memory fakes with 20 ms per AWS call and the
//! fakes' clock simulating a Fargate task that takes 60 s to start.
//!
//! Billed time is the invocation's wall time (real, with the simulated network latency)
//! plus the time it spent waiting on the fakes' clock (its polls' pauses, which a real
//! Lambda would be billed for). With events, the start is billed for RunTask and its
//! bookkeeping only; the `RUNNING` event's invocation does the routing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use foundry_lambda::app::{App, Ctx};
use foundry_lambda::clock::{Clock, ManualClock};
use foundry_lambda::config::{Config, StartWait};
use foundry_lambda::testing::{fake_app_with, FakeAws};
use serde_json::{json, Value};

const T0: i64 = 1_767_225_600;
const LATENCY: Duration = Duration::from_millis(20);
const TASK_START_SECONDS: i64 = 60;
const UID: &str = "700000000000000001";
const RUNS: usize = 5;

/// One invocation → (its answer, its billed milliseconds: wall time plus simulated waits).
fn billed(rt: &tokio::runtime::Runtime, app: &App, clock: &ManualClock, event: Value) -> (Value, f64) {
    let sim0 = clock.now_ms();
    let t0 = Instant::now();
    let handled = rt.block_on(app.handle(&event, &Ctx::default()));
    let wall = t0.elapsed().as_secs_f64() * 1e3;
    assert_eq!(handled.envelope.status_code, 200, "{event}: {}", handled.envelope.body);
    let body = serde_json::from_str(&handled.envelope.body).expect("a JSON body");
    (body, wall + (clock.now_ms() - sim0) as f64)
}

fn world(rt: &tokio::runtime::Runtime, wait: StartWait) -> (App, FakeAws, Arc<ManualClock>) {
    let mut config = Config::for_tests();
    config.start_wait = wait;
    let (app, fake, clock) = fake_app_with(T0, config);
    let create = json!({"action":"create","userId":UID,"sanitizedUsername":"benchstart","foundryUsername":"gm@example.com",
                        "foundryPassword":"bench-password","licenseType":"byol","allowLicenseSharing":false});
    let handled = rt.block_on(app.handle(&create, &Ctx::default()));
    assert_eq!(handled.envelope.status_code, 200, "{}", handled.envelope.body);
    fake.ecs.set_start_delay(TASK_START_SECONDS);
    fake.set_latency(LATENCY);
    (app, fake, clock)
}

fn running_event(fake: &FakeAws, task_arn: &str) -> Value {
    let task = fake.ecs.task(task_arn).expect("the task");
    json!({"detail-type":"ECS Task State Change","source":"aws.ecs","id":"bench",
           "detail":{"clusterArn":"arn:aws:ecs:us-east-1:123456789012:cluster/foundry-vtt-cluster",
                     "taskArn":task.arn,"taskDefinitionArn":task.task_definition_arn,"lastStatus":"RUNNING",
                     "desiredStatus":"RUNNING","containers":[{"name":"foundry","lastStatus":"RUNNING"}],
                     "attachments":[{"type":"eni","details":[{"name":"privateIPv4Address","value":task.private_ip}]}]}})
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

pub fn run() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let (mut poll_start, mut poll_calls) = (Vec::new(), Vec::new());
    let (mut ev_start, mut ev_event, mut ev_status, mut ev_calls) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..RUNS {
        // Polling: the start waits for the task, then routes it.
        let (app, fake, clock) = world(&rt, StartWait::Poll);
        let before = fake.faults.calls().len();
        let (body, ms) = billed(&rt, &app, &clock, json!({"action":"start","userId":UID}));
        assert_eq!(body["status"], "running", "{body}");
        poll_start.push(ms);
        poll_calls.push(fake.faults.calls().len() - before);

        // Events: the start answers at once; the RUNNING event routes the task.
        let (app, fake, clock) = world(&rt, StartWait::Events);
        let before = fake.faults.calls().len();
        let (body, ms) = billed(&rt, &app, &clock, json!({"action":"start","userId":UID}));
        assert_eq!(body["status"], "starting", "{body}");
        ev_start.push(ms);
        let task = body["taskArn"].as_str().expect("a task").to_string();
        // One `status` poll of the bot while the task starts.
        let (_, ms) = billed(&rt, &app, &clock, json!({"action":"status","userId":UID}));
        ev_status.push(ms);
        clock.advance(Duration::from_secs(TASK_START_SECONDS as u64));
        fake.ecs.set_task_status(&task, "RUNNING");
        let (body, ms) = billed(&rt, &app, &clock, running_event(&fake, &task));
        assert_eq!(body["outcome"], "routed", "{body}");
        ev_event.push(ms);
        ev_calls.push(fake.faults.calls().len() - before);
    }
    let (ps, es, ee, st) = (
        median(poll_start),
        median(ev_start),
        median(ev_event),
        median(ev_status),
    );
    println!();
    println!(
        "Table 7. Billed duration of a start: polling versus task-state events, on the fakes ({} ms per AWS call, \
         a task that takes {TASK_START_SECONDS} s to start on the fakes' clock; median of {RUNS}).",
        LATENCY.as_millis()
    );
    println!();
    println!("| START_WAIT | invocation | billed | AWS calls (start to routed) |");
    println!("|---|---|---:|---:|");
    println!(
        "| `poll` (default) | `start` (polls DescribeTasks 1, 2, 4, 8, 10 s … apart, then routes) | {:.1} s | {} |",
        ps / 1e3,
        poll_calls[0]
    );
    println!(
        "| `events` | `start` (answers `starting` after RunTask) | {:.0} ms | |",
        es
    );
    println!("| `events` | the `RUNNING` event (routes) | {:.0} ms | |", ee);
    println!(
        "| `events` | total | {:.0} ms | {} (one `status` poll included) |",
        es + ee,
        ev_calls[0]
    );
    println!(
        "| `events` | each `status` poll of the bot meanwhile | {:.0} ms | |",
        st
    );
    println!();
    println!(
        "Polling bills the task's start time ({:.0}x the event-driven total here); with events a start costs \
         the start and the event, plus whatever `status` polls the bot makes while it waits.",
        ps / (es + ee)
    );
    println!();
}
