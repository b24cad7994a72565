//! The status of a user's Foundry server (`GET /api/status`), the one service outside AWS
//! that the function asks: the seam the idle sweep probes through.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::http::HttpClient;
use crate::domain::idle::{read_status, Probe, MAX_STATUS_BODY};

/// Asks a Foundry server how many players are connected.
#[async_trait]
pub trait FoundryStatus: Send + Sync {
    /// The status at `url`, within `budget`. Never fails: what cannot be known is
    /// [`Probe::Unknown`].
    async fn probe(&self, url: &str, budget: Duration) -> Probe;
}

/// The real probe, over [`HttpClient`].
#[derive(Debug, Default, Clone)]
pub struct HttpFoundryStatus {
    client: Arc<HttpClient>,
}

impl HttpFoundryStatus {
    pub fn new() -> Self {
        HttpFoundryStatus::default()
    }
}

#[async_trait]
impl FoundryStatus for HttpFoundryStatus {
    async fn probe(&self, url: &str, budget: Duration) -> Probe {
        let started = std::time::Instant::now();
        let probe = match self.client.get(url, budget, MAX_STATUS_BODY).await {
            Ok(answer) => read_status(answer.status, &answer.body),
            Err(failure) => Probe::Unknown(failure.to_string()),
        };
        tracing::debug!(
            service = "foundry",
            operation = "GetStatus",
            duration_ms = started.elapsed().as_millis() as u64,
            outcome = probe.outcome(),
            "outside call"
        );
        probe
    }
}
