//! Retry policy: exponential backoff with jitter, bounded in attempts and in total time.
//!
//! The decision is a pure function of (attempts made, time spent, the hub's `Retry-After`,
//! a jitter sample) so it can be tested without a network or a clock.

use std::time::Duration;

/// When and how often the client retries throttled (429), unavailable (503) and broken
/// (connection refused / reset) requests.
///
/// The defaults (5 attempts, 30 s in total, 250 ms doubling up to 8 s) keep an interactive
/// command responsive while riding out a short throttling burst or a hub restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts including the first; 1 disables retries.
    pub max_attempts: u32,
    /// No retry is started if it could not begin (after its delay) within this time from the
    /// first attempt. Also caps each attempt's request timeout.
    pub max_elapsed: Duration,
    /// Delay before the first retry; doubled for each further retry.
    pub base_delay: Duration,
    /// Upper bound of the computed backoff (not of a hub-sent `Retry-After`).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            max_elapsed: Duration::from_secs(30),
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(8),
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn never() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// The capped exponential delay before retry number `retry` (1-based), scaled by a
    /// jitter sample in `[0, 1)` into `[cap/2, cap)`. Half-range ("equal") jitter keeps some
    /// minimum spacing while still spreading clients that were throttled together.
    pub(crate) fn backoff(&self, retry: u32, jitter: f64) -> Duration {
        let exp = retry.saturating_sub(1).min(20);
        let cap = self
            .base_delay
            .saturating_mul(1u32 << exp)
            .min(self.max_delay);
        let jitter = jitter.clamp(0.0, 1.0);
        cap.mul_f64(0.5 + 0.5 * jitter)
    }

    /// Decides whether to retry after `attempts_made` attempts that took `elapsed` so far.
    /// Returns the delay to wait, or `None` to give up. A hub-sent `Retry-After` replaces the
    /// computed backoff; if honouring it would overrun the time budget the client gives up
    /// at once instead of sleeping into certain failure.
    pub(crate) fn next_delay(
        &self,
        attempts_made: u32,
        elapsed: Duration,
        retry_after: Option<Duration>,
        jitter: f64,
    ) -> Option<Duration> {
        if attempts_made >= self.max_attempts {
            return None;
        }
        let delay = retry_after.unwrap_or_else(|| self.backoff(attempts_made, jitter));
        if elapsed.saturating_add(delay) >= self.max_elapsed {
            return None;
        }
        Some(delay)
    }

    /// Time left of the budget after `elapsed`, for capping an attempt's request timeout.
    pub(crate) fn remaining(&self, elapsed: Duration) -> Duration {
        self.max_elapsed.saturating_sub(elapsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy::default()
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let p = policy();
        // jitter 1.0 gives the full cap
        assert_eq!(p.backoff(1, 1.0), Duration::from_millis(250));
        assert_eq!(p.backoff(2, 1.0), Duration::from_millis(500));
        assert_eq!(p.backoff(3, 1.0), Duration::from_secs(1));
        assert_eq!(p.backoff(10, 1.0), Duration::from_secs(8));
        assert_eq!(p.backoff(u32::MAX, 1.0), Duration::from_secs(8));
    }

    #[test]
    fn jitter_spreads_within_half_to_full() {
        let p = policy();
        assert_eq!(p.backoff(2, 0.0), Duration::from_millis(250));
        let mid = p.backoff(2, 0.5);
        assert!(mid > Duration::from_millis(250) && mid < Duration::from_millis(500));
        // out-of-range samples are clamped, never negative or above the cap
        assert_eq!(p.backoff(2, -3.0), Duration::from_millis(250));
        assert_eq!(p.backoff(2, 7.0), Duration::from_millis(500));
    }

    #[test]
    fn attempts_are_bounded() {
        let p = policy();
        for made in 1..5 {
            assert!(p.next_delay(made, Duration::ZERO, None, 0.5).is_some());
        }
        assert_eq!(p.next_delay(5, Duration::ZERO, None, 0.5), None);
        assert_eq!(
            RetryPolicy::never().next_delay(1, Duration::ZERO, None, 0.5),
            None
        );
    }

    #[test]
    fn total_time_is_bounded() {
        let p = policy();
        assert_eq!(
            p.next_delay(1, Duration::from_millis(29_900), None, 1.0),
            None
        );
        assert!(p
            .next_delay(1, Duration::from_millis(29_000), None, 1.0)
            .is_some());
    }

    #[test]
    fn retry_after_is_honoured_even_above_max_delay() {
        let p = policy();
        assert_eq!(
            p.next_delay(1, Duration::ZERO, Some(Duration::from_secs(10)), 0.0),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            p.next_delay(1, Duration::ZERO, Some(Duration::ZERO), 0.9),
            Some(Duration::ZERO)
        );
        // ...but not past the total budget
        assert_eq!(
            p.next_delay(
                1,
                Duration::from_secs(25),
                Some(Duration::from_secs(10)),
                0.0
            ),
            None
        );
    }

    #[test]
    fn remaining_saturates() {
        let p = policy();
        assert_eq!(p.remaining(Duration::from_secs(40)), Duration::ZERO);
        assert_eq!(
            p.remaining(Duration::from_secs(10)),
            Duration::from_secs(20)
        );
    }
}
