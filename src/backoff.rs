//! Exponential backoff with jitter: the one retry delay of every loop that
//! reconnects or resends (the RabbitMQ stream consumer, the peer link
//! between instances, `tourcast publish`).
//!
//! Each failure doubles a ceiling, from `min` up to `max`; the delay is a
//! random point in the upper half of the ceiling ("equal jitter"), so that
//! many gateways do not all retry a broker that comes back at the same
//! instant, while none waits less than half of what the doubling asks.
//! A success resets it.
//!
//! Written by hand: it is a dozen lines over `rand`, and the backoff
//! crates' retry loops do not fit loops that must also watch a shutdown
//! token or keep other work going between attempts.

use std::time::Duration;

use rand::RngExt as _;

/// Delays between attempts after failures.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    ceiling: Duration,
    failures: u32,
}

impl Backoff {
    /// A backoff starting at `min` (at least a millisecond) and doubling
    /// up to `max` (at least `min`).
    pub fn new(min: Duration, max: Duration) -> Self {
        let min = min.max(Duration::from_millis(1));
        Backoff {
            min,
            max: max.max(min),
            ceiling: min,
            failures: 0,
        }
    }

    /// Records a failure; returns how long to wait before the next
    /// attempt: a random duration in `[ceiling / 2, ceiling]`, after which
    /// the ceiling doubles (up to `max`).
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.ceiling.mul_f64(rand::rng().random_range(0.5..=1.0));
        self.ceiling = self.ceiling.saturating_mul(2).min(self.max);
        self.failures = self.failures.saturating_add(1);
        delay
    }

    /// Records a success: the next failure waits about `min` again.
    pub fn reset(&mut self) {
        self.ceiling = self.min;
        self.failures = 0;
    }

    /// Failures since the last success (for logs).
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_ceiling_doubles_up_to_the_maximum_and_delays_stay_under_it() {
        let mut backoff = Backoff::new(100 * MS, 1000 * MS);
        for ceiling in [100, 200, 400, 800, 1000, 1000, 1000] {
            let delay = backoff.next_delay();
            assert!(
                delay >= ceiling * MS / 2 && delay <= ceiling * MS,
                "{delay:?} outside [{}, {ceiling}] ms",
                ceiling / 2
            );
        }
        assert_eq!(backoff.failures(), 7);
    }

    #[test]
    fn a_reset_starts_over() {
        let mut backoff = Backoff::new(10 * MS, 10_000 * MS);
        for _ in 0..10 {
            backoff.next_delay();
        }
        backoff.reset();
        assert_eq!(backoff.failures(), 0);
        assert!(backoff.next_delay() <= 10 * MS);
    }

    #[test]
    fn delays_are_jittered_over_the_upper_half_of_the_ceiling() {
        let draws: Vec<Duration> = (0..2_000)
            .map(|_| Backoff::new(1000 * MS, 1000 * MS).next_delay())
            .collect();
        assert!(draws.iter().all(|d| *d >= 500 * MS && *d <= 1000 * MS));
        let (low, high) = (draws.iter().min().unwrap(), draws.iter().max().unwrap());
        // Spread over the range, not one fixed value: with 2,000 uniform
        // draws both ends are reached within 5% of the range (failing this
        // by chance is far less likely than 1e-40).
        assert!(*low < 525 * MS, "lowest {low:?}");
        assert!(*high > 975 * MS, "highest {high:?}");
    }

    #[test]
    fn bounds_are_made_sane() {
        let mut zero = Backoff::new(Duration::ZERO, Duration::ZERO);
        assert!(zero.next_delay() <= MS);
        let mut inverted = Backoff::new(50 * MS, 10 * MS);
        for _ in 0..5 {
            assert!(inverted.next_delay() <= 50 * MS);
        }
    }
}
