//! Small clocks of the links, without I/O: the redial backoff and the limit on warnings.

use std::time::{Duration, Instant};

/// Capped exponential backoff with jitter: each delay is drawn from the upper half of a base
/// that doubles from `min` to `max`.
#[derive(Debug)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    base: Option<Duration>,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max: max.max(min),
            base: None,
        }
    }

    /// The next delay; `jitter` is a number in `[0, 1)`.
    pub fn next_delay(&mut self, jitter: f64) -> Duration {
        let base = match self.base {
            None => self.min,
            Some(base) => base.saturating_mul(2).min(self.max),
        };
        self.base = Some(base);
        base.mul_f64(0.5 + jitter.clamp(0.0, 1.0) / 2.0)
    }

    /// After a success: the next failure starts again from `min`.
    pub fn reset(&mut self) {
        self.base = None;
    }
}

/// Lets one warning through per interval and counts the ones held back.
#[derive(Debug)]
pub(crate) struct WarnLimiter {
    interval: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl WarnLimiter {
    pub fn new(interval: Duration) -> WarnLimiter {
        WarnLimiter {
            interval,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(n)` when a warning may be logged now, `n` being how many were held back since the
    /// last one; `None` when this one should be held back.
    pub fn check(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < self.interval => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_redial_delay_doubles_up_to_its_cap_and_starts_over_after_a_success() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(500));
        let full: Vec<_> = (0..5).map(|_| backoff.next_delay(0.999_999)).collect();
        let ms: Vec<_> = full.iter().map(|d| d.as_millis()).collect();
        assert_eq!(ms, [99, 199, 399, 499, 499]);
        backoff.reset();
        assert_eq!(backoff.next_delay(0.0), Duration::from_millis(50));
    }

    #[test]
    fn one_warning_per_interval_gets_through_and_says_how_many_were_held() {
        let t0 = Instant::now();
        let mut limiter = WarnLimiter::new(Duration::from_secs(10));
        assert_eq!(limiter.check(t0), Some(0));
        assert_eq!(limiter.check(t0 + Duration::from_secs(1)), None);
        assert_eq!(limiter.check(t0 + Duration::from_secs(9)), None);
        assert_eq!(limiter.check(t0 + Duration::from_secs(10)), Some(2));
        assert_eq!(limiter.check(t0 + Duration::from_secs(11)), None);
    }
}
