//! A token bucket: `rate` tokens per second, holding at most `burst` — the one rate limiter of
//! the relay and the agent.
//!
//! It lives here because what it paces is traffic from a peer who may be hostile: the relay's
//! join and registration attempts per source (tokens are requests) and forwarded streams (tokens
//! are bytes); the agent's chat messages from the assistant and its notices of the assistant's
//! dropped input (tokens are lines shown to the customer). The relay may link only ponte-wire
//! and this crate, and ponte-wire holds what is said, not how fast.
//!
//! Sans-IO: time is passed in, so the arithmetic is tested without sleeping.

use std::time::{Duration, Instant};

/// A token bucket.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket refilling `rate` tokens per second up to `burst`.
    pub fn new(rate: f64, burst: f64, now: Instant) -> TokenBucket {
        TokenBucket {
            rate,
            burst,
            tokens: burst,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = now;
    }

    /// Takes `n` tokens if they are there; otherwise returns how long until they would be.
    pub fn try_take(&mut self, n: f64, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens >= n {
            self.tokens -= n;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((n - self.tokens) / self.rate))
        }
    }

    /// Takes `n` tokens, going into debt if needed, and returns how long the caller must wait
    /// for the debt to be paid. Bandwidth limiting uses this: a chunk already read is sent
    /// after the wait, so throughput converges to `rate` without splitting chunks.
    pub fn take_with_debt(&mut self, n: f64, now: Instant) -> Duration {
        self.refill(now);
        self.tokens -= n;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }

    /// Whether the bucket is full (so an idle entry can be forgotten).
    pub fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= self.burst
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refills_at_rate_up_to_burst() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(2.0, 3.0, t0);
        for _ in 0..3 {
            b.try_take(1.0, t0).unwrap();
        }
        let wait = b.try_take(1.0, t0).unwrap_err();
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-9, "{wait:?}");
        b.try_take(1.0, t0 + Duration::from_millis(500)).unwrap();
        assert!(b.is_full(t0 + Duration::from_secs(100)));
        b.try_take(3.0, t0 + Duration::from_secs(100)).unwrap();
    }

    #[test]
    fn debt_gives_wait_time() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1000.0, 1000.0, t0);
        assert_eq!(b.take_with_debt(500.0, t0), Duration::ZERO);
        let wait = b.take_with_debt(1500.0, t0);
        assert!((wait.as_secs_f64() - 1.0).abs() < 1e-9, "{wait:?}");
    }
}
