//! Dispatch with metrics against dispatch without, on the fakes: the cost of measuring
//! an invocation (task-local counters) and rendering its EMF records.
//!
//! `make bench` runs it. The EMF records go to a sink that discards them, so the
//! figures are the function's own work, not the speed of a terminal.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use foundry_lambda::app::{App, Ctx};
use foundry_lambda::telemetry::NullSink;
use foundry_lambda::testing::fake_app;
use serde_json::json;

const UID: &str = "123456789012345678";

fn apps(rt: &tokio::runtime::Runtime) -> (App, App) {
    let (app, _fake, _clock) = fake_app(1_795_773_600);
    let created = rt.block_on(app.handle(
        &json!({"action":"create","userId":UID,"sanitizedUsername":"alice","foundryUsername":"u","foundryPassword":"p"}),
        &Ctx::default(),
    ));
    assert_eq!(created.envelope.status_code, 200);
    let with_metrics = app.clone().with_metrics(Arc::new(NullSink));
    (app, with_metrics)
}

fn dispatch(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (plain, measured) = apps(&rt);
    let ctx = Ctx {
        request_id: "bench".into(),
        deadline_ms: None,
    };
    for (name, event) in [
        ("status", json!({"action":"status","userId":UID})),
        ("list-all", json!({"action":"list-all","userId":"system"})),
        ("guard", json!({})),
    ] {
        let mut group = c.benchmark_group(name);
        group.bench_function("without metrics", |b| {
            b.iter(|| rt.block_on(plain.handle(&event, &ctx)).envelope.status_code)
        });
        group.bench_function("with metrics", |b| {
            b.iter(|| rt.block_on(measured.handle(&event, &ctx)).envelope.status_code)
        });
        group.finish();
    }
}

criterion_group!(benches, dispatch);
criterion_main!(benches, micro);

fn render_only(c: &mut Criterion) {
    use foundry_lambda::telemetry::{CallStats, Counters, Emf, InvocationMetrics};
    let emf = Emf::new("FoundryVTT/InstanceManagement");
    let calls = CallStats { total: 2, failed: 0 };
    let counters = Counters::default();
    c.bench_function("emf render", |b| {
        b.iter(|| {
            let m = InvocationMetrics {
                timestamp_ms: 1_795_773_600_000,
                action: "status",
                outcome: "success",
                duration: std::time::Duration::from_micros(8_123),
                cold_start: false,
                request_id: "3f1c2a8e-5b6d-4c7e-9f00-1a2b3c4d5e6f",
                calls: &calls,
                counters: &counters,
            };
            let mut n = 0;
            emf.render(&m, |r| n += r.len());
            n
        })
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    c.bench_function("measure scope", |b| {
        b.iter(|| rt.block_on(foundry_lambda::telemetry::measure(|| async { 1 })).0)
    });
    c.bench_function("block_on only", |b| b.iter(|| rt.block_on(async { 1 })));
}

criterion_group!(micro, render_only);
