//! The short fuzz run of CI: mutated events through the parser and the checks before an
//! action runs; every one gets an envelope whose body is JSON text, and none panics.
//! (`make fuzz` runs ten million.)

use foundry_lambda::testing::fake_app;
use foundry_lambda::testing::fuzz::{check, Mutator};

#[test]
fn fifty_thousand_mutated_events_each_get_a_json_envelope() {
    let (app, _fake, _clock) = fake_app(1_767_225_600);
    let seeds = Mutator::seeds_from(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("events"));
    assert!(seeds.len() >= 40, "the events/ seeds");
    let mut m = Mutator::new(7, seeds);
    let mut accepted = 0;
    for _ in 0..50_000 {
        let input = m.next_input();
        match check(&app, &input) {
            Ok(true) => accepted += 1,
            Ok(false) => {}
            Err(why) => panic!("{why}\ninput: {input}"),
        }
    }
    assert!(accepted > 1_000, "the mutations still reach actions: {accepted}");
}
