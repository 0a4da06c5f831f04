//! Per-tenant rate limiting: `RATE_LIMIT_PER_SEC` requests a second per tenant, with bursts of
//! up to `RATE_LIMIT_BURST`, by governor's keyed GCRA limiter (the token-bucket equivalent, one
//! cell per tenant). A request that finds its tenant over the limit is answered 429 with
//! `Retry-After` and `RateLimit-*` headers. The state lives in this process: with N instances,
//! a tenant may reach N times the rate (see README.md).

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter as Governor};

use crate::TenantId;

/// The limiter's verdict on one request that is refused.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limited {
    /// The burst size.
    pub limit: u32,
    /// Time until the tenant may send again.
    pub retry_after: Duration,
}

/// One limiter keyed by tenant.
#[derive(Debug)]
pub struct RateLimiter {
    limiter: Governor<TenantId, DefaultKeyedStateStore<TenantId>, DefaultClock>,
    burst: u32,
}

impl RateLimiter {
    /// `per_sec` requests a second (a positive, finite number), at most `burst` at once.
    pub fn new(per_sec: f64, burst: u32) -> Self {
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        // One request's worth of the rate; config validation keeps `per_sec` positive and finite.
        let period = Duration::try_from_secs_f64(1.0 / per_sec).unwrap_or(Duration::from_secs(1));
        let quota = Quota::with_period(period).unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN)).allow_burst(burst);
        Self { limiter: Governor::keyed(quota), burst: burst.get() }
    }

    /// Lets one request of `tenant` through, or says how long until one may come.
    pub fn check(&self, tenant: &TenantId) -> Result<(), Limited> {
        self.limiter.check_key(tenant).map_err(|not_until| Limited {
            limit: self.burst,
            retry_after: not_until.wait_time_from(DefaultClock::default().now()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(name: &str) -> TenantId {
        TenantId::parse(name).expect("valid")
    }

    #[test]
    fn allows_the_burst_then_the_rate() {
        let limiter = RateLimiter::new(2.0, 3);
        let acme = tenant("acme");
        for _ in 0..3 {
            assert!(limiter.check(&acme).is_ok());
        }
        let limited = limiter.check(&acme).expect_err("burst spent");
        assert_eq!(limited.limit, 3);
        assert!(
            limited.retry_after > Duration::ZERO && limited.retry_after <= Duration::from_millis(500),
            "{limited:?}"
        );
        // Half a second later one request (2/s) has come back, and only one.
        std::thread::sleep(limited.retry_after);
        assert!(limiter.check(&acme).is_ok());
        assert!(limiter.check(&acme).is_err());
    }

    #[test]
    fn tenants_have_their_own_limits() {
        let limiter = RateLimiter::new(1.0, 1);
        assert!(limiter.check(&tenant("acme")).is_ok());
        assert!(limiter.check(&tenant("acme")).is_err());
        assert!(limiter.check(&tenant("globex")).is_ok());
    }
}
