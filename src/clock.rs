//! Time. Nothing else in the crate reads the system clock or sleeps directly.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;

#[async_trait]
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;

    /// Waits `duration` (on a manual clock: advances time by it).
    async fn sleep(&self, duration: Duration);

    /// Whole Unix seconds (the floor of milliseconds / 1000).
    fn now(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

#[async_trait]
impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
    }

    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

/// A clock that stands still until told otherwise; `sleep` advances it instantly.
#[derive(Debug)]
pub struct ManualClock {
    now_ms: AtomicI64,
}

impl ManualClock {
    /// A clock at `unix_seconds`.
    pub fn at(unix_seconds: i64) -> Self {
        ManualClock {
            now_ms: AtomicI64::new(unix_seconds * 1000),
        }
    }

    pub fn set(&self, unix_seconds: i64) {
        self.now_ms.store(unix_seconds * 1000, Ordering::SeqCst);
    }

    pub fn advance(&self, duration: Duration) {
        let ms = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        self.now_ms.fetch_add(ms, Ordering::SeqCst);
    }
}

#[async_trait]
impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.now_ms.load(Ordering::SeqCst)
    }

    async fn sleep(&self, duration: Duration) {
        self.advance(duration);
        tokio::task::yield_now().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn manual_clock_sleep_advances_time() {
        let c = ManualClock::at(1_000);
        assert_eq!(c.now(), 1_000);
        c.sleep(Duration::from_millis(2_500)).await;
        assert_eq!(c.now_ms(), 1_002_500);
        assert_eq!(c.now(), 1_002);
    }

    #[test]
    fn now_floors_milliseconds() {
        let c = ManualClock::at(0);
        c.advance(Duration::from_millis(1_999));
        assert_eq!(c.now(), 1);
    }
}
