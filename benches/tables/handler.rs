//! Table 3: the handler's own cost, on the in-memory fakes (no network, no waiting): from the
//! raw event bytes (parsed as the runtime does) through `App::handle` (with the EMF metrics,
//! to a sink that discards them) to the serialized envelope. Criterion measures each row.
//!
//! The fakes hold 1,000 instances, made by `create` itself, and (for `admin-overview`) 200
//! scheduled sessions, booked by `schedule-session`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use criterion::Criterion;
use foundry_lambda::app::{App, Ctx};
use foundry_lambda::telemetry::{measure, NullSink};
use foundry_lambda::testing::fake_app;
use serde_json::{json, Value};

const INSTANCES: usize = 1_000;
const SESSIONS: usize = 200;
/// The fake clock: 2026-11-27 (any fixed time works).
const NOW: i64 = 1_795_773_600;

fn user(i: usize) -> String {
    format!("{}", 200_000_000_000_000_000u64 + i as u64)
}

/// One row of the table: its name, what the fakes hold, and the event.
struct Row {
    id: &'static str,
    data: String,
    event: Value,
}

fn rows() -> Vec<Row> {
    vec![
        Row {
            id: "status",
            data: format!("{INSTANCES} instances"),
            event: json!({"action": "status", "userId": user(7)}),
        },
        Row {
            id: "list-all",
            data: format!("{INSTANCES} instances"),
            event: json!({"action": "list-all", "userId": "system"}),
        },
        Row {
            id: "admin-overview",
            data: format!("{INSTANCES} instances, {SESSIONS} sessions"),
            event: json!({"action": "admin-overview", "userId": "system"}),
        },
    ]
}

/// The fakes, seeded through the actions themselves.
fn seeded(rt: &tokio::runtime::Runtime) -> App {
    let (app, _fake, _clock) = fake_app(NOW);
    let ctx = Ctx::default();
    for i in 0..INSTANCES {
        let event = json!({
            "action": "create", "userId": user(i), "sanitizedUsername": format!("bench{i:04}"),
            "foundryUsername": "gm@example.com", "foundryPassword": "secret-password",
            "licenseType": "byol", "allowLicenseSharing": i % 4 == 0, "maxConcurrentUsers": 1
        });
        let handled = rt.block_on(app.handle(&event, &ctx));
        assert_eq!(
            handled.envelope.status_code, 200,
            "seeding: create {i} answered {}",
            handled.envelope.body
        );
    }
    // Sessions: one per user, two hours each, in the next weeks.
    for i in 0..SESSIONS {
        let start = NOW + 86_400 + (i as i64) * 7_200;
        let event = json!({
            "action": "schedule-session", "userId": user(i), "startTime": start, "endTime": start + 7_200,
            "licenseType": "byol", "sessionTitle": "Bench session", "preferredLicenseId": format!("byol-{}", user(i))
        });
        let handled = rt.block_on(app.handle(&event, &ctx));
        assert_eq!(
            handled.envelope.status_code, 200,
            "seeding: session {i} answered {}",
            handled.envelope.body
        );
    }
    app
}

fn estimate(dir: &std::path::Path, id: &str, what: &str) -> Option<f64> {
    let path = dir.join("handler").join(id).join("new").join("estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    v[what]["point_estimate"].as_f64()
}

fn human(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.1} µs", ns / 1e3)
    }
}

pub fn run() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let t0 = std::time::Instant::now();
    let plain = seeded(&rt);
    let seed_time = t0.elapsed();
    let app = plain.clone().with_metrics(Arc::new(NullSink));
    let ctx = Ctx {
        request_id: "bench".into(),
        deadline_ms: None,
    };

    let target = std::env::var("CARGO_TARGET_DIR").map_or_else(|_| PathBuf::from("target"), PathBuf::from);
    let dir = target.join("criterion");
    let mut c = Criterion::default()
        .output_directory(&dir)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
        .without_plots();

    struct Measured {
        id: &'static str,
        data: String,
        status: u16,
        calls: u64,
    }
    let mut measured = Vec::new();
    let mut group = c.benchmark_group("handler");
    for row in rows() {
        let raw = serde_json::to_vec(&row.event).expect("event bytes");
        // One invocation first: its status and its AWS calls.
        let (handled, calls, _) = rt.block_on(measure(|| plain.handle(&row.event, &ctx)));
        assert_eq!(
            handled.envelope.status_code, 200,
            "{}: {}",
            row.id, handled.envelope.body
        );
        measured.push(Measured {
            id: row.id,
            data: row.data,
            status: handled.envelope.status_code,
            calls: calls.total,
        });
        group.bench_function(row.id, |b| {
            b.iter(|| {
                let event: Value = serde_json::from_slice(&raw).expect("event");
                let handled = rt.block_on(app.handle(&event, &ctx));
                serde_json::to_vec(&handled.envelope).expect("envelope").len()
            })
        });
    }
    group.finish();

    println!();
    println!(
        "Table 3. Handler overhead on the fakes: raw event → App::handle (with EMF metrics) → serialized envelope. \
         Criterion median (mean). Seeding {INSTANCES} instances by `create` took {:.1} s.",
        seed_time.as_secs_f64()
    );
    println!();
    println!("| action | fakes hold | answer | AWS calls (fakes) | median | mean |");
    println!("|---|---|---:|---:|---:|---:|");
    for m in &measured {
        let median = estimate(&dir, m.id, "median").map_or_else(|| "?".into(), human);
        let mean = estimate(&dir, m.id, "mean").map_or_else(|| "?".into(), human);
        println!(
            "| {} | {} | {} | {} | {median} | {mean} |",
            m.id, m.data, m.status, m.calls
        );
    }
    println!();
}
