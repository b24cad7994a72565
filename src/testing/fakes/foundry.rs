//! A fake of the Foundry status probe: answers set per URL, servers that never answer,
//! and counters of calls and of probes in flight.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use crate::domain::idle::Probe;
use crate::managers::FoundryStatus;

/// How the fake server at one URL answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FakeAnswer {
    /// Its status, with this many players connected.
    Players(u32),
    /// A failed probe, with this outcome (`timeout`, `http-500`, `not-json`, …).
    Fails(String),
    /// It never answers: the probe stays pending until whoever waits gives up.
    Hangs,
}

/// The fake probe. A URL without an answer is a server that refuses connections.
#[derive(Debug, Default)]
pub struct FakeFoundry {
    answers: Mutex<HashMap<String, FakeAnswer>>,
    calls: Mutex<Vec<String>>,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
}

impl FakeFoundry {
    pub fn new() -> Self {
        FakeFoundry::default()
    }

    /// The server at `url` answers `answer` from now on.
    pub fn answer(&self, url: &str, answer: FakeAnswer) {
        self.answers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(url.to_string(), answer);
    }

    /// Every URL probed so far, in order.
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The most probes that were in flight at once.
    pub fn peak_in_flight(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }
}

struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl FoundryStatus for FakeFoundry {
    async fn probe(&self, url: &str, _budget: Duration) -> Probe {
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(url.to_string());
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        let _guard = InFlight(&self.in_flight);
        let answer = self.answers.lock().unwrap_or_else(|e| e.into_inner()).get(url).cloned();
        // Let the other probes of the sweep start before this one answers.
        tokio::task::yield_now().await;
        match answer {
            Some(FakeAnswer::Players(n)) => Probe::Players(n),
            Some(FakeAnswer::Fails(why)) => Probe::Unknown(why),
            Some(FakeAnswer::Hangs) => std::future::pending().await,
            None => Probe::Unknown("refused".into()),
        }
    }
}
