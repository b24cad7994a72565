//! Table 4: the auto-shutdown sweep over 10, 100 and 1,000 due instances on the in-memory
//! fakes, every AWS call taking 20 ms (as calls over a network do). Each instance is made
//! and started by the actions themselves; the clock then moves seven hours on, so every run
//! is past its limit, and one `auto-shutdown-check` stops them all.
//!
//! Table 6: the DynamoDB items one sweep reads, at 1,000, 10,000 and 100,000 instances of
//! which 100 run ([`reads`]).

use std::time::{Duration, Instant};

use foundry_lambda::app::{App, Ctx};
use foundry_lambda::managers::dynamodb::{AttributeValue, Dynamo, Table};
use foundry_lambda::testing::{fake_app, FakeAws};
use serde_json::{json, Value};

/// 2026-01-01T00:00:00Z (any fixed time works).
const T0: i64 = 1_767_225_600;
const LATENCY: Duration = Duration::from_millis(20);

fn user(i: usize) -> String {
    format!("6{i:017}")
}

fn handle(rt: &tokio::runtime::Runtime, app: &App, event: Value) -> Value {
    let handled = rt.block_on(app.handle(&event, &Ctx::default()));
    assert_eq!(handled.envelope.status_code, 200, "{event}: {}", handled.envelope.body);
    serde_json::from_str(&handled.envelope.body).expect("a JSON body")
}

/// The fakes with `n` running instances, seven hours into their runs.
fn due(rt: &tokio::runtime::Runtime, n: usize) -> (App, FakeAws) {
    let (app, fake, clock) = fake_app(T0);
    for i in 0..n {
        let uid = user(i);
        handle(
            rt,
            &app,
            json!({"action":"create","userId":uid,"sanitizedUsername":format!("sweep{i:04}"),
                   "foundryUsername":"gm@example.com","foundryPassword":"bench-password",
                   "licenseType":"byol","allowLicenseSharing":false,"maxConcurrentUsers":1}),
        );
        handle(rt, &app, json!({"action":"start","userId":uid}));
    }
    clock.advance(Duration::from_secs(7 * 3_600));
    (app, fake)
}

pub fn run() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    println!();
    println!(
        "Table 4. Sweep scaling: one auto-shutdown-check over due instances on the fakes, {} ms per AWS call.",
        LATENCY.as_millis()
    );
    println!();
    println!(
        "| due instances | stopped | wall time | per instance | AWS calls per instance | instances in work at once |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    for n in [10, 100, 1_000] {
        let (app, fake) = due(&rt, n);
        fake.set_latency(LATENCY);
        fake.reset_peak_in_flight();
        let before = fake.faults.calls().len();
        let t0 = Instant::now();
        let body = handle(&rt, &app, json!({"action":"auto-shutdown-check","userId":"system"}));
        let wall = t0.elapsed();
        let calls = fake.faults.calls().len() - before;
        println!(
            "| {n} | {} | {:.2} s | {:.1} ms | {:.1} | {} |",
            body["shutdownCount"],
            wall.as_secs_f64(),
            wall.as_secs_f64() * 1e3 / n as f64,
            calls as f64 / n as f64,
            fake.peak_in_flight()
        );
    }
    println!();
    println!(
        "One instance's stop makes its calls one after another; the sweep works on 16 instances at once, \
         so the wall time is about calls × 20 ms × instances / 16."
    );
    println!();
}

/// Table 6: the DynamoDB items one `auto-shutdown-check` reads, on the fakes, at 1,000,
/// 10,000 and 100,000 instances of which 100 run and are past their deadline (started by
/// the actions, so their index attributes are the ones `start` writes; the rest of the
/// fleet are copies of a created record). The fake DynamoDB counts every item a GetItem,
/// Query or Scan returns; no read filters, so that is every item read. Next to it, the
/// items of `shutdown-stats`, and those a Scan of the table reads: what both read before
/// the index of runs.
pub fn reads() {
    const INSTANCES: &str = "foundry-vtt-instances";
    const RUNNING: usize = 100;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    println!();
    println!(
        "Table 6. DynamoDB items read by one auto-shutdown-check that stops the {RUNNING} running instances, on the fakes."
    );
    println!();
    println!("| instances | running | items the sweep reads | its Queries | items shutdown-stats reads | items a Scan of the table reads (both, before) |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for fleet in [1_000, 10_000, 100_000] {
        let (app, fake) = due(&rt, RUNNING);
        // The rest of the fleet: created, never started.
        let uid = user(RUNNING);
        handle(
            &rt,
            &app,
            json!({"action":"create","userId":uid,"sanitizedUsername":"fleettemplate",
                   "foundryUsername":"gm@example.com","foundryPassword":"bench-password",
                   "licenseType":"byol","allowLicenseSharing":false,"maxConcurrentUsers":1}),
        );
        let template = fake.dynamo.item(INSTANCES, &uid).expect("the created record");
        for i in RUNNING + 1..fleet {
            let mut item = template.clone();
            item.insert("userId".into(), AttributeValue::S(user(i)));
            item.insert("sanitizedUsername".into(), AttributeValue::S(format!("fleet{i:06}")));
            fake.dynamo.put_raw(INSTANCES, "userId", item);
        }
        assert_eq!(fake.dynamo.items(INSTANCES).len(), fleet);

        let read0 = fake.dynamo.items_read();
        let stats = handle(&rt, &app, json!({"action":"shutdown-stats","userId":"system"}));
        assert_eq!(stats["stats"]["totalRunning"], RUNNING, "{stats}");
        let stats_read = fake.dynamo.items_read() - read0;

        let read0 = fake.dynamo.items_read();
        let calls0 = fake.faults.calls().len();
        let body = handle(&rt, &app, json!({"action":"auto-shutdown-check","userId":"system"}));
        assert_eq!(body["shutdownCount"], RUNNING, "{body}");
        let sweep_read = fake.dynamo.items_read() - read0;
        let calls = fake.faults.calls();
        let queries = calls[calls0..].iter().filter(|c| c.contains("Query")).count();
        assert!(
            !calls[calls0..].iter().any(|c| c.contains("Scan")),
            "the sweep scans nothing"
        );

        let read0 = fake.dynamo.items_read();
        let scanned = rt
            .block_on(fake.dynamo.scan(&Table::new(INSTANCES, "userId")))
            .expect("Scan")
            .len();
        assert_eq!(fake.dynamo.items_read() - read0, scanned as u64);
        println!("| {fleet} | {RUNNING} | {sweep_read} | {queries} | {stats_read} | {scanned} |");
    }
    println!();
    println!(
        "The sweep and shutdown-stats query the sparse index of runs, one Query per shard, and read only the \
         records that have a run; a Scan reads the whole fleet."
    );
    println!();
}
