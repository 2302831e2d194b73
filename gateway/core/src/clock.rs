//! Time, injected. The core never reads the system clock itself: every decision that
//! depends on time (MessageID staleness, leases, certificate validity, deadlines) takes it
//! from a [`Clock`], so tests drive time explicitly.

use std::fmt::Debug;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub trait Clock: Send + Sync + Debug + 'static {
    fn now(&self) -> SystemTime;

    /// How long to really sleep for `d` of this clock's time to pass. Loops that sleep
    /// until a time (the deadline timer) ask, so a clock that runs faster than the wall
    /// (the demo's) still wakes them on time.
    fn real_wait(&self, d: Duration) -> Duration {
        d
    }
}

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    // The one place the gateway reads the wall clock.
    #[allow(clippy::disallowed_methods)]
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that moves only when told to (tests).
#[derive(Debug)]
pub struct ManualClock {
    ms: AtomicI64,
}

impl ManualClock {
    pub fn new(at: SystemTime) -> Self {
        ManualClock {
            ms: AtomicI64::new(to_ms(at)),
        }
    }
    pub fn set(&self, at: SystemTime) {
        self.ms.store(to_ms(at), Ordering::SeqCst);
    }
    pub fn advance(&self, by: Duration) {
        self.ms.fetch_add(by.as_millis() as i64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        from_ms(self.ms.load(Ordering::SeqCst))
    }
}

/// A clock running `speed` times faster than the wall clock from a starting point: the
/// demo shows a week of deadlines in minutes. Never used by `serve`.
#[derive(Debug)]
pub struct ScaledClock {
    /// This clock's time at `wall_start`.
    start: SystemTime,
    wall_start: std::time::Instant,
    speed: u32,
}

impl ScaledClock {
    /// Starts at `at` (e.g. where a resumed demo stopped) and runs `speed` times faster.
    #[allow(clippy::disallowed_methods)]
    pub fn new(at: SystemTime, speed: u32) -> Self {
        ScaledClock {
            start: at,
            wall_start: std::time::Instant::now(),
            speed: speed.max(1),
        }
    }

    pub fn speed(&self) -> u32 {
        self.speed
    }
}

impl ScaledClock {
    /// This clock's time once `elapsed` of wall time has passed since it started.
    pub fn at(&self, elapsed: Duration) -> SystemTime {
        self.start + elapsed * self.speed
    }
}

impl Clock for ScaledClock {
    fn now(&self) -> SystemTime {
        self.at(self.wall_start.elapsed())
    }

    fn real_wait(&self, d: Duration) -> Duration {
        d / self.speed
    }
}

/// Milliseconds since the Unix epoch (negative before it).
pub fn to_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

pub fn from_ms(ms: i64) -> SystemTime {
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms as u64)
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

/// `xs:dateTime` in UTC with milliseconds, e.g. `2026-11-30T12:00:00.000Z`.
pub fn xs_datetime(t: SystemTime) -> String {
    let dt: chrono::DateTime<chrono::Utc> = t.into();
    dt.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scaled_clock_runs_faster_and_scales_waits_down() {
        let start = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let c = ScaledClock::new(start, 3600);
        assert!(c.now() >= start);
        assert_eq!(
            c.real_wait(Duration::from_secs(3600)),
            Duration::from_secs(1)
        );
        assert_eq!(
            ManualClock::new(start).real_wait(Duration::from_secs(5)),
            Duration::from_secs(5)
        );
        // An hour of the clock passes in a real second.
        assert_eq!(
            c.at(Duration::from_millis(1500)),
            start + Duration::from_secs(5400)
        );
    }
}
