//! `check-availability` over a pool of 10, 100 and 1,000 shared licenses, on the fakes:
//! the DynamoDB calls it makes (which must not grow with the pool) and its time.
//!
//! `make bench` runs it; it prints one table.

use std::collections::HashMap;
use std::time::Instant;

use foundry_lambda::app::Ctx;
use foundry_lambda::managers::dynamodb::AttributeValue;
use foundry_lambda::testing::fake_app;
use serde_json::json;

const T0: i64 = 1_767_225_600;
const REQUESTER: &str = "900000000000000001";
const DYNAMO_OPS: [&str; 4] = ["GetItem", "Query", "Scan", "BatchGetItem"];

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    println!("check-availability (pooled) on the fakes");
    println!("| licenses in the pool | DynamoDB calls | median time |");
    println!("|---:|---:|---:|");
    let mut calls_seen = Vec::new();
    for size in [10usize, 100, 1_000] {
        let (app, fake, _) = fake_app(T0);
        for i in 0..size {
            let owner = format!("8{:017}", i);
            let item: HashMap<String, AttributeValue> = [
                ("licenseId", AttributeValue::S(format!("byol-{owner}"))),
                ("ownerId", AttributeValue::S(owner.clone())),
                ("ownerUsername", AttributeValue::S(format!("owner{i}"))),
                ("maxConcurrentUsers", AttributeValue::N("1".into())),
                ("isActive", AttributeValue::Bool(true)),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
            fake.dynamo
                .put_raw("foundry-vtt-instances-license-pool", "licenseId", item);
        }
        let event = json!({"action":"check-availability","userId":REQUESTER,"startTime":T0 + 3_600,
                           "endTime":T0 + 7_200,"licenseType":"pooled"});
        let count = || DYNAMO_OPS.iter().map(|op| fake.faults.count(op)).sum::<usize>();
        let before = count();
        let handled = rt.block_on(app.handle(&event, &Ctx::default()));
        assert_eq!(handled.envelope.status_code, 200, "{}", handled.envelope.body);
        let calls = count() - before;
        let mut times = Vec::new();
        for _ in 0..21 {
            let t = Instant::now();
            rt.block_on(app.handle(&event, &Ctx::default()));
            times.push(t.elapsed());
        }
        times.sort();
        println!("| {size} | {calls} | {:.2?} |", times[times.len() / 2]);
        calls_seen.push(calls);
    }
    let constant = calls_seen.windows(2).all(|w| w[0] == w[1]);
    println!(
        "DynamoDB calls {} with the size of the pool",
        if constant { "do not grow" } else { "GROW" }
    );
}
