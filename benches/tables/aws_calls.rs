//! Table 5: AWS calls, wall time and CPU time per action, for a typical case against the
//! local AWS (moto on the bench's own port), next to the original's counts.
//!
//! One user goes through create → start → status → schedule-session → admin-overview →
//! cancel-session → stop → destroy with the function's own configuration, `SdkConfig` and
//! managers (the same code as `bootstrap`), in a process of its own that has not handled an
//! event before. Calls are counted with `telemetry::measure`, as the `AwsCalls` metric counts
//! them: one per SDK operation, retries included.
//!
//! The local AWS is first brought to the state of an account in use: another user is created
//! and destroyed by another `App` (another process), which leaves the EFS cleanup task's
//! definition registered, as any earlier destroy in the account does.
//!
//! A new row is one line in [`ROWS`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use foundry_lambda::app::{App, Ctx};
use foundry_lambda::clock::{Clock, SystemClock};
use foundry_lambda::config::Config;
use foundry_lambda::managers::Managers;
use foundry_lambda::telemetry::measure;
use serde_json::{json, Value};

/// The user of this run (a fresh id: the local AWS is never reset).
struct User {
    id: String,
    san: String,
    /// The id of the session `schedule-session` booked.
    session: std::cell::RefCell<String>,
}

/// `(action, the original's count, the event)`, in the order they run.
type Row = (&'static str, &'static str, fn(&User, i64) -> Value);

const ROWS: &[Row] = &[
    ("create", "21", |u, _| {
        json!({"action": "create", "userId": u.id, "sanitizedUsername": u.san,
               "foundryUsername": "gm@example.com", "foundryPassword": "correct-horse-battery",
               "licenseType": "byol", "allowLicenseSharing": false, "maxConcurrentUsers": 1})
    }),
    ("start", "—", |u, _| json!({"action": "start", "userId": u.id})),
    ("status", "2", |u, _| json!({"action": "status", "userId": u.id})),
    ("schedule-session", "7", |u, now| {
        json!({"action": "schedule-session", "userId": u.id, "startTime": now + 2 * 86_400,
               "endTime": now + 2 * 86_400 + 3 * 3_600, "licenseType": "byol",
               "sessionTitle": "Bench session", "preferredLicenseId": format!("byol-{}", u.id)})
    }),
    (
        "admin-overview",
        "5 (scans)",
        |_, _| json!({"action": "admin-overview", "userId": "000000000000000001"}),
    ),
    (
        "cancel-session",
        "—",
        |u, _| json!({"action": "cancel-session", "userId": u.id, "sessionId": *u.session.borrow()}),
    ),
    ("stop", "—", |u, _| json!({"action": "stop", "userId": u.id})),
    (
        "destroy",
        "15 (+ a fixed 2 s sleep)",
        |u, _| json!({"action": "destroy", "userId": u.id}),
    ),
];

/// CPU time of this thread, in nanoseconds (`/proc/thread-self/schedstat`). The runtime is
/// single-threaded, so this is the function's own CPU time (moto runs in its own process).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

fn unique_user() -> User {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    let id = format!("8{:017}", micros % 100_000_000_000_000_000);
    let san = format!("bench{}", &id[id.len() - 8..]);
    User {
        id,
        san,
        session: Default::default(),
    }
}

pub fn run(env: &BTreeMap<String, String>) {
    // The function's configuration and the SDK's endpoint and credentials come from the
    // environment, as in Lambda.
    for (k, v) in env {
        std::env::set_var(k, v);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let config = Config::from_env().expect("the local AWS env file is a complete configuration");
    let endpoint = env.get("AWS_ENDPOINT_URL").cloned().unwrap_or_default();
    let new_app = |config: Config| {
        rt.block_on(async {
            let sdk = foundry_lambda::managers::sdk::load_config(&config.region).await;
            App::new(config, Arc::new(SystemClock), Managers::from_sdk(&sdk))
        })
    };
    // An account in use: an earlier destroy (in another process) left the EFS cleanup task's
    // definition registered. The first destroy in an account registers it (one call more).
    let earlier = new_app(config.clone());
    let other = unique_user();
    for event in [ROWS[0].2(&other, 0), json!({"action": "destroy", "userId": other.id})] {
        let ctx = Ctx {
            request_id: "bench-earlier".into(),
            deadline_ms: Some(SystemClock.now_ms() + 300_000),
        };
        let handled = rt.block_on(earlier.handle(&event, &ctx));
        assert_eq!(
            handled.envelope.status_code, 200,
            "an earlier user's create and destroy: {}",
            handled.envelope.body
        );
    }
    drop(earlier);
    let app = new_app(config);
    let user = unique_user();

    struct Line {
        action: &'static str,
        original: &'static str,
        result: (u16, u64, u64, f64, f64, String),
    }
    let mut lines = Vec::new();
    for (action, original, event) in ROWS {
        let now_ms = SystemClock.now_ms();
        let ctx = Ctx {
            request_id: format!("bench-{action}"),
            deadline_ms: Some(now_ms + 300_000),
        };
        let event = event(&user, now_ms / 1000);
        let cpu0 = thread_cpu_ns();
        let t0 = Instant::now();
        let (handled, calls, _) = rt.block_on(measure(|| app.handle(&event, &ctx)));
        let wall = t0.elapsed().as_secs_f64();
        let cpu = (thread_cpu_ns().saturating_sub(cpu0)) as f64 / 1e6;
        let body = handled.envelope.body.clone();
        let answer = serde_json::from_str::<Value>(&body).unwrap_or_default();
        if let Some(id) = answer["sessionId"].as_str() {
            *user.session.borrow_mut() = id.to_string();
        }
        let note = if handled.envelope.status_code == 200 {
            String::new()
        } else {
            let message = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_string))
                .unwrap_or(body);
            format!(" ({message})")
        };
        lines.push(Line {
            action,
            original,
            result: (handled.envelope.status_code, calls.total, calls.failed, wall, cpu, note),
        });
    }

    println!();
    println!(
        "Table 5. AWS calls, wall time and CPU time per action, a typical case against the local AWS \
         ({endpoint}, moto): one BYOL user, create → start → status → schedule-session → admin-overview → cancel-session → stop → destroy, \
         in a fresh process of an account where an earlier destroy registered the cleanup task's definition."
    );
    println!();
    println!("| action | answer | AWS calls (failed) | original | wall time | CPU time |");
    println!("|---|---|---:|---|---:|---:|");
    for l in &lines {
        let (code, calls, failed, wall, cpu, note) = &l.result;
        println!(
            "| {} | {code}{note} | {calls} ({failed}) | {} | {wall:.2} s | {cpu:.1} ms |",
            l.action, l.original
        );
    }
    println!();
    println!(
        "Wall time includes the waits of each action (moto's ECS tasks reach RUNNING about 3 s after \
         RunTask, and the EFS clean-up task stops about 7 s after it starts)."
    );
    println!();
}
