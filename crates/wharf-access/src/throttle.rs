//! Per-user bandwidth limits: a token bucket shared by every session of the user.
//!
//! Tokens are bytes; they refill at the configured rate up to a burst of a quarter second's
//! worth (at least one transfer block, so large blocks do not stall). A transfer takes the
//! bytes it moves, going into debt if needed, and sleeps until the debt is repaid: the
//! average rate holds however the sessions interleave.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// A shared byte-rate limit.
#[derive(Debug)]
pub struct RateLimiter {
    bytes_per_second: u64,
    burst: f64,
    state: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    refilled: Instant,
}

impl RateLimiter {
    /// A limit of `bytes_per_second` (at least 1).
    pub fn new(bytes_per_second: u64) -> Self {
        let rate = bytes_per_second.max(1);
        let burst = (rate as f64 / 4.0).max(wharf_vfs::TRANSFER_CHUNK as f64);
        RateLimiter {
            bytes_per_second: rate,
            burst,
            state: Mutex::new(Bucket { tokens: burst, refilled: Instant::now() }),
        }
    }

    /// The configured rate.
    pub fn bytes_per_second(&self) -> u64 {
        self.bytes_per_second
    }

    /// How long the caller must wait after taking `bytes` now.
    fn take(&self, bytes: u64) -> Duration {
        let mut bucket = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let elapsed = now.duration_since(bucket.refilled).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.bytes_per_second as f64).min(self.burst);
        bucket.refilled = now;
        bucket.tokens -= bytes as f64;
        if bucket.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-bucket.tokens / self.bytes_per_second as f64)
        }
    }

    /// Takes `bytes` from the bucket, waiting as long as the rate requires.
    pub async fn acquire(&self, bytes: u64) {
        let wait = self.take(bytes);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn average_rate_holds() {
        let limiter = RateLimiter::new(1_000_000);
        let started = tokio::time::Instant::now();
        // 5 MB in 64 KiB pieces at 1 MB/s: about 5 s minus the initial burst.
        let mut sent = 0u64;
        while sent < 5_000_000 {
            limiter.acquire(65_536).await;
            sent += 65_536;
        }
        let took = started.elapsed().as_secs_f64();
        let burst = wharf_vfs::TRANSFER_CHUNK as f64 / 1_000_000.0;
        assert!(took >= 5.0 - burst - 0.1 && took <= 5.2, "took {took} s");
    }
}
