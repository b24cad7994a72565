//! `make bench`: the performance tables of foundry-lambda, in one run.
//!
//! 1. Cold start of the release `bootstrap` next to the floor (a hello-world
//!    `lambda_runtime` binary, `examples/floor.rs`), against a stand-in Runtime API
//!    ([`coldstart`]).
//! 2. Peak memory after 1 and after 1,000 invocations ([`coldstart`]).
//! 3. Handler overhead on the fakes, from the raw event to the serialized envelope
//!    (criterion, [`handler`]).
//! 4. Sweep scaling: `auto-shutdown-check` over 10, 100 and 1,000 due instances on the
//!    fakes, with 20 ms per AWS call ([`sweep`]).
//! 5. AWS calls and wall time per action against the local AWS, next to the original's
//!    counts ([`aws_calls`]).
//! 6. DynamoDB items read by one `auto-shutdown-check` at 1,000, 10,000 and 100,000
//!    instances with 100 running, on the fakes ([`sweep::reads`]).
//! 7. The billed duration of a start, polling and with task-state events, on the fakes with
//!    a 60 s task start ([`start_wait`]).
//!
//! The Makefile builds the two binaries, starts the local AWS (moto on its own port) and
//! sets `BENCH_ENV_FILE` to its env file. `BENCH_TABLES=1,2,3,5,6` picks tables (default: all).

mod aws_calls;
mod coldstart;
mod handler;
mod start_wait;
mod sweep;

use std::collections::BTreeMap;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn parse_env_file(path: &str) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read the local AWS env file {path}: {e} (make bench writes it)"));
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn main() {
    // `cargo bench` passes `--bench`. Without it this is `cargo test --all-targets`, which
    // only checks that the bench builds: the tables need `make bench` (release binaries and
    // their own local AWS).
    if !std::env::args().any(|a| a == "--bench") {
        println!("benches/tables: built; `make bench` prints the tables");
        return;
    }
    let tables = std::env::var("BENCH_TABLES").unwrap_or_else(|_| "1,2,3,4,5,6,7".into());
    let want = |n: &str| tables.split(',').any(|t| t.trim() == n);
    let env_file = std::env::var("BENCH_ENV_FILE").unwrap_or_else(|_| "target/bench/env".into());
    let needs_aws = want("1") || want("2") || want("5");
    let env = if needs_aws {
        parse_env_file(&env_file)
    } else {
        BTreeMap::new()
    };

    if want("1") || want("2") {
        coldstart::run(&env);
    }
    if want("3") {
        handler::run();
    }
    if want("4") {
        sweep::run();
    }
    if want("5") {
        aws_calls::run(&env);
    }
    if want("6") {
        sweep::reads();
    }
    if want("7") {
        start_wait::run();
    }
}
