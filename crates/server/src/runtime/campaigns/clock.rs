//! The time of day campaigns go by (schedule windows, estimates), injected so that tests can
//! set it: [`SystemClock`] is the wall clock, [`FakeClock`] one that a test moves by hand.
//! Waiting for a time is part of the clock, so that nothing polls it.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

/// A source of the current time that can also wait for a later one.
pub trait Clock: Send + Sync + Debug {
    fn now(&self) -> DateTime<Utc>;
    /// Resolves once `now()` has reached `at` (at once when it has). Never polls in a loop.
    fn sleep_until(&self, at: DateTime<Utc>) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

/// The longest single sleep of [`SystemClock`]: after it the time is read again, so that a
/// wall clock set forward or back (NTP, a suspended VM) is noticed within a minute.
const SYSTEM_SLEEP_CAP: std::time::Duration = std::time::Duration::from_secs(60);

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep_until(&self, at: DateTime<Utc>) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            loop {
                let Ok(left) = (at - Utc::now()).to_std() else { return };
                if left.is_zero() {
                    return;
                }
                tokio::time::sleep(left.min(SYSTEM_SLEEP_CAP)).await;
            }
        })
    }
}

/// A clock that stands still until told to move ([`FakeClock::set`], [`FakeClock::advance`]);
/// whoever sleeps on it wakes when it passes their time. For tests.
#[derive(Debug)]
pub struct FakeClock {
    now: watch::Sender<DateTime<Utc>>,
}

impl FakeClock {
    pub fn new(at: DateTime<Utc>) -> Arc<FakeClock> {
        Arc::new(FakeClock { now: watch::Sender::new(at) })
    }

    pub fn set(&self, at: DateTime<Utc>) {
        self.now.send_replace(at);
    }

    pub fn advance(&self, by: chrono::Duration) {
        self.now.send_modify(|t| *t += by);
    }
}

impl Clock for FakeClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.borrow()
    }

    fn sleep_until(&self, at: DateTime<Utc>) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        let mut rx = self.now.subscribe();
        Box::pin(async move {
            while *rx.borrow_and_update() < at {
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_fake_clock_wakes_its_sleepers_when_it_passes_their_time() {
        let t0 = DateTime::parse_from_rfc3339("2026-03-02T08:00:00Z").unwrap().to_utc();
        let clock = FakeClock::new(t0);
        let c = clock.clone();
        let sleeper =
            tokio::spawn(async move { c.sleep_until(t0 + chrono::Duration::hours(1)).await });
        tokio::task::yield_now().await;
        clock.advance(chrono::Duration::minutes(59));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        clock.advance(chrono::Duration::minutes(1));
        sleeper.await.unwrap();
        assert_eq!(clock.now(), t0 + chrono::Duration::hours(1));
        // A time already passed: at once.
        clock.sleep_until(t0).await;
    }

    #[tokio::test]
    async fn the_system_clock_sleeps_until_the_wall_clock_reaches_the_time() {
        SystemClock.sleep_until(SystemClock.now() - chrono::Duration::seconds(1)).await;
        let target = SystemClock.now() + chrono::Duration::milliseconds(30);
        SystemClock.sleep_until(target).await;
        assert!(SystemClock.now() >= target);
    }
}
