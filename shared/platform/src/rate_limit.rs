//! Per-tenant rate limiting: a token bucket per tenant, refilled at `RATE_LIMIT_PER_SEC`
//! tokens a second up to `RATE_LIMIT_BURST`; each authenticated request takes one token, and a
//! request that finds the bucket empty is answered 429 with `Retry-After` and `RateLimit-*`
//! headers. The buckets live in this process: with N instances, a tenant may reach N times the
//! rate (see README.md).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::TenantId;

/// The limiter's verdict on one request that is refused.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limited {
    /// The bucket's capacity.
    pub limit: u32,
    /// Time until a token is available.
    pub retry_after: Duration,
}

/// Token buckets, one per tenant.
#[derive(Debug)]
pub struct RateLimiter {
    per_sec: f64,
    burst: f64,
    buckets: Mutex<HashMap<TenantId, (f64, Instant)>>,
}

impl RateLimiter {
    /// `per_sec` tokens a second, at most `burst` saved up.
    pub fn new(per_sec: f64, burst: u32) -> Self {
        Self { per_sec, burst: f64::from(burst.max(1)), buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes a token for `tenant` at `now`, or says how long until one is free.
    pub fn check_at(&self, tenant: &TenantId, now: Instant) -> Result<(), Limited> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (tokens, last) = buckets.entry(tenant.clone()).or_insert((self.burst, now));
        let elapsed = now.saturating_duration_since(*last).as_secs_f64();
        *tokens = (*tokens + elapsed * self.per_sec).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - *tokens) / self.per_sec;
            Err(Limited { limit: self.burst as u32, retry_after: Duration::from_secs_f64(wait) })
        }
    }

    /// Takes a token for `tenant` now.
    pub fn check(&self, tenant: &TenantId) -> Result<(), Limited> {
        self.check_at(tenant, Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(name: &str) -> TenantId {
        crate::TenantKeys::from_json(&format!(r#"{{"{name}": ["key-{name}-123"]}}"#))
            .expect("valid")
            .tenants()
            .remove(0)
    }

    #[test]
    fn allows_the_burst_then_the_rate() {
        let limiter = RateLimiter::new(2.0, 3);
        let (acme, start) = (tenant("acme"), Instant::now());
        for _ in 0..3 {
            assert!(limiter.check_at(&acme, start).is_ok());
        }
        let limited = limiter.check_at(&acme, start).expect_err("burst spent");
        assert_eq!(limited.limit, 3);
        assert!((limited.retry_after.as_secs_f64() - 0.5).abs() < 1e-9, "{limited:?}");
        // Half a second later one token (2/s) has come back, and only one.
        let later = start + Duration::from_millis(500);
        assert!(limiter.check_at(&acme, later).is_ok());
        assert!(limiter.check_at(&acme, later).is_err());
    }

    #[test]
    fn tenants_have_their_own_buckets() {
        let limiter = RateLimiter::new(1.0, 1);
        let now = Instant::now();
        assert!(limiter.check_at(&tenant("acme"), now).is_ok());
        assert!(limiter.check_at(&tenant("acme"), now).is_err());
        assert!(limiter.check_at(&tenant("globex"), now).is_ok());
    }
}
