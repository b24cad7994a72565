//! `make fuzz`: millions of mutated events through the parser and the checks before an
//! action runs, on every core. Prints how many ran, how many would run an action, and
//! every failure (a panic, or an answer whose body is not JSON text).
//!
//! `cargo run --profile fuzz --example fuzz --features test-util -- [inputs] [seed]` (the
//! `fuzz` profile is the release profile with panics that unwind, so that they are counted).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use foundry_lambda::testing::fake_app;
use foundry_lambda::testing::fuzz::{check, Mutator};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let inputs: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(10_000_000);
    let seed: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1);
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2) as u64;
    let seeds = Mutator::seeds_from(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("events"));
    println!(
        "fuzz: {inputs} inputs from {} seed events, {threads} threads, seed {seed}",
        seeds.len()
    );
    // Panics are counted, not printed one by one.
    std::panic::set_hook(Box::new(|_| {}));
    let failures = Arc::new(AtomicU64::new(0));
    let panics = Arc::new(AtomicU64::new(0));
    let accepted = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let seeds = seeds.clone();
            let failures = failures.clone();
            let panics = panics.clone();
            let accepted = accepted.clone();
            let share = inputs / threads + u64::from(t < inputs % threads);
            std::thread::spawn(move || {
                let (app, _fake, _clock) = fake_app(1_767_225_600);
                let mut m = Mutator::new(seed.wrapping_mul(1_000_003).wrapping_add(t), seeds);
                for _ in 0..share {
                    let input = m.next_input();
                    match catch_unwind(AssertUnwindSafe(|| check(&app, &input))) {
                        Ok(Ok(true)) => {
                            accepted.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(Ok(false)) => {}
                        Ok(Err(why)) => {
                            if failures.fetch_add(1, Ordering::Relaxed) < 10 {
                                eprintln!("FAILURE: {why}\n  input: {}", &input[..input.len().min(500)]);
                            }
                        }
                        Err(_) => {
                            if panics.fetch_add(1, Ordering::Relaxed) < 10 {
                                eprintln!("PANIC on input: {}", &input[..input.len().min(500)]);
                            }
                        }
                    }
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    let took = started.elapsed();
    let failed = failures.load(Ordering::Relaxed);
    let panicked = panics.load(Ordering::Relaxed);
    println!(
        "fuzz: {inputs} inputs in {:.1} s ({:.0}/s), {} would run an action; {failed} failures, {panicked} panics",
        took.as_secs_f64(),
        inputs as f64 / took.as_secs_f64(),
        accepted.load(Ordering::Relaxed)
    );
    if failed + panicked > 0 {
        std::process::exit(1);
    }
}
